package identity

import (
	"strings"
	"testing"
)

// FuzzNormalize: normalising is idempotent (a stored, normalised
// identifier looks itself up), emails are lower-case and trimmed, phones
// are E.164 (+ and 8-15 digits), whatever the input.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"  Ann@Example.COM ", "+49 (0)30 1234567", "0030 123 45678", "030 1234567", "+1 415 555 0100",
		"1 415 555 0100", "+", "", " \t", "İstanbul@EXAMPLE.tr", "ǅ@x", "++491234567", "+4912345678901234567"} {
		for _, region := range []string{"", "DE", "US", "XX"} {
			f.Add(s, region)
		}
	}
	f.Fuzz(func(t *testing.T, value, region string) {
		rules := &Rules{DefaultRegion: region}
		for _, typ := range []Type{UserID, AnonymousID, Email, Phone} {
			v, err := rules.Normalize(typ, value)
			if err != nil {
				continue
			}
			if v == "" || v != strings.TrimSpace(v) {
				t.Fatalf("%s %q normalised to %q", typ, value, v)
			}
			again, err := rules.Normalize(typ, v)
			if err != nil || again != v {
				t.Fatalf("%s: normalising %q again gives %q, %v (from %q)", typ, v, again, err, value)
			}
			switch typ {
			case Email:
				if v != strings.ToLower(v) {
					t.Fatalf("email %q is not lower-case", v)
				}
			case Phone:
				if len(v) < 9 || len(v) > 16 || v[0] != '+' || strings.Trim(v[1:], "0123456789") != "" {
					t.Fatalf("phone %q normalised to %q, not E.164", value, v)
				}
			}
		}
	})
}
