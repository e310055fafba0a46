package policies

import "strings"

// Purpose is a purpose of the taxonomy: a fideslang data use.
type Purpose struct {
	// Key is dot-separated: marketing.communications.email.
	Key string `json:"key"`
	// Parent is Key minus its last segment, "" for a root.
	Parent string `json:"parent"`
	// Description says what the purpose covers.
	Description string `json:"description"`
	// Sensitive purposes process sensitive personal information (GDPR Art.
	// 9, CPRA): they need their own explicit opt-in consent everywhere.
	Sensitive bool `json:"sensitive"`
}

// Purposes returns the built-in purpose taxonomy, parents before children.
// It is the taxonomy of the embedded policy bundle (rego/purposes.rego); a
// brand's bundle may extend it, see (*Engine).Purposes.
func Purposes() []Purpose {
	return []Purpose{
		{"essential", "", "Operating the service the person asked for.", false},
		{"essential.service", "essential", "Providing the service.", false},
		{"essential.service.authentication", "essential.service", "Signing the person in.", false},
		{"essential.service.operations", "essential.service", "Running the service: orders, delivery, support.", false},
		{"essential.service.payment_processing", "essential.service", "Taking payment.", false},
		{"essential.service.security", "essential.service", "Keeping the service and its users secure.", false},
		{"essential.service.fraud_detection", "essential.service", "Detecting and preventing fraud.", false},
		{"analytics", "", "Measuring and understanding how the service is used.", false},
		{"analytics.reporting", "analytics", "Aggregate reporting; may rest on legitimate interests under the GDPR.", false},
		{"personalize", "", "Personalising the person's experience.", false},
		{"personalize.content", "personalize", "Personalising content.", false},
		{"personalize.content.profiled", "personalize.content", "Content personalised from a profile of the person.", false},
		{"personalize.sensitive", "personalize", "Personalisation that uses sensitive personal information.", true},
		{"marketing", "", "Marketing to the person.", false},
		{"marketing.communications", "marketing", "Marketing messages.", false},
		{"marketing.communications.email", "marketing.communications", "Marketing email.", false},
		{"marketing.communications.sms", "marketing.communications", "Marketing text messages.", false},
		{"marketing.advertising", "marketing", "Advertising.", false},
		{"marketing.advertising.first_party", "marketing.advertising", "Advertising on the brand's own properties.", false},
		{"marketing.advertising.first_party.targeted", "marketing.advertising.first_party", "Targeted first-party advertising.", false},
		{"marketing.advertising.third_party", "marketing.advertising", "Advertising on other businesses' properties (CCPA sharing).", false},
		{"marketing.advertising.third_party.targeted", "marketing.advertising.third_party", "Cross-context behavioural advertising (CCPA sharing).", false},
		{"marketing.advertising.sensitive", "marketing.advertising", "Advertising that uses sensitive personal information.", true},
		{"third_party_sharing", "", "Selling or sharing personal data with third parties (CCPA sale and sharing).", false},
	}
}

// ValidPurpose reports whether p is a purpose of the built-in taxonomy.
func ValidPurpose(p string) bool {
	for _, x := range Purposes() {
		if x.Key == p {
			return true
		}
	}
	return false
}

// wellFormedPurpose reports whether p is a dot-separated sequence of
// non-empty segments of [a-z0-9_]: the shape of every purpose key.
func wellFormedPurpose(p string) bool {
	if p == "" {
		return false
	}
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}
