package keys

import "errors"

// Sentinel errors. Callers test them with errors.Is; every error returned by
// this package wraps one of them (or a store/OS error) with context. No error
// ever carries key material or plaintext.
var (
	// ErrWrongMasterKey is returned by Open when the master key cannot
	// open the vault's keyring: it is not the key this data directory was
	// created with. Nothing on disk is modified.
	ErrWrongMasterKey = errors.New("keys: master key does not match this data directory")
	// ErrBadMasterKey is returned when a master key (file, environment
	// variable or passphrase input) is malformed: not 64 hex characters,
	// or a passphrase/salt that is too short.
	ErrBadMasterKey = errors.New("keys: malformed master key (want 64 hex characters = 32 bytes)")
	// ErrMasterKeyPermissions is returned by LoadMasterFile when the key
	// file is readable or writable by group or others.
	ErrMasterKeyPermissions = errors.New("keys: master key file must not be accessible by group or others (chmod 600)")
	// ErrKeyShredded is returned when the profile's data key was destroyed
	// by Shred (or is only present wrapped under a retired KEK epoch, see
	// ErrKEKRetired). The data sealed under it is gone for good.
	ErrKeyShredded = errors.New("keys: profile data key has been shredded")
	// ErrKEKRetired is returned (together with ErrKeyShredded) when a
	// wrapped DEK names a KEK epoch that is not in the keyring: the KEK
	// was destroyed by Rotate, typically because an old backup of deks/
	// was restored next to a newer keyring.
	ErrKEKRetired = errors.New("keys: data key is wrapped under a retired (destroyed) KEK epoch")
	// ErrDEKNotFound is returned when no data key was ever created for the
	// profile (see Vault.CreateDEKs).
	ErrDEKNotFound = errors.New("keys: no data key for profile")
	// ErrUnsealFailed is returned when a sealed value does not
	// authenticate: it was tampered with, truncated, moved to another
	// storage key, or sealed for another profile.
	ErrUnsealFailed = errors.New("keys: sealed value failed authentication")
	// ErrVaultClosed is returned by every method after Close.
	ErrVaultClosed = errors.New("keys: vault closed")
)
