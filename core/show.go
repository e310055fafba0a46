package core

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// ProfileView is a person, decrypted: every identifier node of their
// cluster, the merged traits, the merge journal, all events, and the
// traits computed from them (personal data too, so access reports list
// them).
type ProfileView struct {
	// ID is the cluster's root: its oldest profile id.
	ID           uuid.UUID                  `json:"id"`
	CreatedAt    time.Time                  `json:"created_at"`
	Profiles     []uuid.UUID                `json:"profiles"`
	Identifiers  []IdentifierView           `json:"identifiers"`
	Traits       map[string]json.RawMessage `json:"traits"`
	History      []TraitChange              `json:"trait_history"`
	Merges       []MergeView                `json:"merges"`
	Unmerges     []Separation               `json:"unmerges"`
	Jurisdiction string                     `json:"jurisdiction"`
	Consent      ConsentView                `json:"consent"`
	EventCount   int                        `json:"event_count"`
	Events       []event.Message            `json:"events"`
	// Computed are the computed traits (segments.ComputedTraits) at the
	// time of the view, over all events (ShowOptions.EventLimit aside), as
	// CDP.ComputedTraits returns them.
	Computed map[string]any `json:"computed_traits"`
}

// IdentifierView is one identifier of a person, with the profile id of its
// node (the id `custody profile unmerge --profile` takes).
type IdentifierView struct {
	Type      identity.Type `json:"type"`
	Value     string        `json:"value"`
	Profile   uuid.UUID     `json:"profile"`
	Blocked   bool          `json:"blocked,omitempty"`
	FirstSeen time.Time     `json:"first_seen"`
}

// MergeView is one journal entry: two clusters merged or a merge refused.
type MergeView = journalEntry

// ShowOptions tune Profile.
type ShowOptions struct {
	// EventLimit keeps only the newest N events (0: all).
	EventLimit int
}

// Profile finds the person holding id and returns them decrypted, events
// oldest first.
func (c *CDP) Profile(ctx context.Context, id identity.Identifier, so ShowOptions) (*ProfileView, error) {
	var view *ProfileView
	err := c.withPerson(ctx, id, func(tx *store.Txn, root uuid.UUID, _ []uuid.UUID) error {
		var err error
		view, err = c.person(ctx, tx, root, so)
		return err
	})
	return view, err
}

// members returns the node ids of pid's cluster, root first.
func (c *CDP) members(tx *store.Txn, pid uuid.UUID) (uuid.UUID, []uuid.UUID, error) {
	m, err := c.getMember(tx, pid)
	if err != nil {
		return uuid.Nil, nil, err
	}
	ms, err := c.getMembers(tx, m.root)
	if err != nil {
		return uuid.Nil, nil, err
	}
	out := []uuid.UUID{m.root}
	for _, n := range ms {
		if n.pid != m.root {
			out = append(out, n.pid)
		}
	}
	return m.root, out, nil
}

func (c *CDP) person(ctx context.Context, tx *store.Txn, pid uuid.UUID, so ShowOptions) (*ProfileView, error) {
	root, members, err := c.members(tx, pid)
	if err != nil {
		return nil, err
	}
	view := &ProfileView{ID: root, Profiles: members, Traits: map[string]json.RawMessage{},
		Identifiers: []IdentifierView{}, History: []TraitChange{}, Merges: []MergeView{}, Unmerges: []Separation{}, Events: []event.Message{}}
	traitAt := map[string]time.Time{}
	for _, n := range members {
		rec, err := c.getRecord(ctx, tx, n)
		if err != nil {
			return nil, err
		}
		if n == root || view.CreatedAt.IsZero() || rec.CreatedAt.Before(view.CreatedAt) {
			if view.CreatedAt.IsZero() || rec.CreatedAt.Before(view.CreatedAt) {
				view.CreatedAt = rec.CreatedAt
			}
		}
		view.Identifiers = append(view.Identifiers, IdentifierView{Type: rec.Type, Value: rec.Value, Profile: n, Blocked: rec.Blocked, FirstSeen: rec.FirstSeen})
		for k, v := range rec.Traits {
			at := rec.TraitTimes[k]
			if prev, ok := traitAt[k]; !ok || at.After(prev) || (at.Equal(prev) && string(v) > string(view.Traits[k])) {
				view.Traits[k], traitAt[k] = v, at
			}
		}
		view.History = append(view.History, rec.History...)
		js, err := c.journal(tx, n)
		if err != nil {
			return nil, err
		}
		view.Merges = append(view.Merges, js...)
		seps, err := c.separationRecords(tx, n)
		if err != nil {
			return nil, err
		}
		view.Unmerges = append(view.Unmerges, seps...)
		err = tx.Scan(store.EventPrefix(n), store.ScanOptions{}, func(key, val []byte) error {
			view.EventCount++
			plain, err := c.vault.Unseal(ctx, n, key, val)
			if err != nil {
				return fmt.Errorf("event of profile %s: %w", n, err)
			}
			m, err := event.DecodeStored(plain)
			if err != nil {
				return fmt.Errorf("event of profile %s: %w", n, err)
			}
			view.Events = append(view.Events, m)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	cv, err := c.consentOf(ctx, tx, root, members, view.Traits)
	if err != nil {
		return nil, err
	}
	view.Consent, view.Jurisdiction = cv, cv.Jurisdiction
	sort.SliceStable(view.Identifiers, func(i, j int) bool {
		a, b := view.Identifiers[i], view.Identifiers[j]
		if pa, pb := c.rules.Rule(a.Type).Priority, c.rules.Rule(b.Type).Priority; pa != pb {
			return pa < pb
		}
		return a.Value < b.Value
	})
	sort.SliceStable(view.Events, func(i, j int) bool {
		a, b := view.Events[i], view.Events[j]
		if !a.Timestamp.Equal(b.Timestamp) {
			return a.Timestamp.Before(b.Timestamp)
		}
		return a.MessageID < b.MessageID
	})
	sort.SliceStable(view.History, func(i, j int) bool {
		a, b := view.History[i], view.History[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.Trait != b.Trait {
			return a.Trait < b.Trait
		}
		return string(a.Value) < string(b.Value)
	})
	sort.SliceStable(view.Merges, func(i, j int) bool { return view.Merges[i].At.Before(view.Merges[j].At) })
	view.Computed = computedOfMessages(view.Events, view.Traits, c.now())
	if so.EventLimit > 0 && len(view.Events) > so.EventLimit {
		view.Events = view.Events[len(view.Events)-so.EventLimit:]
	}
	return view, nil
}
