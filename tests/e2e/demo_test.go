package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemoPrivacyProofs runs `custody demo` (what `make demo` and the
// README show first) at a small size on a fresh directory and checks what
// it claims about privacy: the access report it names exists, outside the
// data directory, readable by its owner only, and is the person's; the
// deletion certificate is complete; and both proofs hold — an access
// request now finds no one, and a late event was suppressed. The CLI then
// agrees with what the demo printed.
func TestDemoPrivacyProofs(t *testing.T) {
	dir := newDataDir(t)
	start := time.Now()
	r := custody(t, dir, "demo", "--customers", "200", "--days", "30")
	if r.code != 0 {
		t.Fatalf("demo failed\n%s", r)
	}
	t.Logf("demo: %s", time.Since(start).Round(time.Millisecond))
	out := r.stdout

	// The access request names the report's path.
	m := regexp.MustCompile(`(?m)^== access request \(GDPR Art\. 15\) for (\S+): (\d+) identifiers, (\d+) events, .* -> (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no access request line\n%s", out)
	}
	email, path := m[1], m[4]
	if strings.HasPrefix(filepath.Clean(path), filepath.Clean(dir)+string(filepath.Separator)) {
		t.Errorf("the access report %s is inside the data directory %s", path, dir)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the access report the demo names: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("access report mode %s, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Person *struct {
			Identifiers []struct{ Type, Value string } `json:"identifiers"`
			EventCount  int                            `json:"event_count"`
		} `json:"person"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Person == nil {
		t.Fatalf("access report: %v\n%.500s", err, b)
	}
	found := false
	for _, id := range rep.Person.Identifiers {
		found = found || id.Type == "email" && id.Value == email
	}
	if n, _ := strconv.Atoi(m[2]); !found || len(rep.Person.Identifiers) != n || strconv.Itoa(rep.Person.EventCount) != m[3] {
		t.Errorf("the report does not match the line (%s): %d identifiers, %d events, email found %v", m[0], len(rep.Person.Identifiers), rep.Person.EventCount, found)
	}

	// The deletion certificate, printed as JSON after its heading.
	const heading = "deletion certificate (on the audit log; no personal data):\n"
	i := strings.Index(out, heading)
	if i < 0 {
		t.Fatalf("no deletion certificate\n%s", out)
	}
	var cert struct {
		Request      string         `json:"request"`
		Person       string         `json:"person"`
		Profiles     []string       `json:"profiles"`
		Records      map[string]int `json:"records"`
		Suppressed   []string       `json:"suppressed"`
		DEKsShredded []string       `json:"deks_shredded"`
		KEKRetired   []uint32       `json:"kek_epochs_retired"`
	}
	if err := json.NewDecoder(strings.NewReader(out[i+len(heading):])).Decode(&cert); err != nil {
		t.Fatalf("certificate: %v\n%s", err, out[i:])
	}
	if cert.Request == "" || cert.Person == "" || len(cert.Profiles) == 0 || len(cert.DEKsShredded) != len(cert.Profiles) ||
		len(cert.KEKRetired) == 0 || len(cert.Suppressed) != len(rep.Person.Identifiers) || cert.Records["e/"] != rep.Person.EventCount {
		t.Errorf("certificate incomplete: %+v (the person had %d identifiers, %d events)", cert, len(rep.Person.Identifiers), rep.Person.EventCount)
	}
	if strings.Contains(out[i:i+strings.Index(out[i:], "\nproof:")], email) {
		t.Error("the deletion certificate names the person's email")
	}

	// Both proofs.
	if !strings.Contains(out, "proof: an access request for "+email+" now finds no one") {
		t.Errorf("no proof that access finds no one\n%s", out)
	}
	sm := regexp.MustCompile(`proof: a late event for their user id was suppressed \((\d+) suppressed, (\d+) stored\)`).FindStringSubmatch(out)
	if sm == nil || sm[1] == "0" || sm[2] != "0" {
		t.Errorf("no proof that a late event was suppressed: %v\n%s", sm, out)
	}
	if !regexp.MustCompile(`audit log: \d+ hash-chained entries .* verified: true`).MatchString(out) {
		t.Errorf("the audit log was not verified\n%s", out)
	}

	// The CLI agrees: the deletion request is completed, access finds no
	// one, and the audit log verifies.
	list := mustCustody(t, dir, "privacy", "show", cert.Request, "--json")
	if !strings.Contains(list.stdout, `"status": "completed"`) {
		t.Errorf("deletion request %s: %s", cert.Request, list.stdout)
	}
	after := mustCustody(t, dir, "privacy", "access", "--email", email, "--json")
	checkEmptyAccess(t, after)
	mustCustody(t, dir, "audit", "verify")
}
