package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/identity"
)

func TestPrivacyRequestLifecycle(t *testing.T) {
	clock := fixedNow
	cfg := testConfig(t)
	c := openTest(t, cfg)
	c.now = func() time.Time { return clock }
	ctx := context.Background()
	ingestAll(t, c, `{"type":"identify","messageId":"1","userId":"u1","traits":{"email":"req@example.com"}}`)
	email := identity.Identifier{Type: identity.Email, Value: "req@example.com"}

	r, rep, err := c.HandleRequest(ctx, RequestAccess, "ccpa", email)
	if err != nil || rep == nil || r.Status != StatusCompleted || !r.DueAt.Equal(fixedNow.AddDate(0, 0, 45)) {
		t.Fatalf("access request %+v %v", r, err)
	}
	statuses := ""
	for _, h := range r.History {
		statuses += h.Status + " "
	}
	if statuses != "received verified in_progress completed " {
		t.Fatalf("history %q", statuses)
	}
	// Access for someone unknown completes with an empty report
	// (TestAccessForNoOne); a deletion of someone unknown is rejected and
	// kept.
	r2, _, err := c.HandleRequest(ctx, RequestSuppressWithDelete, "gdpr", identity.Identifier{Type: identity.Email, Value: "nobody@example.com"})
	if !errors.Is(err, ErrProfileNotFound) || r2.Status != StatusRejected || !r2.DueAt.Equal(fixedNow.AddDate(0, 1, 0)) {
		t.Fatalf("rejected request %+v %v", r2, err)
	}
	// Suppress only, then unsuppress: events are dropped, then accepted.
	anon := identity.Identifier{Type: identity.AnonymousID, Value: "bot-device"}
	if _, _, err := c.HandleRequest(ctx, RequestSuppress, "ccpa", anon); err != nil {
		t.Fatal(err)
	}
	m := msg(t, event.Track, `{"messageId":"s1","anonymousId":"bot-device","event":"E"}`)
	if res, _ := c.Ingest(ctx, []event.Message{m}); res.Suppressed != 1 {
		t.Fatalf("suppress: %+v", res)
	}
	if _, _, err := c.HandleRequest(ctx, RequestUnsuppress, "ccpa", anon); err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Ingest(ctx, []event.Message{m}); res.Accepted != 1 {
		t.Fatalf("unsuppress: %+v", res)
	}
	// Delete only: erased, and not suppressed (the person may come back).
	if _, _, err := c.HandleRequest(ctx, RequestDelete, "gdpr", email); err != nil {
		t.Fatal(err)
	}
	back := msg(t, event.Identify, `{"messageId":"b1","userId":"u1"}`)
	if res, _ := c.Ingest(ctx, []event.Message{back}); res.Accepted != 1 {
		t.Fatalf("after delete-only: %+v", res)
	}
	all, err := c.Requests(ctx, false)
	if err != nil || len(all) != 5 {
		t.Fatalf("requests: %d %v", len(all), err)
	}
	if over, _ := c.Requests(ctx, true); len(over) != 0 {
		t.Fatalf("overdue now: %d", len(over))
	}
	got, err := c.Request(ctx, r.ID)
	if err != nil || got.Type != RequestAccess {
		t.Fatalf("request by id: %+v %v", got, err)
	}
	if _, err := c.Request(ctx, "nope"); !errors.Is(err, ErrRequestNotFound) {
		t.Fatal(err)
	}
	if _, _, err := c.HandleRequest(ctx, "forget", "gdpr", email); !errors.Is(err, ErrInvalidInput) {
		t.Fatal(err)
	}
}

func TestOverdue(t *testing.T) {
	r := PrivacyRequest{Status: StatusInProgress, DueAt: fixedNow}
	if r.Overdue(fixedNow) || !r.Overdue(fixedNow.Add(time.Second)) {
		t.Fatal("overdue boundary")
	}
	r.Status = StatusCompleted
	if r.Overdue(fixedNow.AddDate(1, 0, 0)) {
		t.Fatal("a completed request is never overdue")
	}
}

func TestExtendRequest(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	r := &PrivacyRequest{ID: "r1", Type: RequestAccess, Regulation: "gdpr", Status: StatusInProgress, ReceivedAt: fixedNow, DueAt: fixedNow.AddDate(0, 1, 0)}
	if err := c.putRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExtendRequest(ctx, "r1", ""); !errors.Is(err, ErrInvalidInput) {
		t.Fatal("an extension without a reason was accepted")
	}
	got, err := c.ExtendRequest(ctx, "r1", "complex request: 40k events across 3 systems")
	if err != nil || !got.DueAt.Equal(fixedNow.AddDate(0, 3, 0)) {
		t.Fatalf("extended: %+v %v", got, err)
	}
	if _, err := c.ExtendRequest(ctx, "r1", "again"); !errors.Is(err, ErrInvalidInput) {
		t.Fatal("a second extension was accepted")
	}
	if _, err := c.ExtendRequest(ctx, "nope", "x"); !errors.Is(err, ErrRequestNotFound) {
		t.Fatal(err)
	}
}

// An access request for an identifier no one holds completes with an empty
// report: no person, every section empty. A deleted person's identifiers
// get exactly what an identifier never seen gets (report, request record,
// result), so the answer does not say that they ever existed; both the
// direct request and a received-then-verified one.
func TestAccessForNoOne(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ingestAll(t, c, `{"type":"identify","messageId":"n1","userId":"was-here","anonymousId":"was-device","traits":{"email":"was.here@example.com","phone":"+44 20 7946 0111"}}`)
	if _, _, err := c.HandleRequest(ctx, RequestAccess, "gdpr", identity.Identifier{Type: identity.Email, Value: "was.here@example.com"}); err != nil {
		t.Fatal(err) // an earlier request, which must not show below
	}
	if _, _, err := c.HandleRequest(ctx, RequestSuppressWithDelete, "gdpr", identity.Identifier{Type: identity.UserID, Value: "was-here"}); err != nil {
		t.Fatal(err)
	}
	// canonical is what a request's answer looks like with what differs
	// between any two requests (ids, times) taken out.
	canonical := func(r *PrivacyRequest, rep *AccessReport) string {
		var steps []string
		for _, h := range r.History {
			steps = append(steps, h.Status+":"+h.Note)
		}
		b, _ := json.Marshal(rep)
		return fmt.Sprintf("%s %s %v result=%s report=%s", r.Type, r.Status, steps, r.Result,
			strings.Replace(string(b), rep.GeneratedAt.Format(time.RFC3339Nano), "T", 1))
	}
	never, neverRep, err := c.HandleRequest(ctx, RequestAccess, "gdpr", identity.Identifier{Type: identity.Email, Value: "never.seen@example.com"})
	if err != nil || neverRep == nil {
		t.Fatalf("access for someone never seen: %+v %v", never, err)
	}
	want := canonical(never, neverRep)
	if neverRep.Person != nil || len(neverRep.Exports)+len(neverRep.Memberships)+len(neverRep.Requests) != 0 || never.Status != StatusCompleted {
		t.Fatalf("not an empty completed report: %s", want)
	}
	tests := []struct {
		name    string
		id      identity.Identifier
		receive bool // received first, then verified
	}{
		{"email", identity.Identifier{Type: identity.Email, Value: "was.here@example.com"}, false},
		{"user id", identity.Identifier{Type: identity.UserID, Value: "was-here"}, false},
		{"anonymous id", identity.Identifier{Type: identity.AnonymousID, Value: "was-device"}, false},
		{"phone", identity.Identifier{Type: identity.Phone, Value: "+442079460111"}, false},
		{"email, verified later", identity.Identifier{Type: identity.Email, Value: "was.here@example.com"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				r   *PrivacyRequest
				rep *AccessReport
				err error
			)
			if tt.receive {
				if r, err = c.ReceiveRequest(ctx, RequestAccess, "gdpr", tt.id); err != nil {
					t.Fatal(err)
				}
				r, rep, err = c.VerifyRequest(ctx, r.ID, "email round-trip")
			} else {
				r, rep, err = c.HandleRequest(ctx, RequestAccess, "gdpr", tt.id)
			}
			if err != nil || rep == nil {
				t.Fatalf("access: %+v %v", r, err)
			}
			got := canonical(r, rep)
			if tt.receive {
				// The same but for the verification step's note.
				want = strings.Replace(want, "verified:verified: by the operator who filed it (owner)", "verified:verified: email round-trip", 1)
			}
			if got != want {
				t.Errorf("a deleted person's identifier is answered differently from one never seen:\n got %s\nwant %s", got, want)
			}
			// The low-level lookup still says not found.
			if _, err := c.Access(ctx, tt.id); !errors.Is(err, ErrProfileNotFound) {
				t.Errorf("Access: %v, want ErrProfileNotFound", err)
			}
			var html bytes.Buffer
			if err := RenderAccessHTML(&html, *rep); err != nil || !strings.Contains(html.String(), "We hold no data") {
				t.Errorf("HTML rendering of the empty report: %v\n%s", err, html.String())
			}
		})
	}
	// Each access is on the audit log, with no person.
	tail, err := c.AuditTail(ctx, 2)
	if err != nil || len(tail) != 2 || tail[0].Kind != "privacy.access" || !strings.Contains(string(tail[0].Data), `"person":null`) {
		t.Fatalf("audit tail: %+v %v", tail, err)
	}
}
