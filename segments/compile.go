package segments

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Person is what evaluation sees of one person; core builds it from
// decrypted data. Implementations must be safe for the concurrent use of
// their methods if the caller evaluates concurrently.
type Person interface {
	// Trait returns the top-level trait of that name (address, email) as
	// a JSON-decoded value: float64, string, bool, map[string]any or
	// []any. segments walks dot paths (address.country) through nested
	// maps and arrays itself, so Trait is only ever called with the first
	// segment. JSON null reads as absent.
	Trait(name string) (any, bool)
	// Computed returns a computed number (ComputedNames of KindNumber, or
	// a caller's own computed value); NaN reads as absent.
	Computed(name string) (float64, bool)
	// ComputedText returns a computed text or time (KindText, KindTime:
	// an RFC 3339 time in UTC).
	ComputedText(name string) (string, bool)
	// Events returns the person's events of that name, in any order. The
	// slice is only read.
	Events(name string) []Event
}

// Event is one event of a person. Properties and Context are the event's
// JSON objects, decoded; either may be nil when no definition being
// evaluated reads it (Compiled.NeedsProperties, NeedsContext).
type Event struct {
	Time       time.Time
	Properties map[string]any
	Context    map[string]any
}

// Env is what a Match needs besides the person: population thresholds for
// top and bottom, and segment membership for in_segment.
type Env struct {
	// Thresholds are the fixed population thresholds (Population). With
	// none, every top and bottom condition is false.
	Thresholds *Thresholds
	// InSegment reports whether p is a member of the named segment. Within
	// Run and Export, membership comes from the Set instead (including its
	// gate decision). With neither, every in_segment condition is false.
	InSegment func(p Person, segment string) bool

	run *runner
}

// Compiled is a definition compiled for evaluation: paths split, durations
// and literals converted, comparisons resolved. It is immutable and safe
// for concurrent use.
type Compiled struct {
	def           *Definition
	canon         []byte
	root          node
	timeSensitive bool
	metrics       []Metric
	refs          []ref
	// propEvents are the events whose properties or context a condition
	// reads (a where filter, or an aggregate over a property); for the
	// others, times are enough (see NeedsProperties). ctxEvents are those
	// whose context a where filter reads.
	propEvents map[string]bool
	ctxEvents  map[string]bool
}

// ref is an in_segment reference and where it is.
type ref struct {
	name, path string
}

// Compile validates d against known (every error at its path, as Parse
// reports them) and compiles it. Standalone, in_segment conditions are
// answered by Env.InSegment; NewSet compiles definitions that refer to
// each other.
func Compile(d *Definition, known KnownNames) (*Compiled, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil definition", ErrBadArgument)
	}
	canon, _ := d.MarshalJSON()
	v, err := Parse(canon, ParseOptions{KnownNames: known})
	if err != nil {
		return nil, err
	}
	return compile(v, canon, nil), nil
}

// compile compiles a valid definition. index resolves in_segment names to
// set positions (nil: standalone).
func compile(d *Definition, canon []byte, index map[string]int) *Compiled {
	c := &Compiled{def: d, canon: canon}
	b := builder{c: c, index: index}
	c.root = b.cond(&d.Where, "where")
	slices.Sort(c.metrics)
	c.metrics = slices.Compact(c.metrics)
	return c
}

type builder struct {
	c     *Compiled
	index map[string]int
}

type nodeKind uint8

const (
	nAll nodeKind = iota
	nAny
	nNot
	nTrait
	nComputed
	nComputedText
	nEvent
	nTop
	nBottom
	nInSegment
)

// node is a compiled condition.
type node struct {
	kind nodeKind
	cost uint8
	kids []node
	path tpath
	name string
	cmps []ccmp
	ev   *evNode
	pct  float64
	seg  int
}

func (b *builder) cond(c *Condition, path string) node {
	switch {
	case c.All != nil || c.Any != nil:
		n := node{kind: nAll}
		list, key := c.All, "all"
		if c.Any != nil {
			n.kind, list, key = nAny, c.Any, "any"
		}
		for i := range list {
			k := b.cond(&list[i], pathIndex(path+"."+key, i))
			n.kids = append(n.kids, k)
			n.cost = max(n.cost, k.cost)
		}
		// Cheap conditions first; the result does not depend on order.
		slices.SortStableFunc(n.kids, func(x, y node) int { return int(x.cost) - int(y.cost) })
		return n
	case c.Not != nil:
		k := b.cond(c.Not, path+".not")
		return node{kind: nNot, kids: []node{k}, cost: k.cost}
	case c.Trait != "":
		return node{kind: nTrait, path: compilePath(c.Trait), cmps: compileCmps(c.Compare)}
	case c.Computed != "":
		if timeSensitiveComputed(c.Computed) {
			b.c.timeSensitive = true
		}
		k := nComputed
		if computedKind(c.Computed) != KindNumber {
			k = nComputedText
		}
		return node{kind: k, name: c.Computed, cmps: compileCmps(c.Compare)}
	case c.Event != nil:
		return node{kind: nEvent, cost: 2, ev: b.event(c.Event)}
	case c.Top != nil || c.Bottom != nil:
		r, k := c.Top, nTop
		if r == nil {
			r, k = c.Bottom, nBottom
		}
		if timeSensitiveComputed(r.Of) {
			b.c.timeSensitive = true
		}
		b.c.metrics = append(b.c.metrics, Metric(r.Of))
		return node{kind: k, cost: 1, name: r.Of, pct: r.Percent}
	case c.InSegment != "":
		b.c.refs = append(b.c.refs, ref{name: c.InSegment, path: path + ".in_segment"})
		seg := -1
		if i, ok := b.index[c.InSegment]; ok {
			seg = i
		}
		return node{kind: nInSegment, name: c.InSegment, seg: seg}
	}
	return node{kind: nAll} // unreachable after validation
}

// evNode is a compiled event condition.
type evNode struct {
	name     string
	within   time.Duration
	before   time.Duration
	afterAgo time.Duration
	afterAbs time.Time
	hasAbs   bool
	where    *fnode
	agg      AggFunc
	aggPath  tpath
	aggCmps  []ccmp
	first    *recNode
	last     *recNode
	simple   bool
}

type recNode struct {
	older, newer time.Duration
}

func (b *builder) event(e *EventCondition) *evNode {
	n := &evNode{name: e.Name, within: e.Within.Std(), before: e.Before.Std()}
	if n.within > 0 || n.before > 0 {
		b.c.timeSensitive = true
	}
	if e.After != nil {
		if !e.After.Ago.IsZero() {
			n.afterAgo = e.After.Ago.Std()
			b.c.timeSensitive = true
		} else {
			n.afterAbs, n.hasAbs = e.After.Time, true
		}
	}
	if e.Where != nil {
		n.where = compileFilter(e.Where)
		if n.where.readsContext() {
			if b.c.ctxEvents == nil {
				b.c.ctxEvents = map[string]bool{}
			}
			b.c.ctxEvents[e.Name] = true
		}
	}
	if e.Where != nil || e.Aggregate != nil && e.Aggregate.Property != "" {
		if b.c.propEvents == nil {
			b.c.propEvents = map[string]bool{}
		}
		b.c.propEvents[e.Name] = true
	}
	if a := e.Aggregate; a != nil {
		n.agg = a.Func
		n.aggCmps = compileCmps(a.Compare)
		if a.Property != "" {
			n.aggPath = compilePath(a.Property)
		}
	}
	rec := func(r *Recency) *recNode {
		if r == nil {
			return nil
		}
		b.c.timeSensitive = true
		return &recNode{older: r.OlderThan.Std(), newer: r.NewerThan.Std()}
	}
	n.first, n.last = rec(e.First), rec(e.Last)
	n.simple = n.agg == "" && n.first == nil && n.last == nil
	return n
}

// fnode is a compiled property filter.
type fnode struct {
	tests    []ptest
	all, any []fnode
	not      *fnode
}

type ptest struct {
	path tpath
	cmps []ccmp
	ctx  bool // a test of the context, not the properties
}

func compileFilter(f *PropertyFilter) *fnode {
	n := &fnode{}
	for _, t := range f.Props {
		if rest, ok := strings.CutPrefix(t.Path, contextPrefix); ok {
			n.tests = append(n.tests, ptest{path: compilePath(rest), cmps: compileCmps(t.Compare), ctx: true})
			continue
		}
		n.tests = append(n.tests, ptest{path: compilePath(strings.TrimPrefix(t.Path, propertiesPrefix)), cmps: compileCmps(t.Compare)})
	}
	for i := range f.All {
		n.all = append(n.all, *compileFilter(&f.All[i]))
	}
	for i := range f.Any {
		n.any = append(n.any, *compileFilter(&f.Any[i]))
	}
	if f.Not != nil {
		n.not = compileFilter(f.Not)
	}
	return n
}

// readsContext reports whether any test of the filter reads the context.
func (f *fnode) readsContext() bool {
	for i := range f.tests {
		if f.tests[i].ctx {
			return true
		}
	}
	for i := range f.all {
		if f.all[i].readsContext() {
			return true
		}
	}
	for i := range f.any {
		if f.any[i].readsContext() {
			return true
		}
	}
	return f.not != nil && f.not.readsContext()
}

func (f *fnode) match(ev *Event) bool {
	for i := range f.tests {
		t := &f.tests[i]
		src := ev.Properties
		if t.ctx {
			src = ev.Context
		}
		v, ok := t.path.prop(src)
		if !allTest(t.cmps, v, ok) {
			return false
		}
	}
	for i := range f.all {
		if !f.all[i].match(ev) {
			return false
		}
	}
	if len(f.any) > 0 {
		hit := false
		for i := range f.any {
			if f.any[i].match(ev) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	if f.not != nil && f.not.match(ev) {
		return false
	}
	return true
}

// Match reports whether p satisfies the definition at now. It does not
// consult any gate: it is a building block; member lists and exports come
// only from Run and Export. It does not allocate (beyond what Person does).
func (c *Compiled) Match(p Person, now time.Time, env Env) bool {
	return c.root.match(p, now, &env)
}

func (n *node) match(p Person, now time.Time, env *Env) bool {
	switch n.kind {
	case nAll:
		for i := range n.kids {
			if !n.kids[i].match(p, now, env) {
				return false
			}
		}
		return true
	case nAny:
		for i := range n.kids {
			if n.kids[i].match(p, now, env) {
				return true
			}
		}
		return false
	case nNot:
		return !n.kids[0].match(p, now, env)
	case nTrait:
		v, ok := n.path.trait(p)
		return allTest(n.cmps, v, ok)
	case nComputed:
		x, ok := p.Computed(n.name)
		return allTestNum(n.cmps, x, ok)
	case nComputedText:
		s, ok := p.ComputedText(n.name)
		return allTestStr(n.cmps, s, ok)
	case nEvent:
		return n.ev.match(p, now)
	case nTop, nBottom:
		x, ok := env.metric(p, n.name)
		if !ok || math.IsNaN(x) {
			return false
		}
		cut, ok := env.Thresholds.cut(Metric(n.name), n.kind == nTop, n.pct)
		if !ok {
			return false
		}
		if n.kind == nTop {
			return x >= cut
		}
		return x <= cut
	case nInSegment:
		if env.run != nil && n.seg >= 0 {
			return env.run.state[n.seg] == stateMember
		}
		if env.InSegment != nil {
			return env.InSegment(p, n.name)
		}
		return false
	}
	return false
}

func (e *evNode) match(p Person, now time.Time) bool {
	evs := p.Events(e.name)
	if len(evs) == 0 && e.simple {
		return false
	}
	hi := now
	if e.before > 0 {
		hi = now.Add(-e.before)
	}
	var lo time.Time
	hasLo := false
	if e.within > 0 {
		lo, hasLo = now.Add(-e.within), true
	}
	if e.afterAgo > 0 {
		if t := now.Add(-e.afterAgo); !hasLo || t.After(lo) {
			lo, hasLo = t, true
		}
	}
	if e.hasAbs && (!hasLo || e.afterAbs.After(lo)) {
		lo, hasLo = e.afterAbs, true
	}
	var (
		n               int
		vn              int
		sum             float64
		minV, maxV      float64
		firstT, lastT   time.Time
		needValue       = e.agg == AggSum || e.agg == AggAvg || e.agg == AggMin || e.agg == AggMax
		needFirstOrLast = e.first != nil || e.last != nil
	)
	for i := range evs {
		ev := &evs[i]
		if ev.Time.After(hi) || hasLo && !ev.Time.After(lo) {
			continue
		}
		if e.where != nil && !e.where.match(ev) {
			continue
		}
		if e.simple {
			return true
		}
		n++
		if needValue {
			if v, ok := e.aggPath.prop(ev.Properties); ok {
				if x, ok := toNum(v); ok {
					if vn == 0 {
						minV, maxV = x, x
					} else {
						minV, maxV = min(minV, x), max(maxV, x)
					}
					sum += x
					vn++
				}
			}
		}
		if needFirstOrLast {
			if n == 1 || ev.Time.Before(firstT) {
				firstT = ev.Time
			}
			if n == 1 || ev.Time.After(lastT) {
				lastT = ev.Time
			}
		}
	}
	if e.simple {
		return false
	}
	switch e.agg {
	case "":
		if n == 0 {
			return false
		}
	case AggCount:
		if !allTestNum(e.aggCmps, float64(n), true) {
			return false
		}
	case AggSum:
		if !allTestNum(e.aggCmps, sum, true) {
			return false
		}
	case AggAvg:
		if !allTestNum(e.aggCmps, sum/float64(max(vn, 1)), vn > 0) {
			return false
		}
	case AggMin:
		if !allTestNum(e.aggCmps, minV, vn > 0) {
			return false
		}
	case AggMax:
		if !allTestNum(e.aggCmps, maxV, vn > 0) {
			return false
		}
	}
	if e.first != nil && (n == 0 || !e.first.ok(firstT, now)) {
		return false
	}
	if e.last != nil && (n == 0 || !e.last.ok(lastT, now)) {
		return false
	}
	return true
}

func (r *recNode) ok(t, now time.Time) bool {
	if r.older > 0 && t.After(now.Add(-r.older)) {
		return false
	}
	if r.newer > 0 && !t.After(now.Add(-r.newer)) {
		return false
	}
	return true
}

// Name is the definition's name.
func (c *Compiled) Name() string { return c.def.Name }

// Purpose is the definition's purpose.
func (c *Compiled) Purpose() string { return c.def.Purpose }

// Definition returns a copy of the (validated) definition.
func (c *Compiled) Definition() *Definition {
	d, err := Parse(c.canon, ParseOptions{Structural: true})
	if err != nil {
		panic("segments: canonical form does not parse: " + err.Error())
	}
	return d
}

// NeedsProperties reports whether evaluating the definition reads the
// properties or the context of the named event. When it does not,
// Person.Events may return events with nil Properties and Context (times
// only): core answers those from per-profile aggregates instead of
// decrypting every event.
func (c *Compiled) NeedsProperties(event string) bool { return c.propEvents[event] }

// NeedsContext reports whether evaluating the definition reads the context
// of the named event (a where filter on context.*); when it does not,
// Person.Events may return events with a nil Context.
func (c *Compiled) NeedsContext(event string) bool { return c.ctxEvents[event] }

// MarshalJSON returns the canonical JSON of the definition.
func (c *Compiled) MarshalJSON() ([]byte, error) { return slices.Clone(c.canon), nil }

// TimeSensitive reports whether membership can change with the passing of
// time alone, so that it needs a periodic sweep: the definition uses
// within, before, after with a duration, first, last, or a time-sensitive
// computed value (ComputedTrait.TimeSensitive: days_since_*, revenue_365d,
// lifecycle_stage ...), or,
// in a Set, refers to a segment that is time-sensitive.
func (c *Compiled) TimeSensitive() bool { return c.timeSensitive }

// NeedsPopulation returns the metrics of its top and bottom conditions,
// sorted: the metrics a Population must collect before Match.
func (c *Compiled) NeedsPopulation() []Metric { return slices.Clone(c.metrics) }

// References returns the segments named by in_segment conditions, in
// order of appearance, with repeats.
func (c *Compiled) References() []string {
	out := make([]string, len(c.refs))
	for i, r := range c.refs {
		out[i] = r.name
	}
	return out
}
