package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/custody-cdp/custody/core/store"
)

// PurposeBackup is the master-key subkey purpose that encrypts backup
// files (of the data store and of the vault).
const PurposeBackup = "backup/v1"

// ErrVaultExists is returned by RestoreVault when the target directory
// already holds a vault: restoring over a live vault would bring back data
// keys shredded since the backup was taken, so it is never done in place.
var ErrVaultExists = errors.New("keys: a key vault already exists there; move it away first (restoring over it would bring back shredded keys)")

// Backup writes the vault -- keyring.json and the wrapped DEKs with the
// shred tombstones -- to w, encrypted under the master key's PurposeBackup
// subkey (m must be the vault's master key). A rotation cannot run meanwhile, so the keyring and the keys in
// the file match.
//
// A vault backup holds every KEK live when it was taken: restored next to
// a data backup of the same age it can open people deleted afterwards.
// Keep vault backups apart from data backups and let them expire within
// the erasure deadline (docs/operations.md).
func (v *Vault) Backup(ctx context.Context, w io.Writer, m *Master) (store.BackupInfo, error) {
	if v.closed.Load() {
		return store.BackupInfo{}, fmt.Errorf("vault backup: %w", ErrVaultClosed)
	}
	if m == nil || m.Fingerprint() != v.fp {
		return store.BackupInfo{}, fmt.Errorf("vault backup: %w", ErrWrongMasterKey)
	}
	v.rotMu.Lock()
	defer v.rotMu.Unlock()
	ring, err := os.ReadFile(v.keyring)
	if err != nil {
		return store.BackupInfo{}, fmt.Errorf("vault backup: %w", err)
	}
	key := m.Subkey(PurposeBackup, 32)
	defer clear(key)
	info, err := v.db.Backup(ctx, w, store.BackupOptions{Key: key, Kind: "vault", Files: map[string][]byte{KeyringFile: ring}, Now: v.now})
	if err != nil {
		return info, fmt.Errorf("vault backup: %w", err)
	}
	return info, nil
}

// RestoreVault recreates a vault in dir (which must not hold one) from a
// backup made by Vault.Backup under the same master key, and checks that
// it opens. On any error nothing is left behind in dir.
func RestoreVault(ctx context.Context, dir string, r io.Reader, opts Options) (store.BackupInfo, error) {
	if opts.Master == nil {
		return store.BackupInfo{}, fmt.Errorf("restore vault: Options.Master is required: %w", ErrBadMasterKey)
	}
	kpath := filepath.Join(dir, KeyringFile)
	dpath := filepath.Join(dir, DeksDir)
	for _, p := range []string{kpath, dpath} {
		if _, err := os.Stat(p); err == nil {
			return store.BackupInfo{}, fmt.Errorf("restore vault into %s: %w", dir, ErrVaultExists)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return store.BackupInfo{}, fmt.Errorf("restore vault: %w", err)
	}
	so := DefaultOptions().StoreOptions
	so.EncryptionKey = opts.Master.Subkey(PurposeVaultStore, 32)
	so.Logger = opts.Logger
	db, err := store.Open(ctx, dpath, so)
	if err != nil {
		return store.BackupInfo{}, fmt.Errorf("restore vault: %w", err)
	}
	cleanup := func(err error) (store.BackupInfo, error) {
		_ = os.RemoveAll(dpath)
		_ = os.Remove(kpath)
		return store.BackupInfo{}, fmt.Errorf("restore vault: %w", err)
	}
	var ring []byte
	l := db.NewLoader()
	key := opts.Master.Subkey(PurposeBackup, 32)
	info, err := store.ReadBackup(ctx, r, key, store.BackupVisitor{
		Record: func(k, v []byte, exp uint64) error { return l.Set(k, v, exp) },
		File: func(name string, b []byte) error {
			if name == KeyringFile {
				ring = append([]byte(nil), b...)
			}
			return nil
		},
	})
	if err == nil && info.Header.Kind != "vault" {
		err = fmt.Errorf("%s is a backup of the %s, not of the key vault", "the file", info.Header.Kind)
	}
	if err == nil && ring == nil {
		err = fmt.Errorf("the backup holds no %s", KeyringFile)
	}
	if err != nil {
		l.Cancel()
		_ = db.Close()
		return cleanup(err)
	}
	if err := errors.Join(l.Flush(), db.Close()); err != nil {
		return cleanup(err)
	}
	tmp := kpath + ".restore"
	if err := os.WriteFile(tmp, ring, 0o600); err != nil {
		return cleanup(err)
	}
	if err := os.Rename(tmp, kpath); err != nil {
		return cleanup(err)
	}
	if err := syncDir(dir); err != nil {
		return cleanup(err)
	}
	opts.StoreOptions.MustExist = true
	v, err := Open(ctx, dir, opts)
	if err != nil {
		return cleanup(err)
	}
	return info, v.Close()
}
