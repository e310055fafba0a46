package core

import (
	"context"
	"encoding/json"
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
