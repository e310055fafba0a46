package keys

import (
	"crypto/cipher"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// aeadCache maps profile ids to their unwrapped DEK's AEAD. It is split into
// shards, each a fixed-capacity CLOCK (second-chance) cache: a hit takes the
// shard's read lock and sets a reference bit atomically, so concurrent
// sealers of cached profiles never serialise on a write lock.
type aeadCache struct {
	shards []cacheShard
	mask   uint64
	// gen is bumped by every Shred before it evicts; a loader that read
	// the DEK under an older generation does not insert it (it might be a
	// key that was shredded meanwhile).
	gen atomic.Uint64
}

type cacheShard struct {
	mu    sync.RWMutex
	idx   map[uuid.UUID]int
	slots []cacheSlot
	hand  int
	cap   int
	_     [56]byte // pad to 128 bytes: shards on separate cache lines
}

type cacheSlot struct {
	pid  uuid.UUID
	aead cipher.AEAD
	ref  atomic.Uint32
}

func newAEADCache(size int) *aeadCache {
	n := 64
	for n > 1 && size/n < 16 {
		n /= 2
	}
	per := (size + n - 1) / n
	c := &aeadCache{shards: make([]cacheShard, n), mask: uint64(n - 1)}
	for i := range c.shards {
		c.shards[i].idx = make(map[uuid.UUID]int)
		c.shards[i].cap = max(per, 1)
	}
	return c
}

func (c *aeadCache) shard(pid uuid.UUID) *cacheShard {
	// The low bytes of a UUID (v4 or v7) are random.
	return &c.shards[binary.LittleEndian.Uint64(pid[8:])&c.mask]
}

func (c *aeadCache) get(pid uuid.UUID) cipher.AEAD {
	s := c.shard(pid)
	s.mu.RLock()
	i, ok := s.idx[pid]
	var a cipher.AEAD
	if ok {
		sl := &s.slots[i]
		if sl.ref.Load() == 0 {
			sl.ref.Store(1)
		}
		a = sl.aead
	}
	s.mu.RUnlock()
	return a
}

// generation returns the value to pass to putIfGen.
func (c *aeadCache) generation() uint64 { return c.gen.Load() }

// putIfGen inserts pid unless a Shred started since gen was read.
func (c *aeadCache) putIfGen(pid uuid.UUID, a cipher.AEAD, gen uint64) {
	s := c.shard(pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if i, ok := s.idx[pid]; ok {
		s.slots[i].aead = a
		s.slots[i].ref.Store(1)
		return
	}
	if len(s.slots) < s.cap {
		s.slots = append(s.slots, cacheSlot{pid: pid, aead: a})
		s.idx[pid] = len(s.slots) - 1
		return
	}
	// CLOCK: skip (and clear) recently used slots, evict the first one
	// that was not touched since the hand last passed.
	for {
		if s.hand >= len(s.slots) {
			s.hand = 0
		}
		sl := &s.slots[s.hand]
		if sl.ref.Load() != 0 {
			sl.ref.Store(0)
			s.hand++
			continue
		}
		delete(s.idx, sl.pid)
		sl.pid, sl.aead = pid, a
		s.idx[pid] = s.hand
		s.hand++
		return
	}
}

// beginEvict bumps the generation; call it after the deletion is committed
// and before remove, so that concurrent loaders cannot re-insert.
func (c *aeadCache) beginEvict() { c.gen.Add(1) }

func (c *aeadCache) remove(pid uuid.UUID) {
	s := c.shard(pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.idx[pid]
	if !ok {
		return
	}
	delete(s.idx, pid)
	last := len(s.slots) - 1
	if i != last {
		s.slots[i].pid = s.slots[last].pid
		s.slots[i].aead = s.slots[last].aead
		s.slots[i].ref.Store(s.slots[last].ref.Load())
		s.idx[s.slots[i].pid] = i
	}
	s.slots[last].aead = nil
	s.slots = s.slots[:last]
}

// clear drops every entry (Close).
func (c *aeadCache) clear() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.idx)
		clear(s.slots)
		s.slots = s.slots[:0]
		s.hand = 0
		s.mu.Unlock()
	}
}

func (c *aeadCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.slots)
		s.mu.RUnlock()
	}
	return n
}
