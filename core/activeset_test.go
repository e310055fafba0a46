package core

import (
	"context"
	"encoding/json"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// checkActiveSets compares every loaded set of active memberships with
// the records in the store.
func checkActiveSets(t *testing.T, c *CDP) {
	t.Helper()
	c.active.mu.Lock()
	var segs []string
	for seg, s := range c.active.sets {
		if s.ready {
			segs = append(segs, seg)
		}
	}
	c.active.mu.Unlock()
	for _, seg := range segs {
		want := map[uuid.UUID]bool{}
		var all []uuid.UUID
		prefix := store.MembershipPrefix(seg)
		err := c.store.View(context.Background(), func(tx *store.Txn) error {
			return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) error {
				if len(k) != len(prefix)+16 {
					return nil // a segment whose name starts with seg + "/"
				}
				r := uuid.UUID(k[len(prefix):])
				var m membershipRecord
				if err := json.Unmarshal(v, &m); err != nil {
					return err
				}
				want[r] = m.ExitedAt == nil
				all = append(all, r)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		c.active.mu.Lock()
		got := c.active.sets[seg].active
		c.active.mu.Unlock()
		for _, r := range all {
			if _, in := got[r]; in != want[r] {
				t.Fatalf("segment %s, %s: active %v in memory, %v in the store", seg, r, in, want[r])
			}
		}
		for r := range got {
			if !want[r] {
				t.Fatalf("segment %s, %s: active in memory, not in the store", seg, r)
			}
		}
	}
}

// A set loads from a snapshot and takes the changes reported after it,
// but not those already in it.
func TestActiveSetLoad(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(0)
	c := openTest(t, cfg)
	ctx := context.Background()
	a, b, x := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	write := func(seg string, r uuid.UUID, active bool) {
		t.Helper()
		rec := membershipRecord{EnteredAt: fixedNow}
		if !active {
			at := fixedNow.Add(time.Hour)
			rec.ExitedAt = &at
		}
		v, _ := json.Marshal(rec)
		if err := c.store.Update(ctx, func(tx *store.Txn) error { return tx.Set(store.MembershipKey(seg, r), v) }); err != nil {
			t.Fatal(err)
		}
	}
	del := func(seg string, r uuid.UUID) {
		t.Helper()
		if err := c.store.Update(ctx, func(tx *store.Txn) error { return tx.Delete(store.MembershipKey(seg, r)) }); err != nil {
			t.Fatal(err)
		}
	}
	write("s", x, false) // before prepare: in the scan, exited
	c.active.prepare([]string{"s", "other"})
	write("s", a, true) // reported before the snapshot: in the scan too
	err := c.store.View(ctx, func(tx *store.Txn) error {
		write("s", b, true)        // after the snapshot: not in the scan
		del("s", a)                // after the snapshot
		write("other", a, true)    // another segment's
		write("s/nested", x, true) // another segment whose name starts alike
		return c.active.load(tx, "s")
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]bool, 3)
	if !c.active.isActive("s", []uuid.UUID{a, b, x}, out) {
		t.Fatal("set not loaded")
	}
	if want := []bool{false, true, false}; !slices.Equal(out, want) {
		t.Fatalf("active a, b, x: %v, want %v", out, want)
	}
	if c.active.isActive("other", []uuid.UUID{a}, out) {
		t.Fatal("a set never loaded answers")
	}
	write("s", x, true) // once loaded, changes apply at once
	if c.active.isActive("s", []uuid.UUID{x}, out); !out[0] {
		t.Fatal("a change after the load is missing")
	}
	checkActiveSets(t, c)
}

// The live updater loads the active memberships of the local segments
// when it starts and when a segment is applied, so that no update pays
// for the scan; deleting a segment drops its set.
func TestActiveSetWarm(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(time.Hour) // the updater runs, and never updates by itself here
	ctx := context.Background()
	state := func(c *CDP, seg string) (prepared, ready bool, n int) {
		c.active.mu.Lock()
		defer c.active.mu.Unlock()
		s := c.active.sets[seg]
		if s == nil {
			return false, false, 0
		}
		return true, s.ready, len(s.active)
	}
	waitFor := func(c *CDP, what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10s: %s", what)
			}
		}
	}
	c := openTest(t, cfg)
	for _, tmpl := range []string{"cart_abandoners", "vip"} {
		if _, err := c.ApplyTemplate(ctx, tmpl, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(c, "cart_abandoners not loaded after it was applied", func() bool { _, r, _ := state(c, "cart_abandoners"); return r })
	if p, _, _ := state(c, "vip"); p {
		t.Fatal("vip (ranked against everyone, not local) has a set")
	}
	rng := rand.New(rand.NewSource(3))
	for round := range 3 {
		if _, err := c.Ingest(ctx, randomStream(rng, round, 60, fixedNow)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RefreshSegment(ctx, "cart_abandoners", fixedNow); err != nil {
		t.Fatal(err)
	}
	checkActiveSets(t, c)
	_, _, members := state(c, "cart_abandoners")
	if members == 0 {
		t.Fatal("no cart abandoners: the fixture tests nothing")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openTest(t, cfg)
	waitFor(c, "cart_abandoners not loaded at Open", func() bool { _, r, _ := state(c, "cart_abandoners"); return r })
	if _, _, n := state(c, "cart_abandoners"); n != members {
		t.Fatalf("%d active members loaded at Open, %d before", n, members)
	}
	checkActiveSets(t, c)
	if err := c.DeleteSegment(ctx, "cart_abandoners"); err != nil {
		t.Fatal(err)
	}
	waitFor(c, "cart_abandoners' set kept after it was deleted", func() bool { p, _, _ := state(c, "cart_abandoners"); return !p })
}
