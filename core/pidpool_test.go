package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/google/uuid"
)

// Ids come out of the pool in creation order whatever its timing: a batch
// made before the pool ran dry, and landing after ids were made fresh, is
// skipped rather than handed out older than a node created before it (the
// older id stays the root of a merge).
func TestPIDPoolHandsOutIdsInOrder(t *testing.T) {
	p := newPIDPool()
	batch := uuid.Must(uuid.NewV7()) // made while the pool was empty
	fresh, pooled, err := p.take()
	if err != nil || pooled {
		t.Fatalf("an empty pool: %v %v %v", fresh, pooled, err)
	}
	p.ch <- batch // its keys are durable now
	later := uuid.Must(uuid.NewV7())
	p.ch <- later
	var got []uuid.UUID
	for _, want := range []struct {
		name   string
		pooled bool
	}{{"the batch landing late is skipped", true}, {"an empty pool again", false}} {
		pid, pooled, err := p.take()
		if err != nil || pooled != want.pooled {
			t.Fatalf("%s: %v pooled %v, %v", want.name, pid, pooled, err)
		}
		got = append(got, pid)
	}
	if got[0] != later {
		t.Fatalf("took %v, want the later pooled id %v (skipping %v)", got[0], later, batch)
	}
	if p.skipped != 1 {
		t.Fatalf("skipped %d pooled ids, want 1", p.skipped)
	}
	prev := fresh
	for _, pid := range got {
		if bytes.Compare(pid[:], prev[:]) <= 0 {
			t.Fatalf("id %v handed out after %v", pid, prev)
		}
		prev = pid
	}
}

// An empty pool with a batch in the making waits for the batch rather than
// making an id of its own: that id would be later than the whole batch and
// turn it stale (session 9's pool skipped up to 47k of 60k pooled ids on an
// import of new profiles that way).
func TestPIDPoolTakeWaitsForBatchInTheMaking(t *testing.T) {
	for _, tc := range []struct {
		name       string
		createErr  error
		wantPooled bool
	}{
		{"the batch lands", nil, true},
		{"the batch fails", errors.New("vault down"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPIDPool()
			started, release := make(chan []uuid.UUID), make(chan struct{})
			filled := make(chan error, 1)
			go func() {
				filled <- p.fill(context.Background(), func(_ context.Context, batch []uuid.UUID) error {
					started <- batch
					<-release
					return tc.createErr
				})
			}()
			batch := <-started
			type took struct {
				pid    uuid.UUID
				pooled bool
			}
			got := make(chan took, 1)
			go func() {
				pid, pooled, err := p.take()
				if err != nil {
					t.Error(err)
				}
				got <- took{pid, pooled}
			}()
			select {
			case r := <-got:
				t.Fatalf("take returned %v (pooled %v) while the batch's keys were being committed", r.pid, r.pooled)
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			r := <-got
			if err := <-filled; !errors.Is(err, tc.createErr) {
				t.Fatalf("fill: %v, want %v", err, tc.createErr)
			}
			if r.pooled != tc.wantPooled {
				t.Fatalf("pooled %v, want %v", r.pooled, tc.wantPooled)
			}
			if tc.wantPooled && r.pid != batch[0] {
				t.Fatalf("took %v, want the batch's first id %v", r.pid, batch[0])
			}
			if !tc.wantPooled && bytes.Compare(r.pid[:], batch[len(batch)-1][:]) <= 0 {
				t.Fatalf("fresh id %v is not later than the failed batch", r.pid)
			}
			if p.skipped != 0 {
				t.Fatalf("skipped %d pooled ids", p.skipped)
			}
		})
	}
}

// Under a steady stream of new profiles with refills racing it, every
// pooled id is handed out, in order.
func TestPIDPoolSkipsNothingUnderLoad(t *testing.T) {
	p := newPIDPool()
	slowCommit := func(context.Context, []uuid.UUID) error {
		time.Sleep(time.Millisecond) // a vault commit
		return nil
	}
	// The first batch lands before the stream starts: on one CPU the
	// refill goroutine would otherwise not run until the stream ends.
	if err := p.fill(context.Background(), slowCommit); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-p.refill:
			}
			if err := p.fill(context.Background(), slowCommit); err != nil {
				t.Error(err)
			}
		}
	}()
	var prev uuid.UUID
	pooled := 0
	const n = 20000
	for i := 0; i < n; i++ {
		pid, ok, err := p.take()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Compare(pid[:], prev[:]) <= 0 {
			t.Fatalf("id %d: %v after %v", i, pid, prev)
		}
		prev = pid
		if ok {
			pooled++
		}
	}
	close(stop)
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.skipped != 0 {
		t.Fatalf("skipped %d pooled ids of %d taken (%d pooled)", p.skipped, n, pooled)
	}
	// A taker this fast outruns the refills, so many ids are made fresh
	// (the pool was dry with no batch in the making); none may be wasted.
	if pooled == 0 {
		t.Fatalf("none of %d ids came from the pool", n)
	}
}

// An import of new profiles, group after group, uses the pool's keys
// rather than leaving them behind: every pooled id made is handed out or
// still in the pool.
func TestImportOfNewProfilesSkipsNoPooledIds(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	const groups, size = 10, 1000
	for g := 0; g < groups; g++ {
		batch := make([]event.Message, size)
		for i := range batch {
			batch[i] = msg(t, event.Identify, fmt.Sprintf(`{"messageId":"m-%d-%d","userId":"u-%d-%d","timestamp":"2026-10-01T10:00:00Z"}`, g, i, g, i))
		}
		res, err := c.Ingest(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.ProfilesCreated != size {
			t.Fatalf("group %d: %+v", g, res)
		}
	}
	c.pids.mu.Lock()
	skipped := c.pids.skipped
	c.pids.mu.Unlock()
	if skipped != 0 {
		t.Fatalf("%d pooled ids skipped over %d new profiles", skipped, groups*size)
	}
}
