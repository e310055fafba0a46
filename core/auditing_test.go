package core

import (
	"context"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
)

// Operations that a DPO must be able to prove are on the audit log, with no
// plaintext identifiers, and the chain verifies.
func TestOperationsAreAudited(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := WithActor(context.Background(), "key-test")
	ingestAll(t, c,
		`{"type":"identify","userId":"u1","traits":{"email":"audit.me@example.com","address":{"country":"DE"}}}`,
		`{"type":"identify","anonymousId":"a2","traits":{"email":"audit.me@example.com"}}`)
	if _, err := c.RecordConsent(ctx, ConsentRequest{Identifier: identity.Identifier{Type: identity.Email, Value: "audit.me@example.com"},
		Purpose: "analytics", Status: "granted", Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decide(ctx, identity.Identifier{Type: identity.Email, Value: "audit.me@example.com"},
		GateRequest{Action: policies.ActionProfileRead, Role: policies.RoleDPO}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reach(ctx, []string{"analytics"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := c.AuditTail(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range es {
		kinds = append(kinds, e.Kind)
		if strings.Contains(string(e.Data), "audit.me") || strings.Contains(string(e.Data), "u1") {
			t.Fatalf("plaintext identifier in audit entry %d: %s", e.Seq, e.Data)
		}
		if e.Actor != "key-test" {
			t.Fatalf("entry %d actor %q", e.Seq, e.Actor)
		}
	}
	if got := strings.Join(kinds, ","); got != "consent.record,profile.read,gate.decisions,keys.rotate" {
		t.Fatalf("kinds = %s", got)
	}
	rep, err := c.AuditVerify(ctx)
	if err != nil || !rep.OK || rep.Entries != 4 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
