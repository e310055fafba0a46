package core

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/identity"
)

// profileRecord is the sealed value under p/<pid>.
type profileRecord struct {
	ID          uuid.UUID                  `json:"id"`
	CreatedAt   time.Time                  `json:"created_at"`
	UpdatedAt   time.Time                  `json:"updated_at"`
	Identifiers []identifierRecord         `json:"identifiers"`
	Traits      map[string]json.RawMessage `json:"traits,omitempty"`
	// TraitTimes holds, per trait, the event time of the observation that
	// set it: the latest observation wins, not the latest arrival.
	TraitTimes map[string]time.Time `json:"trait_times,omitempty"`
}

type identifierRecord struct {
	Type      identity.Type `json:"type"`
	Value     string        `json:"value"`
	FirstSeen time.Time     `json:"first_seen"`
}

func (p *profileRecord) hasIdentifier(t identity.Type, v string) bool {
	for _, id := range p.Identifiers {
		if id.Type == t && id.Value == v {
			return true
		}
	}
	return false
}

// mergeTraits applies traits observed at ts. It reports whether anything
// changed.
func (p *profileRecord) mergeTraits(traits map[string]json.RawMessage, ts time.Time) bool {
	changed := false
	if p.Traits == nil {
		p.Traits = map[string]json.RawMessage{}
		p.TraitTimes = map[string]time.Time{}
	}
	for k, v := range traits {
		if prev, ok := p.TraitTimes[k]; ok && prev.After(ts) {
			continue
		}
		p.Traits[k] = v
		p.TraitTimes[k] = ts
		changed = true
	}
	return changed
}
