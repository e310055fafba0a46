package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configures a Store. Start from DefaultOptions.
type Options struct {
	// EncryptionKey is the 32-byte AES key for encryption at rest. Required.
	EncryptionKey []byte
	// SyncWrites makes every committed Update durable before it returns.
	SyncWrites bool
	// MustExist makes Open fail with ErrNotInitialised instead of creating
	// a new store (every command but `custody init` sets it).
	MustExist bool
	// ReadOnly opens the store without taking the write lock.
	ReadOnly bool
	// Sizes, in bytes. Badger panics with encryption on and no block cache,
	// so both caches must be non-zero.
	MemTableSize   int64
	BlockCacheSize int64
	IndexCacheSize int64
	VLogFileSize   int64
	// TableSize, when set, is the size of every table compactions build,
	// at every level below L0 (whose tables are a memtable's). Zero keeps Badger's: 2 MiB tables doubling per level
	// below the base. Each table being built holds its blocks twice (plain
	// and encrypted) in a pooled buffer that keeps its largest size, so on
	// a store of millions of keys the deep levels' large tables were the
	// largest single item of the heap.
	TableSize     int64
	NumCompactors int
	// ValueThreshold: values at least this large live in the value log.
	ValueThreshold int64
	// ConflictRetries is how often Update retries a transaction that lost a
	// race before returning ErrConflict.
	ConflictRetries int
	// Pipelined opens the store with timestamps managed here instead of by
	// Badger, which lets one writer build its next transaction while the
	// previous one is being written (Begin, CommitAsync, overlays). There is
	// no conflict detection: every key family must have a single writer.
	// Readers always see a prefix of commits (a watermark), never a gap.
	Pipelined bool
	// Watch and OnCommit keep a cache of some key families exact (a
	// pipelined store only): after every commit that wrote keys under a
	// Watch prefix, OnCommit gets their final values (Change.Deleted: the
	// key was deleted) and the commit's timestamp, in commit order, and
	// before the commit becomes visible: a reader whose ReadTS is at least
	// ts finds the cache already changed (the cache may be newer than a
	// reader's snapshot; Settle orders the other way). It runs under the
	// store's commit lock, blocking Begin and CommitAsync meanwhile, so it
	// must be quick and must not call the store.
	Watch    []Prefix
	OnCommit func(ts uint64, changes []Change)
	Logger   *slog.Logger
}

// Change is the final state of one watched key after a commit.
type Change struct {
	Key     []byte
	Value   []byte // nil when Deleted
	Deleted bool
}

// DefaultOptions are sized for one node with 2 cores and ~24 GiB of memory:
// memtables and caches take a few hundred MiB, leaving the rest to the page
// cache and the rest of the process.
func DefaultOptions() Options {
	return Options{
		SyncWrites:      true,
		MemTableSize:    64 << 20,
		BlockCacheSize:  256 << 20,
		IndexCacheSize:  128 << 20,
		VLogFileSize:    256 << 20,
		ValueThreshold:  256,
		NumCompactors:   2,
		ConflictRetries: 8,
	}
}

// Store is an open Badger database with Custody's keyspace.
type Store struct {
	db     *badger.DB
	opts   Options
	log    *slog.Logger
	schema int // version found at Open (0: a new store, SchemaVersion)

	// Pipelined mode: commit timestamps and the read watermark.
	mu        sync.Mutex
	next      uint64          // last assigned commit ts
	committed atomic.Uint64   // every commit <= this is durable and visible
	done      map[uint64]bool // finished commits above committed
	failed    error           // first failed commit: the store refuses writes
	// changes are the watched keys of finished commits above committed,
	// handed to OnCommit as committed passes them.
	changes map[uint64][]Change
	// moved is signalled (under mu) whenever committed moves.
	moved sync.Cond
	// beforeFinish, set by tests only, runs in a commit's callback before
	// the commit is recorded as finished.
	beforeFinish func(ts uint64)
}

// Open opens (or, unless opts.MustExist, creates) the store in dir.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(opts.EncryptionKey) != 32 {
		return nil, fmt.Errorf("open store: encryption key must be 32 bytes, got %d", len(opts.EncryptionKey))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConflictRetries <= 0 {
		opts.ConflictRetries = 1
	}
	if len(opts.Watch) > 0 && (!opts.Pipelined || opts.OnCommit == nil) {
		return nil, errors.New("open store: Watch needs a pipelined store and OnCommit")
	}
	exists := dirHasStore(dir)
	if opts.MustExist && !exists {
		return nil, fmt.Errorf("open store %s: %w", dir, ErrNotInitialised)
	}
	if !exists {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	bo := badger.DefaultOptions(dir).
		WithEncryptionKey(opts.EncryptionKey).
		WithEncryptionKeyRotationDuration(30 * 24 * time.Hour).
		WithSyncWrites(opts.SyncWrites).
		WithReadOnly(opts.ReadOnly).
		WithMemTableSize(opts.MemTableSize).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueLogFileSize(opts.VLogFileSize).
		WithNumCompactors(max(opts.NumCompactors, 2)).
		WithNumVersionsToKeep(1).
		// Sealed events (~1 KB) go to the value log, the LSM tree keeps
		// pointers: compactions then move keys, not payloads (WiscKey).
		WithValueThreshold(opts.ValueThreshold).
		// Values are sealed (random bytes) before they reach the store:
		// compressing them costs CPU and memory and saves nothing.
		WithCompression(options.None).
		WithDetectConflicts(!opts.Pipelined).
		WithLogger(badgerLogger{opts.Logger}).
		WithMetricsEnabled(false)
	if opts.TableSize > 0 {
		bo.BaseTableSize, bo.TableSizeMultiplier = opts.TableSize, 1
	}
	open := badger.Open
	if opts.Pipelined {
		open = badger.OpenManaged
	}
	db, err := open(bo)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, translateOpen(err))
	}
	s := &Store{db: db, opts: opts, log: opts.Logger, done: map[uint64]bool{}, changes: map[uint64][]Change{}}
	s.moved.L = &s.mu
	if opts.Pipelined {
		s.next = db.MaxVersion()
		s.committed.Store(s.next)
		db.SetDiscardTs(s.next)
	}
	if err := s.checkSchema(ctx, exists); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func dirHasStore(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "MANIFEST"))
	return err == nil
}

func translateOpen(err error) error {
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return ErrWrongKey
	case strings.Contains(err.Error(), "Cannot acquire directory lock"):
		return ErrLocked
	}
	return err
}

func (s *Store) checkSchema(ctx context.Context, existed bool) error {
	var v []byte
	err := s.View(ctx, func(tx *Txn) error {
		var err error
		v, err = tx.Get(keySchema)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		if existed {
			return fmt.Errorf("open store: schema version key missing: %w", ErrSchemaVersion)
		}
		if s.opts.ReadOnly {
			return nil
		}
		return s.Update(ctx, func(tx *Txn) error {
			if err := tx.Set(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
			return tx.Set(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339)))
		})
	case err != nil:
		return fmt.Errorf("open store: read schema version: %w", translate(err))
	}
	got, err := strconv.Atoi(string(v))
	if err != nil || got < MinSchemaVersion || got > SchemaVersion {
		return fmt.Errorf("open store: found schema version %q, this build reads %d to %d: %w", v, MinSchemaVersion, SchemaVersion, ErrSchemaVersion)
	}
	s.schema = got
	return nil
}

// Schema is the store's schema version: SchemaVersion, or an older one the
// caller must upgrade (and then record with SetSchema).
func (s *Store) Schema() int {
	if s.schema == 0 {
		return SchemaVersion
	}
	return s.schema
}

// SetSchema records that the store's records are now of schema version v.
func (s *Store) SetSchema(ctx context.Context, v int) error {
	if v < MinSchemaVersion || v > SchemaVersion {
		return fmt.Errorf("set schema version %d: %w", v, ErrSchemaVersion)
	}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.Set(keySchema, []byte(strconv.Itoa(v))) }); err != nil {
		return fmt.Errorf("set schema version %d: %w", v, err)
	}
	s.schema = v
	return nil
}

// Close flushes and closes the store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", translate(err))
	}
	return nil
}

// Sync forces everything written so far to disk.
func (s *Store) Sync() error { return translate(s.db.Sync()) }

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(tx *Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.opts.Pipelined {
		txn := s.db.NewTransactionAt(s.committed.Load(), false)
		defer txn.Discard()
		return translate(fn(&Txn{txn: txn, ctx: ctx}))
	}
	return translate(s.db.View(func(txn *badger.Txn) error {
		return fn(&Txn{txn: txn, ctx: ctx})
	}))
}

// Update runs fn in a read-write transaction and commits it, retrying when
// it lost a race with a concurrent transaction. fn must be safe to run more
// than once. With SyncWrites on, the commit is durable when Update returns.
// Pipelined, it returns once the commit is visible too: a View that begins
// after it reads what it wrote, even while an earlier commit (an ingest
// group) was still being written when this one finished.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) error {
	if s.opts.Pipelined {
		tx, err := s.Begin(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.Discard()
			return translate(err)
		}
		errc := make(chan error, 1)
		ts, err := tx.commitAsync(func(err error) { errc <- err })
		if err != nil {
			return err
		}
		if err := <-errc; err != nil {
			return err
		}
		s.mu.Lock()
		for s.committed.Load() < ts {
			s.moved.Wait()
		}
		s.mu.Unlock()
		return nil
	}
	var err error
	for attempt := 0; attempt < s.opts.ConflictRetries; attempt++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		err = translate(s.db.Update(func(txn *badger.Txn) error {
			return fn(&Txn{txn: txn, ctx: ctx})
		}))
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return err
}

// ErrFailed is returned by a pipelined store after a commit failed: what
// was built on top of it cannot be trusted, so the store refuses writes
// until it is reopened.
var ErrFailed = errors.New("store: a commit failed; writes are refused until restart")

// Overlay is the writes of a transaction that is committing but not yet
// visible; a pipelined transaction built on top of it reads through it.
type Overlay map[string][]byte

// tombstone marks a deletion in an Overlay.
var tombstone = []byte("\x00custody-tombstone\x00")

// Begin starts a pipelined write transaction that reads the committed
// state plus overlay (the writes of the commit still in flight, if any).
func (s *Store) Begin(ctx context.Context, overlay Overlay) (*Txn, error) {
	if !s.opts.Pipelined {
		return nil, errors.New("store: Begin needs a pipelined store")
	}
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if failed != nil {
		return nil, fmt.Errorf("%w: %v", ErrFailed, failed)
	}
	// Groups are alike: sized like the previous one (the overlay), the
	// map of writes rarely grows, and rehashing it was ~3% of ingestion.
	return &Txn{txn: s.db.NewTransactionAt(s.committed.Load(), true), ctx: ctx, store: s,
		overlay: overlay, writes: make(Overlay, len(overlay))}, nil
}

// ReadTS is the commit timestamp the transaction reads at: it sees every
// commit at or below it.
func (t *Txn) ReadTS() uint64 { return t.txn.ReadTs() }

// Horizon is a commit timestamp at or above every commit that has finished
// (called back from CommitAsync, or returned from Update): a transaction
// whose ReadTS is at least Horizon sees all of them. A cache filled from a
// read can tell by it whether a change it was told about meanwhile may be
// missing from that read. 0 in a store that is not pipelined, where every
// later read sees a finished commit.
func (s *Store) Horizon() uint64 {
	if !s.opts.Pipelined {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Pending reports whether key was written (not deleted) by this
// transaction or the commit in flight under it: state no filter built from
// committed data knows yet.
func (t *Txn) Pending(key []byte) bool {
	for _, o := range []Overlay{t.writes, t.overlay} {
		if v, ok := o[string(key)]; ok {
			return !isTombstone(v)
		}
	}
	return false
}

// Writes returns what the transaction wrote, to be the next one's overlay.
func (t *Txn) Writes() Overlay { return t.writes }

// Discard abandons the transaction.
func (t *Txn) Discard() { t.txn.Discard() }

// CommitAsync assigns the next commit timestamp and hands the transaction
// to Badger; cb runs once it is durable (or failed). Commits are written in
// the order CommitAsync is called, and readers see them only when every
// earlier one has finished too.
func (t *Txn) CommitAsync(cb func(error)) error {
	_, err := t.commitAsync(cb)
	return err
}

// commitAsync is CommitAsync, returning the commit's timestamp.
func (t *Txn) commitAsync(cb func(error)) (uint64, error) {
	s := t.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		t.txn.Discard()
		return 0, fmt.Errorf("%w: %v", ErrFailed, s.failed)
	}
	s.next++
	ts := s.next
	changes := t.watchedChanges()
	return ts, translate(t.txn.CommitAt(ts, func(err error) {
		if s.beforeFinish != nil {
			s.beforeFinish(ts)
		}
		s.finish(ts, err, changes)
		cb(translate(err))
	}))
}

// watchedChanges returns the final state of the watched keys the
// transaction wrote, each once, in the order first written.
func (t *Txn) watchedChanges() []Change {
	if len(t.watched) == 0 {
		return nil
	}
	out := make([]Change, 0, len(t.watched))
	for _, k := range t.watched {
		v := t.writes[k]
		if isTombstone(v) {
			out = append(out, Change{Key: []byte(k), Deleted: true})
		} else {
			out = append(out, Change{Key: []byte(k), Value: v})
		}
	}
	return out
}

// watch notes that the transaction is writing key, if it is watched
// (before the write enters t.writes).
func (t *Txn) watch(key []byte) {
	if t.isWatched(key) {
		if _, seen := t.writes[string(key)]; !seen {
			t.watched = append(t.watched, string(key))
		}
	}
}

func (t *Txn) isWatched(key []byte) bool {
	if t.store == nil || t.writes == nil {
		return false
	}
	for _, p := range t.store.opts.Watch {
		if len(key) >= len(p) && string(key[:len(p)]) == string(p) {
			return true
		}
	}
	return false
}

// Settle returns once every change reported to OnCommit so far is
// visible: a transaction begun after it reads at or after all of them.
// (Reports come before their commit is visible, in the same critical
// section that makes it visible.)
func (s *Store) Settle() {
	s.mu.Lock()
	defer s.mu.Unlock()
}

// finish records that commit ts finished, with its watched changes, and
// moves the watermark past every commit finished without a gap, handing
// their changes to OnCommit first, in order.
func (s *Store) finish(ts uint64, err error, changes []Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.failed == nil {
		s.failed = err
		s.log.Error("store commit failed; refusing writes until restart", "err", err)
	}
	s.done[ts] = true
	if err == nil && len(changes) > 0 {
		s.changes[ts] = changes
	}
	c := s.committed.Load()
	for s.done[c+1] {
		delete(s.done, c+1)
		c++
		if ch, ok := s.changes[c]; ok {
			delete(s.changes, c)
			s.opts.OnCommit(c, ch)
		}
	}
	if c != s.committed.Load() {
		s.committed.Store(c)
		s.moved.Broadcast()
	}
	// Older versions may be dropped by compaction: with NumVersionsToKeep 1
	// a deleted or overwritten value does not outlive the next compaction.
	s.db.SetDiscardTs(c)
}

// Txn is a transaction. Values returned by Get and passed to Scan callbacks
// are copies the caller may keep. A read transaction (View) may serve Get,
// Has and Scan from several goroutines at once (Badger records no reads
// for it); a write transaction (Update) may not: it tracks its reads and,
// pipelined, its overlay.
type Txn struct {
	txn   *badger.Txn
	ctx   context.Context
	store *Store
	// Pipelined write transactions: what they read through, what they wrote.
	overlay Overlay
	writes  Overlay
	watched []string // keys under Options.Watch written, in first-write order
}

// Get returns the value of key, or ErrNotFound.
func (t *Txn) Get(key []byte) ([]byte, error) {
	if t.writes != nil {
		if v, ok := t.writes[string(key)]; ok {
			if isTombstone(v) {
				return nil, ErrNotFound
			}
			return append([]byte(nil), v...), nil
		}
		if v, ok := t.overlay[string(key)]; ok {
			if isTombstone(v) {
				return nil, ErrNotFound
			}
			return append([]byte(nil), v...), nil
		}
	}
	it, err := t.txn.Get(key)
	if err != nil {
		return nil, translate(err)
	}
	v, err := it.ValueCopy(nil)
	return v, translate(err)
}

func isTombstone(v []byte) bool { return len(v) == len(tombstone) && string(v) == string(tombstone) }

// Has reports whether key exists.
func (t *Txn) Has(key []byte) (bool, error) {
	if t.writes != nil {
		_, err := t.Get(key)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	_, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, translate(err)
}

// Set writes key = val. The store keeps references to both until commit:
// do not modify them afterwards.
func (t *Txn) Set(key, val []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if t.writes != nil {
		t.watch(key)
		t.writes[string(key)] = val
	}
	return translate(t.txn.Set(key, val))
}

// SetUnread writes key = val like Set, for a key the pipelined writer
// never reads back (events): it is left out of the overlay, which saves a
// map insert per write on the hot path.
func (t *Txn) SetUnread(key, val []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if t.isWatched(key) {
		return t.Set(key, val) // a watcher needs it
	}
	return translate(t.txn.Set(key, val))
}

// SetWithTTL writes key = val, expiring after ttl.
func (t *Txn) SetWithTTL(key, val []byte, ttl time.Duration) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if t.writes != nil {
		t.watch(key)
		t.writes[string(key)] = val
	}
	return translate(t.txn.SetEntry(badger.NewEntry(key, val).WithTTL(ttl)))
}

// Delete removes key.
func (t *Txn) Delete(key []byte) error {
	if t.writes != nil {
		t.watch(key)
		t.writes[string(key)] = tombstone
	}
	return translate(t.txn.Delete(key))
}

// ScanOptions tune Scan.
type ScanOptions struct {
	// KeysOnly skips reading values (fn gets a nil value).
	KeysOnly bool
	// Reverse walks from the last key of the prefix to the first.
	Reverse bool
	// Limit stops after this many keys (0: no limit).
	Limit int
	// From starts a forward scan at this key (within the prefix) instead
	// of the prefix's first key.
	From []byte
	// Borrow passes fn the iterator's own key and value, valid only until
	// fn returns, instead of copies: for a scan over every person whose
	// callback decodes what it keeps, the two copies per key were most of
	// its garbage.
	Borrow bool
}

// ErrStopScan may be returned by a Scan callback to end the scan early
// without error.
var ErrStopScan = errors.New("store: stop scan")

// Scan calls fn for every key with the given prefix, in key order. It checks
// the context every 1024 keys so long scans can be cancelled.
func (t *Txn) Scan(prefix []byte, so ScanOptions, fn func(key, val []byte) error) error {
	if len(t.overlay) > 0 {
		// Iterators do not see an overlay; the pipelined writer must not
		// scan while a commit is in flight.
		return errors.New("store: scan in a transaction with an overlay")
	}
	io := badger.DefaultIteratorOptions
	io.Prefix = prefix
	// Prefetching copies every value; a borrowing scan reads each in place.
	io.PrefetchValues = !so.KeysOnly && !so.Borrow
	io.Reverse = so.Reverse
	it := t.txn.NewIterator(io)
	defer it.Close()
	start := prefix
	if len(so.From) > 0 && bytes.HasPrefix(so.From, prefix) {
		start = so.From
	}
	if so.Reverse {
		start = append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff)
	}
	n := 0
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		if n%1024 == 0 {
			if err := t.ctx.Err(); err != nil {
				return err
			}
		}
		item := it.Item()
		var err error
		switch {
		case so.Borrow && so.KeysOnly:
			err = fn(item.Key(), nil)
		case so.Borrow:
			if verr := item.Value(func(v []byte) error {
				err = fn(item.Key(), v)
				return nil
			}); verr != nil {
				return translate(verr)
			}
		default:
			key := item.KeyCopy(nil)
			var val []byte
			if !so.KeysOnly {
				v, verr := item.ValueCopy(nil)
				if verr != nil {
					return translate(verr)
				}
				val = v
			}
			err = fn(key, val)
		}
		if err != nil {
			if errors.Is(err, ErrStopScan) {
				return nil
			}
			return err
		}
		n++
		if so.Limit > 0 && n >= so.Limit {
			return nil
		}
	}
	return nil
}

func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	case errors.Is(err, badger.ErrConflict):
		return ErrConflict
	case errors.Is(err, badger.ErrTxnTooBig):
		return ErrTxnTooBig
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, badger.ErrEmptyKey):
		return ErrEmptyKey
	}
	return err
}

// badgerLogger sends Badger's log lines to slog. Badger logs file names
// and sizes, never keys or values.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {}

// Stats is the shape of the LSM tree and how its two caches serve reads:
// what an operator sizes block_cache_mib and index_cache_mib by. With
// encryption at rest, a table's index (block offsets and bloom filter)
// lives only in the index cache: a read that misses it reads and decrypts
// the whole index again, so IndexBytes above the index cache's size turns
// point reads into allocations of tens of KiB each.
type Stats struct {
	Tables      int    `json:"tables"`
	Keys        uint64 `json:"keys"`        // in tables, every version
	TableBytes  uint64 `json:"table_bytes"` // on disk
	IndexBytes  uint64 `json:"index_bytes"` // every table's index, bloom filters included
	BloomBytes  uint64 `json:"bloom_bytes"`
	BlockHits   uint64 `json:"block_cache_hits"`
	BlockMisses uint64 `json:"block_cache_misses"`
	IndexHits   uint64 `json:"index_cache_hits"`
	IndexMisses uint64 `json:"index_cache_misses"`
	// Backlog is how many levels are over their target size (L0: over its
	// table count) and wait for compaction; 0 once compactions caught up.
	// After a bulk load it stays above 0 for minutes, and the compactions
	// take CPU and allocate while it does.
	Backlog int `json:"compaction_backlog"`
}

// Stats reads the tree's shape and the caches' counters since Open.
func (s *Store) Stats() Stats {
	var st Stats
	for _, t := range s.db.Tables() {
		st.Tables++
		st.Keys += uint64(t.KeyCount)
		st.TableBytes += uint64(t.OnDiskSize)
		st.IndexBytes += uint64(t.IndexSz)
		st.BloomBytes += uint64(t.BloomFilterSize)
	}
	for _, l := range s.db.Levels() {
		if l.Score >= 1 {
			st.Backlog++
		}
	}
	if m := s.db.BlockCacheMetrics(); m != nil {
		st.BlockHits, st.BlockMisses = m.Hits(), m.Misses()
	}
	if m := s.db.IndexCacheMetrics(); m != nil {
		st.IndexHits, st.IndexMisses = m.Hits(), m.Misses()
	}
	return st
}
