package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
// the failed one unless it refused it at once.
func TestWebhookLedgerBeforeDelivery(t *testing.T) {
	t.Setenv("CUSTODY_TEST_HOOK_SECRET", "s3cret-for-tests")
	tests := []struct {
		name  string
		third []int // the answers to the third batch's attempts
		kept  int
	}{
		{"refused", []int{http.StatusForbidden}, 2},
		// The first attempt may have been kept; the 409 answers its
		// repeated Idempotency-Key.
		{"refused after a 503", []int{http.StatusServiceUnavailable, http.StatusConflict}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
			var seenInLedger []int
			third := tt.third
			// One person per batch; the third batch gets tt.third.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				seenInLedger = append(seenInLedger, ledger())
				if strings.HasSuffix(r.Header.Get("Idempotency-Key"), "-2") && len(third) > 0 {
					w.WriteHeader(third[0])
					third = third[1:]
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
				t.Fatalf("export with a failing third batch: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, n := range seenInLedger {
				if n != 4 {
					t.Fatalf("request %d found %d ledger entries, want all 4 before every batch (%v)", i, n, seenInLedger)
				}
			}
			if n := ledger(); n != tt.kept {
				t.Fatalf("%d ledger entries after the failed batch, want %d", n, tt.kept)
			}
		})
	}
}

// An export to a webhook without its signing secret fails before it
// reads or records anything.
func TestWebhookWithoutSecret(t *testing.T) {
	t.Setenv("CUSTODY_TEST_NO_SECRET", "")
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{
		"crm": {Kind: "email", URL: "http://127.0.0.1:1/never", SecretEnv: "CUSTODY_TEST_NO_SECRET", Fields: []string{"email"}},
	}
	c := openTest(t, cfg)
	ctx := context.Background()
	ingestAll(t, c, `{"type":"track","messageId":"1","userId":"w","event":"Order Completed","properties":{"total":5}}`)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"essential.service","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	reached := false
	c.beforeLedger = func() { reached = true }
	if _, err := c.ExportSegment(ctx, "buyers", "crm", time.Time{}); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "CUSTODY_TEST_NO_SECRET") {
		t.Fatalf("export without a secret: %v", err)
	}
	if reached {
		t.Fatal("the export got as far as the ledger")
	}
}
