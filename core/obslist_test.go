package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

func obsFixture(seed byte, nodes int) ([]byte, identity.ObsKey, []uuid.UUID) {
	h := bytes.Repeat([]byte{seed}, 16)
	key := identity.ObsKey{TS: int64(seed) * 1000}
	key.Tie[0] = seed
	var ns []uuid.UUID
	for i := range nodes {
		var n uuid.UUID
		n[0], n[15] = seed, byte(i)
		ns = append(ns, n)
	}
	return h, key, ns
}

func TestObsList(t *testing.T) {
	h1, k1, n1 := obsFixture(1, 2)
	h2, k2, n2 := obsFixture(2, 3)
	list := appendObsEntry(appendObsEntry(nil, h1, k1, n1), h2, k2, n2)
	t.Run("walk", func(t *testing.T) {
		var got []string
		if err := walkObs(list, func(e obsEntry) bool {
			k, _ := identity.ParseObsKey(e.key)
			got = append(got, fmt.Sprintf("%x:%d:%d:%x", e.hash[:1], k.TS, e.count(), e.node(e.count() - 1)[15]))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[01:1000:2:1 02:2000:3:2]" {
			t.Fatalf("entries %v", got)
		}
	})
	t.Run("replace keeps the order and the other entries", func(t *testing.T) {
		k := identity.ObsKey{TS: 5}
		out, err := putObs(list, h1, k, n1)
		if err != nil || len(out) != len(list) || !bytes.Equal(out[len(out)-(obsHeader+48):], list[len(list)-(obsHeader+48):]) {
			t.Fatalf("replace: %x %v", out, err)
		}
		e, ok, err := findObs(out, h1)
		if got, _ := identity.ParseObsKey(e.key); !ok || err != nil || got != k {
			t.Fatalf("after replace: %v %v %v", got, ok, err)
		}
		if e, ok, _ := findObs(list, h1); !ok || !bytes.Equal(e.key, k1.Bytes()) {
			t.Fatal("putObs changed the list it was given")
		}
	})
	t.Run("append", func(t *testing.T) {
		h3, k3, n3 := obsFixture(3, 1)
		out, err := putObs(list, h3, k3, n3)
		if err != nil || !bytes.HasPrefix(out, list) || len(out) != len(list)+obsHeader+16 {
			t.Fatalf("append: %v", err)
		}
		if out, err := putObs(nil, h3, k3, n3); err != nil || !bytes.Equal(out, appendObsEntry(nil, h3, k3, n3)) {
			t.Fatalf("append to no list: %x %v", out, err)
		}
	})
	t.Run("filter", func(t *testing.T) {
		out, n, err := filterObs(list, func(e obsEntry) bool { return e.hash[0] == 1 })
		if err != nil || n != 1 || !bytes.Equal(out, appendObsEntry(nil, h2, k2, n2)) {
			t.Fatalf("filter one: %x %d %v", out, n, err)
		}
		if out, n, err := filterObs(list, func(obsEntry) bool { return true }); err != nil || n != 2 || out != nil {
			t.Fatalf("filter all: %x %d %v", out, n, err)
		}
	})
	t.Run("pids", func(t *testing.T) {
		owner := n1[0]
		got := obsPIDs(store.ObsListKey(owner), list)
		if len(got) != 5 || got[0] != owner || got[1] != n1[1] || got[4] != n2[2] {
			t.Fatalf("pids %v", got)
		}
	})
	for _, tc := range []struct {
		name string
		list []byte
	}{
		{"truncated header", list[:obsHeader-1]},
		{"truncated nodes", list[:len(list)-1]},
		{"no nodes", append(bytes.Repeat([]byte{9}, 40), 0, 0)},
		{"count beyond the value", binary.BigEndian.AppendUint16(bytes.Repeat([]byte{9}, 40), 300)},
	} {
		t.Run("corrupt: "+tc.name, func(t *testing.T) {
			err := walkObs(tc.list, func(obsEntry) bool { return true })
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if _, err := putObs(tc.list, h1, k1, n1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("putObs on a corrupt list: %v", err)
			}
		})
	}
}

// FuzzObsList: decoding a stored list never panics, and a list rebuilt by
// putObs holds what was put and everything else that was there.
func FuzzObsList(f *testing.F) {
	h1, k1, n1 := obsFixture(1, 2)
	f.Add(appendObsEntry(nil, h1, k1, n1), byte(1), uint8(2))
	f.Add([]byte{}, byte(7), uint8(1))
	f.Add(bytes.Repeat([]byte{0}, 60), byte(0), uint8(4))
	f.Fuzz(func(t *testing.T, list []byte, seed byte, nodes uint8) {
		var before [][]byte
		if walkObs(list, func(e obsEntry) bool { before = append(before, append([]byte(nil), e.hash...)); return true }) != nil {
			return
		}
		h, k, ns := obsFixture(seed, 1+int(nodes%8))
		out, err := putObs(list, h, k, ns)
		if err != nil {
			t.Fatal(err)
		}
		e, ok, err := findObs(out, h)
		if err != nil || !ok || !bytes.Equal(e.key, k.Bytes()) || e.count() != len(ns) {
			t.Fatalf("put entry not found: %v %v", ok, err)
		}
		for _, b := range before {
			if _, ok, _ := findObs(out, b); !ok {
				t.Fatalf("entry %x lost", b)
			}
		}
	})
}

// downgradeObservations rewrites a running store's o/ lists the way schema
// version 1 kept them (g/ lists of hashes and a record per observation and
// node) and marks the store as version 1.
func downgradeObservations(t *testing.T, c *CDP) {
	t.Helper()
	ctx := context.Background()
	var lists [][2][]byte
	if err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixObs), store.ScanOptions{}, func(k, v []byte) error {
			lists = append(lists, [2][]byte{k, v})
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(lists) == 0 {
		t.Fatal("no observations to downgrade")
	}
	if err := c.runOp(ctx, func(tx *store.Txn) error {
		for _, kv := range lists {
			pid := uuid.UUID(kv[0][len(store.PrefixObs):])
			var hashes []byte
			var werr error
			if err := walkObs(kv[1], func(e obsEntry) bool {
				hashes = append(hashes, e.hash...)
				werr = errors.Join(werr, tx.Set(store.LegacyObsKey(pid, e.hash), append(append([]byte(nil), e.key...), e.nodes...)))
				return true
			}); err != nil || werr != nil {
				return errors.Join(err, werr)
			}
			if err := tx.Set(store.LegacyObsListKey(pid), hashes); err != nil {
				return err
			}
			if err := tx.Delete(kv[0]); err != nil {
				return err
			}
		}
		return tx.Set([]byte(string(store.PrefixMeta)+"schema"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
}

// obsRecords is every o/ and g/ record of a store, printed.
func obsRecords(t *testing.T, c *CDP) (o, g string) {
	t.Helper()
	var ob, gb bytes.Buffer
	if err := c.store.View(context.Background(), func(tx *store.Txn) error {
		for _, p := range []struct {
			prefix store.Prefix
			out    *bytes.Buffer
		}{{store.PrefixObs, &ob}, {store.PrefixObsLegacy, &gb}} {
			if err := tx.Scan([]byte(p.prefix), store.ScanOptions{}, func(k, v []byte) error {
				fmt.Fprintf(p.out, "%x=%x\n", k, v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ob.String(), gb.String()
}

// A store of schema version 1 is upgraded when it opens: the same lists,
// no g/ record left, version 2 recorded, and ingestion goes on as if the
// store had always been of version 2, whether the upgrade ran in one
// transaction or many.
func TestUpgradeFromSchema1(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	var msgs []string
	for i := range 120 {
		u, a := rng.Intn(6), rng.Intn(14)
		ts := fmt.Sprintf("2026-10-%02dT%02d:00:00Z", 1+rng.Intn(20), rng.Intn(24))
		switch rng.Intn(4) {
		case 0:
			msgs = append(msgs, fmt.Sprintf(`{"type":"identify","messageId":"m%d","anonymousId":"a%d","userId":"u%d","traits":{"email":"e%d@example.com"},"timestamp":"%s"}`, i, a, u, u%4, ts))
		case 1:
			msgs = append(msgs, fmt.Sprintf(`{"type":"alias","messageId":"m%d","previousId":"a%d","userId":"u%d","timestamp":"%s"}`, i, a, u, ts))
		default:
			msgs = append(msgs, fmt.Sprintf(`{"type":"track","messageId":"m%d","anonymousId":"a%d","userId":"u%d","event":"E","timestamp":"%s"}`, i, a, u, ts))
		}
	}
	key := strings.Repeat("5b", 32)
	// The reference: every message into a store that was never downgraded.
	ref := testConfig(t)
	ref.MasterKeyHex = key
	rc := openTest(t, ref)
	ingestAll(t, rc, msgs...)
	wantClusters, wantJournals := dumpGraph(t, rc)
	wantObs, _ := obsRecords(t, rc)
	for _, tc := range []struct {
		name string
		// prepare runs on the downgraded store (open) before it is
		// closed and opened again, which upgrades what is left.
		prepare func(t *testing.T, c *CDP, before string)
	}{
		{"at open", nil},
		{"one node a transaction, one record a deletion", func(t *testing.T, c *CDP, _ string) {
			n, err := upgradeObservations(context.Background(), c.store, nil, 1)
			if err != nil || n == 0 {
				t.Fatalf("upgrade in steps: %d %v", n, err)
			}
		}},
		{"interrupted between a node's list and its records", func(t *testing.T, c *CDP, before string) {
			// The first node's new list and old list deletion committed,
			// its records' deletion not.
			line, _, _ := strings.Cut(before, "\n")
			k, v, _ := strings.Cut(line, "=")
			kb, _ := hex.DecodeString(k)
			vb, _ := hex.DecodeString(v)
			pid := uuid.UUID(kb[len(store.PrefixObs):])
			if err := c.runOp(context.Background(), func(tx *store.Txn) error {
				return errors.Join(tx.Set(kb, vb), tx.Delete(store.LegacyObsListKey(pid)))
			}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MasterKeyHex = key
			c := openTest(t, cfg)
			ingestAll(t, c, msgs[:80]...)
			before, _ := obsRecords(t, c)
			downgradeObservations(t, c)
			if o, g := obsRecords(t, c); o != "" || g == "" {
				t.Fatalf("downgrade left o/ records or wrote no g/ records")
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				c = openTest(t, cfg) // upgrades: downgrade again
				downgradeObservations(t, c)
				tc.prepare(t, c, before)
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			}
			c = openTest(t, cfg)
			if c.store.Schema() != store.SchemaVersion {
				t.Fatalf("schema %d after the upgrade", c.store.Schema())
			}
			o, g := obsRecords(t, c)
			if g != "" || o != before {
				t.Fatalf("upgraded lists differ:\n%s\n---- before the downgrade ----\n%s\nleft in g/: %q", o, before, g)
			}
			ingestAll(t, c, msgs[80:]...)
			clusters, journals := dumpGraph(t, c)
			if clusters != wantClusters || journals != wantJournals {
				t.Fatalf("after the upgrade the graph differs:\n%s\n%s\n---- want ----\n%s\n%s", clusters, journals, wantClusters, wantJournals)
			}
			// Profile ids differ between stores: compare the shape.
			if o, _ := obsRecords(t, c); len(o) != len(wantObs) || strings.Count(o, "\n") != strings.Count(wantObs, "\n") {
				t.Fatalf("after the upgrade the observation lists differ from a store never downgraded:\n%s\n---- want ----\n%s", o, wantObs)
			}
		})
	}
}
