# METADATA
# title: Purpose taxonomy
# description: >-
#   The purposes a person's data may be used for: data uses of the open
#   fideslang taxonomy, dot-separated, each one a child of the purpose its
#   key minus the last segment names. A brand extends it by adding entries
#   to taxonomy in its own copy of this file.
package custody.purposes

# taxonomy maps each purpose key to its parent ("" for a root), a
# description and whether it is sensitive. A sensitive purpose processes
# sensitive personal information (GDPR Art. 9 special categories, CPRA
# "sensitive personal information"): it needs its own explicit opt-in
# consent everywhere, and a grant for a non-sensitive ancestor does not
# cover it. The children of a sensitive purpose are sensitive too.
taxonomy := {
	"essential": {"parent": "", "sensitive": false, "description": "Operating the service the person asked for."},
	"essential.service": {"parent": "essential", "sensitive": false, "description": "Providing the service."},
	"essential.service.authentication": {"parent": "essential.service", "sensitive": false, "description": "Signing the person in."},
	"essential.service.operations": {"parent": "essential.service", "sensitive": false, "description": "Running the service: orders, delivery, support."},
	"essential.service.payment_processing": {"parent": "essential.service", "sensitive": false, "description": "Taking payment."},
	"essential.service.security": {"parent": "essential.service", "sensitive": false, "description": "Keeping the service and its users secure."},
	"essential.service.fraud_detection": {"parent": "essential.service", "sensitive": false, "description": "Detecting and preventing fraud."},
	"analytics": {"parent": "", "sensitive": false, "description": "Measuring and understanding how the service is used."},
	"analytics.reporting": {"parent": "analytics", "sensitive": false, "description": "Aggregate reporting; may rest on legitimate interests under the GDPR."},
	"personalize": {"parent": "", "sensitive": false, "description": "Personalising the person's experience."},
	"personalize.content": {"parent": "personalize", "sensitive": false, "description": "Personalising content."},
	"personalize.content.profiled": {"parent": "personalize.content", "sensitive": false, "description": "Content personalised from a profile of the person."},
	"personalize.sensitive": {"parent": "personalize", "sensitive": true, "description": "Personalisation that uses sensitive personal information."},
	"marketing": {"parent": "", "sensitive": false, "description": "Marketing to the person."},
	"marketing.communications": {"parent": "marketing", "sensitive": false, "description": "Marketing messages."},
	"marketing.communications.email": {"parent": "marketing.communications", "sensitive": false, "description": "Marketing email."},
	"marketing.communications.sms": {"parent": "marketing.communications", "sensitive": false, "description": "Marketing text messages."},
	"marketing.advertising": {"parent": "marketing", "sensitive": false, "description": "Advertising."},
	"marketing.advertising.first_party": {"parent": "marketing.advertising", "sensitive": false, "description": "Advertising on the brand's own properties."},
	"marketing.advertising.first_party.targeted": {"parent": "marketing.advertising.first_party", "sensitive": false, "description": "Targeted first-party advertising."},
	"marketing.advertising.third_party": {"parent": "marketing.advertising", "sensitive": false, "description": "Advertising on other businesses' properties (CCPA sharing)."},
	"marketing.advertising.third_party.targeted": {"parent": "marketing.advertising.third_party", "sensitive": false, "description": "Cross-context behavioural advertising (CCPA sharing)."},
	"marketing.advertising.sensitive": {"parent": "marketing.advertising", "sensitive": true, "description": "Advertising that uses sensitive personal information."},
	"third_party_sharing": {"parent": "", "sensitive": false, "description": "Selling or sharing personal data with third parties (CCPA sale and sharing)."},
}

# sale_or_share_roots are the purposes that are a sale or sharing of
# personal data under the CCPA/CPRA, with their children.
sale_or_share_roots := {"third_party_sharing", "marketing.advertising.third_party"}

# ancestors(p) is p's ancestors and p itself, least specific first:
# ancestors("a.b.c") == ["a", "a.b", "a.b.c"]. ancestors("") == [].
ancestors(p) := [] if p == ""

ancestors(p) := array.concat([substring(p, 0, i) | some i in indexof_n(p, ".")], [p]) if {
	is_string(p)
	p != ""
}

# known(p) holds when p is in the taxonomy.
known(p) if taxonomy[p]

# under(p, root) holds when p is root or one of its descendants.
under(p, root) if p == root

under(p, root) if startswith(p, concat("", [root, "."]))

# sensitive(p) holds when p or one of its ancestors is sensitive.
sensitive(p) if {
	some a in ancestors(p)
	taxonomy[a].sensitive == true
}

# essential(p) holds for essential and its descendants.
essential(p) if under(p, "essential")

# sale_or_share(p) holds for a sale or sharing purpose.
sale_or_share(p) if {
	some root in sale_or_share_roots
	under(p, root)
}
