// Package server is Custody's HTTP API: Segment-compatible ingestion
// (POST /v1/identify|track|page|screen|group|alias|batch with the write key
// as the HTTP Basic user), the admin API under /v1/admin/ (Bearer keys with
// roles), /healthz and /metrics. It also serves the admin API on an
// owner-only unix socket in the data directory, which is how the CLI reaches
// a store that a running server holds; Client is that CLI side.
//
// Guarantees: a 200 on ingestion means the messages are durable; a 400
// means nothing of the request was stored and the JSON error names the
// message index and field (never a value). Access logs carry the route
// pattern, status and duration, never a query string or body, because
// lookups carry identifiers.
package server
