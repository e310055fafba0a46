package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
)

// copyTree copies a data directory (files only, modes kept owner-only).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil // the socket of a server, the lock
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

// auditKey is the store key of audit entry seq (docs: core/audit/doc.go).
func auditKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(store.PrefixAudit), seq)
}

// tamperStore opens a (copied, closed) data directory's store with its
// master key, as someone holding both could, and lets edit change it.
func tamperStore(t *testing.T, dir string, edit func(tx *store.Txn) error) {
	t.Helper()
	m, err := keys.LoadMasterFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	so := store.DefaultOptions()
	so.EncryptionKey = m.Subkey(keys.PurposeStoreEncryption, 32)
	so.MustExist = true
	st, err := store.Open(context.Background(), filepath.Join(dir, "store"), so)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), edit); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyCLIFindsTampering changes copies of a real store's audit
// log — an entry edited, deleted, two swapped — and checks that `custody
// audit verify` exits non-zero naming the first bad sequence number, in
// text and in JSON; the untouched original still verifies. (core/audit's
// own tests cover the detection in depth; this is the command a DPO runs.)
func TestAuditVerifyCLIFindsTampering(t *testing.T) {
	dir := initDataDir(t)
	fixture := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(fixture, []byte(importFixture), 0o600); err != nil {
		t.Fatal(err)
	}
	custody(t, dir, "import", fixture) // exit 4: it has bad lines
	for _, args := range [][]string{
		{"consent", "set", "--email", "cli.one@example.com", "--purpose", "marketing.communications.email", "--status", "granted"},
		{"consent", "set", "--email", "cli.one@example.com", "--purpose", "marketing.communications.email", "--status", "withdrawn"},
		{"privacy", "access", "--user-id", "cli-user-1"},
		{"keys", "rotate"},
		{"privacy", "access", "--user-id", "cli-user-1"},
		{"apikey", "create", "--role", "dpo"},
		{"keys", "rotate"},
		{"privacy", "access", "--email", "cli.one@example.com"},
	} {
		mustCustody(t, dir, args...)
	}
	var tail []struct {
		Seq  uint64 `json:"seq"`
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal([]byte(mustCustody(t, dir, "audit", "tail", "-n", "100", "--json").stdout), &tail); err != nil {
		t.Fatal(err)
	}
	if len(tail) < 8 {
		t.Fatalf("only %d audit entries: the cases below need entries away from both ends", len(tail))
	}
	// Entries in the middle: the sealed head holds the last batch in
	// full, which Open would put back.
	const n = 3
	tests := []struct {
		name  string
		edit  func(tx *store.Txn) error
		first uint64
	}{
		{"edited entry", func(tx *store.Txn) error {
			v, err := tx.Get(auditKey(n))
			if err != nil {
				return err
			}
			v = append([]byte(nil), v...)
			// The first byte of the kind (after tag, seq, time and the
			// kind's length): still a valid kind, another hash.
			v[16+8+8+4] ^= 0x01
			return tx.Set(auditKey(n), v)
		}, n},
		{"deleted entry", func(tx *store.Txn) error { return tx.Delete(auditKey(n)) }, n},
		{"swapped entries", func(tx *store.Txn) error {
			a, err := tx.Get(auditKey(n))
			if err != nil {
				return err
			}
			b, err := tx.Get(auditKey(n + 1))
			if err != nil {
				return err
			}
			a, b = append([]byte(nil), a...), append([]byte(nil), b...)
			return errors.Join(tx.Set(auditKey(n), b), tx.Set(auditKey(n+1), a))
		}, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := newDataDir(t)
			copyTree(t, dir, cp)
			tamperStore(t, cp, tt.edit)
			r := custody(t, cp, "audit", "verify")
			if r.code == 0 {
				t.Fatalf("a tampered log verified\n%s", r)
			}
			wantIn(t, "stderr", r.stderr, "audit log FAILED at entry "+strconv.FormatUint(tt.first, 10)+":")
			r = custody(t, cp, "audit", "verify", "--json")
			var rep struct {
				OK       bool   `json:"ok"`
				FirstBad uint64 `json:"first_bad"`
				Problem  string `json:"problem"`
			}
			if r.code == 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.OK || rep.FirstBad != tt.first || rep.Problem == "" {
				t.Errorf("--json: %+v, want first_bad %d\n%s", rep, tt.first, r)
			}
			if strings.Contains(r.stdout+r.stderr, "cli.one@example.com") {
				t.Errorf("the report quotes personal data\n%s", r)
			}
		})
	}
	// The original was never touched.
	wantIn(t, "verify of the original", mustCustody(t, dir, "audit", "verify").stdout, "audit log OK")
}
