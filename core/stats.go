package core

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// Stats counts what the store holds. Counts only: nothing about anyone.
type Stats struct {
	Events int `json:"events"`
	// Profiles are identifier nodes; People are clusters of them.
	Profiles int `json:"profiles"`
	People   int `json:"people"`
	// Known people have a user id or an email; the rest are anonymous
	// visitors.
	KnownPeople     int `json:"known_people"`
	AnonymousPeople int `json:"anonymous_people"`
	// DevicesStitched are anonymous ids that belong to a known person.
	DevicesStitched int `json:"devices_stitched"`
	MergesRefused   int `json:"merges_refused"`
}

// Stats scans the store's keys (no values are decrypted).
func (c *CDP) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	type cluster struct{ known, anon int }
	clusters := map[uuid.UUID]*cluster{}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		if err := tx.Scan([]byte(store.PrefixEvent), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error {
			s.Events++
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{Borrow: true}, func(k, v []byte) error {
			ms, err := decodeMembers(v)
			if err != nil {
				return err
			}
			cl := &cluster{}
			clusters[uuid.UUID(k[len(store.PrefixCluster):])] = cl
			for _, m := range ms {
				s.Profiles++
				switch m.typ {
				case identity.UserID, identity.Email:
					cl.known++
				case identity.AnonymousID:
					cl.anon++
				}
			}
			return nil
		})
	})
	if err != nil {
		return s, err
	}
	s.People = len(clusters)
	for _, cl := range clusters {
		if cl.known > 0 {
			s.KnownPeople++
			s.DevicesStitched += cl.anon
		} else {
			s.AnonymousPeople++
		}
	}
	s.MergesRefused = int(c.refusedTotal(ctx))
	return s, nil
}

// refusedTotal counts refusals in the journal (each is stored under both
// people, so halved).
func (c *CDP) refusedTotal(ctx context.Context) int64 {
	var n int64
	_ = c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixJournal), store.ScanOptions{}, func(_, v []byte) error {
			var es []journalEntry
			if json.Unmarshal(v, &es) == nil {
				for _, e := range es {
					if !e.Merged {
						n++
					}
				}
			}
			return nil
		})
	})
	return n / 2
}
