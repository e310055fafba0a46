package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
)

func storeOptions() store.Options {
	o := store.DefaultOptions()
	o.EncryptionKey = bytes.Repeat([]byte{7}, 32)
	o.MemTableSize, o.BlockCacheSize, o.IndexCacheSize = 8<<20, 8<<20, 8<<20
	return o
}

func testMaster(t testing.TB) *keys.Master {
	t.Helper()
	m, err := keys.ParseMaster(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// env is a data store directory and a head directory.
type env struct {
	t        testing.TB
	storeDir string
	headDir  string
	master   *keys.Master
	st       *store.Store
	log      *Log
}

func newEnv(t testing.TB) *env {
	root := t.TempDir()
	e := &env{t: t, storeDir: filepath.Join(root, "data"), headDir: filepath.Join(root, "vault"), master: testMaster(t)}
	t.Cleanup(e.close)
	return e
}

func (e *env) opts() Options {
	return Options{Master: e.master, HeadDir: e.headDir}
}

func (e *env) openStore() *store.Store {
	e.t.Helper()
	if e.st == nil {
		st, err := store.Open(context.Background(), e.storeDir, storeOptions())
		if err != nil {
			e.t.Fatal(err)
		}
		e.st = st
	}
	return e.st
}

func (e *env) open() *Log {
	e.t.Helper()
	l, err := Open(context.Background(), e.openStore(), e.opts())
	if err != nil {
		e.t.Fatal(err)
	}
	e.log = l
	return l
}

func (e *env) closeLog() {
	if e.log != nil {
		if err := e.log.Close(); err != nil {
			e.t.Error(err)
		}
		e.log = nil
	}
}

func (e *env) close() {
	e.closeLog()
	if e.st != nil {
		if err := e.st.Close(); err != nil {
			e.t.Error(err)
		}
		e.st = nil
	}
}

func (e *env) verify() VerifyReport {
	e.t.Helper()
	rep, err := VerifyStore(context.Background(), e.openStore(), e.opts())
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

// appendN appends n entries with data {"n": i}.
func appendN(t testing.TB, l *Log, n int) []Entry {
	t.Helper()
	out := make([]Entry, 0, n)
	for i := range n {
		e, err := l.Append(context.Background(), "policy.decision", "policy-gate", map[string]int{"n": i, "allowed": i % 3})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func wantOK(t testing.TB, rep VerifyReport, entries uint64) {
	t.Helper()
	if !rep.OK || rep.Entries != entries || rep.Head != entries || rep.Pending != 0 || rep.FirstBad != 0 {
		t.Fatalf("report = %+v, want OK with %d entries", rep, entries)
	}
}

func TestAppendReopenVerify(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	first := appendN(t, l, 100)
	for i, en := range first {
		if en.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, en.Seq)
		}
		if err := en.VerifyHash(); err != nil {
			t.Fatal(err)
		}
	}
	if first[0].Prev != strings.Repeat("0", 64) {
		t.Fatalf("first prev = %s", first[0].Prev)
	}
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, rep, 100)

	e.close()
	l = e.open()
	if seq, hash := l.Head(); seq != 100 || hash != first[99].Hash {
		t.Fatalf("head after reopen = %d %s", seq, hash)
	}
	more := appendN(t, l, 50)
	if more[0].Seq != 101 || more[0].Prev != first[99].Hash {
		t.Fatalf("chain not continued: %+v", more[0])
	}
	rep, err = l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, rep, 150)
	e.closeLog()
	wantOK(t, e.verify(), 150)
}

func TestNewLogAndEmpty(t *testing.T) {
	e := newEnv(t)
	// A store never opened by the log: nothing to check, nothing wrong.
	e.openStore()
	if rep := e.verify(); !rep.OK || rep.Entries != 0 {
		t.Fatalf("fresh store: %+v", rep)
	}
	l := e.open()
	if _, err := os.Stat(filepath.Join(e.headDir, HeadFile)); err != nil {
		t.Fatalf("open did not write the empty head: %v", err)
	}
	rep, err := l.Verify(context.Background())
	if err != nil || !rep.OK || rep.Entries != 0 {
		t.Fatalf("empty log: %+v %v", rep, err)
	}
	if got, err := l.Tail(context.Background(), 5); err != nil || len(got) != 0 {
		t.Fatalf("tail of empty log: %v %v", got, err)
	}
}

// TestCanonicalEncoding rebuilds the canonical bytes from the description
// in doc.go, independently of the implementation.
func TestCanonicalEncoding(t *testing.T) {
	ts := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	e := newEnv(t)
	l, err := Open(context.Background(), e.openStore(), Options{Master: e.master, HeadDir: e.headDir, Now: func() time.Time { return ts }})
	if err != nil {
		t.Fatal(err)
	}
	e.log = l
	en, err := l.Append(context.Background(), "consent.change", "dpo", map[string]any{"purpose": "marketing", "count": 3})
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = append(b, "custody/audit/v1"...)
	b = binary.BigEndian.AppendUint64(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(ts.UnixNano()))
	for _, f := range []string{"consent.change", "dpo", `{"count":3,"purpose":"marketing"}`} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	b = append(b, make([]byte, 32)...)
	sum := sha256.Sum256(b)
	if en.Hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash %s, want %x", en.Hash, sum)
	}
	if !en.Time.Equal(ts) || en.Time.Location() != time.UTC {
		t.Fatalf("time %v", en.Time)
	}
	// The stored value is the canonical bytes followed by the hash.
	err = e.st.View(context.Background(), func(tx *store.Txn) error {
		v, err := tx.Get(append([]byte("a/"), 0, 0, 0, 0, 0, 0, 0, 1))
		if err != nil {
			return err
		}
		if !bytes.Equal(v, append(b, sum[:]...)) {
			t.Error("stored value is not canonical || hash")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// An exported entry round-trips through JSON and still verifies.
	js, err := json.Marshal(en)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"seq":1`, `"time":"2025-03-01T12:00:00.123456789Z"`, `"kind":`, `"actor":`, `"data":{`, `"prev":`, `"hash":`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("JSON %s lacks %s", js, k)
		}
	}
	var back Entry
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.VerifyHash(); err != nil {
		t.Fatal(err)
	}
	back.Data = json.RawMessage(`{"count":4,"purpose":"marketing"}`)
	if err := back.VerifyHash(); !errors.Is(err, ErrTampered) {
		t.Fatalf("changed export: %v, want ErrTampered", err)
	}
}

func TestAppendValidation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	long := strings.Repeat("a", MaxNameLen+1)
	tests := []struct {
		name        string
		kind, actor string
		data        any
		wantErr     bool
		wantData    string
	}{
		{"ok map", "deletion.certificate", "privacy", map[string]int{"b": 2, "a": 1}, false, `{"a":1,"b":2}`},
		{"ok struct", "key.rotation", "ops_1", struct {
			Epoch int `json:"epoch"`
		}{3}, false, `{"epoch":3}`},
		{"nil data", "unmerge", "dpo", nil, false, `{}`},
		{"nil map", "unmerge", "dpo", map[string]int(nil), false, `{}`},
		{"raw message compacted", "unmerge", "dpo", json.RawMessage(" { \"x\" : 1 } "), false, `{"x":1}`},
		{"max name", strings.Repeat("k", MaxNameLen), "dpo", nil, false, `{}`},
		{"empty kind", "", "dpo", nil, true, ""},
		{"empty actor", "unmerge", "", nil, true, ""},
		{"long kind", long, "dpo", nil, true, ""},
		{"upper case", "Unmerge", "dpo", nil, true, ""},
		{"email actor", "unmerge", "jane@example.com", nil, true, ""},
		{"space", "un merge", "dpo", nil, true, ""},
		{"array data", "unmerge", "dpo", []int{1}, true, ""},
		{"string data", "unmerge", "dpo", "hello", true, ""},
		{"number data", "unmerge", "dpo", 42, true, ""},
		{"unmarshallable", "unmerge", "dpo", map[string]any{"f": func() {}}, true, ""},
		{"too big", "unmerge", "dpo", map[string]string{"x": strings.Repeat("z", MaxDataSize)}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			en, err := l.Append(ctx, tt.kind, tt.actor, tt.data)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidEntry) {
					t.Fatalf("err = %v, want ErrInvalidEntry", err)
				}
				if strings.Contains(err.Error(), "jane") || strings.Contains(err.Error(), "hello") {
					t.Fatalf("error echoes the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(en.Data) != tt.wantData {
				t.Fatalf("data = %s, want %s", en.Data, tt.wantData)
			}
		})
	}
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK || rep.Entries != 6 {
		t.Fatalf("after validation: %+v %v", rep, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cctx, "unmerge", "dpo", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled append: %v", err)
	}
}

func TestTailRange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	all := appendN(t, l, 600) // more than one Range chunk
	seqs := func(es []Entry) []uint64 {
		var s []uint64
		for _, e := range es {
			s = append(s, e.Seq)
		}
		return s
	}
	span := func(a, b uint64) []uint64 {
		var s []uint64
		for i := a; i <= b; i++ {
			s = append(s, i)
		}
		return s
	}
	for _, tt := range []struct {
		n    int
		want []uint64
	}{
		{0, nil}, {-1, nil}, {1, []uint64{600}}, {5, span(596, 600)}, {300, span(301, 600)}, {600, span(1, 600)}, {10000, span(1, 600)},
	} {
		got, err := l.Tail(ctx, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), tt.want) {
			t.Errorf("Tail(%d) = %v..., want %d entries", tt.n, seqs(got)[:min(3, len(got))], len(tt.want))
		}
		for _, g := range got {
			if !equalEntry(g, all[g.Seq-1]) {
				t.Fatalf("Tail entry %d differs from Append's", g.Seq)
			}
		}
	}
	errBoom := errors.New("boom")
	for _, tt := range []struct {
		name    string
		from    uint64
		stopAt  uint64
		want    []uint64
		wantErr error
	}{
		{"all from 0", 0, 0, span(1, 600), nil},
		{"all from 1", 1, 0, span(1, 600), nil},
		{"from 257", 257, 0, span(257, 600), nil},
		{"last", 600, 0, []uint64{600}, nil},
		{"past end", 601, 0, nil, nil},
		{"stops on error", 10, 12, span(10, 12), errBoom},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []Entry
			err := l.Range(ctx, tt.from, func(en Entry) error {
				got = append(got, en)
				if en.Seq == tt.stopAt {
					return errBoom
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Fatalf("got %d entries, want %d", len(got), len(tt.want))
			}
			for _, g := range got {
				if !equalEntry(g, all[g.Seq-1]) {
					t.Fatalf("Range entry %d differs from Append's", g.Seq)
				}
			}
		})
	}
	// fn may append: Range stops at the head it started with.
	n := 0
	if err := l.Range(ctx, 595, func(Entry) error {
		n++
		_, err := l.Append(ctx, "unmerge", "dpo", nil)
		return err
	}); err != nil || n != 6 {
		t.Fatalf("range with appends: n=%d err=%v", n, err)
	}
	// Range and Tail refuse a tampered entry.
	tamper(t, e.st, func(tx *store.Txn) error {
		return tx.Delete(entryKey(300))
	})
	if err := l.Range(ctx, 1, func(Entry) error { return nil }); !errors.Is(err, ErrTampered) {
		t.Fatalf("range over a gap: %v", err)
	}
	if _, err := l.Tail(ctx, 400); !errors.Is(err, ErrTampered) {
		t.Fatalf("tail over a gap: %v", err)
	}
	if _, err := l.Tail(ctx, 5); err != nil {
		t.Fatalf("tail after the gap: %v", err)
	}
}

func equalEntry(a, b Entry) bool {
	return a.Seq == b.Seq && a.Time.Equal(b.Time) && a.Kind == b.Kind && a.Actor == b.Actor &&
		bytes.Equal(a.Data, b.Data) && a.Prev == b.Prev && a.Hash == b.Hash
}

func TestConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	const workers, per = 8, 50
	var mu sync.Mutex
	var got []Entry
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				en, err := l.Append(ctx, "policy.decision", "worker-"+string(rune('a'+w)), map[string]int{"w": w, "i": i})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, en)
				mu.Unlock()
			}
		})
	}
	// Readers run alongside.
	wg.Go(func() {
		for range 20 {
			if _, err := l.Verify(ctx); err != nil {
				t.Error(err)
			}
			if _, err := l.Tail(ctx, 10); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	slices.SortFunc(got, func(a, b Entry) int { return int(a.Seq) - int(b.Seq) })
	if len(got) != workers*per {
		t.Fatalf("got %d entries", len(got))
	}
	for i, en := range got {
		if en.Seq != uint64(i+1) {
			t.Fatalf("seqs not contiguous at %d: %d", i, en.Seq)
		}
		if i > 0 && en.Prev != got[i-1].Hash {
			t.Fatalf("entry %d does not link", en.Seq)
		}
	}
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, rep, workers*per)
	tail, err := l.Tail(ctx, workers*per)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tail {
		if !equalEntry(tail[i], got[i]) {
			t.Fatalf("stored entry %d differs from Append's result", i+1)
		}
	}
}

func TestClosedAndOpenErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open()
	appendN(t, l, 3)
	if _, err := Open(ctx, e.st, e.opts()); err == nil {
		t.Fatal("second Log on the same head file opened")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	e.log = nil
	if _, err := l.Append(ctx, "unmerge", "dpo", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Tail(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("tail after close: %v", err)
	}
	if err := l.Range(ctx, 1, func(Entry) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("range after close: %v", err)
	}
	if _, err := l.Verify(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("verify after close: %v", err)
	}
	if _, err := Open(ctx, e.st, Options{HeadDir: e.headDir}); err == nil {
		t.Fatal("opened without a master key")
	}
	if _, err := Open(ctx, e.st, Options{Master: e.master}); err == nil {
		t.Fatal("opened without a head dir")
	}
	if _, err := VerifyStore(ctx, e.st, Options{Master: e.master}); err == nil {
		t.Fatal("verified without a head dir")
	}
	// Another master key cannot open the head.
	other, err := keys.ParseMaster(strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, e.st, Options{Master: other, HeadDir: e.headDir}); !errors.Is(err, ErrHeadMismatch) {
		t.Fatalf("open with another master key: %v", err)
	}
	// After all this the log still opens and verifies.
	l = e.open()
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, rep, 3)
	if _, err := os.Stat(filepath.Join(e.headDir, HeadFile)); errors.Is(err, fs.ErrNotExist) {
		t.Fatal("head file missing")
	}
}

// tamper writes directly to the store, as an attacker with store access.
func tamper(t testing.TB, st *store.Store, fn func(tx *store.Txn) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}
