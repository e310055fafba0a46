package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

// Personalisation lookups (GET /v1/personalize): the storefront asks, for
// a visitor it knows by user id or anonymous id, which segments they are in
// and a few computed values, to personalise the page. The answer is given
// only when the policy gate allows profile.read by the personalize role for
// PersonalizePurpose; otherwise, and for a person nobody knows or who was
// erased, the answer is the same empty one, so the answer does not tell
// whether the person exists. It never holds an identifier or a profile id.
//
// Lookups are answered from memory: the identifier is resolved by point
// reads of the identifier index and the cluster records (as every lookup
// does), and the person's gate decision and active segment names come from
// personalIndex, a bounded cache keyed by the person's root, filled on
// first use and invalidated by every change that can alter them:
// ingestion (traits, consent signals, merges touch the message's nodes),
// recorded consent, membership updates (live updater, refresh), segment
// deletion and erasure. A merge or unmerge is seen at lookup time too: an
// entry is used only for the exact member list it was computed for. A
// grant with an expiry makes the entry lapse then, and a policy reload
// (another bundle hash) makes every entry stale. Computed values are
// derived at lookup time from the in-memory event digests (aggregate.go),
// so time-sensitive ones (days since the last order) are current.
//
// A fill races changes: it reads a snapshot, and a change may be
// committed and announced while it computes, or be announced before it is
// visible to new reads. Each invalidation records, per node, the store's
// Horizon at that moment; a fill whose snapshot is older than the mark of
// one of its nodes is answered but not cached, so the cache never holds
// what a committed change made stale. The marks are kept for the last
// dirtyRing invalidations; older ones are folded into one floor that every
// fill must have read past.
//
// Audit: lookups are too many to record one by one (each would be an audit
// entry of its own, larger than the answer). Counts are: per API key, how
// many lookups were answered and how many got the empty answer, appended
// as one personalize.lookups entry per key every personalize.audit_interval
// and when the store closes, with the purpose and the policy bundle that
// decided. The segments that were served are recorded as used (hygiene.go).

// PersonalizePurpose is the purpose a personalisation lookup uses the
// person's data for.
const PersonalizePurpose = "personalize.content.profiled"

// PersonalizeConfig configures personalisation lookups.
type PersonalizeConfig struct {
	// Traits are the computed values an answer may carry
	// (segments.ComputedNames); keep them few and non-identifying.
	Traits []string `yaml:"traits"`
	// Segments, when set, are the only segment names an answer may carry;
	// empty: every segment the person is an active member of.
	Segments []string `yaml:"segments"`
	// CacheSize bounds the people whose decision and segments are kept in
	// memory.
	CacheSize int `yaml:"cache_size"`
	// AuditInterval is how often lookup counts go to the audit log (and
	// when the store closes); 0: only when the store closes.
	AuditInterval Duration `yaml:"audit_interval"`
}

// DefaultPersonalize returns the defaults: a small set of non-identifying
// computed values, every segment, 100000 people cached, counts audited
// hourly.
func DefaultPersonalize() PersonalizeConfig {
	return PersonalizeConfig{
		Traits: []string{segments.ComputedOrderCount, segments.ComputedDaysSinceLastOrder, segments.ComputedAvgOrderValue,
			segments.ComputedLifecycleStage},
		CacheSize:     100000,
		AuditInterval: Duration(time.Hour),
	}
}

func (p *PersonalizeConfig) validate() error {
	bad := func(k, r string) error { return &ConfigError{Key: "personalize." + k, Reason: r} }
	known := segments.ComputedNames()
	for _, t := range p.Traits {
		if !slices.Contains(known, t) {
			return bad("traits", fmt.Sprintf("%q is not a computed value (known: %v)", t, known))
		}
	}
	if p.CacheSize < 1 {
		return bad("cache_size", "must be at least 1")
	}
	if p.AuditInterval < 0 || (p.AuditInterval > 0 && p.AuditInterval.D() < time.Minute) || p.AuditInterval.D() > 24*time.Hour {
		return bad("audit_interval", "must be 0 (only when the store closes) or between 1m and 24h")
	}
	return nil
}

// Personalization is the answer to a lookup: segment names and computed
// values, nothing that identifies the person. The empty answer (no
// segment, no trait) is the same for a person who did not allow
// personalisation, an unknown one and an erased one.
type Personalization struct {
	Segments []string       `json:"segments"`
	Traits   map[string]any `json:"traits"`
}

// Personalize answers a personalisation lookup for the person holding id
// (a user_id or anonymous_id).
func (c *CDP) Personalize(ctx context.Context, id identity.Identifier) (Personalization, error) {
	out := Personalization{Segments: []string{}, Traits: map[string]any{}}
	if id.Type != identity.UserID && id.Type != identity.AnonymousID {
		return out, fmt.Errorf("%w: a personalisation lookup takes a user_id or an anonymous_id", ErrInvalidInput)
	}
	v, err := c.rules.Normalize(id.Type, id.Value)
	if err != nil {
		return out, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	now := c.now().UTC()
	answered := false
	if !c.rules.Blocked(id.Type, v) {
		key := store.IdentifierKey(string(id.Type), c.hasher.Sum(string(id.Type), v))
		err = c.store.View(ctx, func(tx *store.Txn) error {
			raw, err := tx.Get(key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			pid, err := uuid.FromBytes(raw)
			if err != nil {
				return err
			}
			root, members, err := c.members(tx, pid)
			if errors.Is(err, store.ErrNotFound) {
				return nil // erased meanwhile
			}
			if err != nil {
				return err
			}
			e := c.personal.get(root, members, now, c.engine.BundleHash())
			if e == nil {
				if e, err = c.personalFill(ctx, tx, root, members, now); err != nil {
					return err
				}
			}
			if !e.allow {
				return nil
			}
			pv := c.newView(ctx, tx, root, members, now)
			for _, t := range c.cfg.Personalize.Traits {
				if ct, _ := segments.LookupComputed(t); ct.Kind == segments.KindNumber {
					if v, ok := pv.Computed(t); ok {
						out.Traits[t] = v
					}
				} else if v, ok := pv.ComputedText(t); ok {
					out.Traits[t] = v // a text (lifecycle stage, category) or an RFC 3339 time
				}
			}
			if pv.err != nil {
				// Erased after the read (the digests need the person's
				// key): nothing of them is answered.
				out.Traits = map[string]any{}
				return nil
			}
			out.Segments, answered = e.segments, true
			return nil
		})
		if err != nil {
			return Personalization{Segments: []string{}, Traits: map[string]any{}}, fmt.Errorf("personalize: %w", err)
		}
	}
	c.personal.count(actorOf(ctx), answered, out.Segments)
	return out, nil
}

// personalFill computes a person's entry in tx and caches it unless a
// change was announced after tx's snapshot.
func (c *CDP) personalFill(ctx context.Context, tx *store.Txn, root uuid.UUID, members []uuid.UUID, now time.Time) (*personalEntry, error) {
	e := &personalEntry{members: members, bundle: c.engine.BundleHash(), segments: []string{}}
	pv := c.newView(ctx, tx, root, members, now)
	cv, err := pv.consent()
	if errors.Is(err, keys.ErrKeyShredded) || errors.Is(err, ErrProfileNotFound) || errors.Is(err, store.ErrNotFound) {
		return e, nil // being erased: nobody, and not worth caching
	}
	if err != nil {
		return nil, err
	}
	d, err := c.engine.Decide(ctx, c.subjectInput(GateRequest{Action: policies.ActionProfileRead,
		Purpose: PersonalizePurpose, Role: policies.RolePersonalize}, cv))
	if err != nil {
		return nil, err
	}
	e.allow = d.Allow
	// A grant that expires ends the decision then (the policy judges
	// expiry at input.now and on nothing else that time changes).
	for _, st := range cv.States {
		if x := st.Record.ExpiresAt; x != nil && x.After(now) && (e.until.IsZero() || x.Before(e.until)) {
			e.until = *x
		}
	}
	if e.allow {
		// Only the segments of an allowed person are read.
		var names []string
		err := tx.Scan([]byte(store.PrefixSegmentDef), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			names = append(names, string(k[len(store.PrefixSegmentDef):]))
			return nil
		})
		if err != nil {
			return nil, err
		}
		allow := c.cfg.Personalize.Segments
		for _, n := range names {
			if len(allow) > 0 && !slices.Contains(allow, n) {
				continue
			}
			v, err := tx.Get(store.MembershipKey(n, root))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !bytes.Contains(v, []byte(`"exited_at"`)) { // as scanActive
				e.segments = append(e.segments, n)
			}
		}
	}
	c.personal.put(root, e, tx.ReadTS())
	return e, nil
}

// personalIndex is the lookup cache: per person (root), the gate decision
// and active segment names. Safe for concurrent use.
type personalIndex struct {
	horizon func() uint64
	max     int

	mu      sync.RWMutex
	entries map[uuid.UUID]*personalEntry
	rev     map[uuid.UUID]uuid.UUID // member pid -> the root whose entry lists it
	// dirty marks the nodes invalidated lately with the store horizon then;
	// ring holds them in order, floor the highest mark dropped from it.
	dirty map[uuid.UUID]uint64
	ring  []dirtyMark
	next  int
	floor uint64

	counts  sync.Map // actor -> *lookupCounts
	served  sync.Map // segment name -> struct{}
	since   atomic.Int64
	lookups *prometheus.CounterVec
}

type personalEntry struct {
	members  []uuid.UUID
	allow    bool
	until    time.Time // zero: no expiry
	bundle   string
	segments []string
}

type dirtyMark struct {
	pid uuid.UUID
	h   uint64
}

// dirtyRing is how many invalidations are remembered one by one.
const dirtyRing = 1 << 16

type lookupCounts struct {
	answered, empty atomic.Int64
}

func newPersonalIndex(max int, horizon func() uint64, reg prometheus.Registerer, now time.Time) *personalIndex {
	x := &personalIndex{horizon: horizon, max: max, entries: map[uuid.UUID]*personalEntry{}, rev: map[uuid.UUID]uuid.UUID{},
		dirty: map[uuid.UUID]uint64{}, ring: make([]dirtyMark, 0, 1024),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_personalize_lookups_total", Help: "Personalisation lookups, by answer (segments: the gate allowed; empty: denied, unknown or erased).",
		}, []string{"answer"})}
	x.since.Store(now.UnixNano())
	reg.MustRegister(x.lookups)
	return x
}

// get returns the entry for root if it was computed for exactly these
// members, under this bundle, and has not lapsed.
func (x *personalIndex) get(root uuid.UUID, members []uuid.UUID, now time.Time, bundle string) *personalEntry {
	x.mu.RLock()
	e := x.entries[root]
	x.mu.RUnlock()
	if e == nil || e.bundle != bundle || !slices.Equal(e.members, members) || (!e.until.IsZero() && !now.Before(e.until)) {
		return nil
	}
	return e
}

// put caches e for root, unless a change was announced after the snapshot
// (readTS) it was computed from.
func (x *personalIndex) put(root uuid.UUID, e *personalEntry, readTS uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if readTS < x.floor {
		return
	}
	for _, m := range e.members {
		if readTS < x.dirty[m] {
			return
		}
	}
	if len(x.entries) >= x.max {
		// Drop an arbitrary sixteenth: cheap, and a dropped person only
		// costs one fill.
		n := max(1, x.max/16)
		for r := range x.entries {
			x.dropLocked(r)
			if n--; n == 0 {
				break
			}
		}
	}
	x.dropLocked(root)
	for _, m := range e.members {
		// A member listed under another root moved clusters: that entry
		// is stale.
		if other, ok := x.rev[m]; ok && other != root {
			x.dropLocked(other)
		}
		x.rev[m] = root
	}
	x.entries[root] = e
}

// markLocked records that p changed at or below horizon h.
func (x *personalIndex) markLocked(p uuid.UUID, h uint64) {
	if h == 0 {
		return // a store whose later reads see every finished commit
	}
	if len(x.ring) < dirtyRing {
		x.ring = append(x.ring, dirtyMark{p, h})
	} else {
		old := x.ring[x.next]
		if x.dirty[old.pid] == old.h {
			delete(x.dirty, old.pid)
		}
		x.floor = max(x.floor, old.h)
		x.ring[x.next] = dirtyMark{p, h}
		x.next = (x.next + 1) % dirtyRing
	}
	x.dirty[p] = max(x.dirty[p], h)
}

func (x *personalIndex) dropLocked(root uuid.UUID) {
	e, ok := x.entries[root]
	if !ok {
		return
	}
	delete(x.entries, root)
	for _, m := range e.members {
		if x.rev[m] == root {
			delete(x.rev, m)
		}
	}
}

// touch invalidates the entries of the people whose nodes changed: it
// must be called after the change is committed.
func (x *personalIndex) touch(pids ...uuid.UUID) {
	h := x.horizon()
	// In chunks, so that a large ingest group never holds lookups up.
	for start := 0; start < len(pids) || start == 0; start += 512 {
		x.mu.Lock()
		for _, p := range pids[start:min(start+512, len(pids))] {
			if r, ok := x.rev[p]; ok {
				x.dropLocked(r)
			}
			x.markLocked(p, h)
		}
		x.mu.Unlock()
	}
}

// touchEvents is touch for the nodes of a committed ingest group.
func (x *personalIndex) touchEvents(evs []nodeEvent) {
	pids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		pids[i] = e.pid
	}
	x.touch(pids...)
}

// flush drops every entry (a segment was deleted).
func (x *personalIndex) flush() {
	h := x.horizon()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.floor = max(x.floor, h)
	clear(x.entries)
	clear(x.rev)
}

func (x *personalIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

// count records a lookup's outcome for the audit counts and metrics.
func (x *personalIndex) count(actor string, answered bool, segs []string) {
	v, ok := x.counts.Load(actor)
	if !ok {
		v, _ = x.counts.LoadOrStore(actor, &lookupCounts{})
	}
	lc := v.(*lookupCounts)
	if answered {
		lc.answered.Add(1)
		x.lookups.WithLabelValues("segments").Inc()
	} else {
		lc.empty.Add(1)
		x.lookups.WithLabelValues("empty").Inc()
	}
	for _, s := range segs {
		if _, ok := x.served.Load(s); !ok {
			x.served.Store(s, struct{}{})
		}
	}
}

// flushPersonalizeAudit appends the lookup counts since the last flush
// (one personalize.lookups entry per API key that looked anything up) and
// records the segments served as used.
func (c *CDP) flushPersonalizeAudit(ctx context.Context) error {
	x := c.personal
	to := c.now().UTC()
	from := time.Unix(0, x.since.Swap(to.UnixNano())).UTC()
	var errs []error
	x.counts.Range(func(k, v any) bool {
		lc := v.(*lookupCounts)
		a, e := lc.answered.Swap(0), lc.empty.Swap(0)
		if a+e == 0 {
			return true
		}
		errs = append(errs, c.record(WithActor(ctx, k.(string)), "personalize.lookups", map[string]any{
			"purpose": PersonalizePurpose, "answered": a, "empty": e, "from": from, "to": to,
			"bundle_hash": c.engine.BundleHash()}))
		return true
	})
	x.served.Range(func(k, _ any) bool {
		x.served.Delete(k)
		c.markUsed(ctx, k.(string), useServed)
		return true
	})
	return errors.Join(errs...)
}

// personalizeLoop flushes the lookup counts every audit interval and when
// the store closes; Close stops it and waits.
func (c *CDP) personalizeLoop() {
	defer c.wg.Done()
	var tick <-chan time.Time
	if d := c.cfg.Personalize.AuditInterval.D(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.stop:
			if err := c.flushPersonalizeAudit(context.Background()); err != nil {
				c.log.Error("personalisation audit counts", "err", err)
			}
			return
		case <-tick:
			if err := c.flushPersonalizeAudit(context.Background()); err != nil {
				c.log.Error("personalisation audit counts", "err", err)
			}
		}
	}
}
