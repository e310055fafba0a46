package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// Completeness by construction (DESIGN §7): every keyspace prefix of
// core/store has exactly one rule here saying how the privacy machinery
// treats it. A prefix that holds records about a person says how to find
// them (find), which profile ids a record names (pids: restore drops
// records naming a shredded profile), and where the access report shows
// them (report, export). A prefix that holds nothing about a person says
// why. Access (Access), deletion (erase) and restore (Restore) walk this
// table, never their own lists; TestKeyspaceRegistry fails for a prefix
// without a rule, and the completeness test checks every personal rule
// finds the test person's records before the deletion and none after.

// personScope is the person a request is about: their cluster and the
// decrypted node records of its members (read before anything is erased).
type personScope struct {
	root    uuid.UUID
	members []uuid.UUID
	gone    map[uuid.UUID]bool
	records map[uuid.UUID]*nodeRecord
}

// prefixRule is how one prefix is found, exported and erased.
type prefixRule struct {
	prefix store.Prefix
	// why a prefix holds nothing about a person (non-personal rules only).
	why string
	// pids returns the profile ids a record is about or refers to.
	pids func(key, val []byte) []uuid.UUID
	// sealed: values are sealed with the data key of pids(key)[0], the
	// storage key as associated data.
	sealed bool
	// find returns the keys to erase for the person: their own records and
	// records of other people that point at them (for o/, an entry of
	// another person's list as o/<other>/<hash>, which erase drops from
	// that list; the certificate counts entries).
	find func(c *CDP, ctx context.Context, tx *store.Txn, p *personScope) ([][]byte, error)
	// erase, if set, replaces the plain deletion of the found keys (for
	// rules that must also fix other people's records or in-memory state).
	erase func(c *CDP, tx *store.Txn, p *personScope, keys [][]byte, e *eraseState) error
	// report names the access report field that shows these records.
	report string
	// export fills that field; nil when another rule's export shows them
	// (that rule's prefix is named in report, after "via ").
	export func(c *CDP, ctx context.Context, tx *store.Txn, p *personScope, rep *AccessReport) error
}

func (r *prefixRule) personal() bool { return r.find != nil }

// eraseState collects what erase changes outside the store, applied by the
// committer only once every prefix is erased.
type eraseState struct {
	cert       *DeletionCertificate
	suppress   bool
	suppressed [][]byte // identifier index keys
	dropIDs    [][]byte
	sepsGone   map[uuid.UUID][]uuid.UUID // pid -> other side, to forget
}

// pidAt reads a profile id at off in b.
func pidAt(b []byte, off int) []uuid.UUID {
	if len(b) < off+16 {
		return nil
	}
	return []uuid.UUID{uuid.UUID(b[off : off+16])}
}

func keyPID(p store.Prefix) func(k, _ []byte) []uuid.UUID {
	return func(k, _ []byte) []uuid.UUID { return pidAt(k, len(p)) }
}

// scanMembers finds every key under <prefix><pid>/ for each member.
func scanMembers(prefix store.Prefix) func(*CDP, context.Context, *store.Txn, *personScope) ([][]byte, error) {
	return func(_ *CDP, _ context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
		var keys [][]byte
		for _, m := range p.members {
			if err := tx.Scan(store.PIDPrefix(prefix, m), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
				keys = append(keys, k)
				return nil
			}); err != nil {
				return nil, err
			}
		}
		return keys, nil
	}
}

// pointKeys finds the keys key(m) that exist, for each member.
func pointKeys(key func(uuid.UUID) []byte) func(*CDP, context.Context, *store.Txn, *personScope) ([][]byte, error) {
	return func(_ *CDP, _ context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
		var keys [][]byte
		for _, m := range p.members {
			k := key(m)
			ok, err := tx.Has(k)
			if err != nil {
				return nil, err
			}
			if ok {
				keys = append(keys, k)
			}
		}
		return keys, nil
	}
}

// keyspace is the registry. Its order is the order of erasure; the
// identifier index comes first so that a person is unreachable as soon as
// the transaction commits.
var keyspace = []prefixRule{
	{prefix: store.PrefixMeta, why: "store metadata: schema version, creation time"},
	{prefix: store.PrefixDedup, why: "messageId records: keyed hashes of the ids of one committed group and no profile id; they expire after the dedup window"},
	{prefix: store.PrefixAPIKey, why: "API key records: hashed keys, role, name of the key"},
	{prefix: store.PrefixAudit, why: "audit log: counts, hashes and profile ids only (no personal data); kept as the proof of what was done"},
	{prefix: store.PrefixSegmentDef, why: "segment definitions"},
	{prefix: store.PrefixSizes, why: "segment sizes over time: counts only"},
	{prefix: store.PrefixFlow, why: "segment flow per day: counts of people who entered, left and moved between segments; no profile id (core/flow.go)"},
	{prefix: store.PrefixSegmentUse, why: "segment use: when a segment was last applied, evaluated, exported or served; no person"},
	{prefix: store.PrefixSuppressed, why: "suppression list: keyed hashes of deleted people's identifiers; kept because it is what honours the deletion (docs/privacy.md)"},
	{prefix: store.PrefixRequest, why: "privacy requests: keyed identifier hash and status history; kept as the record of the obligation (shown in the report as requests)",
		report: "requests", export: exportRequests},
	{
		prefix: store.PrefixIdentifier,
		pids:   func(_, v []byte) []uuid.UUID { return pidAt(v, 0) },
		find: func(c *CDP, _ context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
			var keys [][]byte
			for _, m := range p.members {
				rec := p.records[m]
				k := store.IdentifierKey(string(rec.Type), c.hasher.Sum(string(rec.Type), rec.Value))
				if v, err := tx.Get(k); err == nil && bytes.Equal(v, m[:]) {
					keys = append(keys, k)
				} else if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
			}
			return keys, nil
		},
		erase: func(c *CDP, tx *store.Txn, p *personScope, keys [][]byte, e *eraseState) error {
			for _, ik := range keys {
				if err := tx.Delete(ik); err != nil {
					return err
				}
				e.dropIDs = append(e.dropIDs, ik)
			}
			// Every identifier of the cluster is suppressed, also one whose
			// index entry was taken over meanwhile.
			for _, m := range p.members {
				rec := p.records[m]
				ik := store.IdentifierKey(string(rec.Type), c.hasher.Sum(string(rec.Type), rec.Value))
				e.cert.IdentifierHashes = append(e.cert.IdentifierHashes, fmt.Sprintf("%x", ik[len(ik)-32:]))
				if e.suppress {
					e.cert.Suppressed = append(e.cert.Suppressed, string(ik[len(store.PrefixIdentifier):len(ik)-32])+fmt.Sprintf("%x", ik[len(ik)-32:]))
					if err := tx.Set(store.SuppressedKey(ik[len(store.PrefixIdentifier):]), suppressionValue(e.cert.Request, e.cert.At)); err != nil {
						return err
					}
					e.suppressed = append(e.suppressed, ik)
				}
			}
			return nil
		},
		report: "person.identifiers via p/",
	},
	{
		prefix: store.PrefixProfile, pids: keyPID(store.PrefixProfile), sealed: true, find: pointKeys(store.ProfileKey),
		report: "person", export: exportPerson,
	},
	{prefix: store.PrefixEvent, pids: keyPID(store.PrefixEvent), sealed: true, find: scanMembers(store.PrefixEvent), report: "person.events via p/"},
	{prefix: store.PrefixConsent, pids: keyPID(store.PrefixConsent), sealed: true, find: scanMembers(store.PrefixConsent), report: "person.consent.history via p/"},
	{prefix: store.PrefixMember, pids: keyPID(store.PrefixMember), find: pointKeys(store.MemberKey), report: "person.profiles via p/"},
	{
		prefix: store.PrefixCluster, pids: keyPID(store.PrefixCluster),
		find: func(_ *CDP, _ context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
			k := store.ClusterKey(p.root)
			ok, err := tx.Has(k)
			if !ok || err != nil {
				return nil, err
			}
			return [][]byte{k}, nil
		},
		report: "person.profiles via p/",
	},
	{prefix: store.PrefixJournal, pids: keyPID(store.PrefixJournal), find: pointKeys(store.JournalKey), report: "person.merges via p/"},
	{
		prefix: store.PrefixObs,
		pids:   obsPIDs,
		// A member's list is erased; an observation that also names
		// people outside the cluster (a refused merge links them) is
		// dropped from their lists too, found as o/<other>/<hash>.
		find: func(_ *CDP, _ context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
			var keys [][]byte
			seen := map[string]bool{}
			for _, m := range p.members {
				list, err := tx.Get(store.ObsListKey(m))
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				keys = append(keys, store.ObsListKey(m))
				if err := walkObs(list, func(e obsEntry) bool {
					for i := range e.count() {
						if other := e.node(i); !p.gone[other] {
							k := append(store.PIDPrefix(store.PrefixObs, other), e.hash...)
							if !seen[string(k)] {
								seen[string(k)] = true
								keys = append(keys, k)
							}
						}
					}
					return true
				}); err != nil {
					return nil, fmt.Errorf("observations of %s: %w", m, err)
				}
			}
			return keys, nil
		},
		erase: func(_ *CDP, tx *store.Txn, p *personScope, keys [][]byte, _ *eraseState) error {
			drop := map[uuid.UUID][][]byte{}
			for _, k := range keys {
				pid := uuid.UUID(k[len(store.PrefixObs) : len(store.PrefixObs)+16])
				if len(k) == len(store.PrefixObs)+16 {
					if err := tx.Delete(k); err != nil {
						return err
					}
					continue
				}
				drop[pid] = append(drop[pid], k[len(k)-16:])
			}
			for o, hs := range drop {
				if err := dropFromObsList(tx, o, hs); err != nil {
					return err
				}
			}
			return nil
		},
		report: "person.identifiers and person.merges via p/ (observations are how identifiers were linked)",
	},
	{
		prefix: store.PrefixSeparation, sealed: true,
		pids: func(k, _ []byte) []uuid.UUID {
			return append(pidAt(k, len(store.PrefixSeparation)), pidAt(k, len(store.PrefixSeparation)+17)...)
		},
		find: func(c *CDP, ctx context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
			keys, err := scanMembers(store.PrefixSeparation)(c, ctx, tx, p)
			if err != nil {
				return nil, err
			}
			for _, m := range p.members {
				for _, o := range c.seps[m] {
					if !p.gone[o] {
						keys = append(keys, store.SeparationKey(o, m))
					}
				}
			}
			return keys, nil
		},
		erase: func(_ *CDP, tx *store.Txn, _ *personScope, keys [][]byte, e *eraseState) error {
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
				a := uuid.UUID(k[len(store.PrefixSeparation) : len(store.PrefixSeparation)+16])
				e.sepsGone[a] = append(e.sepsGone[a], uuid.UUID(k[len(k)-16:]))
			}
			return nil
		},
		report: "person.unmerges via p/",
	},
	{
		prefix: store.PrefixExport, pids: keyPID(store.PrefixExport), sealed: true, find: scanMembers(store.PrefixExport),
		report: "exports", export: func(c *CDP, ctx context.Context, tx *store.Txn, p *personScope, rep *AccessReport) error {
			var err error
			rep.Exports, err = c.exportsOf(ctx, tx, p.members)
			return err
		},
	},
	{
		prefix: store.PrefixMembership,
		pids:   func(k, _ []byte) []uuid.UUID { return pidAt(k, len(k)-16) },
		find: func(_ *CDP, _ context.Context, tx *store.Txn, p *personScope) ([][]byte, error) {
			var segs []string
			if err := tx.Scan([]byte(store.PrefixSegmentDef), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
				segs = append(segs, string(k[len(store.PrefixSegmentDef):]))
				return nil
			}); err != nil {
				return nil, err
			}
			var keys [][]byte
			for _, seg := range segs {
				for _, m := range p.members {
					k := store.MembershipKey(seg, m)
					if ok, err := tx.Has(k); err != nil {
						return nil, err
					} else if ok {
						keys = append(keys, k)
					}
				}
			}
			return keys, nil
		},
		report: "segment_memberships", export: func(c *CDP, ctx context.Context, tx *store.Txn, p *personScope, rep *AccessReport) error {
			var err error
			rep.Memberships, err = c.membershipsOf(ctx, tx, p.members)
			return err
		},
	},
}

// ruleFor returns the rule of the prefix key starts with (the longest
// matching prefix), or nil.
func ruleFor(key []byte) *prefixRule {
	var best *prefixRule
	for i := range keyspace {
		r := &keyspace[i]
		if bytes.HasPrefix(key, []byte(r.prefix)) && (best == nil || len(r.prefix) > len(best.prefix)) {
			best = r
		}
	}
	return best
}

// dropFromObsList removes the observations with the given hashes from
// pid's list (deleting the list when nothing is left).
func dropFromObsList(tx *store.Txn, pid uuid.UUID, hashes [][]byte) error {
	list, err := tx.Get(store.ObsListKey(pid))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	kept, _, err := filterObs(list, func(e obsEntry) bool {
		return slices.ContainsFunc(hashes, func(h []byte) bool { return bytes.Equal(e.hash, h) })
	})
	if err != nil {
		return fmt.Errorf("observations of %s: %w", pid, err)
	}
	if len(kept) == 0 {
		return tx.Delete(store.ObsListKey(pid))
	}
	return tx.Set(store.ObsListKey(pid), kept)
}

func exportPerson(c *CDP, ctx context.Context, tx *store.Txn, p *personScope, rep *AccessReport) error {
	var err error
	rep.Person, err = c.person(ctx, tx, p.root, ShowOptions{})
	return err
}

// exportRequests lists the earlier privacy requests made with any of the
// person's identifiers (requests keep the keyed hash, never the value).
func exportRequests(c *CDP, _ context.Context, tx *store.Txn, p *personScope, rep *AccessReport) error {
	mine := map[string]bool{}
	for _, m := range p.members {
		rec := p.records[m]
		mine[string(rec.Type)+"/"+fmt.Sprintf("%x", c.hasher.Sum(string(rec.Type), rec.Value))] = true
	}
	rep.Requests = []RequestSummary{}
	return tx.Scan([]byte(store.PrefixRequest), store.ScanOptions{}, func(_, v []byte) error {
		r, err := decodeRequest(v)
		if err != nil {
			return err
		}
		if mine[string(r.IdentifierType)+"/"+r.IdentifierHash] {
			rep.Requests = append(rep.Requests, RequestSummary{ID: r.ID, Type: r.Type, Regulation: r.Regulation,
				Status: r.Status, ReceivedAt: r.ReceivedAt, DueAt: r.DueAt, IdentifierType: string(r.IdentifierType)})
		}
		return nil
	})
}

// scope reads the person holding the identifier index key ik.
func (c *CDP) scope(ctx context.Context, tx *store.Txn, ik []byte) (*personScope, error) {
	raw, err := tx.Get(ik)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrProfileNotFound
	}
	if err != nil {
		return nil, err
	}
	pid, err := uuid.FromBytes(raw)
	if err != nil {
		return nil, err
	}
	root, members, err := c.members(tx, pid)
	if err != nil {
		return nil, err
	}
	p := &personScope{root: root, members: members, gone: map[uuid.UUID]bool{}, records: map[uuid.UUID]*nodeRecord{}}
	for _, m := range members {
		p.gone[m] = true
		rec, err := c.getRecord(ctx, tx, m)
		if err != nil {
			return nil, err
		}
		p.records[m] = rec
	}
	return p, nil
}
