package privacy

import (
	"encoding/json"
	"errors"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

func rec(purpose, status string, day int) Consent {
	at := time.Date(2026, 10, day, 0, 0, 0, 0, time.UTC)
	return Consent{Purpose: purpose, Status: status, Source: "test", CollectedAt: at, RecordedAt: at}
}

func TestResolve(t *testing.T) {
	const p = "marketing.communications.email"
	merged := time.Date(2026, 10, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		profiles [][]Consent
		mergedAt time.Time
		want     string
		conflict bool
	}{
		{"latest on one profile wins", [][]Consent{{rec(p, "granted", 1), rec(p, "withdrawn", 3)}}, time.Time{}, "withdrawn", false},
		{"re-grant after withdrawal", [][]Consent{{rec(p, "withdrawn", 3), rec(p, "granted", 5)}}, time.Time{}, "granted", false},
		{"merged disagreement: most restrictive", [][]Consent{{rec(p, "granted", 5)}, {rec(p, "denied", 2)}}, merged, "denied", true},
		{"decision after the merge wins", [][]Consent{{rec(p, "granted", 12)}, {rec(p, "denied", 2)}}, merged, "granted", false},
		{"merged agreement", [][]Consent{{rec(p, "granted", 5)}, {rec(p, "granted", 2)}}, merged, "granted", false},
		{"withdrawn vs denied", [][]Consent{{rec(p, "withdrawn", 5)}, {rec(p, "denied", 2)}}, merged, "denied", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Resolve(tt.profiles, tt.mergedAt)[p]
			if st.Record.Status != tt.want || (st.Conflict != "") != tt.conflict {
				t.Fatalf("state %+v, want %s (conflict %v)", st, tt.want, tt.conflict)
			}
		})
	}
}

// The state is a function of the records, not of their order.
func TestResolveIsOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	statuses := []string{"granted", "denied", "withdrawn"}
	for round := 0; round < 200; round++ {
		var profiles [][]Consent
		for p := 0; p < 1+rng.Intn(3); p++ {
			var recs []Consent
			for r := 0; r < rng.Intn(4); r++ {
				recs = append(recs, rec("analytics", statuses[rng.Intn(3)], 1+rng.Intn(5)))
			}
			profiles = append(profiles, recs)
		}
		merged := time.Date(2026, 10, 1+rng.Intn(6), 0, 0, 0, 0, time.UTC)
		want := Resolve(profiles, merged)
		for k := 0; k < 5; k++ {
			shuffled := make([][]Consent, len(profiles))
			for i, recs := range profiles {
				shuffled[i] = append([]Consent(nil), recs...)
				rng.Shuffle(len(shuffled[i]), func(a, b int) { shuffled[i][a], shuffled[i][b] = shuffled[i][b], shuffled[i][a] })
			}
			rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
			if got := Resolve(shuffled, merged); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: order changed the state:\n%+v\n%+v", round, got, want)
			}
		}
	}
}

func TestJurisdiction(t *testing.T) {
	tests := []struct{ country, state, want string }{
		{"DE", "", "EU"}, {"Germany", "", "EU"}, {"EIRE", "", "EU"}, {"NO", "", "EU"},
		{"GB", "", "UK"}, {"United Kingdom", "", "UK"}, {"UK", "", "UK"},
		{"US", "ca", "US-CA"}, {"USA", "TX", "US-TX"}, {"US", "", "US"},
		{"JP", "", "JP"}, {"", "", ""}, {"Atlantis", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.country+"/"+tt.state, func(t *testing.T) {
			if got := Jurisdiction(tt.country, tt.state); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	for in, want := range map[string]string{"eu": "EU", "us-ca": "US-CA", "FR": "EU", "Narnia": "", "US-California": ""} {
		if got := NormalizeJurisdiction(in); got != want {
			t.Errorf("NormalizeJurisdiction(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFromCategoryPreferences(t *testing.T) {
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	recs, unknown := FromCategoryPreferences(json.RawMessage(`{"advertising":false,"email":true,"C0007":true,"analytics":"yes"}`), DefaultCategories(), at, at, "EU")
	got := map[string]string{}
	for _, r := range recs {
		got[r.Purpose] = r.Status
		if r.Source != SourceEvent || r.Jurisdiction != "EU" || !r.CollectedAt.Equal(at) {
			t.Fatalf("record %+v", r)
		}
	}
	want := map[string]string{"marketing.advertising": "denied", "marketing.communications.email": "granted"}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(unknown, []string{"C0007"}) {
		t.Fatalf("got %v unknown %v", got, unknown)
	}
}

func TestValidate(t *testing.T) {
	valid := func(p string) bool { return p == "analytics" }
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	before := at.Add(-time.Hour)
	tests := []struct {
		name string
		mod  func(c *Consent)
	}{
		{"no purpose", func(c *Consent) { c.Purpose = "" }},
		{"unknown purpose", func(c *Consent) { c.Purpose = "x" }},
		{"bad status", func(c *Consent) { c.Status = "ok" }},
		{"bad basis", func(c *Consent) { c.LawfulBasis = "because" }},
		{"no source", func(c *Consent) { c.Source = "" }},
		{"no time", func(c *Consent) { c.CollectedAt = time.Time{} }},
		{"expires before collected", func(c *Consent) { c.ExpiresAt = &before }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Consent{Purpose: "analytics", Status: "granted", Source: "cli", CollectedAt: at}
			if err := c.Validate(valid); err != nil {
				t.Fatalf("valid record rejected: %v", err)
			}
			tt.mod(&c)
			if err := c.Validate(valid); !errors.Is(err, ErrInvalidConsent) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
