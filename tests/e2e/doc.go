// Package e2e holds Custody's end-to-end tests. They build the real
// `custody` binary once (TestMain), run it as separate processes on data
// directories under t.TempDir(), and talk to it only the way users and
// their software do: the CLI, the Segment-compatible HTTP API on loopback,
// and the admin socket the CLI finds on its own.
//
// What the package proves:
//
//   - TestSegmentNodeSDK: the official Segment Node SDK
//     (@segment/analytics-node, pinned in tests/sdk/package.json) can send
//     identify, track and page calls to Custody unchanged, every call is
//     stored with its fields, and the anonymousId is stitched to the
//     profile of the userId it was identified with, whether the journey is
//     sent phase by phase or all at once (concurrent batches committed in
//     any order).
//   - TestKillNineLosesNothing: a server killed with SIGKILL at random
//     moments under concurrent batch load loses no acknowledged message
//     (200 means durable), never stores a retried message twice
//     (messageId de-duplication), keeps every message on the person its
//     userId, anonymousId and email were merged into, reopens cleanly
//     every time, and can still be stopped cleanly and read without a
//     server afterwards.
//   - TestNoPlaintextOnDiskOrLogs: after ingesting personal data over HTTP
//     and by `custody import`, and after rejecting a request that carried
//     an email in the wrong place, no byte of that personal data (nor the
//     API keys) appears in any file of the data directory, or in the
//     server's or the CLI's logs, error responses or /metrics, even at
//     debug level (TestScanFinds checks that the scanner finds what it
//     looks for).
//   - TestCLIContract: the stable CLI forms keep their exit codes,
//     messages and JSON shapes, refuse a wrong master key without touching
//     the data directory, and behave the same with and without a running
//     server (the CLI then goes through the admin socket).
//
// The SDK test needs Node.js and `npm ci` in tests/sdk (`make test` runs
// it); without them it is skipped, except under CI=true where it fails.
package e2e
