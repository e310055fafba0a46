package core

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/segments"
)

// dropNodeEntries forgets every node's gate inputs, digests, or both, as
// if they had never been read (a test's "cold" memory).
func dropNodeEntries(c *CDP, gates, digests bool) {
	c.nodes.mu.Lock()
	defer c.nodes.mu.Unlock()
	for _, p := range c.nodes.ids() {
		if gates {
			c.nodes.dropGate(p)
		}
		if digests {
			c.nodes.dropDigest(p)
		}
	}
}

// The two kinds of entry share a node's place in the table: dropping one
// keeps the other, and a node with neither leaves the map.
func TestNodeTableKeepsKindsApart(t *testing.T) {
	p := uuid.New()
	n := newGateNode(nil, nil, nil)
	d := digest{1, 2, 3}
	tests := []struct {
		name      string
		do        func(t *nodeTable)
		wantGate  bool
		wantDig   bool
		wantEntry bool
	}{
		{"both", func(t *nodeTable) { t.setGate(p, n); t.setDigest(p, d) }, true, true, true},
		{"gate dropped", func(t *nodeTable) { t.setGate(p, n); t.setDigest(p, d); t.dropGate(p) }, false, true, true},
		{"digest dropped", func(t *nodeTable) { t.setGate(p, n); t.setDigest(p, d); t.dropDigest(p) }, true, false, true},
		{"both dropped", func(t *nodeTable) { t.setGate(p, n); t.setDigest(p, d); t.dropDigest(p); t.dropGate(p) }, false, false, false},
		{"drop of nothing", func(t *nodeTable) { t.dropGate(p); t.dropDigest(p) }, false, false, false},
		{"empty digest is an entry", func(t *nodeTable) { t.setDigest(p, digest{}) }, false, true, true},
	}
	t.Run("nil id is never stored", func(t *testing.T) {
		tab := newNodeTable()
		tab.setGate(uuid.Nil, n)
		tab.setDigest(uuid.Nil, d)
		tab.dropGate(uuid.Nil)
		tab.dropDigest(uuid.Nil)
		tab.setGate(p, n)
		if e := tab.get(uuid.Nil); e.gate != nil || e.dig != nil || tab.len() != 1 || tab.get(p).gate != n {
			t.Fatalf("nil id: %v, %d entries, p's gate %p", e, tab.len(), tab.get(p).gate)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := newNodeTable()
			tc.do(tab)
			e := tab.get(p)
			ok := tab.lookup(p) != nil
			if ok != tc.wantEntry || tab.len() != map[bool]int{true: 1}[ok] || (e.gate != nil) != tc.wantGate || (e.dig != nil) != tc.wantDig {
				t.Fatalf("entry %v (in map %v), want gate %v digest %v in map %v", e, ok, tc.wantGate, tc.wantDig, tc.wantEntry)
			}
		})
	}
}

// A scan fetches its people in groups (people, nodeTable.fetchViews):
// every person is yielded once, whatever the store's size against the
// batch, a consumer that stops early gets no one after, the first fetch
// of a group fetches all of it, a group whose first view was released
// unfetched leaves the others to fetch alone, and each view holds exactly
// its members' entries in memory; with nothing in memory, the views build
// their entries.
func TestScanFetchesPeopleInBatches(t *testing.T) {
	for _, people := range []int{1, fetchBatch - 1, fetchBatch, fetchBatch + 1, 3*fetchBatch + 5} {
		t.Run(fmt.Sprint(people), func(t *testing.T) {
			c := openTest(t, testConfig(t))
			ctx := context.Background()
			var bodies []string
			for u := range people {
				body := fmt.Sprintf(`{"type":"identify","messageId":"i%d","userId":"u%d","traits":{"email":"p%d@example.com"}}`, u, u, u)
				if u%4 == 0 { // a device merged into the person: two nodes
					body = fmt.Sprintf(`{"type":"track","messageId":"t%d","userId":"u%d","anonymousId":"d%d","event":"Product Viewed"}`, u, u, u)
				}
				bodies = append(bodies, body)
			}
			ingestAll(t, c, bodies...)
			set, err := segments.NewSet(c.known())
			if err != nil {
				t.Fatal(err)
			}
			// release: the first view of each group is released before
			// anyone fetched it, which closes the group: the others fetch
			// alone.
			// The people come from n/, or from the clusters in memory.
			if err := c.warmClusters(ctx); err != nil {
				t.Fatal(err)
			}
			fromMemory := c.clusterList()
			if fromMemory == nil {
				t.Fatal("no copy of the clusters from memory")
			}
			for _, tc := range []struct {
				stopAt   int
				release  bool
				clusters *clusterList
			}{{1, false, nil}, {fetchBatch, false, nil}, {people + 1, false, nil}, {people + 1, true, nil},
				{1, false, fromMemory}, {fetchBatch, false, fromMemory}, {people + 1, false, fromMemory}, {people + 1, true, fromMemory}} {
				stopAt := tc.stopAt
				seen := map[string]bool{}
				err := c.store.View(ctx, func(tx *store.Txn) error {
					var scanErr error
					for cand := range c.people(ctx, tx, fixedNow, set, "marketing", tc.clusters, &scanErr) {
						// The reference is the view's memory, which a
						// released view reuses: kept as a copy.
						ref := strings.Clone(cand.Ref)
						if seen[ref] {
							t.Fatalf("%s yielded twice", ref)
						}
						seen[ref] = true
						pv := cand.Person.(*personView)
						first := (len(seen)-1)%fetchBatch == 0
						switch {
						case pv.fetched && (first || tc.release):
							t.Fatalf("%s: fetched before a worker asked", cand.Ref)
						case !pv.fetched && !first && !tc.release:
							t.Fatalf("%s: not fetched with the first of its group", cand.Ref)
						case first && tc.release:
							pv.Release()
							continue
						}
						pv.fetch()
						if !pv.fetched || len(pv.gnodes) != len(pv.members) || len(pv.digests) != len(pv.members) {
							t.Fatalf("%s: fetched %v, %d gate entries and %d digests for %d members", cand.Ref, pv.fetched, len(pv.gnodes), len(pv.digests), len(pv.members))
						}
						for i, m := range pv.members {
							g, _ := c.gates.get(m)
							d, _, _ := c.aggs.get(m)
							if pv.gnodes[i] != g || len(pv.digests[i]) != len(d) || (pv.digests[i] == nil) != (d == nil) {
								t.Fatalf("%s: member %d's entries are not the table's", cand.Ref, i)
							}
						}
						if len(seen) == stopAt {
							break
						}
					}
					return scanErr
				})
				if err != nil {
					t.Fatal(err)
				}
				if want := min(stopAt, people); len(seen) != want {
					t.Fatalf("stopping at %d: %d people yielded, want %d", stopAt, len(seen), want)
				}
			}
			// Memory holds nothing (as for people ingested before Open):
			// the views build what they need, and their name list covers
			// every digest they read.
			dropNodeEntries(c, true, true)
			err = c.store.View(ctx, func(tx *store.Txn) error {
				var scanErr error
				for cand := range c.people(ctx, tx, fixedNow, set, "marketing", nil, &scanErr) {
					pv := cand.Person.(*personView)
					if _, err := pv.gateInputs(); err != nil {
						return err
					}
					if pv.loadDigest(); pv.err != nil {
						return pv.err
					}
					for i, m := range pv.members {
						d, _, ok := c.aggs.get(m)
						if pv.gnodes[i] == nil || !ok || !bytes.Equal(pv.digests[i], d) {
							t.Fatalf("%s: member %d not built (gate %v, digest %v)", cand.Ref, i, pv.gnodes[i] != nil, ok)
						}
						for it := d.iter(); it.next(); {
							if int(it.name) >= len(pv.names) {
								t.Fatalf("%s: name %d outside the view's %d names", cand.Ref, it.name, len(pv.names))
							}
						}
					}
				}
				return scanErr
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The table against a Go map, over random sets and drops of both kinds:
// every node's entries are found (its own: each gate entry is a distinct
// pointer, each digest holds its node's id), dropped ones are not,
// through growth, deletions that move later slots back (long runs: v4 and
// v7 ids), and shrinking once all but a few are dropped, with ids of
// every kind (time-ordered version 7, random, and nearly identical
// counters).
func TestNodeTableMatchesAMap(t *testing.T) {
	kinds := []struct {
		name string
		id   func(i int) uuid.UUID
	}{
		{"v7", func(int) uuid.UUID { return uuid.Must(uuid.NewV7()) }},
		{"v4", func(int) uuid.UUID { return uuid.New() }},
		{"counter", func(i int) uuid.UUID {
			var u uuid.UUID
			u[15], u[14] = byte(i), byte(i>>8)
			u[0] = 1 // never the nil id
			return u
		}},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			tab := newNodeTable()
			want := map[uuid.UUID]nodeSlot{}
			var pool []uuid.UUID
			for i := range 20000 {
				pool = append(pool, kind.id(i))
			}
			grown := false
			check := func(step int) {
				for _, s := range tab.shards {
					grown = grown || len(s.slots) >= 8*minShardSlots
				}
				if tab.len() != len(want) {
					t.Fatalf("step %d: %d entries, want %d", step, tab.len(), len(want))
				}
				for _, p := range pool {
					got, w := tab.get(p), want[p]
					if got.gate != w.gate || !bytes.Equal(got.dig, w.dig) || (got.dig == nil) != (w.dig == nil) {
						t.Fatalf("step %d: %s has %v, want %v", step, p, got, w)
					}
				}
			}
			for step := range 80000 {
				// Grow to most of the pool, then drop to a few, twice.
				phase := step / 20000
				grow := phase%2 == 0
				p := pool[rng.Intn(len(pool))]
				e := want[p]
				switch op := rng.Intn(4); {
				case grow && op == 0:
					g := newGateNode(nil, nil, nil)
					tab.setGate(p, g)
					e.gate = g
				case grow && op == 1:
					d := append(digest(p[:]), make(digest, rng.Intn(3))...)
					tab.setDigest(p, d)
					e.dig = d
				case op%2 == 0:
					tab.dropGate(p)
					e.gate = nil
				default:
					tab.dropDigest(p)
					e.dig = nil
				}
				if e.gate == nil && e.dig == nil {
					delete(want, p)
				} else {
					want[p] = e
				}
				if step%997 == 0 || step%20000 == 19999 {
					check(step)
				}
			}
			check(-1)
			// Drop all but ten: every shard shrinks back.
			for _, p := range pool[10:] {
				tab.dropGate(p)
				tab.dropDigest(p)
				delete(want, p)
			}
			check(-2)
			for i, s := range tab.shards {
				if len(s.slots) > minShardSlots && s.n*8 < len(s.slots) {
					t.Fatalf("shard %d: %d entries in %d slots: not shrunk", i, s.n, len(s.slots))
				}
			}
			if !grown {
				t.Fatal("no shard grew: the test does not reach resizing")
			}
		})
	}
}
