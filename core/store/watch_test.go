package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A watcher gets each commit's final values of the watched keys, once per
// key, in commit order, before the commit is visible to readers.
func TestWatch(t *testing.T) {
	ctx := context.Background()
	type report struct {
		ts, visible uint64
		changes     []string
	}
	var (
		mu      sync.Mutex
		reports []report
		s       *Store
	)
	o := testOptions()
	o.Pipelined = true
	o.Watch = []Prefix{"w/", "x/"}
	o.OnCommit = func(ts uint64, changes []Change) {
		mu.Lock()
		defer mu.Unlock()
		r := report{ts: ts, visible: s.committed.Load()}
		for _, c := range changes {
			if c.Deleted {
				r.changes = append(r.changes, string(c.Key)+" deleted")
			} else {
				r.changes = append(r.changes, string(c.Key)+"="+string(c.Value))
			}
		}
		reports = append(reports, r)
	}
	s = openTest(t, t.TempDir(), o)

	// Three commits: two pipelined (the second built on the first's
	// overlay, both in flight at once), then an Update.
	tx1, err := s.Begin(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ k, v string }{{"w/a", "1"}, {"u/a", "1"}, {"w/a", "2"}, {"w/b", "1"}, {"e/x", "1"}} {
		if err := tx1.Set([]byte(w.k), []byte(w.v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx1.SetUnread([]byte("x/c"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	if err := tx1.CommitAsync(func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	tx2, err := s.Begin(ctx, tx1.Writes())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx2.Set([]byte("w/b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Delete([]byte("w/b")); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Delete([]byte("u/a")); err != nil {
		t.Fatal(err)
	}
	if err := tx2.CommitAsync(func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.Set([]byte("u/z"), []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.Set([]byte("x/c"), []byte("2")) }); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	// Each report comes before its commit is visible.
	base := reports[0].ts - 1 // Open wrote the schema version
	for i, r := range reports {
		if r.visible >= r.ts {
			t.Errorf("commit %d reported when commits up to %d were visible", r.ts, r.visible)
		}
		reports[i].ts, reports[i].visible = r.ts-base, 0
	}
	got := fmt.Sprint(reports)
	// Commit 3 wrote nothing watched: no report.
	want := fmt.Sprint([]report{
		{1, 0, []string{"w/a=2", "w/b=1", "x/c=1"}},
		{2, 0, []string{"w/b deleted"}},
		{4, 0, []string{"x/c=2"}},
	})
	if got != want {
		t.Fatalf("reports\n%s\nwant\n%s", got, want)
	}
}

func TestWatchNeedsPipelined(t *testing.T) {
	o := testOptions()
	o.Watch = []Prefix{"w/"}
	o.OnCommit = func(uint64, []Change) {}
	if _, err := Open(context.Background(), t.TempDir(), o); err == nil {
		t.Fatal("Watch without Pipelined: no error")
	}
}

// Settle waits for every reported change to be visible: a report comes
// before its commit is visible.
func TestSettle(t *testing.T) {
	ctx := context.Background()
	var s *Store
	seen := make(chan uint64, 1)
	o := testOptions()
	o.Pipelined = true
	o.Watch = []Prefix{"w/"}
	o.OnCommit = func(ts uint64, _ []Change) {
		// Still invisible here; a reader that settles after this report
		// must see it.
		go func() {
			s.Settle()
			if c := s.committed.Load(); c < ts {
				seen <- c
				return
			}
			seen <- ts
		}()
	}
	s = openTest(t, t.TempDir(), o)
	if err := s.Update(ctx, func(tx *Txn) error { return tx.Set([]byte("w/a"), []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	want := s.committed.Load()
	if got := <-seen; got != want {
		t.Fatalf("after Settle, commits up to %d were visible; the report was of %d", got, want)
	}
}

// A pipelined Update that finishes while an earlier commit is still being
// written returns only once both are visible: a View begun after it reads
// its writes. Membership writers and erasures rely on it: each takes over
// from the other under one lock, and reads what the other wrote.
func TestUpdateVisibleWhenItReturns(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	o.Pipelined = true
	s := openTest(t, t.TempDir(), o)
	s.mu.Lock()
	held := s.next + 1 // the next commit's timestamp
	s.mu.Unlock()
	hold, reached := make(chan struct{}), make(chan struct{}, 1)
	s.beforeFinish = func(ts uint64) {
		if ts == held {
			<-hold
		} else {
			reached <- struct{}{}
		}
	}
	tx, err := s.Begin(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Set([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	if err := tx.CommitAsync(func(err error) { first <- err }); err != nil {
		t.Fatal(err)
	}
	updated := make(chan error, 1)
	go func() {
		updated <- s.Update(ctx, func(tx *Txn) error { return tx.Set([]byte("b"), []byte("2")) })
	}()
	<-reached // the Update's own commit is written
	select {
	case err := <-updated:
		close(hold)
		t.Fatalf("Update returned (%v) while an earlier commit was unfinished: a View would not see its writes", err)
	case <-time.After(100 * time.Millisecond): // it waits, as it should
	}
	close(hold)
	if err := errors.Join(<-first, <-updated); err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx *Txn) error {
		for _, k := range []string{"a", "b"} {
			if _, err := tx.Get([]byte(k)); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
