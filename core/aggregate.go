package core

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/segments"
)

// Per-profile aggregates: what segment evaluation needs of a node's events
// when a definition reads no event properties (segments.NeedsProperties):
// each event's name and time, for orders the revenue, whether a discount
// was used, the order id and the spend per category, for refunds the order
// id, and for touches the traffic source (the inputs of the computed
// traits, traits.go). They are kept in
// memory, never on disk: they are derived from the sealed events, which
// stay the only durable copy, so there is nothing extra to erase, rotate or
// recover after a crash.
//
// A node created since Open has its digest from the start: the committer
// hands every committed event and every node it created to apply. Other
// nodes' digests are built on first use from their sealed events (one
// decrypting scan) and from then on kept current the same way: evaluation
// then decrypts no event of that node again. A build that overlaps a commit touching the same node
// is not cached (the commit may or may not be in the build's snapshot), so
// a cached digest is always exact.

// nodeEvent is a committed event on its way to the digests.
type nodeEvent struct {
	pid uuid.UUID
	ev  orderEvent
}

// orderEvent is what prepare extracts from a message for the digests.
type orderEvent struct {
	name string
	at   int64
	rev  float64
	disc bool
	x    *eventExtra
}

// aggregates holds the digests, in the node table (nodetable.go), and the
// event names they index, under the table's lock. Safe for concurrent use.
type aggregates struct {
	t        *nodeTable
	names    map[string]uint32
	list     []string
	building builds
}

// builds marks the nodes whose cache entry is being built from a read of
// the store, so that a commit touching one meanwhile keeps that build (which
// may predate the commit) out of the cache. Its owner's lock guards it; the
// digests and the gate inputs (gatecache.go) both use it.
type builds map[uuid.UUID]*build

type build struct {
	n     int
	dirty bool
}

func (bs builds) begin(pid uuid.UUID) {
	b, ok := bs[pid]
	if !ok {
		b = &build{}
		bs[pid] = b
	}
	b.n++
}

// touch marks the builds in progress for pid as stale.
func (bs builds) touch(pid uuid.UUID) {
	if b, ok := bs[pid]; ok {
		b.dirty = true
	}
}

// end closes one build of pid and says whether what it read may be cached.
func (bs builds) end(pid uuid.UUID) bool {
	b := bs[pid]
	clean := !b.dirty
	if b.n--; b.n == 0 {
		delete(bs, pid)
	}
	return clean
}

func newAggregates(t *nodeTable) *aggregates {
	return &aggregates{t: t, names: map[string]uint32{}, building: builds{}}
}

func (a *aggregates) intern(name string) uint32 {
	id, ok := a.names[name]
	if !ok {
		id = uint32(len(a.list))
		a.names[name] = id
		a.list = append(a.list, name)
	}
	return id
}

// apply adds committed events to the digests that are cached, and marks
// builds in progress for their nodes as stale.
func (a *aggregates) apply(evs []nodeEvent, created []uuid.UUID) {
	if len(evs) == 0 && len(created) == 0 {
		return
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	// A node the group created has no event but the group's: its digest
	// is known without a read.
	for _, p := range created {
		if a.t.get(p).dig == nil {
			a.t.setDigest(p, digest{})
		}
	}
	for _, e := range evs {
		a.building.touch(e.pid)
		if s := a.t.lookup(e.pid); s != nil && s.dig != nil {
			s.dig = appendDigest(s.dig, a.intern(e.ev.name), &e.ev)
		}
	}
}

// drop forgets nodes (erasure): nothing of a deleted person stays behind,
// in memory either.
func (a *aggregates) drop(pids ...uuid.UUID) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for _, p := range pids {
		a.t.dropDigest(p)
		a.building.touch(p)
	}
}

// get returns a node's cached digest and the event names its name ids
// index (an append-only list: the returned prefix stays valid).
func (a *aggregates) get(pid uuid.UUID) (digest, []string, bool) {
	a.t.mu.RLock()
	defer a.t.mu.RUnlock()
	d := a.t.get(pid).dig
	return d, a.list, d != nil
}

func (a *aggregates) begin(pid uuid.UUID) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.building.begin(pid)
}

// end caches a finished build (ok) unless a commit touched the node
// meanwhile.
func (a *aggregates) end(pid uuid.UUID, evs []orderEvent, ok bool) (digest, []string) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	var out digest
	for i := range evs {
		out = appendDigest(out, a.intern(evs[i].name), &evs[i])
	}
	if out == nil {
		out = digest{}
	}
	if cap(out) > len(out) {
		out = slices.Clone(out) // kept for long: without the growth slack
	}
	if clean := a.building.end(pid); ok && clean {
		if a.t.get(pid).dig == nil {
			a.t.setDigest(pid, out)
		}
	}
	return out, a.list
}

// digestOf returns a node's digest, building it from the store if needed
// (in a read transaction of its own, begun after the build is registered:
// see the package comment above).
func (c *CDP) digestOf(ctx context.Context, pid uuid.UUID) (digest, []string, error) {
	if d, names, ok := c.aggs.get(pid); ok {
		return d, names, nil
	}
	c.aggs.begin(pid)
	var evs []orderEvent
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan(store.EventPrefix(pid), store.ScanOptions{}, func(k, v []byte) error {
			plain, err := c.vault.Unseal(ctx, pid, k, v)
			if err != nil {
				return err
			}
			m, err := event.DecodeStored(plain)
			if err != nil {
				return err
			}
			evs = append(evs, summarise(&m))
			return nil
		})
	})
	if err != nil {
		c.aggs.end(pid, nil, false)
		return nil, nil, err
	}
	d, names := c.aggs.end(pid, evs, true)
	return d, names, nil
}

// eventName is the name segments know an event by: a track's event name,
// else its type.
func eventName(m *event.Message) string {
	if m.Type == event.Track {
		return m.Event
	}
	return string(m.Type)
}

// summarise extracts the digest of one message: orders and refunds carry
// values, read exactly as the full-event path reads them (orderOf,
// orderID), and any event may carry a touch (touchOfMessage reads the raw
// context as touchOfContext reads the decoded one).
func summarise(m *event.Message) orderEvent {
	e := orderEvent{name: eventName(m), at: m.Timestamp.UnixNano()}
	if (e.name == orderCompleted || e.name == orderRefunded) && len(m.Properties) > 0 {
		var props map[string]any
		_ = json.Unmarshal(m.Properties, &props)
		if e.name == orderCompleted {
			o := orderOf(segments.Event{Time: m.Timestamp, Properties: props})
			e.rev, e.disc = o.rev, o.disc
			if o.id != "" || len(o.cats) > 0 {
				e.x = &eventExtra{id: o.id, cats: o.cats}
			}
		} else if id := orderID(props); id != "" {
			e.x = &eventExtra{id: id}
		}
	}
	if t, ok := touchOfMessage(m); ok {
		if e.x == nil {
			e.x = &eventExtra{}
		}
		e.x.touch = &t
	}
	return e
}

const orderCompleted = "Order Completed"

// order is what the computed values need of one order.
type order struct {
	at   time.Time
	rev  float64
	disc bool
	id   string
	cats []catAmount
}

// orderOf reads an order's revenue (the "revenue" property, else "total"),
// whether it used a coupon or a discount, its order id and its spend per
// category (segments.ComputedNames).
func orderOf(o segments.Event) order {
	rev, ok := num(o.Properties["revenue"])
	if !ok {
		rev, _ = num(o.Properties["total"])
	}
	coupon, _ := o.Properties["coupon"].(string)
	disc, _ := num(o.Properties["discount"])
	return order{at: o.Time, rev: rev, disc: strings.TrimSpace(coupon) != "" || disc > 0,
		id: orderID(o.Properties), cats: categoriesOf(o.Properties)}
}

// computeValues derives segments.ComputedNames at now.
func computeValues(orders []order, firstSeen, now time.Time) map[string]float64 {
	q := computeQuick(orders, firstSeen, now)
	out := make(map[string]float64, len(quickNames))
	for i, name := range quickNames {
		if q.has&(1<<i) != 0 {
			out[name] = q.v[i]
		}
	}
	return out
}

// quickNames are the numbers computeQuick gives, in quickNums' order.
var quickNames = [...]string{segments.ComputedOrderCount, segments.ComputedDaysSinceFirstSeen,
	segments.ComputedRevenueTotal, segments.ComputedRevenue365d, segments.ComputedAvgOrderValue,
	segments.ComputedDiscountOrderShare, segments.ComputedDaysSinceLastOrder}

// quickNums are computeValues' numbers without a map: a top or bottom
// metric asks them of everyone, and a map per person was garbage.
type quickNums struct {
	v   [len(quickNames)]float64
	has uint8 // bit i: v[i] is set
}

func (q *quickNums) set(i int, x float64) { q.v[i], q.has = x, q.has|1<<i }

// get returns the number called name, if set.
func (q *quickNums) get(name string) (float64, bool) {
	for i, n := range quickNames {
		if n == name {
			return q.v[i], q.has&(1<<i) != 0
		}
	}
	return 0, false
}

// computeQuick computes the numbers of quickNames (see computeValues).
func computeQuick(orders []order, firstSeen, now time.Time) quickNums {
	var q quickNums
	q.set(0, float64(len(orders)))
	if !firstSeen.IsZero() {
		q.set(1, math.Floor(now.Sub(firstSeen).Hours()/24))
	}
	if len(orders) == 0 {
		return q
	}
	var total, year float64
	var last time.Time
	discounted := 0
	for _, o := range orders {
		total += o.rev
		if now.Sub(o.at) <= 365*24*time.Hour && !o.at.After(now) {
			year += o.rev
		}
		if o.at.After(last) && !o.at.After(now) {
			last = o.at
		}
		if o.disc {
			discounted++
		}
	}
	q.set(2, total)
	q.set(3, year)
	q.set(4, total/float64(len(orders)))
	q.set(5, float64(discounted)/float64(len(orders)))
	if !last.IsZero() {
		q.set(6, math.Floor(now.Sub(last).Hours()/24))
	}
	return q
}
