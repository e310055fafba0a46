package policies

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed clock of the tests.
func testNow() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }

func ptr[T any](v T) *T { return &v }

func granted() Consent {
	return Consent{Status: StatusGranted, At: testNow().AddDate(0, -1, 0), LawfulBasis: BasisConsent}
}

func withStatus(c Consent, status string) Consent { c.Status = status; return c }

func expiringAt(c Consent, t time.Time) Consent { c.ExpiresAt = &t; return c }

// baseInput is the spec's example: an EU marketer evaluating an email segment.
func baseInput() Input {
	return Input{
		Action:  ActionSegmentEvaluate,
		Purpose: "marketing.communications.email",
		Now:     testNow(),
		Destination: Destination{
			Name: "newsletter", Kind: KindEmail, Region: "EU",
			Fields: []string{"email", "first_name", "email_sha256"},
		},
		Subject:   Subject{Jurisdiction: "EU"},
		Requester: Requester{Role: RoleMarketer},
	}
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// chooser draws the choices that make up a random input.
type chooser interface {
	intn(n int) int
}

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.IntN(n) }

// byteChooser draws from fuzzer bytes; 0 once they run out.
type byteChooser struct{ b []byte }

func (c *byteChooser) intn(n int) int {
	if len(c.b) == 0 || n <= 1 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

func pick[T any](c chooser, xs ...T) T { return xs[c.intn(len(xs))] }

func purposeKeys() []string {
	var keys []string
	for _, p := range Purposes() {
		keys = append(keys, p.Key)
	}
	return append(keys, "marketing.communications.pigeon", "personalize.sensitive.health")
}

var fieldPool = []string{
	"email", "first_name", "last_name", "consent_at", "email_sha256", "phone_sha256",
	"phone", "tier", "lifecycle_stage", "health", "user_id", "country",
}

// randomInput builds an input from c's choices. It may be invalid (an
// unknown action, a negative age), rarely.
func randomInput(c chooser) Input {
	now := testNow().Add(time.Duration(c.intn(96)-48) * time.Hour)
	keys := purposeKeys()
	in := Input{
		Action:  pick(c, ActionSegmentEvaluate, ActionSegmentExport, ActionProfileRead, ActionSegmentEvaluate, ActionSegmentExport, "profile.write"),
		Purpose: pick(c, keys...),
		Now:     now,
		Destination: Destination{
			Name:   pick(c, "newsletter", "meta", "crm-feed"),
			Kind:   pick(c, KindEmail, KindAds, KindAnalytics, KindSupport, KindFile, KindWebhook, "crm", ""),
			Region: pick(c, "EU", "US", ""),
		},
		Subject: Subject{
			Jurisdiction: pick(c, "EU", "UK", "US-CA", "US-TX", "us-ny", "BR", "", "US", " eu "),
			GPC:          c.intn(3) == 0,
			Restricted:   c.intn(5) == 0,
		},
		Requester: Requester{Role: pick(c, RoleMarketer, RoleDPO, RoleAdmin, RolePersonalize, RolePersonalize, "ingest", "")},
	}
	if c.intn(4) == 0 {
		in.Purpose = "personalize.content.profiled"
	}
	if c.intn(20) == 0 {
		in.Purpose = ""
	}
	for range c.intn(6) {
		in.Destination.Fields = append(in.Destination.Fields, pick(c, fieldPool...))
	}
	n := c.intn(5)
	if n > 0 {
		in.Subject.Consents = map[string]Consent{}
	}
	for range n {
		key := pick(c, keys...)
		if c.intn(2) == 0 { // favour the purpose's own line
			anc := ancestorsOf(in.Purpose)
			if len(anc) > 0 {
				key = pick(c, anc...)
			}
		}
		rec := Consent{
			Status:      pick(c, StatusGranted, StatusGranted, StatusDenied, StatusWithdrawn),
			At:          now.Add(-time.Duration(c.intn(1000)) * time.Hour),
			LawfulBasis: pick(c, "", BasisConsent, BasisConsent, BasisContract, BasisLegitimateInterests),
		}
		switch c.intn(7) {
		case 1:
			rec.ExpiresAt = ptr(now.Add(-time.Hour))
		case 2:
			rec.ExpiresAt = ptr(now)
		case 3:
			rec.ExpiresAt = ptr(now.Add(time.Nanosecond))
		case 4:
			rec.ExpiresAt = ptr(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
		case 5:
			rec.ExpiresAt = ptr(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC))
		case 6:
			rec.ExpiresAt = ptr(now.Add(90 * 24 * time.Hour).In(time.FixedZone("X", 5*3600)))
		}
		in.Subject.Consents[key] = rec
	}
	for range c.intn(3) {
		in.Subject.Objections = append(in.Subject.Objections, pick(c, keys...))
	}
	if c.intn(3) == 0 {
		if anc := ancestorsOf(in.Purpose); len(anc) > 0 {
			in.Subject.Objections = append(in.Subject.Objections, pick(c, anc...))
		}
	}
	switch c.intn(8) {
	case 0, 1, 2:
	case 7:
		if c.intn(4) == 0 {
			in.Subject.Age = ptr(-1)
		}
	default:
		in.Subject.Age = ptr(pick(c, 0, 5, 12, 13, 14, 15, 16, 17, 40))
	}
	return in
}

func ancestorsOf(p string) []string {
	if p == "" {
		return nil
	}
	parts := strings.Split(p, ".")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], ".")
	}
	return out
}

// sibling returns an input that differs from in only in what the cache key
// leaves out: timestamps (expiry kept on the same side of now), the
// destination's name, records and objections of unrelated purposes, the
// order and repetition of objections, the age within its band.
func sibling(in Input, c chooser) Input {
	out := in
	out.Destination.Name = in.Destination.Name + "-other"
	delta := time.Duration(c.intn(1000)+1) * time.Minute
	out.Now = in.Now.Add(delta)
	anc := ancestorsOf(in.Purpose)
	out.Subject.Consents = map[string]Consent{}
	for k, rec := range in.Subject.Consents {
		rec.At = rec.At.Add(-delta)
		if rec.ExpiresAt != nil {
			lo, hi := timeBounds()
			if e := *rec.ExpiresAt; e.After(lo) && e.Before(hi) {
				rec.ExpiresAt = ptr(e.Add(delta))
			}
		}
		out.Subject.Consents[k] = rec
	}
	for _, k := range purposeKeys() {
		if _, has := out.Subject.Consents[k]; !has && !slices.Contains(anc, k) && c.intn(4) == 0 {
			out.Subject.Consents[k] = Consent{Status: pick(c, StatusGranted, StatusDenied), LawfulBasis: BasisConsent}
		}
	}
	out.Subject.Objections = nil
	for i := len(in.Subject.Objections) - 1; i >= 0; i-- {
		o := in.Subject.Objections[i]
		out.Subject.Objections = append(out.Subject.Objections, o)
		if c.intn(3) == 0 {
			out.Subject.Objections = append(out.Subject.Objections, o)
		}
	}
	for _, k := range purposeKeys() {
		if !slices.Contains(anc, k) && c.intn(6) == 0 {
			out.Subject.Objections = append(out.Subject.Objections, k)
		}
	}
	if a := in.Subject.Age; a != nil && *a >= 0 {
		switch {
		case *a < 13:
			out.Subject.Age = ptr(c.intn(13))
		case *a < 16:
			out.Subject.Age = ptr(13 + c.intn(3))
		default:
			out.Subject.Age = ptr(16 + c.intn(80))
		}
	}
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
