package core

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

// ErrSegmentNotFound: no segment of that name is applied.
var ErrSegmentNotFound = errors.New("segment not found")

func (c *CDP) known() segments.KnownNames {
	return segments.KnownNames{Purpose: c.engine.ValidPurpose}
}

// ParseSegment reads a definition (JSON or YAML) against this store's
// purposes; errors point at the exact path.
func (c *CDP) ParseSegment(data []byte) (*segments.Definition, error) {
	d, err := segments.Parse(data, segments.ParseOptions{KnownNames: c.known()})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return d, nil
}

// ApplySegment stores a definition (replacing one of the same name) after
// checking it together with every other applied segment (in_segment
// targets exist, no cycles).
func (c *CDP) ApplySegment(ctx context.Context, d *segments.Definition) error {
	c.defMu.Lock()
	defer c.defMu.Unlock()
	defs, err := c.Segments(ctx)
	if err != nil {
		return err
	}
	all := []*segments.Definition{d}
	for _, o := range defs {
		if o.Name != d.Name {
			all = append(all, o)
		}
	}
	if _, err := segments.NewSet(c.known(), all...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	b, err := d.MarshalJSON()
	if err != nil {
		return err
	}
	if err := c.store.Update(ctx, func(tx *store.Txn) error {
		key := []byte(string(store.PrefixSegmentDef) + d.Name)
		if ok, err := tx.Has(key); err != nil {
			return err
		} else if !ok {
			// A new segment starts without uses: a record that a use of
			// an earlier segment of the name wrote while it was being
			// deleted (markUsed) is not this one's.
			if err := tx.Delete(store.SegmentUseKey(d.Name)); err != nil {
				return err
			}
		}
		return tx.Set(key, b)
	}); err != nil {
		return fmt.Errorf("apply segment %s: %w", d.Name, err)
	}
	c.markUsed(ctx, d.Name, useApplied)
	c.live.segmentsChanged()
	return c.record(ctx, "segment.apply", map[string]any{"segment": d.Name, "purpose": d.Purpose})
}

// ApplyTemplate applies a built-in template with parameters.
func (c *CDP) ApplyTemplate(ctx context.Context, name string, params map[string]string) (*segments.Definition, error) {
	for _, t := range segments.Templates() {
		if t.Name == name {
			d, err := t.With(params)
			if err != nil {
				return nil, fmt.Errorf("%w: template %s: %w", ErrInvalidInput, name, err)
			}
			return d, c.ApplySegment(ctx, d)
		}
	}
	return nil, fmt.Errorf("%w: no template %q (see `custody segment templates`)", ErrInvalidInput, name)
}

// Segments returns the applied definitions, by name.
func (c *CDP) Segments(ctx context.Context) ([]*segments.Definition, error) {
	var out []*segments.Definition
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixSegmentDef), store.ScanOptions{}, func(k, v []byte) error {
			var d segments.Definition
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("segment %s: %w", k[len(store.PrefixSegmentDef):], err)
			}
			out = append(out, &d)
			return nil
		})
	})
	return out, err
}

// SegmentEval is a dry run of a segment: counts only, never who.
type SegmentEval struct {
	Segment      string    `json:"segment"`
	Purpose      string    `json:"purpose"`
	At           time.Time `json:"at"`
	Allowed      int       `json:"allowed"`
	NotConsented int       `json:"not_consented"`
	Evaluated    int       `json:"evaluated"`
	BundleHash   string    `json:"bundle_hash"`
	// Groups counts the allowed members per group of the segment's
	// splits (absent without splits).
	Groups map[string]int `json:"groups,omitempty"`
}

// EvaluateSegment runs every person through the policy gate for the
// segment's purpose and evaluates the allowed ones at now: members are
// counted, people the gate denied are counted and never read. The only way
// from stored people to members is segments.Run, which cannot produce a
// member without the gate's decision.
func (c *CDP) EvaluateSegment(ctx context.Context, name string, now time.Time) (SegmentEval, error) {
	sub, err := c.segmentSet(ctx, name)
	if err != nil {
		return SegmentEval{}, err
	}
	if now.IsZero() {
		now = c.now()
	}
	var r *segments.SegmentResult
	clusters := c.clusterList()
	err = c.store.View(ctx, func(tx *store.Txn) error {
		var err error
		r, err = c.run(ctx, tx, sub, name, now, clusters.sameAs(c.clusters))
		return err
	})
	if err != nil {
		return SegmentEval{}, fmt.Errorf("evaluate %s: %w", name, err)
	}
	out := SegmentEval{Segment: name, Purpose: r.Purpose, At: now.UTC(), Allowed: len(r.Members),
		NotConsented: r.NotConsented, Evaluated: r.Evaluated, BundleHash: c.engine.BundleHash()}
	if out.Groups, err = c.groupCounts(sub.Get(name).Definition(), r.Members); err != nil {
		return out, err
	}
	c.markUsed(ctx, name, useEvaluated)
	return out, c.record(ctx, "segment.evaluate", map[string]any{"segment": name, "purpose": r.Purpose,
		"allowed": out.Allowed, "not_consented": out.NotConsented, "evaluated": out.Evaluated, "bundle_hash": out.BundleHash})
}

// segmentSet is the named segment with the segments it refers to.
func (c *CDP) segmentSet(ctx context.Context, name string) (*segments.Set, error) {
	defs, err := c.Segments(ctx)
	if err != nil {
		return nil, err
	}
	set, err := segments.NewSet(c.known(), defs...)
	if err != nil {
		return nil, err
	}
	if set.Get(name) == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrSegmentNotFound)
	}
	return set.Subset(name)
}

// people yields every person of the store, decrypted lazily, in one read
// transaction (twice when a definition needs a population).
// A scan error ends the sequence and is left in *errp.
//
// With clusters (clusterList: every cluster in memory, the same as tx's),
// the people are those, in the memory's order, not read from n/: callers
// that pass them need no order (counts and memberships).
func (c *CDP) people(ctx context.Context, tx *store.Txn, now time.Time, set *segments.Set, purpose string, clusters *clusterList, errp *error) segments.People {
	// Made once, not per person: a million method values were garbage.
	run := &viewRun{c: c, ctx: ctx, tx: tx, now: now, purpose: purpose, needProps: c.needProps(set), needCtx: c.needCtx(set), recycle: !c.freshViews.Load()}
	return func(yield func(segments.Candidate) bool) {
		var slab []personView
		// Views are yielded in groups, each fetched from memory under one
		// lock (nodeTable.fetchViews) by the first worker that needs one
		// of them (personView.fetch), not by this scan: its one goroutine
		// is what the workers wait for.
		batch := make([]*personView, 0, fetchBatch)
		stopped := false
		flush := func() {
			g := &fetchGroup{n: len(batch)}
			copy(g.views[:], batch)
			g.out.Store(int32(len(batch)))
			for _, pv := range batch {
				pv.group, pv.home = g, g
			}
			for _, pv := range batch {
				if !stopped && !yield(segments.Candidate{Ref: unsafe.String(&pv.ref[0], len(pv.ref)), Person: pv}) {
					stopped = true
				}
			}
			batch = batch[:0]
		}
		// person queues the view of root, with the members read by
		// members (into the view's own array).
		person := func(root uuid.UUID, members func(buf []uuid.UUID) ([]uuid.UUID, error)) error {
			pv := run.reused()
			if pv == nil {
				if len(slab) == 0 {
					// Views come back (Release) once the run is
					// done with them; until then, one allocation
					// makes many.
					slab = make([]personView, 64)
					c.viewSlabs.Add(1)
				}
				pv = &slab[0]
				slab = slab[1:]
				pv.viewRun = run
			}
			pv.root = root
			var err error
			buf := pv.oneMember[:0]
			if cap(pv.spareMembers) > 1 {
				buf = pv.spareMembers[:0]
			}
			if pv.members, err = members(buf); err != nil {
				return err
			}
			// The reference lives in the view (segments.Candidate allows
			// it: Run and Export copy the references they keep), not in
			// an allocation per person.
			encodeUUID(&pv.ref, pv.root)
			if batch = append(batch, pv); len(batch) == cap(batch) {
				flush()
			}
			if stopped {
				return store.ErrStopScan
			}
			return nil
		}
		if clusters != nil {
			*errp = func() error {
				i := 0
				for root, ms := range clusters.all() {
					if i++; i%1024 == 0 {
						if err := ctx.Err(); err != nil {
							return err
						}
					}
					err := person(root, func(buf []uuid.UUID) ([]uuid.UUID, error) { return append(buf, ms...), nil })
					if errors.Is(err, store.ErrStopScan) {
						return nil
					} else if err != nil {
						return err
					}
				}
				return nil
			}()
		} else {
			*errp = tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{Borrow: true}, func(k, v []byte) error {
				return person(uuid.UUID(k[len(store.PrefixCluster):]), func(buf []uuid.UUID) ([]uuid.UUID, error) { return memberPIDs(v, buf) })
			})
		}
		if len(batch) > 0 && *errp == nil {
			flush()
		}
	}
}

// fetchBatch is how many people a scan looks up in memory at once: enough
// for their lookups to overlap, few enough that the read lock is brief.
// Runs hand workers batches of twice as many (segments' batchSize), so a
// group is fetched by the worker that evaluates it.
const fetchBatch = 64

// fetchGroup is views a scan yielded together, to be fetched together.
// Once done, it writes into none of them: a view released before its
// group was fetched closes the group (Release), and its fellows fetch
// alone.
type fetchGroup struct {
	once sync.Once
	n    int
	// views go back to the run together when the last of them is
	// released (out counts the others): a lock per group, not per person.
	// The run's reducer handing back every view, and the scan taking each,
	// under one lock bounced its cache line between their cores: up to an
	// eighth of an evaluation's CPU. The views of a group a run stopped
	// before it released them all are left to the collector.
	views [fetchBatch]*personView
	out   atomic.Int32
}

// fetch fetches the group's views from run's node table.
func (g *fetchGroup) fetch(run *viewRun) {
	run.touched.Add(run.c.nodes.fetchViews(g.views[:g.n], run.c.aggs))
}

// run evaluates the named segment of set over every person, through the
// gate, in tx.
// With clusters (clusterList), the people are those.
func (c *CDP) run(ctx context.Context, tx *store.Txn, set *segments.Set, name string, now time.Time, clusters *clusterList) (*segments.SegmentResult, error) {
	var scanErr error
	res, err := segments.Run(ctx, set, c.people(ctx, tx, now, set, set.Get(name).Purpose(), clusters, &scanErr), gate{c: c, role: policies.RoleMarketer}, now)
	if err = errors.Join(err, scanErr); err != nil {
		return nil, err
	}
	return res.Segment(name), nil
}

// gate implements segments.Gate with the person's consent and the policy
// engine.
type gate struct {
	c    *CDP
	role string
}

// Allow decides for the person of s. The decision's Reasons and Fields
// may be shared with other people's (a class's answer): read only.
func (g gate) Allow(ctx context.Context, s segments.Subject, action, purpose string, dest policies.Destination) (policies.Decision, error) {
	pv, ok := asPersonView(s.Person())
	if !ok {
		return policies.Decision{}, errors.New("gate: unknown person type")
	}
	// A person whose inputs are all on one node of a class is decided as
	// the class (gateclass.go); the revision is read before the engine is
	// asked, so that an answer is never filed under a newer bundle. A
	// revision of 0 (no decision cache: Config.Validate refuses it today)
	// keeps no answer.
	rev, class := g.c.engine.Revision(), uint32(noClass)
	if rev != 0 && dest.Kind == "" && dest.Region == "" && len(dest.Fields) == 0 && !g.c.evalFromEvents.Load() {
		if gi, err := pv.gateInputs(); err == nil && gi.only != nil {
			class = gi.only.class
		}
	}
	classes := g.c.gates.classes
	if class != noClass {
		if d, ok := classes.decision(class, rev, action, purpose, g.role); ok {
			return d, nil
		}
	}
	// The subject's consents go into a map lent for this decision: a map
	// per person was a seventh of an evaluation's garbage.
	m, _ := g.c.consentMaps.Get().(map[string]policies.Consent)
	if m == nil {
		m = map[string]policies.Consent{}
	}
	defer func() {
		clear(m)
		g.c.consentMaps.Put(m)
	}()
	subj, err := pv.subject(m)
	if errors.Is(err, keys.ErrKeyShredded) || errors.Is(err, ErrProfileNotFound) {
		// Erased while this read was under way: the snapshot still holds
		// the person's records, but their key is gone. They are nobody's
		// member any more.
		return policies.Decision{Reasons: []string{"the person has been erased"}}, nil
	}
	if err != nil {
		return policies.Decision{}, err
	}
	d, err := g.c.engine.Decide(ctx, g.c.gateInput(GateRequest{Action: action, Purpose: purpose, Destination: dest, Role: g.role}, subj))
	if err == nil && class != noClass {
		classes.remember(class, rev, action, purpose, g.role, d)
	}
	return d, err
}

// personView is one person as segments see them, decrypted lazily: the
// gate reads only consent and the traits that give the jurisdiction, and
// a person the gate denies is never read further. A scan makes a million
// of them: what they share is in viewRun, the one member and the one
// digest most people have live inline, so that a person costs one
// allocation, from a slab (people).
type personView struct {
	*viewRun
	root    uuid.UUID
	members []uuid.UUID

	traits  map[string]json.RawMessage
	gate    personGate // the gate inputs, from memory (gatecache.go), when hasGate
	hasGate bool
	quickOK bool // quick holds quickValues
	decoded map[string]any
	cv      *ConsentView
	events  map[string][]segments.Event
	derived *traitValues
	quick   quickNums // quickValues, when only those were asked
	// fetched: gnodes and digests hold what memory has of the members'
	// gate inputs and event digests (nil where it has nothing yet), and
	// names the digests' name list (nodeTable.fetchViews). digestsDone:
	// the missing digests are built too (loadDigest).
	fetched     bool
	group       *fetchGroup // the scan's group of p, until p is fetched
	home        *fetchGroup // the scan's group of p, which hands it back to the run (Release)
	digestsDone bool
	gnodes      []*gateNode
	digests     []digest
	names       []string // what the digests' name indexes index
	byName      []namedEvents
	err         error
	// oneMember, oneGate and oneDigest back members, gnodes and digests
	// for a person of one node.
	oneMember [1]uuid.UUID
	oneGate   [1]*gateNode
	oneDigest [1]digest
	// spareMembers, spareGates and spareDigests are a released view's
	// arrays for a person of several nodes (Release).
	spareMembers []uuid.UUID
	spareGates   []*gateNode
	spareDigests []digest
	ref          [36]byte // root's text, backing the candidate's Ref (people)
}

// encodeUUID writes u's text form (uuid.UUID.String) into dst.
func encodeUUID(dst *[36]byte, u uuid.UUID) {
	hex.Encode(dst[0:8], u[0:4])
	hex.Encode(dst[9:13], u[4:6])
	hex.Encode(dst[14:18], u[6:8])
	hex.Encode(dst[19:23], u[8:10])
	hex.Encode(dst[24:], u[10:])
	dst[8], dst[13], dst[18], dst[23] = '-', '-', '-', '-'
}

// viewRun is what the personViews of one read share.
type viewRun struct {
	c       *CDP
	ctx     context.Context
	tx      *store.Txn
	now     time.Time
	purpose string
	// needProps says which events' properties (or context) the definitions
	// read (segments.Set.NeedsProperties); the others come from digests.
	// needCtx says which events' context they read (NeedsContext).
	needProps func(event string) bool
	needCtx   func(event string) bool

	// recycle: the views are a scan's (people), and the run hands them
	// back through Release for the scan to reuse. A million views per
	// segment were half of an evaluation's garbage; a run now holds only
	// the few batches in flight.
	recycle bool
	mu      sync.Mutex
	free    []*personView // released, a whole group at a time (fetchGroup.views)
	spare   []*personView // taken from free in one go: the scan's own, no lock
	// touched is what the groups' fetches read to bring entries into the
	// cache (nodeTable.fetchViews), kept so that the reads are not
	// optimised away.
	touched atomic.Uint64
}

// reused returns a released view, reset, or nil. Only the scan's one
// goroutine calls it.
func (r *viewRun) reused() *personView {
	if len(r.spare) == 0 {
		r.mu.Lock()
		r.spare, r.free = r.free, r.spare
		r.mu.Unlock()
	}
	n := len(r.spare)
	if n == 0 {
		return nil
	}
	pv := r.spare[n-1]
	r.spare[n-1] = nil
	r.spare = r.spare[:n-1]
	return pv
}

// Release implements segments.Releaser: the run is done with p, which is
// reset and kept for the scan's next person. What p handed out stays
// valid (its maps and values are dropped, not cleared) except its event
// slices, whose arrays the next person reuses (segments.Releaser allows
// it).
func (p *personView) Release() {
	run := p.viewRun
	if !run.recycle {
		return
	}
	if g := p.group; g != nil {
		g.once.Do(func() {}) // p is reused: no fetch may write into it now
	}
	home := p.home
	keep := personView{viewRun: run, byName: p.byName[:0], spareMembers: p.spareMembers, spareGates: p.spareGates, spareDigests: p.spareDigests}
	if cap(p.members) > 1 {
		keep.spareMembers = p.members[:0]
	}
	if cap(p.gnodes) > 1 {
		keep.spareGates = p.gnodes[:0]
	}
	if cap(p.digests) > 1 {
		keep.spareDigests = p.digests[:0]
	}
	*p = keep
	if home == nil {
		return // not a scan's (or released twice): left to the collector
	}
	if home.out.Add(-1) == 0 {
		run.mu.Lock()
		run.free = append(run.free, home.views[:home.n]...)
		run.mu.Unlock()
	}
}

// newView is a personView of one person, for a caller that makes few.
func (c *CDP) newView(ctx context.Context, tx *store.Txn, root uuid.UUID, members []uuid.UUID, now time.Time) *personView {
	return &personView{viewRun: &viewRun{c: c, ctx: ctx, tx: tx, now: now}, root: root, members: members}
}

func (p *personView) loadTraits() map[string]json.RawMessage {
	if p.traits == nil && p.err == nil {
		p.traits, p.err = p.c.traitsOf(p.ctx, p.tx, p.members)
		p.decoded = map[string]any{}
	}
	return p.traits
}

func (p *personView) consent() (ConsentView, error) {
	if p.cv == nil {
		if p.c.evalFromEvents.Load() {
			// The reference path: every record read and decrypted now.
			traits := p.loadTraits()
			if p.err != nil {
				return ConsentView{}, p.err
			}
			cv, err := p.c.consentOf(p.ctx, p.tx, p.root, p.members, traits)
			if err != nil {
				return ConsentView{}, err
			}
			p.cv = &cv
		} else {
			g, err := p.gateInputs()
			if err != nil {
				return ConsentView{}, err
			}
			cv := g.view()
			p.cv = &cv
		}
	}
	return *p.cv, nil
}

// gateInputs reads the person's gate inputs from memory (gatecache.go).
func (p *personView) gateInputs() (*personGate, error) {
	if !p.hasGate {
		p.fetch()
		g, err := p.c.gateView(p.ctx, p.tx, p.root, p.members, p.gnodes)
		if err != nil {
			return nil, err
		}
		p.gate, p.hasGate = g, true
	}
	return &p.gate, nil
}

// subject is the person's policy subject: from the gate inputs without
// making a ConsentView, except on the reference path.
func (p *personView) subject(m map[string]policies.Consent) (policies.Subject, error) {
	if p.c.evalFromEvents.Load() {
		cv, err := p.consent()
		return subjectOf(cv), err
	}
	g, err := p.gateInputs()
	if err != nil {
		return policies.Subject{}, err
	}
	return g.subject(m), nil
}

func (p *personView) Trait(name string) (any, bool) {
	if v, ok := p.decoded[name]; ok {
		return v, v != nil
	}
	raw, ok := p.loadTraits()[name]
	if !ok {
		return nil, false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	p.decoded[name] = v
	return v, v != nil
}

func (p *personView) loadEvents() {
	if p.events != nil || p.err != nil {
		return
	}
	p.events = map[string][]segments.Event{}
	for _, n := range p.members {
		p.err = p.tx.Scan(store.EventPrefix(n), store.ScanOptions{}, func(k, v []byte) error {
			plain, err := p.c.vault.Unseal(p.ctx, n, k, v)
			if err != nil {
				return err
			}
			m, err := event.DecodeStored(plain)
			if err != nil {
				return err
			}
			name := m.Event
			if m.Type != event.Track {
				name = string(m.Type)
			}
			var props, mctx map[string]any
			if len(m.Properties) > 0 {
				_ = json.Unmarshal(m.Properties, &props)
			}
			if len(m.Context) > 0 && (p.c.evalFromEvents.Load() || p.needCtx == nil || p.needCtx(name)) {
				_ = json.Unmarshal(m.Context, &mctx)
			}
			p.events[name] = append(p.events[name], segments.Event{Time: m.Timestamp, Properties: props, Context: mctx})
			return nil
		})
		if p.err != nil {
			return
		}
	}
}

// Events returns full events (decrypted) only when a definition being
// evaluated reads their properties; otherwise times from the digests.
func (p *personView) Events(name string) []segments.Event {
	if p.needProps != nil && p.needProps(name) {
		p.loadEvents()
		return p.events[name]
	}
	if p.loadDigest(); p.err != nil {
		return nil // the digests may be partly fetched: none is read
	}
	for _, n := range p.byName {
		if n.name == name {
			return n.events
		}
	}
	var evs []segments.Event
	if len(p.byName) < cap(p.byName) {
		// A released view's array for this slot (Release).
		evs = p.byName[:len(p.byName)+1][len(p.byName)].events[:0]
	}
	if idx := slices.Index(p.names, name); idx >= 0 {
		// Appended without counting first: the array is mostly a released
		// view's, already large enough, and a second walk of the digests
		// cost more than the growth it saved.
		for _, d := range p.digests {
			for it := d.iter(); it.next(); {
				if it.name == uint32(idx) {
					evs = append(evs, segments.Event{Time: time.Unix(0, it.at).UTC()})
				}
			}
		}
	}
	if p.byName == nil {
		p.byName = make([]namedEvents, 0, 2) // a definition rarely reads more than two events
	}
	p.byName = append(p.byName, namedEvents{name, evs})
	return evs
}

// needProps says which events' properties evaluation must decrypt.
func (c *CDP) needProps(set *segments.Set) func(string) bool {
	if c.evalFromEvents.Load() {
		return func(string) bool { return true }
	}
	return set.NeedsProperties
}

// needCtx says which events' context evaluation must decode.
func (c *CDP) needCtx(set *segments.Set) func(string) bool {
	if c.evalFromEvents.Load() {
		return func(string) bool { return true }
	}
	return set.NeedsContext
}

// traitValues derives the computed traits (segments.ComputedTraits,
// traits.go) at evaluation time: from the person's event digests, or, as
// the reference the property test checks them against, from their full
// decrypted events (evalFromEvents).
func (p *personView) traitValues() (*traitValues, error) {
	if p.derived != nil || p.err != nil {
		return p.derived, p.err
	}
	var in traitInput
	if p.c.evalFromEvents.Load() {
		p.loadEvents()
		for name, evs := range p.events {
			for _, e := range evs {
				in.addEvent(name, e)
			}
		}
	} else {
		p.loadDigest()
		for _, d := range p.digests {
			for it := d.iter(); it.next(); {
				in.add(p.names[it.name], time.Unix(0, it.at).UTC(), it.rev, it.disc, it.extra())
			}
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.c.evalFromEvents.Load() {
		in.reachable = reachableTrait(p.Trait("email")) || reachableTrait(p.Trait("phone"))
	} else {
		// From the gate inputs in memory: decrypting every profile record
		// for two traits was a third of an evaluation.
		if g, err := p.gateInputs(); err != nil {
			if p.err == nil {
				p.err = err
			}
		} else {
			in.reachable = g.reachable
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	v := computeTraits(in, p.now)
	p.derived = &v
	return p.derived, nil
}

// Computed returns a computed number (segments.ComputedTraits).
func (p *personView) Computed(name string) (float64, bool) {
	if p.derived == nil && !p.c.evalFromEvents.Load() && isQuick(name) {
		v := p.quickValues()
		x, ok := v.get(name)
		return x, ok && !math.IsNaN(x)
	}
	v, err := p.traitValues()
	if err != nil {
		return 0, false
	}
	x, ok := v.num[name]
	return x, ok && !math.IsNaN(x)
}

// isQuick reports whether computeValues gives the computed number name: a
// person's orders (time, revenue, discount) and first-seen time are all it
// needs.
func isQuick(name string) bool {
	return slices.Contains(quickNames[:], name)
}

// quickValues are computeValues' numbers straight from the digests,
// without what traitValues also builds (order ids and categories,
// touches, texts, reachability): a top or bottom metric asks this of
// everyone, and building every trait was most of it. The orders are
// sorted as computeTraits sorts them (cmpOrder: time, then revenue), so
// sums add up in the same order and the values are the same to the bit.
func (p *personView) quickValues() *quickNums {
	if p.quickOK || p.err != nil {
		return &p.quick
	}
	p.loadDigest()
	if p.err != nil {
		return &p.quick
	}
	var buf [16]order // most people's orders: no allocation
	orders := buf[:0]
	var first time.Time
	ordered := uint32(slices.Index(p.names, orderCompleted)) // -1: no order among the names
	for _, d := range p.digests {
		for it := d.iter(); it.next(); {
			at := time.Unix(0, it.at).UTC()
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if it.name == ordered {
				orders = append(orders, order{at: at, rev: it.rev, disc: it.disc})
			}
		}
	}
	slices.SortFunc(orders, cmpOrder)
	p.quick, p.quickOK = computeQuick(orders, first, p.now), true
	return &p.quick
}

// ComputedText returns a computed text or time (segments.ComputedTraits).
func (p *personView) ComputedText(name string) (string, bool) {
	v, err := p.traitValues()
	if err != nil {
		return "", false
	}
	s, ok := v.text[name]
	return s, ok
}

// namedEvents are a person's events of one name, from the digests.
type namedEvents struct {
	name   string
	events []segments.Event
}

// loadDigest finds the person's event digests (aggregate.go): names and
// times of every event, values of orders, without decrypting events once
// the digests are cached. Events and traitValues read only what they need
// of them.
func (p *personView) loadDigest() {
	if p.digestsDone || p.err != nil {
		return
	}
	p.fetch()
	for i, n := range p.members {
		if p.digests[i] != nil {
			continue
		}
		d, names, err := p.c.digestOf(p.ctx, n)
		if err != nil {
			p.err = err
			return
		}
		p.digests[i] = d
		if len(names) > len(p.names) {
			p.names = names
		}
	}
	p.digestsDone = true
}

// fetch fills gnodes and digests from memory: with the view's group
// (people), unless the group was closed first, else alone.
func (p *personView) fetch() {
	if g := p.group; g != nil {
		p.group = nil
		g.once.Do(func() { g.fetch(p.viewRun) })
	}
	if p.fetched {
		return
	}
	t := p.c.nodes
	t.mu.RLock()
	defer t.mu.RUnlock()
	p.fetchLocked(t, p.c.aggs.list)
}

// fetchLocked is fetch with t.mu held; names is the digests' name list.
func (p *personView) fetchLocked(t *nodeTable, names []string) {
	if n := len(p.members); n == 1 {
		p.gnodes, p.digests = p.oneGate[:], p.oneDigest[:]
	} else {
		p.gnodes = fitSlice(p.spareGates, n)
		p.digests = fitSlice(p.spareDigests, n)
	}
	for i, m := range p.members {
		e := t.get(m)
		p.gnodes[i], p.digests[i] = e.gate, e.dig
	}
	p.names, p.fetched = names, true
}

// fitSlice returns n cleared elements, in spare's array if it is large
// enough.
func fitSlice[T any](spare []T, n int) []T {
	if cap(spare) < n {
		return make([]T, n)
	}
	s := spare[:n]
	clear(s)
	return s
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// ApplySegmentData parses and applies a definition.
func (c *CDP) ApplySegmentData(ctx context.Context, data []byte) (*segments.Definition, error) {
	d, err := c.ParseSegment(data)
	if err != nil {
		return nil, err
	}
	return d, c.ApplySegment(ctx, d)
}

// DeleteSegment removes a definition with its memberships, size history
// and flow (other segments' flows keep the counts of people who came from
// it, under its name).
// A segment another one refers to (in_segment) is refused.
func (c *CDP) DeleteSegment(ctx context.Context, name string) error {
	c.defMu.Lock()
	defer c.defMu.Unlock()
	// No membership writer runs between the scan and the last delete: one
	// that read the definition before would write records after it.
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	defs, err := c.Segments(ctx)
	if err != nil {
		return err
	}
	var rest []*segments.Definition
	found := false
	for _, d := range defs {
		if d.Name == name {
			found = true
			continue
		}
		rest = append(rest, d)
	}
	if !found {
		return fmt.Errorf("%s: %w", name, ErrSegmentNotFound)
	}
	if _, err := segments.NewSet(c.known(), rest...); err != nil {
		return fmt.Errorf("%w: another segment refers to %s: %w", ErrInvalidInput, name, err)
	}
	var keys [][]byte
	err = c.store.View(ctx, func(tx *store.Txn) error {
		for _, p := range [][]byte{store.MembershipPrefix(name), []byte(string(store.PrefixSizes) + name + "/"), store.FlowPrefix(name)} {
			if err := tx.Scan(p, store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
				keys = append(keys, k)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	keys = append(keys, []byte(string(store.PrefixSegmentDef)+name), store.SegmentUseKey(name))
	for start := 0; start < len(keys); start += 5000 {
		chunk := keys[start:min(start+5000, len(keys))]
		if err := c.store.Update(ctx, func(tx *store.Txn) error {
			for _, k := range chunk {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	c.personal.flush() // its memberships are gone
	c.live.segmentsChanged()
	return c.record(ctx, "segment.delete", map[string]any{"segment": name})
}
