package core

import (
	"errors"

	"github.com/custody-cdp/custody/core/store"
)

var (
	// ErrInvalidConfig is wrapped by every configuration error.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrNotInitialised: the data directory has no store; run `custody init`.
	ErrNotInitialised = errors.New("data directory is not initialised (run `custody init`)")
	// ErrAlreadyInitialised: `custody init` on a directory that has a store.
	ErrAlreadyInitialised = errors.New("data directory is already initialised")
	// ErrLocked: another process (usually `custody serve`) holds the store.
	ErrLocked = store.ErrLocked
	// ErrNoMasterKey: no master key could be found.
	ErrNoMasterKey = errors.New("no master key: expected master.key in the data directory, --master-key-file, CUSTODY_MASTER_KEY or CUSTODY_PASSPHRASE")
	// ErrProfileNotFound: no profile has the identifier asked for.
	ErrProfileNotFound = errors.New("profile not found")
	// ErrInvalidRole: not one of the API key roles.
	ErrInvalidRole = errors.New("invalid role (want ingest, marketer, dpo, admin or personalize)")
	// ErrUnauthorized: the API key is missing or unknown.
	ErrUnauthorized = errors.New("unknown API key")
	// ErrClosed: the CDP was closed.
	ErrClosed = errors.New("custody is shutting down")
	// ErrInvalidInput: a lookup or request argument is wrong.
	ErrInvalidInput = errors.New("invalid input")
	// ErrCorrupt: a stored record does not decode.
	ErrCorrupt = errors.New("corrupt record in the store")
)

// Backup and restore errors.
var (
	// ErrRestoreNotEmpty: restore would replace a data store that holds
	// data; pass --force (RestoreOptions.Force) to replace it.
	ErrRestoreNotEmpty = errors.New("the data store is not empty: restoring would replace it (use --force)")
	// ErrNoVault: restore needs the key vault the backup's keys live in.
	ErrNoVault = errors.New("no key vault in the data directory: restore the vault first (custody restore --vault FILE)")
)
