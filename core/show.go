package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// ProfileView is a decrypted profile with its events, as `custody profile
// show` prints it.
type ProfileView struct {
	ID          uuid.UUID                  `json:"id"`
	CreatedAt   time.Time                  `json:"created_at"`
	UpdatedAt   time.Time                  `json:"updated_at"`
	Identifiers []identifierRecord         `json:"identifiers"`
	Traits      map[string]json.RawMessage `json:"traits"`
	EventCount  int                        `json:"event_count"`
	Events      []event.Message            `json:"events"`
}

// ShowOptions tune Profile.
type ShowOptions struct {
	// EventLimit keeps only the newest N events (0: all).
	EventLimit int
}

// Profile finds the profile holding id and returns it decrypted, with its
// events oldest first.
func (c *CDP) Profile(ctx context.Context, id identity.Identifier, so ShowOptions) (*ProfileView, error) {
	h, err := c.hasher.Hash(id.Type, id.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	var view *ProfileView
	err = c.store.View(ctx, func(tx *store.Txn) error {
		v, err := tx.Get(store.IdentifierKey(string(id.Type), h))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lookup by %s: %w", id.Type, ErrProfileNotFound)
		}
		if err != nil {
			return err
		}
		pid, err := uuid.FromBytes(v)
		if err != nil {
			return fmt.Errorf("identifier index: %w", err)
		}
		p, err := c.getProfile(ctx, tx, pid)
		if err != nil {
			return err
		}
		view = &ProfileView{ID: p.ID, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
			Identifiers: p.Identifiers, Traits: p.Traits, Events: []event.Message{}}
		if view.Traits == nil {
			view.Traits = map[string]json.RawMessage{}
		}
		return tx.Scan(store.EventPrefix(pid), store.ScanOptions{}, func(key, val []byte) error {
			view.EventCount++
			plain, err := c.vault.Unseal(ctx, pid, key, val)
			if err != nil {
				return fmt.Errorf("event of profile %s: %w", pid, err)
			}
			m, err := event.DecodeStored(plain)
			if err != nil {
				return fmt.Errorf("event of profile %s: %w", pid, err)
			}
			view.Events = append(view.Events, m)
			if so.EventLimit > 0 && len(view.Events) > so.EventLimit {
				view.Events = view.Events[1:]
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}
