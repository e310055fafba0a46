package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// shreddingFixture is a store with two people, "gone" (to be deleted) and
// "stays", a raw copy of the data store directory and a `custody backup`
// file, both taken before the deletion, and the deletion's certificate.
type shreddingFixture struct {
	cfg     Config
	rawCopy string
	backup  []byte
	vault   []byte // a vault backup taken with the data backup
	cert    DeletionCertificate
	secrets []string
}

func newShreddingFixture(t *testing.T) *shreddingFixture { return newShreddingFixtureOf(t, false) }

// newShreddingFixtureOf, with schema1, takes the backup of a store still
// keeping observations as schema version 1 did (an older release's backup).
func newShreddingFixtureOf(t *testing.T, schema1 bool) *shreddingFixture {
	t.Helper()
	f := &shreddingFixture{cfg: testConfig(t), secrets: []string{"gone@example.com", "Gonzo", "user-gone"}}
	c := openTest(t, f.cfg)
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"a1","userId":"user-gone","anonymousId":"dev-gone","traits":{"email":"gone@example.com","first_name":"Gonzo"},"timestamp":"2026-10-01T09:00:00Z"}`,
		`{"type":"track","messageId":"a2","userId":"user-gone","event":"Order Completed","properties":{"total":99},"timestamp":"2026-10-01T09:01:00Z"}`,
		`{"type":"identify","messageId":"b1","userId":"stays","traits":{"email":"stays@example.com"},"timestamp":"2026-10-01T09:00:00Z"}`,
		// A device shared once: the refused merge links the two people.
		`{"type":"identify","messageId":"b2","userId":"stays","anonymousId":"dev-gone","timestamp":"2026-10-02T09:00:00Z"}`,
	)
	consentSet(t, c, "gone@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", nil)
	if schema1 {
		downgradeObservations(t, c)
	}
	var buf bytes.Buffer
	info, err := c.Backup(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.ByPrefix["e/"] < 3 || info.ByPrefix["c/"] < 1 {
		t.Fatalf("backup holds %v", info.ByPrefix)
	}
	f.backup = buf.Bytes()
	var vb bytes.Buffer
	if _, err := c.BackupVault(ctx, &vb); err != nil {
		t.Fatal(err)
	}
	f.vault = vb.Bytes()
	for _, s := range f.secrets {
		if bytes.Contains(f.backup, []byte(s)) {
			t.Fatalf("the backup file holds %q in plaintext", s)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.rawCopy = filepath.Join(t.TempDir(), "store-before-deletion")
	if err := os.CopyFS(f.rawCopy, os.DirFS(f.cfg.storeDir())); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, f.cfg)
	if f.cert, err = c.Delete(ctx, identity.Identifier{Type: identity.UserID, Value: "user-gone"}); err != nil {
		t.Fatal(err)
	}
	if len(f.cert.KEKRetired) == 0 || len(f.cert.DEKsShredded) != len(f.cert.Profiles) {
		t.Fatalf("certificate %+v", f.cert)
	}
	// A newer record for the person who stays, after the backup.
	ingestAll(t, c, `{"type":"track","messageId":"b3","userId":"stays","event":"Product Viewed","timestamp":"2026-10-03T09:00:00Z"}`)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *shreddingFixture) deleted(p uuid.UUID) bool {
	for _, q := range f.cert.Profiles {
		if q == p {
			return true
		}
	}
	return false
}

// The shredding test: after the deletion and the KEK rotation, with the
// current keys, no sealed record of the deleted person opens -- neither
// in a raw copy of the data directory nor in a backup, both taken before
// the deletion -- while everyone else's records in the same copies do.
func TestShreddingOldCopiesAndBackups(t *testing.T) {
	ctx := context.Background()
	f := newShreddingFixture(t)
	master, err := loadMaster(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	vo := keys.DefaultOptions()
	vo.Master = master
	vault, err := keys.Open(ctx, f.cfg.vaultDir(), vo)
	if err != nil {
		t.Fatal(err)
	}
	defer vault.Close()
	type tally struct{ opened, refused int }
	check := func(where string, k, v []byte, n *tally) error {
		rule := ruleFor(k)
		if rule == nil || !rule.sealed {
			return nil
		}
		pid := rule.pids(k, v)[0]
		_, err := vault.Unseal(ctx, pid, k, v)
		switch {
		case f.deleted(pid) && err == nil:
			return errors.New(where + ": a record of the deleted person opened under " + string(rule.prefix))
		case f.deleted(pid) && !errors.Is(err, keys.ErrKeyShredded):
			return errors.New(where + ": unexpected error " + err.Error())
		case f.deleted(pid):
			n.refused++
		case err != nil:
			return errors.New(where + ": another person's record does not open: " + err.Error())
		default:
			n.opened++
		}
		return nil
	}
	so := store.DefaultOptions()
	so.EncryptionKey = master.Subkey(keys.PurposeStoreEncryption, 32)
	so.Pipelined = true
	so.MemTableSize, so.BlockCacheSize, so.IndexCacheSize = 16<<20, 16<<20, 16<<20
	old, err := store.Open(ctx, f.rawCopy, so)
	if err != nil {
		t.Fatal(err)
	}
	var raw tally
	err = old.View(ctx, func(tx *store.Txn) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) error { return check("raw copy", k, v, &raw) })
	})
	_ = old.Close()
	if err != nil {
		t.Fatal(err)
	}
	var bk tally
	if _, err := store.ReadBackup(ctx, bytes.NewReader(f.backup), master.Subkey(keys.PurposeBackup, 32), store.BackupVisitor{
		Record: func(k, v []byte, _ uint64) error { return check("backup", k, v, &bk) }}); err != nil {
		t.Fatal(err)
	}
	// gone: 2 profiles + 2 events + 1 consent (at least); stays: 2 profiles + 2 events.
	for name, n := range map[string]tally{"raw copy": raw, "backup": bk} {
		if n.refused < 5 || n.opened < 3 {
			t.Errorf("%s: %d records of the deleted person refused, %d of others opened", name, n.refused, n.opened)
		}
	}
}

// Restoring a backup taken before a deletion never brings the deleted
// person back, whether it replaces the current store (whose audit log,
// suppression list and requests are kept) or lands in an empty data
// directory next to the vault (suppressions re-derived, audit reanchored).
func TestRestoreBackupTakenBeforeDeletion(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lose        bool // the data store is lost: restore into an empty directory
		oldVault    bool // the vault too is restored from its backup of before the deletion
		wantAudit   string
		wantReplace bool
		schema1     bool // a backup of schema version 1 (observations under g/)
	}{
		{"over the current store", false, false, "appended", true, false},
		{"into an empty data directory", true, false, "reanchored", false, false},
		// The old vault still holds the deleted person's keys: the deletion
		// certificates on the kept audit log shred them again.
		{"with the vault restored from before the deletion", false, true, "reanchored", true, false},
		{"a backup of schema version 1", false, false, "appended", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newShreddingFixtureOf(t, tc.schema1)
			if tc.oldVault {
				if err := os.RemoveAll(f.cfg.vaultDir()); err != nil {
					t.Fatal(err)
				}
				m, _ := loadMaster(f.cfg)
				vo := keys.DefaultOptions()
				vo.Master = m
				if _, err := keys.RestoreVault(ctx, f.cfg.vaultDir(), bytes.NewReader(f.vault), vo); err != nil {
					t.Fatal(err)
				}
			}
			if tc.lose {
				if err := os.RemoveAll(f.cfg.storeDir()); err != nil {
					t.Fatal(err)
				}
			} else if _, err := Restore(ctx, f.cfg, Options{}, bytes.NewReader(f.backup), RestoreOptions{}); !errors.Is(err, ErrRestoreNotEmpty) {
				t.Fatalf("restore over data without --force: %v", err)
			}
			rep, err := Restore(ctx, f.cfg, Options{Now: func() time.Time { return fixedNow }}, bytes.NewReader(f.backup), RestoreOptions{Force: true})
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(rep)
			t.Logf("restore report: %s", js)
			if rep.DeletedProfiles != len(f.cert.Profiles) || rep.Unopenable["p/"] != int64(len(f.cert.Profiles)) || rep.Unopenable["e/"] != 2 ||
				rep.Unopenable["i/"] < 2 || rep.Unopenable["c/"] != 1 || rep.Audit != tc.wantAudit || rep.ReplacedStore != tc.wantReplace {
				t.Fatalf("restore report %s", js)
			}
			if tc.schema1 != (rep.Restored["g/"] > 0) || rep.Restored["o/"] > 0 && tc.schema1 {
				t.Fatalf("restored observations %d under g/, %d under o/", rep.Restored["g/"], rep.Restored["o/"])
			}
			if tc.oldVault != (rep.Reshredded == len(f.cert.Profiles)) {
				t.Fatalf("re-shredded %d keys: %s", rep.Reshredded, js)
			}
			if tc.lose && rep.SuppressionsAdded < 2 {
				t.Fatalf("suppressions not re-derived: %s", js)
			}
			c := openTest(t, f.cfg)
			for _, id := range []identity.Identifier{{Type: identity.UserID, Value: "user-gone"}, {Type: identity.Email, Value: "gone@example.com"}, {Type: identity.AnonymousID, Value: "dev-gone"}} {
				if _, err := c.Access(ctx, id); !errors.Is(err, ErrProfileNotFound) {
					t.Fatalf("access by %s after restore: %v", id.Type, err)
				}
			}
			p, err := c.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: "stays"}, ShowOptions{})
			if err != nil || p.EventCount < 1 {
				t.Fatalf("the person who stays: %+v %v", p, err)
			}
			// Nothing left names the deleted profiles (journals of others and
			// the audit log name profile ids only).
			if err := c.store.View(ctx, func(tx *store.Txn) error {
				return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) error {
					if bytes.HasPrefix(k, []byte(store.PrefixAudit)) || bytes.HasPrefix(k, []byte(store.PrefixJournal)) || bytes.HasPrefix(k, []byte(store.PrefixRequest)) {
						return nil
					}
					for _, d := range f.cert.Profiles {
						if bytes.Contains(k, d[:]) || bytes.Contains(v, d[:]) {
							return errors.New("a record under " + store.PrefixOf(k) + " still names a deleted profile")
						}
					}
					return nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			// Late events for the deleted person are suppressed.
			res, err := c.Ingest(ctx, []event.Message{msg(t, event.Track, `{"messageId":"late","userId":"user-gone","event":"Product Viewed"}`)})
			if err != nil || res.Suppressed != 1 {
				t.Fatalf("late event after restore: %+v %v", res, err)
			}
			if v, err := c.AuditVerify(ctx); err != nil || !v.OK {
				t.Fatalf("audit after restore: %+v %v", v, err)
			}
			tail, _ := c.AuditTail(ctx, 3)
			kinds := ""
			for _, e := range tail {
				kinds += e.Kind + " "
			}
			if !strings.Contains(kinds, map[string]string{"appended": "backup.restore", "reanchored": "audit.reanchor"}[tc.wantAudit]) {
				t.Fatalf("audit tail after restore: %s", kinds)
			}
			if !tc.lose {
				if rs, _ := c.Requests(ctx, false); len(rs) == 0 {
					t.Fatal("the deletion request was rolled back by the restore")
				}
			}
		})
	}
}
