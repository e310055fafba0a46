package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/store"
)

func TestWebhookExport(t *testing.T) {
	const secret = "s3cret-for-tests"
	t.Setenv("CUSTODY_TEST_HOOK_SECRET", secret)
	var mu sync.Mutex
	calls, fail := 0, 2
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("X-Custody-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) || r.Header.Get("Idempotency-Key") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b struct {
			Rows []map[string]any `json:"rows"`
		}
		_ = json.Unmarshal(body, &b)
		got = append(got, b.Rows...)
	}))
	defer srv.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer refuse.Close()

	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{
		"crm":    {Kind: "email", URL: srv.URL, SecretEnv: "CUSTODY_TEST_HOOK_SECRET", Fields: []string{"email", "phone", "first_name"}},
		"closed": {Kind: "email", URL: refuse.URL, SecretEnv: "CUSTODY_TEST_HOOK_SECRET", Fields: []string{"email"}},
	}
	c := openTest(t, cfg)
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"1","userId":"w","traits":{"email":"hook@example.com","phone":"+15555550100","first_name":"Hook","address":{"country":"US","state":"CA"}}}`,
		`{"type":"track","messageId":"2","userId":"w","event":"Order Completed","properties":{"total":5}}`,
	)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	rep, err := c.ExportSegment(ctx, "buyers", "crm", now)
	if err != nil || rep.Rows != 1 {
		t.Fatalf("export %+v %v", rep, err)
	}
	if calls != 3 || len(got) != 1 || got[0]["email"] != "hook@example.com" || got[0]["phone"] != nil {
		t.Fatalf("receiver saw %d calls, rows %v", calls, got)
	}
	// A receiver that refuses fails the export, and no ledger entry is written for it.
	if _, err := c.ExportSegment(ctx, "buyers", "closed", now); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("refused export: %v", err)
	}
	n := 0
	_ = c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixExport), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error { n++; return nil })
	})
	if n != 1 {
		t.Fatalf("ledger entries = %d, want 1 (only the delivered export)", n)
	}
}

// The ledger is written before the rows go out (a receiver finds every
// person of the export in it already), and a failed export keeps the
// entries of the rows the receiver may hold: the batches it accepted, and
// the failed one unless it refused it.
func TestWebhookLedgerBeforeDelivery(t *testing.T) {
	t.Setenv("CUSTODY_TEST_HOOK_SECRET", "s3cret-for-tests")
	var c *CDP
	ledger := func() int {
		n := 0
		if err := c.store.View(context.Background(), func(tx *store.Txn) error {
			return tx.Scan([]byte(store.PrefixExport), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error { n++; return nil })
		}); err != nil {
			t.Error(err)
		}
		return n
	}
	var mu sync.Mutex
	batches, seenInLedger := 0, []int{}
	// One person per batch; the third batch is refused.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seenInLedger = append(seenInLedger, ledger())
		if batches++; batches == 3 {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{
		"crm": {Kind: "email", URL: srv.URL, SecretEnv: "CUSTODY_TEST_HOOK_SECRET", Fields: []string{"email"}, BatchSize: 1},
	}
	c = openTest(t, cfg)
	ctx := context.Background()
	var msgs []string
	for i := range 4 {
		msgs = append(msgs,
			fmt.Sprintf(`{"type":"identify","messageId":"i%d","userId":"w%d","traits":{"email":"w%d@example.com","address":{"country":"US","state":"CA"}}}`, i, i, i),
			fmt.Sprintf(`{"type":"track","messageId":"t%d","userId":"w%d","event":"Order Completed","properties":{"total":5}}`, i, i))
	}
	ingestAll(t, c, msgs...)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	_, err := c.ExportSegment(ctx, "buyers", "crm", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "batch 2") {
		t.Fatalf("export with a refused third batch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seenInLedger, []int{4, 4, 4}) {
		t.Fatalf("the receiver found %v ledger entries at each batch, want all 4 before every one", seenInLedger)
	}
	if n := ledger(); n != 2 {
		t.Fatalf("%d ledger entries after the refused batch, want 2 (the accepted batches)", n)
	}
}
