package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPresetResolve(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		in      DestinationConfig
		want    DestinationConfig
		wantErr string
	}{
		{"preset fills kind, purpose, fields and format",
			DestinationConfig{Preset: "email_list_sync", Dir: dir},
			DestinationConfig{Preset: "email_list_sync", Kind: "email", Purpose: "marketing.communications.email", Format: "csv", Dir: dir,
				Fields: []string{"email", "first_name", "consent_at"}}, ""},
		{"fields may narrow",
			DestinationConfig{Preset: "google_customer_match", Format: "jsonl", Dir: dir, Fields: []string{"email_sha256"}},
			DestinationConfig{Preset: "google_customer_match", Kind: "ads", Purpose: "marketing.advertising.third_party.targeted", Format: "jsonl", Dir: dir,
				Fields: []string{"email_sha256"}}, ""},
		{"a webhook keeps no format",
			DestinationConfig{Preset: "support_tool", URL: "https://support.example/hook", SecretEnv: "S"},
			DestinationConfig{Preset: "support_tool", Kind: "support", Purpose: "essential.service.operations", URL: "https://support.example/hook", SecretEnv: "S",
				Fields: []string{"email", "tier", "lifecycle_stage"}}, ""},
		{"a more specific purpose",
			DestinationConfig{Preset: "meta_custom_audience", Dir: dir, Purpose: "marketing.advertising.third_party.targeted.lookalike"},
			DestinationConfig{Preset: "meta_custom_audience", Kind: "ads", Purpose: "marketing.advertising.third_party.targeted.lookalike", Format: "csv", Dir: dir,
				Fields: []string{"email_sha256", "phone_sha256"}}, ""},
		{"fields may not widen", DestinationConfig{Preset: "google_customer_match", Dir: dir, Fields: []string{"email_sha256", "email"}},
			DestinationConfig{}, `field "email" is not one of them`},
		{"kind must match", DestinationConfig{Preset: "email_list_sync", Kind: "ads", Dir: dir},
			DestinationConfig{}, "kind email, not ads"},
		{"purpose may not change", DestinationConfig{Preset: "support_tool", Purpose: "marketing", Dir: dir},
			DestinationConfig{}, "not marketing"},
		{"unknown preset", DestinationConfig{Preset: "fax_blast", Dir: dir},
			DestinationConfig{}, `unknown preset "fax_blast"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				cfg := testConfig(t)
				cfg.Destinations = map[string]DestinationConfig{"d": tc.in}
				if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "destinations.d.preset") {
					t.Fatalf("Validate: %v, want an error naming destinations.d.preset", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if string(gj) != string(wj) {
				t.Fatalf("got  %s\nwant %s", gj, wj)
			}
			cfg := testConfig(t)
			cfg.Destinations = map[string]DestinationConfig{"d": tc.in}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

// presetPeople are four people with every trait a destination could
// want: consent decides who reaches which preset.
func presetPeople(t *testing.T, c *CDP) {
	t.Helper()
	ingestAll(t, c,
		// All consents: every preset.
		`{"type":"identify","messageId":"1","userId":"ada","traits":{"email":" Ada@Example.COM ","first_name":"Ada","last_name":"Lovelace","phone":"+49 151 1234 5678","tier":"gold","lifecycle_stage":"repeat","birth_date":"1815-12-10","address":{"country":"DE","city":"Berlin"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"ada","event":"Order Completed","properties":{"total":50},"timestamp":"2026-09-02T00:00:00Z"}`,
		// Email consent only: no ads preset.
		`{"type":"identify","messageId":"3","userId":"bea","traits":{"email":"bea@example.com","first_name":"Bea","last_name":"Bauer","phone":"0151 7654321","tier":"silver","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"4","userId":"bea","event":"Order Completed","properties":{"total":20},"timestamp":"2026-09-03T00:00:00Z"}`,
		// No consent at all: only the support tool (essential purpose).
		`{"type":"identify","messageId":"5","userId":"cy","traits":{"email":"cy@example.com","first_name":"Cy","phone":"+33 6 12 34 56 78","tier":"bronze","lifecycle_stage":"first_time","address":{"country":"FR"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"6","userId":"cy","event":"Order Completed","properties":{"total":10},"timestamp":"2026-09-04T00:00:00Z"}`,
		// Marketing granted as a whole (covers email and advertising),
		// advertising withdrawn later.
		`{"type":"identify","messageId":"7","userId":"dan","traits":{"email":"dan@example.com","first_name":"Dan","phone":"+44 7700 900123","address":{"country":"GB"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"8","userId":"dan","event":"Order Completed","properties":{"total":10},"timestamp":"2026-09-05T00:00:00Z"}`,
	)
	consentSet(t, c, "ada@example.com", "marketing.communications.email", "granted", "2026-09-01T10:00:00Z", nil)
	consentSet(t, c, "ada@example.com", "marketing.advertising.third_party.targeted", "granted", "2026-09-01T11:00:00Z", nil)
	consentSet(t, c, "bea@example.com", "marketing.communications.email", "granted", "2026-09-02T10:00:00Z", nil)
	consentSet(t, c, "dan@example.com", "marketing", "granted", "2026-09-03T10:00:00Z", nil)
	consentSet(t, c, "dan@example.com", "marketing.advertising", "withdrawn", "2026-09-04T10:00:00Z", nil)
}

// Every preset exports only its declared fields, to exactly the people
// the gate allows for the preset's purpose; the files equal the golden
// ones (rows sorted: their order follows profile ids).
func TestPresetsExportOnlyDeclaredFields(t *testing.T) {
	out := t.TempDir()
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{}
	for _, p := range Presets() {
		cfg.Destinations[p.Name] = DestinationConfig{Preset: p.Name, Dir: out}
		cfg.Destinations[p.Name+"_jsonl"] = DestinationConfig{Preset: p.Name, Dir: out, Format: "jsonl"}
	}
	c := openTest(t, cfg)
	ctx := context.Background()
	presetPeople(t, c)
	// Everyone's a buyer, for an essential purpose: the preset's purpose
	// alone decides who goes where.
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"essential.service.operations","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	wantRows := map[string]int{"email_list_sync": 3, "google_customer_match": 1, "meta_custom_audience": 1, "support_tool": 4}
	for _, p := range Presets() {
		t.Run(p.Name, func(t *testing.T) {
			rep, err := c.ExportSegment(ctx, "buyers", p.Name, now)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rows != wantRows[p.Name] || rep.DestinationPurpose != p.Purpose || !slices.Equal(rep.Fields, p.Fields) {
				t.Fatalf("report %+v, want %d rows, purpose %s, fields %v", rep, wantRows[p.Name], p.Purpose, p.Fields)
			}
			if rep.ExportDenied != 4-rep.Rows {
				t.Fatalf("export_denied = %d, want %d", rep.ExportDenied, 4-rep.Rows)
			}
			b, err := os.ReadFile(rep.Path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if lines[0] != strings.Join(p.Fields, ",") {
				t.Fatalf("header %q, want the declared fields %v", lines[0], p.Fields)
			}
			sort.Strings(lines[1:])
			got := strings.Join(lines, "\n") + "\n"
			golden := filepath.Join("testdata", "presets", p.Name+".csv")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("export differs from %s:\n%s\nwant:\n%s", golden, got, want)
			}
			// Nothing undeclared, whatever the person has.
			for _, leak := range []string{"Lovelace", "Bauer", "Berlin", "1815", "+49", "151"} {
				if strings.Contains(got, leak) {
					t.Fatalf("%q leaked into the export:\n%s", leak, got)
				}
			}
			// JSON Lines: the same rows, only declared keys.
			rep, err = c.ExportSegment(ctx, "buyers", p.Name+"_jsonl", now)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = os.ReadFile(rep.Path)
			n := 0
			for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
				var row map[string]any
				if err := json.Unmarshal([]byte(line), &row); err != nil {
					t.Fatal(err)
				}
				for k := range row {
					if !slices.Contains(p.Fields, k) {
						t.Fatalf("jsonl row carries %q, not a field of %s", k, p.Name)
					}
				}
				n++
			}
			if n != wantRows[p.Name] {
				t.Fatalf("jsonl rows = %d", n)
			}
		})
	}
}

// The hashes are the platforms' own: SHA-256 of the trimmed, lower-cased
// email; of the E.164 phone with + for Google, without it for Meta.
func TestPresetHashing(t *testing.T) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	b, err := os.ReadFile(filepath.Join("testdata", "presets", "google_customer_match.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sum("ada@example.com") + "," + sum("+4915112345678"); !strings.Contains(string(b), want) {
		t.Fatalf("google: want row %s in\n%s", want, b)
	}
	b, err = os.ReadFile(filepath.Join("testdata", "presets", "meta_custom_audience.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sum("ada@example.com") + "," + sum("4915112345678"); !strings.Contains(string(b), want) {
		t.Fatalf("meta: want row %s in\n%s", want, b)
	}
}

// A segment's purpose and the preset's purpose must both be allowed: an
// email segment exported to an ads preset reaches only people who allowed
// both.
func TestPresetPurposeIsGatedPerPerson(t *testing.T) {
	out := t.TempDir()
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{"google": {Preset: "google_customer_match", Dir: out}}
	c := openTest(t, cfg)
	ctx := context.Background()
	presetPeople(t, c)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"mail_buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	rep, err := c.ExportSegment(ctx, "mail_buyers", "google", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	// ada, bea, dan allowed email (cy not: not evaluated); of them only
	// ada allowed third-party advertising.
	if rep.NotConsented != 1 || rep.Rows != 1 || rep.ExportDenied != 2 {
		t.Fatalf("report %+v", rep)
	}
	tail, _ := c.AuditTail(ctx, 1)
	var data map[string]any
	_ = json.Unmarshal(tail[0].Data, &data)
	if tail[0].Kind != "segment.export" || data["preset"] != "google_customer_match" || data["destination_purpose"] != "marketing.advertising.third_party.targeted" {
		t.Fatalf("audit %s %s", tail[0].Kind, tail[0].Data)
	}
}

// A preset over a webhook sends only its fields too.
func TestPresetWebhook(t *testing.T) {
	const secret = "preset-hook-secret"
	t.Setenv("CUSTODY_TEST_PRESET_SECRET", secret)
	var mu sync.Mutex
	var rows []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("X-Custody-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b struct {
			Rows []map[string]any `json:"rows"`
		}
		_ = json.Unmarshal(body, &b)
		mu.Lock()
		rows = append(rows, b.Rows...)
		mu.Unlock()
	}))
	defer srv.Close()
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{"support": {Preset: "support_tool", URL: srv.URL, SecretEnv: "CUSTODY_TEST_PRESET_SECRET"}}
	c := openTest(t, cfg)
	ctx := context.Background()
	presetPeople(t, c)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"essential.service.operations","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	rep, err := c.ExportSegment(ctx, "buyers", "support", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || rep.Rows != 4 {
		t.Fatalf("export %+v %v", rep, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rows) != 4 {
		t.Fatalf("receiver got %d rows", len(rows))
	}
	for _, r := range rows {
		for k := range r {
			if k != "email" && k != "tier" && k != "lifecycle_stage" {
				t.Fatalf("support row carries %q: %v", k, r)
			}
		}
	}
}
