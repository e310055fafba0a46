package segments

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/policies"
)

func withSplits(splits string) string {
	return `{"name": "winback", "purpose": "marketing.communications.email", "where": {"computed": "order_count", "gte": 1}, "splits": ` + splits + `}`
}

func TestParseSplits(t *testing.T) {
	d := mustParse(t, withSplits(`{"treatment": 90, "holdout": 10}`))
	want := []Split{{"holdout", 10}, {"treatment", 90}}
	if !reflect.DeepEqual(d.Splits, want) {
		t.Fatalf("splits %+v, want %+v", d.Splits, want)
	}
	b, _ := d.MarshalJSON()
	if !strings.HasSuffix(string(b), `,"splits":{"holdout":10,"treatment":90}}`) {
		t.Fatalf("canonical form %s", b)
	}
	if d2 := mustParse(t, string(b)); !reflect.DeepEqual(d, d2) {
		t.Fatalf("round trip: %+v vs %+v", d, d2)
	}
	y := mustParse(t, "name: winback\npurpose: marketing.communications.email\nwhere: {computed: order_count, gte: 1}\nsplits: {a: 34, b: 33, c: 33}\n")
	if !reflect.DeepEqual(y.Splits, []Split{{"a", 34}, {"b", 33}, {"c", 33}}) {
		t.Fatalf("YAML splits %+v", y.Splits)
	}
	if d := mustParse(t, where(`{"trait": "a", "exists": true}`)); d.Splits != nil {
		t.Fatal("a definition without splits has some")
	}
	if BaselineGroup(d.Splits) != "holdout" || BaselineGroup([]Split{{"a", 50}, {"control", 50}}) != "control" ||
		BaselineGroup([]Split{{"b", 50}, {"a", 50}}) != "a" {
		t.Fatal("baseline group")
	}
}

func TestParseSplitErrors(t *testing.T) {
	cases := []struct {
		name, splits, path string
		err                error
		msg                string
	}{
		{"not an object", `[90, 10]`, "splits", ErrType, "expected an object of group name -> weight"},
		{"one group", `{"all": 100}`, "splits", ErrInvalidValue, "at least 2 groups"},
		{"no group", `{}`, "splits", ErrInvalidValue, "at least 2 groups"},
		{"too many groups", `{"a": 10, "b": 10, "c": 10, "d": 10, "e": 10, "f": 10, "g": 10, "h": 10, "i": 20}`, "splits", ErrInvalidValue, "9 groups; at most 8"},
		{"sum below", `{"treatment": 85, "holdout": 10}`, "splits", ErrInvalidValue, "weights sum to 95; they must sum to 100"},
		{"sum above", `{"treatment": 95, "holdout": 10}`, "splits", ErrInvalidValue, "weights sum to 105"},
		{"fraction", `{"treatment": 90, "holdout": 10.5}`, "splits.holdout", ErrInvalidValue, "weight 10.5: want a whole number from 1 to 99"},
		{"zero", `{"treatment": 90, "holdout": 0}`, "splits.holdout", ErrInvalidValue, "weight 0"},
		{"negative", `{"treatment": 90, "holdout": -10}`, "splits.holdout", ErrInvalidValue, "weight -10"},
		{"string weight", `{"treatment": "90", "holdout": 10}`, "splits.treatment", ErrType, "expected a whole number"},
		{"bad name", `{"Treatment": 90, "holdout": 10}`, "splits.Treatment", ErrInvalidValue, `invalid group name "Treatment"`},
		{"name too long", `{"` + strings.Repeat("a", 33) + `": 90, "holdout": 10}`, `splits.` + strings.Repeat("a", 33), ErrInvalidValue, "invalid group name"},
		{"name with space", `{"group a": 50, "b": 50}`, `splits["group a"]`, ErrInvalidValue, `invalid group name "group a"`},
		{"duplicate group", `{"a": 50, "a": 50}`, "splits.a", ErrSyntax, "duplicate key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withSplits(tc.splits)), ParseOptions{})
			var list ErrorList
			if !errorsAs(err, &list) || len(list) != 1 {
				t.Fatalf("want one error, got %v", err)
			}
			e := list[0]
			if e.Path != tc.path || !errors.Is(e, tc.err) || !errors.Is(err, ErrInvalid) || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got %q at %q (%v), want %q at %q (%v)", e.Message, e.Path, e.Err, tc.msg, tc.path, tc.err)
			}
		})
	}
	// A Definition built in Go is checked again by Compile.
	d := mustParse(t, withSplits(`{"treatment": 90, "holdout": 10}`))
	d.Splits[0].Weight = 20
	if _, err := Compile(d, KnownNames{}); !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), "splits: weights sum to 110") {
		t.Fatalf("compile of a Go definition with bad splits: %v", err)
	}
}

var testSplitKey = []byte("0123456789abcdef0123456789abcdef")

func person(i int) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	b[0] = 0x01
	return b[:]
}

// TestSplitAssignment: over 100,000 people the groups are within five
// standard deviations of the declared shares (the hash is keyed and the
// key fixed, so the counts are fixed too: the bound is how far a fair
// assignment may be from the ratio, not a chance of failing); a second
// splitter (another process, after a restart) assigns everyone alike; and
// a changed key, or another segment, gives an independent assignment.
func TestSplitAssignment(t *testing.T) {
	const n = 100_000
	splits := []Split{{"holdout", 10}, {"treatment", 90}}
	a, err := NewSplitter(testSplitKey, "winback", splits)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSplitter(append([]byte(nil), testSplitKey...), "winback", splits)
	other, _ := NewSplitter(testSplitKey, "vip", splits)
	rekeyed, _ := NewSplitter([]byte("another key, just as long as it is"), "winback", splits)
	counts := map[string]int{}
	both, sameRekeyed := 0, 0
	for i := 0; i < n; i++ {
		g := a.Group(person(i))
		counts[g]++
		if g2 := b.Group(person(i)); g2 != g {
			t.Fatalf("person %d: %s, then %s", i, g, g2)
		}
		if g == "holdout" && other.Group(person(i)) == "holdout" {
			both++
		}
		if rekeyed.Group(person(i)) == g {
			sameRekeyed++
		}
	}
	within := func(what string, got int, p float64) {
		t.Helper()
		mean, sd := n*p, math.Sqrt(n*p*(1-p))
		if math.Abs(float64(got)-mean) > 5*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, got, n, mean, 5*sd)
		}
		t.Logf("%s: %d of %d (declared %.0f)", what, got, n, mean)
	}
	within("holdout", counts["holdout"], 0.10)
	within("treatment", counts["treatment"], 0.90)
	// Independent across segments: in both holdouts about 1% of people.
	within("holdout of two segments", both, 0.01)
	// Another key: agreement as by chance (0.9² + 0.1²).
	within("same group under another key", sameRekeyed, 0.82)

	// Three groups, uneven.
	abc, _ := NewSplitter(testSplitKey, "ab", []Split{{"a", 50}, {"b", 30}, {"c", 20}})
	c3 := map[string]int{}
	for i := 0; i < n; i++ {
		c3[abc.Group(person(i))]++
	}
	within("a", c3["a"], 0.5)
	within("b", c3["b"], 0.3)
	within("c", c3["c"], 0.2)
}

// Growing the holdout from 10 to 20 moves only treatment people into it:
// everyone already held out stays held out.
func TestSplitWeightChangeMovesOnlyTheBand(t *testing.T) {
	old, _ := NewSplitter(testSplitKey, "winback", []Split{{"holdout", 10}, {"treatment", 90}})
	grown, _ := NewSplitter(testSplitKey, "winback", []Split{{"holdout", 20}, {"treatment", 80}})
	moved := 0
	for i := 0; i < 20000; i++ {
		was, is := old.Group(person(i)), grown.Group(person(i))
		if was == "holdout" && is != "holdout" {
			t.Fatalf("person %d left the holdout when it grew", i)
		}
		if was != is {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("nobody moved into the larger holdout")
	}
}

func TestNewSplitterRefuses(t *testing.T) {
	if _, err := NewSplitter([]byte("short"), "s", []Split{{"a", 50}, {"b", 50}}); !errors.Is(err, ErrSplitKey) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := NewSplitter(testSplitKey, "s", []Split{{"a", 50}, {"b", 40}}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("weights of 90: %v", err)
	}
	if _, err := NewSplitter(testSplitKey, "s", []Split{{"a", 100}}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("one group: %v", err)
	}
}

// Measure hands the observer the allowed people only, and counts the
// others; every person is asked about for the given purpose.
func TestMeasureIsGated(t *testing.T) {
	people := genPeople(40, 7, clock)
	deny := map[string]bool{}
	for i, c := range people {
		if i%3 == 0 {
			deny[c.Ref] = true
		}
	}
	gate := &fakeGate{deny: deny}
	var seen []string
	res, err := Measure(context.Background(), "marketing.communications.email", peopleOf(people), gate, func(c Candidate) error {
		if deny[c.Ref] {
			t.Fatalf("denied person %s observed", c.Ref)
		}
		seen = append(seen, c.Ref)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed != len(seen) || res.Allowed+res.Denied != len(people) || res.Denied != len(deny) {
		t.Fatalf("result %+v, observed %d of %d", res, len(seen), len(people))
	}
	for _, c := range gate.calls {
		if c.action != policies.ActionSegmentEvaluate || c.purpose != "marketing.communications.email" {
			t.Fatalf("gate asked %+v", c)
		}
	}
	if _, err := Measure(context.Background(), "p", peopleOf(people), nil, func(Candidate) error { return nil }); !errors.Is(err, ErrNoGate) {
		t.Fatalf("no gate: %v", err)
	}
	boom := errors.New("boom")
	if _, err := Measure(context.Background(), "p", peopleOf(people), &fakeGate{err: boom}, func(Candidate) error { return nil }); !errors.Is(err, ErrGate) || !errors.Is(err, boom) {
		t.Fatalf("gate error: %v", err)
	}
}
