package core

import (
	"context"
	"errors"
	"testing"

	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/identity"
)

func TestRevokeAPIKey(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	a, err := c.CreateAPIKey(ctx, RoleDPO, "dpo")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateAPIKey(ctx, RoleMarketer, "marketing")
	if err != nil {
		t.Fatal(err)
	}
	// Authenticated once, so the key sits in the cache: revocation must
	// evict it.
	if _, err := c.Authenticate(ctx, a.Key); err != nil {
		t.Fatalf("authenticate before revoke: %v", err)
	}
	rec, err := c.RevokeAPIKey(ctx, a.ID)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if rec.RevokedAt == nil {
		t.Fatalf("revoked record has no revoked_at: %+v", rec)
	}
	if _, err := c.Authenticate(ctx, a.Key); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("authenticate a revoked key: %v, want ErrUnauthorized", err)
	}
	if _, err := c.Authenticate(ctx, b.Key); err != nil {
		t.Fatalf("the other key stopped working: %v", err)
	}
	again, err := c.RevokeAPIKey(ctx, a.ID)
	if err != nil || !again.RevokedAt.Equal(*rec.RevokedAt) {
		t.Fatalf("revoke twice: %v, %v want the first time %v", err, again.RevokedAt, rec.RevokedAt)
	}
	if _, err := c.RevokeAPIKey(ctx, "no-such-key"); !errors.Is(err, ErrAPIKeyNotFound) {
		t.Fatalf("revoke unknown: %v, want ErrAPIKeyNotFound", err)
	}
	list, err := c.APIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("listed %d keys, want 2: %+v", len(list), list)
	}
	for _, k := range list {
		if (k.ID == a.ID) != (k.RevokedAt != nil) {
			t.Errorf("key %s (%s): revoked_at %v", k.ID, k.Name, k.RevokedAt)
		}
	}
	if es, err := c.AuditTail(ctx, 5); err != nil || !hasKind(es, "apikey.revoke") {
		t.Errorf("audit log lacks apikey.revoke (%v)", err)
	}
}

func hasKind(es []audit.Entry, kind string) bool {
	for _, e := range es {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

func TestConsoleStatus(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ps, err := c.PolicyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.BundleHash == "" || ps.Source != "embedded" || ps.Tests.Passed == 0 || ps.Tests.Failed != 0 || ps.TestError != "" {
		t.Errorf("policy status = hash %q source %q passed %d failed %d error %q", ps.BundleHash, ps.Source, ps.Tests.Passed, ps.Tests.Failed, ps.TestError)
	}
	ks, err := c.KeyStatus(ctx)
	if err != nil || ks.Epoch != 1 || len(ks.LiveEpochs) != 1 {
		t.Errorf("key status = %+v, %v", ks, err)
	}
	if _, err := c.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err = c.KeyStatus(ctx)
	if err != nil || ks.Epoch != 2 || len(ks.Retired) != 1 || ks.Retired[0].Epoch != 1 {
		t.Errorf("after rotation: key status = %+v, %v", ks, err)
	}
	if _, err := c.Memberships(ctx, identity.Identifier{Type: identity.Email, Value: "nobody@example.com"}); !errors.Is(err, ErrProfileNotFound) {
		t.Errorf("memberships of an unknown person: %v, want ErrProfileNotFound", err)
	}
}
