package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// person is someone whose personal data goes into Custody. Every value is
// distinctive enough that finding it anywhere is a leak, not a coincidence.
type person struct {
	userID, anonID      string
	email               string
	first, last         string
	phone, phoneDigits  string
	street, city, zip   string
	ip                  string
	viaImport, directly bool // ingested by `custody import` (through the server or not)
}

var plaintextPeople = []person{
	{userID: "usr-quintessa-90210", anonID: "anon-zq-8c1d5e7f", email: "zelda.quintessa@example.org",
		first: "Zelda", last: "Quintessa", phone: "+1 (555) 014-7788", phoneDigits: "+15550147788",
		street: "1428 Elmwood Quarry Lane", city: "Vexholm", zip: "97531", ip: "198.51.100.77"},
	{userID: "usr-brightwater-31337", anonID: "anon-bw-44f0aa19", email: "Ottoline.Brightwater@Example.net",
		first: "Ottoline", last: "Brightwater", phone: "+44 20 7946 0321", phoneDigits: "+442079460321",
		street: "88 Marrowbone Crescent", city: "Dunwick-on-Sea", zip: "DW4 7QX", ip: "203.0.113.199"},
	{userID: "usr-fennimore-27182", anonID: "anon-fm-9d2b6c03", email: "ignatius.fennimore@example.com",
		first: "Ignatius", last: "Fennimore", phone: "+49 30 9018 2046", phoneDigits: "+493090182046",
		street: "Kastanienallee 77 Hinterhof", city: "Quedlinstadt", zip: "10435", ip: "192.0.2.141", viaImport: true},
	{userID: "usr-ravensworth-16180", anonID: "anon-rw-5a7e31d8", email: "perpetua.ravensworth@example.co.uk",
		first: "Perpetua", last: "Ravensworth", phone: "+33 1 70 18 99 42", phoneDigits: "+33170189942",
		street: "12 Rue des Lilas Cachees", city: "Montbrisac", zip: "75011", ip: "198.51.100.203", viaImport: true, directly: true},
}

// leakProbes are values sent only inside rejected input: they must not be
// stored or echoed anywhere either.
var leakProbes = []string{
	"leak.check@example.org", "leak.batch@example.org", "leak.syntax@example.org",
	"leak.import@example.org", "leak.lookup@example.org",
	// Privacy requests for no one, and a phone with no digits.
	"leak.access@example.org", "leak.delete@example.org", "leak.unsuppress@example.org", "leak-phone-no-digits",
}

func (p person) needles() []string {
	local, _, _ := strings.Cut(p.email, "@")
	return []string{p.userID, p.anonID, p.email, local, p.first, p.last, p.phone, p.phoneDigits,
		strings.TrimPrefix(p.phoneDigits, "+"), p.street, p.city, p.ip,
		p.first + " " + p.last}
}

func (p person) messages() []map[string]any {
	address := map[string]any{"street": p.street, "city": p.city, "postal_code": p.zip}
	return []map[string]any{
		{"type": "page", "anonymousId": p.anonID, "name": "Signup",
			"properties": map[string]any{"url": "https://shop.example/signup?email=" + p.email},
			"context":    map[string]any{"ip": p.ip, "traits": map[string]any{"email": p.email}}},
		{"type": "identify", "userId": p.userID, "anonymousId": p.anonID,
			"traits": map[string]any{"email": p.email, "firstName": p.first, "lastName": p.last,
				"name": p.first + " " + p.last, "phone": p.phone, "address": address},
			"context": map[string]any{"ip": p.ip}},
		{"type": "track", "userId": p.userID, "event": "Order Completed",
			"properties": map[string]any{"order_id": "o-" + p.zip, "total": 42.5, "shipping_address": address,
				"recipient": p.first + " " + p.last, "contact_phone": p.phone},
			"context": map[string]any{"traits": map[string]any{"email": p.email, "phone": p.phone}}},
		{"type": "group", "userId": p.userID, "groupId": "grp-" + p.last,
			"traits": map[string]any{"name": p.last + " Holdings", "email": p.email}},
	}
}

// TestNoPlaintextOnDiskOrLogs ingests personal data every way there is
// (HTTP endpoints, batch, `custody import` through the server and
// directly), provokes errors around values that carry personal data, and
// then scans every byte of the data directory and of every log for it.
func TestNoPlaintextOnDiskOrLogs(t *testing.T) {
	dir := initDataDir(t)
	var logs []namedBytes // everything Custody printed where logs go
	keep := func(name string, r result) {
		logs = append(logs, namedBytes{name + " stderr", []byte(r.stderr)})
	}

	// 1. Direct import (no server), debug logging.
	var direct, viaServer []byte
	for _, p := range plaintextPeople {
		if !p.viaImport {
			continue
		}
		for _, m := range p.messages() {
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if p.directly {
				direct = append(append(direct, b...), '\n')
			} else {
				viaServer = append(append(viaServer, b...), '\n')
			}
		}
	}
	// A line with personal data in a wrong-typed field: rejected, and the
	// report must say where without repeating the value.
	bad := []byte(`{"type":"identify","userId":{"email":"leak.import@example.org"},"traits":{"email":"leak.import@example.org"}}` + "\n")
	importFile := func(name string, content []byte, wantAccepted int) {
		t.Helper()
		path := filepath.Join(dir, name) // the user's own file, deleted before the scan
		if err := os.WriteFile(path, append(content, bad...), 0o600); err != nil {
			t.Fatal(err)
		}
		r := custody(t, dir, "--log-level", "debug", "import", "--json", path)
		if r.code != 4 {
			t.Fatalf("import with one bad line: want exit 4\n%s", r)
		}
		var rep struct {
			Accepted int `json:"accepted"`
			Rejected int `json:"rejected"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Accepted != wantAccepted || rep.Rejected != 1 {
			t.Fatalf("import report: %v, want %d accepted and 1 rejected\n%s", err, wantAccepted, r)
		}
		keep("import "+name, r)
		logs = append(logs, namedBytes{"import " + name + " report (stdout)", []byte(r.stdout)})
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	importFile("direct-import.jsonl", direct, 4)
	keyRes := mustCustody(t, dir, "--log-level", "debug", "apikey", "create", "--role", "ingest", "--json")
	keep("apikey create", keyRes)
	var k struct{ Key string }
	if err := json.Unmarshal([]byte(keyRes.stdout), &k); err != nil || k.Key == "" {
		t.Fatalf("apikey create: %v\n%s", err, keyRes)
	}
	adminKey := createKey(t, dir, "admin")

	// 2. The server, at debug level.
	srv := startServer(t, dir, "--log-level", "debug")
	for _, p := range plaintextPeople {
		if p.viaImport {
			continue
		}
		msgs := p.messages()
		// One message per endpoint for the first person, a batch for the
		// second: both paths must be clean.
		if p.first == "Zelda" {
			for _, m := range msgs {
				mustPost(t, srv.URL, "/v1/"+m["type"].(string), k.Key, m, 200)
			}
		} else {
			mustPost(t, srv.URL, "/v1/batch", k.Key, map[string]any{"batch": msgs,
				"context": map[string]any{"traits": map[string]any{"email": p.email}}}, 200)
		}
		mustPost(t, srv.URL, "/v1/alias", k.Key, map[string]any{"userId": p.userID, "previousId": p.anonID}, 200)
	}
	// Rejected requests whose bodies carry personal data: the 400 must say
	// which field, never the value.
	for _, c := range []struct{ path, body string }{
		{"/v1/identify", `{"userId":{"email":"leak.check@example.org"},"traits":{"email":"leak.check@example.org"}}`},
		{"/v1/batch", `{"batch":[{"type":"track","userId":"u-ok","event":"Fine"},{"type":"identify","anonymousId":["leak.batch@example.org"]}]}`},
		{"/v1/track", `{"userId":"leak.syntax@example.org","event":"Broken",`},
	} {
		body := mustPost(t, srv.URL, c.path, k.Key, c.body, 400)
		var eb struct{ Error, Code, Field string }
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
			t.Errorf("POST %s: 400 body is not the JSON error shape: %s", c.path, body)
		}
		logs = append(logs, namedBytes{"400 response to " + c.path, body})
	}
	// A wrong key with a body full of personal data.
	body := mustPost(t, srv.URL, "/v1/identify", "cus_not-a-key", plaintextPeople[0].messages()[1], 401)
	logs = append(logs, namedBytes{"401 response", body})

	// Import and lookups through the server's socket: the URL query of a
	// lookup carries the identifier, the import body the data.
	importFile("server-import.jsonl", viaServer, 4)
	for _, p := range plaintextPeople {
		pv, r := showProfile(t, dir, "user-id", p.userID)
		keep("profile show "+p.userID, r)
		if got := string(pv.Traits["email"]); got != `"`+p.email+`"` {
			t.Fatalf("%s: trait email = %s, want %q: the scan below would prove nothing", p.userID, got, p.email)
		}
		if !strings.Contains(r.stdout, p.street) {
			t.Fatalf("%s: the address was not stored: the scan below would prove nothing", p.userID)
		}
	}
	needles, secrets := plaintextNeedles(), []string{k.Key, adminKey}
	// While the server runs, its memtables' write-ahead logs and value
	// logs hold the latest writes: they must be ciphertext too.
	scanDir(t, dir, "while serving", needles, secrets)

	r := custody(t, dir, "--log-level", "debug", "profile", "show", "--email", "leak.lookup@example.org")
	if r.code != 3 {
		t.Errorf("profile show --email of nobody: want exit 3\n%s", r)
	}
	keep("profile show --email", r)

	// Privacy requests through the server, and their error paths. An
	// access report is the person's data by design: its stdout is checked
	// to hold it (else the scan of the rest proves little) and not
	// scanned; everything else they print is.
	zelda, gone := plaintextPeople[0], plaintextPeople[1]
	privacy := func(name string, wantCode int, args ...string) result {
		t.Helper()
		r := custody(t, dir, append([]string{"--log-level", "debug", "privacy"}, args...)...)
		if r.code != wantCode {
			t.Fatalf("%s: want exit %d\n%s", name, wantCode, r)
		}
		keep(name, r)
		return r
	}
	// runPrivacy runs each case, keeping its stdout for the scan.
	runPrivacy := func(cases []privacyCase) {
		for _, c := range cases {
			r := privacy(c.name, c.code, c.args...)
			logs = append(logs, namedBytes{c.name + " stdout", []byte(r.stdout)})
		}
	}
	if r := privacy("privacy access", 0, "access", "--email", zelda.email); !strings.Contains(r.stdout, zelda.street) {
		t.Fatalf("the access report lacks the person's address: the scan would prove nothing\n%s", r)
	}
	runPrivacy([]privacyCase{
		{"privacy delete", 0, []string{"delete", "--email", gone.email, "--json"}},
		{"privacy unsuppress", 0, []string{"unsuppress", "--anonymous-id", gone.anonID, "--json"}},
		{"privacy access of the deleted person", 0, []string{"access", "--email", gone.email}},
		{"privacy access of nobody", 0, []string{"access", "--email", "leak.access@example.org"}},
		{"privacy delete of nobody", 3, []string{"delete", "--email", "leak.delete@example.org"}},
		{"privacy unsuppress of nobody", 0, []string{"unsuppress", "--email", "leak.unsuppress@example.org"}},
		{"privacy access with a bad phone", 2, []string{"access", "--phone", "leak-phone-no-digits"}},
		{"privacy delete with a bad phone", 2, []string{"delete", "--phone", "leak-phone-no-digits"}},
	})
	code, metrics, err := get(srv.URL + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	logs = append(logs, namedBytes{"/metrics", metrics})
	srv.stop(t)
	logs = append(logs, namedBytes{"server stdout", srv.stdout.Bytes()}, namedBytes{"server stderr", srv.stderr.Bytes()})
	if !strings.Contains(srv.stderr.String(), "level=DEBUG") {
		t.Errorf("the server logged nothing at debug level: the log scan would prove little\n%s", srv.stderr)
	}

	// 3. Once more without the server: a direct store open at debug level.
	direct2 := mustCustody(t, dir, "--log-level", "debug", "profile", "show", "--user-id", plaintextPeople[3].userID, "--json")
	if !strings.Contains(direct2.stdout, plaintextPeople[3].email) {
		t.Fatalf("direct profile show did not return the stored email\n%s", direct2)
	}
	keep("direct profile show", direct2)
	// The privacy error paths once more on a direct store open.
	runPrivacy([]privacyCase{
		{"direct privacy access of the deleted person", 0, []string{"access", "--user-id", gone.userID, "--json"}},
		{"direct privacy access of nobody", 0, []string{"access", "--email", "leak.access@example.org"}},
		{"direct privacy delete of nobody", 3, []string{"delete", "--email", "leak.delete@example.org"}},
		{"direct privacy access with a bad phone", 2, []string{"access", "--phone", "leak-phone-no-digits"}},
	})

	// The final scan: the data directory at rest, and every log.
	files := scanDir(t, dir, "at rest", needles, secrets)
	for _, l := range logs {
		scan(t, l.name, l.b, append(needles, secrets...))
	}
	t.Logf("scanned %d files and %d logs/responses for %d values", files, len(logs), len(needles)+len(secrets))
}

// plaintextNeedles is every value of plaintextPeople and leakProbes that
// must never appear.
func plaintextNeedles() []string {
	var needles []string
	for _, p := range plaintextPeople {
		needles = append(needles, p.needles()...)
	}
	needles = append(needles, leakProbes...)
	for _, p := range leakProbes {
		local, _, _ := strings.Cut(p, "@")
		needles = append(needles, local)
	}
	return needles
}

// scanDir scans the name and content of every file under dir for needles
// and secrets (secrets are not looked for in names) and returns the number
// of files scanned.
func scanDir(t *testing.T, dir, when string, needles, secrets []string) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		scan(t, when+": file name "+rel, []byte(rel), needles)
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			files++
			found, err := scanFile(path, append(append([]string(nil), needles...), secrets...))
			if err != nil {
				return err
			}
			for _, f := range found {
				t.Errorf("%s: %s: %s", when, rel, f)
			}
		case d.Type()&fs.ModeSocket != 0 && rel == "custody.sock":
		default:
			t.Errorf("%s: unexpected file type in the data directory: %s (%s)", when, rel, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("%s: scanned only %d files in %s", when, files, dir)
	}
	return files
}

type namedBytes struct {
	name string
	b    []byte
}

// scan reports every needle found in b, exactly or ignoring case.
func scan(t *testing.T, where string, b []byte, needles []string) {
	t.Helper()
	for _, f := range findNeedles(0, b, needles) {
		t.Errorf("%s: %s", where, f)
	}
}

// findNeedles describes every needle found in b (which starts at offset
// off of its source), exactly or ignoring case.
func findNeedles(off int64, b []byte, needles []string) []string {
	var found []string
	lower := bytes.ToLower(b)
	for _, n := range needles {
		if n == "" {
			continue
		}
		if i := bytes.Index(b, []byte(n)); i >= 0 {
			found = append(found, fmt.Sprintf("contains %q at byte %d: %s", n, off+int64(i), excerpt(b, i, len(n))))
		} else if i := bytes.Index(lower, []byte(strings.ToLower(n))); i >= 0 {
			found = append(found, fmt.Sprintf("contains %q (ignoring case) at byte %d: %s", n, off+int64(i), excerpt(b, i, len(n))))
		}
	}
	return found
}

// scanFile scans a file in chunks (Badger's value logs and memtables are
// large sparse files while the store is open), skipping all-zero chunks.
func scanFile(path string, needles []string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const chunk = 1 << 20
	overlap := 0
	for _, n := range needles {
		overlap = max(overlap, len(n))
	}
	buf := make([]byte, overlap+chunk)
	zero := make([]byte, len(buf))
	var found []string
	carry := 0 // bytes kept from the previous chunk, for needles across the boundary
	var off int64
	for {
		n, err := io.ReadFull(f, buf[carry:])
		data := buf[:carry+n]
		if n > 0 && !bytes.Equal(data, zero[:len(data)]) {
			found = append(found, findNeedles(off-int64(carry), data, needles)...)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return found, nil
		}
		if err != nil {
			return found, err
		}
		off += int64(n)
		carry = min(max(overlap-1, 0), len(data))
		copy(buf, data[len(data)-carry:])
	}
}

func excerpt(b []byte, i, n int) string {
	lo, hi := max(0, i-60), min(len(b), i+n+60)
	return fmt.Sprintf("%q", b[lo:hi])
}

// TestScanFinds checks the scanner itself, so that the absence of findings
// above means something: a needle after a sparse hole, one across a chunk
// boundary, and one in another case are all found.
func TestScanFinds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	b := make([]byte, 3<<20+100)
	copy(b[2<<20+5:], "zelda.quintessa@example.org") // after 2 MiB of zeros
	// The first read is len(longest needle) + 1 MiB bytes long.
	copy(b[len("zelda.quintessa@example.org")+1<<20-4:], "Brightwater") // across the first read's end
	copy(b[3<<20+10:], strings.ToUpper("ignatius.fennimore"))           // other case
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	found, err := scanFile(path, []string{"zelda.quintessa@example.org", "Brightwater", "ignatius.fennimore", "absent-value"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 3 {
		t.Fatalf("found %d of 3 planted values: %q", len(found), found)
	}
	for _, want := range []string{"zelda.quintessa", "Brightwater", "ignatius.fennimore"} {
		ok := false
		for _, f := range found {
			ok = ok || strings.Contains(f, want)
		}
		if !ok {
			t.Errorf("%s not found: %q", want, found)
		}
	}
	for _, f := range found {
		if strings.Contains(f, "absent-value") {
			t.Errorf("false positive: %s", f)
		}
	}
}

// privacyCase is a privacy command of the plaintext test and its exit code.
type privacyCase struct {
	name string
	code int
	args []string
}
