package audit

import (
	"context"
	"testing"
)

// BenchmarkAppend measures durable appends (head file + store fsyncs) one
// at a time.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	l := e.open()
	data := map[string]any{"decision": "allow", "profiles": 1234, "bundle": "3f1a9c0e2b7d4c5a"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Append(ctx, "policy.decision", "policy-gate", data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAppendParallel measures appends from many goroutines, which the
// writer commits together (group commit).
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	l := e.open()
	data := map[string]any{"decision": "allow", "profiles": 1234, "bundle": "3f1a9c0e2b7d4c5a"}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, "policy.decision", "policy-gate", data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkVerify measures a full Verify walk.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	l := e.open()
	const n = 10000
	var reqs []*request
	for range n {
		data, _ := marshalData(map[string]int{"profiles": 1})
		reqs = append(reqs, &request{ctx: ctx, kind: "policy.decision", actor: "policy-gate", data: data, res: make(chan result, 1)})
	}
	for i := 0; i < n; i += maxBatch {
		l.commit(reqs[i:min(n, i+maxBatch)])
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := l.Verify(ctx)
		if err != nil || !rep.OK || rep.Entries != n {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "entries/s")
}
