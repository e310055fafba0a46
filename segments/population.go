package segments

import (
	"math"
	"slices"
)

// Population collects every person's values of some metrics, so that top
// and bottom thresholds can be fixed before any person is evaluated:
//
//	pop := NewPopulation(c.NeedsPopulation()...)
//	for _, p := range people { pop.Add(p) }   // pass 1
//	env := Env{Thresholds: pop.Thresholds()}
//	for _, p := range people { c.Match(p, now, env) } // pass 2
//
// Run and Export do this themselves, over the people the gate allows. A
// Population is not safe for concurrent use.
type Population struct {
	metrics []Metric
	vals    [][]float64
}

// NewPopulation returns a Population collecting the given metrics.
func NewPopulation(metrics ...Metric) *Population {
	p := &Population{}
	for _, m := range metrics {
		p.index(m)
	}
	return p
}

func (p *Population) index(m Metric) int {
	for i, x := range p.metrics {
		if x == m {
			return i
		}
	}
	p.metrics = append(p.metrics, m)
	p.vals = append(p.vals, nil)
	return len(p.metrics) - 1
}

// Add records the person's value of each metric; people without a value
// (or with NaN) are left out of that metric's population.
func (p *Population) Add(person Person) {
	for i, m := range p.metrics {
		if x, ok := person.Computed(string(m)); ok && !math.IsNaN(x) {
			p.vals[i] = append(p.vals[i], x)
		}
	}
}

// merge adds the values of o, which collects the same metrics (a clone's,
// parallel.go): thresholds depend on the values, not their order.
func (p *Population) merge(o *Population) {
	for i, m := range o.metrics {
		j := p.index(m)
		p.vals[j] = append(p.vals[j], o.vals[i]...)
	}
}

// AddValue records one value of a metric (NaN is ignored).
func (p *Population) AddValue(m Metric, x float64) {
	if math.IsNaN(x) {
		return
	}
	i := p.index(m)
	p.vals[i] = append(p.vals[i], x)
}

// Thresholds fixes the thresholds of the values added so far. The
// Population may go on collecting; the Thresholds do not change.
func (p *Population) Thresholds() *Thresholds {
	t := &Thresholds{sorted: make(map[Metric][]float64, len(p.metrics))}
	for i, m := range p.metrics {
		s := slices.Clone(p.vals[i])
		slices.Sort(s)
		t.sorted[m] = s
	}
	return t
}

// Thresholds are fixed population thresholds, safe for concurrent use.
//
// Top p% of n values: the k = ceil(p·n/100) largest (at least one); the
// threshold is the k-th largest value and every value >= it qualifies, so
// ties at the threshold are all included and more than k people may
// qualify. Bottom p% mirrors it with the k-th smallest value and <=.
type Thresholds struct {
	sorted map[Metric][]float64
}

// Count returns how many people have a value of m.
func (t *Thresholds) Count(m Metric) int {
	if t == nil {
		return 0
	}
	return len(t.sorted[m])
}

// Top returns the threshold of the top percent% by m; false when nobody
// has a value or percent is outside (0, 100].
func (t *Thresholds) Top(m Metric, percent float64) (float64, bool) {
	return t.cut(m, true, percent)
}

// Bottom returns the threshold of the bottom percent% by m.
func (t *Thresholds) Bottom(m Metric, percent float64) (float64, bool) {
	return t.cut(m, false, percent)
}

func (t *Thresholds) cut(m Metric, top bool, percent float64) (float64, bool) {
	if t == nil || !(percent > 0 && percent <= 100) {
		return 0, false
	}
	s := t.sorted[m]
	n := len(s)
	if n == 0 {
		return 0, false
	}
	k := int(math.Ceil(percent*float64(n)/100 - 1e-9))
	k = min(max(k, 1), n)
	if top {
		return s[n-k], true
	}
	return s[k-1], true
}
