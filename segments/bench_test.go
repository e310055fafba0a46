package segments

import (
	"context"
	"sync"
	"testing"
)

var benchPeople = sync.OnceValue(func() []Candidate { return genPeople(100_000, 99, clock) })

// BenchmarkMatch evaluates each template over 100k generated people; one
// op is one Match (one person).
func BenchmarkMatch(b *testing.B) {
	people := benchPeople()
	for _, tp := range Templates() {
		b.Run(tp.Name, func(b *testing.B) {
			c, err := Compile(tp.Definition, KnownNames{})
			if err != nil {
				b.Fatal(err)
			}
			pop := NewPopulation(c.NeedsPopulation()...)
			for _, p := range people {
				pop.Add(p.Person)
			}
			env := Env{Thresholds: pop.Thresholds()}
			b.ReportAllocs()
			b.ResetTimer()
			i, n := 0, 0
			for b.Loop() {
				if c.Match(people[i].Person, clock, env) {
					n++
				}
				if i++; i == len(people) {
					i = 0
				}
			}
			_ = n
		})
	}
}

// BenchmarkRun runs all templates as one set over 100k people with an
// allow-all gate; one op is one full run (two passes, 16 segments).
func BenchmarkRun(b *testing.B) {
	people := benchPeople()
	var defs []*Definition
	for _, tp := range Templates() {
		defs = append(defs, tp.Definition)
	}
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		b.Fatal(err)
	}
	gate := allowAllNoRecord{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Run(context.Background(), set, peopleOf(people), gate, clock); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(people)), "ns/person")
}
