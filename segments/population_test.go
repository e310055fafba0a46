package segments

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
)

func rankPeople(values ...float64) []Candidate {
	out := make([]Candidate, len(values))
	for i, v := range values {
		p := &fakePerson{computed: map[string]float64{}}
		if !math.IsInf(v, -1) { // -Inf marks "no value"
			p.computed["revenue_total"] = v
		}
		out[i] = Candidate{Ref: fmt.Sprintf("r%d", i), Person: p}
	}
	return out
}

func TestTopBottom(t *testing.T) {
	none := math.Inf(-1)
	cases := []struct {
		name   string
		cond   string
		values []float64
		want   []int // indexes of members
	}{
		{"top 10% of 10", `{"top": {"percent": 10, "of": "revenue_total"}}`, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []int{9}},
		{"top 20% of 10", `{"top": {"percent": 20, "of": "revenue_total"}}`, []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, []int{0, 1}},
		{"bottom 10% of 10", `{"bottom": {"percent": 10, "of": "revenue_total"}}`, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []int{0}},
		{"bottom 30% of 10", `{"bottom": {"percent": 30, "of": "revenue_total"}}`, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []int{0, 1, 2}},
		{"ties at the top are all in", `{"top": {"percent": 20, "of": "revenue_total"}}`, []float64{5, 1, 5, 2, 5}, []int{0, 2, 4}},
		{"ties at the bottom are all in", `{"bottom": {"percent": 1, "of": "revenue_total"}}`, []float64{0, 0, 3, 0, 9}, []int{0, 1, 3}},
		{"all equal", `{"top": {"percent": 10, "of": "revenue_total"}}`, []float64{4, 4, 4, 4}, []int{0, 1, 2, 3}},
		{"at least one", `{"top": {"percent": 10, "of": "revenue_total"}}`, []float64{1, 2, 3}, []int{2}},
		{"rounds up", `{"top": {"percent": 34, "of": "revenue_total"}}`, []float64{1, 2, 3}, []int{1, 2}},
		{"exact share", `{"top": {"percent": 7, "of": "revenue_total"}}`, seq(100), []int{93, 94, 95, 96, 97, 98, 99}},
		{"100%", `{"top": {"percent": 100, "of": "revenue_total"}}`, []float64{3, none, 1}, []int{0, 2}},
		{"no value is out and not counted", `{"top": {"percent": 50, "of": "revenue_total"}}`, []float64{none, 1, none, 2, none, none}, []int{3}},
		{"nobody has a value", `{"top": {"percent": 50, "of": "revenue_total"}}`, []float64{none, none}, nil},
		{"negative numbers", `{"bottom": {"percent": 50, "of": "revenue_total"}}`, []float64{-5, 0, -10, 3}, []int{0, 2}},
		{"not top", `{"not": {"top": {"percent": 50, "of": "revenue_total"}}}`, []float64{1, none, 2, 3, 4}, []int{0, 1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			people := rankPeople(tc.values...)
			c := mustCompile(t, where(tc.cond))
			pop := NewPopulation(c.NeedsPopulation()...)
			for _, p := range people {
				pop.Add(p.Person)
			}
			env := Env{Thresholds: pop.Thresholds()}
			var got []int
			for i, p := range people {
				if c.Match(p.Person, clock, env) {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Match: members %v, want %v", got, tc.want)
			}
			// Run computes the same thresholds itself.
			set, err := NewSet(KnownNames{}, mustParse(t, where(tc.cond)))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), set, peopleOf(people), allowAll(), clock)
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			for _, m := range res.Segments[0].Members {
				var i int
				fmt.Sscanf(m.Ref(), "r%d", &i)
				got = append(got, i)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Run: members %v, want %v", got, tc.want)
			}
		})
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i)
	}
	return out
}

func TestThresholds(t *testing.T) {
	pop := NewPopulation("m")
	for _, v := range []float64{3, 1, math.NaN(), 2, 2} {
		pop.AddValue("m", v)
	}
	th := pop.Thresholds()
	pop.AddValue("m", 100) // does not change fixed thresholds
	if th.Count("m") != 4 {
		t.Errorf("count %d", th.Count("m"))
	}
	if v, ok := th.Top("m", 25); !ok || v != 3 {
		t.Errorf("top 25%%: %v %v", v, ok)
	}
	if v, ok := th.Top("m", 50); !ok || v != 2 {
		t.Errorf("top 50%%: %v %v", v, ok)
	}
	if v, ok := th.Bottom("m", 25); !ok || v != 1 {
		t.Errorf("bottom 25%%: %v %v", v, ok)
	}
	for _, p := range []float64{0, -1, 101, math.NaN()} {
		if _, ok := th.Top("m", p); ok {
			t.Errorf("percent %v accepted", p)
		}
	}
	if _, ok := th.Top("other", 10); ok {
		t.Error("unknown metric has a threshold")
	}
	var nilT *Thresholds
	if _, ok := nilT.Top("m", 10); ok || nilT.Count("m") != 0 {
		t.Error("nil thresholds")
	}
	c := mustCompile(t, where(`{"top": {"percent": 10, "of": "revenue_total"}}`))
	if c.Match(&fakePerson{computed: map[string]float64{"revenue_total": 1e9}}, clock, Env{}) {
		t.Error("top without thresholds must be false")
	}
}
