package core

import (
	"context"
	"math/rand"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// len is the number of clusters in l.
func (l *clusterList) len() int {
	n := 0
	for i := range l.parts {
		n += len(l.parts[i].ends)
	}
	return n
}

// roots looks up the roots of nodes: roots[i] is nodes[i]'s, or uuid.Nil
// when its cluster is not in memory.
func (cc *clusterCache) roots(nodes []uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(nodes))
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	for i, n := range nodes {
		out[i] = cc.t.rootOf(n)
	}
	return out
}

// members looks up the member lists of roots: members[i] is roots[i]'s,
// as the store lists them (sorted by pid), or nil when not in memory.
func (cc *clusterCache) members(roots []uuid.UUID) [][]uuid.UUID {
	out := make([][]uuid.UUID, len(roots))
	cc.t.mu.RLock()
	defer cc.t.mu.RUnlock()
	for i, r := range roots {
		out[i] = cc.t.ring(r)
	}
	return out
}

// storeClusters reads every node's root (m/) and every cluster's members
// (n/) from the store.
func storeClusters(t *testing.T, c *CDP) (roots map[uuid.UUID]uuid.UUID, members map[uuid.UUID][]uuid.UUID) {
	t.Helper()
	roots, members = map[uuid.UUID]uuid.UUID{}, map[uuid.UUID][]uuid.UUID{}
	err := c.store.View(context.Background(), func(tx *store.Txn) error {
		err := tx.Scan([]byte(store.PrefixMember), store.ScanOptions{}, func(k, v []byte) error {
			roots[uuid.UUID(k[len(store.PrefixMember):])] = uuid.UUID(v[:16])
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{}, func(k, v []byte) error {
			ms, err := memberPIDs(v, nil)
			members[uuid.UUID(k[len(store.PrefixCluster):])] = ms
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return roots, members
}

// checkClusterCache compares the clusters in memory with the store's:
// every entry in memory must be the store's, and with complete set
// (everyone clustered since Open, written through by the store's
// reports) every node and cluster must be in memory. It returns how many
// roots and clusters were in memory.
func checkClusterCache(t *testing.T, c *CDP, complete bool) (int, int) {
	t.Helper()
	roots, members := storeClusters(t, c)
	var nodes, rs []uuid.UUID
	for n := range roots {
		nodes = append(nodes, n)
	}
	for r := range members {
		rs = append(rs, r)
	}
	inRoots, inMembers := 0, 0
	for i, r := range c.clusters.roots(nodes) {
		switch {
		case r == uuid.Nil && complete:
			t.Fatalf("node %s: root not in memory", nodes[i])
		case r != uuid.Nil && r != roots[nodes[i]]:
			t.Fatalf("node %s: root %s in memory, %s in the store", nodes[i], r, roots[nodes[i]])
		case r != uuid.Nil:
			inRoots++
		}
	}
	for i, ms := range c.clusters.members(rs) {
		switch {
		case ms == nil && complete:
			t.Fatalf("cluster %s: members not in memory", rs[i])
		case ms != nil && !slices.Equal(ms, members[rs[i]]):
			t.Fatalf("cluster %s: members %v in memory, %v in the store", rs[i], ms, members[rs[i]])
		case ms != nil:
			inMembers++
		}
	}
	// Nothing in memory the store does not have: a node erased or a
	// cluster merged away is gone from memory too.
	c.nodes.mu.RLock()
	defer c.nodes.mu.RUnlock()
	for _, id := range c.nodes.ids() {
		sl := c.nodes.get(id)
		if _, ok := roots[id]; sl.link != uuid.Nil && !ok {
			t.Fatalf("node %s: in a ring in memory, in no cluster in the store", id)
		}
	}
	return inRoots, inMembers
}

// The store reports every change to m/ and n/ (merges, unmerges,
// erasures; the live test drives them all and checks the cache at every
// round). Here: a store reopened has nothing in memory; the live update
// fills what it reads, and warmClusters everything.
func TestClusterCacheFilledByReaders(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(0)
	ctx := context.Background()
	c := openTest(t, cfg)
	for _, tmpl := range liveTemplates {
		if _, err := c.ApplyTemplate(ctx, tmpl, nil); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(7))
	for round := range 4 {
		if _, err := c.Ingest(ctx, randomStream(rng, round, 40, fixedNow)); err != nil {
			t.Fatal(err)
		}
	}
	n, m := checkClusterCache(t, c, true)
	if n == 0 || m == 0 {
		t.Fatal("nothing clustered")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openTest(t, cfg)
	if n, m := checkClusterCache(t, c, false); n != 0 || m != 0 {
		t.Fatalf("%d roots and %d clusters in memory after Open", n, m)
	}
	roots, _ := storeClusters(t, c)
	var nodes []uuid.UUID
	for n := range roots {
		nodes = append(nodes, n)
	}
	if _, err := c.UpdateMemberships(ctx, nodes, fixedNow); err != nil {
		t.Fatal(err)
	}
	if n, m := checkClusterCache(t, c, true); n != len(roots) || m == 0 {
		t.Fatalf("after an update of everyone: %d roots of %d in memory, %d clusters", n, len(roots), m)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// What Open starts beside the live updater loads every cluster.
	c = openTest(t, cfg)
	if err := c.warmClusters(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := checkClusterCache(t, c, true); n != len(roots) {
		t.Fatalf("after loading: %d roots of %d in memory", n, len(roots))
	}
}

// A reader's fill never replaces what a commit reported, nor brings back
// what a commit deleted after the reader's snapshot.
func TestClusterCacheFillRules(t *testing.T) {
	id := func(i byte) uuid.UUID { return uuid.UUID{0: 1, 6: 0x70, 8: 0x80, 15: i} }
	a, b, x := id(1), id(2), id(3)
	list := func(ms ...uuid.UUID) []byte {
		var cm []clusterMember
		for _, m := range ms {
			cm = append(cm, clusterMember{pid: m, token: make([]byte, 32), typ: "user_id"})
		}
		return encodeMembers(cm)
	}
	for _, tc := range []struct {
		name    string
		commits [][]store.Change // at ts 1, 2, ...
		fillTS  uint64
		fill    map[uuid.UUID][]uuid.UUID
		roots   map[uuid.UUID]uuid.UUID   // wanted after the fill (uuid.Nil: not in memory)
		members map[uuid.UUID][]uuid.UUID // of roots
	}{{
		name:    "fill into empty",
		fillTS:  5,
		fill:    map[uuid.UUID][]uuid.UUID{a: {a, b}},
		roots:   map[uuid.UUID]uuid.UUID{a: a, b: a},
		members: map[uuid.UUID][]uuid.UUID{a: {a, b}},
	}, {
		name: "a commit's clusters win over an older snapshot's",
		commits: [][]store.Change{{
			{Key: store.ClusterKey(a), Deleted: true},
			{Key: store.ClusterKey(b), Value: list(a, b)},
		}},
		fillTS:  2,
		fill:    map[uuid.UUID][]uuid.UUID{a: {a}},
		roots:   map[uuid.UUID]uuid.UUID{a: b, b: b},
		members: map[uuid.UUID][]uuid.UUID{a: nil, b: {a, b}},
	}, {
		name: "no fill from before a delete",
		commits: [][]store.Change{
			{{Key: store.ClusterKey(x), Value: list(x)}},
			{{Key: store.ClusterKey(x), Deleted: true}},
		},
		fillTS:  1,
		fill:    map[uuid.UUID][]uuid.UUID{x: {x}},
		roots:   map[uuid.UUID]uuid.UUID{x: uuid.Nil},
		members: map[uuid.UUID][]uuid.UUID{x: nil},
	}, {
		name:    "fill after a delete",
		commits: [][]store.Change{{{Key: store.ClusterKey(x), Deleted: true}}},
		fillTS:  1,
		fill:    map[uuid.UUID][]uuid.UUID{a: {a}},
		roots:   map[uuid.UUID]uuid.UUID{a: a},
		members: map[uuid.UUID][]uuid.UUID{a: {a}},
	}, {
		name: "a merge relinks the rings",
		commits: [][]store.Change{
			{{Key: store.ClusterKey(a), Value: list(a)}, {Key: store.ClusterKey(b), Value: list(b, x)}},
			{{Key: store.ClusterKey(a), Value: list(a, b, x)}, {Key: store.ClusterKey(b), Deleted: true}},
		},
		fillTS:  2,
		roots:   map[uuid.UUID]uuid.UUID{a: a, b: a, x: a},
		members: map[uuid.UUID][]uuid.UUID{a: {a, b, x}, b: nil, x: nil},
	}, {
		name: "a merge does not refuse older fills of other clusters",
		commits: [][]store.Change{{
			{Key: store.ClusterKey(a), Deleted: true},
			{Key: store.ClusterKey(b), Value: list(a, b)},
		}},
		fillTS:  0,
		fill:    map[uuid.UUID][]uuid.UUID{x: {x}},
		roots:   map[uuid.UUID]uuid.UUID{a: b, x: x},
		members: map[uuid.UUID][]uuid.UUID{x: {x}},
	}, {
		name:    "a root that is not a member, and an older fill",
		commits: [][]store.Change{{{Key: store.ClusterKey(a), Value: list(b)}}},
		fillTS:  0,
		fill:    map[uuid.UUID][]uuid.UUID{a: {a, b}},
		roots:   map[uuid.UUID]uuid.UUID{a: uuid.Nil, b: uuid.Nil},
		members: map[uuid.UUID][]uuid.UUID{a: nil},
	}, {
		name:    "an id that is not an RFC 4122 UUID",
		commits: [][]store.Change{{{Key: store.ClusterKey(a), Value: list(a, uuid.UUID{0: 9, 8: 0xc0})}}},
		roots:   map[uuid.UUID]uuid.UUID{a: uuid.Nil},
		members: map[uuid.UUID][]uuid.UUID{a: nil},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cc := newClusterCache(newNodeTable())
			for i, ch := range tc.commits {
				cc.committed(uint64(i+1), ch)
			}
			cc.fill(tc.fillTS, tc.fill)
			for n, want := range tc.roots {
				if got := cc.roots([]uuid.UUID{n})[0]; got != want {
					t.Errorf("root of %s: %s, want %s", n, got, want)
				}
			}
			for r, want := range tc.members {
				if got := cc.members([]uuid.UUID{r})[0]; !slices.Equal(got, want) {
					t.Errorf("members of %s: %v, want %v", r, got, want)
				}
			}
		})
	}
}

// Rings of every size survive relinking and unlinking in any order, and
// leave no slot behind.
func TestClusterRings(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tab := newNodeTable()
	var ids []uuid.UUID
	for i := range 50 {
		ids = append(ids, uuid.UUID{0: byte(i + 1), 6: 0x70, 8: 0x80 | byte(i), 15: byte(i)})
	}
	lists := map[uuid.UUID][]uuid.UUID{}
	for round := range 500 {
		// A random subset becomes one cluster, with a random root; the
		// clusters it takes members from are gone.
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ms := slices.Clone(ids[:1+rng.Intn(6)])
		root := ms[rng.Intn(len(ms))]
		slices.SortFunc(ms, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		for r, old := range lists {
			if slices.ContainsFunc(old, func(m uuid.UUID) bool { return slices.Contains(ms, m) }) {
				tab.unlinkRing(r)
				delete(lists, r)
			}
		}
		tab.linkRing(root, ms)
		lists[root] = ms
		for r, want := range lists {
			if got := tab.ring(r); !slices.Equal(got, want) {
				t.Fatalf("round %d: ring of %s %v, want %v", round, r, got, want)
			}
			for _, m := range want {
				if got := tab.rootOf(m); got != r {
					t.Fatalf("round %d: root of %s %s, want %s", round, m, got, r)
				}
				if m != r && tab.ring(m) != nil {
					t.Fatalf("round %d: %s has a ring, but is not a root", round, m)
				}
			}
		}
		// The copy a full evaluation takes: every ring once, its members
		// sorted, its root the list's.
		cc := &clusterCache{t: tab, complete: true}
		l := cc.list()
		if l == nil || l.len() != len(lists) {
			t.Fatalf("round %d: copied %v, want %d clusters", round, l, len(lists))
		}
		for root, ms := range l.all() {
			if want := lists[root]; !slices.Equal(ms, want) {
				t.Fatalf("round %d: cluster copied as %s: %v, want %v", round, root, ms, want)
			}
		}
	}
	for r := range lists {
		tab.unlinkRing(r)
	}
	if n := tab.len(); n != 0 {
		t.Fatalf("%d slots left", n)
	}
}

// A slot is one cache line: a lookup touches one.
func TestNodeSlotIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(nodeSlot{}); n != 64 {
		t.Fatalf("nodeSlot is %d bytes, want 64", n)
	}
}

// checkClusterList copies every cluster from memory as a full evaluation
// does (CDP.clusterList) and compares the copy with the store's n/: the
// same clusters, each once, with the same root and members in the same
// order. want says whether memory must hold them all (the copy must be
// made); otherwise a copy that is made is checked.
func checkClusterList(t *testing.T, c *CDP, want bool) {
	t.Helper()
	l := c.clusterList().sameAs(c.clusters)
	if l == nil {
		if want {
			t.Fatal("no copy of the clusters from memory")
		}
		return
	}
	_, members := storeClusters(t, c)
	if l.len() != len(members) {
		t.Fatalf("%d clusters copied from memory, %d in the store", l.len(), len(members))
	}
	for root, ms := range l.all() {
		if want, ok := members[root]; !ok || !slices.Equal(ms, want) {
			t.Fatalf("cluster %s: %v copied from memory, %v (%v) in the store", root, ms, want, ok)
		}
		delete(members, root)
	}
}

// A full evaluation takes the clusters from memory only when memory holds
// every one of the store's, and only if no commit changed one between the
// copy and the evaluation's snapshot; else it reads n/.
func TestClusterList(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(0) // no background load: by hand below
	c := openTest(t, cfg)
	if _, err := c.ApplyTemplate(ctx, "repeat_buyers", nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(11))
	for round := range 3 {
		if _, err := c.Ingest(ctx, randomStream(rng, round, 60, fixedNow)); err != nil {
			t.Fatal(err)
		}
	}
	if c.clusterList() != nil {
		t.Fatal("clusters copied before memory was known to hold them all")
	}
	if err := c.warmClusters(ctx); err != nil {
		t.Fatal(err)
	}
	checkClusterList(t, c, true)
	want := memberRefs(evaluateAt(t, c, "repeat_buyers", fixedNow))
	if len(want) == 0 {
		t.Fatal("no repeat buyer: the fixture tests nothing")
	}
	if got := fullMembers(t, c, "repeat_buyers", fixedNow); !slices.Equal(got, want) {
		t.Fatalf("from memory %v, from the store %v", want, got)
	}

	// A commit that changes a cluster after the copy: the copy is not used.
	l := c.clusterList()
	if _, err := c.Ingest(ctx, randomStream(rng, 3, 20, fixedNow)); err != nil {
		t.Fatal(err)
	}
	if l.sameAs(c.clusters) != nil {
		t.Fatal("a copy older than a commit that changed clusters was used")
	}
	checkClusterList(t, c, true)

	// A list that cannot be linked (an id that is not an RFC 4122 UUID):
	// memory no longer holds every cluster, until the next full load.
	odd := uuid.UUID{0: 9, 6: 0x70, 8: 0x00, 15: 1}
	v := encodeMembers([]clusterMember{{pid: odd, token: make([]byte, 32), typ: "user_id"}})
	if err := c.store.Update(ctx, func(tx *store.Txn) error { return tx.Set(store.ClusterKey(odd), v) }); err != nil {
		t.Fatal(err)
	}
	if c.clusterList() != nil {
		t.Fatal("clusters copied from memory without an unlinkable one")
	}
	if err := c.store.Update(ctx, func(tx *store.Txn) error { return tx.Delete(store.ClusterKey(odd)) }); err != nil {
		t.Fatal(err)
	}
	if err := c.warmClusters(ctx); err != nil {
		t.Fatal(err)
	}
	checkClusterList(t, c, true)
}

// With the live updater, memory that no longer holds every cluster is
// loaded again when a full evaluation finds it so.
func TestClusterListReloads(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(time.Hour) // the updater runs, and never updates by itself here
	c := openTest(t, cfg)
	if _, err := c.Ingest(ctx, randomStream(rand.New(rand.NewSource(5)), 0, 30, fixedNow)); err != nil {
		t.Fatal(err)
	}
	wait := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); c.clusterList() == nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10s: %s", what)
			}
		}
	}
	wait("no copy of the clusters after the load at Open")
	odd := uuid.UUID{0: 9, 6: 0x70, 8: 0x00, 15: 1}
	v := encodeMembers([]clusterMember{{pid: odd, token: make([]byte, 32), typ: "user_id"}})
	for _, op := range []func(tx *store.Txn) error{
		func(tx *store.Txn) error { return tx.Set(store.ClusterKey(odd), v) },
		func(tx *store.Txn) error { return tx.Delete(store.ClusterKey(odd)) },
	} {
		if err := c.store.Update(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	if c.clusters.isComplete() {
		t.Fatal("memory complete after a list it could not link")
	}
	wait("memory not loaded again")
	checkClusterList(t, c, true)
}
