package segments

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/custody-cdp/custody/policies"
)

// A run on several workers gives exactly the sequential run's Result
// (members in People's order, counts), for every template at once (so
// in_segment, top and bottom, and per-purpose denials all take part), over
// more people than one batch.
func TestParallelRunEqualsSequential(t *testing.T) {
	var defs []*Definition
	for _, tm := range Templates() {
		defs = append(defs, tm.Definition)
	}
	defs = append(defs, def(t, "top_of_buyers", email, `{"all": [{"in_segment": "repeat_buyers"}, {"top": {"percent": 10, "of": "revenue_total"}}]}`))
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		t.Fatal(err)
	}
	people := genPeople(5*batchSize+17, 7, clock)
	deny := map[string]bool{}
	for i := 0; i < len(people); i += 3 {
		deny[people[i].Ref] = true
	}
	want, err := Run(context.Background(), set, peopleOf(people), &fakeGate{deny: deny}, clock, Workers(1))
	if err != nil {
		t.Fatal(err)
	}
	members := 0
	for _, sr := range want.Segments {
		members += len(sr.Members)
	}
	if members == 0 {
		t.Fatal("no member anywhere: the comparison would prove nothing")
	}
	// More segments than a stateRow holds inline: each one's result is
	// what a run of it alone (with what it refers to) gives.
	if len(want.Segments) <= len(stateRow{}.inline) {
		t.Fatalf("%d segments: the run does not exercise stateRow.more", len(want.Segments))
	}
	for _, sr := range want.Segments {
		sub, err := set.Subset(sr.Name)
		if err != nil {
			t.Fatal(err)
		}
		alone, err := Run(context.Background(), sub, peopleOf(people), &fakeGate{deny: deny}, clock, Workers(1))
		if err != nil {
			t.Fatal(err)
		}
		if got := alone.Segment(sr.Name); !reflect.DeepEqual(*got, sr) {
			t.Errorf("%s alone: %d members (%d denied), among all: %d (%d denied)", sr.Name, len(got.Members), got.NotConsented, len(sr.Members), sr.NotConsented)
		}
	}
	for _, workers := range []int{2, 3, 8} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			got, err := Run(context.Background(), set, peopleOf(people), &fakeGate{deny: deny}, clock, Workers(workers))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				for i := range want.Segments {
					if !reflect.DeepEqual(got.Segments[i], want.Segments[i]) {
						t.Errorf("%s: %d workers give %d members (%d denied), one gives %d (%d denied)", want.Segments[i].Name,
							workers, len(got.Segments[i].Members), got.Segments[i].NotConsented, len(want.Segments[i].Members), want.Segments[i].NotConsented)
					}
				}
				t.Fatal("parallel and sequential runs differ")
			}
			local, err := RunLocal(context.Background(), set, peopleOf(people), &fakeGate{deny: deny}, clock, Workers(workers))
			if err != nil {
				t.Fatal(err)
			}
			wantLocal, err := RunLocal(context.Background(), set, peopleOf(people), &fakeGate{deny: deny}, clock, Workers(1))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(local, wantLocal) {
				t.Fatal("parallel and sequential local runs differ")
			}
		})
	}
}

// failAfter allows everyone until its n-th call, then fails.
type failAfter struct {
	n     int64
	calls atomic.Int64
	err   error
}

func (g *failAfter) Allow(context.Context, Subject, string, string, policies.Destination) (policies.Decision, error) {
	if g.calls.Add(1) > g.n {
		return policies.Decision{}, g.err
	}
	return policies.Decision{Allow: true, Reasons: []string{"ok"}}, nil
}

// An error in the middle of a parallel run (in either pass) abandons it
// with that error, and the scan stops early. The second pass asks the gate
// only about purposes the first did not (memo.go), hence a second
// definition with a purpose of its own.
func TestParallelRunStopsAtTheFirstError(t *testing.T) {
	set, err := NewSet(KnownNames{}, template(t, "vip").Definition,
		def(t, "buyers", "marketing.communications.sms", `{"event":"Order Completed"}`))
	if err != nil {
		t.Fatal(err)
	}
	people := genPeople(20*batchSize, 3, clock)
	boom := errors.New("policy engine down")
	for _, after := range []int64{0, batchSize + 5, int64(len(people)) + 300} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			yielded := 0
			counting := func(yield func(Candidate) bool) {
				for _, c := range people {
					yielded++
					if !yield(c) {
						return
					}
				}
			}
			res, err := Run(context.Background(), set, counting, &failAfter{n: after, err: boom}, clock, Workers(3))
			if !errors.Is(err, ErrGate) || !errors.Is(err, boom) || res != nil {
				t.Fatalf("got %v, %v", res, err)
			}
			// The scan runs ahead of the failure by at most the batches
			// in flight: it does not go on to the end.
			if limit := int(after) + (3*3+2)*batchSize; yielded > limit {
				t.Errorf("%d people yielded after a failure at call %d (at most %d)", yielded, after, limit)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, set, peopleOf(people), allowAll(), clock, Workers(3)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// The evaluation pass of a population-relative segment takes the gate's
// decisions and the metrics the population pass kept (memo.go) when it
// meets the same people in the same order, and asks again when it does
// not; the members are those a plain two-pass evaluation gives either way.
func TestPopulationPassMemo(t *testing.T) {
	set, err := NewSet(KnownNames{}, template(t, "vip").Definition)
	if err != nil {
		t.Fatal(err)
	}
	people := genPeople(4*batchSize+9, 11, clock)
	deny := map[string]bool{}
	for i := 0; i < len(people); i += 4 {
		deny[people[i].Ref] = true
	}
	// The reference: Population and Match by hand.
	vip := set.Get("vip")
	pop := NewPopulation(vip.NeedsPopulation()...)
	for _, c := range people {
		if !deny[c.Ref] {
			pop.Add(c.Person)
		}
	}
	env := Env{Thresholds: pop.Thresholds()}
	want := map[string]bool{}
	for _, c := range people {
		if !deny[c.Ref] && vip.Match(c.Person, clock, env) {
			want[c.Ref] = true
		}
	}
	if len(want) == 0 {
		t.Fatal("no VIP: the comparison would prove nothing")
	}
	// reorder yields people as they are on the first pass and reversed on
	// the next (a People that does not read a snapshot).
	passes := 0
	reorder := func(yield func(Candidate) bool) {
		passes++
		for i := range people {
			c := people[i]
			if passes > 1 {
				c = people[len(people)-1-i]
			}
			if !yield(c) {
				return
			}
		}
	}
	for _, tc := range []struct {
		name      string
		people    func() People
		gateCalls int // segment.evaluate decisions asked
	}{
		{"same order", func() People { return peopleOf(people) }, len(people)},
		// Reversed, only the middle person (an odd count) is met again
		// at the same position.
		{"second pass reordered", func() People { passes = 0; return reorder }, 2*len(people) - 1},
	} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%d workers", tc.name, workers), func(t *testing.T) {
				g := &fakeGate{deny: deny}
				res, err := Run(context.Background(), set, tc.people(), g, clock, Workers(workers))
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				for _, m := range res.Segments[0].Members {
					got[m.Ref()] = true
				}
				if !reflect.DeepEqual(got, want) || res.Segments[0].NotConsented != len(deny) {
					t.Fatalf("%d members (%d not consented), want %d (%d)", len(got), res.Segments[0].NotConsented, len(want), len(deny))
				}
				if len(g.calls) != tc.gateCalls {
					t.Fatalf("%d gate decisions, want %d", len(g.calls), tc.gateCalls)
				}
			})
		}
	}
}

// recycledPeople yields its candidates through wrappers it reuses once
// released, as core's store scan does: a person used after its Release
// would read another candidate's data (and is reported).
type recycledPeople struct {
	t    *testing.T
	list []Candidate

	mu       sync.Mutex
	free     []*recycled
	yielded  int
	released int
}

type recycled struct {
	*fakePerson
	owner *recycledPeople
	live  atomic.Bool
	ref   [16]byte // backs the candidate's Ref, as core's views do
}

func (p *recycled) check() {
	if !p.live.Load() {
		p.owner.t.Error("a person was used after its Release")
	}
}

func (p *recycled) Trait(name string) (any, bool) { p.check(); return p.fakePerson.Trait(name) }
func (p *recycled) Computed(name string) (float64, bool) {
	p.check()
	return p.fakePerson.Computed(name)
}
func (p *recycled) ComputedText(name string) (string, bool) {
	p.check()
	return p.fakePerson.ComputedText(name)
}
func (p *recycled) Events(name string) []Event    { p.check(); return p.fakePerson.Events(name) }
func (p *recycled) Field(name string) (any, bool) { p.check(); return p.fakePerson.Field(name) }

func (p *recycled) Release() {
	if !p.live.Swap(false) {
		p.owner.t.Error("a person was released twice")
	}
	o := p.owner
	o.mu.Lock()
	o.released++
	o.free = append(o.free, p)
	o.mu.Unlock()
}

func (r *recycledPeople) people() People {
	return func(yield func(Candidate) bool) {
		for _, c := range r.list {
			r.mu.Lock()
			var p *recycled
			if n := len(r.free); n > 0 {
				p, r.free = r.free[n-1], r.free[:n-1]
			} else {
				p = &recycled{owner: r}
			}
			r.yielded++
			r.mu.Unlock()
			p.fakePerson = c.Person.(*fakePerson)
			p.live.Store(true)
			n := copy(p.ref[:], c.Ref)
			if !yield(Candidate{Ref: unsafe.String(&p.ref[0], n), Person: p}) {
				return
			}
		}
	}
}

// Run and Export release every person they were given, once per time it
// was yielded, and only when done with it: their results equal those over
// persons that are never reused.
func TestReleasedPeopleAreReused(t *testing.T) {
	var defs []*Definition
	for _, tm := range Templates() {
		defs = append(defs, tm.Definition)
	}
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		t.Fatal(err)
	}
	people := genPeople(24*batchSize+17, 11, clock)
	deny := map[string]bool{}
	for i := 0; i < len(people); i += 4 {
		deny[people[i].Ref] = true
	}
	dest := policies.Destination{Name: "file", Kind: "file", Fields: []string{"email", "first_name"}}
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			want, err := Run(context.Background(), set, peopleOf(people), &fakeGate{deny: deny}, clock, Workers(workers))
			if err != nil {
				t.Fatal(err)
			}
			rp := &recycledPeople{t: t, list: people}
			got, err := Run(context.Background(), set, rp.people(), &fakeGate{deny: deny}, clock, Workers(workers))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatal("a run over reused persons differs from one over fresh persons")
			}
			if rp.released != rp.yielded || rp.yielded < 2*len(people) {
				t.Fatalf("yielded %d persons (two passes of %d), released %d", rp.yielded, len(people), rp.released)
			}
			// In flight at most: the batches the workers hold, those queued
			// for the reducer, the one being filled and those returned.
			if made := len(rp.free); made > (3*workers+4)*batchSize {
				t.Errorf("%d persons were made for %d candidates: they are not reused", made, len(people))
			}
			for _, name := range []string{"vip", "repeat_buyers"} {
				wantX, err := Export(context.Background(), set, name, peopleOf(people), &fakeGate{deny: deny}, dest, clock)
				if err != nil {
					t.Fatal(err)
				}
				rx := &recycledPeople{t: t, list: people}
				gotX, err := Export(context.Background(), set, name, rx.people(), &fakeGate{deny: deny}, dest, clock)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(gotX, wantX) || len(wantX.Rows) == 0 {
					t.Fatalf("%s: an export over reused persons differs (%d rows, want %d)", name, len(gotX.Rows), len(wantX.Rows))
				}
				if rx.released != rx.yielded {
					t.Fatalf("%s export: yielded %d, released %d", name, rx.yielded, rx.released)
				}
			}
		})
	}
}

// The memo finds each row at its position across chunk boundaries, and
// only for the person it was kept for.
func TestPassMemoRows(t *testing.T) {
	m := &passMemo{seed: maphash.MakeSeed()}
	const n = 2*memoChunkLen + 5
	for i := 0; i < n; i++ {
		m.add(fmt.Sprint("p", i), memoRow{vals: [memoMetrics]float64{float64(i)}})
	}
	for _, tc := range []struct {
		name string
		seq  int
		ref  string
		want float64 // -1: no row
	}{
		{"first", 0, "p0", 0},
		{"last of a chunk", memoChunkLen - 1, fmt.Sprint("p", memoChunkLen-1), memoChunkLen - 1},
		{"first of the next", memoChunkLen, fmt.Sprint("p", memoChunkLen), memoChunkLen},
		{"last", n - 1, fmt.Sprint("p", n-1), n - 1},
		{"past the end", n, fmt.Sprint("p", n), -1},
		{"another person there", 7, "p8", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := m.row(tc.seq, tc.ref)
			switch {
			case tc.want < 0 && row != nil:
				t.Fatalf("row %v, want none", row.vals[0])
			case tc.want >= 0 && (row == nil || row.vals[0] != tc.want):
				t.Fatalf("row %v, want %v", row, tc.want)
			}
		})
	}
}
