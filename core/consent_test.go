package core

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
)

func consentSet(t *testing.T, c *CDP, email, purpose, status, at string, expires *time.Time) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RecordConsent(context.Background(), ConsentRequest{Identifier: identity.Identifier{Type: identity.Email, Value: email},
		Purpose: purpose, Status: status, Source: "test", CollectedAt: ts, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
}

func decide(t *testing.T, c *CDP, email, purpose string) policies.Decision {
	t.Helper()
	d, err := c.Decide(context.Background(), identity.Identifier{Type: identity.Email, Value: email},
		GateRequest{Action: policies.ActionSegmentEvaluate, Purpose: purpose, Role: policies.RoleMarketer})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The gate, end to end: consent recorded through the API and events, the
// person's jurisdiction from their traits, the default policies.
func TestGateDecisions(t *testing.T) {
	past := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		setup   func(t *testing.T, c *CDP)
		purpose string
		allow   bool
	}{
		{"EU without consent", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"DE"}}}`)
		}, "marketing.communications.email", false},
		{"EU granted", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"DE"}}}`)
			consentSet(t, c, "p@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", nil)
		}, "marketing.communications.email", true},
		{"EU granted then withdrawn", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"FR"}}}`)
			consentSet(t, c, "p@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", nil)
			consentSet(t, c, "p@example.com", "marketing.communications.email", "withdrawn", "2026-10-05T00:00:00Z", nil)
		}, "marketing.communications.email", false},
		{"EU expired consent", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"NL"}}}`)
			exp := past.AddDate(0, 0, 10)
			consentSet(t, c, "p@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", &exp)
		}, "marketing.communications.email", false},
		{"parent purpose covers child", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"IE"}}}`)
			consentSet(t, c, "p@example.com", "marketing", "granted", "2026-10-01T00:00:00Z", nil)
		}, "marketing.communications.email", true},
		{"UK without consent", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"GB"}}}`)
		}, "marketing.communications.email", false},
		{"California with nothing: opt-out model", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"US","state":"CA"}}}`)
		}, "marketing.communications.email", true},
		{"California with GPC: no sharing", func(t *testing.T, c *CDP) {
			m := msg(t, event.Identify, `{"userId":"u","traits":{"email":"p@example.com","address":{"country":"US","state":"CA"}}}`)
			if _, err := c.Ingest(context.Background(), []event.Message{m}, WithGPC(true)); err != nil {
				t.Fatal(err)
			}
		}, "third_party_sharing", false},
		{"unknown jurisdiction: the strictest", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com"}}`)
		}, "marketing.communications.email", false},
		{"consent from a cookie banner on an event", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","userId":"u","traits":{"email":"p@example.com","address":{"country":"ES"}},"context":{"consent":{"categoryPreferences":{"email":true,"advertising":false}}}}`)
		}, "marketing.communications.email", true},
		{"merge of granted and denied: denied", func(t *testing.T, c *CDP) {
			ingestAll(t, c, `{"type":"identify","anonymousId":"d1","traits":{"email":"p@example.com","address":{"country":"IT"}},"timestamp":"2026-09-01T00:00:00Z"}`,
				`{"type":"identify","userId":"u","traits":{"phone":"+39 06 1234 5678"},"timestamp":"2026-09-01T00:00:00Z"}`)
			consentSet(t, c, "p@example.com", "marketing.communications.email", "granted", "2026-09-02T00:00:00Z", nil)
			if _, err := c.RecordConsent(context.Background(), ConsentRequest{Identifier: identity.Identifier{Type: identity.UserID, Value: "u"},
				Purpose: "marketing.communications.email", Status: "denied", Source: "test", CollectedAt: time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)}); err != nil {
				t.Fatal(err)
			}
			// Later, the two profiles turn out to be one person.
			ingestAll(t, c, `{"type":"identify","userId":"u","anonymousId":"d1","timestamp":"2026-09-10T00:00:00Z"}`)
			cv, err := c.Consent(context.Background(), identity.Identifier{Type: identity.UserID, Value: "u"})
			if err != nil {
				t.Fatal(err)
			}
			if st := cv.States["marketing.communications.email"]; st.Conflict == "" {
				t.Fatalf("the conflict is not recorded: %+v", st)
			}
		}, "marketing.communications.email", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTest(t, testConfig(t))
			tt.setup(t, c)
			d := decide(t, c, "p@example.com", tt.purpose)
			if d.Allow != tt.allow || len(d.Reasons) == 0 {
				t.Fatalf("allow = %v, want %v; reasons %v", d.Allow, tt.allow, d.Reasons)
			}
		})
	}
}

func TestConsentHistoryAndValidation(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	consentSet(t, c, "h@example.com", "analytics", "granted", "2026-10-01T00:00:00Z", nil)
	consentSet(t, c, "h@example.com", "analytics", "withdrawn", "2026-10-02T00:00:00Z", nil)
	cv, err := c.Consent(ctx, identity.Identifier{Type: identity.Email, Value: "h@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cv.History) != 2 || cv.States["analytics"].Record.Status != "withdrawn" {
		t.Fatalf("history %d, state %+v", len(cv.History), cv.States["analytics"])
	}
	bad := []struct {
		name string
		req  ConsentRequest
		want string
	}{
		{"unknown purpose", ConsentRequest{Purpose: "mind.reading", Status: "granted"}, "purpose"},
		{"bad status", ConsentRequest{Purpose: "analytics", Status: "maybe"}, "status"},
		{"bad basis", ConsentRequest{Purpose: "analytics", Status: "granted", LawfulBasis: "vibes"}, "lawful_basis"},
		{"bad jurisdiction", ConsentRequest{Purpose: "analytics", Status: "granted", Jurisdiction: "Narnia"}, "jurisdiction"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Identifier = identity.Identifier{Type: identity.Email, Value: "h@example.com"}
			_, err := c.RecordConsent(ctx, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
	cv2, _ := c.Consent(ctx, identity.Identifier{Type: identity.Email, Value: "h@example.com"})
	if len(cv2.History) != 2 {
		t.Fatal("a rejected record was stored")
	}
}

func TestReachCountsThroughTheGate(t *testing.T) {
	c := openTest(t, testConfig(t))
	ingestAll(t, c,
		`{"type":"identify","userId":"eu-yes","traits":{"email":"a@example.com","address":{"country":"DE"}}}`,
		`{"type":"identify","userId":"eu-no","traits":{"email":"b@example.com","address":{"country":"DE"}}}`,
		`{"type":"identify","userId":"ca","traits":{"email":"c@example.com","address":{"country":"US","state":"CA"}}}`,
	)
	consentSet(t, c, "a@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", nil)
	reps, err := c.Reach(context.Background(), []string{"marketing.communications.email", "third_party_sharing"})
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].Allowed != 2 || reps[0].NotConsented != 1 || reps[0].ByJurisdiction["EU"] != 1 || reps[0].ByJurisdiction["US-CA"] != 1 {
		t.Fatalf("email reach = %+v", reps[0])
	}
	if _, err := c.Reach(context.Background(), []string{"nonsense"}); err == nil {
		t.Fatal("unknown purpose accepted")
	}
}

// The index of nodes with consent records is rebuilt at Open: consent
// recorded before a restart still counts after it.
func TestConsentAfterReopen(t *testing.T) {
	cfg := testConfig(t)
	c := openTest(t, cfg)
	ingestAll(t, c, `{"type":"identify","messageId":"1","userId":"u","traits":{"email":"r@example.com","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`)
	consentSet(t, c, "r@example.com", "marketing.communications.email", "granted", "2026-09-01T00:00:00Z", nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, cfg)
	cv, err := c.Consent(context.Background(), identity.Identifier{Type: identity.Email, Value: "r@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cv.History) != 1 || cv.States["marketing.communications.email"].Record.Status != "granted" {
		t.Fatalf("after reopen: %+v", cv)
	}
}
