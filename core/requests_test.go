package core

import (
	"context"
	"errors"
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
	// A request for someone unknown is rejected, kept, and can become overdue.
	r2, _, err := c.HandleRequest(ctx, RequestAccess, "gdpr", identity.Identifier{Type: identity.Email, Value: "nobody@example.com"})
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
