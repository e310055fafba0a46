package core

import (
	"context"
	"fmt"
	"math/rand"
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

// A scan fetches its people in batches (people, nodeTable.fetchViews):
// every person is yielded once, whatever the store's size against the
// batch, a consumer that stops early gets no one after, and each view
// holds exactly its members' entries in memory.
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
			for _, stopAt := range []int{1, fetchBatch, people + 1} {
				seen := map[string]bool{}
				err := c.store.View(ctx, func(tx *store.Txn) error {
					var scanErr error
					for cand := range c.people(ctx, tx, fixedNow, set, "marketing", &scanErr) {
						if seen[cand.Ref] {
							t.Fatalf("%s yielded twice", cand.Ref)
						}
						seen[cand.Ref] = true
						pv := cand.Person.(*personView)
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
		})
	}
}

// The table against a Go map, over random sets and drops of both kinds:
// every node's entries are found, dropped ones are not, through growth,
// shrinking and deletions that move later slots back, with ids of every
// kind (time-ordered version 7, random, and nearly identical ones whose
// home slots collide).
func TestNodeTableMatchesAMap(t *testing.T) {
	kinds := []struct {
		name string
		id   func(i int) uuid.UUID
	}{
		{"v7", func(int) uuid.UUID { return uuid.Must(uuid.NewV7()) }},
		{"v4", func(int) uuid.UUID { return uuid.New() }},
		{"sequential", func(i int) uuid.UUID {
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
			want := map[uuid.UUID]nodeEntry{}
			var pool []uuid.UUID
			for i := range 20000 {
				pool = append(pool, kind.id(i))
			}
			gates := []*gateNode{newGateNode(nil, nil, nil), newGateNode(nil, nil, nil)}
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
					if got.gate != w.gate || len(got.dig) != len(w.dig) || (got.dig == nil) != (w.dig == nil) {
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
					g := gates[rng.Intn(2)]
					tab.setGate(p, g)
					e.gate = g
				case grow && op == 1:
					d := make(digest, rng.Intn(3))
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
