package keys

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/custody-cdp/custody/core/store"
)

// DeksDir is the name of the wrapped-DEK store inside the vault directory.
const DeksDir = "deks"

// DefaultCacheSize is the default number of unwrapped DEKs kept in memory.
const DefaultCacheSize = 200_000

// SealFormatV1 is the first byte of every value produced by Seal.
const SealFormatV1 byte = 0x01

// SealOverhead is how many bytes Seal adds to the plaintext.
const SealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

const (
	dekPrefix  = "d/"
	tombPrefix = "t/"
	// wrapped DEK: epoch(4, big-endian) || nonce(24) || AEAD(32-byte DEK)
	wrappedHeader = 4 + chacha20poly1305.NonceSizeX
	wrappedLen    = wrappedHeader + chacha20poly1305.KeySize + chacha20poly1305.Overhead
	// rewrapBatch is how many DEKs Rotate re-wraps per transaction.
	rewrapBatch = 2000
	// rewrapSegment is how many stale keys one scan collects (18 bytes
	// each) before they are re-wrapped and the scan starts over.
	rewrapSegment = 1 << 20
)

// Options configures a Vault. Start from DefaultOptions.
type Options struct {
	// Master is the master key. Required.
	Master *Master
	// Logger receives operational messages (never keys, never plaintext,
	// never profile ids). Nil discards.
	Logger *slog.Logger
	// CacheSize is how many DEKs are kept unwrapped in memory
	// (DefaultCacheSize if <= 0).
	CacheSize int
	// StoreOptions configures the deks/ store. EncryptionKey is ignored
	// and replaced by the master's PurposeVaultStore subkey; zero sizes
	// and retries take DefaultOptions' values (SyncWrites is used as
	// given: keep it on). MemTableSize must be at least 7 MiB (Badger
	// needs 15% of it to hold a 1 MiB value). With MustExist (or
	// ReadOnly) set, Open does not create a new vault.
	StoreOptions store.Options
	// Now is the clock used for keyring timestamps (time.Now if nil).
	Now func() time.Time
}

// DefaultOptions returns options sized for the vault: its store holds one
// ~100-byte entry per profile, so memtables and caches are smaller than the
// data store's.
func DefaultOptions() Options {
	so := store.DefaultOptions()
	so.MemTableSize = 16 << 20
	so.BlockCacheSize = 32 << 20
	so.IndexCacheSize = 16 << 20
	so.VLogFileSize = 64 << 20
	return Options{CacheSize: DefaultCacheSize, StoreOptions: so, Now: time.Now}
}

// Vault holds the KEK keyring and the wrapped per-profile DEKs. It is safe
// for concurrent use.
type Vault struct {
	dir     string
	keyring string // path of keyring.json
	log     *slog.Logger
	now     func() time.Time
	db      *store.Store
	ring    cipher.AEAD // seals KEKs in keyring.json
	fp      string      // master fingerprint

	state atomic.Pointer[keyState]
	cache *aeadCache

	// wrapMu is read-locked by CreateDEKs for the whole transaction and
	// write-locked by Rotate while it switches the current epoch, so that
	// no DEK wrapped under the old epoch can commit after Rotate has
	// started scanning.
	wrapMu sync.RWMutex
	// rotMu serialises Rotate.
	rotMu sync.Mutex
	// shredMu serialises Shred with Rotate's re-wrap transactions. Both
	// read and rewrite the same d/ keys; without it a stream of erasures
	// during a rotation makes re-wrap batches lose their conflict checks
	// over and over. Shred waits at most one re-wrap batch.
	shredMu sync.Mutex
	// segment overrides rewrapSegment (tests).
	segment int

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// ShredReport is the result of Shred. It holds nothing personal.
type ShredReport struct {
	// Count is the number of DEKs destroyed (pids that had none are not
	// counted).
	Count int
	// Fingerprints are short hex hashes (SHA-256, first 8 bytes) of each
	// destroyed wrapped DEK, for the audit trail. They are not the key and
	// reveal nothing about it.
	Fingerprints []string
}

// RotateReport is the result of Rotate.
type RotateReport struct {
	FromEpoch uint32
	ToEpoch   uint32
	Rewrapped int
	Retired   []uint32
	// Orphaned counts wrapped DEKs found under epochs that are no longer
	// in the keyring (e.g. restored from an old backup of deks/); they
	// cannot be opened and were left as they are.
	Orphaned int
	Duration time.Duration
}

// EpochInfo describes a live KEK epoch.
type EpochInfo struct {
	Epoch     uint32    `json:"epoch"`
	CreatedAt time.Time `json:"created_at"`
}

// RetiredEpoch is a KEK epoch whose key was destroyed by Rotate.
type RetiredEpoch struct {
	Epoch     uint32    `json:"epoch"`
	RetiredAt time.Time `json:"retired_at"`
}

// Status describes the vault for the CLI and admin API.
type Status struct {
	// Epoch is the current KEK epoch; new DEKs are wrapped under it.
	Epoch          uint32
	EpochCreatedAt time.Time
	// LiveEpochs holds more than one entry while a rotation is unfinished
	// (RotationPending); call Rotate to finish it.
	LiveEpochs      []EpochInfo
	RotationPending bool
	Retired         []RetiredEpoch
	// LiveDEKs is the number of stored DEKs; DEKsByEpoch splits it by the
	// epoch they are wrapped under.
	LiveDEKs    int
	DEKsByEpoch map[uint32]int
	// Shredded is the number of shred tombstones.
	Shredded int
	// CachedDEKs is the number of DEKs currently unwrapped in memory.
	CachedDEKs        int
	MasterFingerprint string
}

// Open opens the vault in dir, or creates it (keyring with KEK epoch 1 and
// an empty deks/ store) unless opts.StoreOptions.MustExist is set.
//
// The keyring is read and every KEK opened before deks/ is touched: with the
// wrong master key Open returns ErrWrongMasterKey and changes nothing on disk.
func Open(ctx context.Context, dir string, opts Options) (*Vault, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Master == nil {
		return nil, fmt.Errorf("open vault %s: Options.Master is required: %w", dir, ErrBadMasterKey)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ringKey := opts.Master.Subkey(PurposeKeyring, chacha20poly1305.KeySize)
	ring, err := chacha20poly1305.NewX(ringKey)
	clear(ringKey)
	if err != nil {
		return nil, fmt.Errorf("open vault %s: %w", dir, err)
	}
	kpath := filepath.Join(dir, KeyringFile)
	dpath := filepath.Join(dir, DeksDir)

	created := false
	st, err := readKeyring(kpath, ring)
	switch {
	case err == nil:
	case isNotExist(err):
		if _, serr := os.Stat(dpath); serr == nil {
			return nil, fmt.Errorf("open vault %s: %s exists but %s is missing; restore it from a backup (without it no data key can be opened): %w",
				dir, DeksDir, KeyringFile, err)
		}
		if opts.StoreOptions.MustExist || opts.StoreOptions.ReadOnly {
			return nil, fmt.Errorf("open vault %s: %w", dir, store.ErrNotInitialised)
		}
		if st, err = createKeyring(dir, kpath, ring, opts.Now()); err != nil {
			return nil, fmt.Errorf("open vault %s: %w", dir, err)
		}
		created = true
	default:
		return nil, fmt.Errorf("open vault %s: %w", dir, err)
	}

	so := opts.StoreOptions
	def := DefaultOptions().StoreOptions
	for _, f := range []struct{ v, d *int64 }{
		{&so.MemTableSize, &def.MemTableSize}, {&so.BlockCacheSize, &def.BlockCacheSize},
		{&so.IndexCacheSize, &def.IndexCacheSize}, {&so.VLogFileSize, &def.VLogFileSize},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if so.ConflictRetries <= 0 {
		so.ConflictRetries = def.ConflictRetries
	}
	so.EncryptionKey = opts.Master.Subkey(PurposeVaultStore, 32)
	if so.Logger == nil {
		so.Logger = opts.Logger
	}
	db, err := store.Open(ctx, dpath, so)
	if err != nil {
		if errors.Is(err, store.ErrWrongKey) {
			return nil, fmt.Errorf("open vault %s: %w: %w", dir, ErrWrongMasterKey, err)
		}
		return nil, fmt.Errorf("open vault %s: %w", dir, err)
	}
	if !created {
		// Read the keyring again now that deks/ is locked by us: another
		// process may have rotated between the first read and the lock.
		if st, err = readKeyring(kpath, ring); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open vault %s: %w", dir, err)
		}
	}
	v := &Vault{
		dir:     dir,
		keyring: kpath,
		log:     opts.Logger,
		now:     opts.Now,
		db:      db,
		ring:    ring,
		fp:      opts.Master.Fingerprint(),
		cache:   newAEADCache(opts.CacheSize),
	}
	v.state.Store(st)
	v.log.Debug("key vault opened", "dir", dir, "created", created, "epoch", st.current,
		"master_fingerprint", v.fp)
	if len(st.keks) > 1 {
		v.log.Warn("key vault has an unfinished KEK rotation; run Rotate to finish it",
			"live_epochs", len(st.keks), "epoch", st.current)
	}
	return v, nil
}

func createKeyring(dir, kpath string, ring cipher.AEAD, now time.Time) (*keyState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rec, aead := newEpoch(ring, 1, now)
	f := keyringFile{Version: keyringVersion, Current: 1, Epochs: []epochRecord{rec}, Retired: []RetiredEpoch{}}
	if err := writeKeyring(kpath, f); err != nil {
		return nil, err
	}
	return &keyState{file: f, current: 1, keks: map[uint32]cipher.AEAD{1: aead}}, nil
}

// Close closes the deks/ store and drops every unwrapped key from memory.
// Later calls return the first result.
func (v *Vault) Close() error {
	v.closeOnce.Do(func() {
		v.closed.Store(true)
		v.cache.clear()
		if err := v.db.Close(); err != nil {
			v.closeErr = fmt.Errorf("close vault %s: %w", v.dir, err)
		}
	})
	return v.closeErr
}

// Epoch returns the current KEK epoch.
func (v *Vault) Epoch() uint32 { return v.state.Load().current }

func dekKey(pid uuid.UUID) []byte {
	k := make([]byte, 0, len(dekPrefix)+16)
	return append(append(k, dekPrefix...), pid[:]...)
}

func tombKey(pid uuid.UUID) []byte {
	k := make([]byte, 0, len(tombPrefix)+16)
	return append(append(k, tombPrefix...), pid[:]...)
}

// dekAD is the associated data of a wrapped DEK: "custody-dek/" followed by
// the 16 raw bytes of the profile id.
func dekAD(pid []byte) []byte {
	ad := make([]byte, 0, 12+16)
	return append(append(ad, "custody-dek/"...), pid...)
}

// wrapDEK wraps dek under the current epoch of st.
func wrapDEK(st *keyState, pid, dek []byte) []byte {
	out := make([]byte, wrappedHeader, wrappedLen)
	binary.BigEndian.PutUint32(out, st.current)
	nonce := out[4:wrappedHeader]
	_, _ = rand.Read(nonce)
	return st.keks[st.current].Seal(out, nonce, dek, dekAD(pid))
}

func wrappedEpoch(w []byte) (uint32, bool) {
	if len(w) != wrappedLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(w), true
}

// unwrapDEK opens a wrapped DEK with its epoch's KEK and returns the DEK's
// AEAD. The raw DEK is wiped before returning.
func unwrapDEK(kek cipher.AEAD, pid, w []byte) (cipher.AEAD, error) {
	dek, err := kek.Open(nil, w[4:wrappedHeader], w[wrappedHeader:], dekAD(pid))
	if err != nil {
		return nil, fmt.Errorf("wrapped data key does not authenticate: %w", ErrUnsealFailed)
	}
	defer clear(dek)
	return chacha20poly1305.NewX(dek)
}

// aead returns the DEK cipher for pid from the cache, or loads and unwraps it.
func (v *Vault) aead(ctx context.Context, pid uuid.UUID) (cipher.AEAD, error) {
	if v.closed.Load() {
		return nil, ErrVaultClosed
	}
	if a := v.cache.get(pid); a != nil {
		return a, nil
	}
	return v.load(ctx, pid)
}

func (v *Vault) load(ctx context.Context, pid uuid.UUID) (cipher.AEAD, error) {
	gen := v.cache.generation()
	key := dekKey(pid)
	for attempt := 0; ; attempt++ {
		st0 := v.state.Load()
		var w []byte
		shredded := false
		err := v.db.View(ctx, func(tx *store.Txn) error {
			var err error
			w, err = tx.Get(key)
			if errors.Is(err, store.ErrNotFound) {
				if shredded, err = tx.Has(tombKey(pid)); err != nil {
					return err
				}
				return store.ErrNotFound
			}
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound) && shredded:
			return nil, ErrKeyShredded
		case errors.Is(err, store.ErrNotFound):
			return nil, ErrDEKNotFound
		case errors.Is(err, store.ErrClosed):
			return nil, fmt.Errorf("%w: %w", ErrVaultClosed, err)
		case err != nil:
			return nil, fmt.Errorf("read data key: %w", err)
		}
		epoch, ok := wrappedEpoch(w)
		if !ok {
			return nil, fmt.Errorf("stored data key is malformed (%d bytes): %w", len(w), ErrUnsealFailed)
		}
		// The keyring may change while we read (Rotate): an epoch may
		// appear after st0 was loaded, or be retired after the read.
		st1 := v.state.Load()
		kek := st1.keks[epoch]
		if kek == nil {
			kek = st0.keks[epoch]
		}
		if kek == nil {
			if st0 != st1 && attempt < 3 {
				continue
			}
			return nil, fmt.Errorf("data key wrapped under KEK epoch %d: %w: %w", epoch, ErrKEKRetired, ErrKeyShredded)
		}
		a, err := unwrapDEK(kek, pid[:], w)
		if err != nil {
			return nil, fmt.Errorf("data key under KEK epoch %d: %w", epoch, err)
		}
		v.cache.putIfGen(pid, a, gen)
		return a, nil
	}
}

// CreateDEKs creates a random data key for every pid that has none, all in
// one transaction (one fsync for the batch; it is split only if the store
// reports the transaction too big). Pids that already have a key are left
// alone, and so are shredded pids: a shredded profile id never gets a key
// again, so data written for it later fails loudly with ErrKeyShredded.
// New keys are put in the cache, ready for Seal.
func (v *Vault) CreateDEKs(ctx context.Context, pids []uuid.UUID) error {
	if v.closed.Load() {
		return fmt.Errorf("create data keys: %w", ErrVaultClosed)
	}
	if len(pids) == 0 {
		return ctx.Err()
	}
	v.wrapMu.RLock()
	defer v.wrapMu.RUnlock()
	if err := v.createDEKs(ctx, v.state.Load(), pids); err != nil {
		return fmt.Errorf("create data keys for %d profiles: %w", len(pids), err)
	}
	return nil
}

type newDEK struct {
	pid  uuid.UUID
	aead cipher.AEAD
}

func (v *Vault) createDEKs(ctx context.Context, st *keyState, pids []uuid.UUID) error {
	gen := v.cache.generation()
	var made []newDEK
	err := v.db.Update(ctx, func(tx *store.Txn) error {
		made = made[:0]
		var dek [chacha20poly1305.KeySize]byte
		defer clear(dek[:])
		for i, pid := range pids {
			if i%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			k := dekKey(pid)
			if has, err := tx.Has(k); err != nil || has {
				if err != nil {
					return err
				}
				continue
			}
			if has, err := tx.Has(tombKey(pid)); err != nil || has {
				if err != nil {
					return err
				}
				continue
			}
			_, _ = rand.Read(dek[:])
			a, err := chacha20poly1305.NewX(dek[:])
			if err != nil {
				return err
			}
			if err := tx.Set(k, wrapDEK(st, pid[:], dek[:])); err != nil {
				return err
			}
			made = append(made, newDEK{pid, a})
		}
		return nil
	})
	if errors.Is(err, store.ErrTxnTooBig) && len(pids) > 1 {
		half := len(pids) / 2
		if err := v.createDEKs(ctx, st, pids[:half]); err != nil {
			return err
		}
		return v.createDEKs(ctx, st, pids[half:])
	}
	if err != nil {
		return err
	}
	for _, m := range made {
		v.cache.putIfGen(m.pid, m.aead, gen)
	}
	return nil
}

// Seal encrypts plaintext with the data key of profile pid. The result is
// SealFormatV1 || nonce(24) || XChaCha20-Poly1305 ciphertext+tag. ad must be
// the storage key the value will be written under: Unseal with any other ad
// fails, so a sealed value cannot be moved to another key or profile.
func (v *Vault) Seal(ctx context.Context, pid uuid.UUID, ad, plaintext []byte) ([]byte, error) {
	return v.SealTo(ctx, nil, pid, ad, plaintext)
}

// SealTo is Seal appending the result to dst (which may be nil), returning
// the extended slice. plaintext and ad must not overlap dst's spare capacity.
// On error dst is returned unchanged.
func (v *Vault) SealTo(ctx context.Context, dst []byte, pid uuid.UUID, ad, plaintext []byte) ([]byte, error) {
	a, err := v.aead(ctx, pid)
	if err != nil {
		return dst, fmt.Errorf("seal profile %s: %w", pid, err)
	}
	n := len(dst)
	dst = slices.Grow(dst, SealOverhead+len(plaintext))
	dst = dst[:n+1+chacha20poly1305.NonceSizeX]
	dst[n] = SealFormatV1
	nonce := dst[n+1:]
	_, _ = rand.Read(nonce)
	return a.Seal(dst, nonce, plaintext, ad), nil
}

// Unseal reverses Seal. A value that was tampered with, truncated, sealed
// for another profile or moved to another storage key (ad) fails with
// ErrUnsealFailed; a shredded profile gives ErrKeyShredded, a profile that
// never had a key ErrDEKNotFound.
func (v *Vault) Unseal(ctx context.Context, pid uuid.UUID, ad, sealed []byte) ([]byte, error) {
	return v.UnsealTo(ctx, nil, pid, ad, sealed)
}

// UnsealTo is Unseal appending the plaintext to dst. On error dst is returned
// unchanged (its spare capacity may have been overwritten).
func (v *Vault) UnsealTo(ctx context.Context, dst []byte, pid uuid.UUID, ad, sealed []byte) ([]byte, error) {
	a, err := v.aead(ctx, pid)
	if err != nil {
		return dst, fmt.Errorf("unseal profile %s: %w", pid, err)
	}
	if len(sealed) < SealOverhead {
		return dst, fmt.Errorf("unseal profile %s: value too short (%d bytes): %w", pid, len(sealed), ErrUnsealFailed)
	}
	if sealed[0] != SealFormatV1 {
		return dst, fmt.Errorf("unseal profile %s: unknown format version 0x%02x: %w", pid, sealed[0], ErrUnsealFailed)
	}
	out, err := a.Open(dst, sealed[1:1+chacha20poly1305.NonceSizeX], sealed[1+chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return dst, fmt.Errorf("unseal profile %s: %w", pid, ErrUnsealFailed)
	}
	return out, nil
}

// Shred destroys the data keys of pids: their wrapped DEKs are deleted from
// the vault, a tombstone t/<pid> (empty value) is written so that later
// Unseal reports ErrKeyShredded, and the keys are dropped from the cache.
// It runs in one transaction (split only if too big). Nothing personal is
// logged or returned.
//
// Deleting is not enough on its own: the store keeps older versions of
// deks/ entries on disk until compaction. Call Rotate afterwards to destroy
// the KEK those copies are wrapped under.
func (v *Vault) Shred(ctx context.Context, pids []uuid.UUID) (ShredReport, error) {
	var rep ShredReport
	if v.closed.Load() {
		return rep, fmt.Errorf("shred data keys: %w", ErrVaultClosed)
	}
	v.shredMu.Lock()
	err := v.shred(ctx, pids, &rep)
	v.shredMu.Unlock()
	if rep.Count > 0 {
		v.log.Info("shredded profile data keys", "count", rep.Count)
	}
	if err != nil {
		return rep, fmt.Errorf("shred data keys of %d profiles: %w", len(pids), err)
	}
	return rep, nil
}

func (v *Vault) shred(ctx context.Context, pids []uuid.UUID, rep *ShredReport) error {
	if len(pids) == 0 {
		return ctx.Err()
	}
	var fps []string
	err := v.db.Update(ctx, func(tx *store.Txn) error {
		fps = fps[:0]
		for i, pid := range pids {
			if i%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			k := dekKey(pid)
			w, err := tx.Get(k)
			switch {
			case err == nil:
				sum := sha256.Sum256(w)
				fps = append(fps, hex.EncodeToString(sum[:8]))
				if err := tx.Delete(k); err != nil {
					return err
				}
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			tk := tombKey(pid)
			has, err := tx.Has(tk)
			if err != nil {
				return err
			}
			if !has {
				if err := tx.Set(tk, []byte{}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrTxnTooBig) && len(pids) > 1 {
		half := len(pids) / 2
		if err := v.shred(ctx, pids[:half], rep); err != nil {
			return err
		}
		return v.shred(ctx, pids[half:], rep)
	}
	if err != nil {
		return err
	}
	// Committed: bump the cache generation first so that a concurrent
	// loader that read the key before the commit cannot re-insert it.
	v.cache.beginEvict()
	for _, pid := range pids {
		v.cache.remove(pid)
	}
	rep.Count += len(fps)
	rep.Fingerprints = append(rep.Fingerprints, fps...)
	return nil
}

// Rotate replaces the KEK: it creates epoch N+1 and makes it current (step
// 1, keyring written with both epochs), re-wraps every live DEK under it in
// batches (step 2), and only then destroys every older KEK, removing it from
// keyring.json and recording it under "retired" (step 3). Afterwards no copy
// of a DEK wrapped under a retired epoch (old store files, backups of deks/)
// can be unwrapped.
//
// Each step is durable before the next starts. If Rotate is interrupted
// (crash, cancelled ctx), Open still works with two live epochs and calling
// Rotate again finishes the job without creating another epoch.
// Seal, Unseal, CreateDEKs and Shred may run concurrently.
func (v *Vault) Rotate(ctx context.Context) (RotateReport, error) {
	var rep RotateReport
	if v.closed.Load() {
		return rep, fmt.Errorf("rotate KEK: %w", ErrVaultClosed)
	}
	v.rotMu.Lock()
	defer v.rotMu.Unlock()
	start := v.now()
	from, to, err := v.rotateBegin(ctx)
	if err != nil {
		return rep, fmt.Errorf("rotate KEK (step 1, new epoch): %w", err)
	}
	rep.FromEpoch, rep.ToEpoch = from, to
	v.log.Info("KEK rotation: re-wrapping data keys", "from_epoch", from, "to_epoch", to)
	rep.Rewrapped, rep.Orphaned, err = v.rewrapAll(ctx)
	if err != nil {
		return rep, fmt.Errorf("rotate KEK %d -> %d (step 2, re-wrap; %d done, run Rotate again to resume): %w",
			from, to, rep.Rewrapped, err)
	}
	if rep.Retired, err = v.retireOld(); err != nil {
		return rep, fmt.Errorf("rotate KEK %d -> %d (step 3, retire old epochs): %w", from, to, err)
	}
	rep.Duration = v.now().Sub(start)
	if rep.Orphaned > 0 {
		v.log.Warn("KEK rotation found data keys under epochs no longer in the keyring; they cannot be opened",
			"count", rep.Orphaned)
	}
	v.log.Info("KEK rotation done", "from_epoch", from, "to_epoch", to, "rewrapped", rep.Rewrapped,
		"retired", len(rep.Retired), "duration", rep.Duration)
	return rep, nil
}

// rotateBegin is step 1. If a rotation is unfinished (more than one live
// epoch) it only reports it.
func (v *Vault) rotateBegin(ctx context.Context) (from, to uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if st := v.state.Load(); len(st.keks) > 1 {
		return newestOlder(st), st.current, nil
	}
	v.wrapMu.Lock()
	defer v.wrapMu.Unlock()
	st := v.state.Load()
	next := st.current
	for _, e := range st.file.Epochs {
		next = max(next, e.Epoch)
	}
	for _, r := range st.file.Retired {
		next = max(next, r.Epoch)
	}
	next++
	rec, aead := newEpoch(v.ring, next, v.now())
	f := st.clone()
	f.Epochs = append(f.Epochs, rec)
	f.Current = next
	if err := writeKeyring(v.keyring, f); err != nil {
		return 0, 0, err
	}
	keks := maps.Clone(st.keks)
	keks[next] = aead
	v.state.Store(&keyState{file: f, current: next, keks: keks})
	return st.current, next, nil
}

func newestOlder(st *keyState) uint32 {
	var from uint32
	for e := range st.keks {
		if e != st.current {
			from = max(from, e)
		}
	}
	return from
}

// rewrapAll is step 2. Each round scans deks/ from the start in a short
// read transaction, collecting up to v.segment keys still wrapped under an
// older live epoch, then re-wraps them in batches of rewrapBatch, one
// transaction each. Rounds repeat until a full scan finds nothing left: that
// last scan is the proof that step 3 may destroy the old KEKs.
//
// Keys are collected first and written afterwards (rather than writing from
// inside the scan) so that no read transaction stays open for the whole
// rotation: Badger keeps conflict-detection state for every commit made
// while an older read transaction is open.
func (v *Vault) rewrapAll(ctx context.Context) (rewrapped, orphaned int, err error) {
	st := v.state.Load()
	segment := v.segment
	if segment <= 0 {
		segment = rewrapSegment
	}
	const keyLen = len(dekPrefix) + 16
	flat := make([]byte, 0, min(segment, 1<<16)*keyLen)
	for {
		flat = flat[:0]
		found, orph := 0, 0
		complete := true
		err := v.db.View(ctx, func(tx *store.Txn) error {
			return tx.Scan([]byte(dekPrefix), store.ScanOptions{}, func(k, w []byte) error {
				e, ok := wrappedEpoch(w)
				switch {
				case !ok || len(k) != keyLen || st.keks[e] == nil:
					orph++
					return nil
				case e == st.current:
					return nil
				}
				flat = append(flat, k...)
				if found++; found >= segment {
					complete = false
					return store.ErrStopScan
				}
				return nil
			})
		})
		if err != nil {
			return rewrapped, orphaned, err
		}
		if complete {
			orphaned = orph
		}
		if found == 0 {
			return rewrapped, orphaned, nil
		}
		keys := make([][]byte, 0, rewrapBatch)
		for off := 0; off < len(flat); {
			keys = keys[:0]
			for ; off < len(flat) && len(keys) < rewrapBatch; off += keyLen {
				keys = append(keys, flat[off:off+keyLen:off+keyLen])
			}
			n, err := v.rewrapKeys(ctx, st, keys)
			rewrapped += n
			if err != nil {
				return rewrapped, orphaned, err
			}
		}
	}
}

// rewrapKeys re-wraps keys under st's current epoch in one transaction,
// splitting it if it is too big or keeps losing races.
func (v *Vault) rewrapKeys(ctx context.Context, st *keyState, keys [][]byte) (int, error) {
	n, err := v.rewrapTxn(ctx, st, keys)
	if (errors.Is(err, store.ErrTxnTooBig) || errors.Is(err, store.ErrConflict)) && len(keys) > 1 {
		half := len(keys) / 2
		a, err := v.rewrapKeys(ctx, st, keys[:half])
		if err != nil {
			return a, err
		}
		b, err := v.rewrapKeys(ctx, st, keys[half:])
		return a + b, err
	}
	return n, err
}

func (v *Vault) rewrapTxn(ctx context.Context, st *keyState, keys [][]byte) (int, error) {
	n := 0
	v.shredMu.Lock()
	defer v.shredMu.Unlock()
	err := v.db.Update(ctx, func(tx *store.Txn) error {
		n = 0
		for _, k := range keys {
			w, err := tx.Get(k)
			if errors.Is(err, store.ErrNotFound) {
				continue // shredded meanwhile
			}
			if err != nil {
				return err
			}
			e, ok := wrappedEpoch(w)
			if !ok || e == st.current || st.keks[e] == nil {
				continue
			}
			pid := k[len(dekPrefix):]
			dek, err := st.keks[e].Open(nil, w[4:wrappedHeader], w[wrappedHeader:], dekAD(pid))
			if err != nil {
				id, _ := uuid.FromBytes(pid)
				return fmt.Errorf("data key of profile %s under epoch %d does not authenticate (refusing to retire epoch): %w",
					id, e, ErrUnsealFailed)
			}
			nw := wrapDEK(st, pid, dek)
			clear(dek)
			if err := tx.Set(k, nw); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// retireOld is step 3: drop every non-current KEK from the keyring file and
// from memory.
func (v *Vault) retireOld() ([]uint32, error) {
	st := v.state.Load()
	if len(st.keks) == 1 {
		return nil, nil
	}
	f := st.clone()
	now := v.now().UTC()
	var retired []uint32
	f.Epochs = f.Epochs[:0:0]
	for _, e := range st.file.Epochs {
		if e.Epoch == st.current {
			f.Epochs = append(f.Epochs, e)
			continue
		}
		retired = append(retired, e.Epoch)
		f.Retired = append(f.Retired, RetiredEpoch{Epoch: e.Epoch, RetiredAt: now})
	}
	if err := writeKeyring(v.keyring, f); err != nil {
		return nil, err
	}
	v.state.Store(&keyState{file: f, current: st.current, keks: map[uint32]cipher.AEAD{st.current: st.keks[st.current]}})
	return retired, nil
}

// Status reports the keyring and counts the stored keys (a scan of deks/).
func (v *Vault) Status(ctx context.Context) (Status, error) {
	if v.closed.Load() {
		return Status{}, fmt.Errorf("vault status: %w", ErrVaultClosed)
	}
	st := v.state.Load()
	s := Status{
		Epoch:             st.current,
		RotationPending:   len(st.keks) > 1,
		DEKsByEpoch:       map[uint32]int{},
		MasterFingerprint: v.fp,
		CachedDEKs:        v.cache.len(),
	}
	for _, e := range st.file.Epochs {
		s.LiveEpochs = append(s.LiveEpochs, EpochInfo{Epoch: e.Epoch, CreatedAt: e.CreatedAt})
		if e.Epoch == st.current {
			s.EpochCreatedAt = e.CreatedAt
		}
	}
	s.Retired = slices.Clone(st.file.Retired)
	err := v.db.View(ctx, func(tx *store.Txn) error {
		if err := tx.Scan([]byte(dekPrefix), store.ScanOptions{}, func(_, w []byte) error {
			e, _ := wrappedEpoch(w)
			s.DEKsByEpoch[e]++
			s.LiveDEKs++
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan([]byte(tombPrefix), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error {
			s.Shredded++
			return nil
		})
	})
	if err != nil {
		return Status{}, fmt.Errorf("vault status: %w", err)
	}
	return s, nil
}
