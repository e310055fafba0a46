package core

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"
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
// A full evaluation or sweep copies every cluster (list) instead of
// scanning n/, when memory holds them all (complete: the background load
// linked every cluster it read, and no commit since wrote one that could
// not be linked) and no commit changed one between the copy and the
// reader's snapshot (gen, sameAs).
//
// m/<pid> is not watched: every node is a member of exactly one n/ list
// (its root's), and a commit that changes a node's root rewrites both
// lists, so the rings say all that m/ says about roots.

// clusterCache holds the clusters of the node table, under its lock. Safe
// for concurrent use.
type clusterCache struct {
	t       *nodeTable
	dropped uint64 // guarded by t.mu: the last commit that erased a cluster (or wrote one that could not be linked)
	// The rest is guarded by t.mu too. gen counts the commits that
	// changed n/: clusters copied from memory at one gen are the store's
	// at every snapshot begun before gen moves (list). complete says every
	// cluster of the store is in memory: the background load (warmClusters)
	// linked all it read, and no commit since wrote a list that could not
	// be linked (broken counts those).
	gen      uint64
	complete bool
	broken   uint64
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
	cc.gen++
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
				cc.broken++
				cc.complete = false
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

// fill caches the clusters (root: members) a reader read at snapshot ts
// (see above for when that is refused). A cluster is absent when none of
// its members is in a ring: a member in one is in a newer cluster.
// It returns how many clusters it linked, and whether every cluster it
// was given is in memory now (linked, or newer already).
func (cc *clusterCache) fill(ts uint64, clusters map[uuid.UUID][]uuid.UUID) (int, bool) {
	t := cc.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if ts < cc.dropped {
		return 0, len(clusters) == 0
	}
	n, whole := 0, true
	for root, ms := range clusters {
		if slices.ContainsFunc(ms, func(m uuid.UUID) bool {
			sl := t.lookup(m)
			return sl != nil && sl.link != uuid.Nil
		}) {
			continue
		}
		if t.linkRing(root, ms) {
			n++
		} else {
			whole = false
		}
	}
	if n > 0 {
		cc.gen++ // a copy taken before does not have them (list)
	}
	return n, whole
}

// clusterList is every cluster in memory, copied at one gen, in parts
// (one per core that copied).
type clusterList struct {
	gen   uint64
	parts []clusterPart
}

// clusterPart is clusters copied by one goroutine: cluster i has the
// members members[ends[i-1]:ends[i]] (sorted, as n/ lists them), of which
// the rootAt[i]th is its root.
type clusterPart struct {
	members []uuid.UUID
	ends    []uint32
	rootAt  []uint32
	touched uint64 // what the batches' first loads read (copyShard)
}

// all yields every cluster's root and members (the list's array: read
// only).
func (l *clusterList) all() iter.Seq2[uuid.UUID, []uuid.UUID] {
	return func(yield func(uuid.UUID, []uuid.UUID) bool) {
		for i := range l.parts {
			p := &l.parts[i]
			lo := uint32(0)
			for j, hi := range p.ends {
				ms := p.members[lo:hi]
				if !yield(ms[p.rootAt[j]], ms) {
					return
				}
				lo = hi
			}
		}
	}
}

// list copies every cluster from memory, or returns nil when the memory
// does not hold every cluster of the store or a commit changed one during
// the copy. Each core copies a range of shards, a shard at a time under
// the read lock (a commit waits for one shard's walk, not the table's). A
// reader uses the copy instead of its snapshot's n/ when sameAs holds
// once its snapshot has begun after store.Settle (CDP.clusterList): a
// full evaluation then reads no cluster list (docs/benchmarks.md,
// session 17).
func (cc *clusterCache) list() *clusterList {
	t := cc.t
	t.mu.RLock()
	if !cc.complete {
		t.mu.RUnlock()
		return nil
	}
	l := &clusterList{gen: cc.gen, parts: make([]clusterPart, max(1, min(runtime.GOMAXPROCS(0), 8)))}
	per := t.n/len(l.parts) + 1
	t.mu.RUnlock()
	ok := make([]bool, len(l.parts))
	var wg sync.WaitGroup
	for w := range l.parts {
		wg.Go(func() {
			p := &l.parts[w]
			p.members = make([]uuid.UUID, 0, per)
			p.ends, p.rootAt = make([]uint32, 0, per), make([]uint32, 0, per)
			lo, hi := w*len(t.shards)/len(l.parts), (w+1)*len(t.shards)/len(l.parts)
			for i := lo; i < hi; i++ {
				t.mu.RLock()
				good := cc.gen == l.gen && cc.complete && p.copyShard(t, &t.shards[i])
				t.mu.RUnlock()
				if !good {
					return
				}
			}
			ok[w] = true
		})
	}
	wg.Wait()
	if slices.Contains(ok, false) {
		return nil
	}
	return l
}

// copyShard appends the clusters whose tagged link (the one into the
// root: one per ring) is in s; false if a ring is broken. A node alone
// is its own root: its cluster needs no lookup. The other roots are
// looked up a batch at a time, their slots touched first, so that the
// misses overlap (as nodeTable.fetchViews).
func (p *clusterPart) copyShard(t *nodeTable, s *nodeShard) bool {
	var batch [32]uuid.UUID
	n := 0
	walk := func() bool {
		for _, r := range batch[:n] {
			h := nodeHash(r)
			sh := t.shard(h)
			p.touched += uint64(sh.slots[sh.home(h)].id[0])
		}
		for _, r := range batch[:n] {
			if !p.ring(t, r) {
				return false
			}
		}
		n = 0
		return true
	}
	for i := range s.slots {
		link := s.slots[i].link
		if link == uuid.Nil {
			continue
		}
		root, toRoot := follow(link)
		switch {
		case !toRoot:
		case root == s.slots[i].id:
			p.members = append(p.members, root)
			p.end(len(p.members)-1, root)
		default:
			batch[n] = root
			if n++; n == len(batch) && !walk() {
				return false
			}
		}
	}
	return walk()
}

// ring appends root's cluster, walking its ring; false if it is broken.
func (p *clusterPart) ring(t *nodeTable, root uuid.UUID) bool {
	lo := len(p.members)
	for x := root; ; {
		sl := t.lookup(x)
		if sl == nil || sl.link == uuid.Nil || len(p.members)-lo >= maxRing {
			return false
		}
		p.members = append(p.members, x)
		next, last := follow(sl.link)
		if last {
			if next != root {
				return false
			}
			break
		}
		x = next
	}
	p.end(lo, root)
	return true
}

// end closes the cluster of root whose members were appended from lo:
// sorted, as n/ lists them.
func (p *clusterPart) end(lo int, root uuid.UUID) {
	ms := p.members[lo:]
	if len(ms) > 1 {
		slices.SortFunc(ms, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	}
	p.ends = append(p.ends, uint32(len(p.members)))
	p.rootAt = append(p.rootAt, uint32(slices.Index(ms, root)))
}

// clusterList copies every cluster from memory (nil when it cannot:
// clusterCache.list) and then settles the store, so that a snapshot begun
// afterwards holds every commit the copy does. The reader checks the copy
// inside that snapshot (sameAs).
//
// When memory does not hold every cluster (a list that could not be
// linked, an erasure during the load), the live updater is asked to load
// them again, so that full evaluations take them from memory again.
func (c *CDP) clusterList() *clusterList {
	l := c.clusters.list()
	if l != nil {
		c.store.Settle()
	} else if !c.clusters.isComplete() {
		c.live.clustersWanted()
	}
	return l
}

// isComplete says whether memory holds every cluster of the store.
func (cc *clusterCache) isComplete() bool {
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	return cc.complete
}

// sameAs returns l if no commit has changed a cluster since l was copied,
// else nil. Called once the reader's snapshot has begun (after
// CDP.clusterList's Settle): a commit in the snapshot was reported before
// it began, so l holds exactly the snapshot's clusters. Every commit's
// changes to n/ are reported before it is visible (store.Options.Watch):
// had one changed a cluster, gen would have moved.
func (l *clusterList) sameAs(cc *clusterCache) *clusterList {
	if l == nil {
		return nil
	}
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	if cc.gen != l.gen {
		return nil
	}
	return l
}

// loaded records that the background load linked every cluster it read
// (or found a newer one in memory); broken is the count of unlinkable
// lists when it began. Memory is complete then unless a commit since
// wrote a list that could not be linked.
func (cc *clusterCache) loaded(broken uint64) {
	cc.t.mu.Lock()
	defer cc.t.mu.Unlock()
	if cc.broken == broken {
		cc.complete = true
	}
}

// brokenCount is the number of unlinkable lists committed so far.
func (cc *clusterCache) brokenCount() uint64 {
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	return cc.broken
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
	n, filled, whole := 0, 0, true
	fill := func(ts uint64, read map[uuid.UUID][]uuid.UUID) {
		k, ok := c.clusters.fill(ts, read)
		filled += k
		whole = whole && ok
	}
	// A list reported as unlinkable before this count is in the
	// snapshot (Settle): the load reads it, and is not whole.
	broken := c.clusters.brokenCount()
	c.store.Settle()
	err := c.store.View(ctx, func(tx *store.Txn) error {
		read := make(map[uuid.UUID][]uuid.UUID, batch)
		err := tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{Borrow: true}, func(k, v []byte) error {
			root, ok := clusterKeyPID(k)
			if !ok {
				return nil
			}
			ms, err := memberPIDs(v, nil)
			if err != nil {
				whole = false
				return nil // a reader of it fails, and says so
			}
			read[root] = ms
			if n++; len(read) == batch {
				fill(tx.ReadTS(), read)
				clear(read)
				select {
				case <-c.stop:
					return ErrClosed
				default:
				}
			}
			return nil
		})
		fill(tx.ReadTS(), read)
		return err
	})
	if err != nil {
		return fmt.Errorf("load clusters into memory: %w", err)
	}
	if whole {
		c.clusters.loaded(broken)
		c.log.Debug("clusters loaded into memory", "read", n, "filled", filled, "seconds", time.Since(start).Seconds())
	} else {
		c.log.Info("clusters loaded into memory, not all of them: full evaluations scan the store's until the next load",
			"read", n, "filled", filled, "seconds", time.Since(start).Seconds())
	}
	return nil
}
