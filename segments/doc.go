// Package segments owns Custody's segment definition language: its parsing
// and validation (Parse, Compile, NewSet), its evaluation over one person's
// data (Compiled.Match, Population, Thresholds), the built-in templates
// (Templates), and the gate every member list and export passes (Gate, Run,
// Export). Storage, ingestion and wiring live in core, which calls it.
//
// # Language
//
//	{"name": "cart_abandoners", "description": "...", "purpose": "marketing.communications.email",
//	 "where": {"all": [
//	   {"event": "Product Added", "within": "3d"},
//	   {"not": {"event": "Order Completed", "within": "3d"}}]}}
//
// A definition is JSON or YAML (same structure). name is [a-z0-9_-]{1,64};
// purpose a key of the caller's purpose taxonomy (KnownNames.Purpose);
// description optional. A condition is an object with exactly one operator
// key plus that operator's modifiers:
//
//   - all: [...], any: [...] (non-empty), not: {...}
//   - {"trait": "address.country", <comparisons>}: a dot path into the
//     traits (numeric segments index arrays). Comparisons eq, ne, in, gt,
//     gte, lt, lte, exists, contains; several are ANDed. Numbers compare
//     numerically; strings that are both RFC 3339 times compare as
//     instants, other strings lexically (bytes); different types are never
//     equal nor ordered. A missing (or null) value fails every comparison
//     but exists:false, ne included: use not/eq to include missing.
//     contains is a substring of a string or an element of an array.
//   - {"computed": "order_count", <comparisons>}: a trait the caller
//     computes per person (ComputedTraits, computed.go; a caller's own
//     names, KnownNames.Computed, are numbers). Its kind fixes the
//     comparisons and their operands: a number (eq, ne, in, gt, gte, lt,
//     lte, exists), a text (eq, ne, in, exists, contains with strings;
//     lifecycle_stage only eq, ne, in, exists with one of its stages) or
//     a time (eq, ne, in, gt, gte, lt, lte, exists with RFC 3339 times,
//     compared as instants). top and bottom rank by numbers only.
//   - {"event": "Order Completed", ...}: the person's events of that name,
//     selected by within: D (time in (now-D, now]), before: D (time <=
//     now-D), after: T or D (time > T, or > now-D), all ANDed, never later
//     than now; and by where: {"properties.<path>": {<comparisons>},
//     "context.<path>": {<comparisons>} (the event's context:
//     context.campaign.medium, context.page.referrer), "all": [...],
//     "any": [...], "not": {...}}. Then at most one aggregate,
//     count | sum | avg | min | max: {"property": "total", <numeric
//     comparisons>} (property only for sum/avg/min/max; events without a
//     numeric value are skipped; avg/min/max of nothing fail every
//     comparison, sum of nothing is 0), and first / last: {"older_than": D,
//     "newer_than": D} on the earliest / latest selected event. Without an
//     aggregate, first or last it means "at least one selected event";
//     "has not happened" is {"not": {"event": ...}} or "count": {"eq": 0}.
//   - {"top": {"percent": 10, "of": "revenue_365d"}}, "bottom" alike: the
//     person's computed value is in the top (bottom) N% of the population
//     (see Thresholds: ties included; people without a value excluded).
//   - {"in_segment": "other"}: membership of another definition of the
//     same Set; references must resolve and must not form a cycle.
//
// Durations are <n><m|h|d|w> (30m, 12h, 3d, 2w), at most MaxDuration.
//
// A definition may declare "splits": {"treatment": 90, "holdout": 10}: 2 to
// 8 groups named [a-z0-9_-]{1,32} with whole weights summing to 100. A
// Splitter assigns each person to one group with a keyed hash
// (deterministic per person and segment, unpredictable without the key);
// BaselineGroup names the group reports compare the others against.
// Measure is the gated pass reports read people through.
//
// # Guarantees
//
//   - Validation reports every problem (up to 50) as an ErrorList of
//     *Error with the exact path (where.all[1].count.gte) and a sentinel of
//     errors.go; messages quote input values to at most 40 characters.
//   - MarshalJSON is canonical and round-trips: Parse(MarshalJSON(d))
//     equals d and marshals to the same bytes (fuzzed).
//   - Compile re-validates (a Definition built in Go gets the same errors,
//     at the same paths) and precompiles paths, durations, literals and
//     comparisons; Match does not allocate and never consults a gate.
//   - Evaluation is a pure function of the person, now and the Env; a
//     Compiled, a Set and Thresholds are immutable and safe for concurrent
//     use. Thresholds are fixed by a population pass before evaluation.
//   - Members and export rows exist only through Run and Export, which
//     require a Gate (ErrNoGate otherwise) and ask it for each person
//     before using their data for a definition's purpose: people the gate
//     denies are not evaluated, not counted into thresholds, never appear
//     among members or rows, and are counted (NotConsented, ExportDenied).
//     A row carries only the fields the gate allowed for the destination.
//     Member and Row have unexported fields; a Subject can only be made
//     here. A gate error aborts the run without partial results.
//   - Nothing about a person is logged; errors name paths and counts.
//
// The package has no package-level mutable state and no init function.
package segments
