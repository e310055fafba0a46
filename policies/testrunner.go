package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestReport is the outcome of RunTests.
type TestReport struct {
	Passed, Failed int
	// Skipped counts todo_test_ rules, which opa test skips too.
	Skipped int
	// Results are sorted by package, then name.
	Results []TestResult
}

// TestResult is the outcome of one test rule.
type TestResult struct {
	Package string // e.g. data.custody.gate_test
	Name    string // e.g. test_eu_no_consent_denied
	Pass    bool
	Skip    bool
	// Fail says why a test did not pass: file:line of the test and the
	// error or "test failed", then anything the test printed.
	Fail     string
	Duration time.Duration
}

// RunTests runs the Rego tests (test_ rules, usually in *_test.rego files)
// of the bundle in dir ("" for the embedded bundle) as `opa test` does, with
// the built-ins the engine allows. A bundle that does not compile returns
// ErrPolicyCompile naming file and line; failing tests are reported, not
// returned as an error.
func RunTests(ctx context.Context, dir string) (TestReport, error) {
	files, err := readBundle(dir)
	if err != nil {
		return TestReport{}, err
	}
	if len(files) == 0 {
		where := dir
		if where == "" {
			where = "embedded bundle"
		}
		return TestReport{}, fmt.Errorf("%w in %s", ErrNoPolicies, where)
	}
	caps := capabilities()
	modules, err := parseBundle(files, true, caps)
	if err != nil {
		return TestReport{}, err
	}
	compiler := ast.NewCompiler().
		WithCapabilities(caps).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(true)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(inmem.New()).
		SetModules(modules).
		CapturePrintOutput(true).
		RunTests(ctx, nil)
	if err != nil {
		return TestReport{}, compileError(err)
	}
	var rep TestReport
	for r := range ch {
		tr := TestResult{
			Package:  r.Package,
			Name:     r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Duration: r.Duration,
		}
		switch {
		case tr.Pass:
			rep.Passed++
		case tr.Skip:
			rep.Skipped++
		default:
			rep.Failed++
			tr.Fail = failure(r)
		}
		rep.Results = append(rep.Results, tr)
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	slices.SortFunc(rep.Results, func(a, b TestResult) int {
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rep, nil
}

func failure(r *tester.Result) string {
	var b strings.Builder
	if r.Location != nil {
		fmt.Fprintf(&b, "%s:%d: ", r.Location.File, r.Location.Row)
	}
	if r.Error != nil {
		b.WriteString(r.Error.Error())
	} else {
		b.WriteString("test failed")
	}
	if out := strings.TrimSpace(string(r.Output)); out != "" {
		b.WriteString("\n")
		b.WriteString(out)
	}
	return b.String()
}
