// Package core is the Custody service: Open(ctx, Config) returns a *CDP that
// wires the key vault (core/keys), the encrypted store (core/store), message
// decoding (core/event) and identifiers (identity) behind one type. The HTTP
// server (core/server) and the CLI (cmd/custody) sit on top of it.
//
// # Guarantees
//
//   - Ingest returns only after everything it accepted is durable (fsynced in
//     one store transaction, the new profiles' data keys fsynced in the vault
//     before it). A single committer goroutine folds concurrent Ingest calls
//     into one transaction (group commit), so durability costs one fsync per
//     group, not per request, and identity resolution sees one consistent
//     view without races between requests.
//   - A batch is all-or-nothing: it is validated completely before anything
//     is written, and its writes share one transaction.
//   - Every value about a person is sealed with that person's data key; keys
//     and indexes hold only keyed hashes of identifiers. Errors and log lines
//     name fields and counts, never values.
//   - Duplicate messageIds within the de-duplication window are acknowledged
//     and not stored again, so client retries are safe.
package core
