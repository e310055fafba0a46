package keys

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

func benchVault(b *testing.B, npids int) (*Vault, []uuid.UUID) {
	b.Helper()
	opts := testOptions(mustMaster(b, 1))
	opts.StoreOptions.MemTableSize = 16 << 20
	v := openVault(b, b.TempDir(), opts)
	pids := newPIDs(b, npids)
	if err := v.CreateDEKs(context.Background(), pids); err != nil {
		b.Fatal(err)
	}
	return v, pids
}

// BenchmarkSealCached seals a 600-byte value for a profile whose DEK is in
// the cache (the ingest hot path).
func BenchmarkSealCached(b *testing.B) {
	ctx := context.Background()
	v, pids := benchVault(b, 1024)
	value := bytes.Repeat([]byte("v"), 600)
	b.Run("serial", func(b *testing.B) {
		dst := make([]byte, 0, 1024)
		ad := store.ProfileKey(pids[0])
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p := pids[i&1023]
			var err error
			if dst, err = v.SealTo(ctx, dst[:0], p, ad, value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("alloc", func(b *testing.B) {
		ad := store.ProfileKey(pids[0])
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := v.Seal(ctx, pids[i&1023], ad, value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]byte, 0, 1024)
			ad := store.ProfileKey(pids[0])
			i := 0
			for pb.Next() {
				var err error
				if dst, err = v.SealTo(ctx, dst[:0], pids[i&1023], ad, value); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
}

func BenchmarkUnsealCached(b *testing.B) {
	ctx := context.Background()
	v, pids := benchVault(b, 1)
	ad := store.ProfileKey(pids[0])
	sealed, err := v.Seal(ctx, pids[0], ad, bytes.Repeat([]byte("v"), 600))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 1024)
	b.SetBytes(600)
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = v.UnsealTo(ctx, dst[:0], pids[0], ad, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnsealMiss measures a cache miss: read deks/ and unwrap.
func BenchmarkUnsealMiss(b *testing.B) {
	ctx := context.Background()
	opts := testOptions(mustMaster(b, 1))
	opts.CacheSize = 1
	v := openVault(b, b.TempDir(), opts)
	pids := newPIDs(b, 1024)
	if err := v.CreateDEKs(ctx, pids); err != nil {
		b.Fatal(err)
	}
	sealed := make([][]byte, len(pids))
	for i, p := range pids {
		sealed[i], _ = v.Seal(ctx, p, p[:], []byte("x"))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		j := i & 1023
		if _, err := v.Unseal(ctx, pids[j], pids[j][:], sealed[j]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateDEKs creates keys for a batch of 1000 new profiles: one
// transaction, one fsync.
func BenchmarkCreateDEKs(b *testing.B) {
	ctx := context.Background()
	v, _ := benchVault(b, 0)
	const batch = 1000
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		pids := newPIDs(b, batch)
		b.StartTimer()
		if err := v.CreateDEKs(ctx, pids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/dek")
}
