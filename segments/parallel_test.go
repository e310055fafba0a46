package segments

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

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
