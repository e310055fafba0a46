package keys

import (
	"sync"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

func TestAEADCache(t *testing.T) {
	a, _ := chacha20poly1305.NewX(make([]byte, 32))
	pids := make([]uuid.UUID, 100)
	for i := range pids {
		pids[i] = uuid.New()
	}
	tests := []struct {
		name string
		run  func(t *testing.T, c *aeadCache)
	}{
		{"get miss and hit", func(t *testing.T, c *aeadCache) {
			if c.get(pids[0]) != nil {
				t.Fatal("hit on empty cache")
			}
			c.putIfGen(pids[0], a, c.generation())
			if c.get(pids[0]) == nil {
				t.Fatal("miss after put")
			}
		}},
		{"bounded", func(t *testing.T, c *aeadCache) {
			for _, p := range pids {
				c.putIfGen(p, a, c.generation())
			}
			if n := c.len(); n != 10 {
				t.Fatalf("len %d, want 10", n)
			}
		}},
		{"clock keeps the hot entry", func(t *testing.T, c *aeadCache) {
			hot := pids[0]
			c.putIfGen(hot, a, c.generation())
			for _, p := range pids[1:] {
				c.get(hot)
				c.putIfGen(p, a, c.generation())
			}
			if c.get(hot) == nil {
				t.Fatal("hot entry evicted")
			}
		}},
		{"remove", func(t *testing.T, c *aeadCache) {
			for _, p := range pids[:5] {
				c.putIfGen(p, a, c.generation())
			}
			c.beginEvict()
			c.remove(pids[2])
			c.remove(pids[2])
			c.remove(pids[50])
			if c.get(pids[2]) != nil || c.len() != 4 {
				t.Fatal("not removed")
			}
			for _, p := range []uuid.UUID{pids[0], pids[1], pids[3], pids[4]} {
				if c.get(p) == nil {
					t.Fatal("removed the wrong entry")
				}
			}
		}},
		{"stale generation is not inserted", func(t *testing.T, c *aeadCache) {
			gen := c.generation()
			c.beginEvict() // a Shred committed meanwhile
			c.putIfGen(pids[0], a, gen)
			if c.get(pids[0]) != nil {
				t.Fatal("inserted a key read before a shred")
			}
		}},
		{"clear", func(t *testing.T, c *aeadCache) {
			for _, p := range pids[:5] {
				c.putIfGen(p, a, c.generation())
			}
			c.clear()
			if c.len() != 0 || c.get(pids[0]) != nil {
				t.Fatal("not cleared")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newAEADCache(10)
			tc.run(t, c)
		})
	}
	t.Run("shard sizing", func(t *testing.T) {
		for _, size := range []int{1, 10, 1000, DefaultCacheSize} {
			c := newAEADCache(size)
			total := 0
			for i := range c.shards {
				total += c.shards[i].cap
			}
			if total < size || len(c.shards)&(len(c.shards)-1) != 0 {
				t.Fatalf("size %d: %d shards, total capacity %d", size, len(c.shards), total)
			}
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		c := newAEADCache(64)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					p := pids[(i*7+g)%len(pids)]
					if c.get(p) == nil {
						c.putIfGen(p, a, c.generation())
					}
					if i%97 == 0 {
						c.beginEvict()
						c.remove(p)
					}
				}
			}(g)
		}
		wg.Wait()
		if c.len() > 64+len(c.shards) {
			t.Fatalf("len %d", c.len())
		}
	})
}

// BenchmarkCacheGet measures the hit path alone (shard read lock + atomic
// reference bit), serially and from all Ps.
func BenchmarkCacheGet(b *testing.B) {
	a, _ := chacha20poly1305.NewX(make([]byte, 32))
	c := newAEADCache(DefaultCacheSize)
	pids := make([]uuid.UUID, 4096)
	for i := range pids {
		pids[i] = uuid.New()
		c.putIfGen(pids[i], a, c.generation())
	}
	b.Run("serial", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if c.get(pids[i&4095]) == nil {
				b.Fatal("miss")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if c.get(pids[i&4095]) == nil {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
}
