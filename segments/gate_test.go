package segments

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/custody-cdp/custody/policies"
)

// spyPerson records whether its data was read.
type spyPerson struct {
	*fakePerson
	read *int
}

func (s spyPerson) Trait(n string) (any, bool)        { *s.read++; return s.fakePerson.Trait(n) }
func (s spyPerson) Computed(n string) (float64, bool) { *s.read++; return s.fakePerson.Computed(n) }
func (s spyPerson) Events(n string) []Event           { *s.read++; return s.fakePerson.Events(n) }
func (s spyPerson) ComputedText(n string) (string, bool) {
	*s.read++
	return s.fakePerson.ComputedText(n)
}

func TestGateDeniedPeopleAreNeverUsed(t *testing.T) {
	people := genPeople(300, 11, clock)
	reads := make(map[string]*int)
	for i, c := range people {
		n := new(int)
		reads[c.Ref] = n
		people[i].Person = spyPerson{c.Person.(*fakePerson), n}
	}
	deny := map[string]bool{}
	for i, c := range people {
		if i%3 == 0 {
			deny[c.Ref] = true
		}
	}
	var defs []*Definition
	for _, tp := range Templates() {
		defs = append(defs, tp.Definition)
	}
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		t.Fatal(err)
	}
	gate := &fakeGate{deny: deny}
	res, err := Run(context.Background(), set, peopleOf(people), gate, clock)
	if err != nil {
		t.Fatal(err)
	}
	for ref := range deny {
		if *reads[ref] != 0 {
			t.Errorf("data of denied person %s was read %d times", ref, *reads[ref])
		}
	}
	allowedRes, err := Run(context.Background(), set, peopleOf(people), allowAll(), clock)
	if err != nil {
		t.Fatal(err)
	}
	for i, sr := range res.Segments {
		if sr.NotConsented != len(deny) || sr.Evaluated != len(people)-len(deny) {
			t.Errorf("%s: NotConsented %d, Evaluated %d; want %d, %d", sr.Name, sr.NotConsented, sr.Evaluated, len(deny), len(people)-len(deny))
		}
		for _, m := range sr.Members {
			if deny[m.Ref()] {
				t.Errorf("%s: denied person %s is a member", sr.Name, m.Ref())
			}
		}
		// Without population conditions, the allowed members are exactly
		// the members of an all-allowed run minus the denied people.
		if len(set.list[i].metrics) == 0 {
			var want []string
			for _, m := range allowedRes.Segments[i].Members {
				if !deny[m.Ref()] {
					want = append(want, m.Ref())
				}
			}
			var got []string
			for _, m := range sr.Members {
				got = append(got, m.Ref())
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: members %v, want %v", sr.Name, got, want)
			}
		}
	}
	// One decision per person, purpose and pass (two passes: vip and the
	// RFM templates need a population).
	purposes := map[string]bool{}
	for _, c := range set.list {
		purposes[c.Purpose()] = true
	}
	if want := 2 * len(people) * len(purposes); len(gate.calls) > want || len(gate.calls) < len(people)*len(purposes) {
		t.Errorf("%d gate calls, want at most %d", len(gate.calls), want)
	}
	for _, c := range gate.calls {
		if c.action != policies.ActionSegmentEvaluate {
			t.Errorf("Run asked for %s", c.action)
		}
	}
}

func TestGateDeniedPeopleAreOutOfThePopulation(t *testing.T) {
	people := rankPeople(1, 2, 3, 4, 1000)
	set, err := NewSet(KnownNames{}, def(t, "top", email, `{"top": {"percent": 20, "of": "revenue_total"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), set, peopleOf(people), &fakeGate{deny: map[string]bool{"r4": true}}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Segments[0].Members; len(m) != 1 || m[0].Ref() != "r3" {
		t.Errorf("members %v: the denied top spender must not set the threshold", m)
	}
}

func TestExportRows(t *testing.T) {
	people := genPeople(200, 5, clock)
	set, err := NewSet(KnownNames{}, template(t, "at_risk").Definition)
	if err != nil {
		t.Fatal(err)
	}
	name := set.Names()[0]
	deny, denyExport := map[string]bool{}, map[string]bool{}
	for i, c := range people {
		switch i % 4 {
		case 0:
			deny[c.Ref] = true
		case 1:
			denyExport[c.Ref] = true
		}
	}
	dest := policies.Destination{Name: "newsletter", Kind: policies.KindEmail, Region: "EU", Fields: []string{"email", "first_name", "phone"}}
	gate := &fakeGate{deny: deny, denyExport: denyExport, exportFields: []string{"email", "first_name", "not_declared"}}
	res, err := Export(context.Background(), set, name, peopleOf(people), gate, dest, clock)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Run(context.Background(), set, peopleOf(people), allowAll(), clock)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	wantExportDenied := 0
	for _, m := range all.Segments[0].Members {
		switch {
		case deny[m.Ref()]:
		case denyExport[m.Ref()]:
			wantExportDenied++
		default:
			want = append(want, m.Ref())
		}
	}
	var got []string
	byRef := map[string]Candidate{}
	for _, c := range people {
		byRef[c.Ref] = c
	}
	for _, r := range res.Rows {
		got = append(got, r.Ref())
		fields := r.Fields()
		if len(fields) != 2 || fields[0].Name != "email" || fields[1].Name != "first_name" {
			t.Errorf("row %s fields %v: want exactly the allowed, declared fields", r.Ref(), fields)
		}
		p := byRef[r.Ref()].Person.(*fakePerson)
		if v, ok := r.Value("email"); !ok || v != p.fields["email"] {
			t.Errorf("row %s email %v", r.Ref(), v)
		}
		if _, ok := r.Value("phone"); ok {
			t.Errorf("row %s carries a field the gate did not allow", r.Ref())
		}
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if res.NotConsented != len(deny) || res.ExportDenied != wantExportDenied || res.Evaluated != len(people)-len(deny) {
		t.Errorf("counts: NotConsented %d ExportDenied %d Evaluated %d; want %d %d %d", res.NotConsented, res.ExportDenied, res.Evaluated, len(deny), wantExportDenied, len(people)-len(deny))
	}
	exports := 0
	for _, c := range gate.calls {
		if c.action == policies.ActionSegmentExport {
			exports++
			if deny[c.ref] {
				t.Errorf("export asked for %s, denied for the purpose", c.ref)
			}
		}
	}
	if exports != len(want)+wantExportDenied {
		t.Errorf("%d export decisions, want one per allowed member (%d)", exports, len(want)+wantExportDenied)
	}

	// A person without a FieldSource cannot become a row.
	bare := []Candidate{{Ref: "x", Person: struct{ Person }{people[0].Person}}}
	bare[0].Person.(struct{ Person }).Person.(*fakePerson).add("Order Completed", clock.AddDate(-1, 0, 0), nil)
	if _, err := Export(context.Background(), set, name, peopleOf(bare), allowAll(), dest, clock); !errors.Is(err, ErrNoFieldSource) {
		t.Errorf("no field source: %v", err)
	}
	if _, err := Export(context.Background(), set, "nope", peopleOf(people), allowAll(), dest, clock); !errors.Is(err, ErrNotInSet) {
		t.Errorf("unknown segment: %v", err)
	}
}

func TestNilGateIsAnError(t *testing.T) {
	set, err := NewSet(KnownNames{}, def(t, "a", email, `{"trait": "x", "exists": false}`))
	if err != nil {
		t.Fatal(err)
	}
	people := peopleOf(genPeople(3, 1, clock))
	var typedNil *fakeGate
	for _, g := range []Gate{nil, typedNil} {
		if res, err := Run(context.Background(), set, people, g, clock); !errors.Is(err, ErrNoGate) || res != nil {
			t.Errorf("Run with %T: %v %v", g, res, err)
		}
		if res, err := Export(context.Background(), set, "a", people, g, policies.Destination{}, clock); !errors.Is(err, ErrNoGate) || res != nil {
			t.Errorf("Export with %T: %v %v", g, res, err)
		}
	}
	if _, err := Run(context.Background(), nil, people, allowAll(), clock); !errors.Is(err, ErrBadArgument) {
		t.Errorf("nil set: %v", err)
	}
	if _, err := Run(context.Background(), set, nil, allowAll(), clock); !errors.Is(err, ErrBadArgument) {
		t.Errorf("nil people: %v", err)
	}
}

func TestGateErrorAbortsTheRun(t *testing.T) {
	set, err := NewSet(KnownNames{}, def(t, "a", email, `{"trait": "x", "exists": false}`))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("policy engine down")
	res, err := Run(context.Background(), set, peopleOf(genPeople(3, 1, clock)), &fakeGate{err: boom}, clock)
	if !errors.Is(err, ErrGate) || !errors.Is(err, boom) || res != nil {
		t.Errorf("got %v %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, set, peopleOf(genPeople(3, 1, clock)), allowAll(), clock); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestSubjectCarriesTheCandidate(t *testing.T) {
	set, err := NewSet(KnownNames{}, def(t, "a", email, `{"trait": "x", "exists": false}`))
	if err != nil {
		t.Fatal(err)
	}
	people := genPeople(5, 2, clock)
	g := gateFunc(func(s Subject) bool {
		for _, c := range people {
			if c.Ref == s.Ref() && c.Person == s.Person() {
				return c.Ref != "p0002"
			}
		}
		t.Errorf("subject %q is not a candidate", s.Ref())
		return false
	})
	res, err := Run(context.Background(), set, peopleOf(people), g, clock)
	if err != nil {
		t.Fatal(err)
	}
	if sr := res.Segments[0]; len(sr.Members) != 4 || sr.NotConsented != 1 {
		t.Errorf("%+v", sr)
	}
	var zero Member
	if zero.Ref() != "" {
		t.Error("zero member has a ref")
	}
}

type gateFunc func(Subject) bool

func (f gateFunc) Allow(_ context.Context, s Subject, _, _ string, _ policies.Destination) (policies.Decision, error) {
	return policies.Decision{Allow: f(s), Reasons: []string{"test"}}, nil
}
