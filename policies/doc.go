// Package policies is the consent policy gate: every segment evaluation,
// segment export and profile read asks it whether a use of a person's data
// may go ahead, why, and which fields may leave. It is the only package of
// Custody that imports OPA. README.md in this directory (copied to
// docs/policies.md) is the full contract; this comment summarises it.
//
// # What it owns
//
//   - The Rego policies, embedded from rego/*.rego (package custody.gate,
//     entry point data.custody.gate.decision) and replaceable by a directory
//     (Options.Dir), with their Rego unit tests (rego/*_test.rego, run by
//     RunTests and by `opa test`).
//   - The purpose taxonomy (fideslang data uses, dot-separated; Purposes),
//     the consent resolution (the most specific record of the purpose and
//     its ancestors wins; done in Rego, rego/consent.rego), the default
//     rules per jurisdiction and the export field table.
//   - The engine (New, Decide, Reload, BundleHash) and its decision cache.
//
// # Input and output, version 1 (ContractVersion)
//
//	{"action": "segment.evaluate|segment.export|profile.read",
//	 "purpose": "marketing.communications.email",
//	 "now": "2026-11-01T12:00:00Z",
//	 "destination": {"name": "newsletter", "kind": "email|ads|analytics|support|file|webhook",
//	                 "region": "EU", "fields": ["email", "first_name", "email_sha256"]},
//	 "subject": {"jurisdiction": "EU|UK|US-CA|US-<state>|...",
//	             "consents": {"marketing": {"status": "granted|denied|withdrawn", "at": "...",
//	                                        "expires_at": null, "lawful_basis": "consent"}},
//	             "gpc": false, "restricted": false, "objections": ["analytics"], "age": null},
//	 "requester": {"role": "marketer"}}
//
//	{"allow": true, "reasons": ["EU: opt-in consent granted for marketing, which covers ..."],
//	 "fields": ["email", "first_name"]}
//
// Input is the Go form of the input, Decision of the output. Changes within
// version 1 are additive.
//
// # Default rules
//
// EU and UK (GDPR): opt-in; every non-essential purpose needs a live grant
// (status granted, not expired at now, lawful basis consent or unstated;
// analytics.reporting may also rest on legitimate interests). US-CA and the
// other US states (US-XX): opt-out; allowed until a denial or withdrawal,
// except sensitive purposes and, under 16, sale or sharing, which need a
// grant. Anything else, the empty jurisdiction included: the strictest
// (opt-in) rules. Everywhere: essential purposes are allowed (contract);
// restriction of processing denies everything else; an objection to the
// purpose or an ancestor denies; GPC denies sale and sharing even with a
// grant; a sensitive purpose needs its own record. profile.read: dpo and
// admin always, marketer never, personalize only for
// personalize.content.profiled under the purpose rules. segment.export gets
// the declared fields its destination kind may receive.
//
// # Guarantees
//
//   - Every decision carries at least one reason, on allows as on denials.
//   - Decision.Fields is a subset of the declared destination fields, in
//     declared order, and empty unless a segment.export is allowed; the
//     engine checks this whatever the policy returns (ErrMalformedDecision).
//   - Fail closed: unknown jurisdictions get the strictest rules; unknown
//     purposes, actions, roles and destination kinds are denied.
//   - Policies are pure functions of the input: built-ins that read the clock,
//     draw randomness or reach the network are refused at compile time.
//   - New compiles once (OPA's PrepareForEval); a bundle that does not compile
//     fails with ErrPolicyCompile naming file:line, one without the decision
//     rule with ErrNoDecision. Reload swaps bundles atomically and keeps the
//     old one when the new one fails.
//   - The decision cache keys on the policy-relevant part of the input only
//     (see cache.go and README.md), is bounded (Options.CacheSize), safe for
//     concurrent use and dropped on Reload; a cached decision equals the
//     uncached one (property and fuzz tests). A custom policy that depends on
//     more must disable the cache (CacheSize < 0).
//   - BundleHash identifies the deciding policy for audit records.
//   - Nothing about a person is logged.
//
// The package has no package-level mutable state and no init function.
package policies
