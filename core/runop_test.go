package core

import (
	"context"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/store"
)

// Once the committer has taken an op, runOp waits for its end even when
// the caller's context is cancelled: the op commits regardless, and an
// early return would report it as failed and let the caller go on (an
// erasure would release memberMu) while it runs.
func TestRunOpWaitsForATakenOp(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	returned := make(chan error, 1)
	go func() {
		returned <- c.runOp(ctx, func(tx *store.Txn) error {
			close(started)
			<-release
			return tx.Set([]byte("!test/op"), []byte("1"))
		})
	}()
	<-started
	cancel()
	select {
	case err := <-returned:
		close(release) // the committer goes on, and Close can stop it
		t.Fatalf("runOp returned (%v) while its op was running", err)
	case <-time.After(100 * time.Millisecond): // it waits, as it should
	}
	close(release)
	if err := <-returned; err != nil {
		t.Fatalf("the op committed, runOp said %v", err)
	}
}
