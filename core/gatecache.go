package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"
	"unique"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/privacy"
)

// Gate inputs in memory: what the policy gate needs of each node — the
// few traits a jurisdiction is derived from and the node's consent records
// — kept in memory once read, so that evaluating a segment does not
// decrypt and decode every profile record and consent record again for
// every person at every evaluation (it was 70% of a warm evaluation). Like
// the event digests (aggregate.go) they are never written anywhere: the
// sealed records stay the only durable copy, and the cache holds nothing a
// crash could lose or an erasure could miss (erasure drops the nodes).
//
// The committer writes entries through: once a group is durable, each node
// whose record it wrote gets its entry from that record, which it holds in
// plaintext anyway — unless the node has consent records, which the group
// does not all have at hand: then the entry is dropped. So the gate inputs
// of everyone ingested since Open are in memory, and a brand-new segment's
// first evaluation decrypts nothing for them. Consent recorded through the
// API drops its node's entry once durable. Nodes not in memory (ingested
// before Open) get their entry on first use, in a read transaction of its
// own begun after the build is registered.
// A build that overlaps an invalidation of its node is not cached (it may
// have read the state before the change), so a cached entry is always
// exact. A person is combined from their nodes' entries at evaluation time,
// exactly as consentOf combines the records it reads.

// gateTraits are the traits jurisdictionOf reads, and the two that say
// whether a person can be reached (the lifecycle stage's subscriber).
var gateTraits = [...]string{"jurisdiction", "address", "country", "state", "email", "phone"}

// gateNode is what the gate needs of one node, kept small: a million
// people's entries as maps (traits, trait times, the resolved consent
// states) were a third of the heap. The traits are one encoded slice; the
// consent view of a person who is this node alone is resolved once, as the
// indexes of the records that govern each purpose, a jurisdiction and two
// flags, and is turned into a policy subject or a ConsentView when asked.
type gateNode struct {
	traits   gateTraitList     // gateTraits only
	consents []privacy.Consent // in key order, as consentRecords returns them
	// The view of a person who is this node alone (most people): resolved
	// once, not at every evaluation. Shared: read only.
	states       []int // per purpose, the index in consents of its record (privacy.Latest)
	jurisdiction string
	gpc          bool // a record came from Global Privacy Control
	reachable    bool // a non-empty email or phone (lifecycle: subscriber)
	// class is the node's gate class (gateclass.go), given when the entry
	// enters the table; noClass until then, or when it has none.
	class uint32
}

// newGateNode makes an entry, resolving its alone view as gateView would.
// tm holds the traits of the list (other traits too, which are not read),
// so that a caller holding them decoded does not decode the list again.
// The entry takes consents (its texts are made canonical in place).
func newGateNode(traits gateTraitList, tm map[string]json.RawMessage, consents []privacy.Consent) *gateNode {
	for i := range consents {
		canonicalTexts(&consents[i])
	}
	n := &gateNode{traits: traits, consents: consents}
	n.reachable = reachableRaw(tm["email"]) || reachableRaw(tm["phone"])
	// One node: no records compete and the merge time plays no part, so
	// each purpose's state is the node's latest record for it.
	n.states = privacy.Latest(consents)
	for _, c := range consents {
		n.gpc = n.gpc || c.Source == privacy.SourceGPC
	}
	// Canonical, as the records' texts are: a store has a few dozen
	// jurisdictions, and a million nodes held one string each ("US-CA" is
	// built by concatenation; a decoded trait is a fresh string).
	if j := jurisdictionOf(tm, n.history()); j != "" {
		n.jurisdiction = unique.Make(j).Value()
	}
	return n
}

// canonicalTexts replaces a record's texts by their canonical copies
// (unique.Make): a million people's records held their purpose, status,
// source and notice each in an allocation of its own, though a store has
// a handful of each.
func canonicalTexts(c *privacy.Consent) {
	for _, s := range [...]*string{&c.Purpose, &c.Status, &c.LawfulBasis, &c.Jurisdiction, &c.Source, &c.Notice} {
		if *s != "" {
			*s = unique.Make(*s).Value()
		}
	}
}

// withConsents returns the entry of the same traits with these records.
func (n *gateNode) withConsents(consents []privacy.Consent) *gateNode {
	tm, _ := n.traits.maps()
	return newGateNode(n.traits, tm, consents)
}

// hasInputs: the node has a gate trait or a consent record.
func (n *gateNode) hasInputs() bool { return len(n.traits) > 0 || len(n.consents) > 0 }

// history is the node's records by collection time, as ConsentView has them.
func (n *gateNode) history() []privacy.Consent {
	h := append([]privacy.Consent{}, n.consents...)
	sort.Slice(h, func(i, j int) bool { return h[i].CollectedAt.Before(h[j].CollectedAt) })
	return h
}

// view is the ConsentView of a person who is this node alone.
func (n *gateNode) view() ConsentView {
	v := ConsentView{Jurisdiction: n.jurisdiction, States: make(map[string]privacy.State, len(n.states)), History: n.history()}
	for _, i := range n.states {
		r := n.consents[i]
		v.States[r.Purpose] = privacy.State{Record: r}
	}
	return v
}

// subject is the policy subject of a person who is this node alone: what
// subjectInput makes of view(), without the view. Its consents go into m
// (empty), which the caller may lend: a decision does not keep its input.
func (n *gateNode) subject(m map[string]policies.Consent) policies.Subject {
	for _, i := range n.states {
		m[n.consents[i].Purpose] = n.consents[i].Policy()
	}
	return policies.Subject{Jurisdiction: n.jurisdiction, GPC: n.gpc, Consents: m}
}

// gateTraitList holds a node's gateTraits in one slice, each as
//
//	index in gateTraits  1 byte
//	time                 8 bytes unix seconds, 4 bytes nanoseconds (little endian)
//	value                uvarint length, raw JSON
type gateTraitList []byte

func makeGateTraits(traits map[string]json.RawMessage, times map[string]time.Time) gateTraitList {
	var l gateTraitList
	for i, k := range gateTraits {
		v, ok := traits[k]
		if !ok {
			continue
		}
		t := times[k]
		l = append(l, byte(i))
		l = binary.LittleEndian.AppendUint64(l, uint64(t.Unix()))
		l = binary.LittleEndian.AppendUint32(l, uint32(t.Nanosecond()))
		l = binary.AppendUvarint(l, uint64(len(v)))
		l = append(l, v...)
	}
	return l
}

// each calls f with every trait, its value (sharing the list's bytes) and
// time.
func (l gateTraitList) each(f func(k string, v json.RawMessage, at time.Time)) {
	for len(l) >= 13 {
		k := gateTraits[l[0]]
		at := time.Unix(int64(binary.LittleEndian.Uint64(l[1:])), int64(binary.LittleEndian.Uint32(l[9:]))).UTC()
		n, w := binary.Uvarint(l[13:])
		f(k, json.RawMessage(l[13+w:13+w+int(n)]), at)
		l = l[13+w+int(n):]
	}
}

// maps returns the traits and their times; values share the list's bytes.
func (l gateTraitList) maps() (map[string]json.RawMessage, map[string]time.Time) {
	if len(l) == 0 {
		return nil, nil
	}
	traits, times := map[string]json.RawMessage{}, map[string]time.Time{}
	l.each(func(k string, v json.RawMessage, at time.Time) { traits[k], times[k] = v, at })
	return traits, times
}

// gateCache holds the gate inputs of nodes, in the node table
// (nodetable.go), under its lock. Safe for concurrent use.
type gateCache struct {
	t        *nodeTable
	classes  *gateClasses
	building builds // guarded by t.mu
}

func newGateCache(t *nodeTable, classes *gateClasses) *gateCache {
	return &gateCache{t: t, classes: classes, building: builds{}}
}

// invalidate forgets nodes whose record or consent changed (or that were
// erased), and marks builds in progress for them as stale.
func (g *gateCache) invalidate(pids ...uuid.UUID) {
	if len(pids) == 0 {
		return
	}
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	for _, p := range pids {
		g.t.dropGate(p)
		g.building.touch(p)
	}
}

// put caches entries a commit produced, and marks builds in progress for
// their nodes as stale.
func (g *gateCache) put(entries map[uuid.UUID]*gateNode) {
	for _, n := range entries {
		g.classes.classify(n) // before n is published, outside the lock
	}
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	for p, n := range entries {
		g.t.setGate(p, n)
		g.building.touch(p)
	}
}

func (g *gateCache) get(pid uuid.UUID) (*gateNode, bool) {
	g.t.mu.RLock()
	defer g.t.mu.RUnlock()
	n := g.t.get(pid).gate
	return n, n != nil
}

func (g *gateCache) begin(pid uuid.UUID) {
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	g.building.begin(pid)
}

// end caches a finished build (n != nil) unless the node was invalidated
// meanwhile.
func (g *gateCache) end(pid uuid.UUID, n *gateNode) {
	if n != nil {
		g.classes.classify(n) // before n is published, outside the lock
	}
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	if clean := g.building.end(pid); n != nil && clean {
		if g.t.get(pid).gate == nil {
			g.t.setGate(pid, n)
		}
	}
}

// gatesCommitted updates the gate inputs of the nodes a durable group
// changed (see above). A node the group created has all its consent records
// in the group: its entry is written through with them.
func (c *CDP) gatesCommitted(st *groupState) {
	// withRecords: the group holds all of the node's consent records.
	withRecords := func(p uuid.UUID) bool {
		_, ok := st.consentRecs[p]
		return ok && st.born[p]
	}
	put := make(map[uuid.UUID]*gateNode, len(st.gates))
	var drop []uuid.UUID
	for _, w := range st.gates {
		switch {
		case !c.consented.has(w.pid):
			put[w.pid] = w.node
		case withRecords(w.pid):
			put[w.pid] = w.node.withConsents(inKeyOrder(st.consentRecs[w.pid]))
		default:
			drop = append(drop, w.pid)
		}
	}
	for _, p := range st.consents {
		if !withRecords(p) || put[p] == nil {
			delete(put, p)
			drop = append(drop, p)
		}
	}
	c.gates.put(put)
	c.gates.invalidate(drop...)
}

// keyedConsent is a consent record a group wrote, with its key.
type keyedConsent struct {
	key []byte
	rec privacy.Consent
}

// inKeyOrder returns the records as a scan of their keys would (a key
// written twice counts once, as in the store).
func inKeyOrder(recs []keyedConsent) []privacy.Consent {
	sorted := append([]keyedConsent{}, recs...)
	sort.SliceStable(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].key, sorted[j].key) < 0 })
	out := make([]privacy.Consent, 0, len(sorted))
	for i, r := range sorted {
		if i+1 < len(sorted) && bytes.Equal(r.key, sorted[i+1].key) {
			continue // the later write of the same key is the one stored
		}
		out = append(out, r.rec)
	}
	return out
}

// gateWrite is a gate input a group computed for a record it wrote.
type gateWrite struct {
	pid  uuid.UUID
	node *gateNode
}

// gateNodeFrom keeps the gateTraits. Nodes without any
// share one empty entry.
func gateNodeFrom(traits map[string]json.RawMessage, times map[string]time.Time) *gateNode {
	l := makeGateTraits(traits, times)
	if len(l) == 0 {
		return noGateTraits
	}
	return newGateNode(l, traits, nil)
}

// noGateTraits is the entry of a node without any of the gateTraits or
// consent records (most anonymous visitors). Never modified: its class,
// the first of every CDP's, is set here, not when it enters a table.
var noGateTraits = func() *gateNode {
	n := newGateNode(nil, nil, nil)
	n.class = noInputsClass
	return n
}()

// gateNodeOf returns a node's gate input, reading it from the store if it
// is not cached (in a read transaction of its own, begun after the build is
// registered: see above). Cached entries are shared: callers must not
// modify them.
func (c *CDP) gateNodeOf(ctx context.Context, pid uuid.UUID) (*gateNode, error) {
	if n, ok := c.gates.get(pid); ok {
		return n, nil
	}
	c.gates.begin(pid)
	var n *gateNode
	err := c.store.View(ctx, func(tx *store.Txn) error {
		rec, err := c.getTraits(ctx, tx, pid)
		if err != nil {
			return err
		}
		n = gateNodeFrom(rec.Traits, rec.TraitTimes)
		consents, err := c.consentRecords(ctx, tx, pid)
		if len(consents) > 0 {
			n = n.withConsents(consents)
		}
		return err
	})
	if err != nil {
		c.gates.end(pid, nil)
		return nil, err
	}
	c.gates.end(pid, n)
	return n, nil
}

// personGate is what the gate and the computed traits need of a person:
// the one node that holds all their gate inputs (most people: the
// userId's node, the others carrying none), else their merged view.
type personGate struct {
	only      *gateNode    // the person's inputs are all on this node
	merged    *ConsentView // else: resolved from every node
	reachable bool
}

// view returns the person's ConsentView.
func (g personGate) view() ConsentView {
	if g.only != nil {
		return g.only.view()
	}
	return *g.merged
}

// subject returns the person's policy subject; m (empty, or nil for a new
// map) is as for gateNode.subject.
func (g personGate) subject(m map[string]policies.Consent) policies.Subject {
	if g.only != nil {
		if m == nil {
			m = make(map[string]policies.Consent, len(g.only.states))
		}
		return g.only.subject(m)
	}
	return subjectOf(*g.merged)
}

// gateView resolves a person's gate inputs (root and members) from the
// nodes' entries: what consentOf computes from the records themselves,
// for the traits jurisdictionOf reads, and whether the merged traits
// (merged as traitsOf merges them) make the person reachable. nodes[i] is
// members[i]'s entry as fetched from memory, or nil: it is read then (and
// nodes[i] set).
func (c *CDP) gateView(ctx context.Context, tx *store.Txn, root uuid.UUID, members []uuid.UUID, nodes []*gateNode) (personGate, error) {
	for i, m := range members {
		if nodes[i] != nil {
			continue
		}
		n, err := c.gateNodeOf(ctx, m)
		if err != nil {
			return personGate{}, fmt.Errorf("profile %s: %w", m, err)
		}
		nodes[i] = n
	}
	// Most people have their traits and consent on one node (the userId's)
	// and none on the others (an email's, a device's): their view is that
	// node's, resolved once when it was cached.
	only := noGateTraits
	inputs := 0
	for _, n := range nodes {
		if n.hasInputs() {
			only, inputs = n, inputs+1
		}
	}
	if inputs <= 1 {
		return personGate{only: only, reachable: only.reachable}, nil
	}
	v := ConsentView{States: map[string]privacy.State{}, History: []privacy.Consent{}}
	traits := map[string]json.RawMessage{}
	at := map[string]time.Time{}
	var per [][]privacy.Consent
	for _, n := range nodes {
		n.traits.each(func(k string, v json.RawMessage, t time.Time) { mergeTrait(traits, at, k, v, t) })
		per = append(per, n.consents)
		v.History = append(v.History, n.consents...)
	}
	// The merge time matters only when records of two nodes compete
	// (privacy.Resolve); most people have records on one node or none, and
	// reading the root's membership for them was a fifth of an evaluation.
	withRecords := 0
	for _, recs := range per {
		if len(recs) > 0 {
			withRecords++
		}
	}
	var mergedAt time.Time
	if withRecords > 1 {
		rm, err := c.getMember(tx, root)
		if err != nil {
			return personGate{}, err
		}
		if !rm.last.IsZero() {
			mergedAt = time.Unix(0, rm.last.TS)
		}
	}
	v.States = privacy.Resolve(per, mergedAt)
	sort.Slice(v.History, func(i, j int) bool { return v.History[i].CollectedAt.Before(v.History[j].CollectedAt) })
	v.Jurisdiction = jurisdictionOf(traits, v.History)
	return personGate{merged: &v, reachable: reachableRaw(traits["email"]) || reachableRaw(traits["phone"])}, nil
}
