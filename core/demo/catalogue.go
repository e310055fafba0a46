package demo

import "strings"

// storeURL is the demo shop's origin. Every URL the generator writes is on a
// reserved example domain (RFC 2606).
const storeURL = "https://shop.example.com"

// storeName is the affiliation sent on orders.
const storeName = "Custody Demo Store"

// Currencies. Prices are held in minor units (cents/pence) per currency.
const (
	curEUR = iota
	curGBP
	curUSD
	numCurrencies
)

var currencyCodes = [numCurrencies]string{"EUR", "GBP", "USD"}

// currencyRates convert the catalogue's base EUR prices into a local price
// before it is rounded to a .99 price point.
var currencyRates = [numCurrencies]float64{1.0, 0.86, 1.08}

// shippingFee is the flat fee below the free-shipping threshold (in minor
// units), freeShippingOver the threshold.
var shippingFee = [numCurrencies]int64{495, 395, 599}

const freeShippingOver = 5000

type category struct {
	Name string
	Slug string
}

var categories = []category{
	{"Home & Living", "home-living"},
	{"Kitchen & Dining", "kitchen-dining"},
	{"Fashion", "fashion"},
	{"Accessories", "accessories"},
	{"Beauty & Wellness", "beauty-wellness"},
	{"Gifts & Stationery", "gifts-stationery"},
}

// product is one catalogue item. ID, SKU, slug and per-currency prices are
// filled in by init.
type product struct {
	ID       string
	SKU      string
	Name     string
	Brand    string
	Category int // index into categories
	Base     int // EUR, whole units
	Slug     string
	Price    [numCurrencies]int64 // minor units
}

// catalogue is the demo shop's ~60 gift, home and fashion items. Brands are
// invented.
var catalogue = []product{
	// Home & Living
	{Name: "Linen Cushion Cover", Brand: "Hearth & Loom", Category: 0, Base: 29},
	{Name: "Scented Soy Candle - Fig", Brand: "Wick Studio", Category: 0, Base: 24},
	{Name: "Ceramic Bud Vase", Brand: "Hearth & Loom", Category: 0, Base: 19},
	{Name: "Chunky Knit Throw", Brand: "Nordvik", Category: 0, Base: 89},
	{Name: "Rattan Storage Basket", Brand: "Hearth & Loom", Category: 0, Base: 39},
	{Name: "Oak Wall Clock", Brand: "Nordvik", Category: 0, Base: 59},
	{Name: "Framed Botanical Print", Brand: "Paper Meadow", Category: 0, Base: 45},
	{Name: "Reed Diffuser - Cedar", Brand: "Wick Studio", Category: 0, Base: 32},
	{Name: "Jute Doormat", Brand: "Hearth & Loom", Category: 0, Base: 27},
	{Name: "Brass Table Lamp", Brand: "Nordvik", Category: 0, Base: 129},
	{Name: "Waffle Bath Towel", Brand: "Nordvik", Category: 0, Base: 34},
	// Kitchen & Dining
	{Name: "Stoneware Mug Set of 4", Brand: "Kiln & Co", Category: 1, Base: 36},
	{Name: "Olive Wood Serving Board", Brand: "Kiln & Co", Category: 1, Base: 42},
	{Name: "Enamel Teapot", Brand: "Kiln & Co", Category: 1, Base: 49},
	{Name: "Linen Napkins Set of 4", Brand: "Hearth & Loom", Category: 1, Base: 28},
	{Name: "Cast Iron Skillet", Brand: "Forge Kitchen", Category: 1, Base: 65},
	{Name: "Glass Carafe", Brand: "Kiln & Co", Category: 1, Base: 22},
	{Name: "Espresso Cups Pair", Brand: "Kiln & Co", Category: 1, Base: 26},
	{Name: "Bamboo Utensil Set", Brand: "Forge Kitchen", Category: 1, Base: 18},
	{Name: "Olive Oil Gift Tin", Brand: "Casa Verde", Category: 1, Base: 21},
	{Name: "Ceramic Dinner Plate Set", Brand: "Kiln & Co", Category: 1, Base: 79},
	// Fashion
	{Name: "Merino Wool Scarf", Brand: "Fjell", Category: 2, Base: 55},
	{Name: "Organic Cotton T-Shirt", Brand: "Common Thread", Category: 2, Base: 29},
	{Name: "Cashmere Beanie", Brand: "Fjell", Category: 2, Base: 69},
	{Name: "Linen Shirt", Brand: "Common Thread", Category: 2, Base: 79},
	{Name: "Denim Jacket", Brand: "Common Thread", Category: 2, Base: 119},
	{Name: "Knitted Cardigan", Brand: "Fjell", Category: 2, Base: 95},
	{Name: "Silk Pyjama Set", Brand: "Maison Lune", Category: 2, Base: 139},
	{Name: "Wool Socks 3-Pack", Brand: "Fjell", Category: 2, Base: 24},
	{Name: "Canvas Sneakers", Brand: "Common Thread", Category: 2, Base: 85},
	{Name: "Waxed Raincoat", Brand: "Fjell", Category: 2, Base: 149},
	// Accessories
	{Name: "Leather Card Holder", Brand: "Atelier Nord", Category: 3, Base: 39},
	{Name: "Canvas Tote Bag", Brand: "Common Thread", Category: 3, Base: 25},
	{Name: "Tortoiseshell Sunglasses", Brand: "Atelier Nord", Category: 3, Base: 89},
	{Name: "Leather Weekend Bag", Brand: "Atelier Nord", Category: 3, Base: 229},
	{Name: "Silver Hoop Earrings", Brand: "Maison Lune", Category: 3, Base: 59},
	{Name: "Minimalist Watch", Brand: "Atelier Nord", Category: 3, Base: 159},
	{Name: "Woven Belt", Brand: "Common Thread", Category: 3, Base: 35},
	{Name: "Travel Wallet", Brand: "Atelier Nord", Category: 3, Base: 49},
	{Name: "Silk Scrunchies 3-Pack", Brand: "Maison Lune", Category: 3, Base: 19},
	{Name: "Compact Umbrella", Brand: "Fjell", Category: 3, Base: 32},
	// Beauty & Wellness
	{Name: "Lavender Bath Salts", Brand: "Botanica Lab", Category: 4, Base: 18},
	{Name: "Hand Cream Trio", Brand: "Botanica Lab", Category: 4, Base: 27},
	{Name: "Rosehip Facial Oil", Brand: "Botanica Lab", Category: 4, Base: 38},
	{Name: "Bamboo Toothbrush Set", Brand: "Casa Verde", Category: 4, Base: 12},
	{Name: "Jade Face Roller", Brand: "Maison Lune", Category: 4, Base: 29},
	{Name: "Cork Yoga Mat", Brand: "Casa Verde", Category: 4, Base: 75},
	{Name: "Herbal Tea Sampler", Brand: "Casa Verde", Category: 4, Base: 22},
	{Name: "Neroli Body Lotion", Brand: "Botanica Lab", Category: 4, Base: 31},
	{Name: "Shower Gel Gift Set", Brand: "Botanica Lab", Category: 4, Base: 35},
	// Gifts & Stationery
	{Name: "Leather Notebook", Brand: "Paper Meadow", Category: 5, Base: 34},
	{Name: "Fountain Pen", Brand: "Paper Meadow", Category: 5, Base: 49},
	{Name: "Greeting Card Set", Brand: "Paper Meadow", Category: 5, Base: 15},
	{Name: "1000-Piece Jigsaw Puzzle", Brand: "Paper Meadow", Category: 5, Base: 26},
	{Name: "Chocolate Truffle Box", Brand: "Casa Verde", Category: 5, Base: 24},
	{Name: "Succulent Desk Plant", Brand: "Casa Verde", Category: 5, Base: 19},
	{Name: "Wooden Chess Set", Brand: "Nordvik", Category: 5, Base: 79},
	{Name: "Linen Photo Album", Brand: "Paper Meadow", Category: 5, Base: 39},
	{Name: "Candle Making Kit", Brand: "Wick Studio", Category: 5, Base: 45},
	{Name: "Letterpress Wall Calendar", Brand: "Paper Meadow", Category: 5, Base: 29},
}

var categoryCodes = []string{"HOM", "KIT", "FAS", "ACC", "BEA", "GIF"}

// byCategory lists catalogue indices per category; popCum is the cumulative
// popularity weight used to pick products (a long tail, not uniform).
var (
	byCategory [][]int
	popCum     []float64
)

func init() {
	byCategory = make([][]int, len(categories))
	perCat := make([]int, len(categories))
	popCum = make([]float64, len(catalogue))
	sum := 0.0
	for i := range catalogue {
		p := &catalogue[i]
		perCat[p.Category]++
		p.ID = "prd_" + itoa(1001+i)
		p.SKU = categoryCodes[p.Category] + "-" + pad3(perCat[p.Category])
		p.Slug = slugify(p.Name)
		for c := 0; c < numCurrencies; c++ {
			units := int64(float64(p.Base)*currencyRates[c] + 0.5)
			p.Price[c] = units*100 - 1
		}
		byCategory[p.Category] = append(byCategory[p.Category], i)
		// Popularity rank scattered over the catalogue, Zipf-like weight.
		rank := (i * 37) % len(catalogue)
		sum += 1 / (1 + 0.12*float64(rank))
		popCum[i] = sum
	}
	for i := range popCum {
		popCum[i] /= sum
	}
}

func pad3(n int) string {
	s := itoa(n)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}

func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// searchQueries are what visitors type into the shop's search box; each maps
// to the category whose products the results list shows.
var searchQueries = []struct {
	Query    string
	Category int
}{
	{"candle", 0}, {"cushion", 0}, {"throw blanket", 0}, {"vase", 0},
	{"mug", 1}, {"teapot", 1}, {"serving board", 1}, {"napkins", 1},
	{"scarf", 2}, {"linen shirt", 2}, {"cardigan", 2}, {"socks", 2},
	{"wallet", 3}, {"tote bag", 3}, {"earrings", 3}, {"watch", 3},
	{"bath salts", 4}, {"hand cream", 4}, {"yoga mat", 4}, {"tea", 4},
	{"gift for her", 5}, {"gift for him", 3}, {"notebook", 5}, {"puzzle", 5},
	{"birthday gift", 5}, {"housewarming", 0}, {"chocolate", 5},
}

// coupon is a promotion code; Percent > 0 is a percentage off the subtotal,
// otherwise Fixed minor units off.
type coupon struct {
	Code    string
	Name    string
	Percent int64
	Fixed   int64
}

var (
	couponWelcome = coupon{"WELCOME10", "Welcome 10% off", 10, 0}
	couponVIP     = coupon{"VIP20", "VIP 20% off", 20, 0}
	couponWinback = coupon{"COMEBACK15", "We miss you 15% off", 15, 0}
	otherCoupons  = []coupon{
		{"SPRING15", "Spring sale 15% off", 15, 0},
		{"GIFT5", "5 off gifts", 0, 500},
		{"LOYAL10", "Loyalty 10% off", 10, 0},
		{"FREESHIP", "Free shipping", 0, 0},
	}
)

// campaign is a marketing campaign as Segment's context.campaign carries it
// (parsed from utm_ parameters).
type campaign struct {
	Name, Source, Medium, Content string
	Winback                       bool
}

var campaigns = []campaign{
	{Name: "spring_sale", Source: "newsletter", Medium: "email", Content: "hero_banner"},
	{Name: "brand_search", Source: "search", Medium: "cpc"},
	{Name: "gift_guide", Source: "instagram", Medium: "social", Content: "story"},
	{Name: "retargeting", Source: "display", Medium: "paid_social"},
	{Name: "affiliate_blog", Source: "partner_blog", Medium: "affiliate"},
	{Name: "new_arrivals", Source: "newsletter", Medium: "email", Content: "grid"},
	{Name: "winback_90d", Source: "crm", Medium: "email", Winback: true},
}

// referrers for sessions without a campaign; the empty string is direct
// traffic. Only reserved example domains.
var referrers = []string{
	"", "", "", "",
	"https://search.example.com/",
	"https://search.example.com/",
	"https://search.example.com/",
	"https://social.example.net/",
	"https://social.example.net/",
	"https://blog.example.org/gift-ideas",
}

var desktopAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
	"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
}

var mobileAgents = []string{
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
}

// ipPrefixes are the three IPv4 documentation ranges (RFC 5737).
var ipPrefixes = []string{"192.0.2.", "198.51.100.", "203.0.113."}

// Regions, as reported in Stats.ByRegion.
const (
	RegionEU      = "EU"
	RegionUK      = "UK"
	RegionUSCA    = "US-CA"
	RegionUSOther = "US-other"
	RegionOther   = "other"
)

// Regions lists the region keys in display order.
var Regions = []string{RegionEU, RegionUK, RegionUSCA, RegionUSOther, RegionOther}

var regionWeights = []int{35, 25, 15, 20, 5}

// country is a place a persona lives: a country, or for the US a state.
type country struct {
	Code     string // ISO 3166-1 alpha-2
	Name     string
	State    string // US states only
	Region   string
	Currency int
	Locale   string
	TZ       string
	Offset   int // hours from UTC, standard time, for the daily rhythm
	Weight   int // within the region
	TaxBP    int // basis points
	TaxIncl  bool
	PhoneCC  string
	Prefixes []string // national number prefixes; + 6 digits completes it
	Cities   []string
}

var countries = []country{
	{Code: "DE", Name: "Germany", Region: RegionEU, Currency: curEUR, Locale: "de-DE", TZ: "Europe/Berlin", Offset: 1, Weight: 25, TaxBP: 1900, TaxIncl: true, PhoneCC: "49", Prefixes: []string{"15123", "16090", "17612", "15904"}, Cities: []string{"Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Leipzig"}},
	{Code: "FR", Name: "France", Region: RegionEU, Currency: curEUR, Locale: "fr-FR", TZ: "Europe/Paris", Offset: 1, Weight: 19, TaxBP: 2000, TaxIncl: true, PhoneCC: "33", Prefixes: []string{"612", "645", "678", "760"}, Cities: []string{"Paris", "Lyon", "Marseille", "Toulouse", "Bordeaux", "Lille"}},
	{Code: "NL", Name: "Netherlands", Region: RegionEU, Currency: curEUR, Locale: "nl-NL", TZ: "Europe/Amsterdam", Offset: 1, Weight: 12, TaxBP: 2100, TaxIncl: true, PhoneCC: "31", Prefixes: []string{"612", "628", "641"}, Cities: []string{"Amsterdam", "Rotterdam", "Utrecht", "The Hague", "Eindhoven"}},
	{Code: "IE", Name: "Ireland", Region: RegionEU, Currency: curEUR, Locale: "en-IE", TZ: "Europe/Dublin", Offset: 0, Weight: 7, TaxBP: 2300, TaxIncl: true, PhoneCC: "353", Prefixes: []string{"851", "872", "831", "861"}, Cities: []string{"Dublin", "Cork", "Galway", "Limerick"}},
	{Code: "ES", Name: "Spain", Region: RegionEU, Currency: curEUR, Locale: "es-ES", TZ: "Europe/Madrid", Offset: 1, Weight: 12, TaxBP: 2100, TaxIncl: true, PhoneCC: "34", Prefixes: []string{"612", "655", "677", "699"}, Cities: []string{"Madrid", "Barcelona", "Valencia", "Seville", "Bilbao"}},
	{Code: "IT", Name: "Italy", Region: RegionEU, Currency: curEUR, Locale: "it-IT", TZ: "Europe/Rome", Offset: 1, Weight: 11, TaxBP: 2200, TaxIncl: true, PhoneCC: "39", Prefixes: []string{"3331", "3472", "3203", "3898"}, Cities: []string{"Rome", "Milan", "Turin", "Florence", "Bologna", "Naples"}},
	{Code: "SE", Name: "Sweden", Region: RegionEU, Currency: curEUR, Locale: "sv-SE", TZ: "Europe/Stockholm", Offset: 1, Weight: 5, TaxBP: 2500, TaxIncl: true, PhoneCC: "46", Prefixes: []string{"701", "722", "735", "762"}, Cities: []string{"Stockholm", "Gothenburg", "Malmö", "Uppsala"}},
	{Code: "BE", Name: "Belgium", Region: RegionEU, Currency: curEUR, Locale: "nl-BE", TZ: "Europe/Brussels", Offset: 1, Weight: 5, TaxBP: 2100, TaxIncl: true, PhoneCC: "32", Prefixes: []string{"470", "478", "495"}, Cities: []string{"Brussels", "Antwerp", "Ghent", "Liège"}},
	{Code: "AT", Name: "Austria", Region: RegionEU, Currency: curEUR, Locale: "de-AT", TZ: "Europe/Vienna", Offset: 1, Weight: 4, TaxBP: 2000, TaxIncl: true, PhoneCC: "43", Prefixes: []string{"6641", "6502", "6601", "6991"}, Cities: []string{"Vienna", "Graz", "Salzburg", "Innsbruck"}},

	{Code: "GB", Name: "United Kingdom", Region: RegionUK, Currency: curGBP, Locale: "en-GB", TZ: "Europe/London", Offset: 0, Weight: 1, TaxBP: 2000, TaxIncl: true, PhoneCC: "44", Prefixes: []string{"7700"}, Cities: []string{"London", "London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Edinburgh", "Bristol", "Cardiff", "Belfast"}},

	{Code: "US", Name: "United States", State: "CA", Region: RegionUSCA, Currency: curUSD, Locale: "en-US", TZ: "America/Los_Angeles", Offset: -8, Weight: 1, TaxBP: 725, PhoneCC: "1", Prefixes: []string{"2135", "3105", "4155", "5105", "6195", "6505", "7145", "9165"}, Cities: []string{"Los Angeles", "San Francisco", "San Diego", "Sacramento", "Oakland", "San Jose"}},

	{Code: "US", Name: "United States", State: "NY", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/New_York", Offset: -5, Weight: 18, TaxBP: 800, PhoneCC: "1", Prefixes: []string{"2125", "3475", "7185", "7165"}, Cities: []string{"New York", "Brooklyn", "Buffalo", "Rochester"}},
	{Code: "US", Name: "United States", State: "TX", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Chicago", Offset: -6, Weight: 15, TaxBP: 625, PhoneCC: "1", Prefixes: []string{"5125", "7135", "2145"}, Cities: []string{"Austin", "Houston", "Dallas", "San Antonio"}},
	{Code: "US", Name: "United States", State: "FL", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/New_York", Offset: -5, Weight: 12, TaxBP: 600, PhoneCC: "1", Prefixes: []string{"3055", "4075", "8135"}, Cities: []string{"Miami", "Orlando", "Tampa"}},
	{Code: "US", Name: "United States", State: "WA", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Los_Angeles", Offset: -8, Weight: 8, TaxBP: 650, PhoneCC: "1", Prefixes: []string{"2065", "5095"}, Cities: []string{"Seattle", "Spokane", "Tacoma"}},
	{Code: "US", Name: "United States", State: "IL", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Chicago", Offset: -6, Weight: 9, TaxBP: 625, PhoneCC: "1", Prefixes: []string{"3125", "7735"}, Cities: []string{"Chicago", "Evanston", "Springfield"}},
	{Code: "US", Name: "United States", State: "MA", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/New_York", Offset: -5, Weight: 7, TaxBP: 625, PhoneCC: "1", Prefixes: []string{"6175", "8575"}, Cities: []string{"Boston", "Cambridge", "Worcester"}},
	{Code: "US", Name: "United States", State: "CO", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Denver", Offset: -7, Weight: 6, TaxBP: 290, PhoneCC: "1", Prefixes: []string{"3035", "7205"}, Cities: []string{"Denver", "Boulder"}},
	{Code: "US", Name: "United States", State: "GA", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/New_York", Offset: -5, Weight: 6, TaxBP: 400, PhoneCC: "1", Prefixes: []string{"4045", "6785"}, Cities: []string{"Atlanta", "Savannah"}},
	{Code: "US", Name: "United States", State: "OR", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Los_Angeles", Offset: -8, Weight: 5, TaxBP: 0, PhoneCC: "1", Prefixes: []string{"5035"}, Cities: []string{"Portland", "Eugene"}},
	{Code: "US", Name: "United States", State: "PA", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/New_York", Offset: -5, Weight: 8, TaxBP: 600, PhoneCC: "1", Prefixes: []string{"2155", "4125"}, Cities: []string{"Philadelphia", "Pittsburgh"}},
	{Code: "US", Name: "United States", State: "NC", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/New_York", Offset: -5, Weight: 5, TaxBP: 475, PhoneCC: "1", Prefixes: []string{"7045", "9195"}, Cities: []string{"Charlotte", "Raleigh"}},
	{Code: "US", Name: "United States", State: "AZ", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Phoenix", Offset: -7, Weight: 5, TaxBP: 560, PhoneCC: "1", Prefixes: []string{"6025", "5205"}, Cities: []string{"Phoenix", "Tucson"}},
	{Code: "US", Name: "United States", State: "MN", Region: RegionUSOther, Currency: curUSD, Locale: "en-US", TZ: "America/Chicago", Offset: -6, Weight: 4, TaxBP: 688, PhoneCC: "1", Prefixes: []string{"6125"}, Cities: []string{"Minneapolis", "Saint Paul"}},

	{Code: "CA", Name: "Canada", Region: RegionOther, Currency: curUSD, Locale: "en-CA", TZ: "America/Toronto", Offset: -5, Weight: 35, PhoneCC: "1", Prefixes: []string{"4165", "6045", "5145"}, Cities: []string{"Toronto", "Vancouver", "Montreal", "Calgary"}},
	{Code: "AU", Name: "Australia", Region: RegionOther, Currency: curUSD, Locale: "en-AU", TZ: "Australia/Sydney", Offset: 10, Weight: 25, PhoneCC: "61", Prefixes: []string{"412", "491", "433"}, Cities: []string{"Sydney", "Melbourne", "Brisbane", "Perth"}},
	{Code: "JP", Name: "Japan", Region: RegionOther, Currency: curUSD, Locale: "ja-JP", TZ: "Asia/Tokyo", Offset: 9, Weight: 20, PhoneCC: "81", Prefixes: []string{"9012", "8034", "7055"}, Cities: []string{"Tokyo", "Osaka", "Kyoto", "Yokohama"}},
	{Code: "NZ", Name: "New Zealand", Region: RegionOther, Currency: curUSD, Locale: "en-NZ", TZ: "Pacific/Auckland", Offset: 12, Weight: 10, PhoneCC: "64", Prefixes: []string{"211", "272"}, Cities: []string{"Auckland", "Wellington", "Christchurch"}},
	{Code: "SG", Name: "Singapore", Region: RegionOther, Currency: curUSD, Locale: "en-SG", TZ: "Asia/Singapore", Offset: 8, Weight: 10, PhoneCC: "65", Prefixes: []string{"81", "92"}, Cities: []string{"Singapore"}},
}

// byRegion lists country indices per region (in Regions order) with their
// cumulative weights.
var (
	regionCountries [][]int
	regionCum       [][]int
	regionTotal     int
)

func init() {
	regionCountries = make([][]int, len(Regions))
	regionCum = make([][]int, len(Regions))
	for r, name := range Regions {
		sum := 0
		for i, c := range countries {
			if c.Region == name {
				sum += c.Weight
				regionCountries[r] = append(regionCountries[r], i)
				regionCum[r] = append(regionCum[r], sum)
			}
		}
	}
	for _, w := range regionWeights {
		regionTotal += w
	}
}

// firstNames and lastNames are a deliberately international mix; nobody
// generated from them is a real person.
var firstNames = []string{
	"Emma", "Liam", "Sophie", "Lukas", "Mia", "Noah", "Léa", "Hugo", "Chloé", "Louis",
	"Anna", "Jonas", "Sofia", "Matteo", "Giulia", "Lorenzo", "Lucía", "Pablo", "Carmen", "Javier",
	"Saoirse", "Cian", "Aoife", "Oisín", "Niamh", "Freya", "Oliver", "Amelia", "Harry", "Isla",
	"George", "Ingrid", "Lars", "Astrid", "Erik", "Maja", "Emil", "Daan", "Fenna", "Sem",
	"Lotte", "Olivia", "Ethan", "Ava", "Mason", "Harper", "Mateo", "Camila", "Diego", "Valentina",
	"Aiden", "Yuki", "Haruto", "Sakura", "Ren", "Priya", "Arjun", "Aisha", "Omar", "Fatima",
	"Yusuf", "Mei", "Hao", "Zoë", "Björn", "Søren", "Małgorzata", "Tomás", "José", "Siobhán",
	"Chiara", "Élise", "Amara", "Kwame", "Chidi", "Nia", "Tariq", "Leila", "Mariam", "Inès",
	"Jakub", "Zofia", "Mateusz", "Elif", "Emre", "Ana", "João", "Leon", "Clara", "Felix",
}

var lastNames = []string{
	"Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Martin", "Bernard", "Dubois", "Lefèvre", "Moreau",
	"de Jong", "Jansen", "Visser", "van Dijk", "Bakker", "Murphy", "O'Brien", "Kelly", "Byrne", "Walsh",
	"García", "Fernández", "López", "Martínez", "Sánchez", "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi",
	"Andersson", "Johansson", "Karlsson", "Nilsson", "Lindqvist", "Smith", "Jones", "Taylor", "Brown", "Williams",
	"Wilson", "Evans", "Thomas", "Johnson", "Davis", "Miller", "Rodriguez", "Nguyen", "Kim", "Lee",
	"Patel", "Singh", "Khan", "Ali", "Cohen", "Novak", "Kowalski", "Nowak", "Horvat", "Papadopoulos",
	"Yılmaz", "Okafor", "Mensah", "Tanaka", "Suzuki", "Sato", "Wang", "Li", "Zhang", "Silva",
	"Santos", "Costa", "Ivanova", "Dupont", "Hoffmann", "Larsen", "Jensen", "Kowalczyk", "Romano", "Moreno",
}

// emailDomains are reserved example / test domains only (RFC 2606).
var emailDomains = []string{"example.com", "example.com", "example.org", "example.net", "mail.test"}

// asciiFold maps the accented letters in the name lists to ASCII for email
// local parts.
var asciiFold = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ä': "a", 'ã': "a", 'å': "a", 'æ': "ae",
	'ç': "c", 'ć': "c", 'é': "e", 'è': "e", 'ê': "e", 'ë': "e",
	'í': "i", 'ì': "i", 'î': "i", 'ï': "i", 'ı': "i", 'ł': "l", 'ñ': "n", 'ń': "n",
	'ó': "o", 'ò': "o", 'ô': "o", 'ö': "o", 'õ': "o", 'ø': "o", 'ß': "ss", 'ś': "s", 'ş': "s",
	'ú': "u", 'ù': "u", 'û': "u", 'ü': "u", 'ź': "z", 'ż': "z", 'ğ': "g",
}

func emailPart(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		default:
			if s, ok := asciiFold[r]; ok {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}
