package core

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/segments"
)

// dropNodeEntries forgets every node's gate inputs, digests, or both, as
// if they had never been read (a test's "cold" memory).
func dropNodeEntries(c *CDP, gates, digests bool) {
	c.nodes.mu.Lock()
	defer c.nodes.mu.Unlock()
	for p := range c.nodes.m {
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
			e, ok := tab.m[p]
			if ok != tc.wantEntry || (e.gate != nil) != tc.wantGate || (e.dig != nil) != tc.wantDig {
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
			var msgs []event.Message
			for u := range people {
				body := fmt.Sprintf(`{"type":"identify","messageId":"i%d","userId":"u%d","traits":{"email":"p%d@example.com"}}`, u, u, u)
				if u%4 == 0 { // a device merged into the person: two nodes
					body = fmt.Sprintf(`{"type":"track","messageId":"t%d","userId":"u%d","anonymousId":"d%d","event":"Product Viewed"}`, u, u, u)
				}
				m, err := event.DecodeMessage([]byte(body), "", fixedNow)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, m)
			}
			if _, err := c.Ingest(ctx, msgs); err != nil {
				t.Fatal(err)
			}
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
