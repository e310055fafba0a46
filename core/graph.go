package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	if prev, ok, err := c.knownObs(tx, st, sorted[0], h); err != nil {
		return err
	} else if ok && !key.Less(prev) {
		return nil // the same evidence, seen no later: nothing changes
	}
	rec := append(key.Bytes(), make([]byte, 0, 16*len(sorted))...)
	for _, n := range sorted {
		rec = append(rec, n[:]...)
	}
	for _, n := range sorted {
		if err := tx.Set(store.ObsKeyFor(n, h), rec); err != nil {
			return err
		}
	}
	st.obs[string(h)] = key

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
		return c.replayComponent(tx, sorted, res)
	}
	// Load the clusters involved and apply the observation to them.
	cl := identity.NewClusters(&c.rules, nil, nil)
	oldRoot := map[uuid.UUID]uuid.UUID{}
	var seps []identity.Separation
	mems := map[uuid.UUID]membership{}
	for r, rm := range roots {
		cl.Add(rm.node(r))
		cl.SetLast(r, rm.last)
		mems[r] = rm
		var ids []uuid.UUID
		err := tx.Scan(store.PIDPrefix(store.PrefixCluster, r), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			var m uuid.UUID
			copy(m[:], k[len(k)-16:])
			ids = append(ids, m)
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range ids {
			mm := rm
			if m != r {
				if mm, err = c.getMember(tx, m); err != nil {
					return err
				}
			}
			mems[m] = mm
			oldRoot[m] = r
			cl.AddMember(mm.node(m), r)
			s, err := c.separations(tx, m)
			if err != nil {
				return err
			}
			seps = append(seps, s...)
		}
	}
	cl.AddSeparations(seps...)
	outcomes := cl.Apply(identity.Observation{Key: key, Nodes: sorted, Explicit: it.explicit})
	return c.persistClusters(tx, cl, mems, oldRoot, outcomes, res, true)
}

func (c *CDP) knownObs(tx *store.Txn, st *groupState, first uuid.UUID, h []byte) (identity.ObsKey, bool, error) {
	if k, ok := st.obs[string(h)]; ok {
		return k, true, nil
	}
	if k, ok := c.obs.get(h); ok {
		return k, true, nil
	}
	v, err := tx.Get(store.ObsKeyFor(first, h))
	if errors.Is(err, store.ErrNotFound) {
		return identity.ObsKey{}, false, nil
	}
	if err != nil {
		return identity.ObsKey{}, false, err
	}
	k, ok := identity.ParseObsKey(v[:24])
	if !ok {
		return k, false, fmt.Errorf("observation record: bad key")
	}
	st.obs[string(h)] = k
	return k, true, nil
}

func (c *CDP) separations(tx *store.Txn, pid uuid.UUID) ([]identity.Separation, error) {
	var out []identity.Separation
	err := tx.Scan(store.PIDPrefix(store.PrefixSeparation, pid), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
		var o uuid.UUID
		copy(o[:], k[len(k)-16:])
		out = append(out, identity.Separation{A: pid, B: o})
		return nil
	})
	return out, err
}

// replayComponent re-clusters every node connected to start through
// observations, from scratch, and rewrites memberships and the journal.
func (c *CDP) replayComponent(tx *store.Txn, start []uuid.UUID, res *IngestResult) error {
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
		s, err := c.separations(tx, n)
		if err != nil {
			return err
		}
		seps = append(seps, s...)
		err = tx.Scan(store.PIDPrefix(store.PrefixObs, n), store.ScanOptions{}, func(k, v []byte) error {
			h := string(k[len(k)-16:])
			if _, ok := obs[h]; ok {
				return nil
			}
			key, ok := identity.ParseObsKey(v[:24])
			if !ok || (len(v)-24)%16 != 0 {
				return fmt.Errorf("observation record: corrupt")
			}
			o := identity.Observation{Key: key, Explicit: key.Tie[0]&0x80 != 0}
			for i := 24; i < len(v); i += 16 {
				var p uuid.UUID
				copy(p[:], v[i:i+16])
				o.Nodes = append(o.Nodes, p)
				queue = append(queue, p)
			}
			obs[h] = o
			return nil
		})
		if err != nil {
			return err
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
	// drop it and write the replay's.
	for n := range types {
		var stale [][]byte
		err := tx.Scan(store.PIDPrefix(store.PrefixJournal, n), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			stale = append(stale, k)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
	}
	cl, outcomes := identity.Replay(&c.rules, nodes, list, seps)
	c.metrics.replays.Inc()
	return c.persistClusters(tx, cl, types, oldRoot, outcomes, res, false)
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

// persistClusters writes the memberships that changed and the outcomes.
// counted says whether the outcomes are new (incremental) and so counted
// in res; a replay rewrites outcomes that were counted before.
func (c *CDP) persistClusters(tx *store.Txn, cl *identity.Clusters, mems map[uuid.UUID]membership,
	oldRoot map[uuid.UUID]uuid.UUID, outcomes []identity.Outcome, res *IngestResult, counted bool) error {
	roots := cl.Roots()
	for n, m := range mems {
		nr, or := roots[n], oldRoot[n]
		if nr != or {
			if err := tx.Delete(store.ClusterKey(or, n)); err != nil {
				return err
			}
			if err := tx.Set(store.ClusterKey(nr, n), []byte(m.typ)); err != nil {
				return err
			}
		}
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
	for _, o := range outcomes {
		e := journalEntry{Merged: o.Merged, Into: o.Into, From: o.From, At: time.Unix(0, o.Key.TS).UTC(),
			Message: fmt.Sprintf("%x", o.Key.Tie[:8]), Trigger: o.Trigger, Reason: o.Reason}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := tx.Set(store.JournalKey(o.From, o.Key.Bytes(), o.Into), b); err != nil {
			return err
		}
		if !o.Merged {
			// A refusal concerns both people, who stay apart: both see it.
			if err := tx.Set(store.JournalKey(o.Into, o.Key.Bytes(), o.From), b); err != nil {
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
	return nil
}
