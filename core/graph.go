package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// maxComponent bounds a replay. A component this large means an identifier
// shared by thousands of people that the blocklist should name; the replay
// still runs, and says so.
const maxComponent = 200000

// membership is the value of m/<pid>: root (16), last accepted merge on
// roots (24), the identifier's keyed hash as its order token (32), type.
type membership struct {
	root  uuid.UUID
	last  identity.ObsKey
	token []byte
	typ   identity.Type
}

func (m membership) node(pid uuid.UUID) identity.Node {
	return identity.Node{ID: pid, Type: m.typ, Token: m.token}
}

func (c *CDP) setMember(tx *store.Txn, pid uuid.UUID, m membership) error {
	v := make([]byte, 0, 16+24+32+len(m.typ))
	v = append(v, m.root[:]...)
	if m.last.IsZero() {
		v = append(v, make([]byte, 24)...)
	} else {
		v = append(v, m.last.Bytes()...)
	}
	v = append(v, m.token...)
	v = append(v, m.typ...)
	return tx.Set(store.MemberKey(pid), v)
}

// clusterMember is one entry of n/<root>: the members of a cluster live in
// one value so that the committer reads them with a point lookup (an
// iterator inside a large write transaction costs a sort of its writes).
type clusterMember struct {
	pid   uuid.UUID
	token []byte
	typ   identity.Type
}

func encodeMembers(ms []clusterMember) []byte {
	var b []byte
	for _, m := range ms {
		b = append(b, m.pid[:]...)
		b = append(b, m.token...)
		b = append(b, byte(len(m.typ)))
		b = append(b, m.typ...)
	}
	return b
}

func decodeMembers(b []byte) ([]clusterMember, error) {
	var out []clusterMember
	for len(b) > 0 {
		if len(b) < 49 || len(b) < 49+int(b[48]) {
			return nil, fmt.Errorf("cluster record: corrupt")
		}
		var m clusterMember
		copy(m.pid[:], b[:16])
		m.token = append([]byte(nil), b[16:48]...)
		n := int(b[48])
		m.typ = identity.Type(b[49 : 49+n])
		out = append(out, m)
		b = b[49+n:]
	}
	return out, nil
}

// memberPIDs decodes only the profile ids of a cluster record, checked as
// decodeMembers checks it, into a slice of their exact number: a segment
// scan reads every cluster and needs nothing else of it.
// They go into buf when it has room (a caller's array for the one member
// most people have).
func memberPIDs(b []byte, buf []uuid.UUID) ([]uuid.UUID, error) {
	n := 0
	for r := b; len(r) > 0; n++ {
		if len(r) < 49 || len(r) < 49+int(r[48]) {
			return nil, fmt.Errorf("cluster record: corrupt")
		}
		r = r[49+int(r[48]):]
	}
	out := buf[:0]
	if cap(out) < n {
		out = make([]uuid.UUID, 0, n)
	}
	out = out[:n]
	for i := range out {
		copy(out[i][:], b[:16])
		b = b[49+int(b[48]):]
	}
	return out, nil
}

func (c *CDP) getMembers(tx *store.Txn, root uuid.UUID) ([]clusterMember, error) {
	v, err := tx.Get(store.ClusterKey(root))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", root, err)
	}
	return decodeMembers(v)
}

func (c *CDP) getMember(tx *store.Txn, pid uuid.UUID) (membership, error) {
	v, err := tx.Get(store.MemberKey(pid))
	if err != nil {
		return membership{}, fmt.Errorf("membership of %s: %w", pid, err)
	}
	if len(v) < 72 {
		return membership{}, fmt.Errorf("membership of %s: short record", pid)
	}
	var m membership
	copy(m.root[:], v[:16])
	if !bytes.Equal(v[16:40], make([]byte, 24)) {
		m.last, _ = identity.ParseObsKey(v[16:40])
	}
	m.token = v[40:72]
	m.typ = identity.Type(v[72:])
	return m, nil
}

// observe records that nodes (strongest first) were seen together in one
// message and updates the clusters. The result equals replaying every
// observation in (event time, message hash) order, whatever the arrival
// order: an observation newer than every accepted merge of the clusters it
// touches is applied incrementally (the replay would do the same); an older
// one triggers a replay of its connected component.
func (c *CDP) observe(tx *store.Txn, st *groupState, it *prepared, nodes []uuid.UUID, res *IngestResult) error {
	sorted := append([]uuid.UUID(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i][:], sorted[j][:]) < 0 })
	h := obsHash(sorted)
	key := identity.ObsKey{TS: it.ts, Tie: it.mid}
	if it.explicit {
		// Explicit merges (alias) sort into their own keyspace of ties so
		// that the record tells them apart; see identity.Observation.
		key.Tie[0] |= 0x80
	} else {
		key.Tie[0] &^= 0x80
	}
	prev, replaced, err := c.knownObs(tx, st, sorted[0], h)
	if err != nil {
		return err
	}
	if replaced && !key.Less(prev) {
		return nil // the same evidence, seen no later: nothing changes
	}
	for _, n := range sorted {
		var list []byte
		lk := store.ObsListKey(n)
		if st.mayHave(tx, n, lk) {
			if list, err = tx.Get(lk); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if list, err = putObs(list, h, key, sorted); err != nil {
			return fmt.Errorf("observations of %s: %w", n, err)
		}
		if err := tx.Set(lk, list); err != nil {
			return err
		}
	}
	st.obs[string(h)] = key
	c.obsFilter.add(h)

	roots := map[uuid.UUID]membership{}
	incremental := true
	for _, n := range sorted {
		m, err := c.getMember(tx, n)
		if err != nil {
			return err
		}
		if _, ok := roots[m.root]; ok {
			continue
		}
		rm, err := c.getMember(tx, m.root)
		if err != nil {
			return err
		}
		roots[m.root] = rm
		if !rm.last.IsZero() && key.Less(rm.last) {
			incremental = false
		}
	}
	if incremental && len(roots) == 1 {
		return nil
	}
	if !incremental {
		return c.replayComponent(tx, sorted, res, st)
	}
	// Load the clusters involved and apply the observation to them.
	cl := identity.NewClusters(&c.rules, nil, nil)
	oldRoot := map[uuid.UUID]uuid.UUID{}
	var seps []identity.Separation
	mems := map[uuid.UUID]membership{}
	for r, rm := range roots {
		cl.Add(rm.node(r))
		cl.SetLast(r, rm.last)
		ms, err := st.members(c, tx, r, rm)
		if err != nil {
			return err
		}
		for _, m := range ms {
			mm := membership{root: r, token: m.token, typ: m.typ}
			if m.pid == r {
				mm = rm
			}
			mems[m.pid] = mm
			oldRoot[m.pid] = r
			cl.AddMember(mm.node(m.pid), r)
			seps = append(seps, c.seps.of(m.pid)...)
		}
	}
	cl.AddSeparations(seps...)
	outcomes := cl.Apply(identity.Observation{Key: key, Nodes: sorted, Explicit: it.explicit})
	return c.persistClusters(tx, cl, mems, oldRoot, outcomes, res, true, false, st)
}

// knownObs returns the order key recorded for the observation h, whose
// smallest node is first. Newest first: this group, then the group in flight
// under it, then the cache of committed groups, then the store. The order
// matters: the commit loop publishes group N to c.obs after it built group
// N+1 on top of it, so while N+1 is in flight c.obs may hold N's key for an
// observation that N+1 moved earlier. Trusting that stale, later key made an
// evidence of a time in between look earlier than the recorded one and
// replace it, so the stored order key (and with it who was merged, and
// who refused) depended on how the commits happened to be pipelined.
func (c *CDP) knownObs(tx *store.Txn, st *groupState, first uuid.UUID, h []byte) (identity.ObsKey, bool, error) {
	if k, ok := st.obs[string(h)]; ok {
		return k, true, nil
	}
	if k, ok := st.prevObs[string(h)]; ok {
		return k, true, nil
	}
	if k, ok := c.obs.get(h); ok {
		return k, true, nil
	}
	key := store.ObsListKey(first)
	if !st.mayHave(tx, first, key) || !c.obsFilter.mayContain(h) && !tx.Pending(key) {
		return identity.ObsKey{}, false, nil // certainly new
	}
	list, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return identity.ObsKey{}, false, nil
	}
	if err != nil {
		return identity.ObsKey{}, false, err
	}
	e, found, err := findObs(list, h)
	if err != nil || !found {
		return identity.ObsKey{}, false, err
	}
	k, ok := identity.ParseObsKey(e.key)
	if !ok {
		return k, false, fmt.Errorf("observation list of %s: %w (order key)", first, ErrCorrupt)
	}
	st.obs[string(h)] = k
	return k, true, nil
}

// replayComponent re-clusters every node connected to start through
// observations, from scratch, and rewrites memberships and the journal.
func (c *CDP) replayComponent(tx *store.Txn, start []uuid.UUID, res *IngestResult, st *groupState) error {
	types := map[uuid.UUID]membership{}
	oldRoot := map[uuid.UUID]uuid.UUID{}
	obs := map[string]identity.Observation{}
	var seps []identity.Separation
	queue := append([]uuid.UUID(nil), start...)
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if _, ok := types[n]; ok {
			continue
		}
		m, err := c.getMember(tx, n)
		if err != nil {
			return err
		}
		types[n], oldRoot[n] = m, m.root
		if len(types) > maxComponent {
			c.log.Warn("identity component is very large; blocklist the shared identifier", "nodes", len(types))
		}
		seps = append(seps, c.seps.of(n)...)
		lk := store.ObsListKey(n)
		if !st.mayHave(tx, n, lk) {
			continue // born in this group, seen in no observation yet
		}
		list, err := tx.Get(lk)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var bad error
		if err := walkObs(list, func(e obsEntry) bool {
			if _, ok := obs[string(e.hash)]; ok {
				return true
			}
			key, ok := identity.ParseObsKey(e.key)
			if !ok {
				bad = fmt.Errorf("observation list of %s: %w (order key)", n, ErrCorrupt)
				return false
			}
			o := identity.Observation{Key: key, Explicit: key.Tie[0]&0x80 != 0, Nodes: make([]uuid.UUID, e.count())}
			for i := range o.Nodes {
				o.Nodes[i] = e.node(i)
			}
			queue = append(queue, o.Nodes...)
			obs[string(e.hash)] = o
			return true
		}); err != nil {
			return fmt.Errorf("observation list of %s: %w", n, err)
		}
		if bad != nil {
			return bad
		}
	}
	nodes := make([]identity.Node, 0, len(types))
	for n, m := range types {
		nodes = append(nodes, m.node(n))
	}
	list := make([]identity.Observation, 0, len(obs))
	for _, o := range obs {
		list = append(list, o)
	}
	// The journal of the component is a function of its observations:
	// persistClusters replaces it by the replay's (fresh).
	cl, outcomes := identity.Replay(&c.rules, nodes, list, seps)
	c.metrics.replays.Inc()
	return c.persistClusters(tx, cl, types, oldRoot, outcomes, res, false, true, st)
}

// journalEntry is the value of j/<from>/<order>/<into>.
type journalEntry struct {
	Merged  bool          `json:"merged"`
	Into    uuid.UUID     `json:"into"`
	From    uuid.UUID     `json:"from"`
	At      time.Time     `json:"at"`      // event time of the message that linked them
	Message string        `json:"message"` // keyed hash of its messageId (hex)
	Trigger identity.Type `json:"trigger"`
	Reason  string        `json:"reason,omitempty"`
}

// persistClusters writes the memberships that changed, the member lists of
// the clusters involved, and the outcomes to the journal. counted says
// whether the outcomes are new (incremental) and so counted in res; fresh
// says the journal of every node was dropped (replay). st, when ingestion
// calls, is the group being built: its born nodes have nothing stored to
// read, and their one-member lists, not written yet (see groupState.born),
// need no deletion when merged away.
func (c *CDP) persistClusters(tx *store.Txn, cl *identity.Clusters, mems map[uuid.UUID]membership,
	oldRoot map[uuid.UUID]uuid.UUID, outcomes []identity.Outcome, res *IngestResult, counted, fresh bool,
	st *groupState) error {
	roots := cl.Roots()
	lists := map[uuid.UUID][]clusterMember{}
	touched := map[uuid.UUID]bool{}
	for n, m := range mems {
		nr, or := roots[n], oldRoot[n]
		lists[nr] = append(lists[nr], clusterMember{pid: n, token: m.token, typ: m.typ})
		touched[or] = true
		var last identity.ObsKey
		if n == nr {
			last = cl.Last(nr)
		}
		if nr != or || last != m.last {
			m.root, m.last = nr, last
			if err := c.setMember(tx, n, m); err != nil {
				return err
			}
		}
	}
	for r := range touched {
		if _, ok := lists[r]; !ok {
			if !st.mayHave(tx, r, store.ClusterKey(r)) {
				continue // never written: nothing to delete
			}
			if err := tx.Delete(store.ClusterKey(r)); err != nil {
				return err
			}
		}
	}
	// mems holds every member of every cluster involved, so a cluster's
	// old member list is the nodes whose old root it was. Most replays
	// (evidence seen again, a little earlier) change no cluster: writing
	// only the lists that changed spares the store most of their writes.
	oldSize := map[uuid.UUID]int{}
	for _, or := range oldRoot {
		oldSize[or]++
	}
	for r, ms := range lists {
		if oldSize[r] == len(ms) && !slices.ContainsFunc(ms, func(m clusterMember) bool { return oldRoot[m.pid] != r }) {
			continue // same members as before
		}
		sort.Slice(ms, func(i, j int) bool { return bytes.Compare(ms[i].pid[:], ms[j].pid[:]) < 0 })
		if err := tx.Set(store.ClusterKey(r), encodeMembers(ms)); err != nil {
			return err
		}
	}
	journal := map[uuid.UUID][]journalEntry{}
	add := func(pid uuid.UUID, e journalEntry) error {
		if _, ok := journal[pid]; !ok && !fresh && st.mayHave(tx, pid, store.JournalKey(pid)) {
			prev, err := c.journal(tx, pid)
			if err != nil {
				return err
			}
			journal[pid] = prev
		}
		journal[pid] = append(journal[pid], e)
		return nil
	}
	for _, o := range outcomes {
		e := journalEntry{Merged: o.Merged, Into: o.Into, From: o.From, At: time.Unix(0, o.Key.TS).UTC(),
			Message: fmt.Sprintf("%x", o.Key.Tie[:8]), Trigger: o.Trigger, Reason: o.Reason}
		if err := add(o.From, e); err != nil {
			return err
		}
		if !o.Merged {
			// A refusal concerns both people, who stay apart: both see it.
			if err := add(o.Into, e); err != nil {
				return err
			}
		}
		if !counted {
			continue
		}
		if o.Merged {
			res.Merges++
		} else {
			res.MergesRefused++
		}
	}
	for pid, es := range journal {
		b, err := json.Marshal(es)
		if err != nil {
			return err
		}
		if fresh && st.mayHave(tx, pid, store.JournalKey(pid)) {
			// Replayed evidence mostly yields the journal already stored.
			if old, err := tx.Get(store.JournalKey(pid)); err == nil && bytes.Equal(old, b) {
				continue
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := tx.Set(store.JournalKey(pid), b); err != nil {
			return err
		}
	}
	if fresh {
		// Nodes the replay gives no journal entry lose the one they had.
		for n := range mems {
			if _, ok := journal[n]; ok || !st.mayHave(tx, n, store.JournalKey(n)) {
				continue
			}
			if err := deleteIfPresent(tx, store.JournalKey(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteIfPresent deletes key if it exists: a read is cheaper than a
// tombstone written, logged and compacted for nothing.
func deleteIfPresent(tx *store.Txn, key []byte) error {
	ok, err := tx.Has(key)
	if err != nil || !ok {
		return err
	}
	return tx.Delete(key)
}

// journal returns the merge journal kept under pid.
func (c *CDP) journal(tx *store.Txn, pid uuid.UUID) ([]journalEntry, error) {
	v, err := tx.Get(store.JournalKey(pid))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var es []journalEntry
	if err := json.Unmarshal(v, &es); err != nil {
		return nil, fmt.Errorf("merge journal of %s: %w", pid, err)
	}
	return es, nil
}

// separationSet holds every separation in memory: they are few (one per
// unmerge), and checking them must not cost a store read per merge. The
// committer owns it; it is loaded at Open.
type separationSet map[uuid.UUID][]uuid.UUID

func (s separationSet) of(pid uuid.UUID) []identity.Separation {
	var out []identity.Separation
	for _, o := range s[pid] {
		out = append(out, identity.Separation{A: pid, B: o})
	}
	return out
}

func (c *CDP) loadSeparations(ctx context.Context) error {
	set := separationSet{}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixSeparation), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			var a, b uuid.UUID
			copy(a[:], k[len(store.PrefixSeparation):])
			copy(b[:], k[len(k)-16:])
			set[a] = append(set[a], b)
			return nil
		})
	})
	c.seps = set
	return err
}
