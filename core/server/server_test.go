package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/identity"
)

var fixedNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	cdp    *core.CDP
	server *Server
	srv    *httptest.Server
	keys   map[core.Role]string
	clock  func() time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with server options changed by edit. Unless edit
// says otherwise, failed authentication is not rate-limited (the clock is
// fixed, so buckets never refill).
func newEnvWith(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	cfg := core.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Store.BlockCacheMiB, cfg.Store.IndexCacheMiB, cfg.Store.MemTableMiB = 16, 16, 16
	if err := core.Init(ctx, cfg, core.Options{}); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return fixedNow }
	cdp, err := core.Open(ctx, cfg, core.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cdp: cdp, keys: map[core.Role]string{}, clock: clock}
	for _, r := range []core.Role{core.RoleIngest, core.RoleMarketer, core.RoleDPO, core.RoleAdmin, core.RolePersonalize} {
		k, err := cdp.CreateAPIKey(ctx, r, string(r))
		if err != nil {
			t.Fatal(err)
		}
		e.keys[r] = k.Key
	}
	opts := DefaultOptions()
	opts.Now = clock
	opts.Registry = cdp.Registry()
	opts.AuthFailures.Burst = 1 << 20
	if edit != nil {
		edit(&opts)
	}
	e.server = New(cdp, opts)
	e.srv = httptest.NewServer(e.server.Handler())
	t.Cleanup(func() { e.srv.Close(); _ = cdp.Close() })
	return e
}

func (e *env) post(t *testing.T, path, writeKey string, body []byte, hdr map[string]string) (int, ErrorBody) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if writeKey != "" {
		req.SetBasicAuth(writeKey, "")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb ErrorBody
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb
}

func (e *env) events(t *testing.T, id identity.Identifier) int {
	t.Helper()
	p, err := e.cdp.Profile(context.Background(), id, core.ShowOptions{})
	if err != nil {
		return 0
	}
	return p.EventCount
}

func TestIngestEndpoints(t *testing.T) {
	e := newEnv(t)
	k := e.keys[core.RoleIngest]
	tests := []struct {
		path, body string
	}{
		{"/v1/identify", `{"userId":"u1","traits":{"email":"a@example.com"}}`},
		{"/v1/track", `{"userId":"u1","event":"Product Viewed","properties":{"sku":"S1"}}`},
		{"/v1/page", `{"userId":"u1","name":"Home"}`},
		{"/v1/screen", `{"userId":"u1","name":"Cart"}`},
		{"/v1/group", `{"userId":"u1","groupId":"g1"}`},
		{"/v1/alias", `{"userId":"u1","previousId":"anon-9"}`},
		{"/v1/batch", `{"batch":[{"type":"track","userId":"u1","event":"A"},{"type":"page","userId":"u1"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, eb := e.post(t, tt.path, k, []byte(tt.body), nil)
			if code != http.StatusOK {
				t.Fatalf("%s: %d %+v", tt.path, code, eb)
			}
		})
	}
	if n := e.events(t, identity.Identifier{Type: identity.UserID, Value: "u1"}); n != 8 {
		t.Fatalf("stored %d events, want 8", n)
	}
}

func TestGzipBody(t *testing.T) {
	e := newEnv(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"batch":[{"type":"track","userId":"gz","event":"A"}]}`))
	zw.Close()
	code, eb := e.post(t, "/v1/batch", e.keys[core.RoleIngest], buf.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	if code != http.StatusOK {
		t.Fatalf("%d %+v", code, eb)
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	e := newEnv(t)
	k := e.keys[core.RoleIngest]
	big := strings.Repeat("x", 40*1024)
	var items []string
	for i := 0; i < 20; i++ {
		items = append(items, fmt.Sprintf(`{"type":"track","userId":"bad","event":"E","properties":{"p":"%s"}}`, strings.Repeat("y", 30*1024)))
	}
	tests := []struct {
		name, path, body string
		index            int
		field            string
		code             string
	}{
		{"malformed json", "/v1/batch", `{"batch":[{"type":"track","userId":"bad","event":"E"},{"type":`, -1, "", "malformed_json"},
		{"userId number", "/v1/batch", `{"batch":[{"type":"track","userId":"bad","event":"E"},{"type":"track","userId":7,"event":"E"}]}`, 1, "userId", "invalid_field"},
		{"no identity", "/v1/batch", `{"batch":[{"type":"track","userId":"bad","event":"E"},{"type":"track","event":"E"}]}`, 1, "", "missing_identity"},
		{"unknown type", "/v1/batch", `{"batch":[{"type":"track","userId":"bad","event":"E"},{"type":"boom","userId":"bad"}]}`, 1, "type", "unknown_type"},
		{"traits array", "/v1/identify", `{"userId":"bad","traits":[1,2]}`, -1, "traits", "invalid_field"},
		{"track without event", "/v1/track", `{"userId":"bad"}`, -1, "event", ""},
		{"oversize message", "/v1/track", `{"userId":"bad","event":"E","properties":{"p":"` + big + `"}}`, -1, "", ""},
		{"oversize batch", "/v1/batch", `{"batch":[` + strings.Join(items, ",") + `]}`, -1, "", ""},
		{"invalid utf8", "/v1/track", "{\"userId\":\"bad\",\"event\":\"\xff\xfe\"}", -1, "", "invalid_utf8"},
		{"empty batch", "/v1/batch", `{"batch":[]}`, -1, "", "empty_batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, eb := e.post(t, tt.path, k, []byte(tt.body), nil)
			if code != http.StatusBadRequest || eb.Error == "" {
				t.Fatalf("got %d %+v, want 400 with an error", code, eb)
			}
			if tt.index >= 0 && (eb.Index == nil || *eb.Index != tt.index) {
				t.Errorf("index = %v, want %d (%s)", eb.Index, tt.index, eb.Error)
			}
			if tt.field != "" && !strings.Contains(eb.Field, tt.field) {
				t.Errorf("field = %q, want %q (%s)", eb.Field, tt.field, eb.Error)
			}
			if tt.code != "" && eb.Code != tt.code {
				t.Errorf("code = %q, want %q (%s)", eb.Code, tt.code, eb.Error)
			}
		})
	}
	if n := e.events(t, identity.Identifier{Type: identity.UserID, Value: "bad"}); n != 0 {
		t.Fatalf("%d events of rejected requests were stored", n)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"userId":"u","event":"E"}`)
	tests := []struct {
		name string
		key  string
		want int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"wrong key", "cus_not-a-real-key", http.StatusUnauthorized},
		{"garbage", "hello", http.StatusUnauthorized},
		{"ingest", e.keys[core.RoleIngest], http.StatusOK},
		{"admin", e.keys[core.RoleAdmin], http.StatusOK},
		{"marketer", e.keys[core.RoleMarketer], http.StatusForbidden},
		{"dpo", e.keys[core.RoleDPO], http.StatusForbidden},
		{"personalize", e.keys[core.RolePersonalize], http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, eb := e.post(t, "/v1/track", tt.key, body, nil); code != tt.want {
				t.Fatalf("got %d %+v, want %d", code, eb, tt.want)
			}
		})
	}
}

func TestAdminProfileRoles(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.post(t, "/v1/identify", e.keys[core.RoleIngest], []byte(`{"userId":"who","traits":{"email":"w@example.com"}}`), nil); code != 200 {
		t.Fatal(code)
	}
	tests := []struct {
		role core.Role
		want int
	}{
		{"", http.StatusUnauthorized},
		{core.RoleIngest, http.StatusForbidden},
		{core.RoleMarketer, http.StatusForbidden},
		{core.RolePersonalize, http.StatusForbidden},
		{core.RoleDPO, http.StatusOK},
		{core.RoleAdmin, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/admin/profiles?user_id=who", nil)
			if tt.role != "" {
				req.Header.Set("Authorization", "Bearer "+e.keys[tt.role])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusOK {
				var p core.ProfileView
				if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.EventCount != 1 {
					t.Fatalf("profile %+v %v", p, err)
				}
			}
		})
	}
}

func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t)
	e.post(t, "/v1/track", e.keys[core.RoleIngest], []byte(`{"userId":"m","event":"E"}`), nil)
	for path, wants := range map[string][]string{
		"/healthz": {`"ok"`},
		"/metrics": {"custody_ingest_messages_total", "custody_store_tables ", "custody_store_index_bytes ",
			`custody_store_cache_requests_total{cache="block",result="hit"}`, `custody_store_cache_requests_total{cache="index",result="miss"}`},
	} {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range wants {
			if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
				t.Fatalf("%s: %d, no %s in %s", path, resp.StatusCode, want, b)
			}
		}
	}
}

func (e *env) adminDo(t *testing.T, method, path string, role core.Role, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[role])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestGPCHeaderRecordsOptOut(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"userId":"gpc-user","traits":{"address":{"country":"US","state":"CA"}}}`)
	if code, eb := e.post(t, "/v1/identify", e.keys[core.RoleIngest], body, map[string]string{"Sec-GPC": "1"}); code != 200 {
		t.Fatalf("%d %+v", code, eb)
	}
	code, b := e.adminDo(t, http.MethodGet, "/v1/admin/consent?user_id=gpc-user", core.RoleDPO, "")
	if code != 200 || !strings.Contains(string(b), `"third_party_sharing"`) || !strings.Contains(string(b), `"gpc"`) {
		t.Fatalf("%d %s", code, b)
	}
}

func TestConsentEndpoints(t *testing.T) {
	e := newEnv(t)
	rec := `{"identifier":{"type":"email","value":"c@example.com"},"purpose":"marketing.communications.email","status":"granted","jurisdiction":"EU"}`
	tests := []struct {
		name   string
		method string
		path   string
		role   core.Role
		body   string
		want   int
	}{
		{"record as dpo", http.MethodPost, "/v1/admin/consent", core.RoleDPO, rec, http.StatusCreated},
		{"record as marketer", http.MethodPost, "/v1/admin/consent", core.RoleMarketer, rec, http.StatusForbidden},
		{"record with unknown purpose", http.MethodPost, "/v1/admin/consent", core.RoleAdmin, strings.Replace(rec, "marketing.communications.email", "mind.reading", 1), http.StatusBadRequest},
		{"record with unknown field", http.MethodPost, "/v1/admin/consent", core.RoleAdmin, strings.Replace(rec, `"status"`, `"statuz"`, 1), http.StatusBadRequest},
		{"read as dpo", http.MethodGet, "/v1/admin/consent?email=c@example.com", core.RoleDPO, "", http.StatusOK},
		{"read as marketer", http.MethodGet, "/v1/admin/consent?email=c@example.com", core.RoleMarketer, "", http.StatusForbidden},
		{"read unknown", http.MethodGet, "/v1/admin/consent?email=nobody@example.com", core.RoleDPO, "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, b := e.adminDo(t, tt.method, tt.path, tt.role, tt.body); code != tt.want {
				t.Fatalf("got %d %s, want %d", code, b, tt.want)
			}
		})
	}
}

func TestSegmentEndpointsRoles(t *testing.T) {
	e := newEnv(t)
	def := `{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`
	tests := []struct {
		name   string
		method string
		path   string
		role   core.Role
		body   string
		want   int
	}{
		{"apply as marketer", http.MethodPost, "/v1/admin/segments", core.RoleMarketer, def, http.StatusCreated},
		{"apply a template", http.MethodPost, "/v1/admin/segments", core.RoleMarketer, `{"template":"vip"}`, http.StatusCreated},
		{"apply invalid", http.MethodPost, "/v1/admin/segments", core.RoleMarketer, `{"name":"x","purpose":"marketing","where":{"evnt":"A"}}`, http.StatusBadRequest},
		{"apply as dpo", http.MethodPost, "/v1/admin/segments", core.RoleDPO, def, http.StatusForbidden},
		{"apply as ingest", http.MethodPost, "/v1/admin/segments", core.RoleIngest, def, http.StatusForbidden},
		{"list as marketer", http.MethodGet, "/v1/admin/segments", core.RoleMarketer, "", http.StatusOK},
		{"eval as marketer", http.MethodGet, "/v1/admin/segments/buyers/eval?now=2026-11-01T00:00:00Z", core.RoleMarketer, "", http.StatusOK},
		{"eval bad now", http.MethodGet, "/v1/admin/segments/buyers/eval?now=yesterday", core.RoleMarketer, "", http.StatusBadRequest},
		{"eval unknown", http.MethodGet, "/v1/admin/segments/nope/eval", core.RoleMarketer, "", http.StatusNotFound},
		{"eval as personalize", http.MethodGet, "/v1/admin/segments/buyers/eval", core.RolePersonalize, "", http.StatusForbidden},
		{"export to unknown destination", http.MethodPost, "/v1/admin/segments/buyers/export?destination=x", core.RoleMarketer, "", http.StatusBadRequest},
		{"profile read as marketer", http.MethodGet, "/v1/admin/profiles?user_id=u", core.RoleMarketer, "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, b := e.adminDo(t, tt.method, tt.path, tt.role, tt.body); code != tt.want {
				t.Fatalf("got %d %s, want %d", code, b, tt.want)
			}
		})
	}
}

func TestPrivacyRequestEndpoints(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.post(t, "/v1/identify", e.keys[core.RoleIngest], []byte(`{"userId":"pr","traits":{"email":"pr@example.com"}}`), nil); code != 200 {
		t.Fatal(code)
	}
	access := `{"type":"access","regulation":"gdpr","identifier":{"type":"email","value":"pr@example.com"}}`
	tests := []struct {
		name   string
		method string
		path   string
		role   core.Role
		body   string
		want   int
		has    string
	}{
		{"access as dpo", http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO, access, http.StatusOK, `"report"`},
		{"access as marketer", http.MethodPost, "/v1/admin/privacy/requests", core.RoleMarketer, access, http.StatusForbidden, ""},
		{"access unknown person", http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO, strings.Replace(access, "pr@", "nobody@", 1), http.StatusOK, `"person":null`},
		{"bad body", http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO, `{"type":"access"}`, http.StatusBadRequest, ""},
		{"bad type", http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO, strings.Replace(access, `"access"`, `"forget"`, 1), http.StatusBadRequest, ""},
		{"delete as admin", http.MethodPost, "/v1/admin/privacy/requests", core.RoleAdmin, strings.Replace(access, `"access"`, `"suppress_with_delete"`, 1), http.StatusOK, `"completed"`},
		{"access after deletion", http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO, access, http.StatusOK, `"person":null`},
		{"delete unknown person", http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO, strings.Replace(access, `"access"`, `"delete"`, 1), http.StatusNotFound, `"rejected"`},
		{"list as dpo", http.MethodGet, "/v1/admin/privacy/requests", core.RoleDPO, "", http.StatusOK, `"due_at"`},
		{"list overdue", http.MethodGet, "/v1/admin/privacy/requests?overdue=true", core.RoleDPO, "", http.StatusOK, `[]`},
		{"list as ingest", http.MethodGet, "/v1/admin/privacy/requests", core.RoleIngest, "", http.StatusForbidden, ""},
		{"show unknown", http.MethodGet, "/v1/admin/privacy/requests/nope", core.RoleDPO, "", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := e.adminDo(t, tt.method, tt.path, tt.role, tt.body)
			if code != tt.want || !strings.Contains(string(b), tt.has) {
				t.Fatalf("got %d %s, want %d with %s", code, b, tt.want, tt.has)
			}
			if strings.Contains(string(b), "pr@example.com") && tt.has != `"report"` {
				t.Fatalf("identifier echoed: %s", b)
			}
		})
	}
}

// metric reads one sample of the server's /metrics, 0 when it is absent.
func (e *env) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscanf(v, "%g", &f); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// A deleted person's devices keep sending: over real HTTP every message
// naming one of their former identifiers is answered {"success": true}
// (Segment SDKs retry anything else), stored nowhere, and counted on
// /metrics as result="suppressed" so the operator sees the drops.
func TestSuppressedMessagesCountedOverHTTP(t *testing.T) {
	e := newEnv(t)
	ik := e.keys[core.RoleIngest]
	if code, _ := e.post(t, "/v1/identify", ik, []byte(`{"userId":"gone-1","anonymousId":"gone-anon","traits":{"email":"gone@example.com"}}`), nil); code != 200 {
		t.Fatal(code)
	}
	if code, b := e.adminDo(t, http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO,
		`{"type":"suppress_with_delete","identifier":{"type":"email","value":"gone@example.com"}}`); code != http.StatusOK || !strings.Contains(string(b), `"completed"`) {
		t.Fatalf("delete: %d %s", code, b)
	}
	before, err := e.cdp.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const suppressed = `custody_ingest_messages_total{result="suppressed"}`
	tests := []struct {
		name, path, body string
		want             float64 // suppressed messages the request adds
	}{
		{"track by user id", "/v1/track", `{"userId":"gone-1","event":"Product Viewed"}`, 1},
		{"page by anonymous id", "/v1/page", `{"anonymousId":"gone-anon","name":"Home"}`, 1},
		{"identify by email", "/v1/identify", `{"userId":"new-id","traits":{"email":"gone@example.com"}}`, 1},
		{"batch", "/v1/batch", `{"batch":[{"type":"track","userId":"gone-1","event":"A"},{"type":"track","anonymousId":"gone-anon","event":"B"}]}`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			was, accepted := e.metric(t, suppressed), e.metric(t, `custody_ingest_messages_total{result="accepted"}`)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+tt.path, strings.NewReader(tt.body))
			req.SetBasicAuth(ik, "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != `{"success":true}` {
				t.Fatalf("answer %d %s, want 200 {\"success\":true}", resp.StatusCode, b)
			}
			if got := e.metric(t, suppressed) - was; got != tt.want {
				t.Errorf("suppressed counter went up by %v, want %v", got, tt.want)
			}
			if got := e.metric(t, `custody_ingest_messages_total{result="accepted"}`) - accepted; got != 0 {
				t.Errorf("accepted counter went up by %v, want 0", got)
			}
		})
	}
	after, err := e.cdp.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("store changed by suppressed messages: %+v, was %+v", after, before)
	}
	for _, id := range []identity.Identifier{{Type: identity.UserID, Value: "gone-1"}, {Type: identity.AnonymousID, Value: "gone-anon"},
		{Type: identity.Email, Value: "gone@example.com"}, {Type: identity.UserID, Value: "new-id"}} {
		if _, err := e.cdp.Profile(context.Background(), id, core.ShowOptions{}); !errors.Is(err, core.ErrProfileNotFound) {
			t.Errorf("profile by %s after suppressed messages: %v, want not found", id.Type, err)
		}
	}
}
