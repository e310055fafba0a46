package core

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
)

// Options are the per-process settings that do not belong in the config file.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; tests pass a fixed one. Defaults to time.Now.
	Now func() time.Time
	// Registry receives Custody's metrics; a new one is made when nil.
	Registry *prometheus.Registry
}

// CDP is an open Custody data directory.
type CDP struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	master *keys.Master
	vault  *keys.Vault
	store  *store.Store
	audit  *audit.Log
	hasher *identity.Hasher

	metrics *metrics
	apiKeys sync.Map // hex of the first 8 bytes of the key's SHA-256 -> cachedKey
	// apiKeyMu orders cache fills after store reads with revocations,
	// so a revoked key cannot be put back in the cache.
	apiKeyMu sync.Mutex

	rules  identity.Rules
	engine *policies.Engine

	// Owned by the committer goroutine (see resolvecache.go).
	ids       *idCache
	obs       *obsCache
	seen      *seenSet // messageIds committed within the window (dedup.go)
	idFilter  *bloom   // identifier index entries
	obsFilter *bloom   // observations
	seps      separationSet
	// suppressed holds the identifier index keys of deleted people.
	suppressed map[string]bool
	pids       *pidPool
	// nodes is the in-memory table of nodes' gate inputs, event digests
	// and clusters (nodetable.go) that aggs, gates and clusters keep.
	nodes *nodeTable
	// aggs are the in-memory event digests segment evaluation reads
	// (aggregate.go); the committer feeds them after each commit.
	aggs *aggregates
	// gates are the in-memory gate inputs of nodes (gatecache.go).
	gates *gateCache
	// clusters are the clusters' members, and so the nodes' roots, in
	// memory (clustercache.go); the store reports every change to them.
	clusters *clusterCache
	// active are the active memberships of the segments the live updater
	// evaluates, in memory (activeset.go); the store reports every change.
	active *activeSets
	// live queues the nodes touched by ingestion for the live membership
	// updater (live.go); memberMu serialises membership writers.
	live *liveQueue
	// consented holds the nodes with consent records (consent.go).
	consented *pidSet
	// memberMu serialises membership writers, from their read to their
	// write. A segment's deletion and a person's erasure take it too, so
	// that no writer's older read brings back records they removed.
	memberMu sync.Mutex
	// defMu serialises changes to definitions (apply, delete): each checks
	// the references (in_segment) of the definitions it then replaces.
	defMu sync.Mutex
	// exportMu is read-held by an export from its snapshot to its ledger
	// write, and held by an erasure: an erasure waits for running exports,
	// so that its certificate lists them as recipients and no ledger
	// record of the person is written after it.
	exportMu sync.RWMutex
	// beforeLedger, when set (tests), runs between an export's evaluation
	// and its ledger write.
	beforeLedger func()
	// personal is the personalisation lookup cache (personalize.go).
	personal *personalIndex
	// afterMemberRead, when set (tests), runs between a membership
	// writer's read and its write: where an erasure must not come in.
	afterMemberRead func()
	// evalFromEvents makes evaluation read full events only, never
	// digests: the reference the tests compare digests against. Atomic:
	// tests switch it while the live updater may be reading it.
	evalFromEvents atomic.Bool
	// freshViews makes every person of a scan a new view, never a
	// released one (personView.Release): the reference tests compare
	// reuse against.
	freshViews atomic.Bool
	// viewSlabs counts the slabs of views scans allocated (tests).
	viewSlabs atomic.Int64
	// eraseHook, set by tests only, runs between the steps of a deletion
	// (fault injection: an error there stands for a crash).
	eraseHook func(step string) error
	// holdInflight, set by tests only, makes the commit loop keep the
	// group in flight unsettled (not published to the caches) until the
	// next group is built on top of it, instead of whichever comes first.
	holdInflight atomic.Bool

	jobs    chan *job
	stop    chan struct{}
	stopped chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once

	// rotating serialises rotateIfDue: the scheduled check and `keys
	// rotate` (or a test) must not both see a rotation due and run two.
	rotating sync.Mutex

	// consentMaps lends policy subjects their consent maps during segment
	// evaluation (gate.Allow).
	consentMaps sync.Pool
}

// storeOptions are the store's options from the config: opening a data
// directory and restoring into one open the store alike.
func (cfg Config) storeOptions(master *keys.Master, log *slog.Logger) store.Options {
	so := store.DefaultOptions()
	so.EncryptionKey = master.Subkey(keys.PurposeStoreEncryption, 32)
	so.Logger = log
	so.Pipelined = true
	so.MemTableSize = int64(cfg.Store.MemTableMiB) << 20
	so.BlockCacheSize = int64(cfg.Store.BlockCacheMiB) << 20
	so.IndexCacheSize = int64(cfg.Store.IndexCacheMiB) << 20
	so.TableSize = int64(cfg.Store.TableMiB) << 20
	return so
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
}

// Init creates a new data directory: the master key (unless one is given by
// file, environment or passphrase), a commented custody.yaml, the key vault
// and the store.
func Init(ctx context.Context, cfg Config, opts Options) error {
	opts.defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cfg.storeDir(), "MANIFEST")); err == nil {
		return fmt.Errorf("init %s: %w", cfg.DataDir, ErrAlreadyInitialised)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	switch {
	case cfg.MasterKeyHex != "", cfg.MasterKeyFile != "":
	case cfg.Passphrase != "":
		if _, err := os.Stat(cfg.saltFile()); errors.Is(err, os.ErrNotExist) {
			salt := make([]byte, 16)
			if _, err := rand.Read(salt); err != nil {
				return fmt.Errorf("init: salt: %w", err)
			}
			if err := os.WriteFile(cfg.saltFile(), salt, 0o600); err != nil {
				return fmt.Errorf("init: salt: %w", err)
			}
		}
	default:
		if _, err := os.Stat(cfg.masterFile()); errors.Is(err, os.ErrNotExist) {
			if err := keys.GenerateMasterFile(cfg.masterFile()); err != nil {
				return fmt.Errorf("init: %w", err)
			}
		}
	}
	cfgPath := filepath.Join(cfg.DataDir, ConfigFile)
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(cfgPath, []byte(defaultConfigYAML), 0o600); err != nil {
			return fmt.Errorf("init: write %s: %w", ConfigFile, err)
		}
	}
	c, err := open(ctx, cfg, opts, false)
	if err != nil {
		return err
	}
	return c.Close()
}

// Open opens an initialised data directory.
func Open(ctx context.Context, cfg Config, opts Options) (*CDP, error) {
	opts.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.storeDir(), "MANIFEST")); err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, ErrNotInitialised)
	}
	return open(ctx, cfg, opts, true)
}

func open(ctx context.Context, cfg Config, opts Options, mustExist bool) (*CDP, error) {
	master, err := loadMaster(cfg)
	if err != nil {
		return nil, err
	}
	vo := keys.DefaultOptions()
	vo.Master = master
	vo.Logger = opts.Logger
	vo.CacheSize = cfg.Store.DEKCacheSize
	vo.Now = opts.Now
	// The vault is opened first: it checks the master key against the
	// keyring before anything else is opened or created.
	vault, err := keys.Open(ctx, cfg.vaultDir(), vo)
	if err != nil {
		return nil, fmt.Errorf("open key vault: %w", err)
	}
	engine, err := policies.New(ctx, policies.Options{Dir: cfg.Policies.Dir, Logger: opts.Logger, CacheSize: cfg.Policies.CacheSize})
	if err != nil {
		_ = vault.Close()
		return nil, fmt.Errorf("load policies: %w", err)
	}
	so := cfg.storeOptions(master, opts.Logger)
	so.MustExist = mustExist
	nodes := newNodeTable()
	clusters, active := newClusterCache(nodes), newActiveSets()
	so.Watch = []store.Prefix{store.PrefixCluster, store.PrefixMembership}
	so.OnCommit = func(ts uint64, changes []store.Change) {
		clusters.committed(ts, changes)
		active.committed(ts, changes)
	}
	st, err := store.Open(ctx, cfg.storeDir(), so)
	if err != nil {
		_ = vault.Close()
		if errors.Is(err, store.ErrNotInitialised) {
			return nil, fmt.Errorf("open %s: %w", cfg.DataDir, ErrNotInitialised)
		}
		return nil, err
	}
	c := &CDP{
		cfg:       cfg,
		log:       opts.Logger,
		now:       opts.Now,
		master:    master,
		vault:     vault,
		store:     st,
		hasher:    identity.NewHasher(master.Subkey(keys.PurposeIdentifierHMAC, 32)),
		metrics:   newMetrics(opts.Registry, st),
		jobs:      make(chan *job),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
		ids:       newIDCache(cfg.Ingest.IdentifierCacheSize),
		nodes:     nodes,
		aggs:      newAggregates(nodes),
		gates:     newGateCache(nodes, newGateClasses()),
		clusters:  clusters,
		active:    active,
		live:      newLiveQueue(),
		consented: newPIDSet(),
		obs:       newObsCache(cfg.Ingest.IdentifierCacheSize),
		rules:     cfg.Identity,
		engine:    engine,
		personal:  newPersonalIndex(cfg.Personalize.CacheSize, st.Horizon, opts.Registry, opts.Now()),
	}
	c.audit, err = audit.Open(ctx, st, audit.Options{Master: master, HeadDir: cfg.vaultDir(), Now: opts.Now, Logger: opts.Logger})
	if err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := c.loadSuppressed(ctx); err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, fmt.Errorf("load suppression list: %w", err)
	}
	if err := c.loadSeparations(ctx); err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, fmt.Errorf("load separations: %w", err)
	}
	if err := c.loadConsented(ctx); err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, fmt.Errorf("load consent index: %w", err)
	}
	if err := c.upgrade(ctx); err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, fmt.Errorf("upgrade store: %w", err)
	}
	if err := c.loadFilters(ctx); err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, fmt.Errorf("load filters: %w", err)
	}
	if err := c.loadSeen(ctx); err != nil {
		_ = st.Close()
		_ = vault.Close()
		return nil, err
	}
	c.startPIDPool()
	c.wg.Add(1)
	go c.commitLoop()
	if cfg.Segments.LiveDelay > 0 {
		c.wg.Add(2)
		go c.liveLoop()
		c.live.segmentsChanged() // the active memberships, first
		go func() {
			defer c.wg.Done()
			if err := c.warmClusters(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				c.log.Error("load clusters into memory", "err", err)
			}
		}()
	}
	if w := cfg.Privacy.RotationWindow.D(); w > 0 {
		c.wg.Add(1)
		go c.rotationLoop(w)
	}
	c.wg.Add(1)
	go c.personalizeLoop()
	if err := c.resumeErasures(ctx); err != nil {
		// The journal stays; the next Open tries again.
		c.log.Error("could not finish an interrupted deletion", "err", err)
	}
	return c, nil
}

func loadMaster(cfg Config) (*keys.Master, error) {
	switch {
	case cfg.MasterKeyHex != "":
		m, err := keys.ParseMaster(cfg.MasterKeyHex)
		if err != nil {
			return nil, fmt.Errorf("CUSTODY_MASTER_KEY: %w", err)
		}
		return m, nil
	case cfg.MasterKeyFile != "":
		m, err := keys.LoadMasterFile(cfg.MasterKeyFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (%s does not exist)", ErrNoMasterKey, cfg.MasterKeyFile)
		}
		return m, err
	case cfg.Passphrase != "":
		salt, err := os.ReadFile(cfg.saltFile())
		if err != nil {
			return nil, fmt.Errorf("passphrase: read salt %s: %w", cfg.saltFile(), err)
		}
		return keys.MasterFromPassphrase([]byte(cfg.Passphrase), salt)
	}
	m, err := keys.LoadMasterFile(cfg.masterFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoMasterKey
	}
	return m, err
}

// Close stops the committer (finishing the group in flight) and closes the
// store and the vault.
func (c *CDP) Close() error {
	var err error
	c.closeMu.Do(func() {
		close(c.stop)
		c.wg.Wait()
		err = errors.Join(c.audit.Close(), c.store.Close(), c.vault.Close())
	})
	return err
}

// Config returns the configuration the CDP was opened with.
func (c *CDP) Config() Config { return c.cfg }

// Registry returns the metrics registry.
func (c *CDP) Registry() *prometheus.Registry { return c.metrics.reg }

// StoreStats is the store's shape and cache counters (store.Stats).
func (c *CDP) StoreStats() store.Stats { return c.store.Stats() }

// RotateKeys starts a new KEK epoch, re-wraps every live data key under it
// and destroys the older KEKs.
func (c *CDP) RotateKeys(ctx context.Context) (keys.RotateReport, error) {
	// Deletions waiting for a rotation (privacy.rotation_window), taken
	// before it starts: those are the ones it completes.
	pending, err := c.pendingRotations(ctx)
	if err != nil {
		return keys.RotateReport{}, err
	}
	r, err := c.vault.Rotate(ctx)
	if err != nil {
		return r, fmt.Errorf("rotate keys: %w", err)
	}
	c.log.Info("keys rotated", "from_epoch", r.FromEpoch, "to_epoch", r.ToEpoch, "rewrapped", r.Rewrapped, "duration", r.Duration)
	ids, cerr := c.rotationDone(ctx, pending)
	err = c.record(ctx, "keys.rotate", map[string]any{"from_epoch": r.FromEpoch, "to_epoch": r.ToEpoch,
		"rewrapped": r.Rewrapped, "retired": r.Retired, "completes_deletions": ids})
	return r, errors.Join(cerr, err)
}

const defaultConfigYAML = `# Custody configuration. Every key is optional; the values shown are the
# defaults. Secrets never go here: use CUSTODY_MASTER_KEY or CUSTODY_PASSPHRASE.
# See docs/operations.md.

# master_key_file: /path/to/master.key   # default: <data>/master.key

server:
  addr: 127.0.0.1:8700
  read_header_timeout: 10s
  read_timeout: 30s
  write_timeout: 60s
  idle_timeout: 120s
  shutdown_timeout: 20s

ingest:
  dedup_window: 24h           # how long a messageId is remembered
  group_max_messages: 10000   # messages folded into one durable commit
  group_max_bytes: 4194304

store:
  memtable_mib: 64
  block_cache_mib: 256
  index_cache_mib: 128
  table_mib: 0                # 0: Badger's table sizes; 2 bounds its builder buffers (docs/operations.md, Sizing)
  dek_cache_size: 200000      # profile data keys kept unwrapped in memory

privacy:
  rotation_window: 0          # 0: each deletion rotates the KEK; e.g. 24h: one rotation covers the day's deletions

log:
  level: info                 # debug, info, warn, error
  format: text                # text, json
`
