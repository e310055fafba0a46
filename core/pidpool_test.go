package core

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

// Ids come out of the pool in creation order whatever its timing: a batch
// made before the pool ran dry, and landing after ids were made fresh, is
// skipped rather than handed out older than a node created before it (the
// older id stays the root of a merge).
func TestPIDPoolHandsOutIdsInOrder(t *testing.T) {
	p := &pidPool{ch: make(chan uuid.UUID, pidPoolSize), refill: make(chan struct{}, 1)}
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
	prev := fresh
	for _, pid := range got {
		if bytes.Compare(pid[:], prev[:]) <= 0 {
			t.Fatalf("id %v handed out after %v", pid, prev)
		}
		prev = pid
	}
}
