package demo

import (
	"bufio"
	"errors"
	"io"
	"sort"
	"time"
)

// A campaign with a holdout: the demo exports a segment with splits (each
// row says whether the person is in the treatment or held out), "sends" the
// campaign to the treated rows, and Respond simulates what people do
// afterwards, so that the segment report has something to measure. Who is
// held out is decided by Custody's keyed hash, not here: Respond is told.

// Recipient is one exported person: the persona index, and whether the
// campaign held them out (not contacted).
type Recipient struct {
	Index   int
	Holdout bool
}

// Campaign is the simulated campaign.
type Campaign struct {
	// Sent is when the campaign went out; orders follow in (Sent, Until].
	Sent, Until time.Time
	// BaseRate is the share of people who order anyway in the window
	// (held out or not); Lift the extra share of treated people who order
	// because of the campaign (with its coupon and utm fields).
	BaseRate, Lift float64
}

// CampaignStats count what Respond wrote.
type CampaignStats struct {
	Treated, HeldOut int
	// Orders by treated and held-out people; Responses are the treated
	// orders caused by the campaign.
	TreatedOrders, HeldOutOrders, Responses int
}

// ErrCampaign: the campaign's window is empty.
var ErrCampaign = errors.New("demo: campaign window must satisfy Sent < Until")

// Respond writes, as JSON Lines sorted by timestamp, the Order Completed
// messages the recipients send after the campaign: each orders with
// probability BaseRate, a treated person who does not also with
// probability Lift (a response: the win-back coupon, the campaign's email
// utm fields). Server-side messages with the person's userId, one or two
// catalogue products priced in their country's currency, totals as in
// Generate. The output is a pure function of opts, c and the recipients.
func Respond(w io.Writer, opts Options, c Campaign, rs []Recipient) (CampaignStats, error) {
	var st CampaignStats
	opts, err := opts.normalize()
	if err != nil {
		return st, err
	}
	if !c.Sent.Before(c.Until) {
		return st, ErrCampaign
	}
	key := seedKey(opts.Seed)
	type out struct {
		ts   int64
		line []byte
	}
	var lines []out
	lo, hi := c.Sent.UnixMilli(), c.Until.UnixMilli()
	camp := campaign{Name: "winback_holdout_test", Source: "crm", Medium: "email", Content: "comeback15", Winback: true}
	for _, rc := range rs {
		if rc.Holdout {
			st.HeldOut++
		} else {
			st.Treated++
		}
		r := newRNG(key^saltCampaign, uint64(rc.Index))
		organic := r.chance(c.BaseRate)
		response := !organic && !rc.Holdout && r.chance(c.Lift)
		if !organic && !response {
			continue
		}
		pr := personaRNG(key, rc.Index)
		ci, _ := personaHead(&pr)
		s := &sess{c: &countries[ci], cur: countries[ci].Currency}
		for n := r.between(1, 2); n > 0; n-- {
			s.cart = append(s.cart, line{p: r.intn(len(catalogue)), qty: r.between(1, 2)})
		}
		var cp *coupon
		if response {
			cp = &couponWinback
		}
		sub, disc, ship, tax, rev, total := s.totals(cp)
		ts := lo + 1 + int64(r.float()*float64(hi-lo-1))
		e := &s.e
		e.open()
		e.str("type", "track")
		e.str("event", evNames[evOrderCompleted])
		e.key("messageId")
		e.b = append(e.b, '"')
		e.b = appendUUID(e.b, &r)
		e.b = append(e.b, '"')
		e.key("timestamp")
		e.b = append(e.b, '"')
		e.b = appendTS(e.b, ts)
		e.b = append(e.b, '"')
		e.str("userId", userID(key, rc.Index))
		e.obj("properties")
		e.str("order_id", "ord_"+hex16(mix(key^saltOrderID^saltCampaign^uint64(rc.Index))))
		e.str("affiliation", storeName)
		e.money("subtotal", sub)
		e.money("total", total)
		e.money("revenue", rev)
		e.money("shipping", ship)
		e.money("tax", tax)
		e.money("discount", disc)
		if cp != nil {
			e.str("coupon", cp.Code)
		}
		e.str("currency", currencyCodes[s.cur])
		s.products()
		e.close()
		if response {
			e.obj("context")
			e.obj("campaign")
			e.str("name", camp.Name)
			e.str("source", camp.Source)
			e.str("medium", camp.Medium)
			e.str("content", camp.Content)
			e.close()
			e.close()
		}
		e.close()
		lines = append(lines, out{ts, e.b})
		switch {
		case rc.Holdout:
			st.HeldOutOrders++
		case response:
			st.TreatedOrders++
			st.Responses++
		default:
			st.TreatedOrders++
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].ts < lines[j].ts })
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		bw.Write(l.line)
		bw.WriteByte('\n')
	}
	return st, bw.Flush()
}
