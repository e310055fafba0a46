package core

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// ringCache is a map bounded by FIFO eviction over a ring: cheap, and a
// miss only costs a store read. Its keys and values are fixed-size and
// pointer-free, so the garbage collector never scans its entries (with
// string keys it marked the caches' million entries on every cycle).
type ringCache[K comparable, V any] struct {
	m    map[K]V
	ring []K
	next int
	full bool
}

func newRingCache[K comparable, V any](size int) *ringCache[K, V] {
	return &ringCache[K, V]{m: make(map[K]V, size), ring: make([]K, size)}
}

func (c *ringCache[K, V]) get(k K) (V, bool) {
	v, ok := c.m[k]
	return v, ok
}

// remove forgets k (its ring slot is reused later).
func (c *ringCache[K, V]) remove(k K) { delete(c.m, k) }

func (c *ringCache[K, V]) put(k K, v V) {
	if _, ok := c.m[k]; ok {
		c.m[k] = v
		return
	}
	if c.full {
		delete(c.m, c.ring[c.next])
	}
	c.ring[c.next] = k
	c.m[k] = v
	if c.next = (c.next + 1) % len(c.ring); c.next == 0 {
		c.full = true
	}
}

// idCache maps identifier index keys to profile ids. Only the committer
// goroutine reads or writes it, and the committer is the only writer of the
// identifier index, so it is coherent with the store without locks. It is
// keyed by the keyed hash that ends every index key (32 bytes; the hash
// covers the identifier's type, so it names the key alone).
type idCache struct {
	c *ringCache[[32]byte, uuid.UUID]
}

func newIDCache(size int) *idCache { return &idCache{newRingCache[[32]byte, uuid.UUID](size)} }

func (c *idCache) get(k []byte) (uuid.UUID, bool) {
	if len(k) < 32 {
		return uuid.Nil, false
	}
	return c.c.get([32]byte(k[len(k)-32:]))
}

func (c *idCache) remove(k []byte) {
	if len(k) >= 32 {
		c.c.remove([32]byte(k[len(k)-32:]))
	}
}

func (c *idCache) put(k []byte, p uuid.UUID) {
	if len(k) >= 32 {
		c.c.put([32]byte(k[len(k)-32:]), p)
	}
}

// obsCache remembers the order key of observations already recorded, so
// that the many messages repeating one pair of identifiers (every event of
// a signed-in session) cost no store read. Committer-owned, like idCache;
// keyed by the observation's 16-byte hash.
type obsCache struct {
	c *ringCache[[16]byte, identity.ObsKey]
}

func newObsCache(size int) *obsCache {
	return &obsCache{newRingCache[[16]byte, identity.ObsKey](size)}
}

func (c *obsCache) get(h []byte) (identity.ObsKey, bool) {
	if len(h) != 16 {
		return identity.ObsKey{}, false
	}
	return c.c.get([16]byte(h))
}

func (c *obsCache) put(h []byte, v identity.ObsKey) {
	if len(h) == 16 {
		c.c.put([16]byte(h), v)
	}
}

// bloom is a Bloom filter over keys the committer alone writes (identifier
// index entries, observations). A "no" is certain, so
// something new costs no store read; a "maybe" is checked against the
// store. Only the committer touches it. The keys end in keyed hashes, so
// their bytes serve as the filter's hashes (double hashing on 16 bytes).
type bloom struct {
	bits     []uint64
	m        uint64
	n, limit int
}

const bloomHashes = 7

func newBloom(capacity int) *bloom {
	m := uint64(capacity) * 10 // ~1% false positives at capacity with 7 hashes
	return &bloom{bits: make([]uint64, (m+63)/64), m: m, limit: capacity}
}

func (f *bloom) positions(h []byte, fn func(uint64) bool) bool {
	h1 := binary.LittleEndian.Uint64(h[:8])
	h2 := binary.LittleEndian.Uint64(h[8:16]) | 1
	for i := uint64(0); i < bloomHashes; i++ {
		if !fn((h1 + i*h2) % f.m) {
			return false
		}
	}
	return true
}

func (f *bloom) mayContain(h []byte) bool {
	return f.positions(h, func(p uint64) bool { return f.bits[p/64]&(1<<(p%64)) != 0 })
}

func (f *bloom) add(h []byte) {
	f.positions(h, func(p uint64) bool { f.bits[p/64] |= 1 << (p % 64); return true })
	f.n++
}

func (f *bloom) full() bool { return f.n >= f.limit }

// loadBloom fills a filter with the hashes (16+ bytes) that hashes finds
// in each record under prefix (values are read only when withValues),
// growing it when the store holds more than it was sized for.
func (c *CDP) loadBloom(ctx context.Context, prefix []byte, capacity int, withValues bool, hashes func(k, v []byte, add func(h []byte)) error) (*bloom, error) {
	for {
		f := newBloom(capacity)
		add := func(h []byte) {
			if len(h) >= 16 {
				f.add(h)
			}
		}
		err := c.store.View(ctx, func(tx *store.Txn) error {
			return tx.Scan(prefix, store.ScanOptions{KeysOnly: !withValues}, func(k, v []byte) error {
				return hashes(k, v, add)
			})
		})
		if err != nil {
			return nil, err
		}
		if !f.full() {
			return f, nil
		}
		capacity = f.n * 2
	}
}

// identifierHash is the keyed hash at the end of an i/ key.
func identifierHash(k []byte) []byte {
	if len(k) < 32 {
		return nil
	}
	return k[len(k)-32:]
}

// observationHashes adds the hash of every observation in an o/ list.
func observationHashes(k, v []byte, add func([]byte)) error {
	if err := walkObs(v, func(e obsEntry) bool { add(e.hash); return true }); err != nil {
		return fmt.Errorf("observations under %x: %w", k, err)
	}
	return nil
}

// loadFilters builds the committer's filters from the store (at Open, and
// again when one outgrows its size).
func (c *CDP) loadFilters(ctx context.Context) error {
	var err error
	if c.idFilter, err = c.loadBloom(ctx, []byte(store.PrefixIdentifier), c.cfg.Ingest.DedupFilterCapacity, false,
		func(k, _ []byte, add func([]byte)) error { add(identifierHash(k)); return nil }); err != nil {
		return err
	}
	c.obsFilter, err = c.loadBloom(ctx, []byte(store.PrefixObs), c.cfg.Ingest.DedupFilterCapacity, true, observationHashes)
	return err
}
