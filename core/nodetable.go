package core

import (
	"sync"

	"github.com/google/uuid"
)

// The node table: what evaluation keeps in memory of each node, its gate
// inputs (gatecache.go) and its event digest (aggregate.go), in one map
// under one lock. They were two maps under two locks: a person's node cost
// two lookups in maps of a million entries and more, each a cache miss,
// and two read locks whose shared counters the workers bounced between
// cores; together that was a fifth of a million-profile evaluation. Now a
// node costs one lookup, and a scan looks up a batch of people under one
// read lock (fetch), where the lookups, independent of each other, overlap
// their misses.
//
// The two kinds of entry keep their own rules (which commit writes them
// through, which build may be cached, what drops them): gateCache and
// aggregates own them, each with its own builds, and both take this lock.
type nodeTable struct {
	mu sync.RWMutex
	m  map[uuid.UUID]nodeEntry
}

// nodeEntry is one node's entries; nil is "not in memory".
type nodeEntry struct {
	gate *gateNode
	dig  digest
}

func newNodeTable() *nodeTable {
	return &nodeTable{m: map[uuid.UUID]nodeEntry{}}
}

// The setters and droppers run with t.mu held for writing. A node with
// neither entry leaves the map.

func (t *nodeTable) setGate(pid uuid.UUID, n *gateNode) {
	e := t.m[pid]
	e.gate = n
	t.m[pid] = e
}

func (t *nodeTable) setDigest(pid uuid.UUID, d digest) {
	e := t.m[pid]
	e.dig = d
	t.m[pid] = e
}

func (t *nodeTable) dropGate(pid uuid.UUID) {
	if e, ok := t.m[pid]; ok {
		t.put(pid, nodeEntry{dig: e.dig})
	}
}

func (t *nodeTable) dropDigest(pid uuid.UUID) {
	if e, ok := t.m[pid]; ok {
		t.put(pid, nodeEntry{gate: e.gate})
	}
}

func (t *nodeTable) put(pid uuid.UUID, e nodeEntry) {
	if e.gate == nil && e.dig == nil {
		delete(t.m, pid)
		return
	}
	t.m[pid] = e
}

// fetchViews fills the gate inputs and digests of a batch of a scan's
// views from memory, under one read lock (see above); what is not in
// memory stays nil, for the view to build on first use. names is the
// digests' name list (aggregates.list), read under the same lock.
func (t *nodeTable) fetchViews(views []*personView, a *aggregates) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	names := a.list
	for _, pv := range views {
		pv.fetchLocked(t, names)
	}
}
