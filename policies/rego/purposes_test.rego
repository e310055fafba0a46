package custody.purposes_test

import data.custody.purposes

test_ancestors if {
	purposes.ancestors("marketing.communications.email") == ["marketing", "marketing.communications", "marketing.communications.email"]
	purposes.ancestors("marketing") == ["marketing"]
	purposes.ancestors("") == []
}

test_known if {
	purposes.known("marketing.communications.email")
	purposes.known("third_party_sharing")
	not purposes.known("marketing.communications.pigeon")
	not purposes.known("")
}

test_under if {
	purposes.under("marketing.communications.email", "marketing")
	purposes.under("marketing", "marketing")
	not purposes.under("marketing", "marketing.communications")
	not purposes.under("marketingx", "marketing")
}

test_sensitive if {
	purposes.sensitive("personalize.sensitive")
	purposes.sensitive("marketing.advertising.sensitive")
	purposes.sensitive("personalize.sensitive.health") # children of a sensitive purpose
	not purposes.sensitive("personalize")
	not purposes.sensitive("personalize.content.profiled")
}

test_essential if {
	purposes.essential("essential")
	purposes.essential("essential.service.security")
	not purposes.essential("analytics")
}

test_sale_or_share if {
	purposes.sale_or_share("third_party_sharing")
	purposes.sale_or_share("marketing.advertising.third_party")
	purposes.sale_or_share("marketing.advertising.third_party.targeted")
	not purposes.sale_or_share("marketing.advertising")
	not purposes.sale_or_share("marketing.advertising.first_party.targeted")
	not purposes.sale_or_share("marketing.communications.email")
}

# Every entry's parent is its key minus the last segment, and is in the taxonomy.
test_taxonomy_parents if {
	every key, p in purposes.taxonomy {
		parts := split(key, ".")
		p.parent == concat(".", array.slice(parts, 0, count(parts) - 1))
		parent_ok(p.parent)
		is_string(p.description)
		p.description != ""
		is_boolean(p.sensitive)
	}
}

parent_ok("")

parent_ok(p) if purposes.known(p)

test_required_purposes_present if {
	every p in {
		"essential", "essential.service", "essential.service.security",
		"analytics", "analytics.reporting",
		"personalize", "personalize.content.profiled", "personalize.sensitive",
		"marketing", "marketing.communications", "marketing.communications.email",
		"marketing.communications.sms", "marketing.advertising",
		"marketing.advertising.first_party.targeted",
		"marketing.advertising.third_party.targeted", "third_party_sharing",
	} {
		purposes.known(p)
	}
}
