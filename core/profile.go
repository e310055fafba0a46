package core

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/identity"
)

// nodeRecord is the sealed value under p/<pid>: one identifier node, with
// the plaintext identifier and the traits observed on messages whose
// strongest identifier it is.
type nodeRecord struct {
	ID        uuid.UUID     `json:"id"`
	Type      identity.Type `json:"type"`
	Value     string        `json:"value"`
	Blocked   bool          `json:"blocked,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	FirstSeen time.Time     `json:"first_seen"`
	// Traits hold the latest observation of each trait; TraitTimes its
	// event time (the latest observation wins, not the latest arrival);
	// History every change, for the access report.
	Traits     map[string]json.RawMessage `json:"traits,omitempty"`
	TraitTimes map[string]time.Time       `json:"trait_times,omitempty"`
	History    []TraitChange              `json:"history,omitempty"`
}

// TraitChange is one observed trait value.
type TraitChange struct {
	Trait string          `json:"trait"`
	Value json.RawMessage `json:"value"`
	At    time.Time       `json:"at"`
}

// mergeTraits applies traits observed at ts. It reports whether anything
// changed. Ties on time are broken by value so that the outcome does not
// depend on arrival order.
func (p *nodeRecord) mergeTraits(traits map[string]json.RawMessage, ts time.Time) bool {
	changed := false
	if p.Traits == nil {
		p.Traits = map[string]json.RawMessage{}
		p.TraitTimes = map[string]time.Time{}
	}
	for k, v := range traits {
		prev, ok := p.TraitTimes[k]
		if ok && (prev.After(ts) || (prev.Equal(ts) && string(p.Traits[k]) >= string(v))) {
			if !prev.Equal(ts) || string(p.Traits[k]) != string(v) {
				p.addHistory(k, v, ts)
				changed = true
			}
			continue
		}
		if ok && string(p.Traits[k]) == string(v) {
			p.TraitTimes[k] = ts
			changed = true
			continue
		}
		p.Traits[k] = v
		p.TraitTimes[k] = ts
		p.addHistory(k, v, ts)
		changed = true
	}
	return changed
}

func (p *nodeRecord) addHistory(k string, v json.RawMessage, ts time.Time) {
	for _, h := range p.History {
		if h.Trait == k && h.At.Equal(ts) && string(h.Value) == string(v) {
			return
		}
	}
	p.History = append(p.History, TraitChange{Trait: k, Value: v, At: ts})
}
