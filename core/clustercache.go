package core

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// Clusters in memory: every cluster's members (n/<root>), and so every
// node's root, kept in the node table (nodetable.go) so that the live
// update finds the person of each node it is given without two point
// reads (m/<pid>, then n/<root>), which missed Badger's block cache about
// half the time and were half of the update at a million profiles
// (docs/benchmarks.md, session 16).
//
// The store tells the cache of every change to n/ (store.Options.Watch):
// each commit's final values, in commit order, before the commit becomes
// visible. So a cluster the store's commits wrote is always in memory as
// last committed, and a reader whose snapshot is older than the cache
// meets a newer cluster than its snapshot, never an older one. Readers
// fill what is missing from their own snapshot (clusters written before
// Open). A fill never replaces a cluster in memory (which is at least as
// new), and is refused when a cluster was erased after its snapshot
// (dropped): an erased cluster is absent, like one never filled, and the
// fill would bring it back. The memory may be newer than a reader's
// snapshot: the live update looks its people up first, then takes its
// snapshot after store.Settle, so that every node of a cluster it found
// in memory is in the snapshot.
//
// A cluster is a ring through its members' slots (slot.link, in the order
// of the list): no allocation per cluster and no pointer for the collector
// to follow, 16 bytes per node. The link into the root is tagged, so a
// node's root is found by walking its ring. The tag is the bit that turns
// an RFC 4122 variant (10) into a reserved one (11): profile ids are
// version 7 (or 4) UUIDs, and a cluster with a member that is not one is
// not cached.
//
// m/<pid> is not watched: every node is a member of exactly one n/ list
// (its root's), and a commit that changes a node's root rewrites both
// lists, so the rings say all that m/ says about roots.

// clusterCache holds the clusters of the node table, under its lock. Safe
// for concurrent use.
type clusterCache struct {
	t       *nodeTable
	dropped uint64 // guarded by t.mu: the last commit that erased a cluster (or wrote one that could not be linked)
}

func newClusterCache(t *nodeTable) *clusterCache { return &clusterCache{t: t} }

// committed applies a commit's changes to n/ (store.Options.OnCommit).
// The old rings of every cluster written go first, then the new ones are
// linked: a commit that merges two clusters deletes one list and rewrites
// the other, in any order. A deleted cluster whose members are in no ring
// afterwards (an erasure), or a list that cannot be linked, moves dropped:
// a fill from before would bring it back. A cluster merged away needs no
// mark: its members are in the new ring, which a fill never overwrites.
func (cc *clusterCache) committed(ts uint64, changes []store.Change) {
	if !slices.ContainsFunc(changes, func(ch store.Change) bool { _, ok := clusterKeyPID(ch.Key); return ok }) {
		return
	}
	t := cc.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range changes {
		if root, ok := clusterKeyPID(ch.Key); ok {
			t.unlinkRing(root)
		}
	}
	for _, ch := range changes {
		if root, ok := clusterKeyPID(ch.Key); ok && !ch.Deleted {
			ms, err := memberPIDs(ch.Value, nil)
			if err != nil || !t.linkRing(root, ms) {
				cc.dropped = max(cc.dropped, ts) // readers read it, and fail
			}
		}
	}
	for _, ch := range changes {
		if root, ok := clusterKeyPID(ch.Key); ok && ch.Deleted {
			if sl := t.lookup(root); sl == nil || sl.link == uuid.Nil {
				cc.dropped = max(cc.dropped, ts)
			}
		}
	}
}

// clusterKeyPID is the root of an n/ key.
func clusterKeyPID(key []byte) (uuid.UUID, bool) {
	p := store.PrefixCluster
	if len(key) != len(p)+16 || !bytes.HasPrefix(key, []byte(p)) {
		return uuid.Nil, false
	}
	return uuid.UUID(key[len(p):]), true
}

// people looks up the people of nodes, under one read lock: their roots
// (each once, in the order of their first node) with the members of each,
// as readRoots returns them; ok is false if a node's cluster is not in
// memory.
func (cc *clusterCache) people(nodes []uuid.UUID) (map[uuid.UUID][]uuid.UUID, []uuid.UUID, bool) {
	roots := make(map[uuid.UUID][]uuid.UUID, len(nodes))
	order := make([]uuid.UUID, 0, len(nodes))
	// The nodes of the rings found, so that a cluster is walked once
	// however many of its nodes were touched.
	seen := make(map[uuid.UUID]struct{}, len(nodes))
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	for _, n := range nodes {
		if _, ok := seen[n]; ok {
			continue
		}
		r := cc.t.rootOf(n)
		if r == uuid.Nil {
			return nil, nil, false
		}
		ms := cc.t.ring(r)
		if ms == nil {
			return nil, nil, false
		}
		for _, m := range ms {
			seen[m] = struct{}{}
		}
		roots[r] = ms
		order = append(order, r)
	}
	return roots, order, true
}

// isRoot says whether root's cluster is in memory with root as its root.
func (cc *clusterCache) isRoot(root uuid.UUID) bool {
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	return cc.t.rootOf(root) == root
}

// fill caches the clusters (root: members) a reader read at snapshot ts
// (see above for when that is refused). A cluster is absent when none of
// its members is in a ring: a member in one is in a newer cluster.
// It returns how many clusters it linked.
func (cc *clusterCache) fill(ts uint64, clusters map[uuid.UUID][]uuid.UUID) int {
	t := cc.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if ts < cc.dropped {
		return 0
	}
	n := 0
	for root, ms := range clusters {
		if !slices.ContainsFunc(ms, func(m uuid.UUID) bool {
			sl := t.lookup(m)
			return sl != nil && sl.link != uuid.Nil
		}) && t.linkRing(root, ms) {
			n++
		}
	}
	return n
}

// Ring links. The ring operations run with t.mu held (for writing, but
// rootOf and ring).

const (
	variantMask = 0xc0 // byte 8 of a UUID: its variant bits
	variantRFC  = 0x80 // RFC 4122 (10), which every profile id has
	rootTag     = 0x40 // set in a link (variant 11): it leads to the root
)

// maxRing bounds a walk: a ring longer than any cluster can be is a bug,
// and the reader reads the store instead.
const maxRing = maxComponent

// linkOf is the link to next, tagged when next is the root.
func linkOf(next uuid.UUID, toRoot bool) uuid.UUID {
	if toRoot {
		next[8] |= rootTag
	}
	return next
}

// follow returns the node a link leads to, and whether it is the root.
func follow(link uuid.UUID) (uuid.UUID, bool) {
	toRoot := link[8]&variantMask == variantRFC|rootTag
	link[8] &^= rootTag
	return link, toRoot
}

// rootOf returns x's root, walking its ring to the tagged link, or
// uuid.Nil if x is in no ring (or its ring is broken).
func (t *nodeTable) rootOf(x uuid.UUID) uuid.UUID {
	for range maxRing {
		sl := t.lookup(x)
		if sl == nil || sl.link == uuid.Nil {
			return uuid.Nil
		}
		next, toRoot := follow(sl.link)
		if toRoot {
			return next
		}
		x = next
	}
	return uuid.Nil
}

// ring returns root's members, sorted by pid as n/<root> lists them, or
// nil if root's cluster is not in memory (root in no ring, or in one
// whose root is another node).
func (t *nodeTable) ring(root uuid.UUID) []uuid.UUID {
	out := []uuid.UUID{}
	for x := root; ; {
		sl := t.lookup(x)
		if sl == nil || sl.link == uuid.Nil || len(out) >= maxRing {
			return nil
		}
		out = append(out, x)
		next, toRoot := follow(sl.link)
		if toRoot != (next == root) {
			return nil // root is not this ring's root
		}
		if toRoot {
			break
		}
		x = next
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// linkRing links root's members ms into one ring, unlinking first any
// ring a member is in (none, when the cache is consistent). A list
// without its root, or with an id that is not an RFC 4122 UUID (the tag
// would be ambiguous), is not linked (false).
func (t *nodeTable) linkRing(root uuid.UUID, ms []uuid.UUID) bool {
	for _, m := range ms {
		if sl := t.lookup(m); sl != nil && sl.link != uuid.Nil {
			t.unlinkRing(m)
		}
	}
	if !slices.Contains(ms, root) || slices.ContainsFunc(ms, func(m uuid.UUID) bool { return m[8]&variantMask != variantRFC }) {
		return false
	}
	for i, m := range ms {
		next := ms[(i+1)%len(ms)]
		t.slot(m).link = linkOf(next, next == root)
	}
	return true
}

// unlinkRing clears the ring through pid, if any.
func (t *nodeTable) unlinkRing(pid uuid.UUID) {
	for x, n := pid, 0; n <= maxRing; n++ {
		sl := t.lookup(x)
		if sl == nil || sl.link == uuid.Nil {
			return
		}
		next, _ := follow(sl.link)
		t.drop(x, func(sl *nodeSlot) { sl.link = uuid.Nil })
		if next == pid {
			return
		}
		x = next
	}
}

// warmClusters fills the cache with every cluster of the store, from one
// snapshot, in batches (the live updater reads from memory only when all
// the people of an update are there: readRoots). Open starts it when the
// live updater runs; Close stops it (ErrClosed).
func (c *CDP) warmClusters(ctx context.Context) error {
	const batch = 4096
	start := time.Now()
	n, filled := 0, 0
	err := c.store.View(ctx, func(tx *store.Txn) error {
		read := make(map[uuid.UUID][]uuid.UUID, batch)
		err := tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{Borrow: true}, func(k, v []byte) error {
			root, ok := clusterKeyPID(k)
			if !ok {
				return nil
			}
			ms, err := memberPIDs(v, nil)
			if err != nil {
				return nil // a reader of it fails, and says so
			}
			read[root] = ms
			if n++; len(read) == batch {
				filled += c.clusters.fill(tx.ReadTS(), read)
				clear(read)
				select {
				case <-c.stop:
					return ErrClosed
				default:
				}
			}
			return nil
		})
		filled += c.clusters.fill(tx.ReadTS(), read)
		return err
	})
	if err != nil {
		return fmt.Errorf("load clusters into memory: %w", err)
	}
	c.log.Debug("clusters loaded into memory", "read", n, "filled", filled, "seconds", time.Since(start).Seconds())
	return nil
}
