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

	mu   sync.Mutex
	last uuid.UUID // the last id take returned
}

// pidPoolSize bounds the keys made ahead (and so the orphans a process can
// leave behind). The pool fills only once profiles are being created.
const pidPoolSize = 2048

func (c *CDP) startPIDPool() {
	c.pids = &pidPool{ch: make(chan uuid.UUID, pidPoolSize), refill: make(chan struct{}, 1)}
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
			if n := pidPoolSize - len(c.pids.ch); n >= pidPoolSize/4 {
				batch := make([]uuid.UUID, 0, n)
				for i := 0; i < n; i++ {
					pid, err := uuid.NewV7()
					if err != nil {
						break
					}
					batch = append(batch, pid)
				}
				if err := c.vault.CreateDEKs(context.Background(), batch); err != nil {
					c.log.Error("pre-create data keys", "err", err)
					select {
					case <-c.stop:
						return
					case <-time.After(time.Second):
					}
					continue
				}
				for _, pid := range batch {
					c.pids.ch <- pid
				}
			}
			select {
			case <-c.stop:
				return
			case <-c.pids.refill:
			}
		}
	}()
}

// take returns a new profile id, later than every id it returned before,
// and whether its data key is already durable (pooled; otherwise the caller
// creates it). Of two nodes, the one with the smaller id is the older and
// stays the root of a merge (identity.Clusters.Apply), so ids must follow
// creation order whatever the pool's timing: a batch is made before its
// keys are committed, and ids made fresh meanwhile (the pool was empty) are
// later than it. A pooled id older than one already returned is skipped;
// its key is left without data, like those left in the pool at shutdown.
func (p *pidPool) take() (uuid.UUID, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		pid, ok := p.poll()
		if !ok {
			break
		}
		if bytes.Compare(pid[:], p.last[:]) > 0 {
			p.last = pid
			return pid, true, nil
		}
	}
	// NewV7 is monotonic within the process: later than every id made so
	// far, pooled ones included.
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
			select {
			case p.refill <- struct{}{}:
			default:
			}
		}
		return pid, true
	default:
		select {
		case p.refill <- struct{}{}:
		default:
		}
		return uuid.Nil, false
	}
}
