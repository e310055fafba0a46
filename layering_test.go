package custody_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/custody-cdp/custody"

// allowed lists, for each package of the module, the module packages it may
// import directly (DESIGN.md §1). A package missing from this table fails the
// test, so a new package must take its place in the layering explicitly.
var allowed = map[string][]string{
	"":               {},
	"core/event":     {},
	"core/store":     {},
	"core/keys":      {"core/store"},
	"core/audit":     {"core/store", "core/keys"},
	"core/demo":      {},
	"core/mapping":   {"core/event"},
	"identity":       {"core/event", "core/store", "core/keys", "core/audit"},
	"policies":       {"core/event", "core/store", "core/keys", "core/audit"},
	"segments":       {"core/event", "core/store", "core/keys", "core/audit", "identity", "policies"},
	"privacy":        {"core/event", "core/store", "core/keys", "core/audit", "identity", "policies", "segments"},
	"core":           {"core/event", "core/store", "core/keys", "core/audit", "core/demo", "core/mapping", "identity", "policies", "segments", "privacy"},
	"core/server":    {"core", "core/event", "core/store", "core/keys", "core/audit", "identity", "policies", "segments", "privacy"},
	"cmd/custody":    {"*"},
	"tests/e2e":      {"*"},
	"tests/soak":     {"*"},
	"bench/segments": {"*"},
	"bench/privacy":  {"*"},
	"bench/ingest":   {"*"},

	// The web console, mounted by core/server.
	"core/server/console": {"core", "core/event", "core/store", "core/keys", "core/audit", "identity", "policies", "segments", "privacy"},

	// The personalisation benchmark: a server and a store in one process.
	"bench/personalize": {"*"},
}

// exclusive third-party imports: only the named package may import them.
var exclusive = map[string]string{
	"github.com/dgraph-io/badger":      "core/store",
	"github.com/open-policy-agent/opa": "policies",
	"github.com/urfave/cli":            "cmd/custody",
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		seen++
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		t.Run(orRoot(rel), func(t *testing.T) {
			ok, known := allowed[rel]
			if !known {
				t.Fatalf("package %s is not placed in the layering table of layering_test.go", p.ImportPath)
			}
			for _, imp := range p.Imports {
				for prefix, owner := range exclusive {
					if strings.HasPrefix(imp, prefix) && rel != owner {
						t.Errorf("%s imports %s; only %s may", orRoot(rel), imp, owner)
					}
				}
				if !strings.HasPrefix(imp, module) {
					continue
				}
				dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
				if !contains(ok, dep) && !contains(ok, "*") {
					t.Errorf("%s imports %s, which the layering forbids", orRoot(rel), orRoot(dep))
				}
			}
		})
	}
	if seen < 5 {
		t.Fatalf("go list found only %d packages", seen)
	}
}

func orRoot(s string) string {
	if s == "" {
		return "(root)"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
