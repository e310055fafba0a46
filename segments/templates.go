package segments

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Template is a built-in segment definition. Definition uses the default
// parameters; With makes one with others. Templates parse structurally:
// Compile (or NewSet) checks their purpose against the caller's taxonomy.
type Template struct {
	Name        string
	Description string
	// Definition is the template with its default parameters; its Name is
	// the template's name.
	Definition *Definition
	// Params are the template's parameters; every template has "purpose".
	Params []Param
	source string
}

// Param is a parameter of a template. Values are given as strings.
type Param struct {
	Name string
	// Kind is the value's shape:
	//   days      an integer in [1, 3650] (a number of days)
	//   count     an integer in [1, 1000]
	//   percent   a number in (0, 100]
	//   country   an ISO 3166-1 alpha-2 code (DE), case-insensitive
	//   countries comma-separated country codes (DE,AT,CH)
	//   regions   comma-separated region codes, as in the address.state
	//             trait (CA,NY), 1 to 40 of A-Z, a-z, 0-9, space, . and -
	//   purpose   a purpose key
	Kind        string
	Description string
	Default     string
}

// Param kinds.
const (
	ParamDays      = "days"
	ParamCount     = "count"
	ParamPercent   = "percent"
	ParamCountry   = "country"
	ParamCountries = "countries"
	ParamRegions   = "regions"
	ParamPurpose   = "purpose"
)

const (
	purposeEmail = "marketing.communications.email"
	purposeAds   = "marketing.advertising.first_party.targeted"
	purposeSite  = "personalize.content.profiled"
)

func purposeParam(def string) Param {
	return Param{Name: "purpose", Kind: ParamPurpose, Description: "Purpose the members are used for.", Default: def}
}

// Templates returns the built-in templates, in a fixed order. Event names
// are those of the Segment e-commerce spec (Product Viewed, Product Added,
// Order Completed, with the properties total, revenue, coupon, discount).
//
// RFM tiers (recency = days_since_last_order, frequency = order_count,
// monetary = revenue_total), disjoint:
//
//	champions    R <= 30, F >= 3 and in the top 20% by M
//	loyal        R <= 90, F >= 3 and not a champion
//	at_risk_rfm  90 < R <= 365 and F >= 3: used to buy often, stopped
//	hibernating  R > 180 and F <= 2: bought little, long ago
func Templates() []Template {
	specs := []Template{
		{
			Name:        "new_visitors",
			Description: "People first seen in the last N days who have not identified themselves (no email or phone trait).",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "First seen within this many days.", Default: "7"},
				purposeParam(purposeSite),
			},
			source: `{"name": "new_visitors",
 "description": "First seen in the last {{days}} days; no email or phone trait.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"computed": "days_since_first_seen", "lt": {{days}}},
   {"trait": "email", "exists": false},
   {"trait": "phone", "exists": false}]}}`,
		},
		{
			Name:        "browsers_without_purchase",
			Description: "People who viewed products in the last N days and have never ordered.",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "Viewed a product within this many days.", Default: "30"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "browsers_without_purchase",
 "description": "Viewed a product in the last {{days}} days; never ordered.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"event": "Product Viewed", "within": "{{days}}d"},
   {"event": "Order Completed", "count": {"eq": 0}}]}}`,
		},
		{
			Name:        "cart_abandoners",
			Description: "People who added a product to the cart in the last N days and have not ordered in that time. (The language has no \"since that event\": an order placed within the window but before the add also excludes.)",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "Window of the add to cart, and of no order.", Default: "3"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "cart_abandoners",
 "description": "Added to cart in the last {{days}} days; no order in that time.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"event": "Product Added", "within": "{{days}}d"},
   {"not": {"event": "Order Completed", "within": "{{days}}d"}}]}}`,
		},
		{
			Name:        "high_intent_shoppers",
			Description: "People who viewed products at least N times and added to cart, both in the last few days (views of any product).",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "Window of the views and the add to cart.", Default: "3"},
				{Name: "views", Kind: ParamCount, Description: "Minimum number of product views.", Default: "2"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "high_intent_shoppers",
 "description": "{{views}}+ product views and an add to cart in the last {{days}} days.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"event": "Product Viewed", "within": "{{days}}d", "count": {"gte": {{views}}}},
   {"event": "Product Added", "within": "{{days}}d"}]}}`,
		},
		{
			Name:        "first_time_buyers",
			Description: "People with exactly one order.",
			Params:      []Param{purposeParam(purposeEmail)},
			source: `{"name": "first_time_buyers",
 "description": "Exactly one order.",
 "purpose": {{purpose}},
 "where": {"event": "Order Completed", "count": {"eq": 1}}}`,
		},
		{
			Name:        "repeat_buyers",
			Description: "People with at least N orders.",
			Params: []Param{
				{Name: "orders", Kind: ParamCount, Description: "Minimum number of orders.", Default: "2"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "repeat_buyers",
 "description": "At least {{orders}} orders.",
 "purpose": {{purpose}},
 "where": {"event": "Order Completed", "count": {"gte": {{orders}}}}}`,
		},
		{
			Name:        "vip",
			Description: "The top N% of people by revenue of the last 365 days (ties included; people without an order in that time excluded).",
			Params: []Param{
				{Name: "percent", Kind: ParamPercent, Description: "Share of the population.", Default: "10"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "vip",
 "description": "Top {{percent}}% by revenue of the last 365 days.",
 "purpose": {{purpose}},
 "where": {"top": {"percent": {{percent}}, "of": "revenue_365d"}}}`,
		},
		{
			Name:        "discount_only_buyers",
			Description: "People who have ordered, and used a coupon (non-empty coupon) or a discount (discount > 0) on every order.",
			Params:      []Param{purposeParam(purposeEmail)},
			source: `{"name": "discount_only_buyers",
 "description": "Every order used a coupon or a discount.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"event": "Order Completed", "count": {"gte": 1}},
   {"event": "Order Completed",
    "where": {"not": {"any": [{"properties.coupon": {"ne": ""}}, {"properties.discount": {"gt": 0}}]}},
    "count": {"eq": 0}}]}}`,
		},
		{
			Name:        "at_risk",
			Description: "People who have ordered, but not in the last N days (includes lapsed).",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "No order within this many days.", Default: "90"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "at_risk",
 "description": "Ordered before; no order in the last {{days}} days.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"event": "Order Completed"},
   {"not": {"event": "Order Completed", "within": "{{days}}d"}}]}}`,
		},
		{
			Name:        "lapsed",
			Description: "People who have ordered, but not in the last N days.",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "No order within this many days.", Default: "180"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "lapsed",
 "description": "Ordered before; no order in the last {{days}} days.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"event": "Order Completed"},
   {"not": {"event": "Order Completed", "within": "{{days}}d"}}]}}`,
		},
		{
			Name:        "replenishment_due",
			Description: "People with at least two orders whose expected next order (last order + their median gap between orders) is at most N days away, or at most N days overdue.",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "Days before and after the expected next order.", Default: "7"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "replenishment_due",
 "description": "Expected to reorder within {{days}} days, or at most {{days}} days overdue.",
 "purpose": {{purpose}},
 "where": {"computed": "days_until_next_order", "gte": -{{days}}, "lte": {{days}}}}`,
		},
		{
			Name:        "paid_social_visitors",
			Description: "People who viewed a page in the last N days coming from paid social: utm medium (context.campaign.medium) paid_social, paid-social or paidsocial.",
			Params: []Param{
				{Name: "days", Kind: ParamDays, Description: "Page view within this many days.", Default: "30"},
				purposeParam(purposeSite),
			},
			source: `{"name": "paid_social_visitors",
 "description": "Came from paid social in the last {{days}} days.",
 "purpose": {{purpose}},
 "where": {"event": "page", "within": "{{days}}d",
   "where": {"context.campaign.medium": {"in": ["paid_social", "paid-social", "paidsocial"]}}}}`,
		},
		{
			Name:        "champions",
			Description: "RFM: ordered in the last 30 days, at least 3 orders, top 20% by total revenue.",
			Params:      []Param{purposeParam(purposeEmail)},
			source: `{"name": "champions",
 "description": "RFM champions: R <= 30 days, F >= 3, M in the top 20%.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"computed": "days_since_last_order", "lte": 30},
   {"computed": "order_count", "gte": 3},
   {"top": {"percent": 20, "of": "revenue_total"}}]}}`,
		},
		{
			Name:        "loyal",
			Description: "RFM: ordered in the last 90 days, at least 3 orders, not a champion.",
			Params:      []Param{purposeParam(purposeEmail)},
			source: `{"name": "loyal",
 "description": "RFM loyal: R <= 90 days, F >= 3, not a champion.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"computed": "days_since_last_order", "lte": 90},
   {"computed": "order_count", "gte": 3},
   {"not": {"all": [
     {"computed": "days_since_last_order", "lte": 30},
     {"top": {"percent": 20, "of": "revenue_total"}}]}}]}}`,
		},
		{
			Name:        "at_risk_rfm",
			Description: "RFM: at least 3 orders, the last one 91 to 365 days ago.",
			Params:      []Param{purposeParam(purposeEmail)},
			source: `{"name": "at_risk_rfm",
 "description": "RFM at risk: 90 < R <= 365 days, F >= 3.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"computed": "days_since_last_order", "gt": 90, "lte": 365},
   {"computed": "order_count", "gte": 3}]}}`,
		},
		{
			Name:        "hibernating",
			Description: "RFM: one or two orders, the last one more than 180 days ago.",
			Params:      []Param{purposeParam(purposeEmail)},
			source: `{"name": "hibernating",
 "description": "RFM hibernating: R > 180 days, F <= 2.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"computed": "days_since_last_order", "gt": 180},
   {"computed": "order_count", "lte": 2}]}}`,
		},
		{
			Name:        "by_country",
			Description: "People whose address is in one of the given countries (address.country trait).",
			Params: []Param{
				{Name: "countries", Kind: ParamCountries, Description: "ISO 3166-1 alpha-2 codes, comma-separated.", Default: "DE"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "by_country",
 "description": "Address in the given countries.",
 "purpose": {{purpose}},
 "where": {"trait": "address.country", "in": {{countries}}}}`,
		},
		{
			Name:        "by_region",
			Description: "People whose address is in one of the given regions of a country (address.country and address.state traits).",
			Params: []Param{
				{Name: "country", Kind: ParamCountry, Description: "ISO 3166-1 alpha-2 code.", Default: "US"},
				{Name: "regions", Kind: ParamRegions, Description: "Region codes as in address.state, comma-separated.", Default: "CA"},
				purposeParam(purposeEmail),
			},
			source: `{"name": "by_region",
 "description": "Address in the given regions of a country.",
 "purpose": {{purpose}},
 "where": {"all": [
   {"trait": "address.country", "eq": {{country}}},
   {"trait": "address.state", "in": {{regions}}}]}}`,
		},
	}
	for i := range specs {
		d, err := specs[i].With(nil)
		if err != nil {
			panic("segments: template " + specs[i].Name + ": " + err.Error())
		}
		specs[i].Definition = d
	}
	return specs
}

// With returns the template's definition with the given parameters (the
// defaults for those not given). Unknown or malformed parameters are an
// ErrorList of ErrInvalidParam at params.<name>.
func (t Template) With(params map[string]string) (*Definition, error) {
	var errs ErrorList
	for name := range params {
		known := false
		for _, p := range t.Params {
			known = known || p.Name == name
		}
		if !known {
			errs = append(errs, &Error{Path: pathKey("params", name), Message: "unknown parameter", Err: ErrInvalidParam})
		}
	}
	var pairs []string
	for _, p := range t.Params {
		v, ok := params[p.Name]
		if !ok {
			v = p.Default
		}
		out, msg := renderParam(p.Kind, v)
		if msg != "" {
			errs = append(errs, &Error{Path: pathKey("params", p.Name), Message: msg, Err: ErrInvalidParam})
			continue
		}
		pairs = append(pairs, "{{"+p.Name+"}}", out)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return Parse([]byte(strings.NewReplacer(pairs...).Replace(t.source)), ParseOptions{Structural: true})
}

func sortErrors(errs ErrorList) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Path < errs[j-1].Path; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// renderParam validates a parameter value and renders it as the JSON text
// that replaces its placeholder; msg is non-empty when it is invalid.
func renderParam(kind, v string) (out, msg string) {
	v = strings.TrimSpace(v)
	switch kind {
	case ParamDays, ParamCount:
		limit := 3650
		if kind == ParamCount {
			limit = 1000
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > limit {
			return "", "invalid value " + quote(v) + " (want an integer from 1 to " + strconv.Itoa(limit) + ")"
		}
		return strconv.Itoa(n), ""
	case ParamPercent:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || !(f > 0 && f <= 100) {
			return "", "invalid value " + quote(v) + " (want a number in (0, 100])"
		}
		return strconv.FormatFloat(f, 'f', -1, 64), ""
	case ParamCountry:
		c, ok := country(v)
		if !ok {
			return "", "invalid country " + quote(v) + " (want an ISO 3166-1 alpha-2 code such as DE)"
		}
		return jsonText(c), ""
	case ParamCountries, ParamRegions:
		var list []string
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if kind == ParamCountries {
				c, ok := country(part)
				if !ok {
					return "", "invalid country " + quote(part) + " (want ISO 3166-1 alpha-2 codes such as DE,AT)"
				}
				part = c
			} else if !region(part) {
				return "", "invalid region " + quote(part) + " (want codes such as CA,NY)"
			}
			list = append(list, part)
		}
		return jsonText(list), ""
	case ParamPurpose:
		if !wellFormedPurpose(v) {
			return "", "invalid purpose " + quote(v)
		}
		return jsonText(v), ""
	}
	return "", "unknown parameter kind"
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func country(s string) (string, bool) {
	s = strings.ToUpper(s)
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' {
		return "", false
	}
	return s, true
}

func region(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
