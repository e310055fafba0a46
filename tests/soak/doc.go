// Package soak holds Custody's soak test: the real `custody serve` binary
// (built once by TestMain) under sustained load on loopback for a bounded
// time, with the figures an operator asks for printed at the end.
//
// TestSoak runs several concurrent clients sending /v1/batch requests of
// the official HTTP tracking API, while an admin client evaluates,
// refreshes and exports a segment, changes consent, and runs deletion
// requests (through the admin API and through the CLI over the admin
// socket). It prints events/s, p50/p99 batch latency, the server's RSS
// (VmRSS of /proc/<pid>/status, split into RssAnon and RssFile) at start,
// middle and end, and the errors, and it fails on any error (including an
// ERROR line in the server's log), on any acknowledged message that cannot
// be read back (unless its person was erased by a completed deletion), and
// when the anonymous part of RSS grows by 10% or more over the second half
// of the run. The file-backed part is the store's memory-mapped files,
// which grow with every message stored; it is reported, not judged.
//
// CUSTODY_SOAK_DURATION sets the load time (`make soak`: 6m). Without it
// the test runs for 5 s, as a smoke test inside `make test`, and does not
// judge memory growth (too short to mean anything).
package soak
