package segments

import (
	"runtime"
	"sync"
)

// Parallel evaluation: the People iterator stays in the caller's goroutine
// (it is usually a store scan), while workers — each a clone of the runner,
// with its own per-person state — evaluate batches of the people it yields.
// Results are reduced in the order People yielded them, so a parallel run's
// Result is exactly the sequential one's; only the order of Gate calls
// differs, which is why a Gate must be safe for concurrent use.

// RunOption is a per-call setting of Run and RunLocal.
type RunOption func(*runSettings)

type runSettings struct {
	workers int
}

// Workers sets how many goroutines evaluate people (default: GOMAXPROCS).
// 1 evaluates in the caller's goroutine.
func Workers(n int) RunOption {
	return func(s *runSettings) { s.workers = n }
}

func settingsOf(opts []RunOption) runSettings {
	s := runSettings{workers: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&s)
	}
	if s.workers < 1 {
		s.workers = 1
	}
	return s
}

// batchSize is how many people a worker takes at a time: large enough that
// handing batches over costs nothing next to evaluating them.
const batchSize = 128

// clone returns a runner with r's fixed parts (the set, the gate, the
// thresholds) and per-person state of its own.
func (r *runner) clone() *runner {
	w := &runner{ctx: r.ctx, set: r.set, people: r.people, gate: r.gate, now: r.now, need: r.need,
		purposes: r.purposes, pidx: r.pidx, workers: 1, memo: r.memo,
		envs: make([]Env, len(r.envs)), dec: make([]int8, len(r.dec)), state: make([]int8, len(r.state))}
	copy(w.envs, r.envs)
	for i := range w.envs {
		w.envs[i].run = w
	}
	if r.pops != nil {
		w.pops = make([]*Population, len(r.pops))
		for i, p := range r.pops {
			if p != nil {
				w.pops[i] = NewPopulation(p.metrics...)
			}
		}
	}
	return w
}

// eachParallel calls visit for every person People yields, on r.workers
// clones of r (the person is the clone's current one, as in each), and
// then reduce with the person and visit's value, in the order People
// yielded them, in the caller's goroutine. The first error stops the run.
// It returns the clones, so that callers can combine what each collected.
func eachParallel[T any](r *runner, visit func(w *runner, c Candidate) (T, error), reduce func(c Candidate, v T) error) ([]*runner, error) {
	if r.workers <= 1 {
		return []*runner{r}, r.each(func(c Candidate) error {
			v, err := visit(r, c)
			if err != nil {
				return err
			}
			return reduce(c, v)
		})
	}
	type batch struct {
		start int // position of cands[0] in People's order
		cands []Candidate
		vals  []T
		done  chan struct{}
	}
	// The first error (of a visit, a reduce or ctx) stops everyone.
	var (
		mu      sync.Mutex
		failure error
		stop    sync.Once
	)
	stopped := make(chan struct{})
	fail := func(err error) {
		mu.Lock()
		if failure == nil {
			failure = err
		}
		mu.Unlock()
		stop.Do(func() { close(stopped) })
	}
	isStopped := func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	}
	clones := make([]*runner, r.workers)
	work := make(chan *batch)
	var wg sync.WaitGroup
	for i := range clones {
		w := r.clone()
		clones[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if cap(b.vals) < len(b.cands) {
					b.vals = make([]T, len(b.cands))
				}
				b.vals = b.vals[:len(b.cands)]
				for j, c := range b.cands {
					if isStopped() {
						break
					}
					if err := w.ctx.Err(); err != nil {
						fail(err)
						break
					}
					w.begin(c, b.start+j)
					v, err := visit(w, c)
					if err != nil {
						fail(err)
						break
					}
					b.vals[j] = v
				}
				w.cand, w.subj = Candidate{}, subjectHandle{}
				close(b.done)
			}
		}()
	}
	// The reducer takes batches in order; the channel's room bounds how
	// far the scan runs ahead of it. A reduced batch goes back to the scan
	// through free, its people released: a run holds a few batches' worth
	// of candidates, not one allocation per batch.
	order := make(chan *batch, 2*r.workers)
	free := make(chan *batch, 2*r.workers+2)
	reduced := make(chan struct{})
	go func() {
		defer close(reduced)
		for b := range order {
			<-b.done
			if isStopped() {
				continue // a batch cut short: nothing after the failure counts
			}
			for j, c := range b.cands {
				if err := reduce(c, b.vals[j]); err != nil {
					fail(err)
					break
				}
				release(c)
			}
			clear(b.cands)
			clear(b.vals)
			b.cands, b.vals = b.cands[:0], b.vals[:0]
			select {
			case free <- b:
			default:
			}
		}
	}()
	n := 0
	next := func() *batch {
		select {
		case b := <-free:
			b.start, b.done = n, make(chan struct{})
			return b
		default:
			return &batch{start: n, cands: make([]Candidate, 0, batchSize), done: make(chan struct{})}
		}
	}
	cur := next()
	send := func() bool {
		order <- cur
		select {
		case work <- cur:
		case <-stopped:
			close(cur.done) // never evaluated: the reducer skips it
			return false
		}
		cur = next()
		return true
	}
	for c := range r.people {
		if n%256 == 0 {
			if err := r.ctx.Err(); err != nil {
				fail(err)
				break
			}
		}
		n++
		cur.cands = append(cur.cands, c)
		if len(cur.cands) == batchSize && !send() {
			break
		}
	}
	if len(cur.cands) > 0 && !isStopped() {
		send()
	}
	close(work)
	wg.Wait()
	close(order)
	<-reduced
	return clones, failure
}
