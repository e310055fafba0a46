package privacy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/custody-cdp/custody/policies"
)

// Sources of consent records.
const (
	SourceAPI    = "api"
	SourceCLI    = "cli"
	SourceEvent  = "event" // context.consent on a message
	SourceGPC    = "gpc"   // Sec-GPC: 1 on a request
	SourceImport = "import"
)

// Consent is one consent record. Records are added, never changed: the
// history shows when and how each decision was made (GDPR Art. 7(1)).
type Consent struct {
	Purpose      string     `json:"purpose"`
	Status       string     `json:"status"` // granted, denied, withdrawn
	LawfulBasis  string     `json:"lawful_basis,omitempty"`
	Jurisdiction string     `json:"jurisdiction,omitempty"`
	Source       string     `json:"source"`
	Notice       string     `json:"notice,omitempty"` // id/version or hash of the text shown
	CollectedAt  time.Time  `json:"collected_at"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	// RecordedAt is when Custody stored it (CollectedAt is when the person
	// decided, as the source reports it).
	RecordedAt time.Time `json:"recorded_at"`
}

// Validate checks a record against the taxonomy; errors name the field.
func (c *Consent) Validate(validPurpose func(string) bool) error {
	bad := func(field, why string) error { return fmt.Errorf("%w: %s: %s", ErrInvalidConsent, field, why) }
	switch {
	case c.Purpose == "":
		return bad("purpose", "required")
	case !validPurpose(c.Purpose):
		return bad("purpose", fmt.Sprintf("unknown purpose %q (see `custody policy purposes`)", c.Purpose))
	}
	switch c.Status {
	case policies.StatusGranted, policies.StatusDenied, policies.StatusWithdrawn:
	default:
		return bad("status", "must be granted, denied or withdrawn")
	}
	switch c.LawfulBasis {
	case "", policies.BasisConsent, policies.BasisContract, policies.BasisLegalObligation, policies.BasisVitalInterests,
		policies.BasisPublicTask, policies.BasisLegitimateInterests:
	default:
		return bad("lawful_basis", "must be consent, contract, legal_obligation, vital_interests, public_task or legitimate_interests")
	}
	if c.Jurisdiction != "" && NormalizeJurisdiction(c.Jurisdiction) != c.Jurisdiction {
		return bad("jurisdiction", "must be EU, UK, US-<state> or an ISO country code")
	}
	if c.Source == "" {
		return bad("source", "required")
	}
	if len(c.Notice) > 256 {
		return bad("notice", "longer than 256 bytes")
	}
	if c.CollectedAt.IsZero() {
		return bad("collected_at", "required")
	}
	if c.ExpiresAt != nil && !c.ExpiresAt.After(c.CollectedAt) {
		return bad("expires_at", "must be after collected_at")
	}
	return nil
}

// State is the resolved consent of a person for one purpose.
type State struct {
	Record Consent `json:"record"`
	// Conflict is set when profiles merged into this person disagreed and
	// the most restrictive record won.
	Conflict string `json:"conflict,omitempty"`
}

// Resolve turns the consent records of a person's profiles (one slice per
// profile) into one record per purpose:
//
//   - on each profile, its latest record per purpose (by collected_at,
//     then recorded_at);
//   - across profiles: if the latest record of all was collected after the
//     person's last merge (mergedAt), it was decided with the whole person
//     in view and wins; otherwise disagreeing profiles resolve to the most
//     restrictive state (denied/withdrawn over granted), and the conflict
//     is reported.
//
// The result depends only on the records, not on their order.
func Resolve(perProfile [][]Consent, mergedAt time.Time) map[string]State {
	byPurpose := map[string][]Consent{}
	for _, recs := range perProfile {
		for _, i := range Latest(recs) {
			byPurpose[recs[i].Purpose] = append(byPurpose[recs[i].Purpose], recs[i])
		}
	}
	out := map[string]State{}
	for p, rs := range byPurpose {
		sort.Slice(rs, func(i, j int) bool { return latest(rs[i], rs[j]) })
		newest := rs[0]
		if len(rs) == 1 || newest.CollectedAt.After(mergedAt) || allSame(rs) {
			out[p] = State{Record: newest}
			continue
		}
		strict := rs[0]
		for _, r := range rs[1:] {
			if restrictiveness(r.Status) > restrictiveness(strict.Status) {
				strict = r
			}
		}
		st := State{Record: strict}
		if strict.Status != newest.Status {
			st.Conflict = fmt.Sprintf("merged profiles disagreed (%s vs %s); the most restrictive applies until the person decides again", newest.Status, strict.Status)
		}
		out[p] = st
	}
	return out
}

// Latest returns, for one profile's records, the index of its latest
// record per purpose (by collected_at, then recorded_at, then the more
// restrictive), in the order the purposes first appear. For a person who
// is one profile these are exactly the records Resolve gives.
func Latest(recs []Consent) []int {
	var out []int
next:
	for i, r := range recs {
		for k, j := range out {
			if recs[j].Purpose == r.Purpose {
				if latest(r, recs[j]) {
					out[k] = i
				}
				continue next
			}
		}
		out = append(out, i)
	}
	return out
}

// latest says whether a was decided later than b.
func latest(a, b Consent) bool {
	if !a.CollectedAt.Equal(b.CollectedAt) {
		return a.CollectedAt.After(b.CollectedAt)
	}
	if !a.RecordedAt.Equal(b.RecordedAt) {
		return a.RecordedAt.After(b.RecordedAt)
	}
	return restrictiveness(a.Status) > restrictiveness(b.Status)
}

func allSame(rs []Consent) bool {
	for _, r := range rs[1:] {
		if r.Status != rs[0].Status {
			return false
		}
	}
	return true
}

func restrictiveness(status string) int {
	switch status {
	case policies.StatusGranted:
		return 0
	case policies.StatusWithdrawn:
		return 1
	}
	return 2 // denied
}

// Subject builds the policy input's subject from resolved states.
func Subject(states map[string]State, jurisdiction string, gpc, restricted bool, objections []string, age *int) policies.Subject {
	s := policies.Subject{Jurisdiction: jurisdiction, Consents: map[string]policies.Consent{}, GPC: gpc,
		Restricted: restricted, Objections: objections, Age: age}
	for p, st := range states {
		s.Consents[p] = st.Record.Policy()
	}
	return s
}

// Policy is what the policy input holds of a record.
func (c *Consent) Policy() policies.Consent {
	return policies.Consent{Status: c.Status, At: c.CollectedAt, ExpiresAt: c.ExpiresAt, LawfulBasis: c.LawfulBasis}
}

// EU/EEA member states (GDPR applies).
var eea = map[string]bool{
	"AT": true, "BE": true, "BG": true, "HR": true, "CY": true, "CZ": true, "DK": true, "EE": true, "FI": true,
	"FR": true, "DE": true, "GR": true, "HU": true, "IE": true, "IT": true, "LV": true, "LT": true, "LU": true,
	"MT": true, "NL": true, "PL": true, "PT": true, "RO": true, "SK": true, "SI": true, "ES": true, "SE": true,
	"IS": true, "LI": true, "NO": true,
}

var countryNames = map[string]string{
	"UNITED KINGDOM": "GB", "GREAT BRITAIN": "GB", "ENGLAND": "GB", "SCOTLAND": "GB", "WALES": "GB",
	"NORTHERN IRELAND": "GB", "UNITED STATES": "US", "USA": "US", "GERMANY": "DE", "FRANCE": "FR",
	"NETHERLANDS": "NL", "EIRE": "IE", "IRELAND": "IE", "SPAIN": "ES", "ITALY": "IT", "BELGIUM": "BE",
	"PORTUGAL": "PT", "SWEDEN": "SE", "NORWAY": "NO", "DENMARK": "DK", "FINLAND": "FI", "AUSTRIA": "AT",
	"SWITZERLAND": "CH", "POLAND": "PL", "GREECE": "GR", "CYPRUS": "CY", "ICELAND": "IS", "LITHUANIA": "LT",
	"CZECH REPUBLIC": "CZ", "MALTA": "MT", "CANADA": "CA", "AUSTRALIA": "AU", "JAPAN": "JP",
}

// Jurisdiction derives the policy jurisdiction from a country (ISO code or
// common name) and, for the US, a state: EU for the EU/EEA, UK, US-CA,
// US-<state>, otherwise the country code (which the policies treat by the
// strictest rule). Unknown gives "".
func Jurisdiction(country, state string) string {
	c := strings.ToUpper(strings.TrimSpace(country))
	if code, ok := countryNames[c]; ok {
		c = code
	}
	switch {
	case c == "":
		return ""
	case c == "GB" || c == "UK":
		return "UK"
	case eea[c]:
		return "EU"
	case c == "US":
		st := strings.ToUpper(strings.TrimSpace(state))
		if len(st) == 2 {
			return "US-" + st
		}
		return "US"
	}
	if len(c) == 2 {
		return c
	}
	return ""
}

// NormalizeJurisdiction reads an explicit jurisdiction (EU, UK, US-CA,
// or a country code) and returns its canonical form, or "".
func NormalizeJurisdiction(j string) string {
	u := strings.ToUpper(strings.TrimSpace(j))
	switch {
	case u == "EU" || u == "UK":
		return u
	case strings.HasPrefix(u, "US-") && len(u) == 5:
		return u
	case len(u) == 2:
		return Jurisdiction(u, "")
	}
	return ""
}

// CategoryMap maps a consent manager's category ids (Segment's
// context.consent.categoryPreferences keys) to purposes.
type CategoryMap map[string][]string

// DefaultCategories maps the category names consent managers commonly use.
func DefaultCategories() CategoryMap {
	return CategoryMap{
		"necessary":         {"essential.service"},
		"functional":        {"essential.service"},
		"analytics":         {"analytics"},
		"performance":       {"analytics"},
		"marketing":         {"marketing.communications"},
		"email":             {"marketing.communications.email"},
		"sms":               {"marketing.communications.sms"},
		"advertising":       {"marketing.advertising"},
		"targeting":         {"marketing.advertising"},
		"personalization":   {"personalize.content.profiled"},
		"personalisation":   {"personalize.content.profiled"},
		"sale_of_data":      {"third_party_sharing"},
		"third_party_share": {"third_party_sharing"},
	}
}

// FromCategoryPreferences turns context.consent.categoryPreferences
// ({"advertising": false, ...}) into consent records; unknown categories
// are returned so they can be counted, never guessed.
func FromCategoryPreferences(raw json.RawMessage, m CategoryMap, at, now time.Time, jurisdiction string) ([]Consent, []string) {
	var prefs map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &prefs) != nil {
		return nil, nil
	}
	var out []Consent
	var unknown []string
	keys := make([]string, 0, len(prefs))
	for k := range prefs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := prefs[k].(bool)
		if !ok {
			continue
		}
		purposes, known := m[strings.ToLower(k)]
		if !known {
			unknown = append(unknown, k)
			continue
		}
		status := policies.StatusDenied
		if v {
			status = policies.StatusGranted
		}
		for _, p := range purposes {
			out = append(out, Consent{Purpose: p, Status: status, LawfulBasis: policies.BasisConsent, Jurisdiction: jurisdiction,
				Source: SourceEvent, Notice: "categoryPreferences:" + k, CollectedAt: at, RecordedAt: now})
		}
	}
	return out, unknown
}

// GPCPurposes are the purposes a Global Privacy Control signal opts out of:
// sale and sharing, and cross-context behavioural advertising.
var GPCPurposes = []string{"third_party_sharing", "marketing.advertising.third_party.targeted"}

// FromGPC returns the opt-out records of a Sec-GPC: 1 signal.
func FromGPC(at, now time.Time, jurisdiction string) []Consent {
	var out []Consent
	for _, p := range GPCPurposes {
		out = append(out, Consent{Purpose: p, Status: policies.StatusDenied, LawfulBasis: policies.BasisConsent,
			Jurisdiction: jurisdiction, Source: SourceGPC, Notice: "Sec-GPC: 1", CollectedAt: at, RecordedAt: now})
	}
	return out
}
