package policies

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// DefaultCacheSize is the decision cache's size when Options.CacheSize is 0.
const DefaultCacheSize = 4096

// Options configure an Engine.
type Options struct {
	// Dir is a policy directory (its .rego files, recursively; *_test.rego
	// are tests and not loaded). "" uses the embedded default bundle.
	Dir string
	// Logger receives bundle loads and reloads; nil discards. Nothing about
	// a person is ever logged.
	Logger *slog.Logger
	// CacheSize bounds the decision cache, in entries. 0 means
	// DefaultCacheSize; a negative size disables the cache.
	CacheSize int
}

// DefaultOptions returns the options of a production engine: the embedded
// bundle, slog's default logger, a cache of DefaultCacheSize entries.
func DefaultOptions() Options {
	return Options{Logger: slog.Default(), CacheSize: DefaultCacheSize}
}

// Engine is the consent policy gate. It is safe for concurrent use.
type Engine struct {
	dir       string
	log       *slog.Logger
	cacheSize int

	reload sync.Mutex // serialises Reload
	cur    atomic.Pointer[loaded]
	loads  uint64 // bundles loaded so far; guarded by reload (and New)
}

// loaded is a compiled bundle with its own decision cache, swapped whole on
// Reload so that a decision never mixes two bundles.
type loaded struct {
	*compiled
	cache *decisionCache // nil when disabled
	rev   uint64         // which load of the engine this is, from 1
}

// New compiles the bundle of opts.Dir (or the embedded one) once and
// returns an engine ready to decide. A bundle that does not compile fails
// with ErrPolicyCompile naming file and line; one without the decision rule
// fails with ErrNoDecision.
func New(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{dir: opts.Dir, log: opts.Logger, cacheSize: opts.CacheSize}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.cacheSize == 0 {
		e.cacheSize = DefaultCacheSize
	}
	l, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	e.cur.Store(l)
	e.log.Debug("policies: bundle loaded", "source", e.source(), "bundle_hash", l.hash, "files", len(l.files))
	return e, nil
}

func (e *Engine) source() string {
	if e.dir == "" {
		return "embedded"
	}
	return e.dir
}

func (e *Engine) load(ctx context.Context) (*loaded, error) {
	c, err := compileBundle(ctx, e.dir)
	if err != nil {
		return nil, err
	}
	e.loads++
	l := &loaded{compiled: c, rev: e.loads}
	if e.cacheSize > 0 {
		l.cache = newDecisionCache(e.cacheSize)
	}
	return l, nil
}

// Reload re-reads the policy directory, recompiles it and drops the
// decision cache. On error the engine keeps deciding with the bundle it had.
func (e *Engine) Reload(ctx context.Context) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	old := e.cur.Load()
	l, err := e.load(ctx)
	if err != nil {
		e.log.Error("policies: reload failed; keeping the current bundle", "source", e.source(), "bundle_hash", old.hash, "error", err)
		return err
	}
	e.cur.Store(l)
	e.log.Info("policies: bundle reloaded", "source", e.source(), "bundle_hash", l.hash, "previous_bundle_hash", old.hash, "files", len(l.files))
	return nil
}

// BundleHash identifies the policy that decides: the hex SHA-256 over the
// lines "<hex SHA-256 of file>  <path>\n" of the bundle's policy files
// (*_test.rego excluded), sorted by path. It goes into audit records.
func (e *Engine) BundleHash() string { return e.cur.Load().hash }

// Revision identifies the loaded bundle among this engine's loads (every
// Reload that succeeds makes a new one), for caches of decisions kept
// outside the engine: a decision cached under one revision is valid while
// Revision returns it, on the terms of the decision cache (cache.go: it
// depends on the policy-relevant part of the input alone). It is 0 when
// decision caching is off (Options.CacheSize < 0): every decision is then
// to be evaluated.
func (e *Engine) Revision() uint64 {
	l := e.cur.Load()
	if l.cache == nil {
		return 0
	}
	return l.rev
}

// Purposes returns the purpose taxonomy of the loaded bundle
// (data.custody.purposes.taxonomy), sorted by key; the built-in taxonomy
// when the bundle defines none.
func (e *Engine) Purposes() []Purpose { return slices.Clone(e.cur.Load().purposes) }

// ValidPurpose reports whether p is in the loaded bundle's taxonomy.
func (e *Engine) ValidPurpose(p string) bool {
	_, found := slices.BinarySearchFunc(e.cur.Load().purposes, p, func(x Purpose, k string) int {
		switch {
		case x.Key < k:
			return -1
		case x.Key > k:
			return 1
		}
		return 0
	})
	return found
}

// CacheStats are counters of the decision cache since the last (re)load.
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
	Capacity     int
}

// CacheStats returns the decision cache's counters; zero when disabled.
func (e *Engine) CacheStats() CacheStats {
	if c := e.cur.Load().cache; c != nil {
		return c.stats()
	}
	return CacheStats{}
}

// Decide returns the decision for in. Decisions are cached by the
// policy-relevant part of the input, so a cached decision equals the one
// the policy would compute. Errors: ErrInvalidInput, ErrNoDecision,
// ErrMalformedDecision, ErrPolicyEval.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	if err := validate(&in); err != nil {
		return Decision{}, err
	}
	l := e.cur.Load()
	if l.cache == nil {
		return l.decide(ctx, &in)
	}
	var buf [512]byte
	key := appendCacheKey(buf[:0], &in)
	if d, ok := l.cache.get(key); ok {
		return d.clone(), nil
	}
	d, err := l.decide(ctx, &in)
	if err != nil {
		return Decision{}, err
	}
	l.cache.put(string(key), d)
	return d.clone(), nil
}

func (d Decision) clone() Decision {
	return Decision{Allow: d.Allow, Reasons: slices.Clone(d.Reasons), Fields: slices.Clone(d.Fields)}
}

// decide evaluates the policy, uncached.
func (l *loaded) decide(ctx context.Context, in *Input) (Decision, error) {
	rs, err := l.query.Eval(ctx, rego.EvalParsedInput(inputValue(in)))
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrPolicyEval, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, fmt.Errorf("%w: %s is undefined for this input", ErrNoDecision, DecisionRule)
	}
	return parseDecision(rs[0].Expressions[0].Value, in)
}

// parseDecision checks the decision against the output contract.
func parseDecision(v any, in *Input) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %s is %T, not an object", ErrMalformedDecision, DecisionRule, v)
	}
	var d Decision
	if d.Allow, ok = obj["allow"].(bool); !ok {
		return Decision{}, fmt.Errorf("%w: allow is %T, not a boolean", ErrMalformedDecision, obj["allow"])
	}
	var err error
	if d.Reasons, err = stringList(obj["reasons"], "reasons"); err != nil {
		return Decision{}, err
	}
	if len(d.Reasons) == 0 {
		return Decision{}, fmt.Errorf("%w: no reason given", ErrMalformedDecision)
	}
	for _, r := range d.Reasons {
		if r == "" {
			return Decision{}, fmt.Errorf("%w: empty reason", ErrMalformedDecision)
		}
	}
	d.Fields = []string{}
	if raw, present := obj["fields"]; present {
		if d.Fields, err = stringList(raw, "fields"); err != nil {
			return Decision{}, err
		}
	}
	if len(d.Fields) > 0 {
		switch {
		case !d.Allow:
			return Decision{}, fmt.Errorf("%w: a denial carries fields", ErrMalformedDecision)
		case in.Action != ActionSegmentExport:
			return Decision{}, fmt.Errorf("%w: fields on a %s decision", ErrMalformedDecision, in.Action)
		}
		for _, f := range d.Fields {
			if !slices.Contains(in.Destination.Fields, f) {
				return Decision{}, fmt.Errorf("%w: field %q was not declared by the destination", ErrMalformedDecision, f)
			}
		}
	}
	return d, nil
}

func stringList(v any, what string) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %T, not an array", ErrMalformedDecision, what, v)
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s[%d] is %T, not a string", ErrMalformedDecision, what, i, x)
		}
		out[i] = s
	}
	return out, nil
}

// OPA compares times as int64 nanoseconds since the epoch, which span
// 1677-09-21 to 2262-04-11; Now must fall strictly inside the range below,
// and expiries outside it are clamped to its ends, which keeps every
// comparison with Now unchanged.
func timeBounds() (lo, hi time.Time) {
	return time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
}

// validate checks in against the input contract.
func validate(in *Input) error {
	switch in.Action {
	case ActionSegmentEvaluate, ActionSegmentExport:
		if in.Purpose == "" {
			return fmt.Errorf("%w: %s needs a purpose", ErrInvalidInput, in.Action)
		}
	case ActionProfileRead:
	default:
		return fmt.Errorf("%w: unknown action %q", ErrInvalidInput, in.Action)
	}
	if in.Purpose != "" && !wellFormedPurpose(in.Purpose) {
		return fmt.Errorf("%w: purpose %q is not a dot-separated key of [a-z0-9_]", ErrInvalidInput, in.Purpose)
	}
	lo, hi := timeBounds()
	if !in.Now.After(lo) || !in.Now.Before(hi) {
		return fmt.Errorf("%w: now %s is outside %d-%d", ErrInvalidInput, in.Now.Format(time.RFC3339), lo.Year(), hi.Year())
	}
	for key, c := range in.Subject.Consents {
		if !wellFormedPurpose(key) {
			return fmt.Errorf("%w: consent record for %q: not a purpose key", ErrInvalidInput, key)
		}
		switch c.Status {
		case StatusGranted, StatusDenied, StatusWithdrawn:
		default:
			return fmt.Errorf("%w: consent record for %s: status %q is not granted, denied or withdrawn", ErrInvalidInput, key, c.Status)
		}
		switch c.LawfulBasis {
		case "", BasisConsent, BasisContract, BasisLegalObligation, BasisVitalInterests, BasisPublicTask, BasisLegitimateInterests:
		default:
			return fmt.Errorf("%w: consent record for %s: unknown lawful basis %q", ErrInvalidInput, key, c.LawfulBasis)
		}
	}
	for _, o := range in.Subject.Objections {
		if !wellFormedPurpose(o) {
			return fmt.Errorf("%w: objection %q is not a purpose key", ErrInvalidInput, o)
		}
	}
	if in.Subject.Age != nil && *in.Subject.Age < 0 {
		return fmt.Errorf("%w: negative age", ErrInvalidInput)
	}
	return nil
}

// expired reports whether c has expired at now; it agrees with
// data.custody.consent.expired.
func expired(c Consent, now time.Time) bool {
	return c.ExpiresAt != nil && !c.ExpiresAt.After(now)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// inputValue is the policy input for in, built as an OPA value directly
// (no JSON round trip).
func inputValue(in *Input) ast.Value {
	lo, hi := timeBounds()
	consents := ast.NewObject()
	for key, c := range in.Subject.Consents {
		exp := ast.NullTerm()
		if c.ExpiresAt != nil {
			t := *c.ExpiresAt
			if t.Before(lo) {
				t = lo
			} else if t.After(hi) {
				t = hi
			}
			exp = ast.StringTerm(formatTime(t))
		}
		rec := ast.NewObject(
			ast.Item(ast.StringTerm("status"), ast.StringTerm(c.Status)),
			ast.Item(ast.StringTerm("expires_at"), exp),
			ast.Item(ast.StringTerm("lawful_basis"), ast.StringTerm(c.LawfulBasis)),
		)
		if !c.At.IsZero() {
			rec.Insert(ast.StringTerm("at"), ast.StringTerm(formatTime(c.At)))
		}
		consents.Insert(ast.StringTerm(key), ast.NewTerm(rec))
	}
	age := ast.NullTerm()
	if in.Subject.Age != nil {
		age = ast.IntNumberTerm(*in.Subject.Age)
	}
	return ast.NewObject(
		ast.Item(ast.StringTerm("action"), ast.StringTerm(in.Action)),
		ast.Item(ast.StringTerm("purpose"), ast.StringTerm(in.Purpose)),
		ast.Item(ast.StringTerm("now"), ast.StringTerm(formatTime(in.Now))),
		ast.Item(ast.StringTerm("destination"), ast.ObjectTerm(
			ast.Item(ast.StringTerm("name"), ast.StringTerm(in.Destination.Name)),
			ast.Item(ast.StringTerm("kind"), ast.StringTerm(in.Destination.Kind)),
			ast.Item(ast.StringTerm("region"), ast.StringTerm(in.Destination.Region)),
			ast.Item(ast.StringTerm("fields"), stringsTerm(in.Destination.Fields)),
		)),
		ast.Item(ast.StringTerm("subject"), ast.ObjectTerm(
			ast.Item(ast.StringTerm("jurisdiction"), ast.StringTerm(in.Subject.Jurisdiction)),
			ast.Item(ast.StringTerm("consents"), ast.NewTerm(consents)),
			ast.Item(ast.StringTerm("gpc"), ast.BooleanTerm(in.Subject.GPC)),
			ast.Item(ast.StringTerm("restricted"), ast.BooleanTerm(in.Subject.Restricted)),
			ast.Item(ast.StringTerm("objections"), stringsTerm(in.Subject.Objections)),
			ast.Item(ast.StringTerm("age"), age),
		)),
		ast.Item(ast.StringTerm("requester"), ast.ObjectTerm(
			ast.Item(ast.StringTerm("role"), ast.StringTerm(in.Requester.Role)),
		)),
	)
}

func stringsTerm(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}
