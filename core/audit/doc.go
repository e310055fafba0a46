// Package audit is Custody's append-only, hash-chained audit log: decision
// records of the policy gate, deletion certificates, consent changes made
// by the DPO, key rotations, unmerges. It lets a DPO show what happened and
// detect any change made to the record afterwards.
//
// # No personal data
//
// The package never inspects an entry's data: it stores whatever JSON
// object the caller passes. Callers must put only counts, hashes, ids and
// similar non-personal values in it, never plaintext personal data (no
// names, e-mail addresses, phone numbers, identifier values, traits). Audit
// entries are not erased with a person: anything personal in them would
// outlive the person's deletion. Kind and actor are restricted to
// [a-z0-9._-] (no '@', no spaces), and no error or log line of this
// package quotes an entry's content.
//
// # What it owns
//
// The keyspace prefix a/ of the data store (PrefixAudit), one key per
// entry, and the head file HeadFile in the directory given as
// Options.HeadDir (the key vault directory, e.g. <data>/vault/audit-head).
//
//	a/<seq:8>   entry seq (uint64 big-endian, from 1): canonical || hash
//
// # Canonical encoding and hash
//
// An entry's hash is SHA-256 over its canonical encoding, which is also
// exactly what is stored (followed by the 32-byte hash):
//
//	tag     16 bytes   ASCII "custody/audit/v1"
//	seq      8 bytes   uint64, big-endian
//	time     8 bytes   int64, big-endian: Unix time in nanoseconds (UTC)
//	kind     4 + n     uint32 big-endian length n, then the bytes
//	actor    4 + n     uint32 big-endian length n, then the bytes
//	data     4 + n     uint32 big-endian length n, then the JSON object's
//	                   bytes exactly as stored (never re-encoded)
//	prev    32 bytes   hash of entry seq-1 (32 zero bytes for seq 1)
//
// Every variable field is length-prefixed and every other field has a fixed
// size, so two different entries never share an encoding. Entry.Prev and
// Entry.Hash are the lowercase hex forms; Entry.Time is the time field
// (RFC3339Nano in JSON). Time is hashed as an integer rather than as text
// because one instant has many RFC 3339 spellings. Data is hashed as the
// bytes it was stored with, so nothing depends on how a JSON encoder orders
// map keys. Entry.VerifyHash recomputes the hash of an exported entry, so
// anyone can check an export without the store.
//
// # Sealed head
//
// The chain alone proves nothing against someone who can write the store:
// SHA-256 is unkeyed, so the end of the chain can be cut off or rewritten
// consistently. The head file anchors it outside the data store: it holds
// the last sequence number and hash and the last appended batch of entries
// in full, sealed with XChaCha20-Poly1305 under the master key's subkey
// PurposeHead ("audit-head/v1"; format: "CAH1" || nonce || ciphertext). It
// is replaced atomically (temporary file, fsync, rename, fsync of the
// directory). It catches entries cut off the end, entries added past it, a
// rewritten end of the chain, and a restored older data backup; a missing
// or forged head file is itself reported.
//
// # Appending and crash safety
//
// A Log runs one writer goroutine; Append queues a request and waits.
// The writer takes everything queued (up to 256 entries / 512 KiB) and
// commits it as one batch (group commit), in this order:
//
//  1. build the entries: seq, time, prev = hash of the previous entry, hash;
//  2. write the head file naming the batch's last entry and holding the
//     whole batch, durably;
//  3. commit the batch to the store in one durable transaction.
//
// A crash before step 2 completes leaves the old head (the temporary file
// is removed at the next Open) and no new entries: nothing was appended.
// A crash after step 2 leaves a head whose batch the store lacks, and Open
// commits it (redo), checking that it links to the store's last entry.
// The transaction of step 3 is atomic, so the store holds all of the batch
// or none of it; Open accepts either. Any other disagreement between store
// and head is reported, never repaired. Because step 2 is durable before
// step 3 starts, the store is never ahead of the head after a crash, which
// is what lets Open and Verify treat "store ahead of head" as tampering.
//
// If step 3 fails without a crash, the writer checks whether the batch is
// in the store after all (then the append succeeded) and otherwise writes
// the previous head back, so an error from Append means "not appended".
// If even that fails, the Log answers every later Append with
// ErrNeedsReopen and the next Open settles the batch as after a crash.
// Appends are serialized within one process; the store's directory lock
// keeps other processes out, and two Logs on one head file in a process are
// refused.
//
// Open checks only the end of the chain against the head (a few reads).
// Verify (or VerifyStore, for a store opened read-only by `custody audit
// verify`) walks every entry: hash, sequence number, link, and the end
// against the head. It names the first sequence number that cannot be
// trusted.
//
// # What it does not protect against
//
//   - Someone holding the master key can rewrite the whole log and re-seal
//     a matching head: the log detects tampering by anyone else, not by the
//     key holder. Protect the master key accordingly (and export the head
//     hash elsewhere, e.g. to the DPO, for independent anchoring).
//   - Restoring an older data backup together with a head file of the same
//     age is undetectable. Keep the head file (the vault directory) out of
//     data backups.
//   - Deleting every entry and the head file looks like a log that was
//     never started.
//   - Entries of the last batch deleted from the store are put back by Open
//     from the head; they are reported as pending by Verify, not as
//     tampering, because they are indistinguishable from a crash.
//   - Changes in the middle of the chain are found by Verify, not by Open;
//     run Verify regularly.
//
// After a legitimate restore of a data backup, Open fails with
// ErrHeadMismatch until the discrepancy has been dealt with explicitly by
// the operator: the log never papers over it. Reanchor is that explicit
// step: it checks the chain in the store from entry 1, appends an
// audit.reanchor entry naming the head it replaces, and seals a new head
// on it (`custody restore` calls it).
package audit
