package core

import (
	"encoding/binary"
	"math/bits"
	"sync"

	"github.com/google/uuid"
)

// The node table: what evaluation keeps in memory of each node, its gate
// inputs (gatecache.go), its event digest (aggregate.go) and its cluster
// (clustercache.go), in one table under one lock. The first two were two
// maps under two locks: a person's node cost two lookups in maps of a
// million entries and more, each a cache miss, and two read locks whose
// shared counters the workers bounced between cores; together that was a
// fifth of a million-profile evaluation. Now a node costs one lookup, and a
// scan looks up a batch of people under one read lock (fetchViews), where
// the lookups, independent of each other, overlap their misses. A slot is
// 64 bytes, one cache line.
//
// The kinds of entry keep their own rules (which commit writes them
// through, which build may be cached, what drops them): gateCache,
// aggregates and clusterCache own them, and all take this lock.
//
// The table is open addressing with linear probing over slots that hold
// the entries themselves, not a Go map: a lookup is one cache miss, not a
// group's control word and then its slot, and a batch can touch all its
// slots first (fetchViews), which a Go map gives no way to do. It is cut
// into shards by the top bits of the hash, each growing on its own, so
// that growth never holds two copies of the whole table (a million
// people's nodes fill a few hundred MB of slots).
type nodeTable struct {
	mu     sync.RWMutex
	shards [1 << nodeShardBits]nodeShard
	n      int
}

const (
	nodeShardBits = 8
	minShardSlots = 8
)

// nodeShard is one shard: a power of two of slots, at most 3/4 full.
type nodeShard struct {
	slots []nodeSlot
	n     int
	shift uint // 64 - log2(len(slots))
}

// nodeSlot is one node's entries (nil: not in memory); id uuid.Nil is an
// empty slot (no node has the nil id).
type nodeSlot struct {
	id   uuid.UUID
	gate *gateNode
	dig  digest
	// link is the next member of the node's cluster ring, tagged when it
	// is the root (clustercache.go); uuid.Nil when not in memory.
	link uuid.UUID
}

// empty: the slot holds no entry of any kind.
func (sl *nodeSlot) empty() bool {
	return sl.gate == nil && sl.dig == nil && sl.link == uuid.Nil
}

func newNodeTable() *nodeTable {
	t := &nodeTable{}
	for i := range t.shards {
		t.shards[i].setSize(minShardSlots)
	}
	return t
}

// nodeHash is Fibonacci hashing of both halves of id, so that ids of any
// version spread (profile ids are version 7: their first half is a
// clock). Its top bits pick the shard, the next ones the home slot.
func nodeHash(id uuid.UUID) uint64 {
	x := binary.LittleEndian.Uint64(id[:8]) ^ binary.LittleEndian.Uint64(id[8:])
	return x * 0x9e3779b97f4a7c15
}

func (t *nodeTable) shard(h uint64) *nodeShard { return &t.shards[h>>(64-nodeShardBits)] }

func (s *nodeShard) setSize(n int) {
	s.slots = make([]nodeSlot, n)
	s.shift = uint(64 - bits.TrailingZeros(uint(n)))
}

// home is the first slot of a node of hash h.
func (s *nodeShard) home(h uint64) int { return int((h << nodeShardBits) >> s.shift) }

// find returns id's slot, or the empty slot where it would go.
func (s *nodeShard) find(id uuid.UUID, h uint64) (int, bool) {
	mask := len(s.slots) - 1
	for i := s.home(h); ; i = (i + 1) & mask {
		switch s.slots[i].id {
		case id:
			return i, true
		case uuid.Nil:
			return i, false
		}
	}
}

// lookup returns id's slot, or nil; valid until the table is next written
// (t.mu held). The nil id, which marks empty slots, is never in the table.
func (t *nodeTable) lookup(id uuid.UUID) *nodeSlot {
	if id == uuid.Nil {
		return nil
	}
	h := nodeHash(id)
	s := t.shard(h)
	if i, ok := s.find(id, h); ok {
		return &s.slots[i]
	}
	return nil
}

// get returns a copy of id's slot, empty if it has none (t.mu held).
func (t *nodeTable) get(id uuid.UUID) nodeSlot {
	if s := t.lookup(id); s != nil {
		return *s
	}
	return nodeSlot{}
}

// len is how many nodes have an entry (t.mu held).
func (t *nodeTable) len() int { return t.n }

// ids returns the nodes that have an entry (t.mu held).
func (t *nodeTable) ids() []uuid.UUID {
	out := make([]uuid.UUID, 0, t.n)
	for i := range t.shards {
		for _, sl := range t.shards[i].slots {
			if sl.id != uuid.Nil {
				out = append(out, sl.id)
			}
		}
	}
	return out
}

// slot returns id's slot, adding an empty one if needed (t.mu held for
// writing).
func (t *nodeTable) slot(id uuid.UUID) *nodeSlot {
	h := nodeHash(id)
	s := t.shard(h)
	i, ok := s.find(id, h)
	if !ok {
		if (s.n+1)*4 > len(s.slots)*3 {
			s.resize(len(s.slots) * 2)
			i, _ = s.find(id, h)
		}
		s.slots[i].id = id
		s.n++
		t.n++
	}
	return &s.slots[i]
}

// resize moves the shard's entries into n slots.
func (s *nodeShard) resize(n int) {
	old := s.slots
	s.setSize(n)
	for i := range old {
		if id := old[i].id; id != uuid.Nil {
			j, _ := s.find(id, nodeHash(id))
			s.slots[j] = old[i]
		}
	}
}

// The setters and droppers run with t.mu held for writing. A node with
// no entry left leaves the table; the nil id is never stored (it marks
// empty slots, and no node has it).

func (t *nodeTable) setGate(pid uuid.UUID, n *gateNode) {
	if pid == uuid.Nil {
		return
	}
	if n == nil {
		t.dropGate(pid)
		return
	}
	t.slot(pid).gate = n
}

func (t *nodeTable) setDigest(pid uuid.UUID, d digest) {
	if pid == uuid.Nil {
		return
	}
	if d == nil {
		t.dropDigest(pid)
		return
	}
	t.slot(pid).dig = d
}

func (t *nodeTable) dropGate(pid uuid.UUID) {
	t.drop(pid, func(sl *nodeSlot) { sl.gate = nil })
}

func (t *nodeTable) dropDigest(pid uuid.UUID) {
	t.drop(pid, func(sl *nodeSlot) { sl.dig = nil })
}

// drop clears one kind of pid's entries with clear, and empties its slot
// once it holds none.
func (t *nodeTable) drop(pid uuid.UUID, clear func(*nodeSlot)) {
	if pid == uuid.Nil {
		return
	}
	h := nodeHash(pid)
	s := t.shard(h)
	i, ok := s.find(pid, h)
	if !ok {
		return
	}
	if clear(&s.slots[i]); s.slots[i].empty() {
		s.remove(i)
		t.n--
	}
}

// remove empties slot i, moving back the later slots of its run that
// would no longer be found (deletion without tombstones), and shrinks a
// shard that has become mostly empty (an erasure of many people).
func (s *nodeShard) remove(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j].id != uuid.Nil; j = (j + 1) & mask {
		// Slot j's entry may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if h := s.home(nodeHash(s.slots[j].id)); (j-h)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = nodeSlot{}
	s.n--
	if len(s.slots) > minShardSlots && s.n*8 < len(s.slots) {
		s.resize(len(s.slots) / 2)
	}
}

// fetchViews fills the gate inputs and digests of a batch of a scan's
// views from memory, and their name list from a (aggregates.list), under
// one read lock (see above); what is not in memory stays nil, for the
// view to build on first use.
//
// It first touches every member's home slot, and then, looking them up,
// every entry's gate input and digest: loads that depend on nothing
// before them, so the processor has many misses in flight at once instead
// of one after another. The sum of what they read is returned for the
// caller to keep, so that no load is optimised away.
func (t *nodeTable) fetchViews(views []*personView, a *aggregates) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var sum uint64
	for _, pv := range views {
		for _, m := range pv.members {
			h := nodeHash(m)
			s := t.shard(h)
			sum += uint64(s.slots[s.home(h)].id[0])
		}
	}
	names := a.list
	for _, pv := range views {
		pv.fetchLocked(t, names)
		for i := range pv.gnodes {
			if g := pv.gnodes[i]; g != nil {
				sum += uint64(len(g.states))
			}
			if d := pv.digests[i]; len(d) > 0 {
				sum += uint64(d[0])
			}
		}
	}
	return sum
}
