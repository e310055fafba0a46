package demo

import "net/url"

const (
	libraryName    = "analytics.js"
	libraryVersion = "next-1.70.0"
)

type line struct{ p, qty int }

// sess renders one browsing session of one actor into the actor's buffer.
type sess struct {
	g     *generator
	a     *actor
	e     enc
	c     *country
	dev   device
	devIx int
	t     int64
	nmsg  int
	off   int
	uid   string
	base  uint8 // flags carried by every message (consent)

	camp    *campaign
	landing bool   // still on the landing page: campaign context applies
	extRef  string // referrer of the landing page
	path    string
	title   string
	search  string
	url     string
	ref     string

	cur    int
	cartID string
	cart   []line
	viewed []int
	added  bool
}

func (g *generator) takeRendered() *rendered {
	if n := len(g.free); n > 0 {
		c := g.free[n-1]
		g.free = g.free[:n-1]
		return c
	}
	return &rendered{buf: make([]byte, 0, 16<<10), msgs: make([]pmsg, 0, 32)}
}

// device derives the details of the actor's device d.
func (g *generator) device(a *actor, d int) device {
	var anon string
	if a.visitor() {
		r := newRNG(g.key^saltVisAnon, uint64(a.idx))
		anon = newUUID(&r)
	} else {
		anon = anonID(g.key, int(a.idx), d)
	}
	dr := newRNG(g.key^saltDevice, uint64(a.id)<<2|uint64(d))
	ua := pick(&dr, desktopAgents)
	if dr.chance(0.55) {
		ua = pick(&dr, mobileAgents)
	}
	return device{
		anon: anon,
		ua:   ua,
		ip:   pick(&dr, ipPrefixes) + itoa(dr.between(1, 254)),
		loc:  dr.chance(0.3),
	}
}

func (g *generator) runSession(a *actor, sp sessionPlan) {
	r := &a.r
	s := &g.s
	*s = sess{g: g, a: a, cart: s.cart[:0], viewed: s.viewed[:0]}
	a.cur = g.takeRendered()
	s.e = enc{b: a.cur.buf}
	s.c = &countries[a.ci]
	s.cur = s.c.Currency
	s.devIx = int(sp.dev)
	s.dev = g.device(a, int(sp.dev))
	s.t = sp.at
	if a.consent&1 != 0 {
		s.base = flConsent
	}
	if !a.visitor() && a.devIdent&(1<<sp.dev) != 0 {
		s.uid = userID(g.key, int(a.idx))
	}
	kind := sp.kind
	if sp.flags&fSignup != 0 && kind == kBounce {
		kind = kBrowse
	}

	// Acquisition: campaign or referrer.
	if r.chance(0.28) {
		if a.orders > 0 && s.t-a.lastOrder > 60*dayMs && r.chance(0.5) {
			s.camp = &campaigns[len(campaigns)-1]
		} else {
			s.camp = &campaigns[r.intn(len(campaigns)-1)]
		}
		switch s.camp.Medium {
		case "cpc":
			s.extRef = "https://search.example.com/"
		case "social", "paid_social":
			s.extRef = "https://social.example.net/"
		case "affiliate":
			s.extRef = "https://blog.example.org/gift-ideas"
		}
	} else {
		s.extRef = pick(r, referrers)
	}
	s.landing = true
	landingSearch := ""
	if s.camp != nil {
		landingSearch = "?utm_source=" + s.camp.Source + "&utm_medium=" + s.camp.Medium + "&utm_campaign=" + s.camp.Name
		if s.camp.Content != "" {
			landingSearch += "&utm_content=" + s.camp.Content
		}
	}

	// How much this session will look at and add.
	nAdd := 0
	switch kind {
	case kCart, kCheckout:
		nAdd = 1
		if r.chance(0.3) {
			nAdd = 2
		}
	case kBuy:
		switch x := r.intn(100); {
		case x < 60:
			nAdd = 1
		case x < 87:
			nAdd = 2
		case x < 96:
			nAdd = 3
		default:
			nAdd = 4
		}
	}
	nViews := 1
	if r.chance(0.35) {
		nViews = 2
	}
	nViews = max(nViews, nAdd)
	if kind == kBounce {
		nViews = 1
	}

	fav := int(mix(uint64(a.id)^g.key) % uint64(len(categories)))
	cat := fav
	if r.chance(0.45) {
		cat = r.intn(len(categories))
	}

	// Landing page.
	landed := 0 // 0 home, 1 category, 2 product
	switch x := r.intn(100); {
	case s.camp != nil && x < 50, s.camp == nil && x < 25:
		landed = 2
	case s.camp != nil, x < 50:
		landed = 1
	}
	switch landed {
	case 0:
		s.page("Home", "/", storeName+" | Gifts, Home & Fashion", landingSearch)
	case 1:
		s.categoryPage(cat, landingSearch)
	case 2:
		s.viewProduct(s.g.pickProduct(r, cat), landingSearch, nViews, nAdd)
	}
	if kind == kBounce {
		g.endSession(s, kind)
		return
	}

	// Discovery, then product pages.
	if len(s.viewed) < nViews {
		if landed == 0 || r.chance(0.25) {
			if r.chance(0.35) {
				q := pick(r, searchQueries)
				cat = q.Category
				s.page("Search Results", "/search", "Search: "+q.Query+" | "+storeName, "?q="+url.QueryEscape(q.Query))
				s.begin("track", evNames[evProductsSearched], "")
				s.e.obj("properties")
				s.e.str("query", q.Query)
				s.e.close()
				s.finish(evProductsSearched, 0)
				s.listViewed("search_results", cat)
			} else {
				s.categoryPage(cat, "")
			}
		}
		for tries := 0; len(s.viewed) < nViews && tries < 20; tries++ {
			c := cat
			if r.chance(0.3) {
				c = -1
			}
			p := g.pickProduct(r, c)
			if contains(s.viewed, p) {
				continue
			}
			s.viewProduct(p, "", nViews, nAdd)
		}
	}

	identifyHere := sp.flags&fSignup != 0 && s.uid == ""
	if kind == kBrowse {
		if !identifyHere && !a.visitor() && a.identified && s.uid == "" && r.chance(0.3) {
			identifyHere = true // logs in on another device
		}
		if identifyHere {
			s.logIn(true)
		}
		g.endSession(s, kind)
		return
	}

	// Cart.
	if len(s.cart) == 0 {
		// The add-on-last-views rule always adds; this is a safety net.
		pi := g.pickProduct(r, cat)
		if len(s.viewed) > 0 {
			pi = s.viewed[len(s.viewed)-1]
		}
		s.addToCart(pi)
	}
	if kind == kCart || r.chance(0.6) {
		// Others go straight to checkout from the mini cart.
		s.page("Cart", "/cart", "Your cart | "+storeName, "")
		s.begin("track", evNames[evCartViewed], "")
		s.e.obj("properties")
		s.e.str("cart_id", s.cartID)
		s.e.str("currency", currencyCodes[s.cur])
		s.e.money("value", s.subtotal())
		s.products()
		s.e.close()
		s.finish(evCartViewed, 0)
	}
	if kind == kCart {
		if identifyHere {
			s.logIn(true)
		}
		g.endSession(s, kind)
		return
	}
	if kind == kBuy && s.uid == "" {
		identifyHere = true
	}

	// Checkout.
	a.seq++
	orderID := "ord_" + hex16(mix(g.key^saltOrderID^(uint64(a.id)<<16|uint64(a.seq&0xffff))))
	s.page("Checkout", "/checkout", "Checkout | "+storeName, "")
	if identifyHere {
		s.logIn(false) // signs in or creates an account on the checkout page
	}
	sub := s.subtotal()
	{
		_, _, ship, tax, rev, _ := s.totals(nil)
		s.begin("track", evNames[evCheckoutStarted], "")
		s.e.obj("properties")
		s.e.str("order_id", orderID)
		s.e.str("affiliation", storeName)
		s.e.money("value", sub)
		s.e.money("revenue", rev)
		s.e.money("shipping", ship)
		s.e.money("tax", tax)
		s.e.str("currency", currencyCodes[s.cur])
		s.products()
		s.e.close()
		s.finish(evCheckoutStarted, 0)
	}
	if kind == kCheckout {
		g.endSession(s, kind)
		return
	}

	var cp *coupon
	if r.chance(0.25) {
		switch {
		case s.camp != nil && s.camp.Winback:
			cp = &couponWinback
		case a.orders == 0 && r.chance(0.5):
			cp = &couponWelcome
		case a.arch == arVIP && r.chance(0.6):
			cp = &couponVIP
		default:
			cp = &otherCoupons[r.intn(len(otherCoupons))]
		}
	}
	sub, disc, ship, tax, rev, total := s.totals(cp)
	if cp != nil {
		s.begin("track", evNames[evCouponApplied], "")
		s.e.obj("properties")
		s.e.str("order_id", orderID)
		s.e.str("cart_id", s.cartID)
		s.e.str("coupon_id", cp.Code)
		s.e.str("coupon_name", cp.Name)
		s.e.money("discount", disc)
		s.e.close()
		s.finish(evCouponApplied, 0)
	}
	s.begin("track", evNames[evOrderCompleted], "")
	s.e.obj("properties")
	s.e.str("order_id", orderID)
	s.e.str("affiliation", storeName)
	s.e.money("subtotal", sub)
	s.e.money("total", total)
	s.e.money("revenue", rev)
	s.e.money("shipping", ship)
	s.e.money("tax", tax)
	s.e.money("discount", disc)
	var fl uint8
	if cp != nil {
		s.e.str("coupon", cp.Code)
		fl = flCoupon
	}
	s.e.str("currency", currencyCodes[s.cur])
	s.products()
	s.e.close()
	s.finish(evOrderCompleted, fl)
	a.orders++
	a.lastOrder = s.t
	if r.chance(0.055) {
		ts := s.t + int64(r.between(2, 20))*dayMs + int64(r.intn(int(dayMs)))
		if ts <= g.now {
			a.addRefund(refund{ts: ts, orderID: orderID, mid: newUUID(r), total: total, cur: s.cur})
		}
	}
	if r.chance(0.5) {
		s.page("Order Confirmation", "/checkout/confirmation", "Thank you | "+storeName, "?order="+orderID)
	}
	g.endSession(s, kind)
}

func (a *actor) addRefund(rf refund) {
	i := len(a.refunds)
	for i > 0 && a.refunds[i-1].ts > rf.ts {
		i--
	}
	a.refunds = append(a.refunds, refund{})
	copy(a.refunds[i+1:], a.refunds[i:])
	a.refunds[i] = rf
}

func (g *generator) endSession(s *sess, kind uint8) {
	a := s.a
	a.cur.buf = s.e.b
	a.sessions++
	if s.added && kind != kBuy {
		g.st.AbandonedCarts++
	}
	s.a, s.c, s.camp = nil, nil, nil
	s.e = enc{}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// pickProduct draws a product from category c (or the whole catalogue for
// c < 0), weighted by popularity.
func (g *generator) pickProduct(r *rng, c int) int {
	if c >= 0 {
		ps := byCategory[c]
		// Favour the category's popular items: the min of two draws.
		return ps[min(r.intn(len(ps)), r.intn(len(ps)))]
	}
	x := r.float()
	for i, v := range popCum {
		if x < v {
			return i
		}
	}
	return len(popCum) - 1
}

// begin starts a message: type, event/name, ids and timestamp. The time
// advances by a realistic gap from the previous message of the session.
func (s *sess) begin(typ, event, name string) {
	r := &s.a.r
	if s.nmsg > 0 {
		if typ == "page" {
			s.t += int64(r.between(6000, 90000))
		} else {
			s.t += int64(r.between(300, 4000))
		}
	}
	s.nmsg++
	e := &s.e
	s.off = len(e.b)
	e.open()
	e.str("type", typ)
	if event != "" {
		e.str("event", event)
	}
	if name != "" {
		e.str("name", name)
	}
	e.key("messageId")
	e.b = append(e.b, '"')
	e.b = appendUUID(e.b, r)
	e.b = append(e.b, '"')
	e.key("timestamp")
	e.b = append(e.b, '"')
	e.b = appendTS(e.b, s.t)
	e.b = append(e.b, '"')
	if s.uid != "" {
		e.str("userId", s.uid)
	}
	e.str("anonymousId", s.dev.anon)
}

// finish writes the context, closes the message and records it.
func (s *sess) finish(ev, flags uint8) {
	e := &s.e
	a := s.a
	flags |= s.base
	e.obj("context")
	if s.camp != nil && s.landing {
		flags |= flCampaign
		e.obj("campaign")
		e.str("name", s.camp.Name)
		e.str("source", s.camp.Source)
		e.str("medium", s.camp.Medium)
		if s.camp.Content != "" {
			e.str("content", s.camp.Content)
		}
		e.close()
	}
	if a.consent&1 != 0 {
		e.obj("consent")
		e.obj("categoryPreferences")
		e.bool("advertising", a.consent&(1<<1) != 0)
		e.bool("analytics", a.consent&(1<<2) != 0)
		e.bool("functional", a.consent&(1<<3) != 0)
		e.bool("marketing", a.consent&(1<<4) != 0)
		e.close()
		e.close()
	}
	e.str("ip", s.dev.ip)
	e.obj("library")
	e.str("name", libraryName)
	e.str("version", libraryVersion)
	e.close()
	e.str("locale", s.c.Locale)
	if s.dev.loc {
		e.obj("location")
		e.str("country", s.c.Name)
		e.close()
	}
	e.obj("page")
	s.pageFields()
	e.close()
	e.str("userAgent", s.dev.ua)
	e.close() // context
	e.close() // message
	a.cur.msgs = append(a.cur.msgs, pmsg{ts: s.t, off: int32(s.off), end: int32(len(e.b)), ev: ev, flags: flags})
}

func (s *sess) page(name, path, title, search string) {
	if s.url == "" {
		s.ref = s.extRef
	} else {
		s.ref = s.url
		s.landing = false
	}
	s.path, s.title, s.search = path, title, search
	s.url = storeURL + path + search
	s.begin("page", "", name)
	e := &s.e
	e.obj("properties")
	s.pageFields()
	e.close()
	s.finish(evPage, 0)
}

// pageFields writes the current page as analytics.js reports it (empty
// referrer and search omitted).
func (s *sess) pageFields() {
	e := &s.e
	e.str("path", s.path)
	if s.ref != "" {
		e.str("referrer", s.ref)
	}
	if s.search != "" {
		e.str("search", s.search)
	}
	e.str("title", s.title)
	e.str("url", s.url)
}

func (s *sess) categoryPage(c int, search string) {
	cat := &categories[c]
	s.page("Category", "/c/"+cat.Slug, cat.Name+" | "+storeName, search)
	s.listViewed(cat.Slug, c)
}

func (s *sess) listViewed(listID string, c int) {
	r := &s.a.r
	ps := byCategory[c]
	o := r.intn(len(ps))
	e := &s.e
	s.begin("track", evNames[evProductListViewed], "")
	e.obj("properties")
	e.str("list_id", listID)
	e.str("category", categories[c].Name)
	e.arr("products")
	for j := 0; j < 3 && j < len(ps); j++ {
		p := &catalogue[ps[(o+j)%len(ps)]]
		e.elem()
		e.str("product_id", p.ID)
		e.str("sku", p.SKU)
		e.str("name", p.Name)
		e.money("price", p.Price[s.cur])
		e.int("position", j+1)
		e.close()
	}
	e.endArr()
	e.close()
	s.finish(evProductListViewed, 0)
}

// viewProduct shows a product page and Product Viewed, and adds the
// product to the cart when the session still needs to add items on its
// remaining views.
func (s *sess) viewProduct(pi int, search string, nViews, nAdd int) {
	p := &catalogue[pi]
	s.page("Product", "/p/"+p.Slug, p.Name+" | "+storeName, search)
	e := &s.e
	s.begin("track", evNames[evProductViewed], "")
	e.obj("properties")
	s.productFields(p)
	e.close()
	s.finish(evProductViewed, 0)
	s.viewed = append(s.viewed, pi)
	remainingViews := nViews - len(s.viewed) + 1
	remainingAdds := nAdd - len(s.cart)
	if remainingAdds > 0 && (remainingViews <= remainingAdds || s.a.r.chance(0.2)) {
		s.addToCart(pi)
	}
}

func (s *sess) productFields(p *product) {
	e := &s.e
	e.str("product_id", p.ID)
	e.str("sku", p.SKU)
	e.str("category", categories[p.Category].Name)
	e.str("name", p.Name)
	e.str("brand", p.Brand)
	e.money("price", p.Price[s.cur])
	e.str("currency", currencyCodes[s.cur])
}

func (s *sess) addToCart(pi int) {
	r := &s.a.r
	if s.cartID == "" {
		s.cartID = "cart_" + hex16(r.u64())
	}
	qty := 1
	switch x := r.intn(100); {
	case x >= 95:
		qty = 3
	case x >= 80:
		qty = 2
	}
	s.cart = append(s.cart, line{pi, qty})
	s.added = true
	e := &s.e
	s.begin("track", evNames[evProductAdded], "")
	e.obj("properties")
	e.str("cart_id", s.cartID)
	s.productFields(&catalogue[pi])
	e.int("quantity", qty)
	e.int("position", len(s.cart))
	e.close()
	s.finish(evProductAdded, 0)
}

// products writes the cart as an Ecommerce-spec products array.
func (s *sess) products() {
	e := &s.e
	e.arr("products")
	for j, l := range s.cart {
		p := &catalogue[l.p]
		e.elem()
		e.str("product_id", p.ID)
		e.str("sku", p.SKU)
		e.str("name", p.Name)
		e.str("category", categories[p.Category].Name)
		e.money("price", p.Price[s.cur])
		e.int("quantity", l.qty)
		e.int("position", j+1)
		e.close()
	}
	e.endArr()
}

func (s *sess) subtotal() int64 {
	var sub int64
	for _, l := range s.cart {
		sub += catalogue[l.p].Price[s.cur] * int64(l.qty)
	}
	return sub
}

// totals prices the cart. total = revenue + tax + shipping always; EU and
// UK prices include VAT (revenue is net of it), US sales tax is added.
func (s *sess) totals(cp *coupon) (sub, disc, ship, tax, rev, total int64) {
	sub = s.subtotal()
	if cp != nil {
		if cp.Percent > 0 {
			disc = (sub*cp.Percent + 50) / 100
		} else {
			disc = min(cp.Fixed, sub)
		}
	}
	gross := sub - disc
	if gross < freeShippingOver {
		ship = shippingFee[s.cur]
	}
	bp := int64(s.c.TaxBP)
	if s.c.TaxIncl {
		tax = (gross*bp + (10000+bp)/2) / (10000 + bp)
		rev = gross - tax
	} else {
		rev = gross
		tax = (gross*bp + 5000) / 10000
	}
	total = rev + tax + ship
	return
}

// logIn shows the sign-up or log-in page (unless it happens on the current
// page) and sends identify. From here on
// the device's messages carry the userId.
func (s *sess) logIn(withPage bool) {
	a := s.a
	switch {
	case !withPage:
	case a.identified || a.created != 0:
		s.page("Log In", "/account/login", "Sign in | "+storeName, "")
	default:
		s.page("Sign Up", "/account/signup", "Create account | "+storeName, "")
	}
	if a.created == 0 {
		a.created = s.t
	}
	p := Person(s.g.o, int(a.idx))
	s.uid = p.UserID
	a.identified = true
	a.devIdent |= 1 << s.devIx
	e := &s.e
	s.begin("identify", "", "")
	e.obj("traits")
	e.str("email", p.Email)
	e.str("first_name", p.FirstName)
	e.str("last_name", p.LastName)
	if p.Phone != "" {
		e.str("phone", p.Phone)
	}
	e.obj("address")
	e.str("city", p.City)
	e.str("country", p.Country)
	if p.State != "" {
		e.str("state", p.State)
	}
	e.close()
	e.key("created_at")
	e.b = append(e.b, '"')
	e.b = appendTS(e.b, a.created)
	e.b = append(e.b, '"')
	e.close()
	s.finish(evIdentify, 0)
}
