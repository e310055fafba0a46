package identity

import (
	"bytes"
	"encoding/binary"
	"sort"

	"github.com/google/uuid"
)

// Node is one identifier in the identity graph. Every identifier has its own
// node id (a profile id) under which the events whose primary identifier it
// is are stored; a person is a cluster of nodes.
type Node struct {
	ID   uuid.UUID
	Type Type
	// Token orders nodes of equal priority. It must not depend on arrival
	// order (ids are allocated on arrival): the keyed hash of the
	// identifier serves.
	Token []byte
}

// ObsKey orders observations: event time first, then a keyed hash of the
// message id, so the order is total and does not depend on arrival.
type ObsKey struct {
	TS  int64
	Tie [16]byte
}

// Less reports whether k sorts before o.
func (k ObsKey) Less(o ObsKey) bool {
	if k.TS != o.TS {
		return k.TS < o.TS
	}
	return bytes.Compare(k.Tie[:], o.Tie[:]) < 0
}

// IsZero reports whether k is unset.
func (k ObsKey) IsZero() bool { return k == ObsKey{} }

// Bytes encodes k so that byte order equals Less order.
func (k ObsKey) Bytes() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 24), uint64(k.TS)^(1<<63))
	return append(b, k.Tie[:]...)
}

// ParseObsKey decodes Bytes.
func ParseObsKey(b []byte) (ObsKey, bool) {
	var k ObsKey
	if len(b) != 24 {
		return k, false
	}
	k.TS = int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	copy(k.Tie[:], b[8:])
	return k, true
}

// Observation is a set of identifier nodes seen together in one message:
// evidence that they belong to one person.
type Observation struct {
	Key   ObsKey
	Nodes []uuid.UUID // distinct, sorted
	// Explicit observations (alias) are deliberate merge instructions from
	// the brand's code: limits do not apply to them (separations do).
	Explicit bool
}

// Separation forbids two nodes from ever being in one cluster; an unmerge
// records one.
type Separation struct {
	A, B uuid.UUID
}

// Outcome is what applying one observation did to two clusters.
type Outcome struct {
	Key     ObsKey
	Merged  bool
	Into    uuid.UUID // surviving root
	From    uuid.UUID // folded (or refused) root
	Trigger Type      // the identifier type that linked them
	Reason  string    // for refusals: the limit or separation that stopped it
}

// Clusters is a union-find over identifier nodes that applies merge rules.
// The result of applying observations in ObsKey order depends only on the
// set of observations, never on the order they arrived in: that is what
// makes ingestion order-independent.
type Clusters struct {
	rules  *Rules
	parent map[uuid.UUID]uuid.UUID
	typ    map[uuid.UUID]Type
	token  map[uuid.UUID][]byte
	counts map[uuid.UUID]map[Type]int // root -> type -> distinct count
	last   map[uuid.UUID]ObsKey       // root -> latest accepted merge
	seps   []Separation
}

// NewClusters starts with every node alone.
func NewClusters(rules *Rules, nodes []Node, seps []Separation) *Clusters {
	c := &Clusters{rules: rules, parent: map[uuid.UUID]uuid.UUID{}, typ: map[uuid.UUID]Type{}, token: map[uuid.UUID][]byte{},
		counts: map[uuid.UUID]map[Type]int{}, last: map[uuid.UUID]ObsKey{}, seps: seps}
	for _, n := range nodes {
		c.Add(n)
	}
	return c
}

// Add puts a node in its own cluster (no-op if present).
func (c *Clusters) Add(n Node) {
	if _, ok := c.parent[n.ID]; ok {
		return
	}
	c.parent[n.ID] = n.ID
	c.typ[n.ID] = n.Type
	c.token[n.ID] = n.Token
	c.counts[n.ID] = map[Type]int{n.Type: 1}
}

// AddMember puts a node into an existing cluster rooted at root (used to
// load clusters from the store); root must be added first.
func (c *Clusters) AddMember(n Node, root uuid.UUID) {
	if _, ok := c.parent[n.ID]; ok {
		return
	}
	c.parent[n.ID] = root
	c.typ[n.ID] = n.Type
	c.token[n.ID] = n.Token
	c.counts[root][n.Type]++
}

// SetLast records the latest accepted merge of a loaded cluster.
func (c *Clusters) SetLast(root uuid.UUID, k ObsKey) { c.last[root] = k }

// AddSeparations adds constraints (loaded with the clusters).
func (c *Clusters) AddSeparations(s ...Separation) { c.seps = append(c.seps, s...) }

// Find returns n's root.
func (c *Clusters) Find(n uuid.UUID) uuid.UUID {
	p, ok := c.parent[n]
	if !ok {
		return n
	}
	if p == n {
		return n
	}
	r := c.Find(p)
	c.parent[n] = r
	return r
}

// Last returns the latest accepted merge in root's cluster.
func (c *Clusters) Last(root uuid.UUID) ObsKey { return c.last[c.Find(root)] }

// Roots returns every node's root.
func (c *Clusters) Roots() map[uuid.UUID]uuid.UUID {
	out := make(map[uuid.UUID]uuid.UUID, len(c.parent))
	for n := range c.parent {
		out[n] = c.Find(n)
	}
	return out
}

// Apply merges the clusters of o's nodes as far as the rules allow. The
// node of the strongest identifier anchors the merge; every other cluster
// joins it unless the union would break a limit or a separation, in which
// case that merge is refused and the cluster stays apart.
func (c *Clusters) Apply(o Observation) []Outcome {
	nodes := append([]uuid.UUID(nil), o.Nodes...)
	sort.Slice(nodes, func(i, j int) bool {
		pi, pj := c.rules.Rule(c.typ[nodes[i]]).Priority, c.rules.Rule(c.typ[nodes[j]]).Priority
		if pi != pj {
			return pi < pj
		}
		return bytes.Compare(c.token[nodes[i]], c.token[nodes[j]]) < 0
	})
	var out []Outcome
	if len(nodes) < 2 {
		return nil
	}
	anchor := nodes[0]
	for _, n := range nodes[1:] {
		a, b := c.Find(anchor), c.Find(n)
		if a == b {
			continue
		}
		oc := Outcome{Key: o.Key, Trigger: c.typ[n]}
		if reason := c.blocked(a, b, o.Explicit); reason != "" {
			oc.Into, oc.From, oc.Reason = a, b, reason
			out = append(out, oc)
			continue
		}
		// The older node (smaller UUIDv7) survives: the younger is folded in.
		into, from := a, b
		if bytes.Compare(b[:], a[:]) < 0 {
			into, from = b, a
		}
		c.parent[from] = into
		for t, k := range c.counts[from] {
			c.counts[into][t] += k
		}
		delete(c.counts, from)
		last := o.Key
		if l := c.last[from]; last.Less(l) {
			last = l
		}
		if l := c.last[into]; last.Less(l) {
			last = l
		}
		c.last[into] = last
		delete(c.last, from)
		oc.Merged, oc.Into, oc.From = true, into, from
		out = append(out, oc)
	}
	return out
}

func (c *Clusters) blocked(a, b uuid.UUID, explicit bool) string {
	for t, n := range c.counts[b] {
		if lim := c.rules.Rule(t).Limit; !explicit && lim > 0 && c.counts[a][t]+n > lim {
			return "limit: more than " + itoa(lim) + " " + string(t)
		}
	}
	for _, s := range c.seps {
		ra, rb := c.Find(s.A), c.Find(s.B)
		if (ra == a && rb == b) || (ra == b && rb == a) {
			return "separated by an unmerge"
		}
	}
	return ""
}

// Replay clusters nodes from scratch: every observation in ObsKey order.
func Replay(rules *Rules, nodes []Node, obs []Observation, seps []Separation) (*Clusters, []Outcome) {
	c := NewClusters(rules, nodes, seps)
	sorted := append([]Observation(nil), obs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key.Less(sorted[j].Key) })
	var out []Outcome
	for _, o := range sorted {
		out = append(out, c.Apply(o)...)
	}
	return c, out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
