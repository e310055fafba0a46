# METADATA
# title: Consent policy gate
# description: >-
#   The decision for one use of one person's data: a segment evaluation, a
#   segment export or a profile read. The entry point is decision; its input
#   and output are the contract documented in docs/policies.md (version 1).
#   A decision may depend only on the policy-relevant part of the input (see
#   the decision cache in docs/policies.md): not on timestamps other than
#   through expiry at input.now, not on the destination's name, not on
#   consent records or objections of purposes other than the purpose and its
#   ancestors, and on age only through the bands under 13, 13 to 15, 16 and
#   over, unknown.
#
#   The rules test input fields directly (input.action == "...") where they
#   can, so that OPA's rule index skips the rules that do not apply: the gate
#   runs for every person of every segment.
package custody.gate

import data.custody.consent
import data.custody.fields
import data.custody.purposes

# contract_version is the version of the input and output contract.
contract_version := 1

# decision is the entry point: {"allow": bool, "reasons": [string], "fields": [string]}.
decision := {
	"allow": allow,
	"reasons": reasons,
	"fields": output_fields,
}

actions := {"segment.evaluate", "segment.export", "profile.read"}

# data_protection_roles may read any profile.
data_protection_roles := {"dpo", "admin"}

# ---------------------------------------------------------------------------
# The input.

purpose := object.get(input, "purpose", "")

jurisdiction := upper(trim_space(object.get(input, ["subject", "jurisdiction"], "")))

now_ns := time.parse_rfc3339_ns(input.now)

age := input.subject.age if is_number(input.subject.age)

# ---------------------------------------------------------------------------
# Jurisdictions: EU and UK follow the GDPR (opt-in); US-CA and the other US
# states (US-<two letters>) follow the CCPA/CPRA (opt-out); anything else,
# the empty jurisdiction included, gets the strictest rules (opt-in).

regime := "gdpr" if {
	jurisdiction in {"EU", "UK"}
} else := "us" if {
	regex.match(`^US-[A-Z]{2}$`, jurisdiction)
} else := "strict"

# label opens every reason about the person's data.
label := jurisdiction if {
	regime != "strict"
} else := "no jurisdiction (strictest rules)" if {
	jurisdiction == ""
} else := sprintf("%q (unrecognised jurisdiction, strictest rules)", [jurisdiction])

law := "UK GDPR" if {
	jurisdiction == "UK"
} else := "GDPR"

# cite(article) cites the GDPR in reasons for EU and UK subjects.
cite(article) := sprintf(" (%s %s)", [law, article]) if {
	regime == "gdpr"
} else := ""

# ---------------------------------------------------------------------------
# Allow and reasons.

default allow := false

allow if {
	input.action in actions
	count(denials) == 0
	has_basis
}

has_basis if {
	purpose_rules_apply
	count(purpose_grounds) > 0
}

has_basis if {
	input.action == "profile.read"
	input.requester.role in data_protection_roles
}

reasons := sort(denials) if {
	count(denials) > 0
} else := sort(grounds) if {
	allow
} else := [sprintf("no rule allows %v for %v", [object.get(input, "action", ""), purpose])]

grounds := (purpose_grounds | access_grounds) | export_notes

output_fields := export_fields if {
	input.action == "segment.export"
	allow
} else := []

denials contains msg if {
	not input.action in actions
	msg := sprintf("unknown action %q", [object.get(input, "action", "")])
}

denials contains "input.now is missing or not an RFC 3339 time" if not now_ns

# ---------------------------------------------------------------------------
# profile.read: data protection roles always; the marketer never; the
# storefront's personalize role only for personalize.content.profiled, under
# the purpose rules of the person's jurisdiction.

access_grounds contains "access by data protection role" if {
	input.action == "profile.read"
	input.requester.role in data_protection_roles
}

denials contains "profile.read: the marketer role may not read individual profiles (data minimisation); use segments" if {
	input.action == "profile.read"
	input.requester.role == "marketer"
}

denials contains "profile.read: the personalize role reads profiles only for personalize.content.profiled" if {
	input.action == "profile.read"
	input.requester.role == "personalize"
	not purposes.under(purpose, "personalize.content.profiled")
}

denials contains msg if {
	input.action == "profile.read"
	role := object.get(input, ["requester", "role"], "")
	not role in (data_protection_roles | {"marketer", "personalize"})
	msg := sprintf("profile.read: role %q may not read profiles", [role])
}

# ---------------------------------------------------------------------------
# Purpose rules, for segment.evaluate, segment.export and the personalize
# role's profile.read.

purpose_rules_apply if input.action == "segment.evaluate"

purpose_rules_apply if input.action == "segment.export"

purpose_rules_apply if {
	input.action == "profile.read"
	input.requester.role == "personalize"
}

# Facts about the purpose, computed once per decision: line is the purpose
# and its ancestors, least specific first; known, essential, sensitive and
# sale_or_share say what purposes.known, purposes.essential,
# purposes.sensitive and purposes.sale_or_share say of the purpose, without
# the cost of function calls.
line := purposes.ancestors(purpose)

known if purposes.taxonomy[purpose]

essential if line[0] == "essential"

sensitive if {
	some a in line
	purposes.taxonomy[a].sensitive == true
}

sale_or_share if {
	some a in line
	a in purposes.sale_or_share_roots
}

denials contains msg if {
	purpose_rules_apply
	not known
	msg := sprintf("unknown purpose %q (not in the purpose taxonomy)", [purpose])
}

# Essential purposes rest on the contract: no consent, restriction or
# objection stops them.
purpose_grounds contains msg if {
	purpose_rules_apply
	known
	essential
	msg := sprintf("%s: %s is necessary to provide the service (contract); no consent needed", [label, purpose])
}

# checked holds when the purpose is known and not essential: the consent
# rules apply.
checked if {
	purpose_rules_apply
	known
	not essential
}

# Restriction of processing (GDPR Art. 18), honoured everywhere.
denials contains msg if {
	input.subject.restricted == true
	checked
	msg := sprintf("%s: processing is restricted%s; only essential purposes are allowed", [label, cite("Art. 18")])
}

# Objection (GDPR Art. 21) to the purpose or an ancestor, honoured everywhere.
denials contains msg if {
	some o in input.subject.objections
	o in line
	checked
	msg := sprintf("%s: the person objected to %s%s", [label, o, cite("Art. 21")])
}

# Global Privacy Control: an opt-out of sale and sharing (CCPA/CPRA), and an
# objection by automated means (GDPR Art. 21(5)). It wins over any grant.
denials contains msg if {
	input.subject.gpc == true
	sale_or_share
	checked
	msg := sprintf("%s: Global Privacy Control is an opt-out of sale and sharing%s; %s is sale or sharing", [label, cite("Art. 21(5)"), purpose])
}

# resolved is the record that governs the purpose (the most specific one).
resolved := consent.resolve(input.subject.consents, purpose)

resolved_state := consent.state(resolved.record, now_ns)

# opt_in_required holds when the purpose needs opt-in consent: under the
# GDPR and the strictest rules always; under the opt-out model for a
# sensitive purpose, and for sale or sharing of a minor's data.
opt_in_required if regime != "us"

opt_in_required if sensitive

opt_in_required if {
	sale_or_share
	age < 16
}

# requirement says why the purpose needs opt-in consent.
requirement := sprintf("%s is a sensitive purpose and requires explicit opt-in consent%s", [purpose, cite("Art. 9")]) if {
	sensitive
} else := sprintf("%s requires opt-in consent", [purpose]) if {
	regime != "us"
} else := sprintf("the person is under 13; %s is sale or sharing and requires a parent's opt-in consent", [purpose]) if {
	sale_or_share
	age < 13
} else := sprintf("the person is under 16; %s is sale or sharing and requires opt-in consent", [purpose]) if {
	sale_or_share
	age < 16
}

# opt_in_given holds when the governing record is a live grant on a lawful
# basis that suffices, and, for a sensitive purpose, is a record of a
# sensitive purpose.
opt_in_given if {
	resolved_state == "granted"
	basis_ok
	explicit_ok
}

basis_ok if consent.consent_basis(resolved.record)

# analytics.reporting (and its children) may rest on legitimate interests.
basis_ok if {
	consent.lawful_basis(resolved.record) == "legitimate_interests"
	purposes.under(purpose, "analytics.reporting")
}

explicit_ok if not sensitive

explicit_ok if purposes.sensitive(resolved.key)

shortfall := "none recorded" if {
	not resolved
} else := sprintf("consent for %s was %s", [resolved.key, resolved_state]) if {
	resolved_state in {"denied", "withdrawn"}
} else := sprintf("consent for %s expired", [resolved.key]) if {
	resolved_state == "expired"
} else := sprintf("the record for %s has status %q", [resolved.key, object.get(resolved.record, "status", null)]) if {
	resolved_state == "unknown"
} else := sprintf("the record for %s rests on %s, not consent", [resolved.key, consent.lawful_basis(resolved.record)]) if {
	not basis_ok
} else := sprintf("the grant for %s does not cover it; a sensitive purpose needs its own record", [resolved.key]) if {
	not explicit_ok
} else := "no opt-in consent established"

denials contains msg if {
	checked
	opt_in_required
	not opt_in_given
	msg := sprintf("%s: %s; %s", [label, requirement, shortfall])
}

purpose_grounds contains msg if {
	checked
	opt_in_required
	opt_in_given
	msg := granted
}

granted := sprintf("%s: %s rests on legitimate interests (record for %s); no objection recorded", [label, purpose, resolved.key]) if {
	not consent.consent_basis(resolved.record)
} else := sprintf("%s: opt-in consent granted for %s", [label, purpose]) if {
	resolved.key == purpose
} else := sprintf("%s: opt-in consent granted for %s, which covers %s", [label, resolved.key, purpose])

# The opt-out model (CCPA/CPRA and the other US states): allowed until the
# person opts out.
opted_out if resolved_state in {"denied", "withdrawn"}

denials contains msg if {
	checked
	not opt_in_required
	opted_out
	msg := sprintf("%s: opt-out model; the person opted out of %s (%s)", [label, resolved.key, resolved_state])
}

purpose_grounds contains msg if {
	checked
	not opt_in_required
	not opted_out
	msg := sprintf("%s: opt-out model, no opt-out recorded", [label])
}

# ---------------------------------------------------------------------------
# segment.export: the destination's declared fields, minimised by its kind.

kind := object.get(input, ["destination", "kind"], "")

declared := object.get(input, ["destination", "fields"], [])

export_fields := fields.allowed(kind, declared)

denials contains msg if {
	input.action == "segment.export"
	not kind in fields.kinds
	msg := sprintf("segment.export: unknown destination kind %q", [kind])
}

denials contains "segment.export: the destination declares no fields" if {
	input.action == "segment.export"
	kind in fields.kinds
	count(declared) == 0
}

denials contains msg if {
	input.action == "segment.export"
	kind in fields.kinds
	count(declared) > 0
	count(export_fields) == 0
	msg := sprintf("segment.export: none of the declared fields may be sent; %s", [fields.rule[kind]])
}

export_notes contains msg if {
	input.action == "segment.export"
	kind in fields.kinds
	count(export_fields) > 0
	dropped := fields.dropped(kind, declared)
	count(dropped) > 0
	msg := sprintf("segment.export: %s; dropped %s", [fields.rule[kind], concat(", ", dropped)])
}
