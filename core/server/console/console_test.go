package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/identity"
)

var fixedNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// The seeded people's identifiers: no marketer page may contain any.
var seeded = []string{
	"ada@example.com", "ada-4711", "+4915112345678", "Lovelace",
	"bob@example.com", "bob-4712", "Bobbington",
}

type env struct {
	cdp  *core.CDP
	con  *Console
	srv  *httptest.Server
	keys map[core.Role]core.NewAPIKey
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
	clock := func() time.Time { return fixedNow }
	cdp, err := core.Open(ctx, cfg, core.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cdp: cdp, keys: map[core.Role]core.NewAPIKey{}}
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
	ctl := regexp.MustCompile(`<(input|select|textarea)([^>]*)>`)
	for _, p := range []string{"/console/requests", "/console/people", "/console/segments?template=cart_abandoners", "/console/admin/keys"} {
		_, body := b.get(p)
		for _, m := range ctl.FindAllStringSubmatch(body, -1) {
			attrs := m[2]
			if strings.Contains(attrs, `type="hidden"`) || strings.Contains(attrs, "aria-label=") {
				continue
			}
			id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(attrs)
			if id == nil || !strings.Contains(body, `<label for="`+id[1]+`"`) {
				t.Errorf("%s: control without a label: %s", p, m[0])
			}
		}
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
