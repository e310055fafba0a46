package demo

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"time"
)

// Options control the simulation. The zero value of a field means its
// default (see DefaultOptions).
type Options struct {
	Seed      int64     // deterministic output for a seed
	Customers int       // default 3000
	Now       time.Time // end of the simulated period; events span the Days before it
	Days      int       // default 120
}

const (
	defaultCustomers = 3000
	defaultDays      = 120
	maxDays          = 3650
)

// DefaultOptions returns seed 1, 3000 customers and 120 days ending at the
// start of the current UTC day (so that a run is reproducible within a day).
func DefaultOptions() Options {
	return Options{
		Seed:      1,
		Customers: defaultCustomers,
		Now:       time.Now().UTC().Truncate(24 * time.Hour),
		Days:      defaultDays,
	}
}

func (o Options) normalize() (Options, error) {
	if o.Customers < 0 {
		return o, errors.New("demo: Customers must not be negative")
	}
	if o.Days < 0 || o.Days > maxDays {
		return o, errors.New("demo: Days must be between 1 and 3650")
	}
	if o.Customers == 0 {
		o.Customers = defaultCustomers
	}
	if o.Days == 0 {
		o.Days = defaultDays
	}
	if o.Now.IsZero() {
		o.Now = DefaultOptions().Now
	}
	return o, nil
}

// Stats summarise one Generate run. Every count is of what was written.
type Stats struct {
	Customers         int            // personas simulated (Options.Customers)
	AnonymousVisitors int            // extra visitors who never identify and have no persona
	Identified        int            // customers who sent at least one identify
	Messages          int            // lines written
	Orders            int            // Order Completed events
	Refunds           int            // Order Refunded events
	CouponOrders      int            // Order Completed events with a coupon
	ByRegion          map[string]int // customers per region: "EU","UK","US-CA","US-other","other"
	ByType            map[string]int // messages per Segment type: "identify","page","track"

	// Additions beyond the brief.
	ByEvent           map[string]int // track messages per event name
	Sessions          int            // browsing sessions, all people
	AnonymousSessions int            // sessions of people who never identify (visitors and anonymous customers)
	AbandonedCarts    int            // sessions with Product Added but no Order Completed
	Buyers            int            // customers with at least one order
	RepeatBuyers      int            // customers with two or more orders
	VIPs              int            // customers with six or more orders
	AtRisk            int            // buyers whose last order is 90 days or more before Now
	ConsentMessages   int            // messages carrying context.consent.categoryPreferences
	CampaignMessages  int            // messages carrying context.campaign
	Bytes             int64          // bytes written, newlines included
	From, To          time.Time      // the simulated period [Now-Days, Now]
}

const (
	hourMs = int64(time.Hour / time.Millisecond)
	dayMs  = 24 * hourMs
	// minSessionGap keeps one person's sessions apart; a session lasts well
	// under an hour, so a person's messages never overlap.
	minSessionGap = 2 * hourMs
	// visitorsPerMille is the number of anonymous visitors per 1000
	// customers, tuned so that about 40% of sessions never identify.
	visitorsPerMille = 700
)

// Message (event) codes.
const (
	evIdentify uint8 = iota
	evPage
	evProductsSearched
	evProductListViewed
	evProductViewed
	evProductAdded
	evCartViewed
	evCheckoutStarted
	evCouponApplied
	evOrderCompleted
	evOrderRefunded
	numEv
)

var evNames = [numEv]string{
	"", "", "Products Searched", "Product List Viewed", "Product Viewed", "Product Added",
	"Cart Viewed", "Checkout Started", "Coupon Applied", "Order Completed", "Order Refunded",
}

// Message flags.
const (
	flConsent uint8 = 1 << iota
	flCampaign
	flCoupon
)

type archetype uint8

const (
	arBrowser   archetype = iota // browses, maybe signs up, never buys
	arAbandoner                  // adds to cart, never buys
	arOneTime                    // one order
	arRepeat                     // 2–4 orders
	arVIP                        // 6–14 orders
	arAtRisk                     // last order 90–180 days before Now
	arVisitor                    // anonymous visitor without persona
)

var archetypeCum = func() []int {
	w := []int{30, 18, 24, 13, 2, 13}
	for i := 1; i < len(w); i++ {
		w[i] += w[i-1]
	}
	return w
}()

// Session kinds.
const (
	kBounce uint8 = iota
	kBrowse
	kCart     // adds to cart, leaves
	kCheckout // starts checkout, leaves
	kBuy
)

const fSignup uint8 = 1 // the person signs up / logs in during this session

type sessionPlan struct {
	at    int64
	kind  uint8
	dev   uint8
	flags uint8
}

type device struct {
	anon, ua, ip string
	loc          bool // sends context.location
}

// rendered holds one session's messages while they wait to be written.
type rendered struct {
	buf  []byte
	msgs []pmsg
	pos  int
}

type pmsg struct {
	ts       int64
	off, end int32
	ev       uint8
	flags    uint8
}

type refund struct {
	ts      int64
	orderID string
	mid     string
	total   int64
	cur     int
}

// actor is one simulated person (customer or anonymous visitor). It owns
// its random stream, so its messages do not depend on anybody else's.
//
// It is kept small (the persona and device details are re-derived when a
// session needs them) because there is one per person for the whole run.
type actor struct {
	id         int32 // global ordinal, breaks timestamp ties
	idx        int32 // customer or visitor index
	ci         int16 // country index
	arch       archetype
	ndev       uint8
	consent    uint8 // bit 0: sends consent; bits 1..4 advertising, analytics, functional, marketing
	identified bool
	devIdent   uint8 // devices that have identified
	next       uint8 // next session in plan
	orders     int16
	seq        uint16 // order id counter
	sessions   int16
	r          rng
	created    int64
	lastOrder  int64
	plan       []sessionPlan
	cur        *rendered // the session being written, if any
	refunds    []refund
}

func (a *actor) visitor() bool { return a.arch == arVisitor }

// nextTS is the timestamp of the actor's next message.
func (a *actor) nextTS() (int64, bool) {
	var t int64
	ok := false
	if a.cur != nil {
		t, ok = a.cur.msgs[a.cur.pos].ts, true
	} else if int(a.next) < len(a.plan) {
		t, ok = a.plan[a.next].at, true
	}
	if len(a.refunds) > 0 && (!ok || a.refunds[0].ts < t) {
		t, ok = a.refunds[0].ts, true
	}
	return t, ok
}

type generator struct {
	o          Options
	key        uint64
	now, start int64 // unix ms
	st         *Stats
	evCount    [numEv]int
	s          sess
	scratch    []byte
	free       []*rendered
}

// Generate writes Segment messages as JSON Lines (one message object per
// line, as Segment's HTTP tracking API accepts them) to w, in timestamp
// order, and returns what it wrote. Output is a pure function of opts.
// Memory is proportional to the number of people, not of messages: each
// person's sessions are planned up front and rendered lazily while a heap
// merges everybody's next message by timestamp.
func Generate(ctx context.Context, w io.Writer, opts Options) (Stats, error) {
	o, err := opts.normalize()
	if err != nil {
		return Stats{}, err
	}
	st := Stats{
		Customers: o.Customers,
		ByRegion:  make(map[string]int, len(Regions)),
		ByType:    make(map[string]int, 3),
		ByEvent:   make(map[string]int, numEv),
		To:        time.UnixMilli(o.Now.UnixMilli()).UTC(),
	}
	for _, r := range Regions {
		st.ByRegion[r] = 0
	}
	g := &generator{o: o, key: seedKey(o.Seed), st: &st}
	g.now = o.Now.UnixMilli()
	g.start = g.now - int64(o.Days)*dayMs
	st.From = time.UnixMilli(g.start).UTC()
	g.s.g = g

	nVisitors := (o.Customers*visitorsPerMille + 500) / 1000
	st.AnonymousVisitors = nVisitors
	h := make(actorHeap, 0, o.Customers+nVisitors)
	for i := 0; i < o.Customers; i++ {
		if i&1023 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
		a := g.newCustomer(i)
		if t, ok := a.nextTS(); ok {
			h = append(h, hitem{t, a})
		}
	}
	for v := 0; v < nVisitors; v++ {
		a := g.newVisitor(v)
		if t, ok := a.nextTS(); ok {
			h = append(h, hitem{t, a})
		}
	}
	h.init()

	bw := bufio.NewWriterSize(w, 256<<10)
	for n := 0; len(h) > 0; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return g.finishStats(), err
			}
		}
		a := h[0].a
		if err := g.step(a, bw); err != nil {
			return g.finishStats(), err
		}
		if t, ok := a.nextTS(); ok {
			h[0].t = t
			h.down(0)
		} else {
			g.retire(a)
			h.pop0()
		}
	}
	if err := bw.Flush(); err != nil {
		return g.finishStats(), err
	}
	return g.finishStats(), nil
}

func (g *generator) finishStats() Stats {
	st := g.st
	for ev, n := range g.evCount {
		if n == 0 {
			continue
		}
		switch uint8(ev) {
		case evIdentify:
			st.ByType["identify"] = n
		case evPage:
			st.ByType["page"] = n
		default:
			st.ByType["track"] += n
			st.ByEvent[evNames[ev]] = n
		}
	}
	g.evCount = [numEv]int{}
	return *st
}

// step writes the actor's next message, rendering its next session first
// when that is what comes next.
func (g *generator) step(a *actor, w *bufio.Writer) error {
	if a.cur == nil {
		if int(a.next) < len(a.plan) && (len(a.refunds) == 0 || a.plan[a.next].at <= a.refunds[0].ts) {
			g.runSession(a, a.plan[a.next])
			a.next++
		} else {
			return g.writeRefund(a, w)
		}
	}
	c := a.cur
	m := c.msgs[c.pos]
	if len(a.refunds) > 0 && a.refunds[0].ts < m.ts {
		return g.writeRefund(a, w)
	}
	c.pos++
	if err := g.write(w, c.buf[m.off:m.end], m.ev, m.flags); err != nil {
		return err
	}
	if c.pos == len(c.msgs) {
		c.buf, c.msgs, c.pos = c.buf[:0], c.msgs[:0], 0
		g.free = append(g.free, c)
		a.cur = nil
	}
	return nil
}

func (g *generator) write(w *bufio.Writer, line []byte, ev, flags uint8) error {
	if _, err := w.Write(line); err != nil {
		return err
	}
	if err := w.WriteByte('\n'); err != nil {
		return err
	}
	st := g.st
	st.Messages++
	st.Bytes += int64(len(line) + 1)
	g.evCount[ev]++
	if ev == evOrderCompleted {
		st.Orders++
		if flags&flCoupon != 0 {
			st.CouponOrders++
		}
	}
	if ev == evOrderRefunded {
		st.Refunds++
	}
	if flags&flConsent != 0 {
		st.ConsentMessages++
	}
	if flags&flCampaign != 0 {
		st.CampaignMessages++
	}
	return nil
}

// writeRefund renders an Order Refunded as a server-side library sends it:
// userId only, no browser context.
func (g *generator) writeRefund(a *actor, w *bufio.Writer) error {
	rf := a.refunds[0]
	a.refunds = a.refunds[1:]
	e := enc{b: g.scratch[:0]}
	e.open()
	e.str("type", "track")
	e.str("event", evNames[evOrderRefunded])
	e.str("messageId", rf.mid)
	e.key("timestamp")
	e.b = append(e.b, '"')
	e.b = appendTS(e.b, rf.ts)
	e.b = append(e.b, '"')
	e.str("userId", userID(g.key, int(a.idx)))
	e.obj("properties")
	e.str("order_id", rf.orderID)
	e.money("total", rf.total)
	e.str("currency", currencyCodes[rf.cur])
	e.str("reason", pick(&a.r, refundReasons))
	e.close()
	e.obj("context")
	e.obj("library")
	e.str("name", "analytics-go")
	e.str("version", "3.3.0")
	e.close()
	e.close()
	e.close()
	g.scratch = e.b
	return g.write(w, e.b, evOrderRefunded, 0)
}

var refundReasons = []string{"damaged", "wrong_size", "not_as_described", "changed_mind", "late_delivery"}

// retire records per-person statistics once an actor has nothing left to
// send, and lets its memory go.
func (g *generator) retire(a *actor) {
	st := g.st
	st.Sessions += int(a.sessions)
	if a.visitor() || !a.identified {
		st.AnonymousSessions += int(a.sessions)
	}
	if !a.visitor() {
		if a.identified {
			st.Identified++
		}
		if a.orders >= 1 {
			st.Buyers++
			if g.now-a.lastOrder >= 90*dayMs {
				st.AtRisk++
			}
		}
		if a.orders >= 2 {
			st.RepeatBuyers++
		}
		if a.orders >= 6 {
			st.VIPs++
		}
	}
	a.plan, a.refunds = nil, nil
}

// ---- planning ----

func (g *generator) newCustomer(i int) *actor {
	a := &actor{id: int32(i), idx: int32(i), r: newRNG(g.key^saltCustomer, uint64(i))}
	pr := personaRNG(g.key, i)
	ci, ndev := personaHead(&pr)
	a.ci, a.ndev = int16(ci), uint8(ndev)
	g.st.ByRegion[countries[a.ci].Region]++
	r := &a.r
	x := r.intn(archetypeCum[len(archetypeCum)-1])
	for j, c := range archetypeCum {
		if x < c {
			a.arch = archetype(j)
			break
		}
	}
	g.drawConsent(a, 0.22)
	g.planCustomer(a)
	return a
}

func (g *generator) newVisitor(v int) *actor {
	a := &actor{id: int32(g.o.Customers + v), idx: int32(v), arch: arVisitor, r: newRNG(g.key^saltVisitor, uint64(v)), ndev: 1}
	r := &a.r
	a.ci = int16(drawCountry(r))
	g.drawConsent(a, 0.15)
	n := 1
	switch x := r.intn(100); {
	case x >= 92:
		n = 3
	case x >= 70:
		n = 2
	}
	off := countries[a.ci].Offset
	times := sampleTimes(r, n, g.start, g.now-minSessionGap, off)
	a.plan = make([]sessionPlan, len(times))
	for j, t := range times {
		k := kBrowse
		switch x := r.intn(100); {
		case x < 50:
			k = kBounce
		case x < 91:
			k = kBrowse
		case x < 98:
			k = kCart
		default:
			k = kCheckout
		}
		a.plan[j] = sessionPlan{at: t, kind: k}
	}
	return a
}

func (g *generator) drawConsent(a *actor, p float64) {
	r := &a.r
	if !r.chance(p) {
		return
	}
	c := uint8(1)
	if r.chance(0.45) {
		c |= 1 << 1 // advertising
	}
	if r.chance(0.85) {
		c |= 1 << 2 // analytics
	}
	c |= 1 << 3 // functional
	if r.chance(0.6) {
		c |= 1 << 4 // marketing
	}
	a.consent = c
}

func (g *generator) planCustomer(a *actor) {
	r := &a.r
	start, now := g.start, g.now
	last := now - minSessionGap
	off := countries[a.ci].Offset
	existing := r.chance(0.45)
	if a.arch == arAtRisk && g.o.Days < 95 {
		a.arch = arOneTime // the period is too short to have lapsed buyers
	}
	var n, k int
	switch a.arch {
	case arBrowser:
		n = r.between(1, 2)
	case arAbandoner:
		n = r.between(1, 3)
	case arOneTime:
		n, k = r.between(1, 3), 1
	case arRepeat:
		k = r.between(2, 3)
		n = k + r.between(0, 2)
	case arVIP:
		k = r.between(6, 10)
		n = k + r.between(1, 3)
		existing = true
	case arAtRisk:
		k = r.between(1, 2)
		n = k + r.between(0, 1)
		existing = existing || r.chance(0.5)
	}
	first := start
	if !existing {
		first = start + int64(r.float()*0.85*float64(now-start))
	}
	if existing {
		a.created = start - int64(r.between(1, 900))*dayMs - int64(r.intn(int(dayMs)))
	}

	var times []int64
	var kinds []uint8
	if a.arch == arAtRisk {
		ago := r.between(90, min(180, g.o.Days-3))
		lastOrder := diurnal(r, now-int64(ago)*dayMs, start+hourMs, now-90*dayMs, off)
		if !existing {
			first = start + int64(r.float()*0.5*float64(lastOrder-start))
		}
		times = sampleTimes(r, n-1, first, lastOrder-minSessionGap, off)
		times = append(times, lastOrder)
		kinds = make([]uint8, len(times))
		for j := range kinds {
			kinds[j] = nonBuyKind(r, true)
		}
		kinds[len(kinds)-1] = kBuy
		choosePurchases(r, kinds[:len(kinds)-1], k-1)
		if r.chance(0.3) && lastOrder+3*dayMs < last {
			// Still visits, no longer buys.
			t := lastOrder + 3*dayMs + int64(r.float()*float64(last-lastOrder-3*dayMs))
			times = append(times, t)
			kinds = append(kinds, kBrowse)
		}
	} else {
		times = sampleTimes(r, n, first, last, off)
		kinds = make([]uint8, len(times))
		for j := range kinds {
			kinds[j] = nonBuyKind(r, a.arch != arBrowser)
		}
		choosePurchases(r, kinds, k)
		if a.arch == arAbandoner && len(kinds) > 0 && !slices.Contains(kinds, kCart) && !slices.Contains(kinds, kCheckout) {
			j := r.intn(len(kinds))
			kinds[j] = kCart
			if r.chance(0.3) {
				kinds[j] = kCheckout
			}
		}
	}
	n = len(times)
	a.plan = make([]sessionPlan, n)
	for j := range a.plan {
		a.plan[j] = sessionPlan{at: times[j], kind: kinds[j]}
	}
	// Devices: mostly the first one; make sure every device shows up when
	// there are enough sessions.
	if a.ndev > 1 && n > 1 {
		var used [3]bool
		used[0] = true
		for j := 1; j < n; j++ {
			d := 0
			switch x := r.intn(100); {
			case x < 60:
			case x < 85 || a.ndev == 2:
				d = 1
			default:
				d = 2
			}
			a.plan[j].dev = uint8(d)
			used[d] = true
		}
		for d := 1; d < int(a.ndev) && d < n; d++ {
			if !used[d] {
				a.plan[1+r.intn(n-1)].dev = uint8(d)
			}
		}
	}
	// Who signs up or logs in, and when. Purchases always log in (see
	// runSession); these are the extra identifications.
	if n > 0 {
		switch a.arch {
		case arBrowser:
			if r.chance(0.4) {
				a.plan[r.intn(n)].flags |= fSignup
			}
		case arAbandoner:
			if r.chance(0.65) {
				for j := range a.plan {
					if k := a.plan[j].kind; k == kCart || k == kCheckout {
						a.plan[j].flags |= fSignup
						break
					}
				}
			}
		default:
			if r.chance(0.35) {
				fb := slices.Index(kinds, kBuy)
				if fb > 0 {
					a.plan[r.intn(fb)].flags |= fSignup
				}
			}
		}
	}
}

// nonBuyKind draws a session that ends without an order.
func nonBuyKind(r *rng, allowCart bool) uint8 {
	x := r.intn(100)
	switch {
	case x < 25:
		return kBounce
	case x < 80 || !allowCart:
		return kBrowse
	case x < 93:
		return kCart
	default:
		return kCheckout
	}
}

// choosePurchases marks k sessions as purchases, preferring sessions after
// the first one (people usually look before they buy).
func choosePurchases(r *rng, kinds []uint8, k int) {
	n := len(kinds)
	if k <= 0 || n == 0 {
		return
	}
	idx := make([]int, 0, n)
	for j := 1; j < n; j++ {
		idx = append(idx, j)
	}
	for j := len(idx) - 1; j > 0; j-- {
		x := r.intn(j + 1)
		idx[j], idx[x] = idx[x], idx[j]
	}
	idx = append(idx, 0)
	for _, j := range idx[:min(k, n)] {
		kinds[j] = kBuy
	}
}

// hourCum is a cumulative local-time-of-day weight: quiet nights, busy
// lunchtimes and evenings.
var hourCum = func() []int {
	w := []int{10, 5, 3, 2, 2, 4, 10, 20, 30, 40, 45, 50, 60, 60, 50, 50, 50, 50, 60, 70, 80, 80, 60, 30}
	for i := 1; i < len(w); i++ {
		w[i] += w[i-1]
	}
	return w
}()

// diurnal moves t to a plausible local time of day on the same local date,
// keeping it within [lo, hi].
func diurnal(r *rng, t, lo, hi int64, offsetHours int) int64 {
	off := int64(offsetHours) * hourMs
	day := (t + off) / dayMs
	if t+off < 0 {
		day--
	}
	x := r.intn(hourCum[len(hourCum)-1])
	h := 0
	for h < 23 && x >= hourCum[h] {
		h++
	}
	t2 := day*dayMs + int64(h)*hourMs + int64(r.intn(int(hourMs))) - off
	if t2 < lo || t2 > hi {
		return t
	}
	return t2
}

// sampleTimes returns up to n sorted session start times in [lo, hi], at
// least minSessionGap apart (times pushed past hi are dropped).
func sampleTimes(r *rng, n int, lo, hi int64, off int) []int64 {
	if n <= 0 || hi <= lo {
		return nil
	}
	ts := make([]int64, n)
	for j := range ts {
		t := lo + int64(r.float()*float64(hi-lo))
		ts[j] = diurnal(r, t, lo, hi, off)
	}
	slices.Sort(ts)
	out := ts[:1]
	for _, t := range ts[1:] {
		prev := out[len(out)-1]
		if t < prev+minSessionGap {
			t = prev + minSessionGap + int64(r.intn(int(6*hourMs)))
		}
		if t > hi {
			break
		}
		out = append(out, t)
	}
	return out
}

// ---- heap ----

type hitem struct {
	t int64
	a *actor
}

type actorHeap []hitem

func (h actorHeap) less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return h[i].a.id < h[j].a.id
}

func (h actorHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h actorHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

func (h *actorHeap) pop0() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	old[n] = hitem{}
	*h = old[:n]
	if n > 0 {
		h.down(0)
	}
}
