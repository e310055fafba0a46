package policies

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// embedded is the default bundle. An embed.FS is read-only.
//
//go:embed rego/*.rego
var embedded embed.FS

// forbiddenBuiltin reports the built-ins refused at compile time: a
// decision must be a pure function of its input (the decision cache relies
// on it), and the gate must not reach the network.
func forbiddenBuiltin(name string) bool {
	switch name {
	case "http.send", "net.lookup_ip_addr", "opa.runtime",
		"time.now_ns", "rand.intn", "uuid.rfc4122", "io.jwt.decode_verify":
		return true
	}
	return false
}

// bundleFile is one .rego file of a bundle.
type bundleFile struct {
	name    string // slash-separated path inside the bundle; sorts and hashes
	display string // where it lives, for messages
	src     []byte
	test    bool // a *_test.rego file
}

// readBundle reads the .rego files of dir, or of the embedded bundle when
// dir is "", sorted by name.
func readBundle(dir string) ([]bundleFile, error) {
	var fsys fs.FS
	prefix := ""
	if dir == "" {
		sub, err := fs.Sub(embedded, "rego")
		if err != nil {
			return nil, fmt.Errorf("policies: embedded bundle: %w", err)
		}
		fsys, prefix = sub, "rego"
	} else {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("policies: policy directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("policies: policy directory %s is not a directory", dir)
		}
		fsys = os.DirFS(dir)
	}
	var files []bundleFile
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".rego") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		display := path.Join(prefix, p)
		if dir != "" {
			display = filepath.Join(dir, filepath.FromSlash(p))
		}
		files = append(files, bundleFile{
			name:    p,
			display: display,
			src:     src,
			test:    strings.HasSuffix(p, "_test.rego"),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policies: read policy directory: %w", err)
	}
	slices.SortFunc(files, func(a, b bundleFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// bundleHash is the hex SHA-256 of the manifest "<hex sha256 of content>
// <two spaces><name>\n" of the policy (non-test) files, sorted by name:
// the output of sha256sum over the sorted files, hashed again.
func bundleHash(files []bundleFile) string {
	h := sha256.New()
	for _, f := range files {
		if f.test {
			continue
		}
		sum := sha256.Sum256(f.src)
		fmt.Fprintf(h, "%s  %s\n", hex.EncodeToString(sum[:]), f.name)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// capabilities are OPA's built-ins minus the forbidden ones.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return forbiddenBuiltin(b.Name)
	})
	return caps
}

// parseBundle parses files (tests too when withTests) into modules keyed by
// display name. Errors name the file and line.
func parseBundle(files []bundleFile, withTests bool, caps *ast.Capabilities) (map[string]*ast.Module, error) {
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: caps, ProcessAnnotation: true}
	modules := make(map[string]*ast.Module, len(files))
	var errs ast.Errors
	for _, f := range files {
		if f.test && !withTests {
			continue
		}
		m, err := ast.ParseModuleWithOpts(f.display, string(f.src), popts)
		if err != nil {
			var astErrs ast.Errors
			if errors.As(err, &astErrs) {
				errs = append(errs, astErrs...)
				continue
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrPolicyCompile, f.display, err)
		}
		modules[f.display] = m
	}
	if len(errs) > 0 {
		return nil, compileError(errs)
	}
	return modules, nil
}

// compileError wraps OPA's errors in ErrPolicyCompile, one per line, each
// as file:line: code: message.
func compileError(err error) error {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) && len(astErrs) > 0 {
		astErrs.Sort()
		msgs := make([]string, len(astErrs))
		for i, e := range astErrs {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("%w: %s", ErrPolicyCompile, strings.Join(msgs, "\n"))
	}
	return fmt.Errorf("%w: %v", ErrPolicyCompile, err)
}

// compiled is one compiled bundle.
type compiled struct {
	query    rego.PreparedEvalQuery
	hash     string
	files    []string // names of the policy files
	purposes []Purpose
}

// compileBundle reads, parses and compiles the bundle of dir ("" for the
// embedded one) and prepares the decision query.
func compileBundle(ctx context.Context, dir string) (*compiled, error) {
	files, err := readBundle(dir)
	if err != nil {
		return nil, err
	}
	where := dir
	if where == "" {
		where = "embedded bundle"
	}
	var names []string
	for _, f := range files {
		if !f.test {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoPolicies, where)
	}
	caps := capabilities()
	modules, err := parseBundle(files, false, caps)
	if err != nil {
		return nil, err
	}
	compiler := ast.NewCompiler().
		WithCapabilities(caps).
		WithDefaultRegoVersion(ast.RegoV1)
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, compileError(compiler.Errors)
	}
	if len(compiler.GetRulesExact(ast.MustParseRef(DecisionRule))) == 0 {
		return nil, fmt.Errorf("%w: %s defines no rule %s (package custody.gate, rule decision)", ErrNoDecision, where, DecisionRule)
	}
	store := inmem.New()
	pq, err := rego.New(
		rego.Compiler(compiler),
		rego.Store(store),
		rego.Query(DecisionRule),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, compileError(err)
	}
	taxonomy, err := bundleTaxonomy(ctx, compiler)
	if err != nil {
		return nil, err
	}
	return &compiled{query: pq, hash: bundleHash(files), files: names, purposes: taxonomy}, nil
}

// bundleTaxonomy reads data.custody.purposes.taxonomy of a compiled bundle,
// or returns the built-in taxonomy when the bundle has none.
func bundleTaxonomy(ctx context.Context, compiler *ast.Compiler) ([]Purpose, error) {
	const ref = "data.custody.purposes.taxonomy"
	builtin := func() []Purpose {
		ps := Purposes()
		slices.SortFunc(ps, func(a, b Purpose) int { return strings.Compare(a.Key, b.Key) })
		return ps
	}
	if len(compiler.GetRulesExact(ast.MustParseRef(ref))) == 0 {
		return builtin(), nil
	}
	rs, err := rego.New(rego.Compiler(compiler), rego.Query(ref)).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPolicyEval, ref, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return builtin(), nil
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an object", ErrPolicyCompile, ref)
	}
	out := make([]Purpose, 0, len(obj))
	for key, v := range obj {
		entry, _ := v.(map[string]any)
		p := Purpose{Key: key}
		p.Parent, _ = entry["parent"].(string)
		p.Description, _ = entry["description"].(string)
		p.Sensitive, _ = entry["sensitive"].(bool)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Purpose) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
