package custody.gate_test

import data.custody.gate

# ---------------------------------------------------------------------------
# Fixtures. decide(patch) is the decision for the base input merged with patch
# (object.union: nested objects merge, patch wins).

base := {
	"action": "segment.evaluate",
	"purpose": "marketing.communications.email",
	"now": "2026-11-01T12:00:00Z",
	"destination": {"name": "newsletter", "kind": "email", "region": "EU", "fields": ["email", "first_name", "email_sha256"]},
	"subject": {"jurisdiction": "EU", "consents": {}, "gpc": false, "restricted": false, "objections": [], "age": null},
	"requester": {"role": "marketer"},
}

decide(patch) := d if {
	d := gate.decision with input as object.union(base, patch)
}

granted := {"status": "granted", "at": "2026-10-01T00:00:00Z", "expires_at": null, "lawful_basis": "consent"}

denied := object.union(granted, {"status": "denied"})

withdrawn := object.union(granted, {"status": "withdrawn"})

expired := object.union(granted, {"expires_at": "2026-10-31T00:00:00Z"})

subject(j, consents) := {"subject": {"jurisdiction": j, "consents": consents}}

with_purpose(p, patch) := object.union(patch, {"purpose": p})

allowed(d) if {
	d.allow == true
	count(d.reasons) > 0
}

refused(d) if {
	d.allow == false
	count(d.reasons) > 0
	d.fields == []
}

# ---------------------------------------------------------------------------
# Contract.

test_contract_version if gate.contract_version == 1

test_decision_shape if {
	d := decide({})
	is_boolean(d.allow)
	is_array(d.reasons)
	is_array(d.fields)
	every r in d.reasons {
		is_string(r)
	}
}

test_every_decision_has_a_reason if {
	every patch in [
		{},
		subject("EU", {"marketing": granted}),
		subject("US-CA", {}),
		subject("BR", {}),
		{"action": "profile.read", "requester": {"role": "dpo"}},
		{"action": "profile.read", "requester": {"role": "marketer"}},
		{"action": "segment.export", "destination": {"kind": "ads"}},
		{"action": "bogus"},
		{"purpose": "essential.service"},
	] {
		count(decide(patch).reasons) > 0
	}
}

test_unknown_action_denied if {
	d := decide({"action": "profile.delete"})
	refused(d)
	d.reasons == ["unknown action \"profile.delete\""]
}

test_unknown_purpose_denied if {
	d := decide(object.union(subject("US-CA", {}), {"purpose": "marketing.communications.pigeon"}))
	refused(d)
	d.reasons == ["unknown purpose \"marketing.communications.pigeon\" (not in the purpose taxonomy)"]
}

test_missing_now_denied if {
	d := gate.decision with input as object.remove(base, ["now"])
	refused(d)
	"input.now is missing or not an RFC 3339 time" in d.reasons
}

test_bad_now_denied if {
	refused(decide(object.union(subject("US-CA", {}), {"now": "yesterday"})))
}

# ---------------------------------------------------------------------------
# GDPR (EU) and UK GDPR (UK): opt-in.

test_eu_no_consent_denied if {
	d := decide({})
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; none recorded"]
}

test_eu_granted_allowed if {
	d := decide(subject("EU", {"marketing.communications.email": granted}))
	allowed(d)
	d.reasons == ["EU: opt-in consent granted for marketing.communications.email"]
	d.fields == [] # only exports carry fields
}

test_eu_withdrawn_denied if {
	d := decide(subject("EU", {"marketing.communications.email": withdrawn}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; consent for marketing.communications.email was withdrawn"]
}

test_eu_denied_denied if {
	d := decide(subject("EU", {"marketing.communications.email": denied}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; consent for marketing.communications.email was denied"]
}

test_eu_expired_denied if {
	d := decide(subject("EU", {"marketing.communications.email": expired}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; consent for marketing.communications.email expired"]
}

test_eu_expiry_in_future_allowed if {
	allowed(decide(subject("EU", {"marketing.communications.email": object.union(granted, {"expires_at": "2027-01-01T00:00:00Z"})})))
}

test_eu_expiry_at_now_denied if {
	refused(decide(subject("EU", {"marketing.communications.email": object.union(granted, {"expires_at": "2026-11-01T12:00:00Z"})})))
}

test_eu_parent_grant_covers_child if {
	d := decide(subject("EU", {"marketing": granted}))
	allowed(d)
	d.reasons == ["EU: opt-in consent granted for marketing, which covers marketing.communications.email"]
}

test_eu_child_denial_overrides_parent_grant if {
	d := decide(subject("EU", {"marketing": granted, "marketing.communications.email": denied}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; consent for marketing.communications.email was denied"]
}

test_eu_child_grant_overrides_parent_denial if {
	allowed(decide(subject("EU", {"marketing": denied, "marketing.communications.email": granted})))
}

test_eu_middle_record_wins if {
	d := decide(subject("EU", {"marketing": granted, "marketing.communications": withdrawn}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; consent for marketing.communications was withdrawn"]
}

test_eu_sibling_grant_does_not_cover if {
	refused(decide(subject("EU", {"marketing.communications.sms": granted})))
}

test_eu_other_lawful_basis_is_not_consent if {
	d := decide(subject("EU", {"marketing.communications.email": object.union(granted, {"lawful_basis": "contract"})}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; the record for marketing.communications.email rests on contract, not consent"]
}

test_eu_unstated_lawful_basis_is_consent if {
	allowed(decide(subject("EU", {"marketing.communications.email": object.union(granted, {"lawful_basis": ""})})))
}

test_eu_legitimate_interests_for_marketing_denied if {
	refused(decide(subject("EU", {"marketing.communications.email": object.union(granted, {"lawful_basis": "legitimate_interests"})})))
}

test_eu_analytics_reporting_on_legitimate_interests_allowed if {
	d := decide(with_purpose("analytics.reporting", subject("EU", {"analytics.reporting": object.union(granted, {"lawful_basis": "legitimate_interests"})})))
	allowed(d)
	d.reasons == ["EU: analytics.reporting rests on legitimate interests (record for analytics.reporting); no objection recorded"]
}

test_eu_analytics_reporting_legitimate_interests_from_parent_record if {
	allowed(decide(with_purpose("analytics.reporting", subject("EU", {"analytics": object.union(granted, {"lawful_basis": "legitimate_interests"})}))))
}

test_eu_analytics_reporting_legitimate_interests_objected_denied if {
	patch := with_purpose("analytics.reporting", subject("EU", {"analytics.reporting": object.union(granted, {"lawful_basis": "legitimate_interests"})}))
	d := decide(object.union(patch, {"subject": {"objections": ["analytics"]}}))
	refused(d)
	d.reasons == ["EU: the person objected to analytics (GDPR Art. 21)"]
}

test_eu_analytics_needs_consent_not_legitimate_interests if {
	refused(decide(with_purpose("analytics", subject("EU", {"analytics": object.union(granted, {"lawful_basis": "legitimate_interests"})}))))
	refused(decide(with_purpose("analytics.reporting", subject("EU", {}))))
	allowed(decide(with_purpose("analytics", subject("EU", {"analytics": granted}))))
}

test_eu_opt_in_purposes if {
	every p in [
		"marketing", "marketing.advertising.first_party.targeted",
		"marketing.advertising.third_party.targeted", "third_party_sharing",
		"personalize.content.profiled", "analytics", "analytics.reporting",
	] {
		refused(decide(with_purpose(p, subject("EU", {}))))
		allowed(decide(with_purpose(p, subject("EU", {p: granted}))))
	}
}

test_eu_essential_allowed_without_consent if {
	every p in ["essential", "essential.service", "essential.service.security"] {
		d := decide(with_purpose(p, subject("EU", {})))
		allowed(d)
		d.reasons == [sprintf("EU: %s is necessary to provide the service (contract); no consent needed", [p])]
	}
}

test_eu_essential_survives_denial_restriction_and_objection if {
	patch := {
		"purpose": "essential.service.security",
		"subject": {"consents": {"essential": denied}, "restricted": true, "objections": ["essential"]},
	}
	allowed(decide(patch))
}

test_eu_restricted_denied if {
	d := decide({"subject": {"consents": {"marketing": granted}, "restricted": true}})
	refused(d)
	d.reasons == ["EU: processing is restricted (GDPR Art. 18); only essential purposes are allowed"]
}

test_eu_objection_denied if {
	d := decide({"subject": {"consents": {"marketing.communications.email": granted}, "objections": ["marketing"]}})
	refused(d)
	d.reasons == ["EU: the person objected to marketing (GDPR Art. 21)"]
}

test_eu_objection_to_the_purpose_itself_denied if {
	refused(decide({"subject": {"consents": {"marketing": granted}, "objections": ["marketing.communications.email"]}}))
}

test_eu_objection_to_other_purposes_ignored if {
	allowed(decide({"subject": {"consents": {"marketing": granted}, "objections": ["analytics", "marketing.communications.sms", "marketing.communications.email.weekly"]}}))
}

test_eu_gpc_denies_sale_and_sharing_even_with_grant if {
	d := decide(with_purpose("third_party_sharing", {"subject": {"consents": {"third_party_sharing": granted}, "gpc": true}}))
	refused(d)
	d.reasons == ["EU: Global Privacy Control is an opt-out of sale and sharing (GDPR Art. 21(5)); third_party_sharing is sale or sharing"]
}

test_eu_gpc_leaves_email_alone if {
	allowed(decide({"subject": {"consents": {"marketing": granted}, "gpc": true}}))
}

test_eu_sensitive_needs_its_own_record if {
	d := decide(with_purpose("personalize.sensitive", subject("EU", {"personalize": granted})))
	refused(d)
	d.reasons == ["EU: personalize.sensitive is a sensitive purpose and requires explicit opt-in consent (GDPR Art. 9); the grant for personalize does not cover it; a sensitive purpose needs its own record"]
	allowed(decide(with_purpose("personalize.sensitive", subject("EU", {"personalize": granted, "personalize.sensitive": granted}))))
}

test_eu_sensitive_none_recorded if {
	d := decide(with_purpose("marketing.advertising.sensitive", subject("EU", {})))
	d.reasons == ["EU: marketing.advertising.sensitive is a sensitive purpose and requires explicit opt-in consent (GDPR Art. 9); none recorded"]
}

test_eu_unknown_status_is_no_consent if {
	d := decide(subject("EU", {"marketing": {"status": "pending"}}))
	refused(d)
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; the record for marketing has status \"pending\""]
}

test_eu_several_reasons_sorted if {
	d := decide({"subject": {"restricted": true, "objections": ["marketing"]}})
	refused(d)
	d.reasons == [
		"EU: marketing.communications.email requires opt-in consent; none recorded",
		"EU: processing is restricted (GDPR Art. 18); only essential purposes are allowed",
		"EU: the person objected to marketing (GDPR Art. 21)",
	]
}

test_uk_opt_in_like_eu if {
	d := decide(subject("UK", {}))
	refused(d)
	d.reasons == ["UK: marketing.communications.email requires opt-in consent; none recorded"]
	allowed(decide(subject("UK", {"marketing": granted})))
	refused(decide(subject("UK", {"marketing": expired})))
}

test_uk_cites_uk_gdpr if {
	d := decide({"subject": {"jurisdiction": "UK", "restricted": true}})
	"UK: processing is restricted (UK GDPR Art. 18); only essential purposes are allowed" in d.reasons
}

test_jurisdiction_is_case_and_space_insensitive if {
	d := decide(subject(" eu ", {}))
	d.reasons == ["EU: marketing.communications.email requires opt-in consent; none recorded"]
}

# ---------------------------------------------------------------------------
# CCPA/CPRA (US-CA) and the other US states: opt-out.

test_ca_nothing_allowed if {
	d := decide(subject("US-CA", {}))
	allowed(d)
	d.reasons == ["US-CA: opt-out model, no opt-out recorded"]
}

test_ca_opt_out_denied if {
	every rec in [denied, withdrawn] {
		d := decide(subject("US-CA", {"marketing.communications.email": rec}))
		refused(d)
		d.reasons == [sprintf("US-CA: opt-out model; the person opted out of marketing.communications.email (%s)", [rec.status])]
	}
}

test_ca_parent_opt_out_covers_child if {
	refused(decide(subject("US-CA", {"marketing": denied})))
	allowed(decide(subject("US-CA", {"marketing": denied, "marketing.communications.email": granted})))
}

test_ca_opt_out_does_not_lapse if {
	refused(decide(subject("US-CA", {"marketing": object.union(denied, {"expires_at": "2020-01-01T00:00:00Z"})})))
}

test_ca_expired_grant_still_allowed if {
	allowed(decide(subject("US-CA", {"marketing": expired})))
}

test_ca_opt_out_purposes if {
	every p in [
		"marketing", "marketing.communications.sms", "marketing.advertising.first_party.targeted",
		"marketing.advertising.third_party.targeted", "third_party_sharing",
		"personalize.content.profiled", "analytics", "analytics.reporting",
	] {
		allowed(decide(with_purpose(p, subject("US-CA", {}))))
		refused(decide(with_purpose(p, subject("US-CA", {p: denied}))))
	}
}

test_ca_gpc_denies_sale_and_sharing if {
	every p in ["third_party_sharing", "marketing.advertising.third_party", "marketing.advertising.third_party.targeted"] {
		d := decide(with_purpose(p, {"subject": {"jurisdiction": "US-CA", "gpc": true}}))
		refused(d)
		d.reasons == [sprintf("US-CA: Global Privacy Control is an opt-out of sale and sharing; %s is sale or sharing", [p])]
	}
}

test_ca_gpc_wins_over_a_grant if {
	refused(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": "US-CA", "gpc": true, "consents": {"third_party_sharing": granted}}})))
}

test_ca_gpc_leaves_other_purposes_alone if {
	every p in ["marketing.communications.email", "marketing.advertising.first_party.targeted", "analytics.reporting"] {
		allowed(decide(with_purpose(p, {"subject": {"jurisdiction": "US-CA", "gpc": true}})))
	}
}

test_ca_under_16_sale_needs_opt_in if {
	patch := with_purpose("third_party_sharing", {"subject": {"jurisdiction": "US-CA", "age": 15}})
	d := decide(patch)
	refused(d)
	d.reasons == ["US-CA: the person is under 16; third_party_sharing is sale or sharing and requires opt-in consent; none recorded"]
	allowed(decide(object.union(patch, {"subject": {"consents": {"third_party_sharing": granted}}})))
	refused(decide(object.union(patch, {"subject": {"consents": {"third_party_sharing": expired}}})))
}

test_ca_under_13_sale_needs_parental_opt_in if {
	d := decide(with_purpose("marketing.advertising.third_party.targeted", {"subject": {"jurisdiction": "US-CA", "age": 12}}))
	refused(d)
	d.reasons == ["US-CA: the person is under 13; marketing.advertising.third_party.targeted is sale or sharing and requires a parent's opt-in consent; none recorded"]
}

test_ca_16_and_unknown_age_sale_opt_out if {
	allowed(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": "US-CA", "age": 16}})))
	allowed(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": "US-CA", "age": null}})))
}

test_ca_under_16_other_purposes_opt_out if {
	allowed(decide({"subject": {"jurisdiction": "US-CA", "age": 15}}))
}

test_ca_minor_and_gpc if {
	refused(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": "US-CA", "age": 15, "gpc": true, "consents": {"third_party_sharing": granted}}})))
}

test_ca_sensitive_needs_opt_in if {
	d := decide(with_purpose("personalize.sensitive", subject("US-CA", {})))
	refused(d)
	d.reasons == ["US-CA: personalize.sensitive is a sensitive purpose and requires explicit opt-in consent; none recorded"]
	refused(decide(with_purpose("personalize.sensitive", subject("US-CA", {"personalize": granted}))))
	allowed(decide(with_purpose("personalize.sensitive", subject("US-CA", {"personalize.sensitive": granted}))))
}

test_ca_restricted_denied if {
	d := decide({"subject": {"jurisdiction": "US-CA", "restricted": true}})
	refused(d)
	d.reasons == ["US-CA: processing is restricted; only essential purposes are allowed"]
	allowed(decide({"purpose": "essential.service", "subject": {"jurisdiction": "US-CA", "restricted": true}}))
}

test_ca_objection_denied if {
	d := decide({"subject": {"jurisdiction": "US-CA", "objections": ["marketing.communications"]}})
	refused(d)
	d.reasons == ["US-CA: the person objected to marketing.communications"]
}

test_other_us_states_like_ca if {
	every j in ["US-TX", "US-NY", "US-VA", "US-CO"] {
		d := decide(subject(j, {}))
		allowed(d)
		d.reasons == [sprintf("%s: opt-out model, no opt-out recorded", [j])]
		refused(decide(subject(j, {"marketing": denied})))
		refused(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": j, "gpc": true}})))
		refused(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": j, "age": 14}})))
		refused(decide(with_purpose("personalize.sensitive", subject(j, {}))))
	}
}

test_us_lower_case_recognised if {
	decide(subject("us-ca", {})).reasons == ["US-CA: opt-out model, no opt-out recorded"]
}

# ---------------------------------------------------------------------------
# Anything else: the strictest rules.

test_unknown_jurisdiction_strictest if {
	d := decide(subject("BR", {}))
	refused(d)
	d.reasons == ["\"BR\" (unrecognised jurisdiction, strictest rules): marketing.communications.email requires opt-in consent; none recorded"]
	allowed(decide(subject("BR", {"marketing": granted})))
	refused(decide(subject("BR", {"marketing": expired})))
}

test_empty_jurisdiction_strictest if {
	d := decide(subject("", {}))
	refused(d)
	d.reasons == ["no jurisdiction (strictest rules): marketing.communications.email requires opt-in consent; none recorded"]
	no_jurisdiction := object.union(object.remove(base, ["subject"]), {"subject": object.remove(base.subject, ["jurisdiction"])})
	d2 := gate.decision with input as no_jurisdiction
	d2.reasons == d.reasons
}

test_malformed_us_codes_strictest if {
	every j in ["US", "US-", "US-CAL", "US-C1", "USA"] {
		refused(decide(subject(j, {})))
	}
}

test_strictest_honours_gpc_restriction_objection_sensitive if {
	grant := {"third_party_sharing": granted, "marketing": granted, "personalize": granted}
	refused(decide(with_purpose("third_party_sharing", {"subject": {"jurisdiction": "JP", "gpc": true, "consents": grant}})))
	refused(decide({"subject": {"jurisdiction": "JP", "restricted": true, "consents": grant}}))
	refused(decide({"subject": {"jurisdiction": "JP", "objections": ["marketing"], "consents": grant}}))
	refused(decide(with_purpose("personalize.sensitive", {"subject": {"jurisdiction": "JP", "consents": grant}})))
	allowed(decide({"purpose": "essential.service", "subject": {"jurisdiction": "JP", "restricted": true}}))
}

# ---------------------------------------------------------------------------
# profile.read.

read(role, patch) := decide(object.union({"action": "profile.read", "purpose": "personalize.content.profiled", "requester": {"role": role}}, patch))

test_profile_read_by_data_protection_roles if {
	every role in ["dpo", "admin"] {
		d := read(role, {"subject": {"restricted": true, "objections": ["personalize"]}})
		allowed(d)
		d.reasons == ["access by data protection role"]
		d.fields == []
	}
	allowed(decide({"action": "profile.read", "purpose": "", "requester": {"role": "dpo"}}))
}

test_profile_read_by_marketer_denied if {
	d := read("marketer", {"subject": {"consents": {"personalize": granted}}})
	refused(d)
	d.reasons == ["profile.read: the marketer role may not read individual profiles (data minimisation); use segments"]
}

test_profile_read_by_personalize_follows_consent if {
	d := read("personalize", {})
	refused(d)
	d.reasons == ["EU: personalize.content.profiled requires opt-in consent; none recorded"]
	allowed(read("personalize", {"subject": {"consents": {"personalize": granted}}}))
	refused(read("personalize", {"subject": {"consents": {"personalize": granted}, "restricted": true}}))
	allowed(read("personalize", {"subject": {"jurisdiction": "US-CA"}}))
	refused(read("personalize", {"subject": {"jurisdiction": "US-CA", "consents": {"personalize.content": withdrawn}}}))
}

test_profile_read_by_personalize_only_for_profiled_personalisation if {
	d := read("personalize", {"purpose": "marketing", "subject": {"jurisdiction": "US-CA"}})
	refused(d)
	d.reasons == ["profile.read: the personalize role reads profiles only for personalize.content.profiled"]
}

test_profile_read_by_other_roles_denied if {
	every role in ["ingest", ""] {
		d := read(role, {"subject": {"jurisdiction": "US-CA"}})
		refused(d)
		d.reasons == [sprintf("profile.read: role %q may not read profiles", [role])]
	}
}

# ---------------------------------------------------------------------------
# segment.export and fields.

export(kind, declared, patch) := decide(object.union(
	{"action": "segment.export", "destination": {"kind": kind, "fields": declared}, "subject": {"consents": {"marketing": granted}}},
	patch,
))

test_export_email_fields if {
	d := export("email", ["email", "first_name", "last_name", "consent_at", "email_sha256", "phone"], {})
	allowed(d)
	d.fields == ["email", "first_name", "last_name", "consent_at"]
	d.reasons == [
		"EU: opt-in consent granted for marketing, which covers marketing.communications.email",
		"segment.export: email destinations get only email, first_name, last_name and consent_at; dropped email_sha256, phone",
	]
}

test_export_nothing_dropped_one_reason if {
	d := export("email", ["email"], {})
	d.fields == ["email"]
	d.reasons == ["EU: opt-in consent granted for marketing, which covers marketing.communications.email"]
}

test_export_ads_only_hashed if {
	d := export("ads", ["email", "phone", "first_name", "email_sha256", "phone_sha256"], {"purpose": "marketing.advertising.first_party.targeted"})
	allowed(d)
	d.fields == ["email_sha256", "phone_sha256"]
}

test_export_ads_without_hashed_identifiers_denied if {
	d := export("ads", ["email", "first_name"], {"purpose": "marketing.advertising.first_party.targeted"})
	refused(d)
	d.reasons == ["segment.export: none of the declared fields may be sent; ads destinations get only hashed identifiers (email_sha256, phone_sha256)"]
}

test_export_support if {
	d := export("support", ["email", "first_name", "tier", "lifecycle_stage", "phone"], {"purpose": "essential.service.operations"})
	allowed(d)
	d.fields == ["email", "tier", "lifecycle_stage"]
}

test_export_analytics if {
	d := export("analytics", ["email", "email_sha256", "tier", "health"], {"purpose": "analytics.reporting", "subject": {"consents": {"analytics": granted}}})
	allowed(d)
	d.fields == ["email_sha256", "tier"]
}

test_export_file_and_webhook_minus_sensitive if {
	every k in ["file", "webhook"] {
		d := export(k, ["email", "phone", "health", "religion", "tier"], {})
		allowed(d)
		d.fields == ["email", "phone", "tier"]
	}
}

test_export_unknown_kind_denied if {
	d := export("crm", ["email"], {})
	refused(d)
	d.reasons == ["segment.export: unknown destination kind \"crm\""]
}

test_export_no_fields_denied if {
	d := export("file", [], {})
	refused(d)
	d.reasons == ["segment.export: the destination declares no fields"]
}

test_export_denied_has_no_fields if {
	d := export("email", ["email"], {"subject": {"consents": {"marketing": denied}}})
	refused(d)
	d.fields == []
}

test_evaluate_has_no_fields if {
	d := decide({"subject": {"consents": {"marketing": granted}}})
	allowed(d)
	d.fields == []
}
