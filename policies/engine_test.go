package policies

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRegoTests runs the Rego unit tests of the embedded bundle, so that
// go test fails when a policy test fails.
func TestRegoTests(t *testing.T) {
	rep, err := RunTests(context.Background(), "")
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	for _, r := range rep.Results {
		if !r.Pass {
			t.Errorf("%s.%s: %s", r.Package, r.Name, r.Fail)
		}
	}
	if rep.Failed != 0 || rep.Passed < 100 {
		t.Fatalf("Rego tests: %d passed, %d failed, %d skipped", rep.Passed, rep.Failed, rep.Skipped)
	}
	t.Logf("Rego tests: %d passed", rep.Passed)
}

func TestGate(t *testing.T) {
	e := newEngine(t, Options{CacheSize: -1})
	type tc struct {
		name   string
		edit   func(in *Input)
		allow  bool
		reason string   // a reason must contain this
		fields []string // checked when not nil
	}
	cases := []tc{
		{"EU no consent", func(in *Input) {}, false,
			"EU: marketing.communications.email requires opt-in consent; none recorded", nil},
		{"EU granted", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing.communications.email": granted()}
		}, true, "EU: opt-in consent granted for marketing.communications.email", []string{}},
		{"EU granted then withdrawn", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing.communications.email": withStatus(granted(), StatusWithdrawn)}
		}, false, "consent for marketing.communications.email was withdrawn", nil},
		{"EU denied", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing.communications.email": withStatus(granted(), StatusDenied)}
		}, false, "was denied", nil},
		{"EU expired", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing.communications.email": expiringAt(granted(), testNow().Add(-time.Second))}
		}, false, "consent for marketing.communications.email expired", nil},
		{"EU expires exactly now", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing.communications.email": expiringAt(granted(), testNow())}
		}, false, "expired", nil},
		{"EU expires later", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing.communications.email": expiringAt(granted(), testNow().Add(time.Nanosecond))}
		}, true, "granted", nil},
		{"EU expiry far in the future", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": expiringAt(granted(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))}
		}, true, "granted", nil},
		{"EU parent marketing covers child", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": granted()}
		}, true, "EU: opt-in consent granted for marketing, which covers marketing.communications.email", nil},
		{"EU child denied overrides parent granted", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": granted(), "marketing.communications.email": withStatus(granted(), StatusDenied)}
		}, false, "consent for marketing.communications.email was denied", nil},
		{"EU child granted overrides parent denied", func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": withStatus(granted(), StatusDenied), "marketing.communications.email": granted()}
		}, true, "granted", nil},
		{"EU contract basis is not consent", func(in *Input) {
			c := granted()
			c.LawfulBasis = BasisContract
			in.Subject.Consents = map[string]Consent{"marketing": c}
		}, false, "rests on contract, not consent", nil},
		{"EU analytics.reporting on legitimate interests", func(in *Input) {
			c := granted()
			c.LawfulBasis = BasisLegitimateInterests
			in.Purpose = "analytics.reporting"
			in.Subject.Consents = map[string]Consent{"analytics.reporting": c}
		}, true, "rests on legitimate interests", nil},
		{"EU essential without consent", func(in *Input) {
			in.Purpose = "essential.service.security"
			in.Subject.Restricted = true
		}, true, "necessary to provide the service (contract)", nil},
		{"UK no consent", func(in *Input) { in.Subject.Jurisdiction = "UK" }, false,
			"UK: marketing.communications.email requires opt-in consent; none recorded", nil},
		{"CA nothing, email marketing", func(in *Input) { in.Subject.Jurisdiction = "US-CA" }, true,
			"US-CA: opt-out model, no opt-out recorded", nil},
		{"CA opted out", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Subject.Consents = map[string]Consent{"marketing": withStatus(granted(), StatusWithdrawn)}
		}, false, "US-CA: opt-out model; the person opted out of marketing (withdrawn)", nil},
		{"CA GPC, third_party_sharing", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Subject.GPC = true
			in.Purpose = "third_party_sharing"
		}, false, "Global Privacy Control is an opt-out of sale and sharing", nil},
		{"CA GPC, third-party targeted ads", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Subject.GPC = true
			in.Purpose = "marketing.advertising.third_party.targeted"
		}, false, "Global Privacy Control", nil},
		{"CA GPC, email marketing", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Subject.GPC = true
		}, true, "opt-out model", nil},
		{"CA age 15 sale without grant", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Subject.Age = ptr(15)
			in.Purpose = "third_party_sharing"
		}, false, "US-CA: the person is under 16; third_party_sharing is sale or sharing and requires opt-in consent; none recorded", nil},
		{"CA age 15 sale with grant", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Subject.Age = ptr(15)
			in.Purpose = "third_party_sharing"
			in.Subject.Consents = map[string]Consent{"third_party_sharing": granted()}
		}, true, "opt-in consent granted for third_party_sharing", nil},
		{"CA sensitive purpose needs opt-in", func(in *Input) {
			in.Subject.Jurisdiction = "US-CA"
			in.Purpose = "personalize.sensitive"
		}, false, "sensitive purpose and requires explicit opt-in consent", nil},
		{"US-TX like CA", func(in *Input) { in.Subject.Jurisdiction = "US-TX" }, true,
			"US-TX: opt-out model, no opt-out recorded", nil},
		{"unknown jurisdiction strictest", func(in *Input) { in.Subject.Jurisdiction = "BR" }, false,
			`"BR" (unrecognised jurisdiction, strictest rules): marketing.communications.email requires opt-in consent; none recorded`, nil},
		{"empty jurisdiction strictest", func(in *Input) { in.Subject.Jurisdiction = "" }, false,
			"no jurisdiction (strictest rules)", nil},
		{"unknown jurisdiction honours GPC", func(in *Input) {
			in.Subject.Jurisdiction = "JP"
			in.Subject.GPC = true
			in.Purpose = "third_party_sharing"
			in.Subject.Consents = map[string]Consent{"third_party_sharing": granted()}
		}, false, "Global Privacy Control", nil},
		{"restricted", func(in *Input) {
			in.Subject.Restricted = true
			in.Subject.Consents = map[string]Consent{"marketing": granted()}
		}, false, "EU: processing is restricted (GDPR Art. 18); only essential purposes are allowed", nil},
		{"objection", func(in *Input) {
			in.Subject.Objections = []string{"marketing"}
			in.Subject.Consents = map[string]Consent{"marketing": granted()}
		}, false, "EU: the person objected to marketing (GDPR Art. 21)", nil},
		{"profile.read by marketer", func(in *Input) {
			in.Action = ActionProfileRead
		}, false, "the marketer role may not read individual profiles", nil},
		{"profile.read by dpo", func(in *Input) {
			in.Action = ActionProfileRead
			in.Purpose = ""
			in.Requester.Role = RoleDPO
			in.Subject.Restricted = true
		}, true, "access by data protection role", []string{}},
		{"profile.read by admin", func(in *Input) {
			in.Action = ActionProfileRead
			in.Requester.Role = RoleAdmin
		}, true, "access by data protection role", nil},
		{"profile.read by personalize without consent", func(in *Input) {
			in.Action = ActionProfileRead
			in.Purpose = "personalize.content.profiled"
			in.Requester.Role = RolePersonalize
		}, false, "EU: personalize.content.profiled requires opt-in consent; none recorded", nil},
		{"profile.read by personalize with consent", func(in *Input) {
			in.Action = ActionProfileRead
			in.Purpose = "personalize.content.profiled"
			in.Requester.Role = RolePersonalize
			in.Subject.Consents = map[string]Consent{"personalize": granted()}
		}, true, "opt-in consent granted for personalize, which covers personalize.content.profiled", nil},
		{"export to ads gets only hashed identifiers", func(in *Input) {
			in.Action = ActionSegmentExport
			in.Purpose = "marketing.advertising.first_party.targeted"
			in.Destination = Destination{Name: "meta", Kind: KindAds, Fields: []string{"email", "phone", "first_name", "email_sha256", "phone_sha256"}}
			in.Subject.Consents = map[string]Consent{"marketing": granted()}
		}, true, "ads destinations get only hashed identifiers", []string{"email_sha256", "phone_sha256"}},
		{"export to email", func(in *Input) {
			in.Action = ActionSegmentExport
			in.Subject.Consents = map[string]Consent{"marketing": granted()}
		}, true, "dropped email_sha256", []string{"email", "first_name"}},
		{"export denied has no fields", func(in *Input) {
			in.Action = ActionSegmentExport
		}, false, "none recorded", []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := baseInput()
			c.edit(&in)
			d, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Allow != c.allow {
				t.Errorf("allow = %v, want %v; reasons %q", d.Allow, c.allow, d.Reasons)
			}
			if len(d.Reasons) == 0 {
				t.Errorf("no reason")
			}
			if !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, c.reason) }) {
				t.Errorf("reasons %q lack %q", d.Reasons, c.reason)
			}
			if c.fields != nil && !reflect.DeepEqual(d.Fields, c.fields) {
				t.Errorf("fields = %q, want %q", d.Fields, c.fields)
			}
			if !d.Allow && len(d.Fields) != 0 {
				t.Errorf("denial with fields %q", d.Fields)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	e := newEngine(t, Options{})
	cases := map[string]func(in *Input){
		"unknown action":      func(in *Input) { in.Action = "profile.write" },
		"empty action":        func(in *Input) { in.Action = "" },
		"segment, no purpose": func(in *Input) { in.Purpose = "" },
		"malformed purpose":   func(in *Input) { in.Purpose = "Marketing..email" },
		"now before 1678":     func(in *Input) { in.Now = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) },
		"now after 2261":      func(in *Input) { in.Now = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
		"unknown status": func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": withStatus(granted(), "pending")}
		},
		"empty status": func(in *Input) { in.Subject.Consents = map[string]Consent{"marketing": {}} },
		"unknown lawful basis": func(in *Input) {
			c := granted()
			c.LawfulBasis = "vibes"
			in.Subject.Consents = map[string]Consent{"marketing": c}
		},
		"malformed record key": func(in *Input) { in.Subject.Consents = map[string]Consent{"": granted()} },
		"malformed objection":  func(in *Input) { in.Subject.Objections = []string{"marketing."} },
		"negative age":         func(in *Input) { in.Subject.Age = ptr(-1) },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			in := baseInput()
			edit(&in)
			if _, err := e.Decide(context.Background(), in); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
		})
	}
}

func TestZeroNowMeansCurrentTime(t *testing.T) {
	e := newEngine(t, Options{})
	in := baseInput()
	in.Now = time.Time{}
	in.Subject.Consents = map[string]Consent{"marketing": expiringAt(granted(), time.Now().Add(-time.Minute))}
	d, err := e.Decide(context.Background(), in)
	if err != nil || d.Allow {
		t.Fatalf("decision %+v, %v; want a denial for an expired grant", d, err)
	}
}

func TestDecisionsAreCopies(t *testing.T) {
	e := newEngine(t, Options{})
	in := baseInput()
	in.Action = ActionSegmentExport
	in.Subject.Consents = map[string]Consent{"marketing": granted()}
	d1, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := d1.clone()
	d1.Reasons[0] = "tampered"
	d1.Fields[0] = "tampered"
	d2, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d2, want) {
		t.Fatalf("cached decision changed by a caller: %+v, want %+v", d2, want)
	}
}

// writePolicies writes files into a fresh directory.
func writePolicies(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyEmbedded writes the embedded bundle into a directory.
func copyEmbedded(t *testing.T) string {
	t.Helper()
	files, err := readBundle("")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, f := range files {
		m[f.name] = string(f.src)
	}
	return writePolicies(t, m)
}

const allowAll = `package custody.gate

decision := {"allow": true, "reasons": ["allow all"], "fields": []}
`

const denyAll = `package custody.gate

decision := {"allow": false, "reasons": ["deny all"], "fields": []}
`

func TestNewSyntaxError(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"gate.rego": "package custody.gate\n\ndecision := {\"allow\": true\n\nnope if {\n",
	})
	_, err := New(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrPolicyCompile) {
		t.Fatalf("err = %v, want ErrPolicyCompile", err)
	}
	if want := filepath.Join(dir, "gate.rego") + ":"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s<line>", err, want)
	}
	t.Log(err)
}

func TestNewCompileErrorNamesFileAndLine(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"gate.rego": "package custody.gate\n\ndecision := {\"allow\": allow}\n",
	})
	_, err := New(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrPolicyCompile) || !strings.Contains(err.Error(), "gate.rego:3:") {
		t.Fatalf("err = %v, want ErrPolicyCompile at gate.rego:3", err)
	}
}

func TestNewRefusesNondeterministicAndNetworkBuiltins(t *testing.T) {
	for _, call := range []string{`time.now_ns()`, `http.send({"method": "GET", "url": "http://example.com"})`} {
		dir := writePolicies(t, map[string]string{
			"gate.rego": "package custody.gate\n\nx := " + call + "\n\ndecision := {\"allow\": false, \"reasons\": [\"x\"], \"fields\": []}\n",
		})
		_, err := New(context.Background(), Options{Dir: dir})
		if !errors.Is(err, ErrPolicyCompile) || !strings.Contains(err.Error(), "gate.rego:3:") {
			t.Fatalf("%s: err = %v, want ErrPolicyCompile at gate.rego:3", call, err)
		}
	}
}

func TestNewWithoutDecisionRule(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"other.rego": "package custody.gate\n\nallow := true\n",
	})
	_, err := New(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrNoDecision) || !strings.Contains(err.Error(), DecisionRule) {
		t.Fatalf("err = %v, want ErrNoDecision naming %s", err, DecisionRule)
	}
}

func TestNewEmptyOrMissingDir(t *testing.T) {
	if _, err := New(context.Background(), Options{Dir: t.TempDir()}); !errors.Is(err, ErrNoPolicies) {
		t.Fatalf("empty dir: err = %v, want ErrNoPolicies", err)
	}
	if _, err := New(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("missing dir: no error")
	}
}

func TestDirOverridesEmbedded(t *testing.T) {
	dir := writePolicies(t, map[string]string{"gate.rego": allowAll})
	e := newEngine(t, Options{Dir: dir})
	d, err := e.Decide(context.Background(), baseInput())
	if err != nil || !d.Allow || d.Reasons[0] != "allow all" {
		t.Fatalf("decision %+v, %v", d, err)
	}
}

func TestMalformedDecisions(t *testing.T) {
	cases := map[string]struct {
		src  string
		want error
	}{
		"undefined":         {"package custody.gate\n\ndecision := 1 if false\n", ErrNoDecision},
		"not an object":     {"package custody.gate\n\ndecision := true\n", ErrMalformedDecision},
		"allow not bool":    {`package custody.gate` + "\n\n" + `decision := {"allow": "yes", "reasons": ["r"], "fields": []}` + "\n", ErrMalformedDecision},
		"no reason":         {`package custody.gate` + "\n\n" + `decision := {"allow": true, "reasons": [], "fields": []}` + "\n", ErrMalformedDecision},
		"denial with field": {`package custody.gate` + "\n\n" + `decision := {"allow": false, "reasons": ["r"], "fields": ["email"]}` + "\n", ErrMalformedDecision},
		"undeclared field":  {`package custody.gate` + "\n\n" + `decision := {"allow": true, "reasons": ["r"], "fields": ["ssn"]}` + "\n", ErrMalformedDecision},
		"conflict":          {"package custody.gate\n\ndecision := {\"allow\": true, \"reasons\": [\"a\"]} if true\n\ndecision := {\"allow\": false, \"reasons\": [\"b\"]} if true\n", ErrPolicyEval},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, Options{Dir: writePolicies(t, map[string]string{"gate.rego": c.src})})
			in := baseInput()
			in.Action = ActionSegmentExport
			if _, err := e.Decide(context.Background(), in); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestReload(t *testing.T) {
	dir := writePolicies(t, map[string]string{"gate.rego": allowAll})
	e := newEngine(t, Options{Dir: dir})
	ctx := context.Background()
	before := e.BundleHash()
	if r := e.Revision(); r != 1 {
		t.Fatalf("revision %d after New, want 1", r)
	}
	for range 3 {
		if d, err := e.Decide(ctx, baseInput()); err != nil || !d.Allow {
			t.Fatalf("decision %+v, %v", d, err)
		}
	}
	if st := e.CacheStats(); st.Hits != 2 || st.Entries != 1 {
		t.Fatalf("cache stats %+v, want 2 hits and 1 entry", st)
	}
	if err := os.WriteFile(filepath.Join(dir, "gate.rego"), []byte(denyAll), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if e.BundleHash() == before {
		t.Fatal("bundle hash unchanged by a new policy")
	}
	if r := e.Revision(); r != 2 {
		t.Fatalf("revision %d after a reload, want 2", r)
	}
	if st := e.CacheStats(); st.Entries != 0 || st.Hits != 0 {
		t.Fatalf("cache not dropped on reload: %+v", st)
	}
	if d, err := e.Decide(ctx, baseInput()); err != nil || d.Allow {
		t.Fatalf("after reload: decision %+v, %v; want deny all", d, err)
	}
	// A broken bundle does not replace the working one.
	hash := e.BundleHash()
	if err := os.WriteFile(filepath.Join(dir, "gate.rego"), []byte("package custody.gate\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); !errors.Is(err, ErrPolicyCompile) {
		t.Fatalf("Reload of a broken bundle: %v", err)
	}
	if e.BundleHash() != hash || e.Revision() != 2 {
		t.Fatalf("a failed reload changed the bundle (revision %d)", e.Revision())
	}
	// Without a decision cache, no one outside may keep decisions either.
	if r := newEngine(t, Options{Dir: writePolicies(t, map[string]string{"gate.rego": allowAll}), CacheSize: -1}).Revision(); r != 0 {
		t.Fatalf("revision %d with caching off, want 0", r)
	}
	if d, err := e.Decide(ctx, baseInput()); err != nil || d.Allow {
		t.Fatalf("after failed reload: decision %+v, %v; want deny all", d, err)
	}
}

func TestBundleHash(t *testing.T) {
	e := newEngine(t, Options{})
	h := e.BundleHash()
	if len(h) != 64 {
		t.Fatalf("hash %q is not hex SHA-256", h)
	}
	// Same files elsewhere: same hash. Tests do not count.
	dir := copyEmbedded(t)
	if got := newEngine(t, Options{Dir: dir}).BundleHash(); got != h {
		t.Fatalf("copy of the embedded bundle hashes to %s, want %s", got, h)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra_test.rego"), []byte("package x_test\n\ntest_x if true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := newEngine(t, Options{Dir: dir}).BundleHash(); got != h {
		t.Fatal("a test file changed the bundle hash")
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package x\n\ny := 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := newEngine(t, Options{Dir: dir}).BundleHash(); got == h {
		t.Fatal("a new policy file did not change the bundle hash")
	}
	// The documented construction.
	files, err := readBundle("")
	if err != nil {
		t.Fatal(err)
	}
	var manifest strings.Builder
	for _, f := range files {
		if !strings.HasSuffix(f.name, "_test.rego") {
			manifest.WriteString(sha256hex([]byte(f.src)) + "  " + f.name + "\n")
		}
	}
	if got := sha256hex([]byte(manifest.String())); got != h {
		t.Fatalf("hash %s, documented construction gives %s", h, got)
	}
}

func TestRunTestsOnDir(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"gate.rego": allowAll,
		"gate_test.rego": "package custody.gate_test\n\nimport data.custody.gate\n\n" +
			"test_allows if gate.decision.allow\n\n" +
			"test_denies if not gate.decision.allow\n\n" +
			"todo_test_later if false\n",
	})
	rep, err := RunTests(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed != 1 || rep.Failed != 1 || rep.Skipped != 1 || len(rep.Results) != 3 {
		t.Fatalf("report %+v", rep)
	}
	var failed TestResult
	for _, r := range rep.Results {
		if !r.Pass && !r.Skip {
			failed = r
		}
	}
	if failed.Name != "test_denies" || failed.Package != "data.custody.gate_test" ||
		!strings.Contains(failed.Fail, filepath.Join(dir, "gate_test.rego")+":7") {
		t.Fatalf("failure %+v", failed)
	}
}

func TestRunTestsCompileError(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"gate.rego":      allowAll,
		"gate_test.rego": "package custody.gate_test\n\ntest_x if {\n",
	})
	_, err := RunTests(context.Background(), dir)
	if !errors.Is(err, ErrPolicyCompile) || !strings.Contains(err.Error(), "gate_test.rego:") {
		t.Fatalf("err = %v, want ErrPolicyCompile naming gate_test.rego", err)
	}
}

func TestPurposes(t *testing.T) {
	ps := Purposes()
	keys := map[string]bool{}
	for _, p := range ps {
		if keys[p.Key] {
			t.Errorf("duplicate %s", p.Key)
		}
		keys[p.Key] = true
		if !wellFormedPurpose(p.Key) || !ValidPurpose(p.Key) || p.Description == "" {
			t.Errorf("bad purpose %+v", p)
		}
		if i := strings.LastIndexByte(p.Key, '.'); i >= 0 {
			if p.Parent != p.Key[:i] || !keys[p.Parent] {
				t.Errorf("%s: parent %q must be %q and come first", p.Key, p.Parent, p.Key[:i])
			}
		} else if p.Parent != "" {
			t.Errorf("%s: root with parent %q", p.Key, p.Parent)
		}
	}
	for _, k := range []string{
		"essential", "essential.service", "essential.service.security", "analytics", "analytics.reporting",
		"personalize", "personalize.content.profiled", "marketing", "marketing.communications",
		"marketing.communications.email", "marketing.communications.sms", "marketing.advertising",
		"marketing.advertising.first_party.targeted", "marketing.advertising.third_party.targeted",
		"third_party_sharing", "personalize.sensitive",
	} {
		if !ValidPurpose(k) {
			t.Errorf("%s missing", k)
		}
	}
	if ValidPurpose("marketing.communications.pigeon") || ValidPurpose("") {
		t.Error("ValidPurpose accepts an unknown purpose")
	}
	// The Go table is the Rego taxonomy of the embedded bundle.
	e := newEngine(t, Options{})
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b Purpose) int { return strings.Compare(a.Key, b.Key) })
	if got := e.Purposes(); !reflect.DeepEqual(got, sorted) {
		t.Fatalf("rego/purposes.rego and Purposes() differ:\nrego: %+v\ngo:   %+v", got, sorted)
	}
	if !e.ValidPurpose("marketing.communications.email") || e.ValidPurpose("marketing.communications.pigeon") {
		t.Fatal("Engine.ValidPurpose")
	}
}

func TestBrandExtendsTaxonomy(t *testing.T) {
	dir := copyEmbedded(t)
	src, err := os.ReadFile(filepath.Join(dir, "purposes.rego"))
	if err != nil {
		t.Fatal(err)
	}
	ext := strings.Replace(string(src), "taxonomy := {\n",
		"taxonomy := {\n\t\"marketing.communications.push\": {\"parent\": \"marketing.communications\", \"sensitive\": false, \"description\": \"Push notifications.\"},\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "purposes.rego"), []byte(ext), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{Dir: dir})
	if !e.ValidPurpose("marketing.communications.push") {
		t.Fatal("extension not in the engine's taxonomy")
	}
	in := baseInput()
	in.Purpose = "marketing.communications.push"
	in.Subject.Consents = map[string]Consent{"marketing.communications": granted()}
	if d, err := e.Decide(context.Background(), in); err != nil || !d.Allow {
		t.Fatalf("decision %+v, %v", d, err)
	}
	if d, _ := newEngine(t, Options{}).Decide(context.Background(), in); d.Allow {
		t.Fatal("the default bundle allows an unknown purpose")
	}
}

func TestJSONContract(t *testing.T) {
	const spec = `{"action": "segment.export",
 "purpose": "marketing.communications.email",
 "now": "2026-11-01T12:00:00Z",
 "destination": {"name": "newsletter", "kind": "email", "region": "EU", "fields": ["email","first_name","email_sha256"]},
 "subject": {"jurisdiction": "EU", "consents": {"marketing.communications.email": {"status": "granted", "at": "2026-10-01T00:00:00Z", "expires_at": null, "lawful_basis": "consent"}, "marketing": {"status":"denied", "at": "2026-09-01T00:00:00Z", "expires_at": null, "lawful_basis": "consent"}},
             "gpc": false, "restricted": false, "objections": ["analytics"], "age": null},
 "requester": {"role": "marketer"}}`
	var in Input
	if err := json.Unmarshal([]byte(spec), &in); err != nil {
		t.Fatal(err)
	}
	d, err := newEngine(t, Options{}).Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(d)
	want := `{"allow":true,"reasons":["EU: opt-in consent granted for marketing.communications.email","segment.export: email destinations get only email, first_name, last_name and consent_at; dropped email_sha256"],"fields":["email","first_name"]}`
	if string(out) != want {
		t.Fatalf("decision JSON\n got %s\nwant %s", out, want)
	}
	// The input the policy sees is the documented JSON.
	var back map[string]any
	raw, _ := json.Marshal(in)
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"action", "purpose", "now", "destination", "subject", "requester"} {
		if _, ok := back[k]; !ok {
			t.Errorf("input JSON lacks %q", k)
		}
	}
}

func TestConcurrentDecideAndReload(t *testing.T) {
	e := newEngine(t, Options{CacheSize: 64})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			c := randChooser{newRand(uint64(g))}
			for range 300 {
				in := randomInput(c)
				if _, err := e.Decide(ctx, in); err != nil && !errors.Is(err, ErrInvalidInput) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if err := e.Reload(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if st := e.CacheStats(); st.Entries > 64 || st.Capacity != 64 {
		t.Fatalf("cache over its bound: %+v", st)
	}
}

// TestGrantedThenWithdrawn follows one person through a grant and its
// withdrawal on a caching engine: the second decision must not be the first
// one served from the cache.
func TestGrantedThenWithdrawn(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	in := baseInput()
	in.Subject.Consents = map[string]Consent{"marketing.communications.email": granted()}
	if d, err := e.Decide(ctx, in); err != nil || !d.Allow {
		t.Fatalf("granted: %+v, %v", d, err)
	}
	withdrawn := withStatus(granted(), StatusWithdrawn)
	withdrawn.At = testNow().Add(-time.Hour)
	in.Subject.Consents = map[string]Consent{"marketing.communications.email": withdrawn}
	d, err := e.Decide(ctx, in)
	if err != nil || d.Allow {
		t.Fatalf("withdrawn: %+v, %v", d, err)
	}
	if want := "EU: marketing.communications.email requires opt-in consent; consent for marketing.communications.email was withdrawn"; !slices.Contains(d.Reasons, want) {
		t.Fatalf("reasons %q lack %q", d.Reasons, want)
	}
	// And a grant that expires between two decisions.
	in.Subject.Consents = map[string]Consent{"marketing": expiringAt(granted(), testNow().Add(time.Hour))}
	if d, _ := e.Decide(ctx, in); !d.Allow {
		t.Fatalf("before expiry: %+v", d)
	}
	in.Now = testNow().Add(2 * time.Hour)
	if d, _ := e.Decide(ctx, in); d.Allow {
		t.Fatalf("after expiry: %+v", d)
	}
}
