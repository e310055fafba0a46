package custody.consent_test

import data.custody.consent

now_ns := time.parse_rfc3339_ns("2026-11-01T12:00:00Z")

granted := {"status": "granted", "at": "2026-10-01T00:00:00Z", "expires_at": null, "lawful_basis": "consent"}

test_resolve_most_specific_wins if {
	cs := {"marketing": granted, "marketing.communications.email": object.union(granted, {"status": "denied"})}
	r := consent.resolve(cs, "marketing.communications.email")
	r.key == "marketing.communications.email"
	r.record.status == "denied"
}

test_resolve_falls_back_to_nearest_ancestor if {
	cs := {"marketing": granted, "marketing.communications": object.union(granted, {"status": "withdrawn"})}
	r := consent.resolve(cs, "marketing.communications.email")
	r.key == "marketing.communications"
}

test_resolve_ignores_children_and_siblings if {
	cs := {"marketing.communications.email": granted, "marketing.communications.sms": granted}
	not consent.resolve(cs, "marketing.communications")
	not consent.resolve(cs, "marketing.communications.smsx")
}

test_resolve_none if {
	not consent.resolve({}, "marketing")
	not consent.resolve({}, "")
}

test_state_granted if {
	consent.state(granted, now_ns) == "granted"
	consent.state(object.union(granted, {"expires_at": "2026-11-01T12:00:01Z"}), now_ns) == "granted"
	consent.state(object.remove(granted, ["expires_at"]), now_ns) == "granted"
}

test_state_expired if {
	consent.state(object.union(granted, {"expires_at": "2026-11-01T11:59:59Z"}), now_ns) == "expired"
	consent.state(object.union(granted, {"expires_at": "2026-11-01T12:00:00Z"}), now_ns) == "expired" # at now
	consent.state(object.union(granted, {"expires_at": "2026-11-01T13:00:00+02:00"}), now_ns) == "expired" # offsets
	consent.state(object.union(granted, {"expires_at": "not a time"}), now_ns) == "expired" # fail closed
}

test_state_denied_withdrawn_do_not_lapse if {
	consent.state({"status": "denied", "expires_at": "2020-01-01T00:00:00Z"}, now_ns) == "denied"
	consent.state({"status": "withdrawn"}, now_ns) == "withdrawn"
}

test_state_unknown if {
	consent.state({"status": "pending"}, now_ns) == "unknown"
	consent.state({}, now_ns) == "unknown"
}

test_consent_basis if {
	consent.consent_basis(granted)
	consent.consent_basis(object.remove(granted, ["lawful_basis"]))
	consent.consent_basis(object.union(granted, {"lawful_basis": ""}))
	not consent.consent_basis(object.union(granted, {"lawful_basis": "contract"}))
	not consent.consent_basis(object.union(granted, {"lawful_basis": "legitimate_interests"}))
}
