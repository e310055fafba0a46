package event

import (
	"bytes"
	"time"
)

// This file holds the fast path of DecodeBatch: one validating pass over the
// body, by hand, for the shape every SDK sends (exact-case keys, string ids
// without escapes, free-form objects). It is an optimisation only: whenever
// the body is anything else — an error of any kind, a key that matches only
// case-insensitively, an escaped id, a non-string where a string belongs,
// deep nesting — it gives up and the general path (encoding/json, which
// owns every error message) decodes the body from the start. So it never
// decides what is valid on its own; FuzzFastBatch checks that whatever it
// accepts, the general path decodes to the same messages.
//
// Profiling the ingestion server showed encoding/json's reflective decode
// at 12% of CPU per event; this pass costs about a third of it.

// maxFastDepth bounds the nesting the fast path follows (the general path
// takes deeper documents, up to encoding/json's own limit).
const maxFastDepth = 64

type scan struct {
	b []byte
	i int
}

func (s *scan) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// byte_ consumes c (after whitespace).
func (s *scan) byte_(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str validates the string at s.i and returns its content's bounds and
// whether it contains an escape. UTF-8 has been checked for the whole body
// before; JSON forbids raw control characters.
func (s *scan) str() (start, end int, escaped, ok bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return 0, 0, false, false
	}
	start = s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return start, j, escaped, true
		case c < 0x20:
			return 0, 0, false, false
		case c == '\\':
			escaped = true
			j++
			if j >= len(s.b) {
				return 0, 0, false, false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return 0, 0, false, false
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(s.b[k]) {
						return 0, 0, false, false
					}
				}
				j += 4
			default:
				return 0, 0, false, false
			}
		}
	}
	return 0, 0, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number validates a JSON number at s.i.
func (s *scan) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.i = i
	return true
}

// value validates any JSON value at s.i (after whitespace) and returns its
// bounds.
func (s *scan) value(depth int) (start, end int, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return 0, 0, false
	}
	start = s.i
	switch c := s.b[s.i]; {
	case c == '"':
		if _, _, _, ok := s.str(); !ok {
			return 0, 0, false
		}
	case c == '{':
		if depth >= maxFastDepth {
			return 0, 0, false
		}
		s.i++
		if s.byte_('}') {
			break
		}
		for {
			s.ws()
			if _, _, _, ok := s.str(); !ok || !s.byte_(':') {
				return 0, 0, false
			}
			if _, _, ok := s.value(depth + 1); !ok {
				return 0, 0, false
			}
			if s.byte_(',') {
				continue
			}
			if s.byte_('}') {
				break
			}
			return 0, 0, false
		}
	case c == '[':
		if depth >= maxFastDepth {
			return 0, 0, false
		}
		s.i++
		if s.byte_(']') {
			break
		}
		for {
			if _, _, ok := s.value(depth + 1); !ok {
				return 0, 0, false
			}
			if s.byte_(',') {
				continue
			}
			if s.byte_(']') {
				break
			}
			return 0, 0, false
		}
	case c == 't':
		if !s.literal("true") {
			return 0, 0, false
		}
	case c == 'f':
		if !s.literal("false") {
			return 0, 0, false
		}
	case c == 'n':
		if !s.literal("null") {
			return 0, 0, false
		}
	default:
		if !s.number() {
			return 0, 0, false
		}
	}
	return start, s.i, true
}

func (s *scan) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// key reads an object key without escapes (keys with escapes go the general
// way: encoding/json unescapes them before matching).
func (s *scan) key() ([]byte, bool) {
	s.ws()
	start, end, escaped, ok := s.str()
	if !ok || escaped || !s.byte_(':') {
		return nil, false
	}
	return s.b[start:end], true
}

// plainString reads a string value without escapes, or null (reported as
// isNull). Anything else gives up.
func (s *scan) plainString() (v []byte, isNull, ok bool) {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return nil, true, s.literal("null")
	}
	start, end, escaped, ok := s.str()
	if !ok || escaped {
		return nil, false, false
	}
	return s.b[start:end], false, true
}

// wireKeys are the keys of wireMessage; a key equal to one of them only
// case-insensitively is left to encoding/json's matching rules.
var wireKeys = [...]string{"type", "messageId", "userId", "anonymousId", "previousId", "groupId",
	"event", "name", "category", "traits", "properties", "context", "integrations", "timestamp", "sentAt"}

func foldsToWireKey(k []byte) bool {
	for _, w := range wireKeys {
		if foldsTo(k, w) {
			return true
		}
	}
	return false
}

// foldsTo reports whether k may match name under encoding/json's
// case-insensitive key matching. Non-ASCII keys say yes (Unicode folding
// maps e.g. the Kelvin sign to k): the general path then decides.
func foldsTo(k []byte, name string) bool {
	if len(k) != len(name) {
		// A multi-byte rune may fold to one ASCII byte.
		for _, c := range k {
			if c >= 0x80 {
				return true
			}
		}
		return false
	}
	for i, c := range k {
		if c >= 0x80 {
			return true
		}
		if c|0x20 != name[i]|0x20 || (c|0x20) < 'a' && c != name[i] {
			return false
		}
	}
	return true
}

// message decodes one message object into w (which must be zero), as
// encoding/json would: last duplicate wins, null leaves a string unchanged,
// the free-form objects are kept verbatim (aliasing the body).
func (s *scan) message(w *wireMessage) bool {
	if !s.byte_('{') {
		return false
	}
	if s.byte_('}') {
		return true
	}
	for {
		k, ok := s.key()
		if !ok {
			return false
		}
		var dst *string
		var raw *[]byte
		switch string(k) {
		case "type":
			v, isNull, ok := s.plainString()
			if !ok {
				return false
			}
			if isNull {
				w.Type = wireType{}
			} else {
				w.Type = wireType{present: true, isString: true, s: canonicalType(v)}
			}
		case "messageId":
			dst = &w.MessageID
		case "userId":
			dst = &w.UserID
		case "anonymousId":
			dst = &w.AnonymousID
		case "previousId":
			dst = &w.PreviousID
		case "groupId":
			dst = &w.GroupID
		case "event":
			dst = &w.Event
		case "name":
			dst = &w.Name
		case "category":
			dst = &w.Category
		case "timestamp":
			dst = &w.Timestamp
		case "sentAt":
			dst = &w.SentAt
		case "traits":
			raw = (*[]byte)(&w.Traits)
		case "properties":
			raw = (*[]byte)(&w.Properties)
		case "context":
			raw = (*[]byte)(&w.Context)
		case "integrations":
			raw = (*[]byte)(&w.Integrations)
		default:
			if foldsToWireKey(k) {
				return false
			}
			if _, _, ok := s.value(1); !ok {
				return false
			}
		}
		switch {
		case dst != nil:
			v, isNull, ok := s.plainString()
			if !ok {
				return false
			}
			if !isNull {
				*dst = string(v)
			}
		case raw != nil:
			start, end, ok := s.value(1)
			if !ok {
				return false
			}
			*raw = s.b[start:end:end]
		}
		if s.byte_(',') {
			continue
		}
		return s.byte_('}')
	}
}

// canonicalType interns the six type names (no allocation per message).
func canonicalType(v []byte) string {
	switch string(v) {
	case "identify":
		return string(Identify)
	case "track":
		return string(Track)
	case "page":
		return string(Page)
	case "screen":
		return string(Screen)
	case "group":
		return string(Group)
	case "alias":
		return string(Alias)
	}
	return string(v)
}

// fastBatch decodes a batch body of the common shape, or reports ok=false
// for the general path to decode it (and name any error). The messages'
// free-form objects alias data.
func fastBatch(data []byte, now time.Time) ([]Message, bool) {
	s := &scan{b: data}
	if !s.byte_('{') {
		return nil, false
	}
	var (
		out       []Message
		d         defaults
		seenBatch bool
	)
	if !s.byte_('}') {
		for {
			k, ok := s.key()
			if !ok {
				return nil, false
			}
			switch string(k) {
			case "batch":
				if seenBatch || !s.byte_('[') {
					return nil, false
				}
				seenBatch = true
				out = make([]Message, 0, len(data)/512+1)
				if !s.byte_(']') {
					for {
						s.ws()
						start := s.i
						var w wireMessage
						if !s.message(&w) || s.i-start > MaxMessageBytes || !w.Type.present {
							return nil, false
						}
						t, ok := parseType(w.Type.s)
						if !ok {
							return nil, false
						}
						m, ferr := normalise(&w, t, len(out), now)
						if ferr != nil {
							return nil, false
						}
						out = append(out, m)
						if s.byte_(',') {
							continue
						}
						if s.byte_(']') {
							break
						}
						return nil, false
					}
				}
			case "context", "integrations":
				start, end, ok := s.value(1)
				if !ok {
					return nil, false
				}
				field, dst := "context", &d.context
				if string(k) == "integrations" {
					field, dst = "integrations", &d.integrations
				}
				v, ferr := objectField(data[start:end:end], -1, field)
				if ferr != nil {
					return nil, false
				}
				*dst = v
			case "sentAt":
				v, isNull, ok := s.plainString()
				if !ok {
					return nil, false
				}
				if isNull {
					d.sentAt = time.Time{}
					break
				}
				t, ferr := parseTimeField(string(v), -1, "sentAt")
				if ferr != nil {
					return nil, false
				}
				d.sentAt = t
			default:
				if foldsTo(k, "batch") || foldsTo(k, "context") ||
					foldsTo(k, "integrations") || foldsTo(k, "sentAt") {
					return nil, false
				}
				if _, _, ok := s.value(1); !ok {
					return nil, false
				}
			}
			if s.byte_(',') {
				continue
			}
			if s.byte_('}') {
				break
			}
			return nil, false
		}
	}
	s.ws()
	if s.i != len(data) || len(out) == 0 {
		return nil, false
	}
	for i := range out {
		applyDefaults(&out[i], &d)
	}
	return out, true
}
