package core

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

func TestSeenSet(t *testing.T) {
	const window = 4 * time.Hour // parts of one hour
	t0 := fixedNow
	tests := []struct {
		name string
		now  time.Time // expire(now), then has
		want bool
	}{
		{"just committed", t0, true},
		{"within the window", t0.Add(window - time.Second), true},
		{"within its part's grace", t0.Add(window), true},
		{"after window and part", t0.Add(window + window/seenGenerations), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeenSet(window)
			s.add(42, t0.Truncate(time.Hour)) // the start of a part
			s.add(7, t0.Add(2*time.Hour))
			s.expire(tt.now)
			if got := s.has(42); got != tt.want {
				t.Fatalf("has = %v, want %v", got, tt.want)
			}
			if s.has(8) {
				t.Fatal("has a hash never added")
			}
			if !s.has(7) && tt.now.Before(t0.Add(2*time.Hour+window)) {
				t.Fatal("forgot a hash within its window")
			}
		})
	}
}

// dedupRecords counts the u/ keys, group records and the hashes they hold.
func dedupRecords(t *testing.T, c *CDP) (keys, hashes int) {
	t.Helper()
	err := c.store.View(context.Background(), func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixDedup), store.ScanOptions{}, func(k, v []byte) error {
			keys++
			if _, _, group, _ := store.ParseDedupKey(k); group {
				hashes += len(v) / 16
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, hashes
}

func TestDedupIsDurableAndExpires(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Ingest.DedupWindow = Duration(24 * time.Hour)
	if err := Init(ctx, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	clock := fixedNow
	open := func() *CDP {
		c, err := Open(ctx, cfg, Options{Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	batch := make([]event.Message, 100)
	for i := range batch {
		batch[i] = msg(t, event.Track, fmt.Sprintf(`{"messageId":"m-%d","userId":"u-%d","event":"X"}`, i, i%7))
	}
	c := open()
	if res, err := c.Ingest(ctx, batch); err != nil || res.Accepted != 100 {
		t.Fatalf("first: %+v, %v", res, err)
	}
	// One record for the group, not one marker per message.
	if keys, hashes := dedupRecords(t, c); keys != 1 || hashes != 100 {
		t.Fatalf("dedup records: %d keys holding %d hashes, want 1 holding 100", keys, hashes)
	}
	_ = c.Close()

	steps := []struct {
		name     string
		advance  time.Duration
		reopen   bool
		loaded   int // hashes held after the restart
		accepted int
	}{
		{"after a restart, within the window", time.Hour, true, 100, 0},
		{"same process, within the window", 20 * time.Hour, false, 0, 0},
		{"same process, after the window", 10 * time.Hour, false, 0, 100},
		{"after a restart, the new copies remembered", time.Minute, true, 100, 0},
		{"after a restart past the window", 31 * time.Hour, true, 0, 100},
	}
	c = open()
	defer func() { _ = c.Close() }()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock = clock.Add(s.advance)
			if s.reopen {
				_ = c.Close()
				c = open()
				// Records past the window are not loaded, even while
				// the store still holds them.
				if c.seen.n != s.loaded {
					t.Fatalf("%d hashes loaded, want %d", c.seen.n, s.loaded)
				}
			}
			res, err := c.Ingest(ctx, batch)
			if err != nil || res.Accepted != s.accepted || res.Duplicates != 100-s.accepted {
				t.Fatalf("%+v, %v; want %d accepted", res, err, s.accepted)
			}
		})
	}
}

func TestDedupReadsPerMessageMarkers(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	c := openTest(t, cfg)
	// A store written before group records: one empty marker per message.
	m := msg(t, event.Track, `{"messageId":"legacy","userId":"u","event":"X"}`)
	key := append([]byte(store.PrefixDedup), c.hasher.Sum("message_id", "legacy")...)
	if err := c.store.Update(ctx, func(tx *store.Txn) error {
		return tx.SetWithTTL(key, nil, time.Hour)
	}); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	c = openTest(t, cfg)
	if res, err := c.Ingest(ctx, []event.Message{m}); err != nil || res.Duplicates != 1 {
		t.Fatalf("%+v, %v; want the marker's message a duplicate", res, err)
	}
}

// Concurrent senders of the same messages: each is stored once, whether its
// copies meet in one group, in the group in flight and the next, or in a
// later group.
func TestDedupUnderConcurrentRetries(t *testing.T) {
	ctx := context.Background()
	c := openTest(t, testConfig(t))
	const senders, ids = 8, 200
	var mu sync.Mutex
	var total IngestResult
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := 0; off < ids; off += 10 {
				var batch []event.Message
				for i := range 10 {
					id := (off + i + s*37) % ids
					batch = append(batch, msg(t, event.Track, fmt.Sprintf(`{"messageId":"r-%d","userId":"u-%d","event":"X"}`, id, id%13)))
				}
				res, err := c.Ingest(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				total.add(res)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if total.Accepted != ids || total.Duplicates != ids*(senders-1) {
		t.Fatalf("accepted %d, duplicates %d; want %d and %d", total.Accepted, total.Duplicates, ids, ids*(senders-1))
	}
	events := 0
	for u := range 13 {
		p, err := c.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: fmt.Sprintf("u-%d", u)}, ShowOptions{})
		if err != nil {
			t.Fatal(err)
		}
		events += p.EventCount
	}
	if events != ids {
		t.Fatalf("%d events stored, want %d", events, ids)
	}
}

// The open-addressing set agrees with a map through its growth.
func TestHashSetAgreesWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 767, 768, 769, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var s hashSet
			want := map[uint64]bool{}
			for range n {
				h := rng.Uint64()
				if h%5 == 0 {
					h %= 4 // small values, 0 among them, and repeats
				}
				isNew := s.add(h)
				if h == 0 {
					h = 1 // stored as 1: the two are one hash to the set
				}
				if isNew == want[h] {
					t.Fatalf("add(%d) = %v with the map holding it: %v", h, isNew, want[h])
				}
				want[h] = true
			}
			if s.n != len(want) {
				t.Fatalf("n = %d, want %d", s.n, len(want))
			}
			for h := range want {
				if !s.has(h) {
					t.Fatalf("lost %d", h)
				}
			}
			for range 10_000 {
				if h := rng.Uint64() | 1<<63; !want[h] && s.has(h) {
					t.Fatalf("has %d, never added", h)
				}
			}
		})
	}
}
