package core

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// AccessReport is everything Custody holds about a person (GDPR Art. 15/20),
// decrypted and machine-readable: identifiers, traits and their history,
// consent state and history, merges and unmerges, every event, and every
// export that included them.
type AccessReport struct {
	GeneratedAt time.Time        `json:"generated_at"`
	Person      *ProfileView     `json:"person"`
	Exports     []ledgerEntry    `json:"exports"`
	Memberships []MembershipView `json:"segment_memberships"`
}

// Access builds the access report of the person holding id, and records
// that it was made on the audit log.
func (c *CDP) Access(ctx context.Context, id identity.Identifier) (AccessReport, error) {
	rep := AccessReport{GeneratedAt: c.now().UTC(), Exports: []ledgerEntry{}}
	err := c.withPerson(ctx, id, func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error {
		var err error
		if rep.Person, err = c.person(ctx, tx, root, ShowOptions{}); err != nil {
			return err
		}
		if rep.Exports, err = c.exportsOf(ctx, tx, members); err != nil {
			return err
		}
		rep.Memberships, err = c.membershipsOf(ctx, tx, members)
		return err
	})
	if err != nil {
		return rep, err
	}
	return rep, c.record(ctx, "privacy.access", map[string]any{"person": rep.Person.ID, "profiles": len(rep.Person.Profiles),
		"events": rep.Person.EventCount, "exports": len(rep.Exports)})
}

func (c *CDP) exportsOf(ctx context.Context, tx *store.Txn, members []uuid.UUID) ([]ledgerEntry, error) {
	out := []ledgerEntry{}
	for _, m := range members {
		err := tx.Scan(store.PIDPrefix(store.PrefixExport, m), store.ScanOptions{}, func(k, v []byte) error {
			plain, err := c.vault.Unseal(ctx, m, k, v)
			if err != nil {
				return fmt.Errorf("export ledger: %w", err)
			}
			var e ledgerEntry
			if err := json.Unmarshal(plain, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// DeletionCertificate is the proof of an erasure, recorded on the audit
// log: no personal data, only what a DPO needs to show it was done.
type DeletionCertificate struct {
	Request          string         `json:"request"`
	At               time.Time      `json:"at"`
	Person           uuid.UUID      `json:"person"`
	Profiles         []uuid.UUID    `json:"profiles"`
	IdentifierHashes []string       `json:"identifier_hashes"` // keyed hashes: the suppression list
	Records          map[string]int `json:"records"`           // erased keys per prefix
	DEKsShredded     []string       `json:"deks_shredded"`     // fingerprints of the destroyed wrapped keys
	KEKRetired       []uint32       `json:"kek_epochs_retired"`
	// Recipients are the destinations that received the person's data and
	// must be told (GDPR Art. 17(2), 19).
	Recipients []ledgerEntry `json:"recipients"`

	suppressedKeys [][]byte // identifier index keys put on the suppression list
}

// Delete erases the person holding id everywhere: every record of every
// profile of their cluster under every person-scoped prefix, references to
// them from other people's records, their data keys (shredded), and then
// rotates the key-encryption key so that older copies of those keys (old
// table files, backups of the vault's key store) can no longer be
// unwrapped. Their identifiers go on the suppression list so that replayed
// or late events for any of them are dropped. The certificate goes on the
// audit log.
func (c *CDP) Delete(ctx context.Context, id identity.Identifier) (DeletionCertificate, error) {
	v, err := c.rules.Normalize(id.Type, id.Value)
	if err != nil {
		return DeletionCertificate{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	lookup := store.IdentifierKey(string(id.Type), c.hasher.Sum(string(id.Type), v))
	cert := DeletionCertificate{Request: uuid.Must(uuid.NewV7()).String(), At: c.now().UTC(), Records: map[string]int{}}
	err = c.runOp(ctx, func(tx *store.Txn) error {
		raw, err := tx.Get(lookup)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lookup by %s: %w", id.Type, ErrProfileNotFound)
		}
		if err != nil {
			return err
		}
		pid, err := uuid.FromBytes(raw)
		if err != nil {
			return err
		}
		root, members, err := c.members(tx, pid)
		if err != nil {
			return err
		}
		cert.Person, cert.Profiles = root, members
		if cert.Recipients, err = c.exportsOf(ctx, tx, members); err != nil {
			return err
		}
		return c.erase(ctx, tx, root, members, &cert)
	})
	if err != nil {
		return cert, err
	}
	c.aggs.drop(cert.Profiles...) // the in-memory digests of their events
	shred, err := c.vault.Shred(ctx, cert.Profiles)
	if err != nil {
		return cert, fmt.Errorf("shred data keys: %w", err)
	}
	cert.DEKsShredded = shred.Fingerprints
	rot, err := c.vault.Rotate(ctx)
	if err != nil {
		return cert, fmt.Errorf("rotate key-encryption key: %w", err)
	}
	cert.KEKRetired = rot.Retired
	return cert, c.record(ctx, "privacy.delete", cert)
}

// erase deletes every record of the cluster and every reference to it, and
// puts its identifiers on the suppression list. It runs on the committer.
func (c *CDP) erase(ctx context.Context, tx *store.Txn, root uuid.UUID, members []uuid.UUID, cert *DeletionCertificate) error {
	gone := map[uuid.UUID]bool{}
	for _, m := range members {
		gone[m] = true
	}
	del := func(prefix store.Prefix, k []byte) error {
		cert.Records[string(prefix)]++
		return tx.Delete(k)
	}
	scanDel := func(prefix store.Prefix, pid uuid.UUID) error {
		var keys [][]byte
		if err := tx.Scan(store.PIDPrefix(prefix, pid), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := del(prefix, k); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range members {
		rec, err := c.getRecord(ctx, tx, m)
		if err != nil {
			return err
		}
		// The identifier index entry, and the suppression of the identifier.
		ik := store.IdentifierKey(string(rec.Type), c.hasher.Sum(string(rec.Type), rec.Value))
		if err := del(store.PrefixIdentifier, ik); err != nil {
			return err
		}
		sup, _ := json.Marshal(map[string]any{"request": cert.Request, "at": cert.At})
		if err := tx.Set(store.SuppressedKey(ik[len(store.PrefixIdentifier):]), sup); err != nil {
			return err
		}
		c.suppressed[string(ik)] = true
		cert.suppressedKeys = append(cert.suppressedKeys, ik)
		c.ids.remove(ik)
		cert.IdentifierHashes = append(cert.IdentifierHashes, hex.EncodeToString(ik[len(ik)-32:]))
		// Observations shared with people outside the cluster: drop them
		// there too, so no record elsewhere points at the erased profiles.
		list, err := tx.Get(store.ObsListKey(m))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		for i := 0; i+16 <= len(list); i += 16 {
			h := list[i : i+16]
			rv, err := tx.Get(store.ObsKeyFor(m, h))
			if err != nil {
				continue
			}
			for j := 24; j+16 <= len(rv); j += 16 {
				other := uuid.UUID(rv[j : j+16])
				if gone[other] {
					continue
				}
				if err := tx.Delete(store.ObsKeyFor(other, h)); err != nil {
					return err
				}
				ol, err := tx.Get(store.ObsListKey(other))
				if err != nil {
					continue
				}
				var kept []byte
				for x := 0; x+16 <= len(ol); x += 16 {
					if !bytes.Equal(ol[x:x+16], h) {
						kept = append(kept, ol[x:x+16]...)
					}
				}
				if err := tx.Set(store.ObsListKey(other), kept); err != nil {
					return err
				}
			}
			if err := del(store.PrefixObs, store.ObsKeyFor(m, h)); err != nil {
				return err
			}
		}
		// Separations: the other side's mirror record.
		for _, o := range c.seps[m] {
			if !gone[o] {
				if err := tx.Delete(store.SeparationKey(o, m)); err != nil {
					return err
				}
				c.seps[o] = removePID(c.seps[o], m)
			}
		}
		delete(c.seps, m)
		for _, p := range []store.Prefix{store.PrefixEvent, store.PrefixConsent, store.PrefixExport, store.PrefixSeparation} {
			if err := scanDel(p, m); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{store.ProfileKey(m), store.MemberKey(m), store.ObsListKey(m), store.JournalKey(m)} {
			if err := del(store.Prefix(k[:2]), k); err != nil {
				return err
			}
		}
	}
	// Segment memberships, kept under each segment by person.
	var segs []string
	if err := tx.Scan([]byte(store.PrefixSegmentDef), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
		segs = append(segs, string(k[len(store.PrefixSegmentDef):]))
		return nil
	}); err != nil {
		return err
	}
	for _, seg := range segs {
		for _, m := range members {
			k := store.MembershipKey(seg, m)
			if ok, err := tx.Has(k); err != nil {
				return err
			} else if ok {
				if err := del(store.PrefixMembership, k); err != nil {
					return err
				}
			}
		}
	}
	return del(store.PrefixCluster, store.ClusterKey(root))
}

func removePID(l []uuid.UUID, p uuid.UUID) []uuid.UUID {
	out := l[:0]
	for _, x := range l {
		if x != p {
			out = append(out, x)
		}
	}
	return out
}

// loadSuppressed reads the suppression list into memory (committer-owned).
func (c *CDP) loadSuppressed(ctx context.Context) error {
	c.suppressed = map[string]bool{}
	return c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixSuppressed), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			c.suppressed[string(store.PrefixIdentifier)+string(k[len(store.PrefixSuppressed):])] = true
			return nil
		})
	})
}
