// Package keys owns Custody's key hierarchy and every use of it:
//
//	master key ──HKDF──> subkeys (store encryption, identifier HMAC,
//	     │                 vault store, keyring)
//	     └─ keyring subkey seals ──> KEK epochs (keyring.json)
//	                                   └─ each KEK wraps ──> per-profile DEKs (deks/)
//	                                                           └─ each DEK seals that
//	                                                              profile's values
//
// # Master key
//
// 32 random bytes, kept outside every data directory: a hex file
// (GenerateMasterFile / LoadMasterFile, which refuses a file readable by
// group or others), the CUSTODY_MASTER_KEY environment variable (ParseMaster)
// or a passphrase stretched with Argon2id (MasterFromPassphrase). Other
// packages never see it; they get purpose-bound subkeys from Master.Subkey
// (HKDF-SHA256, info "custody/"+purpose) and may print Master.Fingerprint.
// A Master formats and logs as its fingerprint only.
//
// # Two layers: KEKs and DEKs
//
// Every profile has its own random 32-byte data encryption key (DEK). Values
// are sealed with XChaCha20-Poly1305 under it (Vault.Seal): format byte 0x01,
// a random 24-byte nonce, ciphertext and tag. The storage key the value is
// written under is the associated data, so a sealed value moved to another
// key, or to another profile, fails to open (ErrUnsealFailed).
//
// DEKs are stored wrapped (XChaCha20-Poly1305, associated data
// "custody-dek/" + the 16 pid bytes) under a key encryption key (KEK) of a
// numbered epoch: d/<pid> = epoch (4 bytes, big-endian) || nonce || wrapped
// DEK. KEKs are random and are kept in keyring.json sealed under the master
// key's "keyring/v1" subkey (associated data "custody-kek/<epoch>").
//
// # Why the DEKs live apart from the data store
//
// The vault is its own directory (keyring.json + deks/, a separate store
// encrypted with its own subkey), never inside the data store. Erasing a
// person (Vault.Shred) destroys their DEK; everything sealed under it -- in
// the live store, in its old value-log files, in every backup of the data
// store -- becomes unreadable at once, without rewriting any of it. Because
// the keys are not part of the data store, restoring a data backup never
// restores a shredded key.
//
// # Why deletion needs KEK rotation
//
// Deleting d/<pid> is not enough on its own: the store (Badger) keeps older
// versions of deks/ entries in its value log and tables until compaction
// gets to them, and a backup of deks/ keeps them forever. Those copies are
// wrapped under a KEK, so Vault.Rotate re-wraps every live DEK under a new
// epoch and then destroys the old KEK (removes it from keyring.json, records
// it as retired). After that no stale copy of a shredded DEK -- nor any other
// DEK wrapped under a retired epoch -- can be unwrapped with the current
// keyring (ErrKEKRetired, which also matches ErrKeyShredded). Erasure is
// complete once the next rotation after Shred has finished; operators
// schedule rotations accordingly.
//
// The guarantee covers copies of deks/. A copy of keyring.json taken before
// the rotation still holds the retired KEK (sealed under the master key), so
// backups of the vault directory must be kept out of data backups and expire
// within the erasure deadline, or the master key itself must be replaced.
//
// # Backups
//
// Vault.Backup writes keyring.json and the wrapped DEKs (with the shred
// tombstones) encrypted under the PurposeBackup subkey; RestoreVault puts
// them back only where there is no vault, since restoring over a live one
// would bring back keys shredded since.
//
// # Crash safety
//
// keyring.json is replaced atomically (temp file, fsync, rename, fsync of
// the directory). Rotation writes the new epoch first (both epochs live),
// re-wraps in batches, and retires the old epochs only after a full scan
// finds no DEK left under them; a vault with several live epochs opens
// normally and Rotate finishes the job. Open with the wrong master key fails
// with ErrWrongMasterKey before anything is created or written.
//
// # Concurrency
//
// A Vault is safe for concurrent use. Unwrapped DEKs are kept in a bounded,
// sharded CLOCK cache; sealing for a cached profile takes only a shard read
// lock. CreateDEKs creates a whole batch in one transaction (one fsync), as
// ingest needs.
//
// Nothing in this package logs or returns key material or plaintext.
package keys
