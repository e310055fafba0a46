package audit

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/custody-cdp/custody/core/store"
)

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getRec(t testing.TB, st *store.Store, seq uint64) record {
	t.Helper()
	var r record
	err := st.View(context.Background(), func(tx *store.Txn) error {
		v, err := tx.Get(entryKey(seq))
		if err != nil {
			return err
		}
		r, err = decodeRecord(v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tamperBase is a closed log of 20 entries, plus copies of its store and
// head directories taken when it held 15.
type tamperBase struct {
	storeDir, headDir   string
	storeAt15, headAt15 string
}

func buildTamperBase(t *testing.T) tamperBase {
	e := newEnv(t)
	l := e.open()
	appendN(t, l, 15)
	e.close()
	root := t.TempDir()
	b := tamperBase{storeDir: e.storeDir, headDir: e.headDir,
		storeAt15: filepath.Join(root, "data15"), headAt15: filepath.Join(root, "vault15")}
	copyDir(t, e.storeDir, b.storeAt15)
	copyDir(t, e.headDir, b.headAt15)
	l = e.open()
	appendN(t, l, 5)
	e.close()
	return b
}

func TestTampering(t *testing.T) {
	ctx := context.Background()
	base := buildTamperBase(t)
	headFile := func(e *env) string { return filepath.Join(e.headDir, HeadFile) }

	tests := []struct {
		name        string
		tamper      func(t *testing.T, e *env)
		firstBad    uint64 // 0: the report must be OK
		wantPending uint64
		openErr     error // nil: Open must succeed (it checks only the end)
	}{
		{
			name: "data byte changed",
			tamper: func(t *testing.T, e *env) {
				r := getRec(t, e.st, 7)
				v := append([]byte(nil), r.value...)
				off := len(v) - 2*hashSize - len(r.data)
				v[off+len(r.data)-2]++ // the last digit of the object: still valid JSON
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Set(entryKey(7), v) })
			},
			firstBad: 7,
		},
		{
			name: "data byte changed to invalid JSON",
			tamper: func(t *testing.T, e *env) {
				r := getRec(t, e.st, 7)
				v := append([]byte(nil), r.value...)
				v[len(v)-2*hashSize-len(r.data)] = '['
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Set(entryKey(7), v) })
			},
			firstBad: 7,
		},
		{
			name: "data changed with recomputed hash",
			tamper: func(t *testing.T, e *env) {
				r := getRec(t, e.st, 7)
				f := newRecord(7, r.nanos, r.kind, r.actor, []byte(`{"allowed":0,"n":99}`), r.prev)
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Set(entryKey(7), f.value) })
			},
			firstBad: 8, // entry 8 no longer links to it
		},
		{
			name: "last entry changed with recomputed hash",
			tamper: func(t *testing.T, e *env) {
				r := getRec(t, e.st, 20)
				f := newRecord(20, r.nanos, "unmerge", r.actor, r.data, r.prev)
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Set(entryKey(20), f.value) })
			},
			firstBad: 20,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "middle entry deleted",
			tamper: func(t *testing.T, e *env) {
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Delete(entryKey(10)) })
			},
			firstBad: 10,
		},
		{
			name: "first entry deleted",
			tamper: func(t *testing.T, e *env) {
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Delete(entryKey(1)) })
			},
			firstBad: 1,
		},
		{
			name: "two entries swapped",
			tamper: func(t *testing.T, e *env) {
				a, b := getRec(t, e.st, 5), getRec(t, e.st, 6)
				tamper(t, e.st, func(tx *store.Txn) error {
					if err := tx.Set(entryKey(5), b.value); err != nil {
						return err
					}
					return tx.Set(entryKey(6), a.value)
				})
			},
			firstBad: 5,
		},
		{
			name: "two entries swapped and renumbered",
			tamper: func(t *testing.T, e *env) {
				a, b := getRec(t, e.st, 5), getRec(t, e.st, 6)
				na := newRecord(6, a.nanos, a.kind, a.actor, a.data, a.prev)
				nb := newRecord(5, b.nanos, b.kind, b.actor, b.data, b.prev)
				tamper(t, e.st, func(tx *store.Txn) error {
					if err := tx.Set(entryKey(5), nb.value); err != nil {
						return err
					}
					return tx.Set(entryKey(6), na.value)
				})
			},
			firstBad: 5,
		},
		{
			name: "last entries deleted (truncation)",
			tamper: func(t *testing.T, e *env) {
				tamper(t, e.st, func(tx *store.Txn) error {
					for s := uint64(18); s <= 20; s++ {
						if err := tx.Delete(entryKey(s)); err != nil {
							return err
						}
					}
					return nil
				})
			},
			firstBad: 18,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "all entries deleted",
			tamper: func(t *testing.T, e *env) {
				tamper(t, e.st, func(tx *store.Txn) error {
					for s := uint64(1); s <= 20; s++ {
						if err := tx.Delete(entryKey(s)); err != nil {
							return err
						}
					}
					return nil
				})
			},
			firstBad: 1,
			openErr:  ErrHeadMismatch,
		},
		{
			// Indistinguishable from a crash before the store commit:
			// reported as pending, and Open puts it back from the head.
			name: "only the last batch deleted",
			tamper: func(t *testing.T, e *env) {
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Delete(entryKey(20)) })
			},
			wantPending: 1,
		},
		{
			name: "forged entry inserted, later entries renumbered",
			tamper: func(t *testing.T, e *env) {
				var old []record
				for s := uint64(12); s <= 20; s++ {
					old = append(old, getRec(t, e.st, s))
				}
				forged := newRecord(12, old[0].nanos, "consent.change", "dpo", []byte(`{"granted":1}`), old[0].prev)
				tamper(t, e.st, func(tx *store.Txn) error {
					if err := tx.Set(entryKey(12), forged.value); err != nil {
						return err
					}
					for _, r := range old {
						// Renumbered with a recomputed hash; prev left as it was.
						n := newRecord(r.seq+1, r.nanos, r.kind, r.actor, r.data, r.prev)
						if err := tx.Set(entryKey(n.seq), n.value); err != nil {
							return err
						}
					}
					return nil
				})
			},
			firstBad: 13,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "forged entry inserted, later entries moved",
			tamper: func(t *testing.T, e *env) {
				var old []record
				for s := uint64(12); s <= 20; s++ {
					old = append(old, getRec(t, e.st, s))
				}
				forged := newRecord(12, old[0].nanos, "consent.change", "dpo", []byte(`{"granted":1}`), old[0].prev)
				tamper(t, e.st, func(tx *store.Txn) error {
					if err := tx.Set(entryKey(12), forged.value); err != nil {
						return err
					}
					for _, r := range old {
						if err := tx.Set(entryKey(r.seq+1), r.value); err != nil {
							return err
						}
					}
					return nil
				})
			},
			firstBad: 13,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "forged entry appended past the head",
			tamper: func(t *testing.T, e *env) {
				last := getRec(t, e.st, 20)
				f := newRecord(21, last.nanos+1, "deletion.certificate", "dpo", []byte(`{"profiles":0}`), last.hash)
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Set(entryKey(21), f.value) })
			},
			firstBad: 21,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "chain rewritten consistently from entry 8",
			tamper: func(t *testing.T, e *env) {
				prev := getRec(t, e.st, 7).hash
				var recs []record
				for s := uint64(8); s <= 20; s++ {
					r := getRec(t, e.st, s)
					n := newRecord(s, r.nanos, r.kind, "someone-else", r.data, prev)
					prev = n.hash
					recs = append(recs, n)
				}
				tamper(t, e.st, func(tx *store.Txn) error { return setAll(tx, recs) })
			},
			firstBad: 20, // only the sealed head notices, at its entry
			openErr:  ErrHeadMismatch,
		},
		{
			name: "malformed key under a/",
			tamper: func(t *testing.T, e *env) {
				tamper(t, e.st, func(tx *store.Txn) error { return tx.Set([]byte("a/xyz"), []byte("x")) })
			},
			firstBad: 21,
			openErr:  ErrTampered,
		},
		{
			name: "head file replaced by an older copy",
			tamper: func(t *testing.T, e *env) {
				b, err := os.ReadFile(filepath.Join(base.headAt15, HeadFile))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(headFile(e), b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			firstBad: 16,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "head file removed",
			tamper: func(t *testing.T, e *env) {
				if err := os.Remove(headFile(e)); err != nil {
					t.Fatal(err)
				}
			},
			firstBad: 1,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "head file forged",
			tamper: func(t *testing.T, e *env) {
				b, err := os.ReadFile(headFile(e))
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-5] ^= 1
				if err := os.WriteFile(headFile(e), b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			firstBad: 1,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "head file emptied",
			tamper: func(t *testing.T, e *env) {
				if err := os.WriteFile(headFile(e), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			firstBad: 1,
			openErr:  ErrHeadMismatch,
		},
		{
			name: "older data backup restored",
			tamper: func(t *testing.T, e *env) {
				e.close()
				if err := os.RemoveAll(e.storeDir); err != nil {
					t.Fatal(err)
				}
				copyDir(t, base.storeAt15, e.storeDir)
				e.openStore()
			},
			firstBad: 16,
			openErr:  ErrHeadMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			copyDir(t, base.storeDir, e.storeDir)
			copyDir(t, base.headDir, e.headDir)
			e.openStore()
			wantOK(t, e.verify(), 20)
			tt.tamper(t, e)

			rep := e.verify()
			if tt.firstBad == 0 {
				if !rep.OK || rep.Pending != tt.wantPending {
					t.Fatalf("report = %+v, want OK with %d pending", rep, tt.wantPending)
				}
			} else {
				if rep.OK || rep.FirstBad != tt.firstBad || rep.Problem == "" {
					t.Fatalf("report = %+v, want first bad %d", rep, tt.firstBad)
				}
				t.Logf("problem at %d: %s", rep.FirstBad, rep.Problem)
			}

			l, err := Open(ctx, e.st, e.opts())
			if tt.openErr != nil {
				if !errors.Is(err, tt.openErr) {
					t.Fatalf("Open: %v, want %v", err, tt.openErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			e.log = l
			rep, err = l.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tt.firstBad == 0 {
				wantOK(t, rep, 20) // Open completed the pending entries
			} else if rep.OK || rep.FirstBad != tt.firstBad {
				t.Fatalf("Log.Verify = %+v, want first bad %d", rep, tt.firstBad)
			}
		})
	}
}
