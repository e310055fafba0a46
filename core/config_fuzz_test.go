package core

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzConfigFile: any custody.yaml either loads or is refused with an
// error matching ErrInvalidConfig (never a panic, never a half-applied
// file that then passes validation with garbage); a loaded one validates
// or names the wrong key.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(defaultConfigYAML))
	for _, s := range []string{
		"", "server: {addr: ':0'}\n", "ingest:\n  dedup_window: 3d\n", "ingest:\n  dedup_window: NaNd\n",
		"server:\n  read_timeout: -1s\n", "unknown_key: 1\n", "server:\n  addr: [1, 2]\n",
		"destinations:\n  out: {kind: email, format: csv, dir: /tmp/x, fields: [email]}\n",
		"identity:\n  rules: {email: {priority: 1}}\n", "x: &a [*a]\n", "\t\tbad: indent\n", "---\n---\n",
		"consent:\n  categories: {marketing: [marketing.communications]}\n", "log: {level: loud}\n",
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "custody.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c := DefaultConfig()
		c.DataDir = "/nonexistent/custody-fuzz"
		if err := c.LoadConfigFile(path, false); err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error does not match ErrInvalidConfig: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("validation error %T does not name a key: %v", err, err)
			}
			return
		}
		for name, d := range map[string]Duration{"server.read_timeout": c.Server.ReadTimeout, "ingest.dedup_window": c.Ingest.DedupWindow} {
			if d <= 0 {
				t.Fatalf("%s = %s passed validation", name, time.Duration(d))
			}
		}
	})
}

// FuzzParseDuration: a duration is accepted only if it means what it says:
// Go durations as time.ParseDuration reads them, and N days for a finite
// N that fits a time.Duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "0.5d", "30s", "1h30m", "-1d", "NaNd", "Infd", "1e300d", "d", " 3d ", "106751d", "106752d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		v := strings.TrimSpace(s)
		if days, ok := strings.CutSuffix(v, "d"); ok {
			n, perr := strconv.ParseFloat(days, 64)
			if perr != nil || math.IsNaN(n) || math.IsInf(n, 0) || math.Abs(n*float64(24*time.Hour)) >= math.MaxInt64 {
				t.Fatalf("ParseDuration(%q) = %s, want an error", s, d)
			}
			return
		}
		if want, err := time.ParseDuration(v); err != nil || want != d {
			t.Fatalf("ParseDuration(%q) = %s, time.ParseDuration says %s, %v", s, d, want, err)
		}
	})
}

// FuzzDecodeMembers: a stored cluster record either decodes to members
// that encode back to the same bytes, or is refused as corrupt.
func FuzzDecodeMembers(f *testing.F) {
	tok := []byte(strings.Repeat("t", 32))
	f.Add(encodeMembers([]clusterMember{{token: tok, typ: "email"}, {token: tok, typ: "user_id"}}))
	f.Add(encodeMembers([]clusterMember{{token: tok, typ: ""}}))
	f.Add([]byte{})
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := decodeMembers(b)
		if err != nil {
			return
		}
		if got := encodeMembers(ms); string(got) != string(b) {
			t.Fatalf("decode+encode changed the record: %x -> %x", b, got)
		}
	})
}
