package segments

import (
	"hash/maphash"
	"math"
)

// A population-relative definition (top, bottom) reads everyone twice:
// the population pass fixes the thresholds, the evaluation pass decides
// each person. Both passes ask the gate the same question and compute the
// same metrics of the same people, so the first pass keeps its answers, in
// People's order, and the second takes them instead of asking again:
// VIP by quantile then costs one gate decision and one metric per person,
// not two.
//
// The second pass meets the people in the same order when People reads the
// same snapshot (the store's scans do). Each kept row carries a hash of
// the person's Ref and is used only when the person at that position has
// that Ref; any other People is evaluated as before, so the memo changes
// what is computed, never the result.

// Limits of a kept row: a run with more purposes or metrics keeps none
// (fixed-size rows cost the population pass no allocation per person).
const (
	memoPurposes = 8
	memoMetrics  = 4
)

// memoRow is what the population pass learnt of one person.
type memoRow struct {
	dec   [memoPurposes]int8 // as runner.dec: 0 not asked, 1 allowed, -1 denied
	known uint8              // bit m: vals[m] was computed (NaN: no value)
	vals  [memoMetrics]float64
}

// passMemo holds the population pass's rows in People's order, in chunks
// of memoChunkLen: grown by appending, a million rows left their copies
// behind as garbage. It is written by the pass's reducer alone and only
// read afterwards.
type passMemo struct {
	seed    maphash.Seed
	metrics []Metric
	n       int
	chunks  []*memoChunk
}

const memoChunkLen = 4096

type memoChunk struct {
	refs [memoChunkLen]uint64
	rows [memoChunkLen]memoRow
}

func newPassMemo(purposes int, pops []*Population) *passMemo {
	if purposes > memoPurposes {
		return nil
	}
	m := &passMemo{seed: maphash.MakeSeed()}
	for _, p := range pops {
		if p == nil {
			continue
		}
		for _, x := range p.metrics {
			if m.metric(x) < 0 {
				m.metrics = append(m.metrics, x)
			}
		}
	}
	if len(m.metrics) > memoMetrics {
		return nil
	}
	return m
}

func (m *passMemo) metric(x Metric) int {
	for i, y := range m.metrics {
		if y == x {
			return i
		}
	}
	return -1
}

func (m *passMemo) hash(ref string) uint64 { return maphash.String(m.seed, ref) }

func (m *passMemo) add(ref string, row memoRow) {
	i := m.n % memoChunkLen
	if i == 0 {
		m.chunks = append(m.chunks, new(memoChunk))
	}
	c := m.chunks[len(m.chunks)-1]
	c.refs[i], c.rows[i] = m.hash(ref), row
	m.n++
}

// row returns the row kept at position seq if it is ref's, or nil.
func (m *passMemo) row(seq int, ref string) *memoRow {
	if seq >= m.n {
		return nil
	}
	c := m.chunks[seq/memoChunkLen]
	if c.refs[seq%memoChunkLen] != m.hash(ref) {
		return nil
	}
	return &c.rows[seq%memoChunkLen]
}

// value is the kept value of metric x in row: known false when the first
// pass did not compute it for that person.
func (row *memoRow) value(i int) (x float64, known bool) {
	if i < 0 || row.known&(1<<i) == 0 {
		return 0, false
	}
	return row.vals[i], true
}

// memoRow returns the current person's kept row, or nil: no memo, a
// position past its end, or another person there.
func (r *runner) memoRow() *memoRow {
	if r.memo == nil {
		return nil
	}
	if !r.mlooked {
		r.mlooked, r.mrow = true, r.memo.row(r.seq, r.cand.Ref)
	}
	return r.mrow
}

// metric is the current person's value of a metric for a top or bottom
// condition: the population pass's when it kept one, else the person's.
func (e *Env) metric(p Person, name string) (float64, bool) {
	if r := e.run; r != nil {
		if row := r.memoRow(); row != nil {
			if x, known := row.value(r.memo.metric(Metric(name))); known {
				return x, !math.IsNaN(x)
			}
		}
	}
	return p.Computed(name)
}
