package store

import "errors"

// Sentinel errors. Callers check them with errors.Is; badger's own errors
// never leave this package, so no other package needs to import badger.
var (
	// ErrNotFound is returned when a key does not exist.
	ErrNotFound = errors.New("store: key not found")
	// ErrConflict is returned when a transaction lost a race with another
	// one; Update retries it a few times before giving up.
	ErrConflict = errors.New("store: transaction conflict")
	// ErrTxnTooBig is returned when one transaction holds more than the
	// store can commit at once; split the work.
	ErrTxnTooBig = errors.New("store: transaction too big")
	// ErrLocked is returned by Open when another process holds the
	// directory (usually a running `custody serve`).
	ErrLocked = errors.New("store: data directory is in use by another process")
	// ErrWrongKey is returned by Open when the encryption key does not
	// match the one the store was created with.
	ErrWrongKey = errors.New("store: encryption key does not match this store")
	// ErrSchemaVersion is returned by Open when the store was written by a
	// newer or incompatible version of Custody.
	ErrSchemaVersion = errors.New("store: unsupported schema version")
	// ErrNotInitialised is returned by Open with MustExist set when the
	// directory holds no store.
	ErrNotInitialised = errors.New("store: no store in this directory (run `custody init`)")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store: closed")
	// ErrEmptyKey is returned when a key is empty.
	ErrEmptyKey = errors.New("store: empty key")
)
