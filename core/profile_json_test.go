package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/identity"
)

// Strings and raw values that take every path of the hand-written encoder.
var jsonSamples = []string{
	"", "gold", "ada@example.com", "+4712345678", `quote " and \ backslash`, "tab\there",
	"line\nbreak", "\x00\x1f", "<b>&amp;</b>", "café", "日本", "\u2028\u2029", "bad \xff utf-8",
}

var rawSamples = []string{
	`"gold"`, `42`, `-1.5e3`, `true`, `null`, `{"street":"Main 1","city":"Oslo"}`,
	`{ "a" : [1, 2] }`, "[\n1,\t2\r]", `"<script>"`, `"a&b"`, "\"\u2028\"", `"café"`, `[]`, `{}`,
}

func randomRecord(rng *rand.Rand) *nodeRecord {
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	when := func() time.Time {
		t := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
		switch rng.IntN(6) {
		case 0:
			t = t.Truncate(time.Second) // no fraction
		case 1:
			t = t.In(time.FixedZone("x", 5400)) // not UTC: MarshalJSON's path
		case 2:
			t = time.Time{}
		}
		return t
	}
	p := &nodeRecord{ID: uuid.New(), Type: identity.Type(pick([]string{"user_id", "email", "x:crm<id>"})),
		Value: pick(jsonSamples), Blocked: rng.IntN(2) == 0, CreatedAt: when(), FirstSeen: when()}
	switch rng.IntN(3) {
	case 0: // nil maps
	case 1:
		p.Traits, p.TraitTimes = map[string]json.RawMessage{}, map[string]time.Time{} // empty: omitted
	default:
		p.Traits, p.TraitTimes = map[string]json.RawMessage{}, map[string]time.Time{}
		for range 1 + rng.IntN(6) {
			k := pick(jsonSamples)
			p.Traits[k] = json.RawMessage(pick(rawSamples))
			p.TraitTimes[k] = when()
		}
	}
	for range rng.IntN(4) {
		c := TraitChange{Trait: pick(jsonSamples), Value: json.RawMessage(pick(rawSamples)), At: when()}
		if rng.IntN(5) == 0 {
			c.Value = nil
		}
		p.History = append(p.History, c)
	}
	if rng.IntN(5) == 0 {
		p.History = []TraitChange{} // empty: omitted
	}
	return p
}

func TestNodeRecordJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		p := randomRecord(rng)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want, werr := json.Marshal(p)
			got, gerr := p.appendJSON(nil)
			if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
				t.Fatalf("appendJSON:\n%s (%v)\njson.Marshal:\n%s (%v)", got, gerr, want, werr)
			}
		})
	}
	// A year json.Marshal refuses is refused too.
	p := &nodeRecord{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := p.appendJSON(nil); err == nil {
		t.Fatal("year 10000 encoded")
	}
}

func FuzzNodeRecordJSON(f *testing.F) {
	for i, s := range jsonSamples {
		f.Add(s, rawSamples[i%len(rawSamples)], int64(i)*1e17)
	}
	f.Fuzz(func(t *testing.T, s, raw string, ns int64) {
		if !json.Valid([]byte(raw)) {
			return // trait values come from json.Unmarshal: always valid
		}
		at := time.Unix(0, ns).UTC()
		p := &nodeRecord{Type: identity.Type(s), Value: s, CreatedAt: at, FirstSeen: at,
			Traits: map[string]json.RawMessage{s: json.RawMessage(raw)}, TraitTimes: map[string]time.Time{s: at},
			History: []TraitChange{{Trait: s, Value: json.RawMessage(raw), At: at}}}
		want, werr := json.Marshal(p)
		got, gerr := p.appendJSON(nil)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("appendJSON:\n%q (%v)\njson.Marshal:\n%q (%v)", got, gerr, want, werr)
		}
	})
}
