package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/identity"
)

// get calls path with a key of role (Bearer) and returns status, headers
// and body.
func (e *env) get(t *testing.T, path string, role core.Role) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[role])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Over real HTTP: the storefront's key gets the segments of a person who
// allowed personalisation, and the very same answer (body and headers) for
// one who did not, an unknown one and an erased one; never an identifier.
func TestPersonalizeOverHTTP(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	batch := `{"batch":[
		{"type":"identify","messageId":"1","userId":"shopper-yes","anonymousId":"anon-yes","traits":{"email":"yes@example.com","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"},
		{"type":"track","messageId":"2","userId":"shopper-yes","event":"Order Completed","properties":{"total":80},"timestamp":"2026-10-30T00:00:00Z"},
		{"type":"identify","messageId":"3","userId":"shopper-no","traits":{"email":"no@example.com","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"},
		{"type":"track","messageId":"4","userId":"shopper-no","event":"Order Completed","properties":{"total":80},"timestamp":"2026-10-30T00:00:00Z"},
		{"type":"identify","messageId":"5","userId":"shopper-gone","traits":{"email":"gone@example.com","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"},
		{"type":"track","messageId":"6","userId":"shopper-gone","event":"Order Completed","properties":{"total":80},"timestamp":"2026-10-30T00:00:00Z"}]}`
	if code, eb := e.post(t, "/v1/batch", e.keys[core.RoleIngest], []byte(batch), nil); code != 200 {
		t.Fatalf("%d %+v", code, eb)
	}
	for _, u := range []string{"shopper-yes", "shopper-gone"} {
		if _, err := e.cdp.RecordConsent(ctx, core.ConsentRequest{Identifier: identity.Identifier{Type: identity.UserID, Value: u},
			Purpose: core.PersonalizePurpose, Status: "granted"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cdp.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"essential.service.operations","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cdp.RefreshSegment(ctx, "buyers", time.Time{}); err != nil {
		t.Fatal(err)
	}
	q := func(k, v string) string { return "/v1/personalize?" + url.Values{k: {v}}.Encode() }
	code, _, yes := e.get(t, q("userId", "shopper-yes"), core.RolePersonalize)
	if code != 200 || !strings.Contains(yes, `"segments":["buyers"]`) || !strings.Contains(yes, `"order_count":1`) {
		t.Fatalf("%d %s", code, yes)
	}
	if _, _, a := e.get(t, q("anonymousId", "anon-yes"), core.RolePersonalize); a != yes {
		t.Fatalf("by anonymous id: %s, by user id: %s", a, yes)
	}
	gone := q("userId", "shopper-gone")
	if code, _, b := e.get(t, gone, core.RolePersonalize); code != 200 || !strings.Contains(b, "buyers") {
		t.Fatalf("before erasure: %d %s", code, b)
	}
	if code, b := e.adminDo(t, http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO,
		`{"type":"delete","regulation":"gdpr","identifier":{"type":"user_id","value":"shopper-gone"}}`); code != 200 {
		t.Fatalf("delete: %d %s", code, b)
	}
	var first http.Header
	var firstBody string
	for i, path := range []string{q("userId", "shopper-no"), q("userId", "never-seen"), q("anonymousId", "never-seen"), gone} {
		code, hdr, b := e.get(t, path, core.RolePersonalize)
		if code != 200 || b != `{"segments":[],"traits":{}}`+"\n" && b != `{"segments":[],"traits":{}}` {
			t.Fatalf("%s: %d %q", path, code, b)
		}
		hdr.Del("Date")
		if i == 0 {
			first, firstBody = hdr, b
			continue
		}
		if b != firstBody || len(hdr) != len(first) {
			t.Fatalf("%s: answer %q %v differs from %q %v", path, b, hdr, firstBody, first)
		}
		for k := range first {
			if hdr.Get(k) != first.Get(k) {
				t.Fatalf("%s: header %s %q, want %q", path, k, hdr.Get(k), first.Get(k))
			}
		}
	}
	if first.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", first.Get("Cache-Control"))
	}
	for _, s := range []string{"shopper", "anon-", "@", "user_id"} {
		if strings.Contains(yes, s) {
			t.Fatalf("answer carries %q: %s", s, yes)
		}
	}
	for _, path := range []string{"/v1/personalize", "/v1/personalize?userId=a&anonymousId=b", "/v1/personalize?userId=", "/v1/personalize?email=yes@example.com"} {
		code, _, b := e.get(t, path, core.RolePersonalize)
		if code != http.StatusBadRequest || strings.Contains(b, "yes@") {
			t.Errorf("%s: %d %s, want 400 without the value", path, code, b)
		}
	}
	for _, role := range []core.Role{core.RoleAdmin, core.RoleMarketer, core.RoleDPO, core.RoleIngest} {
		if code, _, _ := e.get(t, q("userId", "shopper-yes"), role); code != http.StatusForbidden {
			t.Errorf("%s key: %d, want 403", role, code)
		}
	}
	// The personalize key reads nothing else: not the profile it was just
	// told about.
	if code, _, _ := e.get(t, "/v1/admin/profiles?user_id=shopper-yes", core.RolePersonalize); code != http.StatusForbidden {
		t.Errorf("personalize key on profiles: %d, want 403", code)
	}
}

// The personalize role is the storefront's: it may call the lookup and
// nothing else, and no other role may call the lookup (the role matrix
// test checks the server enforces the table; this checks the table).
func TestPersonalizeRoleInTheTable(t *testing.T) {
	found := false
	for _, rt := range Routes() {
		if rt.Pattern == "/v1/personalize" {
			found = true
			if len(rt.Roles) != 1 || rt.Roles[0] != core.RolePersonalize || rt.Method != http.MethodGet {
				t.Errorf("/v1/personalize: %s for %v, want GET for personalize only", rt.Method, rt.Roles)
			}
			continue
		}
		if rt.Allows(core.RolePersonalize) {
			t.Errorf("%s %s allows the personalize role", rt.Method, rt.Pattern)
		}
	}
	if !found {
		t.Fatal("no /v1/personalize route")
	}
}

// The admin API's segment list carries hygiene warnings on request; the
// plain list is unchanged (definitions).
func TestSegmentHygieneOverHTTP(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.cdp.ApplySegmentData(ctx, []byte(`{"name":"lonely","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	code, _, b := e.get(t, "/v1/admin/segments", core.RoleMarketer)
	var defs []map[string]any
	if code != 200 || json.Unmarshal([]byte(b), &defs) != nil || len(defs) != 1 || defs[0]["where"] == nil {
		t.Fatalf("plain list: %d %s", code, b)
	}
	later := fixedNow.Add(200 * 24 * time.Hour).Format(time.RFC3339)
	code, _, b = e.get(t, "/v1/admin/segments?hygiene=true&now="+later, core.RoleMarketer)
	var list []core.SegmentHealth
	if code != 200 || json.Unmarshal([]byte(b), &list) != nil || len(list) != 1 {
		t.Fatalf("hygiene list: %d %s", code, b)
	}
	var codes []string
	for _, w := range list[0].Warnings {
		codes = append(codes, w.Code)
	}
	if list[0].Members != 0 || strings.Join(codes, ",") != "too_small,unused" || list[0].Definition == nil || list[0].Definition.Name != "lonely" {
		t.Fatalf("hygiene: %+v", list[0])
	}
	if code, _, _ := e.get(t, "/v1/admin/segments?hygiene=true&now=yesterday", core.RoleMarketer); code != http.StatusBadRequest {
		t.Fatalf("bad now: %d", code)
	}
}
