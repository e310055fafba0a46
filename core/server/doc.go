// Package server is Custody's HTTP API: Segment-compatible ingestion
// (POST /v1/identify|track|page|screen|group|alias|batch with the write key
// as the HTTP Basic user), the admin API under /v1/admin/ (Bearer keys with
// roles), /healthz, /metrics and /v1/openapi.json. It also serves the admin
// API on an owner-only unix socket in the data directory, which is how the
// CLI reaches a store that a running server holds; Client is that CLI side.
//
// Every endpoint is an entry of the route table (routes.go): the mux is
// built from it and nothing else, roles are enforced from it, the OpenAPI
// document is generated from it and docs/http-api.md renders it, so none of
// them can drift from what is served.
//
// Guarantees: a 200 on ingestion means the messages are durable; a 400
// means nothing of the request was stored and the JSON error names the
// message index and field (never a value). Failed authentication is
// rate-limited per client address (429 with Retry-After; valid keys are
// never limited) with bounded memory and no goroutine. With a certificate
// and key the TCP listener serves HTTPS only. Access logs carry the route
// pattern, status and duration, never a query string or body, because
// lookups carry identifiers.
package server
