package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
)

// Backup writes an encrypted snapshot of the data store to w (see
// docs/operations.md): every live record at one point in time, encrypted
// as a whole under a subkey of the master key, because Badger's encryption
// at rest covers its files, not a stream read out of it. The store keeps
// serving meanwhile. The key vault is not in it: back it up separately
// with BackupVault, and keep the two apart.
func (c *CDP) Backup(ctx context.Context, w io.Writer) (store.BackupInfo, error) {
	key := c.master.Subkey(keys.PurposeBackup, 32)
	defer clear(key)
	info, err := c.store.Backup(ctx, w, store.BackupOptions{Key: key, Kind: "store", Now: c.now})
	if err != nil {
		return info, err
	}
	return info, c.record(ctx, "backup.store", map[string]any{"records": info.Records, "by_prefix": info.ByPrefix, "bytes": info.Bytes})
}

// BackupVault writes an encrypted copy of the key vault to w.
func (c *CDP) BackupVault(ctx context.Context, w io.Writer) (store.BackupInfo, error) {
	info, err := c.vault.Backup(ctx, w, c.master)
	if err != nil {
		return info, err
	}
	return info, c.record(ctx, "backup.vault", map[string]any{"records": info.Records, "bytes": info.Bytes})
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Force replaces a data store that holds data.
	Force bool
}

// RestoreReport says what a restore did. Counts only.
type RestoreReport struct {
	Backup store.BackupInfo `json:"backup"`
	// Restored counts the records written, per prefix.
	Restored map[string]int64 `json:"restored"`
	// Unopenable counts the records of the backup that were dropped
	// because they belong to (or point at) a profile whose data key is
	// shredded in the current vault: people deleted after the backup was
	// taken. They could never be opened again.
	Unopenable map[string]int64 `json:"unopenable"`
	// DeletedProfiles is how many distinct shredded profiles the backup held.
	DeletedProfiles int `json:"deleted_profiles"`
	// NoKey counts records kept although the vault has no key at all for
	// their profile (a vault older than the data): they cannot be opened
	// until the matching vault is restored.
	NoKey map[string]int64 `json:"no_key,omitempty"`
	// Reshredded is how many data keys were shredded again because the
	// audit log certifies their deletion but the vault still held them (a
	// vault restored from a backup older than the deletion).
	Reshredded int `json:"reshredded"`
	// KeptFromReplaced counts the records taken from the store being
	// replaced rather than from the backup: the audit log, the
	// suppression list and the privacy requests, which a restore never
	// rolls back.
	KeptFromReplaced map[string]int64 `json:"kept_from_replaced,omitempty"`
	// SuppressionsAdded counts identifiers put on the suppression list
	// because their index entry pointed at a deleted profile (only when
	// there was no current store whose suppression list could be kept).
	SuppressionsAdded int `json:"suppressions_added"`
	// Audit says how the audit log continues: "appended" (the chain was
	// kept from the replaced store) or "reanchored" (the store's chain is
	// older than the sealed head; an audit.reanchor entry records it).
	Audit         string                `json:"audit"`
	Reanchor      *audit.ReanchorReport `json:"reanchor,omitempty"`
	ReplacedStore bool                  `json:"replaced_store"`
	Duration      time.Duration         `json:"duration_ns"`
}

// carried are the prefixes a restore takes from the store it replaces
// (when there is one) instead of from the backup: rolling them back would
// lose deletion certificates, suppressions or requests made since.
var carried = []store.Prefix{store.PrefixAudit, store.PrefixSuppressed, store.PrefixRequest}

func isCarried(k []byte) bool {
	p := store.PrefixOf(k)
	for _, c := range carried {
		if p == string(c) {
			return true
		}
	}
	return false
}

// Restore replaces the data store of cfg with the backup read from r
// (seekable: it may be read twice). The data directory must not be in use
// (`custody serve` stopped). The key vault is not touched except to
// re-shred keys whose deletion the audit log certifies: restoring never
// brings a deleted person back. Records of people deleted after the backup
// was taken cannot be opened (their data keys are shredded); they are
// dropped, with every index entry and reference pointing at them, and
// counted. The suppression list, the privacy requests and the audit log of
// the replaced store are kept; without one, the identifiers of deleted
// people found in the backup are suppressed and the audit log is
// reanchored with an entry recording the restore.
func Restore(ctx context.Context, cfg Config, opts Options, r io.ReadSeeker, ro RestoreOptions) (RestoreReport, error) {
	opts.defaults()
	start := time.Now()
	rep := RestoreReport{Restored: map[string]int64{}, Unopenable: map[string]int64{}, NoKey: map[string]int64{}, KeptFromReplaced: map[string]int64{}}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	master, err := loadMaster(cfg)
	if err != nil {
		return rep, err
	}
	if _, err := os.Stat(filepath.Join(cfg.vaultDir(), keys.KeyringFile)); err != nil {
		return rep, ErrNoVault
	}
	vo := keys.DefaultOptions()
	vo.Master, vo.Logger, vo.Now = master, opts.Logger, opts.Now
	vo.StoreOptions.MustExist = true
	vault, err := keys.Open(ctx, cfg.vaultDir(), vo)
	if errors.Is(err, store.ErrLocked) {
		return rep, fmt.Errorf("restore: %w (stop `custody serve` first: a restore replaces the whole data store; backups can be taken while it runs)", err)
	}
	if err != nil {
		return rep, fmt.Errorf("restore: open key vault: %w", err)
	}
	defer vault.Close()

	so := cfg.storeOptions(master, opts.Logger)
	dir := cfg.storeDir()
	var current *store.Store
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err == nil {
		cur := so
		cur.MustExist = true
		current, err = store.Open(ctx, dir, cur)
		if err != nil {
			return rep, fmt.Errorf("restore: open the current data store: %w", err)
		}
		defer func() {
			if current != nil {
				_ = current.Close()
			}
		}()
		empty, err := current.Empty(ctx)
		if err != nil {
			return rep, err
		}
		if !empty && !ro.Force {
			return rep, ErrRestoreNotEmpty
		}
		rep.ReplacedStore = true
	}
	backupKey := master.Subkey(keys.PurposeBackup, 32)
	defer clear(backupKey)

	// 1. Every deletion certified on the audit log that will be kept
	// (the replaced store's, else the backup's) is re-applied to the vault.
	deleted := map[uuid.UUID]bool{}
	collect := func(k, v []byte) {
		if store.PrefixOf(k) != string(store.PrefixAudit) {
			return
		}
		e, err := audit.DecodeEntry(v)
		if err != nil || e.Kind != "privacy.delete" {
			return
		}
		var cert struct {
			Profiles []uuid.UUID `json:"profiles"`
		}
		if json.Unmarshal(e.Data, &cert) == nil {
			for _, p := range cert.Profiles {
				deleted[p] = true
			}
		}
	}
	if current != nil {
		err = current.View(ctx, func(tx *store.Txn) error {
			return tx.Scan([]byte(store.PrefixAudit), store.ScanOptions{}, func(k, v []byte) error { collect(k, v); return nil })
		})
	} else {
		rep.Backup, err = store.ReadBackup(ctx, r, backupKey, store.BackupVisitor{
			Record: func(k, v []byte, _ uint64) error { collect(k, v); return nil }})
		if err == nil {
			_, err = r.Seek(0, io.SeekStart)
		}
	}
	if err != nil {
		return rep, fmt.Errorf("restore: read deletion certificates: %w", err)
	}
	state := keyStates{vault: vault, known: map[uuid.UUID]keyState{}}
	var live []uuid.UUID
	for p := range deleted {
		if st, err := state.of(ctx, p); err != nil {
			return rep, err
		} else if st == keyLive {
			live = append(live, p)
		}
	}
	if len(live) > 0 {
		if _, err := vault.Shred(ctx, live); err != nil {
			return rep, fmt.Errorf("restore: re-shred certified deletions: %w", err)
		}
		if _, err := vault.Rotate(ctx); err != nil {
			return rep, fmt.Errorf("restore: rotate after re-shredding: %w", err)
		}
		rep.Reshredded = len(live)
		state.known = map[uuid.UUID]keyState{}
	}

	// 2. Load the backup into a fresh store next to the current one.
	tmp := dir + ".restoring"
	if err := os.RemoveAll(tmp); err != nil {
		return rep, err
	}
	fresh, err := store.Open(ctx, tmp, so)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = fresh.Close()
			_ = os.RemoveAll(tmp)
		}
	}()
	loader := fresh.NewLoader()
	var suppress [][]byte
	legacy := false
	deletedSeen := map[uuid.UUID]bool{}
	// shredded looks at the people a record names: it counts the record
	// under NoKey when its first one has no key, and reports whether one
	// was deleted since (the record is then Unopenable, and they are
	// remembered in deletedSeen).
	shredded := func(prefix string, pids []uuid.UUID) (bool, error) {
		for i, p := range pids {
			st, err := state.of(ctx, p)
			if err != nil {
				return false, err
			}
			switch st {
			case keyShredded:
				rep.Unopenable[prefix]++
				deletedSeen[p] = true
				return true, nil
			case keyMissing:
				if i == 0 {
					rep.NoKey[prefix]++
				}
			}
		}
		return false, nil
	}
	rep.Backup, err = store.ReadBackup(ctx, r, backupKey, store.BackupVisitor{Record: func(k, v []byte, exp uint64) error {
		prefix := store.PrefixOf(k)
		if current != nil && isCarried(k) {
			return nil
		}
		if store.Prefix(prefix) == store.PrefixObsLegacy {
			// Loaded as it is and converted below, without what names
			// people deleted since; counted here.
			legacy = true
			gone, err := shredded(prefix, legacyObsPIDs(k, v))
			if err != nil {
				return err
			}
			if !gone {
				rep.Restored[prefix]++
			}
			return loader.Set(k, v, exp)
		}
		if rule := ruleFor(k); rule != nil && rule.prefix == store.PrefixObs {
			// A list of a person still here may name someone deleted
			// since (a refused merge linked them): keep the rest.
			if owner := pidAt(k, len(store.PrefixObs)); len(owner) == 1 {
				if gone, err := shredded(prefix, owner); err != nil || gone {
					return err
				}
			}
			var ferr error
			kept, dropped, err := filterObs(v, func(e obsEntry) bool {
				for i := range e.count() {
					st, err := state.of(ctx, e.node(i))
					if err != nil {
						ferr = err
					}
					if st == keyShredded {
						deletedSeen[e.node(i)] = true
						return true
					}
				}
				return false
			})
			if err = errors.Join(err, ferr); err != nil {
				return err
			}
			if dropped > 0 {
				rep.Unopenable[prefix]++
				if len(kept) == 0 {
					return nil
				}
				v = kept
			}
		} else if rule != nil && rule.personal() {
			gone, err := shredded(prefix, rule.pids(k, v))
			if err != nil {
				return err
			}
			if gone {
				if rule.prefix == store.PrefixIdentifier {
					suppress = append(suppress, k)
				}
				return nil
			}
		}
		rep.Restored[prefix]++
		return loader.Set(k, v, exp)
	}})
	if err == nil && rep.Backup.Header.Kind != "store" {
		err = fmt.Errorf("this is a backup of the %s, not of the data store (use --vault)", rep.Backup.Header.Kind)
	}
	if err != nil {
		loader.Cancel()
		return rep, fmt.Errorf("restore: %w", err)
	}
	rep.DeletedProfiles = len(deletedSeen)
	if current != nil {
		for _, p := range carried {
			err := current.View(ctx, func(tx *store.Txn) error {
				return tx.Scan([]byte(p), store.ScanOptions{}, func(k, v []byte) error {
					rep.KeptFromReplaced[string(p)]++
					return loader.Set(k, v, 0)
				})
			})
			if err != nil {
				loader.Cancel()
				return rep, fmt.Errorf("restore: keep %s from the replaced store: %w", p, err)
			}
		}
	} else {
		at := opts.Now().UTC()
		for _, ik := range suppress {
			if err := loader.Set(store.SuppressedKey(ik[len(store.PrefixIdentifier):]), suppressionValue("restore", at), 0); err != nil {
				loader.Cancel()
				return rep, err
			}
			rep.SuppressionsAdded++
		}
	}
	if err := loader.Flush(); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if legacy {
		// A backup of schema version 1: its observations become o/ lists
		// here, without the lists and entries of people deleted since.
		if _, err := upgradeObservations(ctx, fresh, func(p uuid.UUID) (bool, error) {
			st, err := state.of(ctx, p)
			return st == keyShredded, err
		}, upgradeKeysPerTxn); err != nil {
			return rep, fmt.Errorf("restore: %w", err)
		}
		if err := fresh.SetSchema(ctx, store.SchemaVersion); err != nil {
			return rep, fmt.Errorf("restore: %w", err)
		}
	}
	if err := fresh.Close(); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}

	// 3. Swap the stores. A crash in between leaves the new store in
	// store.restoring: run the restore again.
	if current != nil {
		if err := current.Close(); err != nil {
			return rep, err
		}
		current = nil
		old := dir + ".replaced"
		if err := os.RemoveAll(old); err != nil {
			return rep, err
		}
		if err := os.Rename(dir, old); err != nil {
			return rep, err
		}
		if err := os.Rename(tmp, dir); err != nil {
			return rep, err
		}
		if err := os.RemoveAll(old); err != nil {
			return rep, err
		}
	} else if err := os.Rename(tmp, dir); err != nil {
		return rep, err
	}
	ok = true

	// 4. The audit log: continue it, or reanchor it explicitly.
	st, err := store.Open(ctx, dir, so)
	if err != nil {
		return rep, err
	}
	defer st.Close()
	summary := map[string]any{"backup_created": rep.Backup.Header.Created, "restored": rep.Restored, "unopenable": rep.Unopenable,
		"deleted_profiles": rep.DeletedProfiles, "reshredded": rep.Reshredded, "suppressions_added": rep.SuppressionsAdded}
	ao := audit.Options{Master: master, HeadDir: cfg.vaultDir(), Now: opts.Now, Logger: opts.Logger}
	lg, err := audit.Open(ctx, st, ao)
	switch {
	case errors.Is(err, audit.ErrHeadMismatch):
		summary["reason"] = "restore of a data backup"
		ra, err := audit.Reanchor(ctx, st, ao, "owner", summary)
		if err != nil {
			return rep, err
		}
		rep.Audit, rep.Reanchor = "reanchored", &ra
	case err != nil:
		return rep, fmt.Errorf("restore: audit log: %w", err)
	default:
		_, aerr := lg.Append(ctx, "backup.restore", "owner", summary)
		if err := errors.Join(aerr, lg.Close()); err != nil {
			return rep, err
		}
		rep.Audit = "appended"
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

type keyState int

const (
	keyLive keyState = iota
	keyShredded
	keyMissing
)

// keyStates asks the vault, once per profile, whether its data key exists.
type keyStates struct {
	vault *keys.Vault
	known map[uuid.UUID]keyState
}

func (s *keyStates) of(ctx context.Context, pid uuid.UUID) (keyState, error) {
	if st, ok := s.known[pid]; ok {
		return st, nil
	}
	// Unseal looks the key up before it looks at the value.
	_, err := s.vault.Unseal(ctx, pid, nil, nil)
	var st keyState
	switch {
	case errors.Is(err, keys.ErrKeyShredded):
		st = keyShredded
	case errors.Is(err, keys.ErrDEKNotFound):
		st = keyMissing
	case errors.Is(err, keys.ErrUnsealFailed):
		st = keyLive
	case err != nil:
		return 0, fmt.Errorf("restore: data key of a profile: %w", err)
	}
	s.known[pid] = st
	return st, nil
}

// InspectBackup authenticates and reads a backup file made under cfg's
// master key, without restoring it, and reports what it holds.
func InspectBackup(ctx context.Context, cfg Config, r io.Reader) (store.BackupInfo, error) {
	master, err := loadMaster(cfg)
	if err != nil {
		return store.BackupInfo{}, err
	}
	key := master.Subkey(keys.PurposeBackup, 32)
	defer clear(key)
	return store.ReadBackup(ctx, r, key, store.BackupVisitor{})
}

// RestoreVault recreates the key vault of cfg from a vault backup. The
// vault directory must not hold a vault: restoring over one would bring
// back keys shredded since the backup (keys.ErrVaultExists).
func RestoreVault(ctx context.Context, cfg Config, opts Options, r io.Reader) (store.BackupInfo, error) {
	opts.defaults()
	if err := cfg.Validate(); err != nil {
		return store.BackupInfo{}, err
	}
	master, err := loadMaster(cfg)
	if err != nil {
		return store.BackupInfo{}, err
	}
	vo := keys.DefaultOptions()
	vo.Master, vo.Logger, vo.Now = master, opts.Logger, opts.Now
	return keys.RestoreVault(ctx, cfg.vaultDir(), r, vo)
}
