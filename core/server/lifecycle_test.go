package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/identity"
)

// The request lifecycle over HTTP: a request received only (202), then
// verified (carried out) or rejected by a dpo key; wrong roles refused;
// backups for admin keys only, and never plaintext.
func TestPrivacyLifecycleEndpoints(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.post(t, "/v1/identify", e.keys[core.RoleIngest], []byte(`{"userId":"lc","traits":{"email":"lc@example.com"}}`), nil); code != 200 {
		t.Fatal(code)
	}
	receive := func(typ string) string {
		t.Helper()
		code, b := e.adminDo(t, http.MethodPost, "/v1/admin/privacy/requests", core.RoleDPO,
			`{"type":"`+typ+`","identifier":{"type":"email","value":"lc@example.com"},"receive_only":true}`)
		var out PrivacyRequestResponse
		if code != http.StatusAccepted || json.Unmarshal(b, &out) != nil || out.Request.Status != core.StatusReceived || out.Report != nil {
			t.Fatalf("receive: %d %s", code, b)
		}
		return out.Request.ID
	}
	access, del := receive("access"), receive("suppress_with_delete")
	tests := []struct {
		name, path string
		role       core.Role
		body       string
		want       int
		has        string
	}{
		{"verify as marketer", "/v1/admin/privacy/requests/" + access + "/verify", core.RoleMarketer, `{"method":"x"}`, http.StatusForbidden, ""},
		{"verify without method", "/v1/admin/privacy/requests/" + access + "/verify", core.RoleDPO, `{}`, http.StatusBadRequest, ""},
		{"verify unknown", "/v1/admin/privacy/requests/nope/verify", core.RoleDPO, `{"method":"x"}`, http.StatusNotFound, ""},
		{"verify access", "/v1/admin/privacy/requests/" + access + "/verify", core.RoleDPO, `{"method":"signed-in account"}`, http.StatusOK, `"report"`},
		{"verify twice", "/v1/admin/privacy/requests/" + access + "/verify", core.RoleDPO, `{"method":"again"}`, http.StatusBadRequest, ""},
		{"reject a completed request", "/v1/admin/privacy/requests/" + access + "/reject", core.RoleDPO, `{"reason":"x"}`, http.StatusBadRequest, ""},
		{"reject without reason", "/v1/admin/privacy/requests/" + del + "/reject", core.RoleDPO, `{}`, http.StatusBadRequest, ""},
		{"reject delete", "/v1/admin/privacy/requests/" + del + "/reject", core.RoleDPO, `{"reason":"identity not confirmed"}`, http.StatusOK, `"rejected"`},
		{"backup as dpo", "/v1/admin/backup", core.RoleDPO, "", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := e.adminDo(t, http.MethodPost, tt.path, tt.role, tt.body)
			if tt.path == "/v1/admin/backup" {
				code, b = e.adminDo(t, http.MethodGet, tt.path, tt.role, "")
			}
			if code != tt.want || !strings.Contains(string(b), tt.has) {
				t.Fatalf("got %d %s, want %d with %s", code, b, tt.want, tt.has)
			}
		})
	}
	// The rejected deletion did nothing.
	if n := e.events(t, identity.Identifier{Type: identity.Email, Value: "lc@example.com"}); n != 1 {
		t.Fatalf("events after a rejected deletion: %d", n)
	}
	code, b := e.adminDo(t, http.MethodGet, "/v1/admin/backup", core.RoleAdmin, "")
	if code != http.StatusOK || len(b) < 100 || bytes.Contains(b, []byte("lc@example.com")) {
		t.Fatalf("backup: %d, %d bytes", code, len(b))
	}
}
