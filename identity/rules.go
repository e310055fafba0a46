package identity

import (
	"fmt"
	"strings"
)

// Rule limits how many distinct identifiers of one type a person may have,
// and ranks types when a merge would break a limit.
type Rule struct {
	// Limit is the most distinct values of this type one person may hold;
	// 0 means unlimited.
	Limit int `yaml:"limit" json:"limit"`
	// Priority orders types (1 = strongest). When a message links profiles
	// whose union would break a limit, the profile of the strongest
	// identifier keeps the message and the conflicting merge is refused.
	Priority int `yaml:"priority" json:"priority"`
}

// Rules are the merge rules for every identifier type, plus the blocklist.
type Rules struct {
	Types map[Type]Rule `yaml:"types" json:"types"`
	// External applies to every context.externalIds type ("x:<type>").
	External Rule `yaml:"external" json:"external"`
	// Blocklist holds normalised values that never identify anyone, on top
	// of DefaultBlocklist. A trailing '*' matches a prefix, a leading '*' a
	// suffix ("noreply@*", "*@example.invalid").
	Blocklist []string `yaml:"blocklist" json:"blocklist"`
	// DefaultRegion is the ISO country used to read phone numbers written
	// without a country code (e.g. "GB", "US").
	DefaultRegion string `yaml:"default_phone_region" json:"default_phone_region"`
}

// DefaultBlocklist lists junk values that SDKs and forms send when they have
// nothing, and shared test addresses.
var DefaultBlocklist = []string{
	"", "null", "undefined", "nil", "none", "0", "-1", "1", "nan", "unknown", "anonymous", "guest",
	"[object object]", "test", "test@test.com", "test@example.com", "email@example.com",
	"noreply@*", "no-reply@*", "donotreply@*", "do-not-reply@*", "00000000-0000-0000-0000-000000000000",
}

// DefaultRules are the shipped merge rules: one user id per person, up to
// five emails and three phones, any number of devices.
func DefaultRules() Rules {
	return Rules{
		Types: map[Type]Rule{
			UserID:      {Limit: 1, Priority: 1},
			Email:       {Limit: 5, Priority: 2},
			Phone:       {Limit: 3, Priority: 3},
			AnonymousID: {Limit: 0, Priority: 5},
		},
		External:      Rule{Limit: 0, Priority: 4},
		DefaultRegion: "US",
	}
}

// Rule returns the rule for typ.
func (r *Rules) Rule(typ Type) Rule {
	if rule, ok := r.Types[typ]; ok {
		return rule
	}
	if strings.HasPrefix(string(typ), "x:") {
		return r.External
	}
	return Rule{Priority: 100}
}

// Validate names the first bad rule.
func (r *Rules) Validate() error {
	for _, t := range []Type{UserID, AnonymousID, Email, Phone} {
		rule, ok := r.Types[t]
		if !ok {
			return fmt.Errorf("identity.types.%s: missing rule", t)
		}
		if rule.Limit < 0 {
			return fmt.Errorf("identity.types.%s.limit: must be 0 (unlimited) or more", t)
		}
		if rule.Priority < 1 {
			return fmt.Errorf("identity.types.%s.priority: must be 1 or more", t)
		}
	}
	for t := range r.Types {
		switch t {
		case UserID, AnonymousID, Email, Phone:
		default:
			return fmt.Errorf("identity.types.%s: unknown identifier type (want user_id, anonymous_id, email, phone; use identity.external for external ids)", t)
		}
	}
	if r.DefaultRegion != "" && callingCode(r.DefaultRegion) == "" {
		return fmt.Errorf("identity.default_phone_region: unknown region %q", r.DefaultRegion)
	}
	return nil
}

// Blocked reports whether a normalised value is junk that must not identify
// anyone.
func (r *Rules) Blocked(typ Type, normalised string) bool {
	v := strings.ToLower(normalised)
	for _, lists := range [][]string{DefaultBlocklist, r.Blocklist} {
		for _, b := range lists {
			b = strings.ToLower(b)
			switch {
			case strings.HasSuffix(b, "*") && strings.HasPrefix(v, strings.TrimSuffix(b, "*")):
				return true
			case strings.HasPrefix(b, "*") && strings.HasSuffix(v, strings.TrimPrefix(b, "*")):
				return true
			case v == b:
				return true
			}
		}
	}
	return false
}
