package core

import (
	"encoding/json"
	"maps"
	"slices"
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

// appendJSON appends p as encoding/json would marshal it, byte for byte
// (TestNodeRecordJSONMatchesEncodingJSON, FuzzNodeRecordJSON): the
// reflection, map sorting and time formatting of json.Marshal were 5% of
// the server's CPU under ingestion, where every new node and every trait
// change seals a record. Byte equality matters: trait values are compared
// as bytes (mergeTraits), so a value must read back as json.Marshal
// would have stored it.
func (p *nodeRecord) appendJSON(b []byte) ([]byte, error) {
	id, _ := p.ID.MarshalText() // what encoding/json calls; never fails
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","type":`...)
	b = appendJSONString(b, string(p.Type))
	b = append(b, `,"value":`...)
	b = appendJSONString(b, p.Value)
	if p.Blocked {
		b = append(b, `,"blocked":true`...)
	}
	var err error
	b = append(b, `,"created_at":`...)
	if b, err = appendJSONTime(b, p.CreatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"first_seen":`...)
	if b, err = appendJSONTime(b, p.FirstSeen); err != nil {
		return nil, err
	}
	if b, err = appendJSONObject(b, `,"traits":`, p.Traits, appendJSONRaw); err != nil {
		return nil, err
	}
	if b, err = appendJSONObject(b, `,"trait_times":`, p.TraitTimes, appendJSONTime); err != nil {
		return nil, err
	}
	if len(p.History) > 0 {
		b = append(b, `,"history":[`...)
		for i, h := range p.History {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"trait":`...)
			b = appendJSONString(b, h.Trait)
			b = append(b, `,"value":`...)
			if b, err = appendJSONRaw(b, h.Value); err != nil {
				return nil, err
			}
			b = append(b, `,"at":`...)
			if b, err = appendJSONTime(b, h.At); err != nil {
				return nil, err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendJSONObject writes field (with its leading comma) and m as an
// object with sorted keys, as encoding/json does; nothing if m is empty
// (omitempty).
func appendJSONObject[V any](b []byte, field string, m map[string]V, value func([]byte, V) ([]byte, error)) ([]byte, error) {
	if len(m) == 0 {
		return b, nil
	}
	b = append(b, field...)
	b = append(b, '{')
	var err error
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if b, err = value(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendJSONString quotes s; a string with anything encoding/json escapes
// (quotes, backslashes, control characters, <>&, non-ASCII) goes through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime writes t as time.Time.MarshalJSON does; a UTC time in
// years 0-9999 (all of Custody's) without the call and its allocation.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); t.Location() != time.UTC || y < 0 || y > 9999 {
		q, err := t.MarshalJSON()
		return append(b, q...), err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendJSONRaw writes a json.RawMessage as encoding/json does: compacted,
// with <>& and U+2028/U+2029 escaped, "null" when empty. A value with none
// of those (most traits: "gold", 42, an address without spaces) is
// appended as it is; the values here come from json.Unmarshal, so they are
// valid JSON, and the others are compacted by encoding/json, which checks.
func appendJSONRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return append(b, "null"...), nil
	}
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2: // 0xE2 leads U+2028/U+2029
			q, err := json.Marshal(raw)
			return append(b, q...), err
		}
	}
	return append(b, raw...), nil
}
