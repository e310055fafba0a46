package core

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// pidPool hands out profile ids whose data keys are already durable in the
// vault, so creating a profile on the ingest path costs no vault commit
// (one fsync per group otherwise). A goroutine owned by the CDP refills it
// in batches; Close stops it. Ids left in the pool at shutdown have keys
// and no data: harmless, and gone at the next rotation's re-wrap like any
// other key of a profile without records.
type pidPool struct {
	ch     chan uuid.UUID
	refill chan struct{}

	mu      sync.Mutex
	last    uuid.UUID     // the last id take returned
	filling chan struct{} // non-nil while a batch is being made; closed when it lands (or fails)
	skipped int           // pooled ids never handed out (older than one already returned)
}

// pidPoolSize bounds the keys made ahead (and so the orphans a process can
// leave behind). The pool fills only once profiles are being created.
const pidPoolSize = 2048

func newPIDPool() *pidPool {
	return &pidPool{ch: make(chan uuid.UUID, pidPoolSize), refill: make(chan struct{}, 1)}
}

func (c *CDP) startPIDPool() {
	c.pids = newPIDPool()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// Nothing is made ahead until the first profile is created: a CLI
		// command that only reads leaves no keys behind.
		select {
		case <-c.stop:
			return
		case <-c.pids.refill:
		}
		for {
			if err := c.pids.fill(context.Background(), c.vault.CreateDEKs); err != nil {
				c.log.Error("pre-create data keys", "err", err)
				select {
				case <-c.stop:
					return
				case <-time.After(time.Second):
				}
				continue
			}
			select {
			case <-c.stop:
				return
			case <-c.pids.refill:
			}
		}
	}()
}

// fill tops the pool up with one batch when it is at most three quarters
// full: it makes the ids, has create commit their keys, and only then puts
// them in the pool. While it runs, take waits for the batch instead of
// making an id of its own, which would be later than the whole batch and so
// turn it stale (see take).
func (p *pidPool) fill(ctx context.Context, create func(context.Context, []uuid.UUID) error) error {
	p.mu.Lock()
	n := pidPoolSize - len(p.ch)
	if n < pidPoolSize/4 {
		p.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	p.filling = done
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.filling = nil
		p.mu.Unlock()
		close(done)
	}()
	batch := make([]uuid.UUID, 0, n)
	for i := 0; i < n; i++ {
		pid, err := uuid.NewV7()
		if err != nil {
			break
		}
		batch = append(batch, pid)
	}
	if err := create(ctx, batch); err != nil {
		return err
	}
	// Only fill sends on ch, and it made room for n: never blocks.
	for _, pid := range batch {
		p.ch <- pid
	}
	return nil
}

// take returns a new profile id, later than every id it returned before,
// and whether its data key is already durable (pooled; otherwise the caller
// creates it). Of two nodes, the one with the smaller id is the older and
// stays the root of a merge (identity.Clusters.Apply), so ids must follow
// creation order whatever the pool's timing. An empty pool with a batch in
// the making waits for that batch (about one vault commit, what the caller
// would pay for a fresh id's key anyway); an id made fresh meanwhile would
// be later than the whole batch. Should a pooled id still be older than one
// already returned, it is skipped and counted; its key is left without
// data, like those left in the pool at shutdown.
func (p *pidPool) take() (uuid.UUID, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		pid, ok := p.poll()
		if ok {
			if bytes.Compare(pid[:], p.last[:]) > 0 {
				p.last = pid
				return pid, true, nil
			}
			p.skipped++
			continue
		}
		done := p.filling
		if done == nil {
			break
		}
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	// No batch is in the making, and fill makes its ids only after it
	// marks one under mu: NewV7, monotonic within the process, gives an id
	// later than every pooled one and earlier than the next batch.
	pid, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, false, err
	}
	p.last = pid
	return pid, false, nil
}

// poll returns a pooled id, or false when the pool is empty; either way it
// asks for a refill when the pool runs low.
func (p *pidPool) poll() (uuid.UUID, bool) {
	select {
	case pid := <-p.ch:
		if len(p.ch) < pidPoolSize*3/4 {
			p.ask()
		}
		return pid, true
	default:
		p.ask()
		return uuid.Nil, false
	}
}

func (p *pidPool) ask() {
	select {
	case p.refill <- struct{}{}:
	default:
	}
}
