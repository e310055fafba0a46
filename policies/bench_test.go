package policies

import (
	"context"
	"testing"
)

// benchInputs are valid random inputs: many people, few distinct
// policy-relevant situations, as when a segment is gated over a population.
func benchInputs(b *testing.B, n int) []Input {
	c := randChooser{newRand(42)}
	var ins []Input
	for len(ins) < n {
		in := randomInput(c)
		if validate(&in) == nil {
			ins = append(ins, in)
		}
	}
	return ins
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkDecideUncached is the raw cost of an OPA evaluation.
func BenchmarkDecideUncached(b *testing.B) {
	e := newEngine(b, Options{CacheSize: -1})
	ins := benchInputs(b, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Decide(ctx, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkDecideCached decides over a warm cache.
func BenchmarkDecideCached(b *testing.B) {
	e := newEngine(b, Options{})
	ins := benchInputs(b, 1024)
	ctx := context.Background()
	for _, in := range ins {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Decide(ctx, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkDecideCachedParallel decides over a warm cache from all CPUs.
func BenchmarkDecideCachedParallel(b *testing.B) {
	e := newEngine(b, Options{})
	ins := benchInputs(b, 1024)
	ctx := context.Background()
	for _, in := range ins {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := e.Decide(ctx, ins[i%len(ins)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	reportRate(b)
}
