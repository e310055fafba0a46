package core

import (
	"context"
	"encoding/binary"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// idCache maps identifier index keys to profile ids. Only the committer
// goroutine reads or writes it, and the committer is the only writer of the
// identifier index, so it is coherent with the store without locks.
// Eviction is FIFO over a ring: cheap, and a miss only costs a store read.
type idCache struct {
	m    map[string]uuid.UUID
	ring []string
	next int
}

func newIDCache(size int) *idCache {
	return &idCache{m: make(map[string]uuid.UUID, size), ring: make([]string, size)}
}

func (c *idCache) get(k []byte) (uuid.UUID, bool) {
	p, ok := c.m[string(k)]
	return p, ok
}

func (c *idCache) put(k []byte, p uuid.UUID) {
	if _, ok := c.m[string(k)]; ok {
		c.m[string(k)] = p
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.m, old)
	}
	s := string(k)
	c.ring[c.next] = s
	c.m[s] = p
	c.next = (c.next + 1) % len(c.ring)
}

// obsCache remembers the order key of observations already recorded, so
// that the many messages repeating one pair of identifiers (every event of
// a signed-in session) cost no store read. Committer-owned, like idCache.
type obsCache struct {
	m    map[string]identity.ObsKey
	ring []string
	next int
}

func newObsCache(size int) *obsCache {
	return &obsCache{m: make(map[string]identity.ObsKey, size), ring: make([]string, size)}
}

func (c *obsCache) get(k []byte) (identity.ObsKey, bool) {
	v, ok := c.m[string(k)]
	return v, ok
}

func (c *obsCache) put(k []byte, v identity.ObsKey) {
	if _, ok := c.m[string(k)]; ok {
		c.m[string(k)] = v
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.m, old)
	}
	s := string(k)
	c.ring[c.next] = s
	c.m[s] = v
	c.next = (c.next + 1) % len(c.ring)
}

// dedupFilter is a Bloom filter over the live messageId markers (u/ keys).
// A "no" is certain, so a new messageId costs no store read; a "maybe" is
// checked against the store. Only the committer touches it. The keys are
// already HMAC outputs, so their bytes serve as the filter's hashes.
type dedupFilter struct {
	bits     []uint64
	m        uint64
	n, limit int
}

const dedupHashes = 7

func newDedupFilter(capacity int) *dedupFilter {
	m := uint64(capacity) * 10 // ~1% false positives at capacity with 7 hashes
	return &dedupFilter{bits: make([]uint64, (m+63)/64), m: m, limit: capacity}
}

func (f *dedupFilter) positions(h []byte, fn func(uint64) bool) bool {
	// h is 32 bytes of HMAC output: seven 4-byte windows as hashes.
	for i := 0; i < dedupHashes; i++ {
		if !fn(uint64(binary.LittleEndian.Uint32(h[i*4:])) % f.m) {
			return false
		}
	}
	return true
}

func (f *dedupFilter) mayContain(h []byte) bool {
	return f.positions(h, func(p uint64) bool { return f.bits[p/64]&(1<<(p%64)) != 0 })
}

func (f *dedupFilter) add(h []byte) {
	f.positions(h, func(p uint64) bool { f.bits[p/64] |= 1 << (p % 64); return true })
	f.n++
}

func (f *dedupFilter) full() bool { return f.n >= f.limit }

// loadDedupFilter fills a filter from the markers in the store (expired
// ones are not returned by Badger). It runs at Open and when the filter has
// taken more entries than it was sized for.
func (c *CDP) loadDedupFilter(ctx context.Context) error {
	f := newDedupFilter(c.cfg.Ingest.DedupFilterCapacity)
	prefix := []byte(store.PrefixDedup)
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan(prefix, store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			if h := k[len(prefix):]; len(h) >= dedupHashes*4 {
				f.add(h)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if f.full() {
		// More live markers than capacity: grow rather than drown in
		// false positives.
		c.cfg.Ingest.DedupFilterCapacity = f.n * 2
		return c.loadDedupFilter(ctx)
	}
	c.dedup = f
	return nil
}
