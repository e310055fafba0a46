package core

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
)

// ErrAPIKeyNotFound: no API key with that id.
var ErrAPIKeyNotFound = errors.New("api key not found")

// APIKeys lists the key records (never the keys), revoked ones included,
// oldest first.
func (c *CDP) APIKeys(ctx context.Context) ([]APIKey, error) {
	out := []APIKey{}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixAPIKey), store.ScanOptions{}, func(_, v []byte) error {
			var rec APIKey
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// RevokeAPIKey revokes the key with id: from now on it fails Authenticate.
// The record stays (marked revoked) so the list shows what existed;
// revoking twice is not an error and keeps the first time.
func (c *CDP) RevokeAPIKey(ctx context.Context, id string) (APIKey, error) {
	c.apiKeyMu.Lock()
	defer c.apiKeyMu.Unlock()
	var rec APIKey
	var hk string
	err := c.store.Update(ctx, func(tx *store.Txn) error {
		var key []byte
		err := tx.Scan([]byte(store.PrefixAPIKey), store.ScanOptions{}, func(k, v []byte) error {
			var r APIKey
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.ID == id {
				rec, key = r, append([]byte(nil), k...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if key == nil {
			return fmt.Errorf("%s: %w", id, ErrAPIKeyNotFound)
		}
		hk = hex.EncodeToString(key[len(store.PrefixAPIKey) : len(store.PrefixAPIKey)+apiKeyIndexLen])
		if rec.RevokedAt != nil {
			return nil
		}
		now := c.now().UTC()
		rec.RevokedAt = &now
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Set(key, b)
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key: %w", err)
	}
	c.apiKeys.Delete(hk)
	return rec, c.record(ctx, "apikey.revoke", map[string]any{"id": rec.ID, "role": rec.Role})
}

// PolicyStatus is the policy bundle in use and the outcome of its tests.
type PolicyStatus struct {
	BundleHash string `json:"bundle_hash"`
	// Source is the bundle's directory, or "embedded".
	Source string              `json:"source"`
	Tests  policies.TestReport `json:"tests"`
	// TestError says why the tests could not run (the bundle on disk no
	// longer compiles, for instance); the loaded bundle still serves.
	TestError string `json:"test_error,omitempty"`
}

// PolicyStatus runs the Rego tests of the configured bundle and reports
// them with the hash of the bundle the gate uses.
func (c *CDP) PolicyStatus(ctx context.Context) (PolicyStatus, error) {
	ps := PolicyStatus{BundleHash: c.engine.BundleHash(), Source: c.cfg.Policies.Dir}
	if ps.Source == "" {
		ps.Source = "embedded"
	}
	rep, err := policies.RunTests(ctx, c.cfg.Policies.Dir)
	if err != nil {
		if ctx.Err() != nil {
			return ps, ctx.Err()
		}
		ps.TestError = err.Error()
	}
	ps.Tests = rep
	return ps, nil
}

// KeyStatus reports the key vault: KEK epochs, retired epochs (the last
// rotation) and key counts. Nothing in it is secret.
func (c *CDP) KeyStatus(ctx context.Context) (keys.Status, error) {
	return c.vault.Status(ctx)
}

// Memberships lists the segment memberships of the person holding id
// (current and past), without recording an access report.
func (c *CDP) Memberships(ctx context.Context, id identity.Identifier) ([]MembershipView, error) {
	var out []MembershipView
	err := c.withPerson(ctx, id, func(tx *store.Txn, _ uuid.UUID, members []uuid.UUID) error {
		var err error
		out, err = c.membershipsOf(ctx, tx, members)
		return err
	})
	return out, err
}

// Purposes is the purpose taxonomy of the loaded policy bundle.
func (c *CDP) Purposes() []policies.Purpose { return c.engine.Purposes() }
