package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Type is a Segment message type. Values are always lower case.
type Type string

// The six Segment message types.
const (
	Identify Type = "identify"
	Track    Type = "track"
	Page     Type = "page"
	Screen   Type = "screen"
	Group    Type = "group"
	Alias    Type = "alias"
)

// Size limits, identical to Segment's HTTP Tracking API so that SDKs which
// already respect Segment's limits are never rejected here.
const (
	MaxMessageBytes = 32 * 1024  // per message, raw JSON bytes
	MaxBatchBytes   = 500 * 1024 // per batch request body
)

// MaxIDBytes caps the length (after trimming) of messageId, userId,
// anonymousId, previousId, groupId, event, name and category. Segment does
// not publish a number; 1 KiB is far above anything an SDK generates and keeps
// identifiers usable as storage keys.
const MaxIDBytes = 1024

// Valid reports whether t is one of the six Segment types (lower case).
func (t Type) Valid() bool {
	switch t {
	case Identify, Track, Page, Screen, Group, Alias:
		return true
	}
	return false
}

// Message is one normalised Segment message.
//
// Invariants of a Message returned by DecodeMessage/DecodeBatch:
//   - Type is valid; MessageID is non-empty.
//   - Id fields are trimmed; alias has PreviousID and UserID, every other type
//     has UserID or AnonymousID; track has Event; group has GroupID.
//   - Traits, Properties, Context and Integrations are nil or a JSON object.
//   - All times are UTC without monotonic reading; Timestamp and ReceivedAt
//     are always set.
//
// The json.RawMessage fields must be treated as read-only: messages of one
// batch may share the batch-level context/integrations bytes.
type Message struct {
	Type              Type            `json:"type"`
	MessageID         string          `json:"messageId"`
	UserID            string          `json:"userId,omitempty"`
	AnonymousID       string          `json:"anonymousId,omitempty"`
	PreviousID        string          `json:"previousId,omitempty"` // alias
	GroupID           string          `json:"groupId,omitempty"`    // group
	Event             string          `json:"event,omitempty"`      // track
	Name              string          `json:"name,omitempty"`       // page/screen
	Category          string          `json:"category,omitempty"`   // page
	Traits            json.RawMessage `json:"traits,omitempty"`     // JSON object or absent
	Properties        json.RawMessage `json:"properties,omitempty"`
	Context           json.RawMessage `json:"context,omitempty"`
	Integrations      json.RawMessage `json:"integrations,omitempty"`
	Timestamp         time.Time       `json:"timestamp"` // corrected event time
	OriginalTimestamp time.Time       `json:"originalTimestamp,omitzero"`
	SentAt            time.Time       `json:"sentAt,omitzero"`
	ReceivedAt        time.Time       `json:"receivedAt"`
}

// TraitString returns traits[key] if it is a non-empty string, else
// context.traits[key] if it is a string, else "". Segment SDKs put traits in
// context.traits on non-identify calls, so callers that want "the user's
// email" should not have to know which one was used.
//
// Keys are matched exactly (case-sensitive); with duplicate keys the last one
// wins, as in encoding/json. No map is built: the raw bytes are scanned.
func (m *Message) TraitString(key string) string {
	if v, ok := lookupMember(m.Traits, key); ok {
		if s, ok := unquote(v); ok && s != "" {
			return s
		}
	}
	if ct, ok := lookupMember(m.Context, "traits"); ok {
		if v, ok := lookupMember(ct, key); ok {
			if s, ok := unquote(v); ok {
				return s
			}
		}
	}
	return ""
}

// ContextString returns the string at a path of nested objects of the
// context, such as ContextString("campaign", "medium"), or "" when a member
// is missing or is not a string. Keys match exactly; with duplicate keys the
// last one wins, as in encoding/json. No map is built.
func (m *Message) ContextString(path ...string) string {
	v := []byte(m.Context)
	for _, key := range path {
		var ok bool
		if v, ok = lookupMember(v, key); !ok {
			return ""
		}
	}
	s, _ := unquote(v)
	return s
}

// ContextStrings returns, for each key, the string at context.<object>.<key>
// ("" where absent or not a string), looking the object up once.
func (m *Message) ContextStrings(object string, keys ...string) []string {
	out := make([]string, len(keys))
	obj, ok := lookupMember([]byte(m.Context), object)
	if !ok {
		return out
	}
	for i, k := range keys {
		if v, ok := lookupMember(obj, k); ok {
			out[i], _ = unquote(v)
		}
	}
	return out
}

// --- minimal JSON object scanning -------------------------------------------
//
// These helpers walk the top level of a JSON object without allocating. They
// are used on bytes that encoding/json has already validated, but they are
// written to be safe (no panic, always terminate) on arbitrary input, since a
// Message can also be built by hand.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanString expects b[i] == '"' and returns the index just past the closing
// quote and whether the string contains escapes.
func scanString(b []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped, true
		}
	}
	return 0, false, false
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _, ok := scanString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || isSpace(c) {
				break
			}
			j++
		}
		return j, j > i
	}
}

// walkObject calls fn for every top-level member of the JSON object obj with
// the raw key (including its quotes) and the raw value. fn returns false to
// stop. walkObject reports false if obj is not an object it could walk.
func walkObject(obj []byte, fn func(rawKey []byte, escaped bool, val []byte) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return false
		}
		kEnd, escaped, ok := scanString(obj, i)
		if !ok {
			return false
		}
		rawKey := obj[i:kEnd]
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		vStart := skipSpace(obj, i+1)
		vEnd, ok := skipValue(obj, vStart)
		if !ok {
			return false
		}
		if !fn(rawKey, escaped, obj[vStart:vEnd]) {
			return true
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// keyEquals compares a raw (quoted) JSON key with key.
func keyEquals(rawKey []byte, escaped bool, key string) bool {
	if !escaped {
		return len(rawKey) == len(key)+2 && string(rawKey[1:len(rawKey)-1]) == key
	}
	s, ok := unquote(rawKey)
	return ok && s == key
}

// lookupMember returns the raw value of the last top-level member named key.
func lookupMember(obj []byte, key string) (val []byte, found bool) {
	if len(obj) == 0 {
		return nil, false
	}
	walkObject(obj, func(rawKey []byte, escaped bool, v []byte) bool {
		if keyEquals(rawKey, escaped, key) {
			val, found = v, true
		}
		return true
	})
	return val, found
}

// unquote decodes a raw JSON string literal. The escape-free case (nearly
// every real string) is a plain conversion.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if bytes.IndexByte(inner, '"') >= 0 {
			return "", false
		}
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// mergeObjects implements Segment's batch-level defaults: members of dflt
// whose key is not present in own are appended to own. own's bytes are kept
// as sent. Both must be nil or JSON objects.
func mergeObjects(own, dflt json.RawMessage) json.RawMessage {
	if len(dflt) == 0 {
		return own
	}
	if len(own) == 0 {
		return dflt
	}
	var ownKeys []string
	if !walkObject(own, func(rawKey []byte, escaped bool, _ []byte) bool {
		if escaped {
			s, _ := unquote(rawKey)
			ownKeys = append(ownKeys, s)
		} else {
			ownKeys = append(ownKeys, string(rawKey[1:len(rawKey)-1]))
		}
		return true
	}) {
		return own
	}
	has := func(rawKey []byte, escaped bool) bool {
		for _, k := range ownKeys {
			if keyEquals(rawKey, escaped, k) {
				return true
			}
		}
		return false
	}
	trimmed := bytes.TrimRight(own, " \t\r\n")
	if len(trimmed) == 0 || trimmed[len(trimmed)-1] != '}' {
		return own
	}
	body := bytes.TrimRight(trimmed[:len(trimmed)-1], " \t\r\n")
	out := make([]byte, 0, len(own)+len(dflt))
	out = append(out, body...)
	needComma := len(body) > 0 && body[len(body)-1] != '{'
	added := false
	if !walkObject(dflt, func(rawKey []byte, escaped bool, v []byte) bool {
		if has(rawKey, escaped) {
			return true
		}
		if needComma {
			out = append(out, ',')
		}
		out = append(out, rawKey...)
		out = append(out, ':')
		out = append(out, v...)
		needComma, added = true, true
		return true
	}) || !added {
		return own
	}
	out = append(out, '}')
	return out
}

// ExternalID is one entry of context.externalIds.
type ExternalID struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// ExternalIDs returns context.externalIds entries that have a string id and
// type; others are skipped (they are free-form in the spec).
func (m *Message) ExternalIDs() []ExternalID {
	if len(m.Context) == 0 || !bytes.Contains(m.Context, []byte("externalIds")) {
		return nil
	}
	raw, ok := lookupMember(m.Context, "externalIds")
	if !ok {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []ExternalID
	for _, item := range list {
		var x struct {
			ID   any    `json:"id"`
			Type string `json:"type"`
		}
		if json.Unmarshal(item, &x) != nil || x.Type == "" || len(x.Type) > 64 {
			continue
		}
		var id string
		switch v := x.ID.(type) {
		case string:
			id = v
		case float64:
			id = strconv.FormatFloat(v, 'f', -1, 64)
		}
		if id == "" || len(id) > MaxIDBytes {
			continue
		}
		out = append(out, ExternalID{ID: id, Type: x.Type})
	}
	return out
}
