package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"regexp"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testOptions(customers int) Options {
	return Options{Seed: 1, Customers: customers, Now: testNow, Days: 120}
}

type run struct {
	opts  Options
	out   []byte
	stats Stats
	msgs  []map[string]any
	lines [][]byte
}

var (
	defaultRunOnce sync.Once
	defaultRun     *run
	defaultRunErr  error
)

// mustRun generates, parses and caches the 3000-customer data set most
// tests look at.
func mustRun(t testing.TB) *run {
	t.Helper()
	defaultRunOnce.Do(func() {
		defaultRun, defaultRunErr = generate(testOptions(3000))
	})
	if defaultRunErr != nil {
		t.Fatal(defaultRunErr)
	}
	return defaultRun
}

func generate(o Options) (*run, error) {
	var buf bytes.Buffer
	st, err := Generate(context.Background(), &buf, o)
	if err != nil {
		return nil, err
	}
	r := &run{opts: o, out: buf.Bytes(), stats: st}
	sc := bufio.NewScanner(bytes.NewReader(r.out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, errors.New("invalid JSON line: " + string(line))
		}
		r.lines = append(r.lines, line)
		r.msgs = append(r.msgs, m)
	}
	return r, sc.Err()
}

func str(m map[string]any, path ...string) string {
	v := any(m)
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[k]
	}
	s, _ := v.(string)
	return s
}

func obj(m map[string]any, path ...string) map[string]any {
	v := any(m)
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	o, _ := v.(map[string]any)
	return o
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

func cents(f float64) int64 { return int64(math.Round(f * 100)) }

func TestDeterministic(t *testing.T) {
	gen := func(seed int64) []byte {
		o := testOptions(200)
		o.Seed = seed
		var b bytes.Buffer
		if _, err := Generate(context.Background(), &b, o); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := gen(7), gen(7)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed produced different output")
	}
	if bytes.Equal(a, gen(8)) {
		t.Fatal("different seeds produced identical output")
	}
	if len(a) == 0 {
		t.Fatal("no output")
	}
	p1, p2 := Person(Options{Seed: 7}, 3), Person(Options{Seed: 7, Customers: 10, Days: 9}, 3)
	if p1.Email != p2.Email || p1.UserID != p2.UserID || p1.AnonymousIDs[0] != p2.AnonymousIDs[0] {
		t.Fatal("Person depends on more than seed and index")
	}
	if Person(Options{Seed: 8}, 3).UserID == p1.UserID {
		t.Fatal("Person ignores the seed")
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestMessagesWellFormed(t *testing.T) {
	r := mustRun(t)
	from := testNow.Add(-time.Duration(r.opts.Days) * 24 * time.Hour)
	seen := make(map[string]bool, len(r.msgs))
	var prev time.Time
	minLen, maxLen := math.MaxInt, 0
	for i, m := range r.msgs {
		line := r.lines[i]
		minLen, maxLen = min(minLen, len(line)), max(maxLen, len(line))
		if len(line) >= 32<<10 {
			t.Fatalf("line %d is %d bytes", i, len(line))
		}
		typ := str(m, "type")
		switch typ {
		case "identify":
			if str(m, "userId") == "" || obj(m, "traits") == nil {
				t.Fatalf("identify without userId or traits: %s", line)
			}
		case "page":
			if str(m, "name") == "" || str(m, "properties", "path") == "" || str(m, "properties", "url") == "" {
				t.Fatalf("page without name/path/url: %s", line)
			}
		case "track":
			if str(m, "event") == "" || obj(m, "properties") == nil {
				t.Fatalf("track without event/properties: %s", line)
			}
		default:
			t.Fatalf("unexpected type %q: %s", typ, line)
		}
		id := str(m, "messageId")
		if !uuidRE.MatchString(id) {
			t.Fatalf("bad messageId %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate messageId %s", id)
		}
		seen[id] = true
		if str(m, "userId") == "" && str(m, "anonymousId") == "" {
			t.Fatalf("neither userId nor anonymousId: %s", line)
		}
		if a := str(m, "anonymousId"); a != "" && !uuidRE.MatchString(a) {
			t.Fatalf("bad anonymousId %q", a)
		}
		ts, err := time.Parse(time.RFC3339Nano, str(m, "timestamp"))
		if err != nil {
			t.Fatalf("timestamp: %v", err)
		}
		if ts.Location() != time.UTC {
			t.Fatalf("timestamp not UTC: %s", str(m, "timestamp"))
		}
		if ts.Before(from) || ts.After(testNow) {
			t.Fatalf("timestamp %s outside [%s, %s]", ts, from, testNow)
		}
		if ts.Before(prev) {
			t.Fatalf("line %d: timestamp %s before previous %s", i, ts, prev)
		}
		prev = ts
	}
	if minLen < 250 || maxLen > 2500 {
		t.Errorf("message sizes %d..%d bytes, want typical sizes", minLen, maxLen)
	}
	t.Logf("%d messages, %d..%d bytes, %.1f MB", len(r.msgs), minLen, maxLen, float64(len(r.out))/1e6)
}

func TestStatsMatchOutput(t *testing.T) {
	r := mustRun(t)
	st := r.stats
	byType := map[string]int{}
	byEvent := map[string]int{}
	var orders, coupons, refunds, consent, campaign int
	identified := map[string]bool{}
	ordersBy := map[string]int{}
	lastOrder := map[string]time.Time{}
	carts := map[string]bool{}
	for _, m := range r.msgs {
		byType[str(m, "type")]++
		ev := str(m, "event")
		if ev != "" {
			byEvent[ev]++
		}
		if str(m, "type") == "identify" {
			identified[str(m, "userId")] = true
		}
		switch ev {
		case "Order Completed":
			orders++
			if str(m, "properties", "coupon") != "" {
				coupons++
			}
			u := str(m, "userId")
			if u == "" {
				t.Fatal("order without userId")
			}
			ordersBy[u]++
			ts, _ := time.Parse(time.RFC3339Nano, str(m, "timestamp"))
			lastOrder[u] = ts
		case "Order Refunded":
			refunds++
		case "Product Added":
			carts[str(m, "properties", "cart_id")] = true
		}
		if obj(m, "context", "consent", "categoryPreferences") != nil {
			consent++
		}
		if obj(m, "context", "campaign") != nil {
			campaign++
		}
	}
	check := func(name string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("Stats.%s = %d, output has %d", name, got, want)
		}
	}
	check("Customers", st.Customers, r.opts.Customers)
	check("Messages", st.Messages, len(r.msgs))
	check("Bytes", int(st.Bytes), len(r.out))
	check("Orders", st.Orders, orders)
	check("CouponOrders", st.CouponOrders, coupons)
	check("Refunds", st.Refunds, refunds)
	check("ConsentMessages", st.ConsentMessages, consent)
	check("CampaignMessages", st.CampaignMessages, campaign)
	check("Identified", st.Identified, len(identified))
	check("Buyers", st.Buyers, len(ordersBy))
	check("AbandonedCarts+Orders", st.AbandonedCarts+st.Orders, len(carts))
	var repeat, vip, atRisk int
	for u, n := range ordersBy {
		if n >= 2 {
			repeat++
		}
		if n >= 6 {
			vip++
		}
		if testNow.Sub(lastOrder[u]) >= 90*24*time.Hour {
			atRisk++
		}
	}
	check("RepeatBuyers", st.RepeatBuyers, repeat)
	check("VIPs", st.VIPs, vip)
	check("AtRisk", st.AtRisk, atRisk)
	for k, v := range byType {
		check("ByType["+k+"]", st.ByType[k], v)
	}
	if len(st.ByType) != len(byType) {
		t.Errorf("ByType %v, output %v", st.ByType, byType)
	}
	for k, v := range byEvent {
		check("ByEvent["+k+"]", st.ByEvent[k], v)
	}
	if len(st.ByEvent) != len(byEvent) {
		t.Errorf("ByEvent %v, output %v", st.ByEvent, byEvent)
	}
	sum := 0
	for _, reg := range Regions {
		sum += st.ByRegion[reg]
	}
	check("sum(ByRegion)", sum, st.Customers)
	if !st.From.Equal(testNow.Add(-120*24*time.Hour)) || !st.To.Equal(testNow) {
		t.Errorf("period %s..%s", st.From, st.To)
	}
}

func TestPersonMatchesIdentify(t *testing.T) {
	r := mustRun(t)
	byUser := map[string]Persona{}
	emails, phones, anons := map[string]bool{}, map[string]bool{}, map[string]bool{}
	regions := map[string]int{}
	for i := 0; i < r.opts.Customers; i++ {
		p := Person(r.opts, i)
		if _, dup := byUser[p.UserID]; dup {
			t.Fatalf("duplicate user id %s", p.UserID)
		}
		byUser[p.UserID] = p
		if emails[p.Email] {
			t.Fatalf("duplicate email %s", p.Email)
		}
		emails[p.Email] = true
		if p.Phone != "" {
			if phones[p.Phone] {
				t.Fatalf("duplicate phone %s", p.Phone)
			}
			phones[p.Phone] = true
		}
		if n := len(p.AnonymousIDs); n < 1 || n > 3 {
			t.Fatalf("%d devices", n)
		}
		for _, a := range p.AnonymousIDs {
			if anons[a] {
				t.Fatalf("duplicate anonymous id %s", a)
			}
			anons[a] = true
		}
		regions[p.Region]++
	}
	for reg, n := range regions {
		if r.stats.ByRegion[reg] != n {
			t.Errorf("ByRegion[%s] = %d, personas %d", reg, r.stats.ByRegion[reg], n)
		}
	}

	identifies := 0
	for _, m := range r.msgs {
		u := str(m, "userId")
		if u == "" {
			continue
		}
		p, ok := byUser[u]
		if !ok {
			t.Fatalf("userId %s is not a persona", u)
		}
		if a := str(m, "anonymousId"); a != "" && !containsStr(p.AnonymousIDs, a) {
			t.Fatalf("anonymousId %s is not one of %s's devices", a, u)
		}
		if str(m, "type") != "identify" {
			continue
		}
		identifies++
		tr := obj(m, "traits")
		for k, want := range map[string]string{
			"email": p.Email, "first_name": p.FirstName, "last_name": p.LastName, "phone": p.Phone,
		} {
			if got := str(tr, k); got != want {
				t.Fatalf("identify %s: traits.%s = %q, Person has %q", u, k, got, want)
			}
		}
		if got := str(tr, "address", "country"); got != p.Country {
			t.Fatalf("country %q, Person %q", got, p.Country)
		}
		if got := str(tr, "address", "state"); got != p.State {
			t.Fatalf("state %q, Person %q", got, p.State)
		}
		if got := str(tr, "address", "city"); got != p.City {
			t.Fatalf("city %q, Person %q", got, p.City)
		}
		if _, err := time.Parse(time.RFC3339Nano, str(tr, "created_at")); err != nil {
			t.Fatalf("created_at: %v", err)
		}
	}
	if identifies == 0 {
		t.Fatal("no identify calls")
	}
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestIdentityFlow checks that a device sends only its anonymousId until it
// identifies, and both ids afterwards; and that some people identify on
// more than one device.
func TestIdentityFlow(t *testing.T) {
	r := mustRun(t)
	identifiedAs := map[string]string{} // anonymousId -> userId
	devices := map[string]map[string]bool{}
	for _, m := range r.msgs {
		a, u := str(m, "anonymousId"), str(m, "userId")
		if a == "" {
			if str(m, "event") != "Order Refunded" {
				t.Fatalf("browser message without anonymousId: %v", m)
			}
			continue
		}
		if str(m, "type") == "identify" {
			if prev, ok := identifiedAs[a]; ok && prev != u {
				t.Fatalf("device %s identified as %s and %s", a, prev, u)
			}
			identifiedAs[a] = u
			if devices[u] == nil {
				devices[u] = map[string]bool{}
			}
			devices[u][a] = true
			continue
		}
		if want := identifiedAs[a]; u != want {
			t.Fatalf("device %s: message carries userId %q, want %q", a, u, want)
		}
	}
	multi := 0
	for _, d := range devices {
		if len(d) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Error("nobody identified on a second device")
	}
	t.Logf("%d people identified on more than one device", multi)
}

func TestRegionMix(t *testing.T) {
	st := mustRun(t).stats
	want := map[string]float64{RegionEU: .35, RegionUK: .25, RegionUSCA: .15, RegionUSOther: .20, RegionOther: .05}
	for reg, w := range want {
		got := float64(st.ByRegion[reg]) / float64(st.Customers)
		if math.Abs(got-w) > 0.03 {
			t.Errorf("region %s: %.3f, want %.2f±0.03", reg, got, w)
		}
	}
	// US personas outside California carry another state.
	o := testOptions(3000)
	for i := 0; i < 500; i++ {
		p := Person(o, i)
		switch p.Region {
		case RegionUSCA:
			if p.State != "CA" || p.Country != "US" {
				t.Fatalf("US-CA persona %+v", p)
			}
		case RegionUSOther:
			if p.State == "" || p.State == "CA" || p.Country != "US" {
				t.Fatalf("US-other persona %+v", p)
			}
		default:
			if p.State != "" || p.Country == "US" {
				t.Fatalf("non-US persona %+v", p)
			}
		}
	}
}

var (
	emailRE = regexp.MustCompile(`^[a-z]+[._]?[a-z]*[0-9]+@(example\.com|example\.org|example\.net|mail\.test)$`)
	phoneRE = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)
	ipRE    = regexp.MustCompile(`^(192\.0\.2|198\.51\.100|203\.0\.113)\.[0-9]{1,3}$`)
)

func TestSyntheticIdentifiers(t *testing.T) {
	o := testOptions(3000)
	withPhone := 0
	for i := 0; i < 3000; i++ {
		p := Person(o, i)
		if !emailRE.MatchString(p.Email) {
			t.Fatalf("email %q", p.Email)
		}
		if p.Phone != "" {
			withPhone++
			if !phoneRE.MatchString(p.Phone) {
				t.Fatalf("phone %q is not E.164", p.Phone)
			}
		}
		if p.FirstName == "" || p.LastName == "" || p.City == "" {
			t.Fatalf("incomplete persona %+v", p)
		}
	}
	if withPhone < 1500 || withPhone > 2100 {
		t.Errorf("%d of 3000 with phone, want about 60%%", withPhone)
	}
	r := mustRun(t)
	urlRE := regexp.MustCompile(`https?://[^"/]+`)
	hostRE := regexp.MustCompile(`(^|\.)example\.(com|org|net)$`)
	for i, m := range r.msgs {
		if ip := str(m, "context", "ip"); ip != "" && !ipRE.MatchString(ip) {
			t.Fatalf("ip %q outside documentation ranges", ip)
		}
		for _, u := range urlRE.FindAll(r.lines[i], -1) {
			host := string(u[bytes.Index(u, []byte("//"))+2:])
			if !hostRE.MatchString(host) {
				t.Fatalf("non-example host %q", host)
			}
		}
	}
}

func TestBehaviourMix(t *testing.T) {
	r := mustRun(t)
	st := r.stats
	if st.Orders == 0 {
		t.Fatal("no orders")
	}
	ratio := func(a, b int) float64 { return float64(a) / float64(b) }
	if c := ratio(st.CouponOrders, st.Orders); c < 0.15 || c > 0.35 {
		t.Errorf("coupon share %.2f, want about 0.25", c)
	}
	if f := ratio(st.Refunds, st.Orders); f < 0.02 || f > 0.09 {
		t.Errorf("refund share %.3f, want about 0.05", f)
	}
	if st.AbandonedCarts == 0 || st.RepeatBuyers == 0 || st.VIPs == 0 || st.AtRisk == 0 {
		t.Errorf("missing segment: %+v", st)
	}
	if st.Buyers >= st.Customers || st.RepeatBuyers >= st.Buyers {
		t.Errorf("implausible funnel: %d customers, %d buyers, %d repeat", st.Customers, st.Buyers, st.RepeatBuyers)
	}
	if st.Identified >= st.Customers || st.Identified < st.Buyers {
		t.Errorf("identified %d of %d customers with %d buyers", st.Identified, st.Customers, st.Buyers)
	}
	if a := ratio(st.AnonymousSessions, st.Sessions); a < 0.3 || a > 0.5 {
		t.Errorf("anonymous session share %.2f, want about 0.4", a)
	}
	if st.ConsentMessages == 0 || st.CampaignMessages == 0 {
		t.Error("no consent or campaign context")
	}
	for _, ev := range []string{"Products Searched", "Product List Viewed", "Product Viewed", "Product Added",
		"Cart Viewed", "Checkout Started", "Coupon Applied", "Order Completed", "Order Refunded"} {
		if st.ByEvent[ev] == 0 {
			t.Errorf("no %s events", ev)
		}
	}

	// Orders add up, in the region's currency.
	currency := map[string]string{RegionEU: "EUR", RegionUK: "GBP", RegionUSCA: "USD", RegionUSOther: "USD", RegionOther: "USD"}
	region := map[string]string{}
	for i := 0; i < r.opts.Customers; i++ {
		p := Person(r.opts, i)
		region[p.UserID] = p.Region
	}
	orderTotal := map[string]int64{}
	orderTime := map[string]time.Time{}
	for _, m := range r.msgs {
		switch str(m, "event") {
		case "Order Completed":
			p := obj(m, "properties")
			var sub int64
			prods, _ := p["products"].([]any)
			if len(prods) == 0 {
				t.Fatal("order without products")
			}
			for _, x := range prods {
				pr := x.(map[string]any)
				for _, k := range []string{"product_id", "sku", "name", "category"} {
					if str(pr, k) == "" {
						t.Fatalf("product without %s", k)
					}
				}
				sub += cents(num(pr, "price")) * int64(num(pr, "quantity"))
			}
			if sub != cents(num(p, "subtotal")) {
				t.Fatalf("subtotal %v, products sum %d", p["subtotal"], sub)
			}
			total := cents(num(p, "total"))
			if total != cents(num(p, "revenue"))+cents(num(p, "tax"))+cents(num(p, "shipping")) {
				t.Fatalf("total != revenue+tax+shipping: %v", p)
			}
			if _, ok := p["discount"]; !ok {
				t.Fatalf("no discount: %v", p)
			}
			if got, want := str(p, "currency"), currency[region[str(m, "userId")]]; got != want {
				t.Fatalf("currency %s, want %s", got, want)
			}
			id := str(p, "order_id")
			orderTotal[id] = total
			orderTime[id], _ = time.Parse(time.RFC3339Nano, str(m, "timestamp"))
		case "Order Refunded":
			p := obj(m, "properties")
			id := str(p, "order_id")
			total, ok := orderTotal[id]
			if !ok {
				t.Fatalf("refund of unknown order %s", id)
			}
			if cents(num(p, "total")) != total {
				t.Fatalf("refund total %v, order %d", p["total"], total)
			}
			ts, _ := time.Parse(time.RFC3339Nano, str(m, "timestamp"))
			if ts.Sub(orderTime[id]) < 24*time.Hour {
				t.Fatalf("refund %s only %s after the order", id, ts.Sub(orderTime[id]))
			}
		}
	}
}

// TestLongHistory: with 400 days there are lapsed buyers whose last order
// is 120-180 days ago, and nothing falls outside the period.
func TestLongHistory(t *testing.T) {
	o := testOptions(600)
	o.Days = 400
	r, err := generate(o)
	if err != nil {
		t.Fatal(err)
	}
	from := testNow.Add(-400 * 24 * time.Hour)
	last := map[string]time.Time{}
	for _, m := range r.msgs {
		ts, _ := time.Parse(time.RFC3339Nano, str(m, "timestamp"))
		if ts.Before(from) || ts.After(testNow) {
			t.Fatalf("timestamp %s outside the period", ts)
		}
		if str(m, "event") == "Order Completed" {
			last[str(m, "userId")] = ts
		}
	}
	lapsed := 0
	for _, ts := range last {
		if ago := testNow.Sub(ts); ago >= 120*24*time.Hour && ago <= 181*24*time.Hour {
			lapsed++
		}
	}
	if lapsed == 0 {
		t.Error("no buyers whose last order was 120-180 days ago")
	}
}

func TestShortPeriod(t *testing.T) {
	o := testOptions(100)
	o.Days = 3
	r, err := generate(o)
	if err != nil {
		t.Fatal(err)
	}
	if r.stats.Messages == 0 || r.stats.Orders == 0 {
		t.Fatalf("short period produced %+v", r.stats)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Generate(context.Background(), io.Discard, Options{Customers: -1}); err == nil {
		t.Error("negative Customers accepted")
	}
	d := DefaultOptions()
	if d.Customers != 3000 || d.Days != 120 || d.Now.IsZero() {
		t.Errorf("DefaultOptions = %+v", d)
	}
	o, err := Options{Seed: 1}.normalize()
	if err != nil || o.Customers != 3000 || o.Days != 120 || o.Now.IsZero() {
		t.Errorf("normalize = %+v, %v", o, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Generate(ctx, io.Discard, testOptions(100)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := Generate(context.Background(), failWriter{}, testOptions(100)); err == nil {
		t.Error("write error not reported")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func BenchmarkGenerate(b *testing.B) {
	for _, n := range []int{3000, 100_000} {
		b.Run("customers="+itoa(n), func(b *testing.B) {
			o := testOptions(n)
			var bytes int64
			for b.Loop() {
				st, err := Generate(context.Background(), io.Discard, o)
				if err != nil {
					b.Fatal(err)
				}
				bytes = st.Bytes
			}
			b.SetBytes(bytes)
		})
	}
}
