package core

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/segments"
)

var fixedNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Store.BlockCacheMiB, cfg.Store.IndexCacheMiB, cfg.Store.MemTableMiB = 16, 16, 16
	return cfg
}

func openTest(t *testing.T, cfg Config) *CDP {
	t.Helper()
	ctx := context.Background()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "store")); err != nil {
		if err := Init(ctx, cfg, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open(ctx, cfg, Options{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// evaluateAt evaluates the applied segment name over everyone at now, in
// one read.
func evaluateAt(t *testing.T, c *CDP, name string, now time.Time) *segments.SegmentResult {
	t.Helper()
	ctx := context.Background()
	set, err := c.segmentSet(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var r *segments.SegmentResult
	clusters := c.clusterList() // as EvaluateSegment: from memory when it holds them all
	if err := c.store.View(ctx, func(tx *store.Txn) error {
		r, err = c.run(ctx, tx, set, name, now, clusters.sameAs(c.clusters))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// memberRefs returns the references of r's members, sorted.
func memberRefs(r *segments.SegmentResult) []string {
	out := []string{}
	for _, m := range r.Members {
		out = append(out, m.Ref())
	}
	slices.Sort(out)
	return out
}

func msg(t *testing.T, typ event.Type, body string) event.Message {
	t.Helper()
	m, err := event.DecodeMessage([]byte(body), typ, fixedNow)
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return m
}

func TestIngestAndShow(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	batch := []event.Message{
		msg(t, event.Page, `{"messageId":"m1","anonymousId":"anon-1","name":"Home","timestamp":"2026-10-01T10:00:00Z"}`),
		msg(t, event.Identify, `{"messageId":"m2","anonymousId":"anon-1","userId":"u-1","traits":{"email":"ada@example.com","first_name":"Ada"},"timestamp":"2026-10-01T10:01:00Z"}`),
		msg(t, event.Track, `{"messageId":"m3","userId":"u-1","event":"Order Completed","properties":{"order_id":"o1","total":42.5},"timestamp":"2026-10-01T10:05:00Z"}`),
		msg(t, event.Track, `{"messageId":"m4","anonymousId":"anon-2","event":"Product Viewed","timestamp":"2026-10-02T10:05:00Z"}`),
	}
	res, err := c.Ingest(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	// Nodes: anon-1, u-1, the email, anon-2; anon-1 and the email fold into u-1's person.
	if res != (IngestResult{Accepted: 4, ProfilesCreated: 4, Merges: 2}) {
		t.Fatalf("result = %+v", res)
	}
	tests := []struct {
		name   string
		id     identity.Identifier
		events int
		err    error
	}{
		{"by user id", identity.Identifier{Type: identity.UserID, Value: "u-1"}, 3, nil},
		{"by anonymous id stitched to user", identity.Identifier{Type: identity.AnonymousID, Value: "anon-1"}, 3, nil},
		{"other visitor", identity.Identifier{Type: identity.AnonymousID, Value: "anon-2"}, 1, nil},
		{"unknown", identity.Identifier{Type: identity.UserID, Value: "nobody"}, 0, ErrProfileNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Profile(ctx, tt.id, ShowOptions{})
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if len(p.Events) != tt.events || p.EventCount != tt.events {
				t.Fatalf("events = %d/%d, want %d", len(p.Events), p.EventCount, tt.events)
			}
		})
	}
	p, _ := c.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: "u-1"}, ShowOptions{})
	if string(p.Traits["email"]) != `"ada@example.com"` || len(p.Identifiers) != 3 {
		t.Fatalf("profile = %+v", p)
	}
	// Events come back oldest first with their content.
	if p.Events[0].Name != "Home" || p.Events[2].Event != "Order Completed" {
		t.Fatalf("events out of order: %+v", p.Events)
	}
}

func TestDuplicateMessageIDsAreIgnored(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	m := msg(t, event.Track, `{"messageId":"dup","userId":"u","event":"X"}`)
	for i, want := range []IngestResult{{Accepted: 1, ProfilesCreated: 1}, {Duplicates: 1}} {
		res, err := c.Ingest(ctx, []event.Message{m})
		if err != nil || res != want {
			t.Fatalf("attempt %d: %+v, %v; want %+v", i, res, err, want)
		}
	}
	// Within one batch too.
	m2 := msg(t, event.Track, `{"messageId":"dup2","userId":"u","event":"X"}`)
	res, _ := c.Ingest(ctx, []event.Message{m2, m2})
	if res.Accepted != 1 || res.Duplicates != 1 {
		t.Fatalf("in-batch dup: %+v", res)
	}
	p, _ := c.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: "u"}, ShowOptions{})
	if p.EventCount != 2 {
		t.Fatalf("events = %d, want 2", p.EventCount)
	}
}

func TestTraitsLatestObservationWins(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	newer := msg(t, event.Identify, `{"userId":"u","traits":{"plan":"gold"},"timestamp":"2026-10-05T00:00:00Z"}`)
	older := msg(t, event.Identify, `{"userId":"u","traits":{"plan":"silver","city":"Oslo"},"timestamp":"2026-10-01T00:00:00Z"}`)
	for _, m := range []event.Message{newer, older} {
		if _, err := c.Ingest(ctx, []event.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := c.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: "u"}, ShowOptions{})
	if string(p.Traits["plan"]) != `"gold"` || string(p.Traits["city"]) != `"Oslo"` {
		t.Fatalf("traits = %s %s", p.Traits["plan"], p.Traits["city"])
	}
}

// Concurrent ingestion of the same new identifiers must create one profile:
// the single committer serialises resolution.
func TestConcurrentIngestCreatesOneProfile(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := msg(t, event.Track, fmt.Sprintf(`{"messageId":"c%d","anonymousId":"same-device","event":"E"}`, i))
			if _, err := c.Ingest(ctx, []event.Message{m}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	p, err := c.Profile(ctx, identity.Identifier{Type: identity.AnonymousID, Value: "same-device"}, ShowOptions{})
	if err != nil || p.EventCount != 16 {
		t.Fatalf("profile: %v, events %d", err, p.EventCount)
	}
}

func TestReopenKeepsData(t *testing.T) {
	cfg := testConfig(t)
	c := openTest(t, cfg)
	ctx := context.Background()
	if _, err := c.Ingest(ctx, []event.Message{msg(t, event.Track, `{"userId":"u","event":"E"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := openTest(t, cfg)
	if _, err := c2.Profile(ctx, identity.Identifier{Type: identity.UserID, Value: "u"}, ShowOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestNotInitialised(t *testing.T) {
	cfg := testConfig(t)
	_, err := Open(context.Background(), cfg, Options{})
	if !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(cfg.DataDir); !errors.Is(statErr, fs.ErrNotExist) {
		t.Fatal("Open of an uninitialised directory created it")
	}
}

func TestWrongMasterKeyChangesNothing(t *testing.T) {
	cfg := testConfig(t)
	c := openTest(t, cfg)
	if _, err := c.Ingest(context.Background(), []event.Message{msg(t, event.Track, `{"userId":"u","event":"E"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, cfg.DataDir)
	other := cfg
	other.MasterKeyHex = strings.Repeat("ab", 32)
	_, err := Open(context.Background(), other, Options{})
	if !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Fatalf("err = %v, want ErrWrongMasterKey", err)
	}
	if after := hashTree(t, cfg.DataDir); after != before {
		t.Fatal("opening with the wrong master key changed the data directory")
	}
}

func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// No plaintext identifier, trait or property may reach the disk: both the
// store and the vault are scanned as raw bytes after ingestion and after
// closing (which flushes memtables to tables).
func TestNoPlaintextOnDisk(t *testing.T) {
	cfg := testConfig(t)
	c := openTest(t, cfg)
	ctx := context.Background()
	secrets := []string{"grace.hopper@example.com", "Grace", "Hopperton", "user-grace-77", "anon-grace-device", "SW1A 1AA", "Hopperton Street"}
	var batch []event.Message
	for i := 0; i < 200; i++ {
		batch = append(batch, msg(t, event.Identify, fmt.Sprintf(
			`{"messageId":"id-%d","userId":"user-grace-77","anonymousId":"anon-grace-device","traits":{"email":"grace.hopper@example.com","first_name":"Grace","last_name":"Hopperton","address":{"postal_code":"SW1A 1AA","street":"Hopperton Street"}}}`, i)))
	}
	if _, err := c.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	check := func(stage string) {
		_ = filepath.WalkDir(cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, _ := os.ReadFile(p)
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s: %q found in plaintext in %s", stage, s, p)
				}
			}
			return nil
		})
	}
	check("while open")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")
}

// TestInitConfigIsTheDefaults: the file `custody init` writes says its
// values are the defaults; loading it changes nothing.
func TestInitConfigIsTheDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(p, []byte(defaultConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := cfg.LoadConfigFile(p, false); err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("the written file is not the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, key string
	}{
		{"unknown key", "server:\n  adress: x\n", "adress"},
		{"bad duration", "ingest:\n  dedup_window: soon\n", "soon"},
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"cache too small", "store:\n  block_cache_mib: 0\n", "store.block_cache_mib"},
		{"table size", "store:\n  table_mib: -1\n", "store.table_mib"},
		{"wrong type", "ingest:\n  group_max_messages: many\n", "group_max_messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "custody.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			err := cfg.LoadConfigFile(p, false)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.key) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want an ErrInvalidConfig naming %q", err, tt.key)
			}
		})
	}
}
