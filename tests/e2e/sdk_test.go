package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSegmentNodeSDK sends a customer journey with the official Segment
// Node SDK (tests/sdk/send.mjs) to a real server and reads it back with
// `custody profile show` through the admin socket: every call must arrive
// with its fields, on one profile that carries both the userId and the
// anonymousId.
func TestSegmentNodeSDK(t *testing.T) {
	sdkDir := repoPath(t, "tests", "sdk")
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node is not installed"
	default:
		if _, err := os.Stat(filepath.Join(sdkDir, "node_modules", "@segment", "analytics-node", "package.json")); err != nil {
			missing = "tests/sdk/node_modules/@segment/analytics-node is missing (run `make sdk-deps`, i.e. `npm ci` in tests/sdk)"
		}
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the Segment SDK compatibility test cannot run: %s", missing)
		}
		t.Skipf("skipping the Segment SDK compatibility test: %s", missing)
	}

	dir := initDataDir(t)
	key := createKey(t, dir, "ingest")
	srv := startServer(t, dir)

	modes := []struct {
		name, userID, anonID string
		args                 []string
	}{
		// Phase by phase: browsing, login, shopping, each delivered first.
		{"phased", "sdk-user-4711", "sdk-anon-0c5e9f3a-77d2-4e1b", nil},
		// All at once: concurrent batches, committed in any order; the
		// identity graph must still end with one person.
		{"burst", "sdk-user-4712", "sdk-anon-9b1d7e44-02aa-4c3f", []string{"--burst"}},
	}
	persons := map[string]*profileView{}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			persons[m.name] = runSDKJourney(t, node, sdkDir, dir, srv, key, m.userID, m.anonID, m.args...)
		})
	}

	// The same data reads back without the server (direct store open).
	srv.stop(t)
	for _, m := range modes {
		p := persons[m.name]
		if p == nil {
			continue
		}
		p2, _ := showProfile(t, dir, "anonymous-id", m.anonID)
		if p2.ID != p.ID || p2.EventCount != p.EventCount {
			t.Errorf("%s: without the server: profile %s with %d events, with it: %s with %d", m.name, p2.ID, p2.EventCount, p.ID, p.EventCount)
		}
	}
}

// runSDKJourney runs send.mjs against srv and checks what arrived; it
// returns the profile read back through the server.
func runSDKJourney(t *testing.T, node, sdkDir, dir string, srv *server, key, userID, anonID string, extra ...string) *profileView {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args := append([]string{"send.mjs", "--host", srv.URL, "--write-key", key, "--user-id", userID, "--anonymous-id", anonID}, extra...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = sdkDir
	cmd.Env = baseEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("node send.mjs failed (%v):\nstdout:\n%s\nstderr:\n%s\nserver stderr:\n%s", err, out, stderr.String(), srv.stderr)
		}
		t.Fatalf("node send.mjs: %v", err)
	}
	var report struct {
		Sent []struct {
			Type, Event, Name, MessageID string
		} `json:"sent"`
		Requests int   `json:"requests"`
		Statuses []int `json:"statuses"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("send.mjs output: %v\n%s", err, out)
	}
	if len(report.Sent) != 7 {
		t.Fatalf("send.mjs confirmed %d calls, want 7: %s", len(report.Sent), out)
	}
	if report.Requests < 3 {
		t.Errorf("the SDK made %d HTTP requests, want at least 3 (flushAt 3, 7 calls)", report.Requests)
	}

	// Read back through the running server (the CLI finds the socket).
	p, _ := showProfile(t, dir, "user-id", userID)
	pa, _ := showProfile(t, dir, "anonymous-id", anonID)
	if p.ID != pa.ID {
		t.Fatalf("the anonymousId is on profile %s, the userId on %s: not stitched", pa.ID, p.ID)
	}
	if !p.hasIdentifier("user_id", userID) || !p.hasIdentifier("anonymous_id", anonID) {
		t.Errorf("profile identifiers = %+v, want user_id %s and anonymous_id %s", p.Identifiers, userID, anonID)
	}
	wantTraits := map[string]string{"email": `"sdk.shopper@example.com"`, "first_name": `"Ada"`, "plan": `"pro"`, "logins": `3`}
	for k, v := range wantTraits {
		if got := string(p.Traits[k]); got != v {
			t.Errorf("trait %s = %s, want %s", k, got, v)
		}
	}

	byID := map[string]storedEvent{}
	for _, e := range p.Events {
		if _, dup := byID[e.MessageID]; dup {
			t.Errorf("messageId %s stored twice", e.MessageID)
		}
		byID[e.MessageID] = e
	}
	if len(p.Events) != len(report.Sent) {
		t.Errorf("profile has %d events, the SDK delivered %d", len(p.Events), len(report.Sent))
	}
	byLabel := map[string]storedEvent{}
	for _, s := range report.Sent {
		e, ok := byID[s.MessageID]
		if !ok {
			t.Errorf("%s %s%s (messageId %s) was acknowledged to the SDK but is not stored", s.Type, s.Event, s.Name, s.MessageID)
			continue
		}
		if e.Type != s.Type || e.Event != s.Event || e.Name != s.Name {
			t.Errorf("messageId %s stored as %s %q %q, sent as %s %q %q", s.MessageID, e.Type, e.Event, e.Name, s.Type, s.Event, s.Name)
		}
		var lib struct {
			Library struct{ Name, Version string } `json:"library"`
		}
		_ = json.Unmarshal(e.Context, &lib)
		if lib.Library.Name != "@segment/analytics-node" || lib.Library.Version == "" {
			t.Errorf("%s %s: context.library = %+v, want the SDK's name and version", e.Type, e.MessageID, lib.Library)
		}
		byLabel[s.Type+":"+s.Event+s.Name] = e
	}
	if t.Failed() {
		t.FailNow()
	}

	// Field by field, per call.
	field := func(raw json.RawMessage, path ...string) any {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil
		}
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	check := func(label string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v (%T), want %v", label, got, got, want)
		}
	}
	home := byLabel["page:Home"]
	check("page Home anonymousId", home.AnonymousID, anonID)
	check("page Home userId", home.UserID, "")
	check("page Home category", home.Category, "Shop")
	check("page Home properties.path", field(home.Properties, "path"), "/")
	viewed := byLabel["track:Product Viewed"]
	check("Product Viewed anonymousId", viewed.AnonymousID, anonID)
	check("Product Viewed properties.price", field(viewed.Properties, "price"), 249.5)
	ident := byLabel["identify:"]
	check("identify userId", ident.UserID, userID)
	check("identify anonymousId", ident.AnonymousID, anonID)
	check("identify traits.email", field(ident.Traits, "email"), "sdk.shopper@example.com")
	check("identify traits.first_name", field(ident.Traits, "first_name"), "Ada")
	added := byLabel["track:Product Added"]
	check("Product Added userId", added.UserID, userID)
	check("Product Added properties.cart_id", field(added.Properties, "cart_id"), "cart-9")
	check("Product Added properties.quantity", field(added.Properties, "quantity"), 1.0)
	checkout := byLabel["page:Checkout"]
	check("page Checkout properties.url", field(checkout.Properties, "url"), "https://shop.example/checkout")
	order := byLabel["track:Order Completed"]
	check("Order Completed userId", order.UserID, userID)
	check("Order Completed properties.total", field(order.Properties, "total"), 274.45)
	check("Order Completed properties.order_id", field(order.Properties, "order_id"), "ord-4711")
	check("Order Completed properties.currency", field(order.Properties, "currency"), "EUR")
	check("Order Completed context.ip", field(order.Context, "ip"), "203.0.113.7")
	if products, _ := field(order.Properties, "products").([]any); len(products) != 2 {
		t.Errorf("Order Completed properties.products = %v, want 2 products", field(order.Properties, "products"))
	} else {
		first, _ := products[0].(map[string]any)
		second, _ := products[1].(map[string]any)
		check("products[0].sku", first["sku"], "ESP-1")
		check("products[0].price", first["price"], 249.5)
		check("products[1].sku", second["sku"], "BEAN-5")
		check("products[1].quantity", second["quantity"], 2.0)
	}
	coupon := byLabel["track:Coupon Applied"]
	want := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	if !coupon.OriginalTimestamp.Equal(want) {
		t.Errorf("Coupon Applied originalTimestamp = %s, want the SDK's explicit %s", coupon.OriginalTimestamp, want)
	}
	// timestamp is corrected for clock skew (receivedAt - sentAt), as
	// Segment does; it stays close to what the SDK sent.
	if d := coupon.Timestamp.Sub(want); d < -time.Hour || d > time.Hour {
		t.Errorf("Coupon Applied timestamp = %s, far from the SDK's %s", coupon.Timestamp, want)
	}

	return p
}
