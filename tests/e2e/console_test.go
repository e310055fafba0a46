package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromiumPath is Debian's Chromium (package chromium), which .ci/run
// installs.
const chromiumPath = "/usr/bin/chromium"

// TestConsoleBrowser drives a real Chromium through the web console of a
// real `custody serve` (tests/console/console.mjs, playwright-core): the
// DPO runs an access request and a deletion and runs requests filed through
// the API (receive_only) from the queue, the marketer creates and
// exports a segment and is refused a person's page, the admin sees keys and
// policies. Screenshots of every page, at 1280x800 and phone size, are kept
// after the test (in a new temp directory, or $CONSOLE_SCREENSHOTS) and
// their paths logged.
func TestConsoleBrowser(t *testing.T) {
	dir := repoPath(t, "tests", "console")
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node is not installed"
	default:
		if _, err := os.Stat(chromiumPath); err != nil {
			missing = chromiumPath + " is missing (apt-get install chromium; .ci/run does it)"
		} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
			missing = "tests/console/node_modules/playwright-core is missing (run `make console-deps`, i.e. `npm ci` in tests/console)"
		}
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the console browser test cannot run: %s", missing)
		}
		t.Skipf("skipping the console browser test: %s", missing)
	}

	data := initDataDir(t)
	exports := t.TempDir()
	cfg, err := os.OpenFile(filepath.Join(data, "custody.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(cfg, "\ndestinations:\n  newsletter: {kind: email, format: csv, dir: %q, fields: [email, first_name]}\n", exports)
	if cerr := cfg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, role := range []string{"ingest", "dpo", "marketer", "admin"} {
		keys[role] = createKey(t, data, role)
	}
	srv := startServer(t, data)

	// Two customers who bought; Ada consents to email marketing, Bob does
	// not say. The DPO deletes Bob.
	day := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339)
	batch := fmt.Sprintf(`{"batch": [
	 {"type":"identify","messageId":"c1","userId":"ada-4711","traits":{"email":"ada@example.com","first_name":"Ada","phone":"+4915112345678","address":{"country":"DE"}},"timestamp":%[1]q},
	 {"type":"track","messageId":"c2","userId":"ada-4711","event":"Order Completed","properties":{"total":50},"timestamp":%[1]q},
	 {"type":"identify","messageId":"c3","userId":"bob-4712","traits":{"email":"bob@example.com","first_name":"Bob","address":{"country":"DE"}},"timestamp":%[1]q},
	 {"type":"track","messageId":"c4","userId":"bob-4712","event":"Order Completed","properties":{"total":70},"timestamp":%[1]q}]}`, day)
	mustPost(t, srv.URL, "/v1/batch", keys["ingest"], batch, 200)
	mustCustody(t, data, "consent", "set", "--email", "ada@example.com", "--purpose", "marketing.communications.email", "--status", "granted")

	// The screenshots of a failed run outlive the test (t.TempDir would
	// delete them, and failure.png with them, before anyone could look): a
	// directory of their own, logged and removed only if the test passed,
	// or $CONSOLE_SCREENSHOTS when set (always kept).
	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	} else if shots, err = os.MkdirTemp("", "custody-console-screenshots-"); err != nil {
		t.Fatal(err)
	} else {
		t.Cleanup(func() {
			if !t.Failed() {
				_ = os.RemoveAll(shots)
			}
		})
	}
	t.Logf("screenshots are kept in %s (if the test fails)", shots)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs", "--base", srv.URL, "--dpo", keys["dpo"], "--marketer", keys["marketer"],
		"--admin", keys["admin"], "--email", "ada@example.com", "--delete-email", "bob@example.com", "--out", shots, "--chromium", chromiumPath)
	cmd.Dir = dir
	cmd.Env = baseEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var rep struct {
		Screenshots []string `json:"screenshots"`
		Steps       []string `json:"steps"`
		Error       string   `json:"error"`
	}
	jerr := json.Unmarshal(out, &rep)
	for _, p := range rep.Screenshots {
		t.Logf("screenshot: %s", p)
	}
	for _, s := range rep.Steps {
		t.Logf("step: %s", s)
	}
	if runErr != nil {
		var ee *exec.ExitError
		if errors.As(runErr, &ee) || ctx.Err() != nil {
			t.Fatalf("node console.mjs failed (%v): %s\nstderr:\n%s\nserver stderr:\n%s", runErr, rep.Error, stderr.String(), srv.stderr)
		}
		t.Fatalf("node console.mjs: %v", runErr)
	}
	if jerr != nil {
		t.Fatalf("console.mjs output: %v\n%s", jerr, out)
	}
	// 15 pages at two sizes each.
	if len(rep.Screenshots) < 30 {
		t.Errorf("%d screenshots, want at least 30", len(rep.Screenshots))
	}
	for _, p := range rep.Screenshots {
		if st, err := os.Stat(p); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s: %v", p, err)
		}
	}

	// What the browser did is what the server did: Bob is gone, the
	// export holds Ada only.
	srv.stop(t)
	if r := custody(t, data, "profile", "show", "--email", "bob@example.com", "--json"); r.code == 0 {
		t.Errorf("bob@example.com still has a profile after the deletion:\n%s", r)
	}
	files, _ := filepath.Glob(filepath.Join(exports, "*"))
	if len(files) != 1 {
		t.Fatalf("export files: %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil || !strings.Contains(string(b), "ada@example.com") || strings.Contains(string(b), "bob@") {
		t.Errorf("export file %s:\n%s", files[0], b)
	}
}

// TestAPIKeyRevoke lists and revokes a key with the CLI through a running
// server's socket: the key stops authenticating at once (its cached
// authentication is dropped), and the list keeps it, marked revoked.
func TestAPIKeyRevoke(t *testing.T) {
	data := initDataDir(t)
	key := createKey(t, data, "ingest")
	srv := startServer(t, data)
	msg := `{"type":"track","userId":"revoke-1","event":"Ping"}`
	mustPost(t, srv.URL, "/v1/track", key, msg, 200)

	var list []struct {
		ID        string     `json:"id"`
		Role      string     `json:"role"`
		RevokedAt *time.Time `json:"revoked_at"`
	}
	if err := json.Unmarshal([]byte(mustCustody(t, data, "apikey", "list", "--json").stdout), &list); err != nil || len(list) != 1 || list[0].Role != "ingest" || list[0].RevokedAt != nil {
		t.Fatalf("apikey list: %+v (%v)", list, err)
	}
	if r := mustCustody(t, data, "apikey", "list"); strings.Contains(r.stdout, key) {
		t.Fatal("apikey list prints the key itself")
	}
	mustCustody(t, data, "apikey", "revoke", list[0].ID)
	mustPost(t, srv.URL, "/v1/track", key, msg, 401)
	if r := custody(t, data, "apikey", "revoke", "no-such-id"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("revoke an unknown id: %s", r)
	}
	srv.stop(t)
	// Without the server, directly on the store: still revoked.
	list = nil
	if err := json.Unmarshal([]byte(mustCustody(t, data, "apikey", "list", "--json").stdout), &list); err != nil || len(list) != 1 || list[0].RevokedAt == nil {
		t.Fatalf("apikey list after restart: %+v (%v)", list, err)
	}
}
