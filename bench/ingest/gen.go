package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The generator writes realistic ecommerce traffic as Segment messages:
// interleaved browsing sessions (identify for signed-in visitors, Product
// Viewed, Product Added, Order Completed with products[]), each carrying an
// analytics.js-like context. Everything is drawn from a seeded PRNG, so the
// same flags give the same messages (and message IDs) on every run.

type genMessage struct {
	id, user, anon, typ, event string
	ts                         time.Time
	json                       []byte // the whole Segment message
}

type genOptions struct {
	seed     uint64
	messages int
	users    int
	start    time.Time // the first event's timestamp
}

type genStats struct {
	messages, identifies, views, adds, orders int
	anonymousOnly                             int // messages without a userId
	distinctUsers                             int
	returningSessions, newSessions            int
	bytes                                     int64
	minBytes, maxBytes                        int
}

type product struct {
	id, sku, name, brand, category, variant string
	price                                   float64
}

var (
	brands     = []string{"Hearth & Loom", "Wick Studio", "Nordvik", "Paper Meadow", "Kiln & Co", "Forge Kitchen", "Atelier Nord", "Saltmarsh", "Fernhill", "Oakridge Supply"}
	categories = []string{"Home & Living", "Kitchen & Dining", "Fashion", "Accessories", "Beauty & Wellness", "Gifts & Stationery"}
	nouns      = []string{"Cushion Cover", "Soy Candle", "Bud Vase", "Knit Throw", "Storage Basket", "Wall Clock", "Botanical Print", "Reed Diffuser", "Mug Set", "Serving Board", "Teapot", "Napkin Set", "Skillet", "Carafe", "Wool Scarf", "Leather Belt", "Canvas Tote", "Silk Scrunchie", "Face Serum", "Bath Salts", "Notebook", "Fountain Pen", "Card Set", "Tea Towel"}
	adjectives = []string{"Linen", "Ceramic", "Oak", "Brass", "Stoneware", "Olive Wood", "Enamel", "Merino", "Organic", "Hand-thrown", "Recycled", "Vintage"}
	variants   = []string{"Natural", "Charcoal", "Sage", "Terracotta", "Ivory", "Navy", "One Size", "Large", "Small"}
	firstNames = []string{"Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia", "Lucas", "Hannah", "Jonas", "Léa", "Mateo", "Zoé", "Sven", "Aoife", "Giulia", "Marta", "Jakub"}
	lastNames  = []string{"Smith", "Müller", "Dubois", "García", "Rossi", "Jensen", "Nowak", "Kowalski", "O'Brien", "Schmidt", "Martin", "Bernard", "Novak", "Lindqvist", "Silva", "Brown"}
	cities     = [][3]string{{"London", "GB", "EC1A 1BB"}, {"Manchester", "GB", "M1 1AE"}, {"Berlin", "DE", "10115"}, {"Munich", "DE", "80331"}, {"Paris", "FR", "75001"}, {"Lyon", "FR", "69001"}, {"Madrid", "ES", "28001"}, {"Milan", "IT", "20121"}, {"Amsterdam", "NL", "1012"}, {"Dublin", "IE", "D01"}, {"Stockholm", "SE", "111 20"}, {"Warsaw", "PL", "00-001"}, {"New York", "US", "10001"}, {"Austin", "US", "73301"}}
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	}
	locales   = []string{"en-GB", "en-US", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "sv-SE", "pl-PL"}
	referrers = []string{"https://www.google.com/", "https://duckduckgo.com/", "https://www.instagram.com/", "https://newsletter.example.net/", ""}
	coupons   = []string{"", "", "", "", "WELCOME10", "SPRING15", "FREESHIP"}
)

func buildCatalogue(r *rand.Rand, n int) []product {
	ps := make([]product, n)
	for i := range ps {
		name := adjectives[r.IntN(len(adjectives))] + " " + nouns[r.IntN(len(nouns))]
		ps[i] = product{
			id:       fmt.Sprintf("p_%05d", 10000+i),
			sku:      fmt.Sprintf("SKU-%c%c-%04d", 'A'+rune(r.IntN(26)), 'A'+rune(r.IntN(26)), r.IntN(10000)),
			name:     name,
			brand:    brands[r.IntN(len(brands))],
			category: categories[r.IntN(len(categories))],
			variant:  variants[r.IntN(len(variants))],
			price:    math.Round(float64(9+r.IntN(140))) - 0.01,
		}
	}
	return ps
}

// Wire structs: field order mimics analytics.js.
type wireLibrary struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}
type wirePage struct {
	Path     string `json:"path"`
	Referrer string `json:"referrer"`
	Title    string `json:"title"`
	URL      string `json:"url"`
}
type wireContext struct {
	Library   wireLibrary `json:"library"`
	IP        string      `json:"ip"`
	Locale    string      `json:"locale"`
	UserAgent string      `json:"userAgent"`
	Page      wirePage    `json:"page"`
}
type wireProduct struct {
	ProductID string  `json:"product_id"`
	SKU       string  `json:"sku"`
	Category  string  `json:"category"`
	Name      string  `json:"name"`
	Brand     string  `json:"brand"`
	Variant   string  `json:"variant"`
	Price     float64 `json:"price"`
	Quantity  int     `json:"quantity"`
	Position  int     `json:"position,omitempty"`
	Currency  string  `json:"currency,omitempty"`
}
type wireOrder struct {
	OrderID     string        `json:"order_id"`
	Affiliation string        `json:"affiliation"`
	Total       float64       `json:"total"`
	Subtotal    float64       `json:"subtotal"`
	Revenue     float64       `json:"revenue"`
	Shipping    float64       `json:"shipping"`
	Tax         float64       `json:"tax"`
	Discount    float64       `json:"discount"`
	Coupon      string        `json:"coupon,omitempty"`
	Currency    string        `json:"currency"`
	Products    []wireProduct `json:"products"`
}
type wireAddress struct {
	City       string `json:"city"`
	Country    string `json:"country"`
	PostalCode string `json:"postalCode"`
}
type wireTraits struct {
	Email     string      `json:"email"`
	FirstName string      `json:"firstName"`
	LastName  string      `json:"lastName"`
	Phone     string      `json:"phone,omitempty"`
	Address   wireAddress `json:"address"`
	CreatedAt string      `json:"createdAt"`
	Plan      string      `json:"plan"`
	Marketing bool        `json:"marketingOptIn"`
}
type wireMessage struct {
	Type        string      `json:"type"`
	MessageID   string      `json:"messageId"`
	UserID      string      `json:"userId,omitempty"`
	AnonymousID string      `json:"anonymousId,omitempty"`
	Event       string      `json:"event,omitempty"`
	Traits      *wireTraits `json:"traits,omitempty"`
	Properties  any         `json:"properties,omitempty"`
	Context     wireContext `json:"context"`
	Timestamp   string      `json:"timestamp"`
}

type user struct {
	devices int // anonymous IDs handed out so far
	seen    bool
}

type session struct {
	userID, anonID string
	userIdx        int // -1: anonymous visitor
	ua, ip, locale string
	referrer       string
	steps          []string // remaining events: "identify", "view", "add", "order"
	cart           []wireProduct
	lastViewed     *product
}

func uuidFrom(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, (b>>48)&0x3fff|0x8000, b&0xffffffffffff)
}

// generate produces opts.messages messages from interleaved sessions.
func generate(opts genOptions) ([]genMessage, genStats) {
	r := rand.New(rand.NewPCG(opts.seed, 0x5eed1e55))
	cat := buildCatalogue(r, 400)
	users := make([]user, opts.users)
	var st genStats
	st.minBytes = math.MaxInt
	out := make([]genMessage, 0, opts.messages)
	ts := opts.start
	orderSeq := 0

	newSession := func() *session {
		s := &session{userIdx: -1,
			ua:       userAgents[r.IntN(len(userAgents))],
			ip:       fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254)),
			locale:   locales[r.IntN(len(locales))],
			referrer: referrers[r.IntN(len(referrers))],
		}
		// 75% of sessions are signed-in customers. Customer popularity is
		// skewed (a few frequent shoppers, a long tail), so the run mixes
		// first-seen and returning users.
		if r.IntN(100) < 75 {
			x := r.Float64()
			idx := int(math.Pow(x, 1.6) * float64(opts.users))
			if idx >= opts.users {
				idx = opts.users - 1
			}
			u := &users[idx]
			s.userIdx = idx
			s.userID = fmt.Sprintf("u_%07d", idx)
			if u.seen {
				st.returningSessions++
			} else {
				st.newSessions++
				st.distinctUsers++
			}
			// Returning users mostly come back on a known device.
			dev := 0
			if !u.seen || (u.devices < 3 && r.IntN(100) < 25) {
				dev = u.devices
				u.devices++
			} else {
				dev = r.IntN(u.devices)
			}
			s.anonID = fmt.Sprintf("anon-%07d-%d-%08x", idx, dev, uint32(opts.seed)^uint32(idx*7919+dev))
			// Identify on a first visit, sometimes again later (traits change).
			if !u.seen || r.IntN(100) < 20 {
				s.steps = append(s.steps, "identify")
			}
			u.seen = true
		} else {
			s.anonID = uuidFrom(r)
		}
		nViews := 1 + r.IntN(6)
		for i := 0; i < nViews; i++ {
			s.steps = append(s.steps, "view")
			if r.IntN(100) < 30 {
				s.steps = append(s.steps, "add")
			}
		}
		if s.userIdx >= 0 && r.IntN(100) < 35 || s.userIdx < 0 && r.IntN(100) < 5 {
			s.steps = append(s.steps, "order")
		}
		return s
	}

	active := make([]*session, 256)
	for i := range active {
		active[i] = newSession()
	}

	for len(out) < opts.messages {
		si := r.IntN(len(active))
		s := active[si]
		step := s.steps[0]
		s.steps = s.steps[1:]
		ts = ts.Add(time.Duration(1+r.IntN(4000)) * time.Microsecond)
		m := wireMessage{
			MessageID: uuidFrom(r), UserID: s.userID, AnonymousID: s.anonID,
			Timestamp: ts.Format(time.RFC3339Nano),
			Context: wireContext{
				Library: wireLibrary{Name: "analytics.js", Version: "next-1.70.0"},
				IP:      s.ip, Locale: s.locale, UserAgent: s.ua,
			},
		}
		p := &cat[r.IntN(len(cat))]
		page := func(path, title string) wirePage {
			return wirePage{Path: path, Referrer: s.referrer, Title: title, URL: "https://shop.example.com" + path}
		}
		prod := func(p *product, qty, pos int) wireProduct {
			return wireProduct{ProductID: p.id, SKU: p.sku, Category: p.category, Name: p.name, Brand: p.brand,
				Variant: p.variant, Price: p.price, Quantity: qty, Position: pos}
		}
		switch step {
		case "identify":
			u := s.userIdx
			city := cities[(u*31+7)%len(cities)]
			fn, ln := firstNames[u%len(firstNames)], lastNames[(u/7)%len(lastNames)]
			tr := &wireTraits{
				Email:     fmt.Sprintf("%s.%s.%d@example.com", asciiLower(fn), asciiLower(ln), u),
				FirstName: fn, LastName: ln,
				Address:   wireAddress{City: city[0], Country: city[1], PostalCode: city[2]},
				CreatedAt: opts.start.Add(-time.Duration(u%1000) * 24 * time.Hour).Format(time.RFC3339),
				Plan:      []string{"free", "member", "gold"}[u%3],
				Marketing: u%4 != 0,
			}
			if u%5 < 3 {
				tr.Phone = fmt.Sprintf("+4477%08d", u)
			}
			m.Type, m.Traits = "identify", tr
			m.Context.Page = page("/account", "My account")
			st.identifies++
		case "view":
			m.Type, m.Event = "track", "Product Viewed"
			wp := prod(p, 1, 1+r.IntN(24))
			wp.Currency = "EUR"
			m.Properties = wp
			m.Context.Page = page("/products/"+p.id, p.name)
			s.lastViewed = p
			st.views++
		case "add":
			if s.lastViewed != nil {
				p = s.lastViewed
			}
			wp := prod(p, 1+r.IntN(2), 0)
			wp.Currency = "EUR"
			s.cart = append(s.cart, wp)
			m.Type, m.Event = "track", "Product Added"
			m.Properties = struct {
				CartID string `json:"cart_id"`
				wireProduct
			}{CartID: "cart_" + s.anonID[len(s.anonID)-8:], wireProduct: wp}
			m.Context.Page = page("/products/"+p.id, p.name)
			st.adds++
		case "order":
			items := s.cart
			if len(items) == 0 {
				items = []wireProduct{prod(p, 1, 0)}
			}
			var sub float64
			for i := range items {
				items[i].Position, items[i].Currency = 0, ""
				sub += items[i].price() * float64(items[i].Quantity)
			}
			orderSeq++
			coupon := coupons[r.IntN(len(coupons))]
			disc := 0.0
			if coupon != "" {
				disc = math.Round(sub*0.1*100) / 100
			}
			ship := 4.95
			if sub > 50 {
				ship = 0
			}
			tax := math.Round((sub-disc)*0.2/1.2*100) / 100
			total := math.Round((sub-disc+ship)*100) / 100
			m.Type, m.Event = "track", "Order Completed"
			m.Properties = wireOrder{OrderID: fmt.Sprintf("ord_%d_%08d", opts.seed%1000, orderSeq), Affiliation: "Custody Demo Store",
				Total: total, Subtotal: math.Round(sub*100) / 100, Revenue: math.Round((sub-disc)*100) / 100,
				Shipping: ship, Tax: tax, Discount: disc, Coupon: coupon, Currency: "EUR", Products: items}
			m.Context.Page = page("/checkout/complete", "Thank you")
			st.orders++
		}
		b, err := json.Marshal(&m)
		if err != nil {
			panic(err)
		}
		ev := m.Event
		out = append(out, genMessage{id: m.MessageID, user: m.UserID, anon: m.AnonymousID, typ: m.Type, event: ev, ts: ts, json: b})
		if m.UserID == "" {
			st.anonymousOnly++
		}
		st.bytes += int64(len(b))
		st.minBytes = min(st.minBytes, len(b))
		st.maxBytes = max(st.maxBytes, len(b))
		if len(s.steps) == 0 {
			active[si] = newSession()
		}
	}
	st.messages = len(out)
	return out, st
}

func (p wireProduct) price() float64 { return p.Price }

func asciiLower(s string) string {
	b := make([]byte, 0, len(s))
	for _, c := range []byte(s) {
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z':
			b = append(b, c)
		}
	}
	return string(b)
}
