# METADATA
# title: Consent resolution
# description: >-
#   Which consent record governs a purpose, and what state it is in at the
#   time of the decision. The input carries the raw records, one per
#   purpose; the resolution is here so that a brand sees it and can change it.
package custody.consent

import data.custody.purposes

# resolve(consents, p) is the record that governs purpose p: the record of p
# itself or else of its nearest ancestor that has one (the most specific
# record wins), as {"key": <purpose of the record>, "record": <record>}.
# Undefined when neither p nor any of its ancestors has a record.
resolve(consents, p) := {"key": k, "record": consents[k]} if {
	keys := [a | some a in purposes.ancestors(p); is_object(consents[a])]
	count(keys) > 0
	k := keys[count(keys) - 1]
}

# state(rec, now_ns) is the state of record rec at time now_ns (ns since the
# epoch): "granted", "expired" (granted, but expires_at is at or before now),
# "denied", "withdrawn", or "unknown" for any other status. Denials and
# withdrawals do not lapse: an opt-out holds whatever its expires_at says.
default state(_, _) := "unknown"

state(rec, now_ns) := "expired" if {
	rec.status == "granted"
	expired(rec, now_ns)
}

state(rec, now_ns) := "granted" if {
	rec.status == "granted"
	not expired(rec, now_ns)
}

state(rec, _) := rec.status if rec.status in {"denied", "withdrawn"}

# expired(rec, now_ns) holds when rec has an expires_at at or before now_ns.
# An expires_at that is not an RFC 3339 time counts as expired.
expired(rec, now_ns) if {
	exp := object.get(rec, "expires_at", null)
	exp != null
	not after(exp, now_ns)
}

# after(ts, now_ns) holds when RFC 3339 time ts is after now_ns.
after(ts, now_ns) if time.parse_rfc3339_ns(ts) > now_ns

# lawful_basis(rec) is the record's lawful basis, "" when it has none.
lawful_basis(rec) := object.get(rec, "lawful_basis", "")

# consent_basis(rec) holds when the record rests on consent. A granted record
# that names no lawful basis is a consent.
consent_basis(rec) if lawful_basis(rec) in {"consent", ""}
