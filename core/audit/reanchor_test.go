package audit

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/custody-cdp/custody/core/store"
)

// A data store restored from before the last entries looks truncated:
// Open refuses it until Reanchor records the restore on the chain. A
// broken chain is never reanchored.
func TestReanchorAfterRestore(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	if _, err := l.Append(ctx, "test.one", "owner", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	e.close()
	old := t.TempDir() + "/old"
	if err := os.CopyFS(old, os.DirFS(e.storeDir)); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	for i := 2; i <= 3; i++ {
		if _, err := l.Append(ctx, "test.more", "owner", map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	e.close()
	if err := os.RemoveAll(e.storeDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, e.storeDir); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, e.openStore(), e.opts()); !errors.Is(err, ErrHeadMismatch) {
		t.Fatalf("open after restore: %v, want ErrHeadMismatch", err)
	}
	rep, err := Reanchor(ctx, e.openStore(), e.opts(), "owner", map[string]any{"reason": "restore"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PreviousHead != 3 || rep.ChainEnd != 1 || rep.HeadState != "behind" || rep.Entry.Seq != 2 || rep.Entry.Kind != KindReanchor {
		t.Fatalf("reanchor %+v", rep)
	}
	var d map[string]any
	if err := json.Unmarshal(rep.Entry.Data, &d); err != nil || d["entries_not_in_store"] != float64(2) || d["reason"] != "restore" {
		t.Fatalf("reanchor entry data %s", rep.Entry.Data)
	}
	if v := e.verify(); !v.OK || v.Entries != 2 {
		t.Fatalf("verify after reanchor: %+v", v)
	}
	l = e.open()
	if _, err := l.Append(ctx, "test.after", "owner", nil); err != nil {
		t.Fatal(err)
	}
	e.closeLog()

	// Change entry 1: the chain is broken, and Reanchor refuses.
	st := e.openStore()
	if err := st.Update(ctx, func(tx *store.Txn) error {
		v, err := tx.Get(entryKey(1))
		if err != nil {
			return err
		}
		v[40] ^= 1
		return tx.Set(entryKey(1), v)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Reanchor(ctx, st, e.opts(), "owner", nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("reanchor of a tampered chain: %v", err)
	}
}
