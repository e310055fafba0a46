package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/identity"
)

var fixedNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// The seeded people's identifiers: no marketer page may contain any.
var seeded = []string{
	"ada@example.com", "ada-4711", "+4915112345678", "Lovelace",
	"bob@example.com", "bob-4712", "Bobbington",
}

type env struct {
	cdp   *core.CDP
	con   *Console
	srv   *httptest.Server
	keys  map[core.Role]core.NewAPIKey
	clock *testClock // the CDP's and the console's; fixedNow unless a test moves it
}

// testClock is a settable clock, safe to read from the server's goroutines.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	cfg := core.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Store.BlockCacheMiB, cfg.Store.IndexCacheMiB, cfg.Store.MemTableMiB = 16, 16, 16
	cfg.Destinations = map[string]core.DestinationConfig{
		"newsletter": {Kind: "email", Format: "csv", Dir: t.TempDir(), Fields: []string{"email", "first_name"}},
	}
	if err := core.Init(ctx, cfg, core.Options{}); err != nil {
		t.Fatal(err)
	}
	tc := &testClock{now: fixedNow}
	clock := tc.Now
	cdp, err := core.Open(ctx, cfg, core.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cdp: cdp, keys: map[core.Role]core.NewAPIKey{}, clock: tc}
	for _, r := range []core.Role{core.RoleIngest, core.RoleMarketer, core.RoleDPO, core.RoleAdmin} {
		k, err := cdp.CreateAPIKey(ctx, r, "test "+string(r))
		if err != nil {
			t.Fatal(err)
		}
		e.keys[r] = k
	}
	var msgs []event.Message
	for _, raw := range []string{
		`{"type":"identify","messageId":"1","userId":"ada-4711","traits":{"email":"Ada@Example.com","first_name":"Ada","last_name":"Lovelace","phone":"+4915112345678","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"ada-4711","event":"Order Completed","properties":{"total":50},"timestamp":"2026-09-02T00:00:00Z"}`,
		`{"type":"identify","messageId":"3","userId":"bob-4712","traits":{"email":"bob@example.com","first_name":"Bob","last_name":"Bobbington","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"4","userId":"bob-4712","event":"Order Completed","properties":{"total":70},"timestamp":"2026-09-02T00:00:00Z"}`,
	} {
		m, err := event.DecodeMessage([]byte(raw), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if _, err := cdp.Ingest(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if _, err := cdp.RecordConsent(ctx, core.ConsentRequest{Identifier: identity.Identifier{Type: identity.Email, Value: "ada@example.com"},
		Purpose: "marketing.communications.email", Status: "granted", Source: "test", CollectedAt: fixedNow.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.Now = clock
	e.con, err = New(cdp, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", e.con)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() { e.srv.Close(); _ = e.con.Close(); _ = cdp.Close() })
	return e
}

// browser is a cookie-keeping client that does not follow redirects (the
// tests check where they go).
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
	seen []string // every page body, for the leak check
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: e.srv.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values, hdr ...string) (int, string, *http.Response) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfRe.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	b.seen = append(b.seen, string(raw))
	return resp.StatusCode, string(raw), resp
}

func (b *browser) get(path string) (int, string) {
	code, body, _ := b.do(http.MethodGet, path, nil)
	return code, body
}

// post sends the form with the page's CSRF token.
func (b *browser) post(path string, form url.Values) (int, string, *http.Response) {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.do(http.MethodPost, path, form)
}

func (b *browser) signIn(key string) (int, *http.Response) {
	b.t.Helper()
	if code, _ := b.get("/console/login"); code != http.StatusOK {
		b.t.Fatalf("GET login: %d", code)
	}
	code, _, resp := b.post("/console/login", url.Values{"key": {key}})
	return code, resp
}

func (e *env) signedIn(t *testing.T, role core.Role) *browser {
	t.Helper()
	b := e.browser(t)
	code, resp := b.signIn(e.keys[role].Key)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != home(role) {
		t.Fatalf("sign in as %s: %d to %q", role, code, resp.Header.Get("Location"))
	}
	return b
}

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	t.Run("cookie", func(t *testing.T) {
		b := e.browser(t)
		_, resp := b.signIn(e.keys[core.RoleDPO].Key)
		var sc *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == sessionName && c.Value != "" {
				sc = c
			}
		}
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/console/" {
			t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path /console/", sc)
		}
		if strings.Contains(sc.Value, e.keys[core.RoleDPO].Key) {
			t.Fatal("the cookie carries the API key")
		}
		if code, body := b.get("/console/requests"); code != http.StatusOK || !strings.Contains(body, "Privacy requests") {
			t.Fatalf("requests page after sign-in: %d", code)
		}
		// Signed out: the cookie no longer opens anything.
		if code, _, _ := b.post("/console/logout", nil); code != http.StatusSeeOther {
			t.Fatalf("logout: %d", code)
		}
		if code, _ := b.get("/console/requests"); code != http.StatusSeeOther {
			t.Fatalf("requests page after sign-out: %d, want a redirect to sign-in", code)
		}
	})
	for _, c := range []struct {
		name, key string
		want      int
	}{
		{"unknown key", "cus_nope", http.StatusUnauthorized},
		{"empty", "", http.StatusUnauthorized},
		{"ingest key", e.keys[core.RoleIngest].Key, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := e.browser(t)
			if code, _ := b.signIn(c.key); code != c.want {
				t.Fatalf("sign in: %d, want %d", code, c.want)
			}
			if code, _ := b.get("/console/requests"); code != http.StatusSeeOther {
				t.Fatalf("a failed sign-in opened a page: %d", code)
			}
		})
	}
	t.Run("sign-in without the form's token", func(t *testing.T) {
		b := e.browser(t)
		code, _, _ := b.do(http.MethodPost, "/console/login", url.Values{"key": {e.keys[core.RoleDPO].Key}, "csrf": {"forged"}})
		if code != http.StatusForbidden {
			t.Fatalf("sign-in without the pre-session cookie: %d, want 403", code)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		now := fixedNow
		e.con.now = func() time.Time { return now }
		defer func() { e.con.now = func() time.Time { return fixedNow } }()
		b := e.signedIn(t, core.RoleDPO)
		now = now.Add(e.con.opts.SessionTTL + time.Second)
		if code, _ := b.get("/console/requests"); code != http.StatusSeeOther {
			t.Fatalf("expired session opened a page: %d", code)
		}
	})
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn(t, core.RoleDPO)
	b.get("/console/people")
	form := url.Values{"id_type": {"email"}, "id_value": {"ada@example.com"}}
	for _, c := range []struct {
		name string
		csrf string
		hdr  []string
	}{
		{"no token", "", nil},
		{"wrong token", "x" + b.csrf, nil},
		{"other site", b.csrf, []string{"Origin", "https://evil.example"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			if c.csrf != "" {
				f.Set("csrf", c.csrf)
			}
			code, body, _ := b.do(http.MethodPost, "/console/people", f, c.hdr...)
			if code != http.StatusForbidden || strings.Contains(body, "Lovelace") {
				t.Fatalf("POST %s: %d, want 403 without the person", c.name, code)
			}
		})
	}
	// Another session's token does not work either.
	other := e.signedIn(t, core.RoleDPO)
	other.get("/console/people")
	f := url.Values{"id_type": {"email"}, "id_value": {"ada@example.com"}, "csrf": {other.csrf}}
	if code, _, _ := b.do(http.MethodPost, "/console/people", f); code != http.StatusForbidden {
		t.Fatalf("POST with another session's token: %d, want 403", code)
	}
	// Same origin with the right token: allowed.
	code, body, _ := b.post("/console/people", form)
	if code != http.StatusOK || !strings.Contains(body, "Lovelace") {
		t.Fatalf("POST with the token: %d", code)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	dpoOnly := []string{"/console/requests", "/console/people", "/console/audit"}
	marketerOnly := []string{"/console/segments"}
	adminOnly := []string{"/console/admin/keys", "/console/admin/system"}
	for _, c := range []struct {
		role    core.Role
		allowed []string
		denied  []string
	}{
		{core.RoleDPO, dpoOnly, append(append([]string{}, marketerOnly...), adminOnly...)},
		{core.RoleMarketer, marketerOnly, append(append([]string{}, dpoOnly...), adminOnly...)},
		{core.RoleAdmin, append(append(append([]string{}, dpoOnly...), marketerOnly...), adminOnly...), nil},
	} {
		t.Run(string(c.role), func(t *testing.T) {
			b := e.signedIn(t, c.role)
			for _, p := range c.allowed {
				if code, _ := b.get(p); code != http.StatusOK {
					t.Errorf("GET %s: %d, want 200", p, code)
				}
			}
			for _, p := range c.denied {
				if code, _ := b.get(p); code != http.StatusForbidden {
					t.Errorf("GET %s: %d, want 403", p, code)
				}
			}
			_, body := b.get(home(c.role))
			for _, p := range c.denied {
				if strings.Contains(body, `href="`+p+`"`) {
					t.Errorf("the navigation links to %s", p)
				}
			}
		})
	}
	t.Run("marketer posts", func(t *testing.T) {
		b := e.signedIn(t, core.RoleMarketer)
		b.get("/console/segments")
		for _, p := range []string{"/console/people", "/console/people/consent", "/console/requests", "/console/admin/keys"} {
			code, body, _ := b.post(p, url.Values{"id_type": {"email"}, "id_value": {"ada@example.com"}, "type": {"access"},
				"purpose": {"marketing.communications.email"}, "status": {"denied"}, "role": {"admin"}})
			if code != http.StatusForbidden || strings.Contains(body, "Lovelace") {
				t.Errorf("marketer POST %s: %d, want 403", p, code)
			}
		}
		// Nothing was recorded by those attempts.
		cv, err := e.cdp.Consent(context.Background(), identity.Identifier{Type: identity.Email, Value: "ada@example.com"})
		if err != nil || len(cv.History) != 1 {
			t.Errorf("consent history = %d records (%v), want the seeded one only", len(cv.History), err)
		}
		rs, _ := e.cdp.Requests(context.Background(), false)
		if len(rs) != 0 {
			t.Errorf("a marketer's POST made %d privacy requests", len(rs))
		}
	})
}

func TestDPOFlow(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn(t, core.RoleDPO)
	b.get("/console/requests")

	// Access: the report is viewable and downloadable, JSON and HTML.
	code, _, resp := b.post("/console/requests", url.Values{"type": {"access"}, "regulation": {"gdpr"}, "id_type": {"email"}, "id_value": {"ada@example.com"}})
	loc := resp.Header.Get("Location")
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/requests/") {
		t.Fatalf("access request: %d to %q", code, loc)
	}
	code, body := b.get(loc)
	if code != http.StatusOK || !strings.Contains(body, "completed") || !strings.Contains(body, "report.json") {
		t.Fatalf("request page: %d\n%s", code, body)
	}
	code, js := b.get(loc + "/report.json")
	var rep core.AccessReport
	if code != http.StatusOK || json.Unmarshal([]byte(js), &rep) != nil || rep.Person == nil || len(rep.Memberships) != 0 && rep.Person.ID.String() == "" {
		t.Fatalf("report.json: %d\n%s", code, js)
	}
	if !strings.Contains(js, "ada@example.com") {
		t.Error("the JSON report lacks the person's email")
	}
	if code, html := b.get(loc + "/report.html"); code != http.StatusOK || !strings.Contains(html, "ada@example.com") {
		t.Errorf("report.html: %d", code)
	}
	// Another DPO session cannot download this session's report.
	other := e.signedIn(t, core.RoleDPO)
	if code, _ := other.get(loc + "/report.json"); code != http.StatusNotFound {
		t.Errorf("report from another session: %d, want 404", code)
	}

	// Person page: identifiers, consent history; record a consent change.
	b.get("/console/people")
	code, body, _ = b.post("/console/people", url.Values{"id_type": {"phone"}, "id_value": {"+4915112345678"}})
	if code != http.StatusOK || !strings.Contains(body, "ada-4711") || !strings.Contains(body, "marketing.communications.email") {
		t.Fatalf("person page: %d\n%s", code, body)
	}
	code, body, _ = b.post("/console/people/consent", url.Values{"id_type": {"phone"}, "id_value": {"+4915112345678"},
		"purpose": {"marketing.communications.email"}, "status": {"withdrawn"}, "lawful_basis": {"consent"}})
	if code != http.StatusOK || !strings.Contains(body, "Recorded") || !strings.Contains(body, "withdrawn") {
		t.Fatalf("record consent: %d\n%s", code, body)
	}
	code, body, _ = b.post("/console/people/consent", url.Values{"id_type": {"phone"}, "id_value": {"+4915112345678"},
		"purpose": {"no.such.purpose"}, "status": {"granted"}})
	if code != http.StatusOK || !strings.Contains(body, "Consent not recorded") {
		t.Errorf("bad consent: %d", code)
	}

	// Deletion: confirmation first; nothing is erased before it.
	code, body, _ = b.post("/console/requests", url.Values{"type": {"suppress_with_delete"}, "regulation": {"gdpr"}, "id_type": {"email"}, "id_value": {"bob@example.com"}})
	if code != http.StatusOK || !strings.Contains(body, `name="confirm"`) {
		t.Fatalf("delete without confirmation: %d, want the confirmation form", code)
	}
	if _, err := e.cdp.Profile(context.Background(), identity.Identifier{Type: identity.Email, Value: "bob@example.com"}, core.ShowOptions{}); err != nil {
		t.Fatalf("erased before confirmation: %v", err)
	}
	code, _, resp = b.post("/console/requests", url.Values{"type": {"suppress_with_delete"}, "regulation": {"gdpr"}, "id_type": {"email"},
		"id_value": {"bob@example.com"}, "confirm": {"yes"}})
	if code != http.StatusSeeOther {
		t.Fatalf("confirmed delete: %d", code)
	}
	code, body = b.get(resp.Header.Get("Location"))
	if code != http.StatusOK || !strings.Contains(body, "Deletion certificate") || !strings.Contains(body, "deks_shredded") {
		t.Fatalf("deletion page: %d\n%s", code, body)
	}
	b.get("/console/people")
	if code, _, _ := b.post("/console/people", url.Values{"id_type": {"email"}, "id_value": {"bob@example.com"}}); code != http.StatusNotFound {
		t.Errorf("erased person still found: %d", code)
	}
	// Access for the erased person completes with an empty report.
	code, _, resp = b.post("/console/requests", url.Values{"type": {"access"}, "regulation": {"gdpr"}, "id_type": {"email"}, "id_value": {"bob@example.com"}})
	if code != http.StatusSeeOther {
		t.Fatalf("access after deletion: %d", code)
	}
	loc = resp.Header.Get("Location")
	if code, body := b.get(loc); code != http.StatusOK || !strings.Contains(body, "completed") || !strings.Contains(body, `id="report-empty"`) {
		t.Fatalf("access page after deletion: %d\n%s", code, body)
	}
	if code, js := b.get(loc + "/report.json"); code != http.StatusOK || !strings.Contains(js, `"person": null`) || strings.Contains(js, "bob") {
		t.Errorf("report.json after deletion: %d\n%s", code, js)
	}
	if code, html := b.get(loc + "/report.html"); code != http.StatusOK || !strings.Contains(html, "We hold no data") {
		t.Errorf("report.html after deletion: %d\n%s", code, html)
	}

	// The queue lists all three; the audit page verifies the chain.
	code, body = b.get("/console/requests")
	if code != http.StatusOK || strings.Count(body, `href="/console/requests/`) != 3 {
		t.Errorf("queue: %d, want 3 requests listed", code)
	}
	if code, body := b.get("/console/audit"); code != http.StatusOK || !strings.Contains(body, "Chain verified") || !strings.Contains(body, "privacy.delete") {
		t.Errorf("audit page: %d\n%s", code, body)
	}
}

func TestMarketerFlowShowsNoPerson(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn(t, core.RoleMarketer)
	b.get("/console/segments")
	// Inline validation errors, nothing stored.
	code, body, _ := b.post("/console/segments", url.Values{"mode": {"json"}, "definition": {`{"name":"Bad Name","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`}})
	if code != http.StatusBadRequest || !strings.Contains(body, "field-errors") || !strings.Contains(body, "name") {
		t.Fatalf("invalid definition: %d\n%s", code, body)
	}
	code, body, _ = b.post("/console/segments", url.Values{"mode": {"template"}, "template": {"cart_abandoners"}, "param_days": {"0"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "field-errors") {
		t.Fatalf("invalid template parameter: %d\n%s", code, body)
	}
	if defs, _ := e.cdp.Segments(context.Background()); len(defs) != 0 {
		t.Fatalf("invalid definitions were stored: %d", len(defs))
	}
	code, _, resp := b.post("/console/segments", url.Values{"mode": {"json"}, "definition": {`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`}})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/segments/buyers" {
		t.Fatalf("create: %d to %q", code, resp.Header.Get("Location"))
	}
	code, body = b.get("/console/segments/buyers")
	if code != http.StatusOK || !strings.Contains(body, "<svg") || !strings.Contains(body, `<dd id="size">1</dd>`) {
		t.Fatalf("segment page: %d\n%s", code, body)
	}
	code, body, _ = b.post("/console/segments/buyers/preview", nil)
	if code != http.StatusOK || !strings.Contains(body, "<b>1</b> allowed, <b>1</b> not consented") {
		t.Fatalf("preview: %d\n%s", code, body)
	}
	code, _, resp = b.post("/console/segments/buyers/export", url.Values{"destination": {"newsletter"}})
	if code != http.StatusSeeOther {
		t.Fatalf("export: %d", code)
	}
	status := resp.Header.Get("Location") + "/status"
	var st exportStatus
	for i := 0; ; i++ {
		code, js := b.get(status)
		if code != http.StatusOK || json.Unmarshal([]byte(js), &st) != nil {
			t.Fatalf("export status: %d %s", code, js)
		}
		if st.State != "running" || i > 2000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.State != "done" || st.Report == nil || st.Report.Rows != 1 || st.Report.NotConsented != 1 {
		t.Fatalf("export finished as %+v", st)
	}
	// The job followed the export's progress to its last stage.
	if p := st.Progress; p.Stage != "done" || p.Rows != 1 || p.Total != 1 || p.People < 2 {
		t.Fatalf("export progress at the end: %+v", p)
	}
	b.get(strings.TrimSuffix(status, "/status"))
	// A DPO session cannot see the marketer's export job.
	if code, _ := e.signedIn(t, core.RoleAdmin).get(status); code != http.StatusNotFound {
		t.Errorf("another key's export status: %d, want 404", code)
	}
	b.get("/console/segments")
	b.get("/console/segments?template=cart_abandoners")
	for _, page := range b.seen {
		for _, id := range seeded {
			if strings.Contains(strings.ToLower(page), strings.ToLower(id)) {
				t.Errorf("a marketer page contains the seeded identifier %q", id)
			}
		}
	}
	if len(b.seen) < 10 {
		t.Fatalf("only %d pages checked", len(b.seen))
	}
}

func TestAdmin(t *testing.T) {
	e := newEnv(t)
	mk := e.signedIn(t, core.RoleMarketer)
	b := e.signedIn(t, core.RoleAdmin)
	code, body := b.get("/console/admin/keys")
	if code != http.StatusOK || !strings.Contains(body, e.keys[core.RoleMarketer].ID) || strings.Contains(body, e.keys[core.RoleMarketer].Key) {
		t.Fatalf("keys page: %d (must list ids, never keys)", code)
	}
	code, body, _ = b.post("/console/admin/keys", url.Values{"role": {"dpo"}, "name": {"new dpo"}})
	m := regexp.MustCompile(`id="new-key-value" value="(cus_[^"]+)"`).FindStringSubmatch(body)
	if code != http.StatusCreated || m == nil {
		t.Fatalf("create key: %d\n%s", code, body)
	}
	if rec, err := e.cdp.Authenticate(context.Background(), m[1]); err != nil || rec.Role != core.RoleDPO {
		t.Fatalf("created key: %v %v", rec, err)
	}
	// Revoking the marketer's key ends the marketer's session.
	code, body, _ = b.post("/console/admin/keys/"+e.keys[core.RoleMarketer].ID+"/revoke", nil)
	if code != http.StatusOK || !strings.Contains(body, "Revoked") {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := mk.get("/console/segments"); code != http.StatusSeeOther {
		t.Errorf("revoked key's session still open: %d", code)
	}
	if code, _ := e.browser(t).signIn(e.keys[core.RoleMarketer].Key); code != http.StatusUnauthorized {
		t.Errorf("sign in with a revoked key: %d", code)
	}
	code, body = b.get("/console/admin/system")
	if code != http.StatusOK || !strings.Contains(body, e.cdp.PolicyEngine().BundleHash()) || !strings.Contains(body, " 0 failed") || !strings.Contains(body, `<dd id="last-rotation">never</dd>`) {
		t.Fatalf("system page: %d\n%s", code, body)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn(t, core.RoleDPO)
	if err := e.con.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.get("/console/requests"); code != http.StatusSeeOther {
		t.Fatalf("after Close: %d, want a redirect to sign-in", code)
	}
}

func TestAssetsAreLocal(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn(t, core.RoleAdmin)
	for _, p := range []string{"/console/static/console.css", "/console/static/console.js"} {
		code, body := b.get(p)
		if code != http.StatusOK || len(body) < 100 {
			t.Fatalf("GET %s: %d", p, code)
		}
	}
	for _, p := range []string{"/console/login", "/console/requests", "/console/segments", "/console/admin/keys", "/console/static/console.css", "/console/static/console.js"} {
		_, body := b.get(p)
		if regexp.MustCompile(`(?i)(src|href)=["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import`).MatchString(body) {
			t.Errorf("%s refers to an external URL", p)
		}
	}
	_, body := b.get("/console/admin/keys")
	if !strings.Contains(body, `name="viewport"`) {
		t.Error("no viewport meta tag")
	}
	// Every control has a label: each id'd input/select/textarea has a
	// <label for>, or an aria-label.
	for _, p := range []string{"/console/requests", "/console/people", "/console/segments?template=cart_abandoners", "/console/admin/keys"} {
		_, body := b.get(p)
		checkLabels(t, p, body)
	}
}

// A key revoked elsewhere (CLI, API) ends its console sessions at their
// next request: the key is authenticated again every time.
func TestRevokedElsewhereEndsSession(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn(t, core.RoleDPO)
	if _, err := e.cdp.RevokeAPIKey(context.Background(), e.keys[core.RoleDPO].ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.get("/console/requests"); code != http.StatusSeeOther {
		t.Fatalf("session of a revoked key: %d, want a redirect to sign-in", code)
	}
	b.get("/console/login")
	if code, body, _ := b.post("/console/people", url.Values{"id_type": {"email"}, "id_value": {"ada@example.com"}}); code != http.StatusForbidden && code != http.StatusUnauthorized || strings.Contains(body, "Lovelace") {
		t.Fatalf("POST with a revoked key's session: %d", code)
	}
}

// A request filed with receive_only waits in the queue; the DPO verifies
// and runs it, rejects it or extends its deadline from its page.
func TestRequestActions(t *testing.T) {
	ada := identity.Identifier{Type: identity.Email, Value: "ada@example.com"}
	bob := identity.Identifier{Type: identity.Email, Value: "bob@example.com"}
	type outcome struct {
		code    int
		status  string    // the stored request's status after
		due     time.Time // zero: unchanged
		page    []string  // on the page shown after (the redirect's target on success)
		notPage []string
	}
	cases := []struct {
		name       string
		typ, reg   string
		id         identity.Identifier
		before     []string // actions done first, each must succeed: path suffix and form
		beforeForm []url.Values
		action     string
		form       url.Values
		want       outcome
	}{
		{name: "verify access", typ: core.RequestAccess, reg: "gdpr", id: ada, action: "verify",
			form: url.Values{"method": {"email round-trip"}},
			want: outcome{code: http.StatusSeeOther, status: core.StatusCompleted,
				page: []string{"verified: email round-trip", "report.json", `id="req-status">completed`}, notPage: []string{`id="verify-form"`, `id="reject-form"`, `id="extend-form"`}}},
		{name: "verify without a method", typ: core.RequestAccess, reg: "gdpr", id: ada, action: "verify",
			form: url.Values{"method": {"  "}},
			want: outcome{code: http.StatusBadRequest, status: core.StatusReceived, page: []string{"verification needs a method", `id="verify-form"`}}},
		{name: "verify a deletion without confirmation", typ: core.RequestSuppressWithDelete, reg: "gdpr", id: bob, action: "verify",
			form: url.Values{"method": {"signed-in account"}},
			want: outcome{code: http.StatusBadRequest, status: core.StatusReceived, page: []string{"tick the confirmation", `id="verify-confirm"`}}},
		{name: "verify a deletion", typ: core.RequestSuppressWithDelete, reg: "gdpr", id: bob, action: "verify",
			form: url.Values{"method": {"signed-in account"}, "confirm": {"yes"}},
			want: outcome{code: http.StatusSeeOther, status: core.StatusCompleted, page: []string{"Deletion certificate"}}},
		{name: "reject", typ: core.RequestAccess, reg: "gdpr", id: ada, action: "reject",
			form: url.Values{"reason": {"identity could not be verified"}},
			want: outcome{code: http.StatusSeeOther, status: core.StatusRejected,
				page: []string{"rejected — identity could not be verified"}, notPage: []string{`id="verify-form"`, `id="extend-form"`}}},
		{name: "reject without a reason", typ: core.RequestAccess, reg: "gdpr", id: ada, action: "reject",
			form: url.Values{"reason": {""}},
			want: outcome{code: http.StatusBadRequest, status: core.StatusReceived, page: []string{"a rejection needs a reason"}}},
		{name: "reject a completed request", typ: core.RequestAccess, reg: "gdpr", id: ada,
			before: []string{"verify"}, beforeForm: []url.Values{{"method": {"email round-trip"}}}, action: "reject",
			form: url.Values{"reason": {"too late"}},
			want: outcome{code: http.StatusBadRequest, status: core.StatusCompleted, page: []string{"only a request not yet carried out can be rejected"}}},
		{name: "extend gdpr by two months", typ: core.RequestAccess, reg: "gdpr", id: ada, action: "extend",
			form: url.Values{"reason": {"complex request"}},
			want: outcome{code: http.StatusSeeOther, status: core.StatusReceived, due: fixedNow.AddDate(0, 1, 0).AddDate(0, 2, 0),
				page: []string{"extended — complex request", `id="verify-form"`}, notPage: []string{`id="extend-form"`}}},
		{name: "extend ccpa by 45 days", typ: core.RequestAccess, reg: "ccpa", id: ada, action: "extend",
			form: url.Values{"reason": {"complex request"}},
			want: outcome{code: http.StatusSeeOther, status: core.StatusReceived, due: fixedNow.AddDate(0, 0, 90), page: []string{"extended — complex request"}}},
		{name: "extend twice", typ: core.RequestAccess, reg: "ccpa", id: ada,
			before: []string{"extend"}, beforeForm: []url.Values{{"reason": {"complex request"}}}, action: "extend",
			form: url.Values{"reason": {"again"}},
			want: outcome{code: http.StatusBadRequest, status: core.StatusReceived, due: fixedNow.AddDate(0, 0, 90), page: []string{"was extended already"}}},
		{name: "extend without a reason", typ: core.RequestAccess, reg: "gdpr", id: ada, action: "extend",
			form: url.Values{"reason": {""}},
			want: outcome{code: http.StatusBadRequest, status: core.StatusReceived, page: []string{"an extension needs a reason"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			req, err := e.cdp.ReceiveRequest(ctx, c.typ, c.reg, c.id)
			if err != nil {
				t.Fatal(err)
			}
			path := "/console/requests/" + req.ID
			b := e.signedIn(t, core.RoleDPO)
			code, body := b.get(path)
			if code != http.StatusOK || !strings.Contains(body, `id="verify-form"`) || !strings.Contains(body, `id="reject-form"`) || !strings.Contains(body, `id="extend-form"`) {
				t.Fatalf("received request's page: %d, want the three action forms\n%s", code, body)
			}
			checkLabels(t, path, body)
			for i, a := range c.before {
				if code, body, _ := b.post(path+"/"+a, c.beforeForm[i]); code != http.StatusSeeOther {
					t.Fatalf("before: %s: %d\n%s", a, code, body)
				}
				b.get(path)
			}
			code, body, resp := b.post(path+"/"+c.action, c.form)
			if code != c.want.code {
				t.Fatalf("POST %s: %d, want %d\n%s", c.action, code, c.want.code, body)
			}
			if code == http.StatusSeeOther {
				if loc := resp.Header.Get("Location"); loc != path {
					t.Fatalf("redirect to %q, want %q", loc, path)
				}
				_, body = b.get(path)
			}
			for _, s := range c.want.page {
				if !strings.Contains(body, s) {
					t.Errorf("the page lacks %q\n%s", s, body)
				}
			}
			for _, s := range c.want.notPage {
				if strings.Contains(body, s) {
					t.Errorf("the page has %q", s)
				}
			}
			got, err := e.cdp.Request(ctx, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != c.want.status {
				t.Errorf("status %s, want %s", got.Status, c.want.status)
			}
			wantDue := req.DueAt
			if !c.want.due.IsZero() {
				wantDue = c.want.due
			}
			if !got.DueAt.Equal(wantDue) {
				t.Errorf("due %v, want %v", got.DueAt, wantDue)
			}
			_, perr := e.cdp.Profile(ctx, c.id, core.ShowOptions{})
			if erased := errors.Is(perr, core.ErrProfileNotFound); erased != (c.typ == core.RequestSuppressWithDelete && got.Status == core.StatusCompleted) {
				t.Errorf("profile lookup after: %v", perr)
			}
		})
	}

	t.Run("refused without the right", func(t *testing.T) {
		e := newEnv(t)
		req, err := e.cdp.ReceiveRequest(context.Background(), core.RequestSuppressWithDelete, "gdpr", bob)
		if err != nil {
			t.Fatal(err)
		}
		path := "/console/requests/" + req.ID
		mk := e.signedIn(t, core.RoleMarketer)
		mk.get("/console/segments")
		dpo := e.signedIn(t, core.RoleDPO)
		dpo.get(path)
		for _, c := range []struct {
			name string
			do   func(action string, f url.Values) int
			want int
		}{
			{"marketer", func(a string, f url.Values) int { code, _, _ := mk.post(path+"/"+a, f); return code }, http.StatusForbidden},
			{"no csrf token", func(a string, f url.Values) int { code, _, _ := dpo.do(http.MethodPost, path+"/"+a, f); return code }, http.StatusForbidden},
			{"other site", func(a string, f url.Values) int {
				f.Set("csrf", dpo.csrf)
				code, _, _ := dpo.do(http.MethodPost, path+"/"+a, f, "Origin", "https://evil.example")
				return code
			}, http.StatusForbidden},
			{"unknown request", func(a string, f url.Values) int {
				code, _, _ := dpo.post("/console/requests/nope/"+a, f)
				return code
			}, http.StatusNotFound},
		} {
			t.Run(c.name, func(t *testing.T) {
				for _, a := range []string{"verify", "reject", "extend"} {
					f := url.Values{"method": {"x"}, "reason": {"x"}, "confirm": {"yes"}}
					if code := c.do(a, f); code != c.want {
						t.Errorf("%s: %d, want %d", a, code, c.want)
					}
				}
			})
		}
		got, err := e.cdp.Request(context.Background(), req.ID)
		if err != nil || got.Status != core.StatusReceived || len(got.History) != 1 {
			t.Fatalf("request after refused actions: %+v (%v)", got, err)
		}
	})
}

// checkLabels fails for an input, select or textarea (not hidden) that has
// neither a <label for> nor an aria-label.
func checkLabels(t *testing.T, path, body string) {
	t.Helper()
	ctl := regexp.MustCompile(`<(input|select|textarea)([^>]*)>`)
	for _, m := range ctl.FindAllStringSubmatch(body, -1) {
		attrs := m[2]
		if strings.Contains(attrs, `type="hidden"`) || strings.Contains(attrs, "aria-label=") {
			continue
		}
		id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(attrs)
		if id == nil || !strings.Contains(body, `<label for="`+id[1]+`"`) {
			t.Errorf("%s: control without a label: %s", path, m[0])
		}
	}
}

// The queue puts overdue requests first, most overdue first, with the
// overdue badge; then open ones by due date; then closed ones.
func TestQueueOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := identity.Identifier{Type: identity.Email, Value: "ada@example.com"}
	receive := func(at time.Time) *core.PrivacyRequest {
		t.Helper()
		e.clock.Set(at)
		r, err := e.cdp.ReceiveRequest(ctx, core.RequestAccess, "gdpr", ada)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Received in this order; the store lists them newest first.
	mostOverdue := receive(fixedNow)              // due Dec 1
	overdue := receive(fixedNow.AddDate(0, 0, 2)) // due Dec 3
	open := receive(fixedNow.AddDate(0, 0, 10))   // due Dec 11
	e.clock.Set(fixedNow.AddDate(0, 0, 12))
	done, _, err := e.cdp.HandleRequest(ctx, core.RequestAccess, "gdpr", ada) // completed
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))

	b := e.signedIn(t, core.RoleDPO)
	code, body := b.get("/console/requests")
	if code != http.StatusOK {
		t.Fatalf("queue: %d", code)
	}
	rows := regexp.MustCompile(`(?s)<tr( class="overdue")?>\s*<td><a href="/console/requests/([^"]+)">.*?</tr>`).FindAllStringSubmatch(body, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[2])
	}
	want := []string{mostOverdue.ID, overdue.ID, open.ID, done.ID}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("queue order %v, want %v (most overdue, overdue, open, closed)", got, want)
	}
	for i, r := range rows {
		isOverdue := i < 2
		if (r[1] != "") != isOverdue || strings.Contains(r[0], `class="badge">overdue`) != isOverdue {
			t.Errorf("row %d (%s): overdue row class %q, badge %v; want overdue %v", i, r[2], r[1],
				strings.Contains(r[0], "overdue</strong>"), isOverdue)
		}
	}
	for _, c := range []struct {
		id   string
		want bool
	}{{mostOverdue.ID, true}, {open.ID, false}, {done.ID, false}} {
		_, body := b.get("/console/requests/" + c.id)
		if got := strings.Contains(body, `class="badge">overdue`); got != c.want {
			t.Errorf("request page %s: overdue badge %v, want %v", c.id, got, c.want)
		}
	}
}

func TestSortQueue(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	req := func(id, status string, received, due time.Time) *core.PrivacyRequest {
		return &core.PrivacyRequest{ID: id, Status: status, ReceivedAt: received, DueAt: due}
	}
	for _, c := range []struct {
		name string
		in   []*core.PrivacyRequest
		want string
	}{
		{"overdue before open, whatever the input order", []*core.PrivacyRequest{
			req("open", core.StatusReceived, day(20), day(30).AddDate(0, 0, 10)),
			req("late", core.StatusReceived, day(1), day(30)),
		}, "late open"},
		{"most overdue first", []*core.PrivacyRequest{
			req("late", core.StatusInProgress, day(3), day(30).AddDate(0, 0, 3)),
			req("later", core.StatusVerified, day(1), day(30).AddDate(0, 0, 1)),
		}, "later late"},
		{"open by due date", []*core.PrivacyRequest{
			req("b", core.StatusReceived, day(20), day(30).AddDate(0, 0, 20)),
			req("a", core.StatusReceived, day(25), day(30).AddDate(0, 0, 10)),
		}, "a b"},
		{"closed last, newest first, even when past due", []*core.PrivacyRequest{
			req("old-done", core.StatusCompleted, day(1), day(2)),
			req("new-rejected", core.StatusRejected, day(10), day(11)),
			req("open", core.StatusReceived, day(20), day(30).AddDate(0, 0, 20)),
		}, "open new-rejected old-done"},
		{"equal keys keep their order", []*core.PrivacyRequest{
			req("x", core.StatusReceived, day(20), day(30).AddDate(0, 0, 20)),
			req("y", core.StatusReceived, day(20), day(30).AddDate(0, 0, 20)),
		}, "x y"},
		{"empty", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			sortQueue(c.in, now)
			var ids []string
			for _, r := range c.in {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, " "); got != c.want {
				t.Errorf("order %q, want %q", got, c.want)
			}
		})
	}
}

// The person page shows a person's merges, segment memberships and every
// consent record, not just the identifiers.
func TestPersonPageSections(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// An anonymous visit, then the sign-in that links it to Ada: one more
	// merge.
	var msgs []event.Message
	for _, raw := range []string{
		`{"type":"track","messageId":"10","anonymousId":"anon-77","event":"Page Viewed","timestamp":"2026-08-30T00:00:00Z"}`,
		`{"type":"identify","messageId":"11","anonymousId":"anon-77","userId":"ada-4711","timestamp":"2026-09-03T00:00:00Z"}`,
	} {
		m, err := event.DecodeMessage([]byte(raw), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if _, err := e.cdp.Ingest(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	// A second consent record, for another purpose.
	ada := identity.Identifier{Type: identity.Email, Value: "ada@example.com"}
	if _, err := e.cdp.RecordConsent(ctx, core.ConsentRequest{Identifier: ada, Purpose: "analytics", Status: "denied",
		Source: "test", CollectedAt: fixedNow.Add(-30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// A member of a segment.
	if _, err := e.cdp.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cdp.RefreshSegment(ctx, "buyers", time.Time{}); err != nil {
		t.Fatal(err)
	}

	b := e.signedIn(t, core.RoleDPO)
	b.get("/console/people")
	code, body, _ := b.post("/console/people", url.Values{"id_type": {"email"}, "id_value": {"ada@example.com"}})
	if code != http.StatusOK {
		t.Fatalf("person page: %d\n%s", code, body)
	}
	section := func(start, end string) string {
		i := strings.Index(body, start)
		if i < 0 {
			t.Fatalf("the page has no %s\n%s", start, body)
		}
		j := strings.Index(body[i:], end)
		if j < 0 {
			t.Fatalf("%s is not closed", start)
		}
		return body[i : i+j]
	}
	for _, c := range []struct {
		name, start, end string
		want             []string
		count            string // appears exactly n times
		n                int
	}{
		// One node per identifier, linked on the email and the phone,
		// then the anonymous visit on the sign-in.
		{"merges", `<ul id="merges">`, "</ul>", []string{"2026-09-03 00:00 UTC: merged <code>", "on anonymous_id</li>"}, "merged <code>", 3},
		{"memberships", `<ul id="memberships">`, "</ul>", []string{"<code>buyers</code> since 2026-11-01 12:00 UTC"}, "<li>", 1},
		{"consent history", `<table id="consent-history">`, "</table>", []string{
			"<td><code>marketing.communications.email</code></td><td>granted</td>",
			"<td><code>analytics</code></td><td>denied</td>",
		}, "<tr><td>", 2},
		{"identifiers", `<table id="identifiers">`, "</table>", []string{"anon-77", "ada-4711"}, "<tr><td>", 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := section(c.start, c.end)
			for _, w := range c.want {
				if !strings.Contains(s, w) {
					t.Errorf("lacks %q:\n%s", w, s)
				}
			}
			if n := strings.Count(s, c.count); n != c.n {
				t.Errorf("%d × %q, want %d:\n%s", n, c.count, c.n, s)
			}
		})
	}
}

// The template form creates the segment with the parameters given, refreshes
// it once and opens its page.
func TestSegmentFromTemplate(t *testing.T) {
	for _, c := range []struct {
		name     string
		orders   string
		wantSize string // allowed size on the segment's page
		wantDesc string
	}{
		// Ada and Bob have one order each; only Ada consented.
		{"one order", "1", "1", "At least 1 orders."},
		{"the default, two orders", "2", "0", "At least 2 orders."},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.signedIn(t, core.RoleMarketer)
			code, body := b.get("/console/segments?template=repeat_buyers")
			if code != http.StatusOK || !strings.Contains(body, `id="template-form"`) || !strings.Contains(body, `name="param_orders" value="2"`) {
				t.Fatalf("template form: %d\n%s", code, body)
			}
			// Submit the form as rendered (its hidden fields included),
			// with the one parameter changed.
			form := formValues(t, body, "template-form")
			if form.Get("param_purpose") != "marketing.communications.email" {
				t.Fatalf("template form fields: %v", form)
			}
			form.Set("param_orders", c.orders)
			code, body, resp := b.post("/console/segments", form)
			if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/segments/repeat_buyers" {
				t.Fatalf("create from template: %d to %q\n%s", code, resp.Header.Get("Location"), body)
			}
			defs, err := e.cdp.Segments(context.Background())
			if err != nil || len(defs) != 1 || defs[0].Name != "repeat_buyers" || defs[0].Description != c.wantDesc {
				t.Fatalf("stored segments: %+v (%v), want repeat_buyers, %q", defs, err, c.wantDesc)
			}
			code, body = b.get("/console/segments/repeat_buyers")
			if code != http.StatusOK || !strings.Contains(body, `<dd id="size">`+c.wantSize+`</dd>`) || !strings.Contains(body, c.wantDesc) {
				t.Fatalf("segment page: %d, want size %s\n%s", code, c.wantSize, body)
			}
			// The first refresh was recorded: the chart has its first point.
			if !strings.Contains(body, `<svg class="chart"`) {
				t.Errorf("no size chart after the first refresh")
			}
			_, body = b.get("/console/segments")
			if !strings.Contains(body, `<a href="/console/segments/repeat_buyers">repeat_buyers</a>`) {
				t.Errorf("the list lacks the new segment\n%s", body)
			}
		})
	}
}

// formValues returns the name and value of every input of the form with
// that id in body, as a browser would submit them unchanged.
func formValues(t *testing.T, body, id string) url.Values {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no form %s", id)
	}
	end := strings.Index(body[i:], "</form>")
	if end < 0 {
		t.Fatalf("form %s is not closed", id)
	}
	v := url.Values{}
	attr := func(tag, name string) string {
		m := regexp.MustCompile(` ` + name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	for _, tag := range regexp.MustCompile(`<input[^>]*>`).FindAllString(body[i:i+end], -1) {
		if n := attr(tag, "name"); n != "" {
			v.Set(n, attr(tag, "value"))
		}
	}
	return v
}

var polylineRe = regexp.MustCompile(`<polyline class="(members|notconsented)" points="([^"]*)"/>`)

// chartLines returns the points of the chart's polylines by class.
func chartLines(t *testing.T, svg string) map[string][][2]float64 {
	t.Helper()
	out := map[string][][2]float64{}
	for _, m := range polylineRe.FindAllStringSubmatch(svg, -1) {
		var pts [][2]float64
		for _, p := range strings.Fields(m[2]) {
			var x, y float64
			if _, err := fmt.Sscanf(p, "%f,%f", &x, &y); err != nil {
				t.Fatalf("polyline point %q: %v", p, err)
			}
			pts = append(pts, [2]float64{x, y})
		}
		out[m[1]] = pts
	}
	return out
}

func TestSizeChart(t *testing.T) {
	at := func(h int) time.Time { return fixedNow.Add(time.Duration(h) * time.Hour) }
	for _, c := range []struct {
		name    string
		h       []core.SizePoint
		members []float64 // the members line's y per point (0 at 156, the max at 24)
		notCons []float64
	}{
		{"none", nil, nil, nil},
		{"one refresh: a point, no line", []core.SizePoint{{At: at(0), Members: 2, NotConsented: 1}}, []float64{24}, []float64{90}},
		{"two refreshes", []core.SizePoint{{At: at(0), Members: 1, NotConsented: 1}, {At: at(1), Members: 2, NotConsented: 0}},
			[]float64{90, 24}, []float64{90, 156}},
		{"three refreshes", []core.SizePoint{{At: at(0), Members: 0}, {At: at(1), Members: 4, NotConsented: 2}, {At: at(2), Members: 2, NotConsented: 4}},
			[]float64{156, 24, 90}, []float64{156, 90, 24}},
	} {
		t.Run(c.name, func(t *testing.T) {
			svg := string(sizeChart(c.h))
			if len(c.h) == 0 {
				if !strings.Contains(svg, "No refresh recorded") || strings.Contains(svg, "<svg") {
					t.Fatalf("no history: %s", svg)
				}
				return
			}
			lines := chartLines(t, svg)
			for class, want := range map[string][]float64{"members": c.members, "notconsented": c.notCons} {
				pts := lines[class]
				if len(pts) != len(want) {
					t.Fatalf("%s line has %d points, want %d: %s", class, len(pts), len(want), svg)
				}
				for i, p := range pts {
					if p[1] != want[i] {
						t.Errorf("%s point %d at y %.1f, want %.1f", class, i, p[1], want[i])
					}
					// Left to right, from one edge to the other.
					if i > 0 && p[0] <= pts[i-1][0] {
						t.Errorf("%s point %d at x %.1f, not right of %.1f", class, i, p[0], pts[i-1][0])
					}
				}
				if n := len(pts); n > 1 && (pts[0][0] != 24 || pts[n-1][0] != 576) {
					t.Errorf("%s line spans x %.1f to %.1f, want 24 to 576", class, pts[0][0], pts[n-1][0])
				}
			}
			if n := strings.Count(svg, `<circle class="members"`); n != len(c.h) {
				t.Errorf("%d points marked, want %d", n, len(c.h))
			}
			if want := fmt.Sprintf("Size over %d refreshes", len(c.h)); !strings.Contains(svg, want) {
				t.Errorf("the chart's title lacks %q", want)
			}
		})
	}
}

// With two refreshes the segment page draws the size over time as lines.
func TestSegmentPageChart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.cdp.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cdp.RefreshSegment(ctx, "buyers", fixedNow); err != nil {
		t.Fatal(err)
	}
	// Bob consents: the second refresh counts two members.
	if _, err := e.cdp.RecordConsent(ctx, core.ConsentRequest{Identifier: identity.Identifier{Type: identity.Email, Value: "bob@example.com"},
		Purpose: "marketing.communications.email", Status: "granted", Source: "test", CollectedAt: fixedNow}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cdp.RefreshSegment(ctx, "buyers", fixedNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn(t, core.RoleMarketer)
	code, body := b.get("/console/segments/buyers")
	if code != http.StatusOK || !strings.Contains(body, "Size over 2 refreshes") {
		t.Fatalf("segment page: %d\n%s", code, body)
	}
	lines := chartLines(t, body)
	m, nc := lines["members"], lines["notconsented"]
	if len(m) != 2 || len(nc) != 2 {
		t.Fatalf("lines of %d and %d points, want 2 each:\n%s", len(m), len(nc), body)
	}
	// Members rose from 1 to 2 (up the chart), not consented fell 1 to 0.
	if !(m[1][0] > m[0][0] && m[1][1] < m[0][1]) || !(nc[1][1] > nc[0][1]) {
		t.Errorf("members line %v, not consented line %v: want members rising, not consented falling", m, nc)
	}
}

// auditBackend is the CDP with the audit verification it is told to report.
type auditBackend struct {
	*core.CDP
	rep audit.VerifyReport
	err error
}

func (b auditBackend) AuditVerify(context.Context) (audit.VerifyReport, error) { return b.rep, b.err }

// The audit page says plainly when the chain does not verify, and where.
func TestAuditPageVerification(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name    string
		rep     audit.VerifyReport
		err     error
		code    int
		want    []string
		notWant []string
	}{
		{"verified", audit.VerifyReport{Entries: 9, Head: 9, OK: true}, nil, http.StatusOK,
			[]string{`id="audit-status" class="ok"`, "Chain verified: 9 entries"}, []string{"FAILED"}},
		{"changed entry", audit.VerifyReport{Entries: 9, Head: 9, FirstBad: 4, Problem: "entry 4 does not match its hash"}, nil, http.StatusOK,
			[]string{`id="audit-status" class="error"`, "Verification FAILED", `<span id="audit-first-bad">#4</span>`, "(entry 4 does not match its hash)"},
			[]string{"Chain verified"}},
		{"head missing", audit.VerifyReport{Entries: 9, FirstBad: 1}, nil, http.StatusOK,
			[]string{`id="audit-status" class="error"`, "Verification FAILED", `<span id="audit-first-bad">#1</span>`},
			[]string{"Chain verified"}},
		{"verify cannot run", audit.VerifyReport{}, errors.New("disk on fire"), http.StatusInternalServerError,
			[]string{"Something went wrong"}, []string{"Chain verified", "disk on fire"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := e.consoleOver(t, auditBackend{CDP: e.cdp, rep: c.rep, err: c.err}, core.RoleDPO)
			code, body := b.get("/console/audit")
			if code != c.code {
				t.Fatalf("audit page: %d, want %d\n%s", code, c.code, body)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q\n%s", w, body)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(body, w) {
					t.Errorf("the page has %q", w)
				}
			}
		})
	}
}

// consoleOver serves a console over backend (the env's clock) and returns
// a browser signed in to it with the env's key of role.
func (e *env) consoleOver(t *testing.T, backend Backend, role core.Role) *browser {
	t.Helper()
	opts := DefaultOptions()
	opts.Now = e.clock.Now
	con, err := New(backend, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(func() { srv.Close(); _ = con.Close() })
	b := e.browser(t)
	b.base = srv.URL
	if code, _ := b.signIn(e.keys[role].Key); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	return b
}

// keyBackend is the CDP with the key status it is told to report.
type keyBackend struct {
	*core.CDP
	st keys.Status
}

func (b keyBackend) KeyStatus(context.Context) (keys.Status, error) { return b.st, nil }

// "Last rotation" is when the current epoch began, pending or not.
func TestSystemPageLastRotation(t *testing.T) {
	e := newEnv(t)
	day := func(d int) time.Time { return time.Date(2026, 10, d, 9, 30, 0, 0, time.UTC) }
	for _, c := range []struct {
		name string
		st   keys.Status
		want string
	}{
		{"never rotated", keys.Status{Epoch: 1, EpochCreatedAt: day(1), LiveEpochs: []keys.EpochInfo{{Epoch: 1, CreatedAt: day(1)}}},
			"never"},
		{"first rotation pending", keys.Status{Epoch: 2, EpochCreatedAt: day(5), RotationPending: true,
			LiveEpochs: []keys.EpochInfo{{Epoch: 1, CreatedAt: day(1)}, {Epoch: 2, CreatedAt: day(5)}}},
			"2026-10-05 09:30 UTC"},
		{"second rotation pending", keys.Status{Epoch: 3, EpochCreatedAt: day(20), RotationPending: true,
			LiveEpochs: []keys.EpochInfo{{Epoch: 2, CreatedAt: day(5)}, {Epoch: 3, CreatedAt: day(20)}},
			Retired:    []keys.RetiredEpoch{{Epoch: 1, RetiredAt: day(6)}}},
			"2026-10-20 09:30 UTC"},
		{"rotation finished", keys.Status{Epoch: 3, EpochCreatedAt: day(20),
			LiveEpochs: []keys.EpochInfo{{Epoch: 3, CreatedAt: day(20)}},
			Retired:    []keys.RetiredEpoch{{Epoch: 1, RetiredAt: day(6)}, {Epoch: 2, RetiredAt: day(21)}}},
			"2026-10-20 09:30 UTC"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := e.consoleOver(t, keyBackend{CDP: e.cdp, st: c.st}, core.RoleAdmin)
			code, body := b.get("/console/admin/system")
			if want := `<dd id="last-rotation">` + c.want + `</dd>`; code != http.StatusOK || !strings.Contains(body, want) {
				t.Fatalf("system page: %d, want %s\n%s", code, want, body)
			}
		})
	}
	t.Run("a real rotation", func(t *testing.T) {
		e.clock.Set(fixedNow.Add(90 * time.Minute))
		defer e.clock.Set(fixedNow)
		if _, err := e.cdp.RotateKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, body := e.signedIn(t, core.RoleAdmin).get("/console/admin/system")
		if want := `<dd id="last-rotation">2026-11-01 13:30 UTC</dd>`; !strings.Contains(body, want) {
			t.Fatalf("system page after a rotation: want %s\n%s", want, body)
		}
	})
}
