package custody.fields_test

import data.custody.fields

declared := [
	"email", "first_name", "last_name", "consent_at", "phone",
	"email_sha256", "phone_sha256", "tier", "lifecycle_stage", "health",
	"user_id", "country",
]

test_email if {
	fields.allowed("email", declared) == ["email", "first_name", "last_name", "consent_at"]
}

test_ads_only_hashed_identifiers if {
	fields.allowed("ads", declared) == ["email_sha256", "phone_sha256"]
	fields.allowed("ads", ["email", "phone", "first_name"]) == []
}

test_support if {
	fields.allowed("support", declared) == ["email", "tier", "lifecycle_stage"]
}

test_analytics_no_plaintext_identifiers if {
	fields.allowed("analytics", declared) == ["consent_at", "email_sha256", "phone_sha256", "tier", "lifecycle_stage", "country"]
}

test_file_and_webhook_minus_sensitive if {
	every k in {"file", "webhook"} {
		fields.allowed(k, declared) == [
			"email", "first_name", "last_name", "consent_at", "phone",
			"email_sha256", "phone_sha256", "tier", "lifecycle_stage",
			"user_id", "country",
		]
	}
}

test_unknown_kind_gets_nothing if {
	fields.allowed("crm", declared) == []
}

test_order_kept_duplicates_dropped if {
	fields.allowed("email", ["last_name", "email", "last_name", "email"]) == ["last_name", "email"]
}

test_dropped if {
	fields.dropped("ads", ["email", "email_sha256", "first_name", "email"]) == ["email", "first_name"]
}

test_every_kind_has_a_rule if {
	every k in fields.kinds {
		is_string(fields.rule[k])
	}
}
