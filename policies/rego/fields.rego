# METADATA
# title: Export fields
# description: >-
#   Which of the fields a destination declares it may receive, by the kind
#   of the destination (data minimisation). Field names match exactly.
package custody.fields

# kinds are the destination kinds this bundle knows. An export to any other
# kind is denied.
kinds := {"email", "ads", "analytics", "support", "file", "webhook"}

# plaintext_identifiers identify a person directly.
plaintext_identifiers := {
	"email", "phone", "first_name", "last_name", "name",
	"address", "street_address", "postal_code", "ip_address",
	"user_id", "anonymous_id", "device_id", "birth_date",
}

# hashed_identifiers are identifiers hashed with SHA-256, as ad platforms
# take them for matching.
hashed_identifiers := {"email_sha256", "phone_sha256"}

# sensitive are fields of sensitive personal information (GDPR Art. 9 special
# categories, CPRA sensitive personal information). No destination gets them.
sensitive := {
	"health", "ethnicity", "religion", "sexual_orientation", "gender_identity",
	"political_opinions", "union_membership", "biometric", "genetic",
	"precise_geolocation", "government_id", "ssn", "passport_number",
	"financial_account", "card_number", "password", "criminal_record",
	"immigration_status",
}

# non_identifying are attributes that do not identify a person by themselves.
non_identifying := {"tier", "lifecycle_stage", "plan", "locale", "order_count", "last_order_at"}

# allowlist is, for the kinds that take only listed fields, the fields they
# may take.
allowlist := {
	"email": {"email", "first_name", "last_name", "consent_at"},
	"ads": hashed_identifiers,
	"support": (non_identifying | {"email"}),
}

# rule describes each kind's rule, for reasons.
rule := {
	"email": "email destinations get only email, first_name, last_name and consent_at",
	"ads": "ads destinations get only hashed identifiers (email_sha256, phone_sha256)",
	"support": "support destinations get only email and non-identifying attributes",
	"analytics": "analytics destinations get no plaintext identifier and no sensitive field",
	"file": "file destinations get no sensitive field",
	"webhook": "webhook destinations get no sensitive field",
}

# receivable(kind, declared) is the set of declared fields a destination of
# that kind may receive.
receivable(kind, declared) := {f | some f in declared} & allowlist[kind] if {
	allowlist[kind]
} else := ({f | some f in declared} - plaintext_identifiers) - sensitive if {
	kind == "analytics"
} else := {f | some f in declared} - sensitive if {
	kind in {"file", "webhook"}
} else := set()

# allowed(kind, declared) is the declared fields a destination of that kind may
# receive, in declared order, without duplicates.
allowed(kind, declared) := [f | some f in declared; f in r] if {
	r := receivable(kind, declared)
	count(declared) == count({f | some f in declared}) # no duplicates: the fast way
} else := [f |
	r := receivable(kind, declared)
	some i, f in declared
	f in r
	not seen_before(declared, i, f)
]

# dropped(kind, declared) is the declared fields it may not receive, sorted.
dropped(kind, declared) := sort({f | some f in declared} - receivable(kind, declared))

seen_before(arr, i, f) if {
	some j, g in arr
	j < i
	g == f
}
