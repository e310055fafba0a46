package segments

import (
	"context"
	"fmt"
	"iter"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/custody-cdp/custody/policies"
)

// Gate decides whether a person's data may be used for a purpose. It is
// declared and consumed here and implemented by the caller (privacy/core,
// on top of the policies engine), which binds the requester and audit.
// Allow is called with policies.ActionSegmentEvaluate (dest zero) before a
// person is evaluated or counted into a population, and with
// policies.ActionSegmentExport (the export's destination) before a member
// becomes an export row. A non-nil error aborts the run (fail closed).
type Gate interface {
	Allow(ctx context.Context, subject Subject, action string, purpose string, dest policies.Destination) (policies.Decision, error)
}

// Subject is the handle of the person a Gate decides on. Only this package
// creates Subjects (the unexported method), for the candidates of a run, so
// a Gate sees exactly the people Run and Export are about to use. A
// Subject is valid during the call to Allow only: a worker reuses its
// handle for the next person (a handle per person was garbage). The
// caller's Gate maps it back with Ref, or type-asserts Person to its own
// type.
type Subject interface {
	// Ref is the candidate's opaque reference (Candidate.Ref): like the
	// Subject itself, valid only during Allow (a gate that keeps it
	// copies it).
	Ref() string
	// Person is the candidate's data (Candidate.Person).
	Person() Person
	subject()
}

type subjectHandle struct {
	ref    string
	person Person
}

func (s *subjectHandle) Ref() string    { return s.ref }
func (s *subjectHandle) Person() Person { return s.person }
func (s *subjectHandle) subject()       {}

// Candidate is a person offered to Run or Export.
type Candidate struct {
	// Ref is an opaque reference only the caller can map to a person (a
	// profile id, a keyed hash); segments never interprets it. When the
	// person is a Releaser, Ref may share its memory and is valid only
	// until Release: Run and Export copy the references they keep
	// (members, rows).
	Ref string
	// Person is the person's data.
	Person Person
}

// People yields candidates. When a definition needs a population (top,
// bottom), Run and Export iterate it twice and it must yield the same
// people both times.
type People = iter.Seq[Candidate]

// Releaser is implemented by a Person that its People may reuse for a
// later candidate: Run and Export call Release once for each time People
// yielded the person (a population pass and an evaluation pass: twice),
// when they are done with it (its result taken into the Result, its export
// row written), and do not touch it again until People yields it anew.
// Values the person returned (traits, fields) are still theirs; slices it
// returned (Events) are not. A person of a run cut short by an error is
// not released.
type Releaser interface {
	Release()
}

// release releases c's person if it can be.
func release(c Candidate) {
	if r, ok := c.Person.(Releaser); ok {
		r.Release()
	}
}

// Member is a member of a segment. Its only constructor is inside this
// package, after the Gate allowed the person for the segment's purpose: a
// Member cannot be made from a Ref. The zero Member is not a member of
// anything (Ref "").
type Member struct {
	ref string
}

// Ref returns the candidate's reference.
func (m Member) Ref() string { return m.ref }

// SegmentResult is the outcome of one definition in a Run.
type SegmentResult struct {
	Name    string
	Purpose string
	// Members are the people the gate allowed for Purpose and who matched,
	// in the order People yielded them.
	Members []Member
	// Evaluated counts the people the gate allowed for Purpose.
	Evaluated int
	// NotConsented counts the people the gate denied for Purpose. They
	// were not evaluated (their data is not used for a purpose they did
	// not allow), so whether they would have matched is unknown.
	NotConsented int
}

// Result is the outcome of Run: one SegmentResult per definition of the
// set, in the set's order.
type Result struct {
	Segments []SegmentResult
}

// Segment returns the result of the named segment, nil if none.
func (r *Result) Segment(name string) *SegmentResult {
	for i := range r.Segments {
		if r.Segments[i].Name == name {
			return &r.Segments[i]
		}
	}
	return nil
}

// FieldSource gives the value of an export field (email, first_name). The
// Person of a candidate of Export must implement it; it is only asked for
// the fields the gate allowed.
type FieldSource interface {
	Field(name string) (any, bool)
}

// Field is one field of an export row.
type Field struct {
	Name string
	// Value is nil when the person has no value for the field.
	Value any
}

// Row is one export row: a member, and only the fields the gate allowed
// for the destination. Only Export makes Rows.
type Row struct {
	ref    string
	fields []Field
}

// Ref returns the candidate's reference.
func (r Row) Ref() string { return r.ref }

// Fields returns the row's fields, in the order of the decision.
func (r Row) Fields() []Field { return slices.Clone(r.fields) }

// Value returns the value of a field; false when the field was not
// allowed.
func (r Row) Value(name string) (any, bool) {
	for _, f := range r.fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// ExportResult is the outcome of Export.
type ExportResult struct {
	Segment     string
	Purpose     string
	Destination policies.Destination
	// Rows are the members the gate allowed to export, in the order People
	// yielded them.
	Rows []Row
	// Evaluated and NotConsented are as in SegmentResult.
	Evaluated    int
	NotConsented int
	// ExportDenied counts members the gate did not allow to be exported to
	// the destination.
	ExportDenied int
}

// Run evaluates every definition of the set over people at now and
// returns the members, through gate:
//
//  1. If any definition has top or bottom conditions, a first pass asks
//     the gate (segment.evaluate, the definition's purpose) for each
//     person and feeds the allowed people's metrics into one Population
//     per purpose; thresholds are then fixed.
//  2. A second pass asks the gate again for each person and purpose, and
//     evaluates each definition only for people allowed for its purpose.
//     Denied people are counted in NotConsented. in_segment is membership
//     of the other segment: its own purpose allowed and its condition met.
//
// Decisions are asked once per person, purpose and pass. An error of the
// gate or a cancelled ctx abandons the run. People are evaluated by several
// goroutines (Workers; parallel.go) while People is iterated in the
// caller's: the Gate and the Persons' methods must be safe for concurrent
// use (each Person is used by one goroutine at a time).
func Run(ctx context.Context, set *Set, people People, gate Gate, now time.Time, opts ...RunOption) (*Result, error) {
	return run(ctx, set, people, gate, now, nil, settingsOf(opts))
}

// run evaluates the definitions of set that need says (all: nil) over
// people; the Result holds those definitions, in the set's order.
func run(ctx context.Context, set *Set, people People, gate Gate, now time.Time, need []bool, rs runSettings) (*Result, error) {
	r, err := newRunner(ctx, set, people, gate, now, need, rs)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	idx := make([]int, len(set.list))
	for i, c := range set.list {
		idx[i] = -1
		if r.need[i] {
			idx[i] = len(res.Segments)
			res.Segments = append(res.Segments, SegmentResult{Name: c.Name(), Purpose: c.Purpose()})
		}
	}
	_, err = eachParallel(r, func(w *runner, c Candidate) (stateRow, error) {
		out := newStateRow(len(res.Segments))
		for i := range set.list {
			if idx[i] < 0 {
				continue
			}
			o, err := w.evaluate(i)
			if err != nil {
				return out, err
			}
			*out.at(idx[i]) = o
		}
		return out, nil
	}, func(c Candidate, out stateRow) error {
		for k := range res.Segments {
			o := *out.at(k)
			sr := &res.Segments[k]
			switch o {
			case stateDenied:
				sr.NotConsented++
			case stateMember:
				sr.Evaluated++
				sr.Members = append(sr.Members, Member{ref: strings.Clone(c.Ref)})
			default:
				sr.Evaluated++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// stateRow is a person's state per segment of a Result: inline for a
// few segments (a slice per person was a twentieth of a run's garbage).
type stateRow struct {
	inline [16]int8
	more   []int8 // instead, for more segments
}

func newStateRow(n int) stateRow {
	if n > len(stateRow{}.inline) {
		return stateRow{more: make([]int8, n)}
	}
	return stateRow{}
}

func (s *stateRow) at(i int) *int8 {
	if s.more != nil {
		return &s.more[i]
	}
	return &s.inline[i]
}

// RunLocal is Run restricted to the set's local definitions (Set.Local):
// there is no population pass, so it can run over only the people whose
// data changed, and each person's memberships equal those a Run over
// everyone gives them. The Result holds the local definitions only.
func RunLocal(ctx context.Context, set *Set, people People, gate Gate, now time.Time, opts ...RunOption) (*Result, error) {
	if set == nil {
		return nil, fmt.Errorf("%w: nil set", ErrBadArgument)
	}
	return run(ctx, set, people, gate, now, set.local(), settingsOf(opts))
}

// Export evaluates one segment of the set (as Run does, with the segments
// it refers to) and returns a row per member the gate allows to export to
// dest: the gate is asked segment.export for each member, and a row holds
// only the fields of that decision that dest declares, read from the
// candidate's Person (a FieldSource).
func Export(ctx context.Context, set *Set, segment string, people People, gate Gate, dest policies.Destination, now time.Time) (*ExportResult, error) {
	if set == nil {
		return nil, fmt.Errorf("%w: nil set", ErrBadArgument)
	}
	need, err := set.closure(segment)
	if err != nil {
		return nil, err
	}
	// The population pass may run in parallel; the export pass runs in
	// the caller's goroutine (rows in order, destinations see one writer).
	r, err := newRunner(ctx, set, people, gate, now, need, settingsOf(nil))
	if err != nil {
		return nil, err
	}
	target := set.index[segment]
	c := set.list[target]
	res := &ExportResult{Segment: c.Name(), Purpose: c.Purpose(), Destination: dest}
	declared := make(map[string]bool, len(dest.Fields))
	for _, f := range dest.Fields {
		declared[f] = true
	}
	err = r.each(func(cand Candidate) error {
		for i := range set.list {
			if !need[i] {
				continue
			}
			out, err := r.evaluate(i)
			if err != nil {
				return err
			}
			if i != target {
				continue
			}
			switch out {
			case stateDenied:
				res.NotConsented++
				continue
			case stateOut:
				res.Evaluated++
				continue
			}
			res.Evaluated++
			d, err := gate.Allow(ctx, r.subject(), policies.ActionSegmentExport, c.Purpose(), dest)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrGate, err)
			}
			if !d.Allow {
				res.ExportDenied++
				continue
			}
			fs, ok := cand.Person.(FieldSource)
			if !ok {
				return ErrNoFieldSource
			}
			row := Row{ref: strings.Clone(cand.Ref)}
			for _, f := range d.Fields {
				if !declared[f] || slices.ContainsFunc(row.fields, func(x Field) bool { return x.Name == f }) {
					continue
				}
				v, _ := fs.Field(f)
				row.fields = append(row.fields, Field{Name: f, Value: v})
			}
			res.Rows = append(res.Rows, row)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Per-person states of a definition in a run.
const (
	stateUnknown int8 = iota
	stateDenied
	stateOut
	stateMember
)

// runner holds a run's fixed parts and the current person's state.
type runner struct {
	ctx      context.Context
	set      *Set
	people   People
	gate     Gate
	now      time.Time
	need     []bool
	purposes []string
	pidx     []int
	envs     []Env
	workers  int
	pops     []*Population // the population pass's, per purpose
	memo     *passMemo     // what the population pass learnt (memo.go), or nil

	cand    Candidate
	seq     int      // the current person's position in People's order
	mrow    *memoRow // the current person's row of memo (nil: none), once mlooked
	mlooked bool
	subj    subjectHandle // the current person's, lent to the Gate
	dec     []int8        // per purpose: 0 unknown, 1 allowed, -1 denied
	state   []int8        // per definition
}

func newRunner(ctx context.Context, set *Set, people People, gate Gate, now time.Time, need []bool, rs runSettings) (*runner, error) {
	if gate == nil || isNilValue(gate) {
		return nil, ErrNoGate
	}
	if set == nil {
		return nil, fmt.Errorf("%w: nil set", ErrBadArgument)
	}
	if people == nil {
		return nil, fmt.Errorf("%w: nil people", ErrBadArgument)
	}
	if need == nil {
		need = make([]bool, len(set.list))
		for i := range need {
			need[i] = true
		}
	}
	r := &runner{ctx: ctx, set: set, people: people, gate: gate, now: now, need: need, workers: rs.workers,
		pidx: make([]int, len(set.list)), envs: make([]Env, len(set.list)), state: make([]int8, len(set.list))}
	for i, c := range set.list {
		pi := slices.Index(r.purposes, c.Purpose())
		if pi < 0 {
			pi = len(r.purposes)
			r.purposes = append(r.purposes, c.Purpose())
		}
		r.pidx[i] = pi
		r.envs[i].run = r
	}
	r.dec = make([]int8, len(r.purposes))
	if err := r.population(); err != nil {
		return nil, err
	}
	return r, nil
}

// isNilValue reports whether an interface holds a nil pointer (or other
// nil reference): such a Gate cannot decide, so the run fails closed.
func isNilValue(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// population is pass 1: thresholds per purpose, over allowed people.
func (r *runner) population() error {
	pops := make([]*Population, len(r.purposes))
	needed := false
	for i, c := range r.set.list {
		if !r.need[i] || len(c.metrics) == 0 {
			continue
		}
		pi := r.pidx[i]
		if pops[pi] == nil {
			pops[pi] = NewPopulation()
		}
		for _, m := range c.metrics {
			pops[pi].index(m)
		}
		needed = true
	}
	if !needed {
		return nil
	}
	r.pops = pops
	memo := newPassMemo(len(r.purposes), pops)
	clones, err := eachParallel(r, func(w *runner, _ Candidate) (memoRow, error) {
		var row memoRow
		for pi, pop := range w.pops {
			if pop == nil {
				continue
			}
			ok, err := w.allowed(pi)
			if err != nil {
				return row, err
			}
			if pi < memoPurposes {
				row.dec[pi] = w.dec[pi]
			}
			if !ok {
				continue
			}
			for _, m := range pop.metrics {
				i := -1
				if memo != nil {
					i = memo.metric(m)
				}
				x, known := row.value(i)
				if !known {
					var ok bool
					if x, ok = w.cand.Person.Computed(string(m)); !ok {
						x = math.NaN()
					}
					if i >= 0 {
						row.vals[i], row.known = x, row.known|1<<i
					}
				}
				pop.AddValue(m, x)
			}
		}
		return row, nil
	}, func(c Candidate, row memoRow) error {
		if memo != nil {
			memo.add(c.Ref, row)
		}
		return nil
	})
	r.pops = nil
	if err != nil {
		return err
	}
	r.memo = memo
	for _, w := range clones {
		if w == r {
			continue
		}
		for pi, pop := range w.pops {
			if pop != nil {
				pops[pi].merge(pop)
			}
		}
	}
	for i := range r.set.list {
		if pop := pops[r.pidx[i]]; pop != nil {
			r.envs[i].Thresholds = pop.Thresholds()
		}
	}
	return nil
}

// begin makes c, at position seq of People's order, the current person.
func (r *runner) begin(c Candidate, seq int) {
	r.cand, r.subj, r.seq, r.mrow, r.mlooked = c, subjectHandle{ref: c.Ref, person: c.Person}, seq, nil, false
	clear(r.dec)
	clear(r.state)
}

// each iterates people, resetting the per-person state, checking ctx.
func (r *runner) each(f func(Candidate) error) error {
	var err error
	n := 0
	for c := range r.people {
		if n%256 == 0 {
			if err = r.ctx.Err(); err != nil {
				break
			}
		}
		r.begin(c, n)
		n++
		if err = f(c); err != nil {
			break
		}
		r.cand, r.subj = Candidate{}, subjectHandle{}
		release(c)
	}
	r.cand, r.subj = Candidate{}, subjectHandle{}
	return err
}

func (r *runner) subject() *subjectHandle { return &r.subj }

// allowed asks the gate, once per person and purpose.
func (r *runner) allowed(pi int) (bool, error) {
	switch r.dec[pi] {
	case 1:
		return true, nil
	case -1:
		return false, nil
	}
	if row := r.memoRow(); row != nil && pi < memoPurposes && row.dec[pi] != 0 {
		r.dec[pi] = row.dec[pi]
		return row.dec[pi] == 1, nil
	}
	d, err := r.gate.Allow(r.ctx, r.subject(), policies.ActionSegmentEvaluate, r.purposes[pi], policies.Destination{})
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrGate, err)
	}
	if d.Allow {
		r.dec[pi] = 1
	} else {
		r.dec[pi] = -1
	}
	return d.Allow, nil
}

// evaluate decides definition i for the current person; the definitions
// it refers to come earlier in the set and are already decided.
func (r *runner) evaluate(i int) (int8, error) {
	ok, err := r.allowed(r.pidx[i])
	switch {
	case err != nil:
		return stateUnknown, err
	case !ok:
		r.state[i] = stateDenied
	case r.set.list[i].root.match(r.cand.Person, r.now, &r.envs[i]):
		r.state[i] = stateMember
	default:
		r.state[i] = stateOut
	}
	return r.state[i], nil
}
