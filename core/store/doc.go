// Package store is Custody's only door to the embedded key-value engine
// (Badger v4). It owns the keyspace, transactions, scans, the schema version
// check and the translation of the engine's errors into its own sentinels, so
// that another ordered, transactional KV engine could sit behind it.
//
// # Guarantees
//
//   - Encryption at rest is always on: Open refuses an empty key. The key is
//     derived from the master key by core/keys (HKDF); a wrong key fails Open
//     with ErrWrongKey and changes nothing on disk.
//   - A committed Update is durable (fsynced) when Options.SyncWrites is set,
//     which is the default. Callers batch work into few transactions (group
//     commit) to keep this cheap; see core's ingest committer. Pipelined, an
//     Update also returns only once its commit is visible, after every
//     earlier one: a View begun after it reads its writes.
//   - The schema version key is checked at Open; an unknown version fails
//     with ErrSchemaVersion before anything is written. A version between
//     MinSchemaVersion and SchemaVersion opens: the caller (core) upgrades
//     the records and then records the new version with SetSchema.
//   - Backup writes an encrypted, authenticated snapshot of every live
//     record (a Badger stream at one read timestamp); ReadBackup checks and
//     decrypts it and a Loader bulk-writes it into a fresh store (format in
//     backup.go). Badger's at-rest encryption does not cover a stream, so
//     the stream is encrypted with a key the caller derives.
//   - Stats reports the tree's shape (tables, index and bloom bytes,
//     levels waiting for compaction) and the block and index caches' hits
//     and misses, counts only. With encryption at rest a table's index lives
//     only in the index cache, so the index bytes are what that cache is
//     sized by (core exports them on /metrics).
//   - Watch: a pipelined store tells Options.OnCommit the final values of
//     the watched keys each commit wrote, in commit order and before the
//     commit is visible, so that a cache of those keys kept by the caller
//     is never older than what a reader can see (core keeps the clusters,
//     n/, and which memberships are active, s/, in memory this way); Settle
//     makes a later reader's snapshot at least as new as what was reported.
//
// # Keyspace (schema version 2)
//
// Every key starts with a one-byte-or-more ASCII prefix and a slash. Profile
// ids (pid) are 16 raw bytes (UUIDv7, so they sort by creation time).
// Everything about a person lives under that person's pid so that access and
// deletion read and erase a contiguous range, never a full-store scan.
// Values marked "sealed" are encrypted with the profile's own data key
// (XChaCha20-Poly1305, the storage key as associated data) on top of the
// store-wide encryption.
//
//	!meta/schema                     schema version, decimal ASCII
//	!meta/created                    RFC3339 time the store was initialised
//	p/<pid>                          profile: identifiers, traits (sealed)
//	e/<pid>/<ts:8>/<mid:16>          event; ts = event time, unix nanoseconds
//	                                 big-endian; mid = keyed hash of the
//	                                 messageId (sealed)
//	i/<type>/<hmac:32>               identifier index -> pid. type is one of
//	                                 user_id, anonymous_id, email, phone, or
//	                                 x:<externalId type>; hmac = HMAC-SHA256 of
//	                                 the normalised value under the identifier
//	                                 subkey. No plaintext identifier in keys.
//	u/g/<at:8><nonce:8>              messageIds accepted by one committed
//	                                 group: their keyed hashes (16 bytes
//	                                 each), at = commit time (unix ns);
//	                                 expires after the dedup window; holds
//	                                 nothing that links to a person
//	u/<hmac:32>                      the same for one message, empty value
//	                                 (written before group records; read
//	                                 until they expire)
//	k/<sha256(api key):32>           API key record (name, role, created);
//	                                 the key itself is never stored
//	m/<pid>                          identity node's cluster: root pid (16),
//	                                 on roots the key of the latest accepted
//	                                 merge (24), then the identifier type
//	n/<root>                         members of root's cluster: repeated
//	                                 pid (16), token (32), type length, type
//	o/<pid>                          the observations touching pid, inline:
//	                                 repeated hash of the node set (16),
//	                                 order key (24), node count (2, big-
//	                                 endian), node pids (16 each, sorted).
//	                                 An observation is the identifiers seen
//	                                 together in one message (its earliest)
//	g/<pid>, g/<pid>/<obs:16>        schema version 1's observations: a list
//	                                 of hashes and one record per
//	                                 observation and node; converted to o/
//	                                 when core opens the store
//	j/<pid>                          merge journal of pid as a JSON array
//	                                 (merged or refused, trigger type,
//	                                 reason; pids and types only)
//
// The identity records are single values read by point lookups, because
// the committer works inside large write transactions, where every
// iterator first sorts the transaction's pending writes.
//
//	q/<pid>/<other:16>               separation from an unmerge (JSON: when,
//	                                 why); stored under both pids
//	sd/<name>                        segment definition, canonical JSON
//	s/<segment>/<root:16>            segment membership of a person (JSON:
//	                                 entered_at, exited_at, and up to 8
//	                                 earlier [entered, exited] intervals in
//	                                 unix nanoseconds); refreshed by
//	                                 evaluation and the sweep
//	sh/<segment>/<at:8>              segment size at a refresh (JSON counts)
//	sf/<segment>/<day:4>             segment flow of one UTC day (days since
//	                                 1970-01-01): how many people entered,
//	                                 left, and entered from each other
//	                                 segment (JSON counts; no pid, nothing
//	                                 about a person: kept after an erasure)
//	su/<segment>                     last use of a segment (JSON: use ->
//	                                 time; applied, evaluated, exported,
//	                                 personalized), for hygiene warnings
//	x/<pid>/<export id>              export ledger entry (sealed JSON: export,
//	                                 segment, destination, time, fields)
//	x-sup/<i-key>                    suppression: the identifier index key
//	                                 (type + keyed hash) of a deleted person's
//	                                 identifier; value: request id and time
//	r/<request id>                   privacy request (JSON: type, regulation,
//	                                 status history, due date, the keyed hash
//	                                 of the identifier, results; no plaintext)
//	a/<seq:8>                        audit log entry: canonical bytes + hash,
//	                                 chained; no personal data (core/audit)
//	c/<pid>/<collected:8>/<id:16>    consent record (sealed JSON); id is a
//	                                 keyed hash of its origin, so a replayed
//	                                 message writes the same key
//
// Identity model: every identifier is a node with its own pid (and data
// key); events are stored under the node of the message's strongest
// identifier; a person is a cluster of nodes rooted at its oldest pid.
//
// Every prefix of DESIGN.md §2 is in use. Every prefix in use is listed in Prefixes, marked when it
// holds records about a person, so that access and deletion can prove they
// cover every one (a test fails for a key outside them).
package store
