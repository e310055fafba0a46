package demo

// Persona is the plaintext identity of one generated customer, for the demo
// and tests to look people up after ingestion. Every value is synthetic:
// emails are on reserved example/test domains and phone numbers are made up.
type Persona struct {
	UserID    string
	Email     string
	FirstName string
	LastName  string
	Phone     string // E.164, empty for about 40% of people
	Country   string // ISO 3166-1 alpha-2 ("GB" for the UK region)
	Region    string // one of Regions
	// AnonymousIDs are the person's devices (1–3). A device may stay unused
	// when the person has fewer sessions than devices.
	AnonymousIDs []string

	// Additions beyond the brief: the rest of the identify address trait.
	State string // US state code, empty elsewhere
	City  string
}

// Seed salts, so that the persona, behaviour and visitor streams of the same
// index are independent.
const (
	saltPersona  = 0x7065727301
	saltCustomer = 0x6375737402
	saltVisitor  = 0x7669736903
	saltDevice   = 0x6465766904
	saltUserID   = 0x7573657205
	saltOrderID  = 0x6f72646506
	saltAnonID   = 0x616e6f6e07
	saltVisAnon  = 0x76616e6f08
	saltCampaign = 0x63616d7009
)

func seedKey(seed int64) uint64 { return mix(uint64(seed) ^ 0xc0ffee5eed) }

// drawCountry picks a country index with the region mix of regionWeights.
func drawCountry(r *rng) int {
	x := r.intn(regionTotal)
	reg := 0
	for ; reg < len(regionWeights)-1; reg++ {
		if x < regionWeights[reg] {
			break
		}
		x -= regionWeights[reg]
	}
	cum := regionCum[reg]
	y := r.intn(cum[len(cum)-1])
	for j, c := range cum {
		if y < c {
			return regionCountries[reg][j]
		}
	}
	return regionCountries[reg][len(cum)-1]
}

// personaHead draws what the behaviour planner needs before the full persona
// is built: where the person lives and how many devices they use.
func personaHead(r *rng) (ci, ndev int) {
	ci = drawCountry(r)
	switch x := r.intn(100); {
	case x < 55:
		ndev = 1
	case x < 88:
		ndev = 2
	default:
		ndev = 3
	}
	return ci, ndev
}

func personaRNG(key uint64, i int) rng { return newRNG(key^saltPersona, uint64(i)) }

// Person returns the i-th generated customer (0 <= i < opts.Customers). It
// depends only on opts.Seed and i, not on the period or the customer count.
// UserID, Email and Phone are unique per index (Phone for i < 1,000,000).
func Person(opts Options, i int) Persona {
	key := seedKey(opts.Seed)
	r := personaRNG(key, i)
	ci, ndev := personaHead(&r)
	c := &countries[ci]
	p := Persona{
		UserID:    userID(key, i),
		FirstName: pick(&r, firstNames),
		LastName:  pick(&r, lastNames),
		Country:   c.Code,
		Region:    c.Region,
		State:     c.State,
		City:      pick(&r, c.Cities),
	}
	// The numeric suffix is the index, so the address is unique: the name
	// parts contain no digits.
	f, l, n := emailPart(p.FirstName), emailPart(p.LastName), itoa(i+1)
	var local string
	switch r.intn(6) {
	case 0, 1, 2:
		local = f + "." + l + n
	case 3:
		local = f[:1] + "." + l + n
	case 4:
		local = f + "_" + l + n
	default:
		local = f + n
	}
	p.Email = local + "@" + pick(&r, emailDomains)
	if r.chance(0.6) {
		// The last six digits are a bijection of the index, so numbers are
		// unique across people.
		u := (uint64(i)*7919 + key%1000000) % 1000000
		s := itoa(int(u))
		for len(s) < 6 {
			s = "0" + s
		}
		p.Phone = "+" + c.PhoneCC + pick(&r, c.Prefixes) + s
	}
	p.AnonymousIDs = make([]string, ndev)
	for d := range p.AnonymousIDs {
		p.AnonymousIDs[d] = anonID(key, i, d)
	}
	return p
}

// userID is customer i's userId; mix is a bijection, so ids are unique.
func userID(key uint64, i int) string { return "cust_" + hex16(mix(key^saltUserID^uint64(i))) }

// anonID is the anonymousId of customer i's device d, from a stream of its
// own so that sessions can derive it without building the whole persona.
func anonID(key uint64, i, d int) string {
	r := newRNG(key^saltAnonID, uint64(i)<<2|uint64(d))
	return newUUID(&r)
}
