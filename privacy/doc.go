// Package privacy holds the pure consent types of a person: the consent
// ledger's records (what they agreed to, when and how) and how they
// resolve.
//
// Access and deletion requests, suppression and deadlines, which DESIGN.md
// §1 places here, live in core instead (core/requests.go, erasure.go,
// keyspace.go, report.go): they need the store, the keys and the identity
// cluster resolution that core owns, while this package imports none of
// them and stays pure. docs/architecture.md says why at more length.
//
// What it holds: consent records and their validation, how the records
// of a person's several profiles resolve to one
// state per purpose (the most specific purpose wins; after a merge the
// latest record wins, conflicts from before it resolve to the most
// restrictive state), jurisdictions, consent signals arriving on events
// (Segment's context.consent.categoryPreferences and the Sec-GPC header),
// and the policy input the gate decides on. Storage stays with core, which
// seals every record under the person's data key; this package never sees
// a key.
//
// Guarantees: history is never overwritten (a record is added, never
// changed); a state is a pure function of the records, so it does not
// depend on the order they arrived in.
package privacy
