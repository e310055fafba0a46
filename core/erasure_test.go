package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// The completeness test: a person created through every public path
// (events with every identifier type, consent from the API and from an
// event, GPC, merges, an unmerge, a segment export) is erased everywhere.
// Afterwards no key of theirs remains, nothing in the store decrypts to any
// of their values, their keys are shredded, the access report finds no one,
// replayed events are suppressed, and other people are untouched.
func TestDeleteErasesEverything(t *testing.T) {
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{"newsletter": {Kind: "email", Format: "csv", Dir: t.TempDir(), Fields: []string{"email"}}}
	c := openTest(t, cfg)
	ctx := context.Background()
	secrets := []string{"erase.me@example.com", "Eraseme", "user-erase", "anon-erase-1", "anon-erase-2", "+442079460999", "crm-erase-7", "Erase Street 1"}
	ingestAll(t, c,
		`{"type":"identify","messageId":"d1","userId":"user-erase","anonymousId":"anon-erase-1","traits":{"email":"erase.me@example.com","first_name":"Eraseme","phone":"+44 20 7946 0999","address":{"street":"Erase Street 1","country":"GB"}},"context":{"externalIds":[{"id":"crm-erase-7","type":"crm"}],"consent":{"categoryPreferences":{"email":true}}},"timestamp":"2026-10-01T09:00:00Z"}`,
		`{"type":"track","messageId":"d2","anonymousId":"anon-erase-2","event":"Product Viewed","properties":{"note":"Eraseme was here"},"timestamp":"2026-10-01T09:05:00Z"}`,
		`{"type":"identify","messageId":"d3","anonymousId":"anon-erase-2","traits":{"email":"Erase.Me@example.com"},"timestamp":"2026-10-01T09:06:00Z"}`,
		`{"type":"track","messageId":"d4","userId":"user-erase","event":"Order Completed","properties":{"total":12},"timestamp":"2026-10-02T09:00:00Z"}`,
		// Someone else, sharing a device with them once (a refused merge links the two).
		`{"type":"identify","messageId":"o1","userId":"other-user","anonymousId":"shared-laptop","traits":{"email":"other@example.com","address":{"country":"GB"}},"timestamp":"2026-09-01T09:00:00Z"}`,
		`{"type":"identify","messageId":"o2","userId":"user-erase","anonymousId":"shared-laptop","timestamp":"2026-10-03T09:00:00Z"}`,
	)
	consentSet(t, c, "erase.me@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", nil)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	if rep, err := c.ExportSegment(ctx, "buyers", "newsletter", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil || rep.Rows != 1 {
		t.Fatalf("export %+v %v", rep, err)
	}
	if rr, err := c.RefreshSegment(ctx, "buyers", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil || rr.Entered != 1 {
		t.Fatalf("refresh %+v %v", rr, err)
	}
	// A tablet wrongly merged into them, then split off again (an unmerge).
	ingestAll(t, c, `{"type":"identify","messageId":"d5","userId":"user-erase","anonymousId":"erase-tablet","timestamp":"2026-10-02T10:00:00Z"}`)
	tablet, err := c.Profile(ctx, identity.Identifier{Type: identity.AnonymousID, Value: "erase-tablet"}, ShowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Split the merge that brought the tablet in (which side was folded
	// depends on the profile ids' order).
	tabletPID := profileOf(tablet, identity.AnonymousID, "erase-tablet")
	split := false
	for _, m := range tablet.Merges {
		if m.Merged && (m.From == tabletPID || m.Into == tabletPID) && !split {
			if _, err := c.Unmerge(ctx, m.From, "shared tablet"); err != nil {
				t.Fatal(err)
			}
			split = true
		}
	}
	if !split {
		t.Fatalf("no merge brought the tablet in: %+v", tablet.Merges)
	}
	// Every personal prefix of the registry holds something of theirs, so
	// the deletion below is checked against every prefix.
	email := identity.Identifier{Type: identity.Email, Value: "erase.me@example.com"}
	for prefix, n := range personKeys(t, c, email) {
		if n == 0 {
			t.Errorf("the test person has no record under %s: extend the test to cover it", prefix)
		}
	}
	before, err := c.Access(ctx, email)
	if err != nil || len(before.Exports) != 1 || before.Person.EventCount < 4 || len(before.Memberships) != 1 {
		t.Fatalf("access before: %+v %v", before, err)
	}
	// Segment evaluation has read them: their gate inputs and event
	// digests are in memory.
	if _, err := c.ApplyTemplate(ctx, "repeat_buyers", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EvaluateSegment(ctx, "repeat_buyers", fixedNow); err != nil {
		t.Fatal(err)
	}
	cached := func(p uuid.UUID) bool {
		_, g := c.gates.get(p)
		_, _, d := c.aggs.get(p)
		return g || d
	}
	if !slices.ContainsFunc(before.Person.Profiles, cached) {
		t.Fatal("evaluation cached nothing of the person: the check below would prove nothing")
	}
	cert, err := c.Delete(ctx, identity.Identifier{Type: identity.Phone, Value: "+442079460999"})
	if err != nil {
		t.Fatal(err)
	}
	if p := slices.IndexFunc(cert.Profiles, cached); p >= 0 {
		t.Fatalf("profile %s of the erased person is still cached in memory", cert.Profiles[p])
	}
	if len(cert.Profiles) < 6 || len(cert.DEKsShredded) != len(cert.Profiles) || len(cert.KEKRetired) == 0 ||
		len(cert.Recipients) != 1 || cert.Records[string(store.PrefixEvent)] < 4 {
		t.Fatalf("certificate %+v", cert)
	}
	t.Logf("certificate: %d profiles, records %v, %d keys shredded, epochs retired %v, recipients %d", len(cert.Profiles), cert.Records, len(cert.DEKsShredded), cert.KEKRetired, len(cert.Recipients))
	// No key of theirs remains, and nothing left decrypts to their values.
	gone := map[uuid.UUID]bool{}
	for _, p := range cert.Profiles {
		gone[p] = true
	}
	err = c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) error {
			for _, p := range cert.Profiles {
				if bytes.Contains(k, p[:]) {
					return errors.New("a key still names an erased profile: " + string(k[:2]))
				}
				if bytes.Contains(v, p[:]) && !bytes.HasPrefix(k, []byte(store.PrefixJournal)) && !bytes.HasPrefix(k, []byte(store.PrefixAudit)) {
					return errors.New("a value still names an erased profile under " + string(k[:2]))
				}
			}
			if len(k) > 18 && k[1] == '/' {
				var pid uuid.UUID
				copy(pid[:], k[2:18])
				if plain, err := c.vault.Unseal(ctx, pid, k, v); err == nil {
					v = plain
				}
			}
			for _, s := range secrets {
				if bytes.Contains(bytes.ToLower(v), bytes.ToLower([]byte(s))) {
					return errors.New("erased value found under " + string(k[:2]))
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cert.Profiles {
		if _, err := c.vault.Unseal(ctx, p, []byte("x"), []byte("y")); !errors.Is(err, keys.ErrKeyShredded) {
			t.Fatalf("key of %s not shredded: %v", p, err)
		}
	}
	for _, id := range []identity.Identifier{{Type: identity.Email, Value: "erase.me@example.com"}, {Type: identity.UserID, Value: "user-erase"}, {Type: identity.AnonymousID, Value: "anon-erase-2"}} {
		if _, err := c.Access(ctx, id); !errors.Is(err, ErrProfileNotFound) {
			t.Fatalf("access by %s after deletion: %v", id.Type, err)
		}
		// The access request completes with an empty report.
		if r, rep, err := c.HandleRequest(ctx, RequestAccess, "gdpr", id); err != nil || r.Status != StatusCompleted || rep == nil || rep.Person != nil ||
			len(rep.Exports)+len(rep.Memberships)+len(rep.Requests) != 0 {
			t.Fatalf("access request by %s after deletion: %+v %+v %v", id.Type, r, rep, err)
		}
	}
	// Replayed and late events for any identifier are suppressed.
	res, err := c.Ingest(ctx, []event.Message{
		msg(t, event.Track, `{"messageId":"late-1","anonymousId":"anon-erase-1","event":"Product Viewed"}`),
		msg(t, event.Identify, `{"messageId":"late-2","anonymousId":"new-device","traits":{"email":"ERASE.ME@example.com"}}`),
	})
	if err != nil || res.Suppressed != 2 || res.Accepted != 0 {
		t.Fatalf("replay after deletion: %+v %v", res, err)
	}
	if _, err := c.Access(ctx, identity.Identifier{Type: identity.AnonymousID, Value: "new-device"}); !errors.Is(err, ErrProfileNotFound) {
		t.Fatal("a suppressed message created a profile")
	}
	// Unsuppress lifts it for that identifier.
	if _, _, err := c.HandleRequest(ctx, RequestUnsuppress, "gdpr", identity.Identifier{Type: identity.AnonymousID, Value: "anon-erase-1"}); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Ingest(ctx, []event.Message{msg(t, event.Track, `{"messageId":"late-3","anonymousId":"anon-erase-1","event":"Product Viewed"}`)}); err != nil || res.Accepted != 1 {
		t.Fatalf("after unsuppress: %+v %v", res, err)
	}
	// The other person is intact and their graph still works.
	other, err := c.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: "other-user"}, ShowOptions{})
	if err != nil || other.EventCount != 1 {
		t.Fatalf("other person: %+v %v", other, err)
	}
	ingestAll(t, c, `{"type":"identify","messageId":"o3","userId":"other-user","anonymousId":"shared-laptop","timestamp":"2026-08-01T09:00:00Z"}`)
	tail, _ := c.AuditTail(ctx, 20) // the certificate, then the access requests after it
	found := false
	for _, e := range tail {
		if e.Kind == "privacy.delete" {
			found = true
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(string(e.Data)), strings.ToLower(s)) {
					t.Fatalf("certificate carries personal data: %s", e.Data)
				}
			}
		}
	}
	if !found {
		t.Fatal("no deletion certificate on the audit log")
	}
	if rep, err := c.AuditVerify(ctx); err != nil || !rep.OK {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}
}

// A deletion interrupted at any step (the process killed: the hook's error
// stands for the crash, and the CDP is reopened without anything else
// running) either completes at the next Open -- records erased, keys
// shredded, KEK rotated, one certificate on the audit log, the request
// completed -- or, if the crash came before the erase transaction
// committed, left nothing half-done: the person is intact and a new
// request erases them.
func TestInterruptedDeletionResumes(t *testing.T) {
	steps := []string{"erase:i/", "erase:e/", "erase:s/", phaseErased, phaseShredded, phaseRotated}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig(t)
			c := openTest(t, cfg)
			ingestAll(t, c,
				`{"type":"identify","messageId":"r1","userId":"crash","anonymousId":"crash-dev","traits":{"email":"crash@example.com"},"timestamp":"2026-10-01T09:00:00Z"}`,
				`{"type":"track","messageId":"r2","userId":"crash","event":"Order Completed","timestamp":"2026-10-01T09:01:00Z"}`,
			)
			crash := errors.New("simulated crash at " + step)
			c.eraseHook = func(s string) error {
				if s == step {
					return crash
				}
				return nil
			}
			id := identity.Identifier{Type: identity.Email, Value: "crash@example.com"}
			r, _, err := c.HandleRequest(ctx, RequestSuppressWithDelete, "gdpr", id)
			if !errors.Is(err, crash) {
				t.Fatalf("delete: %v", err)
			}
			before := strings.HasPrefix(step, "erase:")
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			c = openTest(t, cfg) // the next Open resumes
			got, err := c.Request(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if before {
				// Cleanly not started: the person is whole, the request was
				// closed as failed; a new request erases them.
				if p, err := c.Profile(ctx, id, ShowOptions{}); err != nil || p.EventCount != 2 {
					t.Fatalf("person after a crash before the erase committed: %+v %v", p, err)
				}
				if got.Status != StatusRejected {
					t.Fatalf("request after a crash before the erase committed: %s", got.Status)
				}
				if _, err := c.Delete(ctx, id); err != nil {
					t.Fatal(err)
				}
			} else if got.Status != StatusCompleted || got.Erasure != nil {
				t.Fatalf("request after resume: %s %+v", got.Status, got.Erasure)
			}
			if _, err := c.Access(ctx, id); !errors.Is(err, ErrProfileNotFound) {
				t.Fatalf("access after resumed deletion: %v", err)
			}
			certs := 0
			var cert DeletionCertificate
			tail, _ := c.AuditTail(ctx, 50)
			for _, e := range tail {
				if e.Kind == "privacy.delete" {
					certs++
					if err := json.Unmarshal(e.Data, &cert); err != nil {
						t.Fatal(err)
					}
				}
			}
			if certs != 1 || len(cert.KEKRetired) == 0 || len(cert.Profiles) != 3 {
				t.Fatalf("%d certificates, last %+v", certs, cert)
			}
			for _, p := range cert.Profiles {
				if _, err := c.vault.Unseal(ctx, p, nil, nil); !errors.Is(err, keys.ErrKeyShredded) {
					t.Fatalf("key of %s after resume: %v", p, err)
				}
			}
			if res, err := c.Ingest(ctx, []event.Message{msg(t, event.Track, `{"messageId":"late","anonymousId":"crash-dev","event":"E"}`)}); err != nil || res.Suppressed != 1 {
				t.Fatalf("late event: %+v %v", res, err)
			}
			if v, err := c.AuditVerify(ctx); err != nil || !v.OK {
				t.Fatalf("audit: %+v %v", v, err)
			}
		})
	}
}

// personKeys counts the keys each personal rule of the registry finds for
// the person holding id.
func personKeys(t *testing.T, c *CDP, id identity.Identifier) map[store.Prefix]int {
	t.Helper()
	ctx := context.Background()
	ik, err := c.identifierKey(id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.Prefix]int{}
	if err := c.store.View(ctx, func(tx *store.Txn) error {
		p, err := c.scope(ctx, tx, ik)
		if err != nil {
			return err
		}
		for i := range keyspace {
			if r := &keyspace[i]; r.personal() {
				keys, err := r.find(c, ctx, tx, p)
				if err != nil {
					return err
				}
				out[r.prefix] = len(keys)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// With a rotation window the deletion shreds the keys at once and leaves
// the KEK rotation to the window: the certificate says when it is due, the
// rotation (scheduled, or `keys rotate`) names the deletions it completes.
func TestDeletionRotationWindow(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Privacy.RotationWindow = Duration(time.Hour)
	var now atomic.Int64
	now.Store(fixedNow.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	if err := Init(ctx, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, cfg, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ingestAll(t, c, `{"type":"identify","messageId":"w1","userId":"win","traits":{"email":"win@example.com"}}`)
	cert, err := c.Delete(ctx, identity.Identifier{Type: identity.UserID, Value: "win"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.KEKRetired) != 0 || cert.KEKRotationDue == nil || !cert.KEKRotationDue.Equal(fixedNow.Add(time.Hour)) || len(cert.DEKsShredded) != len(cert.Profiles) {
		t.Fatalf("certificate with a window: %+v", cert)
	}
	if c.vault.Epoch() != 1 {
		t.Fatal("rotated before the window")
	}
	if done, err := c.rotateIfDue(ctx); err != nil || done {
		t.Fatalf("rotation before it is due: %v %v", done, err)
	}
	now.Store(fixedNow.Add(2 * time.Hour).UnixNano())
	// Concurrent checks (the scheduled one may start late and see the
	// rotation due too) rotate once between them.
	var wg sync.WaitGroup
	var done atomic.Int32
	for range 4 {
		wg.Go(func() {
			ok, err := c.rotateIfDue(ctx)
			if err != nil {
				t.Errorf("due rotation: %v", err)
			}
			if ok {
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if n := done.Load(); n > 1 || n == 0 && c.vault.Epoch() != 2 {
		t.Fatalf("due rotation ran %d times", n)
	}
	if c.vault.Epoch() != 2 {
		t.Fatalf("epoch after the due rotation: %d", c.vault.Epoch())
	}
	r, err := c.Request(ctx, cert.Request)
	if err != nil || r.RotationDue != nil || r.Status != StatusCompleted {
		t.Fatalf("request after the rotation: %+v %v", r, err)
	}
	tail, _ := c.AuditTail(ctx, 1)
	var rot struct {
		Completes []string `json:"completes_deletions"`
	}
	if len(tail) != 1 || tail[0].Kind != "keys.rotate" || json.Unmarshal(tail[0].Data, &rot) != nil || len(rot.Completes) != 1 || rot.Completes[0] != cert.Request {
		t.Fatalf("keys.rotate entry: %+v", tail)
	}
	if done, _ := c.rotateIfDue(ctx); done {
		t.Fatal("rotated again with nothing due")
	}
}

// A deletion asked for while an export runs (here between its evaluation
// and its ledger write) waits for the export: its certificate lists the
// export as a recipient (the rows were delivered), and no ledger record of
// the person is written after the erasure.
func TestDeleteWaitsForRunningExport(t *testing.T) {
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{"newsletter": {Kind: "email", Format: "csv", Dir: t.TempDir(), Fields: []string{"email"}}}
	c := openTest(t, cfg)
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"1","userId":"a","traits":{"email":"a@example.com","address":{"country":"GB"}},"timestamp":"2026-10-01T09:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"a","event":"Order Completed","properties":{"total":12},"timestamp":"2026-10-02T09:00:00Z"}`,
	)
	consentSet(t, c, "a@example.com", "marketing.communications.email", "granted", "2026-10-01T00:00:00Z", nil)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	started := erasureStarts(c)
	type outcome struct {
		cert DeletionCertificate
		err  error
	}
	erased := make(chan outcome, 1)
	c.beforeLedger = func() {
		go func() {
			cert, err := c.Delete(context.Background(), identity.Identifier{Type: identity.UserID, Value: "a"})
			erased <- outcome{cert, err}
		}()
		select {
		case <-started:
			t.Error("the erasure ran while an export was running")
		case <-time.After(100 * time.Millisecond): // it waits: the export goes on
		}
	}
	rep, err := c.ExportSegment(ctx, "buyers", "newsletter", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || rep.Rows != 1 {
		t.Fatalf("export %+v %v", rep, err)
	}
	o := <-erased
	if o.err != nil {
		t.Fatal(o.err)
	}
	if len(o.cert.Recipients) != 1 || o.cert.Recipients[0].Export != rep.ID {
		t.Fatalf("recipients %+v, want the export %s", o.cert.Recipients, rep.ID)
	}
	n := 0
	err = c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixExport), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error { n++; return nil })
	})
	if err != nil || n != 0 {
		t.Fatalf("%d ledger records after the erasure (%v)", n, err)
	}
}

// erasureStarts reports when an erasure of c reaches its transaction (its
// first step), through the fault-injection hook.
func erasureStarts(c *CDP) <-chan struct{} {
	started := make(chan struct{}, 1)
	c.eraseHook = func(string) error {
		select {
		case started <- struct{}{}:
		default:
		}
		return nil
	}
	return started
}
