package audit

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
)

// Options configures Open and VerifyStore.
type Options struct {
	// Master seals the head file (subkey PurposeHead). Required.
	Master *keys.Master
	// HeadDir is the directory of the head file: the key vault directory,
	// never inside the data store directory or its backups. Required.
	HeadDir string
	// Now is the clock (default time.Now). Entry times are stored in UTC.
	Now func() time.Time
	// Logger gets one line when Open completes an interrupted append.
	// Nothing of an entry's content is ever logged.
	Logger *slog.Logger
}

// Batching limits of the writer (group commit).
const (
	maxBatch      = 256
	maxBatchBytes = 512 << 10
	queueSize     = 1024
)

// Steps of the append protocol, named for the crash tests' hook. The hook
// sees phase+step, phase being "append:" or "rollback:".
const (
	stepBegin          = "begin"           // batch built, nothing written
	stepHeadTemp       = "head-temp"       // temp head file durable, not renamed
	stepHeadRenamed    = "head-renamed"    // renamed over the head, dir not synced
	stepHeadDurable    = "head-durable"    // head durable, store not written
	stepStoreCommitted = "store-committed" // batch committed to the store
	phaseAppend        = "append:"
	phaseRollback      = "rollback:"
)

// errCrash, returned by a test hook, simulates the process dying at that
// step: the Log stops at once, without any clean-up.
var errCrash = errors.New("audit: simulated crash")

func runHook(hook func(string) error, step string) error {
	if hook == nil {
		return nil
	}
	return hook(step)
}

// openHeads holds the absolute paths of head files with an open Log, so
// that two Logs in one process never write the same chain.
var openHeads sync.Map

// Log is an open audit log. It is safe for concurrent use; appends are
// serialized by one writer goroutine, which commits concurrent appends
// together (group commit).
type Log struct {
	st       *store.Store
	aead     cipher.AEAD
	headPath string
	headKey  string // key in openHeads
	now      func() time.Time
	log      *slog.Logger

	// mu guards closed and sends on reqs.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the writer has exited

	// ioMu is held by the writer while it changes the head file or the
	// store, and by Verify while it takes its snapshot, so that Verify
	// never sees a half-done append.
	ioMu   sync.Mutex
	failed error // set (under ioMu) when an append could not be undone

	head atomic.Pointer[head] // last committed head

	// hook, if set before the first Append, runs at every step of the
	// append protocol (tests only).
	hook func(step string) error
}

type request struct {
	ctx         context.Context
	kind, actor string
	data        []byte
	res         chan result
}

type result struct {
	e   Entry
	err error
}

func (o *Options) check() error {
	if o.Master == nil {
		return errors.New("audit: Options.Master is required")
	}
	if o.HeadDir == "" {
		return errors.New("audit: Options.HeadDir is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Open opens the audit log kept in st, with its head file in opts.HeadDir.
//
// On a new log (no entries, no head file) it writes the empty head. Else it
// reads the head and checks the end of the store against it: if the store
// lacks the head's last batch (a crash between the head write and the
// store commit) Open commits it; any other disagreement fails with
// ErrHeadMismatch (or ErrTampered), and nothing is written. Open checks the
// end of the chain only; Verify walks all of it.
func Open(ctx context.Context, st *store.Store, opts Options) (_ *Log, err error) {
	if st == nil {
		return nil, errors.New("audit: nil store")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	aead, err := newHeadAEAD(opts.Master)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := os.MkdirAll(opts.HeadDir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	path := filepath.Join(opts.HeadDir, HeadFile)
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if _, busy := openHeads.LoadOrStore(abs, struct{}{}); busy {
		return nil, fmt.Errorf("audit: a log is already open on %s", abs)
	}
	defer func() {
		if err != nil {
			openHeads.Delete(abs)
		}
	}()
	if err := removeTemps(opts.HeadDir); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}

	h, herr := readHead(path, aead)
	var last uint64
	var lastOK bool
	if err := st.View(ctx, func(tx *store.Txn) error {
		var err error
		last, lastOK, err = lastSeq(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if !lastOK {
		return nil, fmt.Errorf("%w: malformed key under %s", ErrTampered, PrefixAudit)
	}
	switch {
	case errors.Is(herr, fs.ErrNotExist):
		if last != 0 {
			return nil, fmt.Errorf("%w: head file %s is missing but the store holds %d entries", ErrHeadMismatch, path, last)
		}
		h = &head{}
		if _, err := writeHead(path, aead, h, nil, ""); err != nil {
			return nil, fmt.Errorf("audit: open: %w", err)
		}
	case errors.Is(herr, errHeadInvalid):
		return nil, fmt.Errorf("%w: %s: %v", ErrHeadMismatch, path, herr)
	case herr != nil:
		return nil, fmt.Errorf("audit: open: %w", herr)
	}

	var redo []record
	var prob *problem
	if err := st.View(ctx, func(tx *store.Txn) error {
		var err error
		redo, prob, err = compareHead(tx, h, last)
		return err
	}); err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if prob != nil {
		return nil, fmt.Errorf("%w: entry %d: %s", prob.kind, prob.seq, prob.msg)
	}
	if len(redo) > 0 {
		if err := st.Update(ctx, func(tx *store.Txn) error { return setAll(tx, redo) }); err != nil {
			return nil, fmt.Errorf("audit: open: complete interrupted append: %w", err)
		}
		opts.Logger.Info("audit: completed an interrupted append",
			"from_seq", redo[0].seq, "to_seq", redo[len(redo)-1].seq)
	}

	l := &Log{
		st:       st,
		aead:     aead,
		headPath: path,
		headKey:  abs,
		now:      opts.Now,
		log:      opts.Logger,
		reqs:     make(chan *request, queueSize),
		done:     make(chan struct{}),
	}
	l.head.Store(h)
	go l.run()
	return l, nil
}

// lastSeq returns the sequence number of the last key under a/ (0 if
// none); ok is false if that key is not a valid entry key.
func lastSeq(tx *store.Txn) (seq uint64, ok bool, err error) {
	ok = true
	err = tx.Scan([]byte(PrefixAudit), store.ScanOptions{KeysOnly: true, Reverse: true, Limit: 1},
		func(k, _ []byte) error {
			seq, ok = parseKey(k)
			return nil
		})
	return seq, ok, err
}

func setAll(tx *store.Txn, recs []record) error {
	for i := range recs {
		if err := tx.Set(entryKey(recs[i].seq), recs[i].value); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the writer after the appends already queued. It does not
// close the store. Calling Close again returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.reqs)
	l.mu.Unlock()
	<-l.done
	openHeads.Delete(l.headKey)
	return nil
}

// Append adds an entry and returns it once it is durable in both the head
// file and the store. data is marshalled with encoding/json and must give a
// JSON object (nil gives {}); kind and actor must be 1..64 bytes of
// [a-z0-9._-]. The package never looks inside data: callers must put only
// counts, hashes and ids in it, never personal data.
//
// An error means the entry was not appended, except for ErrNeedsReopen,
// whose outcome the next Open decides (the entry is then either complete
// or absent, never half-written). The context is checked before the entry
// is sequenced; once sequenced, the append completes regardless.
func (l *Log) Append(ctx context.Context, kind, actor string, data any) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	if err := validName("kind", kind); err != nil {
		return Entry{}, err
	}
	if err := validName("actor", actor); err != nil {
		return Entry{}, err
	}
	raw, err := marshalData(data)
	if err != nil {
		return Entry{}, err
	}
	r := &request{ctx: ctx, kind: kind, actor: actor, data: raw, res: make(chan result, 1)}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Entry{}, ErrClosed
	}
	l.reqs <- r
	l.mu.RUnlock()
	res := <-r.res
	return res.e, res.err
}

// run is the writer: it takes one request, adds whatever else is queued
// (up to the batch limits) and commits the lot.
func (l *Log) run() {
	defer close(l.done)
	for r := range l.reqs {
		batch := []*request{r}
		size := len(r.data)
	fill:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case r2, ok := <-l.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r2)
				size += len(r2.data)
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

// commit runs the append protocol for one batch:
//
//  1. build the entries (seq, time, prev, hash) after the current head;
//  2. write the head file naming the new last entry and holding the whole
//     batch (atomic replace, durable);
//  3. commit the batch to the store in one transaction (durable).
//
// A crash before 2 completes leaves the old head and no new entries; a
// crash after 2 leaves a head whose batch the store may lack, which Open
// re-applies. If 3 fails without a crash, commit checks whether the batch
// made it to the store anyway, and if not, puts the old head back so the
// error means "not appended"; if even that fails, the Log refuses further
// appends (ErrNeedsReopen) and leaves the decision to Open.
func (l *Log) commit(batch []*request) {
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	reply := func(r *request, e Entry, err error) { r.res <- result{e, err} }
	if l.failed != nil {
		for _, r := range batch {
			reply(r, Entry{}, fmt.Errorf("%w (%v)", ErrNeedsReopen, l.failed))
		}
		return
	}
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			reply(r, Entry{}, err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	old := l.head.Load()
	nh := &head{seq: old.seq, hash: old.hash, recs: make([]record, 0, len(live))}
	for _, r := range live {
		nh.seq++
		rec := newRecord(nh.seq, l.now().UTC().UnixNano(), r.kind, r.actor, r.data, nh.hash)
		nh.hash = rec.hash
		nh.recs = append(nh.recs, rec)
	}
	fail := func(err error) {
		l.failed = err
		l.log.Error("audit: append interrupted; the log refuses appends until it is reopened",
			"from_seq", nh.recs[0].seq, "to_seq", nh.seq, "err", err)
		for _, r := range live {
			reply(r, Entry{}, fmt.Errorf("%w (%v)", ErrNeedsReopen, err))
		}
	}
	replyAll := func(err error) {
		for _, r := range live {
			reply(r, Entry{}, err)
		}
	}

	if err := runHook(l.hook, phaseAppend+stepBegin); err != nil {
		fail(err)
		return
	}
	if replaced, err := writeHead(l.headPath, l.aead, nh, l.hook, phaseAppend); err != nil {
		if errors.Is(err, errCrash) {
			fail(err)
			return
		}
		// After the rename the new head may be on disk: put the old one
		// back.
		if replaced {
			if rerr := l.rollback(old); rerr != nil {
				fail(fmt.Errorf("%v; restoring the previous head: %w", err, rerr))
				return
			}
		}
		replyAll(fmt.Errorf("audit: append: %w", err))
		return
	}
	err := runHook(l.hook, phaseAppend+stepHeadDurable)
	if errors.Is(err, errCrash) {
		fail(err)
		return
	}
	if err == nil { // a non-crash hook error stands for a failed commit
		err = l.st.Update(context.Background(), func(tx *store.Txn) error { return setAll(tx, nh.recs) })
		if herr := runHook(l.hook, phaseAppend+stepStoreCommitted); herr != nil {
			if errors.Is(herr, errCrash) {
				fail(herr)
				return
			}
			err = herr
		}
	}
	if err != nil {
		present, cerr := l.batchPresent(nh)
		switch {
		case cerr != nil:
			fail(fmt.Errorf("%v; checking the store: %w", err, cerr))
			return
		case present:
			err = nil // committed after all
		default:
			if rerr := l.rollback(old); rerr != nil {
				fail(fmt.Errorf("%v; restoring the previous head: %w", err, rerr))
				return
			}
			replyAll(fmt.Errorf("audit: append: %w", err))
			return
		}
	}
	l.head.Store(nh)
	for i, r := range live {
		reply(r, nh.recs[i].entry(), nil)
	}
}

// rollback puts the previous head back after a failed store commit.
func (l *Log) rollback(old *head) error {
	_, err := writeHead(l.headPath, l.aead, old, l.hook, phaseRollback)
	return err
}

// batchPresent reports whether the store holds the batch's last entry,
// byte for byte (the batch is one transaction: all or nothing).
func (l *Log) batchPresent(h *head) (bool, error) {
	last := &h.recs[len(h.recs)-1]
	var present bool
	err := l.st.View(context.Background(), func(tx *store.Txn) error {
		v, err := tx.Get(entryKey(last.seq))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		present = string(v) == string(last.value)
		return nil
	})
	return present, err
}

func (l *Log) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// Head returns the sequence number and hex hash of the last entry (0 and
// 64 zeros for an empty log).
func (l *Log) Head() (uint64, string) {
	h := l.head.Load()
	return h.seq, fmt.Sprintf("%x", h.hash)
}

// rangeChunk is how many entries Range reads per store transaction.
const rangeChunk = 256

// Range calls fn for every entry from sequence number from (0 or 1: the
// first) up to the last entry appended when Range was called, oldest
// first. It stops at the first error fn returns and returns it. Each entry
// is checked on the way (its hash, its sequence number and its link to the
// previous one); a bad or missing entry ends Range with an error wrapping
// ErrTampered. Comparing the end with the sealed head is Verify's job. fn
// runs outside any lock or transaction and may call Append.
func (l *Log) Range(ctx context.Context, from uint64, fn func(Entry) error) error {
	if l.isClosed() {
		return ErrClosed
	}
	end := l.head.Load().seq
	if from == 0 {
		from = 1
	}
	if from > end {
		return nil
	}
	// prev is the hash the next entry must link to.
	var prev [hashSize]byte
	if from > 1 {
		// Read the predecessor so the first entry's link is checked too.
		if err := l.st.View(ctx, func(tx *store.Txn) error {
			r, err := getRecord(tx, from-1)
			prev = r.hash
			return err
		}); err != nil {
			return err
		}
	}
	recs := make([]record, 0, min(rangeChunk, end-from+1))
	for seq := from; seq <= end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		stop := min(end, seq+rangeChunk-1)
		recs = recs[:0]
		if err := l.st.View(ctx, func(tx *store.Txn) error {
			for s := seq; s <= stop; s++ {
				r, err := getRecord(tx, s)
				if err != nil {
					return err
				}
				recs = append(recs, r)
			}
			return nil
		}); err != nil {
			return err
		}
		for i := range recs {
			if recs[i].prev != prev {
				return fmt.Errorf("%w: entry %d does not link to entry %d", ErrTampered, recs[i].seq, recs[i].seq-1)
			}
			prev = recs[i].hash
			if err := fn(recs[i].entry()); err != nil {
				return err
			}
		}
		seq = stop + 1
	}
	return nil
}

// getRecord reads and checks entry seq (structure, sequence number, own
// hash).
func getRecord(tx *store.Txn, seq uint64) (record, error) {
	v, err := tx.Get(entryKey(seq))
	if errors.Is(err, store.ErrNotFound) {
		return record{}, fmt.Errorf("%w: entry %d is missing", ErrTampered, seq)
	}
	if err != nil {
		return record{}, fmt.Errorf("audit: read entry %d: %w", seq, err)
	}
	r, err := decodeRecord(v)
	if err != nil {
		return record{}, fmt.Errorf("%w: entry %d: %w", ErrTampered, seq, err)
	}
	if r.seq != seq {
		return record{}, fmt.Errorf("%w: entry %d is stored under sequence number %d", ErrTampered, r.seq, seq)
	}
	if !r.hashOK() {
		return record{}, fmt.Errorf("%w: entry %d does not match its hash", ErrTampered, seq)
	}
	return r, nil
}

// Tail returns the last n entries, oldest first (fewer if the log is
// shorter; none for n <= 0). Entries are checked as by Range.
func (l *Log) Tail(ctx context.Context, n int) ([]Entry, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	if n <= 0 {
		return nil, nil
	}
	end := l.head.Load().seq
	if end == 0 {
		return nil, nil
	}
	from := uint64(1)
	if uint64(n) < end {
		from = end - uint64(n) + 1
	}
	out := make([]Entry, 0, end-from+1)
	err := l.Range(ctx, from, func(e Entry) error {
		if e.Seq > end {
			return errStopRange
		}
		out = append(out, e)
		return nil
	})
	if err != nil && !errors.Is(err, errStopRange) {
		return nil, err
	}
	return out, nil
}

var errStopRange = errors.New("stop")
