// Package event owns Custody's representation of Segment-spec messages
// (identify, track, page, screen, group, alias): their Go types, decoding of
// HTTP Tracking API bodies, validation, normalisation, and a compact stored
// form. It does no I/O and imports no other package of this module, so every
// ingestion path (HTTP, replay, import) shares exactly one definition of
// "a valid event".
//
// # Compatibility
//
// The goal is to accept exactly what Segment's HTTP Tracking API accepts, so
// official SDKs (analytics-node, analytics.js, analytics-go, …) work
// unchanged against Custody:
//
//   - Limits are Segment's: 32 KiB per message, 500 KiB per batch body.
//   - /v1/<type> bodies take their type from the URL; a "type" key in the
//     body is ignored (DecodeMessage). /v1/batch items must carry a type.
//   - Batch-level context and integrations are shallow defaults for each
//     item (the item's own keys win); batch-level sentAt applies to items
//     without one. analytics-node sends {"batch":[...],"sentAt":...}.
//   - Unknown top-level keys (_metadata, writeKey, receivedAt, …) are dropped;
//     context, traits, properties and integrations are kept byte for byte.
//   - Key matching is encoding/json's: exact match preferred, otherwise
//     case-insensitive ("UserId" is read as userId). That is more lenient
//     than needed, never stricter, so it cannot reject what an SDK sends.
//
// # Guarantees of a decoded Message
//
//   - Type is one of the six types, lower case; MessageID is non-empty
//     (generated with a random UUID when the client sent none).
//   - userId, anonymousId, previousId, groupId and messageId are trimmed of
//     surrounding white space, and at most MaxIDBytes long (as are event,
//     name and category).
//   - alias has previousId and userId; every other type has userId or
//     anonymousId; track has a non-blank event; group has groupId.
//   - traits, properties, context and integrations are nil or a JSON object
//     (JSON null is treated as absent).
//   - Times are UTC. ReceivedAt is the server's now. OriginalTimestamp is the
//     client's timestamp, if any. Timestamp is corrected for client clock
//     skew exactly as Segment does: if both timestamp and sentAt were sent,
//     Timestamp = ReceivedAt − (SentAt − OriginalTimestamp), because the
//     client's clock may be wrong but the interval between event and send,
//     measured on that same clock, is not; with only timestamp, Timestamp is
//     it; otherwise Timestamp = ReceivedAt. A null, blank or zero-time
//     (0001-01-01T00:00:00Z) timestamp/sentAt counts as absent; anything
//     else must parse as ISO-8601 (RFC 3339 with or without fractional
//     seconds, offsets with or without a colon, no seconds, space separator,
//     or no zone — taken as UTC) and lie within years 1–9999 UTC.
//
// # Errors and privacy
//
// Every error from DecodeMessage, DecodeBatch and DecodeStored is a
// *FieldError wrapping one sentinel (ErrInvalidField, …) with the message
// index and JSON path, so the HTTP layer can answer
// {"error":…, "index":N, "field":"…"}. Error text never contains the
// offending value — event bodies are personal data and error strings travel
// to logs and clients — only field names, JSON type names and byte offsets.
// The raw body must be valid UTF-8; this is checked before decoding because
// encoding/json would otherwise silently replace bad bytes with U+FFFD and
// corrupt identifiers. A batch is all-or-nothing: the first invalid item
// fails the call.
//
// # Performance
//
// Ingestion targets 50k+ events/s end to end on two cores, so decoding must
// cost a small fraction of that budget. Each message is decoded by one typed
// encoding/json pass into a struct (no map[string]any): the struct gives
// JSON-type checking with field names for free, and the four free-form
// objects are captured as json.RawMessage without being parsed. A batch body
// is streamed with json.Decoder so each item is scanned twice (delimit,
// decode) instead of four times (validate body, split, validate item,
// decode) — scanning is where the time goes. Batch-level defaults are merged
// by scanning raw bytes, only when both sides are present. The stored form
// (Encode/AppendBinary/DecodeStored) is a small length-prefixed binary
// layout: no escaping or time formatting, exact round trip. See
// BenchmarkDecodeBatch.
package event
