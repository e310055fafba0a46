package server

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/core"
)

var update = flag.Bool("update", false, "rewrite the route table in docs/http-api.md")

// concretePath fills a pattern's wildcards.
func concretePath(pattern string) string {
	return pathParam.ReplaceAllString(pattern, "matrix")
}

// notRouted reports whether the mux itself answered (no route for the path
// or method), as opposed to a handler.
func notRouted(code int, body []byte) bool {
	return code == http.StatusMethodNotAllowed || (code == http.StatusNotFound && string(body) == "404 page not found\n")
}

// TestRoleMatrix calls every route of the table over HTTP with no key, a
// wrong key and a key of each role, and checks the answer against the
// table: 401 without a valid key, 403 for a role the table does not list,
// and neither (nor a mux 404/405) for a role it does.
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t)
	type caller struct {
		name string
		role core.Role // "": none
		key  string
	}
	callers := []caller{{"no key", "", ""}, {"wrong key", "", "cus_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}
	for _, r := range []core.Role{core.RoleIngest, core.RoleMarketer, core.RoleDPO, core.RoleAdmin, core.RolePersonalize} {
		callers = append(callers, caller{string(r), r, e.keys[r]})
	}
	rts := Routes()
	if len(rts) < 30 {
		t.Fatalf("only %d routes in the table", len(rts))
	}
	for _, rt := range rts {
		for _, c := range callers {
			// Basic routes take the key as the Basic user; the others as
			// Bearer. Both are tried for Basic routes.
			schemes := []string{"bearer"}
			if rt.Basic {
				schemes = append(schemes, "basic")
			}
			for _, scheme := range schemes {
				t.Run(rt.Method+" "+rt.Pattern+"/"+c.name+"/"+scheme, func(t *testing.T) {
					body := ""
					if rt.Method != http.MethodGet && rt.Method != http.MethodDelete {
						body = "{}"
					}
					req, _ := http.NewRequest(rt.Method, e.srv.URL+concretePath(rt.Pattern), strings.NewReader(body))
					if c.key != "" {
						if scheme == "basic" {
							req.SetBasicAuth(c.key, "")
						} else {
							req.Header.Set("Authorization", "Bearer "+c.key)
						}
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					code := resp.StatusCode
					if notRouted(code, b) {
						t.Fatalf("not routed: %d %s", code, b)
					}
					switch {
					case rt.Public():
						if code != http.StatusOK {
							t.Fatalf("public route: got %d %s, want 200", code, b)
						}
					case c.role == "":
						if code != http.StatusUnauthorized {
							t.Fatalf("got %d %s, want 401", code, b)
						}
					case !rt.Allows(c.role):
						if code != http.StatusForbidden {
							t.Fatalf("got %d %s, want 403", code, b)
						}
					default:
						if code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusTooManyRequests {
							t.Fatalf("allowed role got %d %s", code, b)
						}
					}
				})
			}
		}
	}
}

// TestRouteTableIsTheMux checks that the mux holds exactly the table's
// routes: the registrations made in New are the table, and a method the
// table does not list for a path is not served.
func TestRouteTableIsTheMux(t *testing.T) {
	e := newEnv(t)
	var want []string
	seen := map[string]bool{}
	for _, rt := range Routes() {
		p := rt.Method + " " + rt.Pattern
		if seen[p] {
			t.Fatalf("duplicate route %s", p)
		}
		seen[p] = true
		want = append(want, p)
	}
	if !slices.Equal(e.server.patterns, want) {
		t.Fatalf("mux registrations %v\ndiffer from the table %v", e.server.patterns, want)
	}
	for _, rt := range Routes() {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if seen[m+" "+rt.Pattern] {
				continue
			}
			req, _ := http.NewRequest(m, e.srv.URL+concretePath(rt.Pattern), nil)
			req.Header.Set("Authorization", "Bearer "+e.keys[core.RoleAdmin])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !notRouted(resp.StatusCode, b) {
				t.Errorf("%s %s is served (%d) but not in the table", m, rt.Pattern, resp.StatusCode)
			}
		}
	}
	for _, p := range []string{"/v1/admin", "/v1/admin/nothing", "/v2/batch", "/"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !notRouted(resp.StatusCode, b) {
			t.Errorf("GET %s is served (%d) but not in the table", p, resp.StatusCode)
		}
	}
}

// TestOpenAPIMatchesRoutes fetches the document without a key and checks
// it is OpenAPI 3 JSON whose paths and methods are exactly the routes the
// mux registered, and that each of its operations is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Info    struct{ Title string }                `json:"info"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" {
		t.Fatalf("openapi %q, title %q", doc.OpenAPI, doc.Info.Title)
	}
	// Every $ref points into the document.
	var whole any
	if err := json.Unmarshal(b, &whole); err != nil {
		t.Fatal(err)
	}
	refs := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if ref, ok := x.(string); ok && k == "$ref" {
					refs++
					var node any = whole
					for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
						m, _ := node.(map[string]any)
						node = m[part]
					}
					if node == nil {
						t.Errorf("$ref %s does not resolve", ref)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(whole)
	if refs == 0 {
		t.Error("no $ref in the document")
	}
	var got []string
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			got = append(got, strings.ToUpper(method)+" "+path)
			var op struct {
				OperationID string         `json:"operationId"`
				Responses   map[string]any `json:"responses"`
				Params      []struct {
					Name, In string
				} `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil || op.OperationID == "" || len(op.Responses) == 0 {
				t.Errorf("%s %s: operation %s (%v)", method, path, raw, err)
			}
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Params, func(p struct{ Name, In string }) bool { return p.Name == m[1] && p.In == "path" }) {
					t.Errorf("%s %s: path parameter %s not declared", method, path, m[1])
				}
			}
			req, _ := http.NewRequest(strings.ToUpper(method), e.srv.URL+concretePath(path), strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+e.keys[core.RoleAdmin])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if notRouted(resp.StatusCode, rb) {
				t.Errorf("%s %s is in the document but not served", method, path)
			}
		}
	}
	want := slices.Clone(e.server.patterns)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("document operations %v\ndiffer from the served routes %v", got, want)
	}
}

const (
	docBegin = "<!-- routes:begin (generated from core/server/routes.go by `go test ./core/server -run TestRoutesDoc -update`) -->\n"
	docEnd   = "<!-- routes:end -->\n"
)

// TestRoutesDoc checks that docs/http-api.md shows the current route table;
// -update rewrites that section.
func TestRoutesDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "http-api.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no route table section (%q ... %q)", path, docBegin, docEnd)
	}
	want := doc[:i] + docBegin + RoutesMarkdown() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is stale: run go test ./core/server -run TestRoutesDoc -update", path)
}
