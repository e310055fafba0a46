package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/core"
	httpapi "github.com/custody-cdp/custody/core/server"
	"github.com/custody-cdp/custody/identity"
)

// The bad-input catalogue: malformed input at every door of Custody (HTTP
// ingestion and admin API, `custody import` of JSON Lines and of CSV through
// a mapping, segment definitions, policy directories, config files). Each
// case must fail with an error that names the problem, and leave the store
// exactly as it was: a digest of every key and value of the store (and the
// bytes of the files beside it that hold state) is compared before and
// after the case.

// stateDigest is the logical state of a data directory: every key and
// value of the store, plus the files outside the Badger directories that
// hold state.
type stateDigest struct {
	store string
	keys  int
	files string
}

// filesDigest hashes the state files beside the stores. Badger's own files
// are left out: they change on every open without a logical change.
func filesDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range []string{"custody.yaml", "master.key", "vault/keyring.json", "vault/audit-head"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		h.Write([]byte(f))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func digestOpen(t *testing.T, cdp *core.CDP, dir string) stateDigest {
	t.Helper()
	d, n, err := cdp.StoreDigest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return stateDigest{store: d, keys: n, files: filesDigest(t, dir)}
}

// digestClosed opens the data directory, digests it and closes it again.
func digestClosed(t *testing.T, dir string) stateDigest {
	t.Helper()
	cdp, err := core.Open(context.Background(), catalogueConfig(dir), core.Options{})
	if err != nil {
		t.Fatalf("open %s for its digest: %v", dir, err)
	}
	defer cdp.Close()
	return digestOpen(t, cdp, dir)
}

func catalogueConfig(dir string) core.Config {
	cfg := core.DefaultConfig()
	cfg.DataDir = dir
	cfg.Store.BlockCacheMiB, cfg.Store.IndexCacheMiB, cfg.Store.MemTableMiB = 16, 16, 16
	return cfg
}

// httpCase is one bad request.
type httpCase struct {
	name   string
	method string
	path   string
	role   core.Role // the key sent (ingest routes: as the Basic user)
	hdr    map[string]string
	body   string
	code   int
	want   []string // substrings of the response body, case-insensitive
}

// cliCase is one failing command. files are written into a fresh
// directory first; "{dir}" in args and file contents is that directory,
// "{data}" the data directory.
type cliCase struct {
	name  string
	files map[string]string
	args  []string
	code  int      // expected exit code (0: any non-zero)
	want  []string // substrings of stdout+stderr, case-insensitive
}

func TestBadInputCatalogue(t *testing.T) {
	data := initDataDir(t)
	seedDir := t.TempDir()
	seed := filepath.Join(seedDir, "seed.jsonl")
	if err := os.WriteFile(seed, []byte(strings.Join([]string{
		`{"type":"identify","userId":"cat-1","traits":{"email":"cat1@example.com","address":{"country":"DE"}}}`,
		`{"type":"track","userId":"cat-1","event":"Order Completed","properties":{"revenue":12.5}}`,
		`{"type":"page","anonymousId":"anon-cat","name":"Home"}`,
	}, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, data, "import", seed)
	buyers := filepath.Join(seedDir, "buyers.json")
	if err := os.WriteFile(buyers, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, data, "segment", "apply", buyers)

	n := catalogueHTTP(t, data)
	n += catalogueCLI(t, data)
	t.Logf("%d bad-input cases", n)
	if n < 50 {
		t.Fatalf("the catalogue has %d cases, want at least 50", n)
	}
}

func catalogueHTTP(t *testing.T, data string) int {
	ctx := context.Background()
	cdp, err := core.Open(ctx, catalogueConfig(data), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cdp.Close()
	keys := map[core.Role]string{}
	for _, r := range []core.Role{core.RoleIngest, core.RoleMarketer, core.RoleDPO, core.RoleAdmin} {
		k, err := cdp.CreateAPIKey(ctx, r, "catalogue "+string(r))
		if err != nil {
			t.Fatal(err)
		}
		keys[r] = k.Key
	}
	// A request to extend, with an empty reason below.
	if _, _, err := cdp.HandleRequest(ctx, "access", "gdpr", identity.Identifier{Type: identity.Email, Value: "cat1@example.com"}); err != nil {
		t.Fatal(err)
	}
	reqs, err := cdp.Requests(ctx, false)
	if err != nil || len(reqs) == 0 {
		t.Fatalf("requests: %v %v", reqs, err)
	}
	reqID := reqs[0].ID
	opts := httpapi.DefaultOptions()
	opts.Registry = cdp.Registry()
	srv := httptest.NewServer(httpapi.New(cdp, opts).Handler())
	defer srv.Close()

	big := strings.Repeat("x", 40<<10)
	consent := `{"identifier":{"type":"email","value":"cat1@example.com"},"purpose":"marketing.communications.email","status":"granted","jurisdiction":"EU"}`
	access := `{"type":"access","regulation":"gdpr","identifier":{"type":"email","value":"cat1@example.com"}}`
	ing, adm := core.RoleIngest, core.RoleAdmin
	cases := []httpCase{
		// Ingestion.
		{"batch: malformed JSON", "POST", "/v1/batch", ing, nil, `{"batch":[{"type":"track","userId":"x","event":"E"},{"type":`, 400, []string{"malformed_json"}},
		{"batch: second message without identity", "POST", "/v1/batch", ing, nil, `{"batch":[{"type":"track","userId":"x","event":"E"},{"type":"track","event":"E"}]}`, 400, []string{"missing_identity", `"index":1`}},
		{"batch: unknown type", "POST", "/v1/batch", ing, nil, `{"batch":[{"type":"boom","userId":"x"}]}`, 400, []string{"unknown_type", `"field":"batch[0].type"`}},
		{"batch: userId a number", "POST", "/v1/batch", ing, nil, `{"batch":[{"type":"track","userId":7,"event":"E"}]}`, 400, []string{"userId"}},
		{"batch: batch not an array", "POST", "/v1/batch", ing, nil, `{"batch":{"type":"track"}}`, 400, []string{"batch"}},
		{"batch: empty", "POST", "/v1/batch", ing, nil, `{"batch":[]}`, 400, []string{"empty_batch"}},
		{"batch: not gzip despite Content-Encoding", "POST", "/v1/batch", ing, map[string]string{"Content-Encoding": "gzip"}, `{"batch":[]}`, 400, []string{"gzip"}},
		{"identify: traits an array", "POST", "/v1/identify", ing, nil, `{"userId":"x","traits":[1,2]}`, 400, []string{"traits"}},
		{"track: no event", "POST", "/v1/track", ing, nil, `{"userId":"x"}`, 400, []string{"event"}},
		{"track: timestamp not a time", "POST", "/v1/track", ing, nil, `{"userId":"x","event":"E","timestamp":"yesterday"}`, 400, []string{"timestamp"}},
		{"track: invalid UTF-8", "POST", "/v1/track", ing, nil, "{\"userId\":\"x\",\"event\":\"\xff\xfe\"}", 400, []string{"invalid_utf8"}},
		{"track: larger than 32 KB", "POST", "/v1/track", ing, nil, `{"userId":"x","event":"E","properties":{"p":"` + big + `"}}`, 400, []string{"larger than"}},
		{"track: body is an array", "POST", "/v1/track", ing, nil, `[{"userId":"x","event":"E"}]`, 400, []string{"object"}},
		{"track: userId of 10 KB", "POST", "/v1/track", ing, nil, `{"userId":"` + strings.Repeat("u", 10<<10) + `","event":"E"}`, 400, []string{"userId"}},
		{"track: messageId of 10 KB", "POST", "/v1/track", ing, nil, `{"userId":"x","messageId":"` + strings.Repeat("m", 10<<10) + `","event":"E"}`, 400, []string{"messageId"}},
		{"group: no groupId", "POST", "/v1/group", ing, nil, `{"userId":"x"}`, 400, []string{"groupId"}},
		{"alias: no previousId", "POST", "/v1/alias", ing, nil, `{"userId":"x"}`, 400, []string{"previousId"}},
		{"page: context a string", "POST", "/v1/page", ing, nil, `{"userId":"x","context":"web"}`, 400, []string{"context"}},
		// Consent.
		{"consent: malformed JSON", "POST", "/v1/admin/consent", adm, nil, `{"identifier":`, 400, []string{"malformed JSON"}},
		{"consent: unknown field", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"status"`, `"statuz"`, 1), 400, []string{"statuz"}},
		{"consent: unknown purpose", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, "marketing.communications.email", "mind.reading", 1), 400, []string{"purpose"}},
		{"consent: unknown status", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"granted"`, `"maybe"`, 1), 400, []string{"status"}},
		{"consent: no identifier", "POST", "/v1/admin/consent", adm, nil, `{"purpose":"marketing.communications.email","status":"granted","jurisdiction":"EU"}`, 400, []string{"identifier"}},
		{"consent: identifier a string", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `{"type":"email","value":"cat1@example.com"}`, `"cat1"`, 1), 400, []string{"identifier"}},
		{"consent: unknown jurisdiction", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"EU"`, `"Atlantis"`, 1), 400, []string{"jurisdiction"}},
		{"consent: unknown lawful basis", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"status"`, `"lawful_basis":"vibes","status"`, 1), 400, []string{"lawful"}},
		{"consent: collected_at not a time", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"status"`, `"collected_at":"last week","status"`, 1), 400, []string{"collected_at"}},
		{"consent: expires before collected", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"status"`, `"collected_at":"2026-01-02T00:00:00Z","expires_at":"2026-01-01T00:00:00Z","status"`, 1), 400, []string{"expires"}},
		{"consent: unknown identifier type", "POST", "/v1/admin/consent", adm, nil, strings.Replace(consent, `"type":"email"`, `"type":"fingerprint"`, 1), 400, []string{"identifier"}},
		// Segments.
		{"segment: template parameter not a number", "POST", "/v1/admin/segments", adm, nil, `{"template":"cart_abandoners","params":{"days":"soon"}}`, 400, []string{"days"}},
		{"segment: unknown top-level key", "POST", "/v1/admin/segments", adm, nil, `{"name":"s1","purpose":"marketing.communications.email","where":{"event":"A"},"colour":"red"}`, 400, []string{"colour"}},
		{"segment: misspelt condition", "POST", "/v1/admin/segments", adm, nil, `{"name":"s1","purpose":"marketing.communications.email","where":{"evnt":"A"}}`, 400, []string{"evnt"}},
		{"segment: unknown purpose", "POST", "/v1/admin/segments", adm, nil, `{"name":"s1","purpose":"mind.reading","where":{"event":"A"}}`, 400, []string{"purpose"}},
		{"segment: no name", "POST", "/v1/admin/segments", adm, nil, `{"purpose":"marketing.communications.email","where":{"event":"A"}}`, 400, []string{"name"}},
		{"segment: bad name", "POST", "/v1/admin/segments", adm, nil, `{"name":"../etc","purpose":"marketing.communications.email","where":{"event":"A"}}`, 400, []string{"name"}},
		{"segment: count of a string", "POST", "/v1/admin/segments", adm, nil, `{"name":"s1","purpose":"marketing.communications.email","where":{"event":"A","count":{"gte":"many"}}}`, 400, []string{"count.gte"}},
		{"segment: bad duration", "POST", "/v1/admin/segments", adm, nil, `{"name":"s1","purpose":"marketing.communications.email","where":{"event":"A","within":"soon"}}`, 400, []string{"within"}},
		{"segment: neither JSON nor YAML", "POST", "/v1/admin/segments", adm, nil, "{\"name\": [\n", 400, []string{"invalid JSON"}},
		{"segment: unknown template", "POST", "/v1/admin/segments", adm, nil, `{"template":"nope"}`, 400, []string{"template"}},
		{"segment: cycle through in_segment", "POST", "/v1/admin/segments", adm, nil, `{"name":"buyers","purpose":"marketing.communications.email","where":{"in_segment":"buyers"}}`, 400, []string{"cycle"}},
		{"segment eval: bad now", "GET", "/v1/admin/segments/buyers/eval?now=yesterday", adm, nil, "", 400, []string{"now"}},
		{"segment export: unknown destination", "POST", "/v1/admin/segments/buyers/export?destination=nowhere", adm, nil, "", 400, []string{"destination"}},
		{"segment refresh: unknown segment", "POST", "/v1/admin/segments/nope/refresh", adm, nil, "", 404, []string{"segment not found"}},
		{"segment delete: unknown segment", "DELETE", "/v1/admin/segments/nope", adm, nil, "", 404, []string{"segment not found"}},
		// Profiles, reach.
		{"profile: two identifiers", "GET", "/v1/admin/profiles?user_id=a&email=b", adm, nil, "", 400, []string{"exactly one"}},
		{"unmerge: profile not a UUID", "POST", "/v1/admin/profiles/unmerge", adm, nil, `{"profile":"p-1","reason":"x"}`, 400, []string{"UUID"}},
		{"unmerge: malformed body", "POST", "/v1/admin/profiles/unmerge", adm, nil, `{"profile":`, 400, []string{"body must be JSON"}},
		{"unmerge: unknown profile", "POST", "/v1/admin/profiles/unmerge", adm, nil, `{"profile":"6f1c1a52-55c4-4f0e-9b1e-6f3a4e1b2c3d","reason":"x"}`, 404, []string{"not found"}},
		{"reach: no purpose", "GET", "/v1/admin/reach", adm, nil, "", 400, []string{"purpose"}},
		{"reach: unknown purpose", "GET", "/v1/admin/reach?purpose=mind.reading", adm, nil, "", 400, []string{"mind.reading"}},
		// Privacy requests.
		{"privacy: unknown type", "POST", "/v1/admin/privacy/requests", adm, nil, strings.Replace(access, `"access"`, `"forget"`, 1), 400, []string{"type"}},
		{"privacy: unknown regulation", "POST", "/v1/admin/privacy/requests", adm, nil, strings.Replace(access, `"gdpr"`, `"hipaa"`, 1), 400, []string{"regulation"}},
		{"privacy: unknown identifier type", "POST", "/v1/admin/privacy/requests", adm, nil, strings.Replace(access, `"type":"email"`, `"type":"fingerprint"`, 1), 400, []string{"identifier"}},
		{"privacy: no identifier", "POST", "/v1/admin/privacy/requests", adm, nil, `{"type":"access","regulation":"gdpr"}`, 400, []string{"identifier"}},
		{"privacy: extend without reason", "POST", "/v1/admin/privacy/requests/" + reqID + "/extend", adm, nil, `{}`, 400, []string{"reason"}},
		{"privacy: extend malformed body", "POST", "/v1/admin/privacy/requests/" + reqID + "/extend", adm, nil, `reason`, 400, []string{"reason"}},
		{"privacy: extend unknown request", "POST", "/v1/admin/privacy/requests/nope/extend", adm, nil, `{"reason":"more time"}`, 404, []string{"privacy request not found"}},
		// API keys, import.
		{"apikey: unknown role", "POST", "/v1/admin/apikeys", adm, nil, `{"role":"root","name":"x"}`, 400, []string{"role"}},
		{"apikey: malformed body", "POST", "/v1/admin/apikeys", adm, nil, `role=admin`, 400, []string{"body must be JSON"}},
		{"apikey: name too long", "POST", "/v1/admin/apikeys", adm, nil, `{"role":"admin","name":"` + strings.Repeat("n", 201) + `"}`, 400, []string{"200 bytes"}},
		{"import: every line bad", "POST", "/v1/admin/import", adm, nil, "{\"type\":\"track\"}\nnot json\n", 200, []string{`"rejected":2`, `"accepted":0`, `"line":1`, "userId", `"line":2`, "malformed JSON"}},
	}
	for _, tc := range cases {
		t.Run("http/"+tc.name, func(t *testing.T) {
			before := digestOpen(t, cdp, data)
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			key := keys[tc.role]
			if strings.HasPrefix(tc.path, "/v1/admin/") {
				req.Header.Set("Authorization", "Bearer "+key)
			} else {
				req.SetBasicAuth(key, "")
			}
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			for _, w := range tc.want {
				if !bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(w))) {
					t.Errorf("response does not name %q: %s", w, b)
				}
			}
			if after := digestOpen(t, cdp, data); after != before {
				t.Errorf("the store changed: %+v -> %+v (response %s)", before, after, b)
			}
		})
	}
	// Control: valid input does change the digest, so the checks above
	// can fail.
	before := digestOpen(t, cdp, data)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/track", strings.NewReader(`{"userId":"cat-1","event":"E"}`))
	req.SetBasicAuth(keys[ing], "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("control request: %v %v", resp, err)
	}
	resp.Body.Close()
	if digestOpen(t, cdp, data) == before {
		t.Fatal("a stored event did not change the digest")
	}
	return len(cases)
}

// repeatedLine catches "line 2: line 2: ..." in import reports.
var repeatedLine = regexp.MustCompile(`line \d+: line \d+:`)

func catalogueCLI(t *testing.T, data string) int {
	validMap := "event: Order Completed\nuser_id: {column: customer}\nproperties:\n  qty: {column: qty, type: int}\n"
	goodRego := "package custody.gate\nimport rego.v1\ndecision := {\"allow\": false, \"reasons\": [\"no\"], \"fields\": []}\n"
	cases := []cliCase{
		// custody import (JSON Lines).
		{"import: file does not exist", nil, []string{"import", "{dir}/nope.jsonl"}, 0, []string{"nope.jsonl", "no such file"}},
		{"import: no file argument", nil, []string{"import"}, 2, []string{"exactly one FILE"}},
		{"import: malformed JSON lines", map[string]string{"in.jsonl": "{\"type\":\"track\",\n[1,2]\n"}, []string{"import", "{dir}/in.jsonl"}, 4, []string{"line 1", "line 2", "malformed"}},
		{"import: unknown type", map[string]string{"in.jsonl": `{"type":"purchase","userId":"x"}` + "\n"}, []string{"import", "{dir}/in.jsonl"}, 4, []string{"line 1", "type"}},
		{"import: line without type", map[string]string{"in.jsonl": `{"userId":"x","event":"E"}` + "\n"}, []string{"import", "{dir}/in.jsonl"}, 4, []string{"line 1", "type"}},
		{"import: no identity", map[string]string{"in.jsonl": `{"type":"track","event":"E"}` + "\n"}, []string{"import", "{dir}/in.jsonl"}, 4, []string{"line 1", "userId"}},
		{"import: invalid UTF-8", map[string]string{"in.jsonl": "{\"type\":\"track\",\"userId\":\"\xff\",\"event\":\"E\"}\n"}, []string{"import", "{dir}/in.jsonl"}, 4, []string{"line 1", "UTF-8"}},
		{"import: line longer than 32 KB", map[string]string{"in.jsonl": `{"type":"track","userId":"x","event":"E","properties":{"p":"` + strings.Repeat("y", 40<<10) + `"}}` + "\n"}, []string{"import", "{dir}/in.jsonl"}, 4, []string{"line 1", "bytes"}},
		{"import: a directory", nil, []string{"import", "{dir}"}, 0, []string{"directory"}},
		// custody import --map (CSV).
		{"csv: mapping file missing", map[string]string{"in.csv": "customer,qty\nc1,1\n"}, []string{"import", "{dir}/in.csv", "--map", "{dir}/nope.yaml"}, 0, []string{"nope.yaml"}},
		{"csv: mapping unknown key", map[string]string{"in.csv": "customer,qty\nc1,1\n", "m.yaml": validMap + "colour: red\n"}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 2, []string{"colour"}},
		{"csv: mapping without event", map[string]string{"in.csv": "customer,qty\nc1,1\n", "m.yaml": "user_id: {column: customer}\n"}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 2, []string{"event"}},
		{"csv: mapping two-character delimiter", map[string]string{"in.csv": "customer,qty\nc1,1\n", "m.yaml": validMap + "delimiter: ab\n"}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 2, []string{"delimiter"}},
		{"csv: mapping unknown field type", map[string]string{"in.csv": "customer,qty\nc1,1\n", "m.yaml": strings.Replace(validMap, "type: int", "type: integer", 1)}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 2, []string{"properties.qty", "type"}},
		{"csv: mapping not YAML", map[string]string{"in.csv": "customer,qty\nc1,1\n", "m.yaml": "event: [unclosed\n"}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 2, []string{"m.yaml", "line 1"}},
		{"csv: constant anonymous_id", map[string]string{"in.csv": "customer,qty\nc1,1\n", "m.yaml": validMap + "anonymous_id: {value: guest}\n"}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 2, []string{"anonymous_id"}},
		{"csv: mapped column missing from the header", map[string]string{"in.csv": "client,qty\nc1,1\n", "m.yaml": validMap}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 0, []string{"customer"}},
		{"csv: empty file", map[string]string{"in.csv": "", "m.yaml": validMap}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 0, []string{"header"}},
		{"csv: every row's int is bad", map[string]string{"in.csv": "customer,qty\nc1,one\nc2,two\n", "m.yaml": validMap}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 4, []string{"line 2: column qty", "line 3: column qty"}},
		{"csv: unterminated quote", map[string]string{"in.csv": "customer,qty\n\"c1,1\n", "m.yaml": validMap}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 4, []string{"line 2: malformed CSV"}},
		{"csv: ragged row", map[string]string{"in.csv": "customer,qty\nc1,1,extra\n", "m.yaml": validMap}, []string{"import", "{dir}/in.csv", "--map", "{dir}/m.yaml"}, 4, []string{"line 2", "field"}},
		// custody segment apply.
		{"segment: misspelt condition", map[string]string{"s.json": `{"name":"s1","purpose":"marketing.communications.email","where":{"evnt":"A"}}`}, []string{"segment", "apply", "{dir}/s.json"}, 0, []string{"evnt"}},
		{"segment: no purpose", map[string]string{"s.yaml": "name: s1\nwhere: {event: A}\n"}, []string{"segment", "apply", "{dir}/s.yaml"}, 0, []string{"purpose"}},
		{"segment: trait operator of the wrong type", map[string]string{"s.yaml": "name: s1\npurpose: marketing.communications.email\nwhere: {trait: age, gt: [1, 2]}\n"}, []string{"segment", "apply", "{dir}/s.yaml"}, 0, []string{"gt"}},
		{"segment: in_segment of an unknown segment", map[string]string{"s.yaml": "name: s1\npurpose: marketing.communications.email\nwhere: {in_segment: nope}\n"}, []string{"segment", "apply", "{dir}/s.yaml"}, 0, []string{"nope"}},
		{"segment: unknown template", nil, []string{"segment", "apply", "--template", "nope"}, 0, []string{"nope"}},
		{"segment: template parameter not a number", nil, []string{"segment", "apply", "--template", "cart_abandoners", "--param", "days=soon"}, 0, []string{"days"}},
		{"segment: file does not exist", nil, []string{"segment", "apply", "{dir}/nope.yaml"}, 0, []string{"nope.yaml"}},
		// Consent, privacy requests, policy inputs.
		{"consent set: unknown purpose", nil, []string{"consent", "set", "--email", "cat1@example.com", "--purpose", "mind.reading", "--status", "granted"}, 0, []string{"mind.reading"}},
		{"consent set: unknown status", nil, []string{"consent", "set", "--email", "cat1@example.com", "--purpose", "marketing.communications.email", "--status", "maybe"}, 0, []string{"status"}},
		{"consent set: bad expiry", nil, []string{"consent", "set", "--email", "cat1@example.com", "--purpose", "marketing.communications.email", "--status", "granted", "--expires", "soon"}, 2, []string{"--expires"}},
		{"privacy: unknown regulation", nil, []string{"privacy", "access", "--email", "cat1@example.com", "--regulation", "hipaa"}, 0, []string{"regulation"}},
		{"privacy: phone without digits", nil, []string{"privacy", "delete", "--phone", "not a phone"}, 0, []string{"not a phone number"}},
		{"privacy: extend unknown request", nil, []string{"privacy", "extend", "nope", "--reason", "x"}, 0, []string{"privacy request not found"}},
		{"policy eval: truncated input", map[string]string{"in.json": `{"action":"segment.export"`}, []string{"policy", "eval", "--input", "{dir}/in.json"}, 2, []string{"in.json", "JSON"}},
		{"policy eval: unknown action", map[string]string{"in.json": `{"action":"fly"}`}, []string{"policy", "eval", "--input", "{dir}/in.json"}, 0, []string{"fly"}},
		// --policies DIR.
		{"policies: directory does not exist", nil, []string{"--policies", "{dir}/nope", "apikey", "create", "--role", "admin"}, 0, []string{"nope"}},
		{"policies: no .rego file", map[string]string{"README": "x"}, []string{"--policies", "{dir}", "apikey", "create", "--role", "admin"}, 0, []string{"no policy files"}},
		{"policies: syntax error", map[string]string{"gate.rego": "package custody.gate\ndecision := {\n"}, []string{"--policies", "{dir}", "apikey", "create", "--role", "admin"}, 0, []string{"gate.rego"}},
		{"policies: missing package", map[string]string{"gate.rego": "decision := {\"allow\": false}\n"}, []string{"--policies", "{dir}", "apikey", "create", "--role", "admin"}, 0, []string{"gate.rego", "package"}},
		{"policies: no decision rule", map[string]string{"gate.rego": "package custody.other\nimport rego.v1\nx := 1\n"}, []string{"--policies", "{dir}", "apikey", "create", "--role", "admin"}, 0, []string{"decision"}},
		{"policies: forbidden builtin", map[string]string{"gate.rego": strings.Replace(goodRego, `["no"]`, `[sprintf("%d", [time.now_ns()])]`, 1)}, []string{"--policies", "{dir}", "apikey", "create", "--role", "admin"}, 0, []string{"time.now_ns"}},
		{"policies: unsafe variable", map[string]string{"gate.rego": goodRego + "allow if { x > 1 }\n"}, []string{"--policies", "{dir}", "apikey", "create", "--role", "admin"}, 0, []string{"gate.rego", "x"}},
		// Config files.
		{"config: unknown key", map[string]string{"c.yaml": "ingest:\n  group_max_mesages: 10\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"group_max_mesages"}},
		{"config: wrong type", map[string]string{"c.yaml": "ingest:\n  group_max_messages: lots\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"ingest.group_max_messages"}},
		{"config: value out of range", map[string]string{"c.yaml": "ingest:\n  group_max_messages: 0\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"ingest.group_max_messages"}},
		{"config: bad duration", map[string]string{"c.yaml": "segments:\n  refresh_interval: soon\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"segments.refresh_interval"}},
		{"config: unknown log format", map[string]string{"c.yaml": "log:\n  format: xml\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"log.format"}},
		{"config: section of the wrong kind", map[string]string{"c.yaml": "server: 8700\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"server"}},
		{"config: not YAML", map[string]string{"c.yaml": "ingest: [\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"c.yaml"}},
		{"config: file does not exist", nil, []string{"--config", "{dir}/nope.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"nope.yaml"}},
		{"config: destination inside the data directory", map[string]string{"c.yaml": "destinations:\n  crm:\n    kind: file\n    format: csv\n    dir: {data}/exports\n    fields: [email]\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"destinations.crm"}},
		{"config: unknown identifier type in identity rules", map[string]string{"c.yaml": "identity:\n  limit:\n    fingerprint: 1\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"identity"}},
		{"config: duplicate key", map[string]string{"c.yaml": "ingest:\n  group_max_messages: 10\n  group_max_messages: 20\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"group_max_messages", "already defined"}},
		{"config: listen address without a port", map[string]string{"c.yaml": "server:\n  addr: localhost\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"server.addr", "host:port"}},
		{"config: unknown destination kind", map[string]string{"c.yaml": "destinations:\n  crm:\n    kind: carrier-pigeon\n    dir: {dir}/out\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"destinations.crm.kind"}},
		{"config: list where a list of strings is due", map[string]string{"c.yaml": "identity:\n  blocklist: yes\n"}, []string{"--config", "{dir}/c.yaml", "apikey", "create", "--role", "admin"}, 0, []string{"identity.blocklist"}},
		{"config: unknown log level", nil, []string{"--log-level", "loud", "apikey", "create", "--role", "admin"}, 0, []string{"log.level"}},
	}
	before := digestClosed(t, data)
	for _, tc := range cases {
		t.Run("cli/"+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sub := strings.NewReplacer("{dir}", dir, "{data}", data)
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(sub.Replace(content)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = sub.Replace(a)
			}
			r := custody(t, data, args...)
			out := r.stdout + r.stderr
			if r.code == 0 || (tc.code != 0 && r.code != tc.code) {
				t.Errorf("exit %d, want %d (0: any failure)\n%s", r.code, tc.code, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(out), strings.ToLower(sub.Replace(w))) {
					t.Errorf("output does not name %q\n%s", w, r)
				}
			}
			if m := repeatedLine.FindString(out); m != "" {
				t.Errorf("the line number is repeated (%q)\n%s", m, r)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("crashed\n%s", r)
			}
			after := digestClosed(t, data)
			if after != before {
				t.Errorf("the store changed: %+v -> %+v\n%s", before, after, r)
			}
			before = after
		})
	}
	// Control: a command that writes changes the digest.
	mustCustody(t, data, "apikey", "create", "--role", "ingest")
	if digestClosed(t, data) == before {
		t.Fatal("a new API key did not change the digest")
	}
	return len(cases)
}
