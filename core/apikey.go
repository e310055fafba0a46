package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// Role is what an API key may do.
type Role string

// The roles (DESIGN.md §8).
const (
	RoleIngest      Role = "ingest"
	RoleMarketer    Role = "marketer"
	RoleDPO         Role = "dpo"
	RoleAdmin       Role = "admin"
	RolePersonalize Role = "personalize"
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.TrimSpace(strings.ToLower(s))); r {
	case RoleIngest, RoleMarketer, RoleDPO, RoleAdmin, RolePersonalize:
		return r, nil
	}
	return "", fmt.Errorf("role %q: %w", s, ErrInvalidRole)
}

// APIKey is a stored key's record. The key itself is never stored: only
// its SHA-256 (the key has 256 bits of entropy, so a fast hash is enough).
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is set when the key was revoked: it no longer
	// authenticates, and its record stays for the list of keys.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// NewAPIKey is returned once, at creation, with the plaintext key.
type NewAPIKey struct {
	Key string `json:"key"`
	APIKey
}

const apiKeyPrefix = "cus_"

// CreateAPIKey makes a new key with role and name and returns it; this is
// the only time the plaintext key exists outside the client.
func (c *CDP) CreateAPIKey(ctx context.Context, role Role, name string) (NewAPIKey, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return NewAPIKey{}, err
	}
	if len(name) > 200 {
		return NewAPIKey{}, fmt.Errorf("%w: key name longer than 200 bytes", ErrInvalidInput)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return NewAPIKey{}, err
	}
	key := apiKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	rec := APIKey{ID: uuid.NewString(), Name: name, Role: role, CreatedAt: c.now().UTC()}
	val, err := json.Marshal(rec)
	if err != nil {
		return NewAPIKey{}, err
	}
	sum := sha256.Sum256([]byte(key))
	if err := c.store.Update(ctx, func(tx *store.Txn) error { return tx.Set(store.APIKeyKey(sum[:]), val) }); err != nil {
		return NewAPIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return NewAPIKey{Key: key, APIKey: rec}, nil
}

// apiKeyIndexLen is how many bytes of a key's SHA-256 locate its record;
// the rest is compared in constant time.
const apiKeyIndexLen = 8

// cachedKey is an authenticated key's record and its full digest.
type cachedKey struct {
	digest [sha256.Size]byte
	rec    APIKey
}

// Authenticate returns the record of key, or ErrUnauthorized.
//
// Why this resists timing attacks: the presented key is hashed first, so
// nothing downstream ever compares bytes of the key itself. The record is
// located by the first 8 bytes of the SHA-256 only (in the cache and as a
// store prefix), and a timing difference there reveals at most whether a
// guess's hash shares 8 bytes with a stored key's hash, which says nothing
// about any key (SHA-256 is preimage resistant). The acceptance decision is
// a constant-time comparison of the full 32-byte digest, so how many bytes
// of a guess are right cannot be measured at all.
func (c *CDP) Authenticate(ctx context.Context, key string) (APIKey, error) {
	if !strings.HasPrefix(key, apiKeyPrefix) || len(key) > 100 {
		return APIKey{}, ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(key))
	idx := hex.EncodeToString(sum[:apiKeyIndexLen])
	if v, ok := c.apiKeys.Load(idx); ok {
		if ck := v.(cachedKey); subtle.ConstantTimeCompare(ck.digest[:], sum[:]) == 1 {
			return ck.rec, nil
		}
	}
	// Cache fills are ordered with revocations (RevokeAPIKey), so a
	// revoked key read just before its revocation cannot be cached after.
	c.apiKeyMu.Lock()
	defer c.apiKeyMu.Unlock()
	want := store.APIKeyKey(sum[:])
	var (
		rec   APIKey
		found bool
	)
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan(store.APIKeyKey(sum[:apiKeyIndexLen]), store.ScanOptions{}, func(k, v []byte) error {
			if subtle.ConstantTimeCompare(k, want) != 1 {
				return nil
			}
			found = true
			return json.Unmarshal(v, &rec)
		})
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("authenticate: %w", err)
	}
	if !found || rec.RevokedAt != nil {
		return APIKey{}, ErrUnauthorized
	}
	c.apiKeys.Store(idx, cachedKey{digest: sum, rec: rec})
	return rec, nil
}
