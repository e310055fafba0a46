package audit

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

var errIO = errors.New("simulated I/O error")

// TestCrashAtEveryStep stops the append protocol at each step, as a crash
// would (no clean-up, nothing written afterwards), or makes one step fail
// with an I/O error, and checks that the log then opens cleanly, verifies,
// and continues.
func TestCrashAtEveryStep(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// faults maps a step (phase+step) to the error it returns the
		// first time it is reached.
		faults map[string]error
		batch  int // entries in the interrupted append (1: one Append)
		// wantAppendErr: the interrupted Append's error (nil: success).
		wantAppendErr error
		// wantEntries is the store's entry count before reopening and
		// wantPending the head's entries the store lacks.
		wantEntries, wantPending uint64
	}{
		{name: "crash before anything is written",
			faults: map[string]error{"append:begin": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5},
		{name: "crash with the head in a temp file",
			faults: map[string]error{"append:head-temp": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5},
		{name: "crash after the head rename",
			faults: map[string]error{"append:head-renamed": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5, wantPending: 1},
		{name: "crash with the head durable, store not written",
			faults: map[string]error{"append:head-durable": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5, wantPending: 1},
		{name: "crash after the store commit",
			faults: map[string]error{"append:store-committed": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 6},
		{name: "crash with a batch of 3, head durable, store not written",
			faults: map[string]error{"append:head-durable": errCrash}, batch: 3,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5, wantPending: 3},
		{name: "crash with a batch of 3 after the store commit",
			faults: map[string]error{"append:store-committed": errCrash}, batch: 3,
			wantAppendErr: ErrNeedsReopen, wantEntries: 8},
		{name: "store fails, crash during the rollback (temp)",
			faults: map[string]error{"append:head-durable": errIO, "rollback:head-temp": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5, wantPending: 1},
		{name: "store fails, crash during the rollback (renamed)",
			faults: map[string]error{"append:head-durable": errIO, "rollback:head-renamed": errCrash}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5},
		// I/O errors without a crash.
		{name: "store commit fails, head rolled back",
			faults: map[string]error{"append:head-durable": errIO}, batch: 1,
			wantAppendErr: errIO, wantEntries: 5},
		{name: "store commit fails, rollback fails",
			faults: map[string]error{"append:head-durable": errIO, "rollback:head-temp": errIO}, batch: 1,
			wantAppendErr: ErrNeedsReopen, wantEntries: 5, wantPending: 1},
		{name: "store reports an error but committed",
			faults: map[string]error{"append:store-committed": errIO}, batch: 1,
			wantEntries: 6},
		{name: "head write fails before the rename",
			faults: map[string]error{"append:head-temp": errIO}, batch: 1,
			wantAppendErr: errIO, wantEntries: 5},
		{name: "head write fails after the rename",
			faults: map[string]error{"append:head-renamed": errIO}, batch: 1,
			wantAppendErr: errIO, wantEntries: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			l := e.open()
			appendN(t, l, 5)
			fired := map[string]bool{}
			l.hook = func(step string) error {
				if err, ok := tt.faults[step]; ok && !fired[step] {
					fired[step] = true
					return err
				}
				return nil
			}

			var err error
			if tt.batch == 1 {
				_, err = l.Append(ctx, "deletion.certificate", "privacy", map[string]int{"profiles": 1})
			} else {
				var reqs []*request
				for i := range tt.batch {
					data, _ := marshalData(map[string]int{"i": i})
					reqs = append(reqs, &request{ctx: ctx, kind: "unmerge", actor: "dpo", data: data, res: make(chan result, 1)})
				}
				l.commit(reqs)
				for _, r := range reqs {
					if res := <-r.res; res.err != nil {
						err = res.err
					}
				}
			}
			if len(fired) != len(tt.faults) {
				t.Fatalf("faults fired: %v, want %v", fired, tt.faults)
			}
			if tt.wantAppendErr == nil {
				if err != nil {
					t.Fatalf("append: %v", err)
				}
			} else if !errors.Is(err, tt.wantAppendErr) {
				t.Fatalf("append: %v, want %v", err, tt.wantAppendErr)
			}
			crashed := errors.Is(err, ErrNeedsReopen)
			if crashed {
				if _, err := l.Append(ctx, "unmerge", "dpo", nil); !errors.Is(err, ErrNeedsReopen) {
					t.Fatalf("append after a crash: %v", err)
				}
			}

			// What `custody audit verify` would see now.
			rep := e.verify()
			if !rep.OK || rep.Entries != tt.wantEntries || rep.Pending != tt.wantPending {
				t.Fatalf("before reopen: %+v, want OK, %d entries, %d pending", rep, tt.wantEntries, tt.wantPending)
			}

			// The process ends; a new one opens the log.
			e.close()
			l = e.open()
			if temps, _ := filepath.Glob(filepath.Join(e.headDir, tempPattern)); len(temps) != 0 {
				t.Fatalf("temp head files left after Open: %v", temps)
			}
			want := tt.wantEntries + tt.wantPending
			rep, err = l.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantOK(t, rep, want)
			if !crashed && tt.wantAppendErr != nil && want != 5 {
				t.Fatalf("a failed append left %d entries", want)
			}
			appendN(t, l, 3)
			rep, err = l.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantOK(t, rep, want+3)
			tail, err := l.Tail(ctx, int(want+3))
			if err != nil {
				t.Fatal(err)
			}
			for i, en := range tail {
				if en.Seq != uint64(i+1) {
					t.Fatalf("entry %d has seq %d", i+1, en.Seq)
				}
			}
		})
	}
}

// TestCrashBeforeFirstAppend covers the very first append (prev = zeros)
// being completed by Open.
func TestCrashBeforeFirstAppend(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	l.hook = func(step string) error {
		if step == "append:head-durable" {
			return errCrash
		}
		return nil
	}
	if _, err := l.Append(ctx, "key.rotation", "ops", map[string]int{"epoch": 2}); !errors.Is(err, ErrNeedsReopen) {
		t.Fatalf("append: %v", err)
	}
	e.close()
	l = e.open()
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, rep, 1)
	tail, err := l.Tail(ctx, 1)
	if err != nil || len(tail) != 1 || tail[0].Kind != "key.rotation" {
		t.Fatalf("tail = %+v, %v", tail, err)
	}
}
