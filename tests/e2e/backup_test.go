package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Backup while the server runs (through its socket), a deletion, then a
// restore of that backup with the server stopped: the deleted person does
// not come back, the other one does, the audit log verifies, and the backup
// file holds no plaintext. A request can wait for verification.
func TestBackupRestoreCLI(t *testing.T) {
	dir := initDataDir(t)
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"type":"identify","userId":"bk-1","messageId":"bk-m1","traits":{"email":"backup.gone@example.com","first_name":"Bertha"}}
{"type":"identify","userId":"bk-2","messageId":"bk-m2","traits":{"email":"backup.stays@example.com"}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, dir, "import", in)
	srv := startServer(t, dir)
	file := filepath.Join(t.TempDir(), "store.bak")
	r := mustCustody(t, dir, "backup", file)
	wantIn(t, "backup", r.stdout, "store backup written", "encrypted")
	mustCustody(t, dir, "backup", "--vault", filepath.Join(t.TempDir(), "vault.bak"))
	if r := custody(t, dir, "restore", "--force", file); r.code != 6 || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("restore while serve runs: %s", r)
	}
	// Received, then verified: the deletion happens only then.
	r = mustCustody(t, dir, "privacy", "delete", "--email", "backup.gone@example.com", "--receive-only", "--json")
	req := decodeJSON[struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}](t, r)
	if req.Status != "received" {
		t.Fatalf("receive-only: %s", r)
	}
	mustCustody(t, dir, "profile", "show", "--email", "backup.gone@example.com", "--json")
	mustCustody(t, dir, "privacy", "verify", req.ID, "--method", "e-mail round trip")
	srv.stop(t)

	if r := custody(t, dir, "restore", file); r.code != 2 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore over data without --force: %s", r)
	}
	r = mustCustody(t, dir, "restore", "--force", file)
	wantIn(t, "restore", r.stdout, "could not be opened, dropped", "kept from the replaced store")
	if r := custody(t, dir, "profile", "show", "--email", "backup.gone@example.com"); r.code != 3 {
		t.Fatalf("the deleted person after restore: %s", r)
	}
	mustCustody(t, dir, "profile", "show", "--email", "backup.stays@example.com")
	wantIn(t, "audit verify", mustCustody(t, dir, "audit", "verify").stdout, "audit log OK")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"backup.gone@example.com", "Bertha", "bk-1"} {
		if bytes.Contains(b, []byte(s)) {
			t.Fatalf("backup file holds %q", s)
		}
	}
}
