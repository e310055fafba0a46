package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// wireMessage is the typed shape of one incoming message. Decoding into it is
// the single decode pass per message: encoding/json matches keys, checks the
// JSON type of every id/timestamp field (reporting the field name in
// *json.UnmarshalTypeError) and copies the four free-form objects verbatim.
// Keys not listed here (e.g. _metadata, writeKey, receivedAt) are skipped and
// so dropped.
type wireMessage struct {
	Type         wireType        `json:"type"`
	MessageID    string          `json:"messageId"`
	UserID       string          `json:"userId"`
	AnonymousID  string          `json:"anonymousId"`
	PreviousID   string          `json:"previousId"`
	GroupID      string          `json:"groupId"`
	Event        string          `json:"event"`
	Name         string          `json:"name"`
	Category     string          `json:"category"`
	Traits       json.RawMessage `json:"traits"`
	Properties   json.RawMessage `json:"properties"`
	Context      json.RawMessage `json:"context"`
	Integrations json.RawMessage `json:"integrations"`
	Timestamp    string          `json:"timestamp"`
	SentAt       string          `json:"sentAt"`
}

// wireType accepts any JSON value so that a non-string "type" never aborts
// decoding: on /v1/<type> endpoints the body's type is ignored, and in a batch
// a bad type is reported as ErrUnknownType rather than ErrInvalidField.
type wireType struct {
	s        string
	present  bool // present and not null
	isString bool
}

func (w *wireType) UnmarshalJSON(data []byte) error {
	*w = wireType{}
	if string(data) == "null" {
		return nil
	}
	w.present = true
	// Canonical spellings map to the constants: no allocation per message.
	if len(data) > 2 && data[0] == '"' && data[len(data)-1] == '"' {
		switch string(data[1 : len(data)-1]) {
		case "identify":
			w.s = string(Identify)
		case "track":
			w.s = string(Track)
		case "page":
			w.s = string(Page)
		case "screen":
			w.s = string(Screen)
		case "group":
			w.s = string(Group)
		case "alias":
			w.s = string(Alias)
		}
		if w.s != "" {
			w.isString = true
			return nil
		}
	}
	w.s, w.isString = unquote(data)
	return nil
}

// defaults are the batch-level values applied to every item.
type defaults struct {
	context      json.RawMessage
	integrations json.RawMessage
	sentAt       time.Time // zero if absent
}

// DecodeMessage decodes one message sent to /v1/<typ>.
//
// typ comes from the URL path and is authoritative (case-insensitive): the
// endpoint defines the type, so a "type" key in the body is ignored whatever
// its value (never rejected — SDKs send one that agrees anyway). An unknown
// typ yields ErrUnknownType on field "type".
//
// An empty typ means the type is read from the body's "type" key, as in a
// batch item or a line of an import file.
func DecodeMessage(data []byte, typ Type, now time.Time) (Message, error) {
	t, ok := parseType(string(typ))
	if !ok && typ != "" {
		return Message{}, newError(-1, "type", ErrUnknownType, "unknown message type")
	}
	if len(data) > MaxMessageBytes {
		return Message{}, newError(-1, "", ErrMessageTooLarge,
			"message is "+strconv.Itoa(len(data))+" bytes, limit is "+strconv.Itoa(MaxMessageBytes))
	}
	if err := checkUTF8(data); err != nil {
		return Message{}, err
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return Message{}, jsonError(err, -1)
	}
	if got := jsonKind(data); got != "object" {
		return Message{}, newError(-1, "", ErrInvalidField, "expected a JSON object, got "+got)
	}
	if typ == "" {
		switch {
		case !w.Type.present:
			return Message{}, newError(-1, "type", ErrUnknownType, "missing message type")
		case !w.Type.isString:
			return Message{}, newError(-1, "type", ErrUnknownType, "message type must be a string")
		}
		if t, ok = parseType(w.Type.s); !ok {
			return Message{}, newError(-1, "type", ErrUnknownType, "unknown message type")
		}
	}
	m, ferr := normalise(&w, t, -1, now.UTC())
	if ferr != nil {
		return Message{}, ferr // (never a typed-nil error interface)
	}
	applyDefaults(&m, &defaults{})
	return m, nil
}

// DecodeBatch decodes a /v1/batch body:
//
//	{"batch":[...], "context":{...}, "integrations":{...}, "sentAt":"..."}
//
// Batch-level context and integrations are shallow defaults (a message's own
// keys win); batch-level sentAt applies to messages without their own. Other
// top-level keys (writeKey, …) are ignored. The batch is all-or-nothing: the
// first invalid message fails the whole call, with its index in the
// *FieldError. If the body is not valid JSON, ErrMalformedJSON is reported
// in preference to any other error.
//
// The messages' free-form objects (traits, properties, context,
// integrations) may alias data: the caller must not reuse it.
//
// The general path streams the body with a json.Decoder rather than unmarshalled into
// []json.RawMessage and then re-unmarshalled item by item: that halves the
// number of scanner passes over the bytes (each item is scanned once to
// delimit it and once to decode it), which is where decoding time goes.
func DecodeBatch(data []byte, now time.Time) ([]Message, error) {
	if len(data) > MaxBatchBytes {
		return nil, newError(-1, "", ErrBatchTooLarge,
			"batch is "+strconv.Itoa(len(data))+" bytes, limit is "+strconv.Itoa(MaxBatchBytes))
	}
	if err := checkUTF8(data); err != nil {
		return nil, err
	}
	if out, ok := fastBatch(data, now.UTC()); ok {
		return out, nil
	}
	return decodeBatchGeneral(data, now)
}

// decodeBatchGeneral is DecodeBatch's general path: every body the fast
// path (fast.go) leaves alone, and every error.
func decodeBatchGeneral(data []byte, now time.Time) ([]Message, error) {
	// fail reports fe unless the body has a syntax error somewhere, which
	// takes precedence (it is only computed on this error path).
	fail := func(fe *FieldError) ([]Message, error) {
		if se := syntaxCheck(data); se != nil {
			return nil, se
		}
		return nil, fe
	}
	malformed := func() ([]Message, error) {
		if se := syntaxCheck(data); se != nil {
			return nil, se
		}
		return nil, newError(-1, "", ErrMalformedJSON, "syntax error")
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return malformed()
	}
	if tok != json.Delim('{') {
		return fail(newError(-1, "", ErrInvalidField, "expected a JSON object, got "+jsonKind(data)))
	}

	var (
		out  []Message
		d    defaults
		ferr *FieldError
		w    wireMessage
	)
	now = now.UTC()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed()
		}
		key, _ := tok.(string)
		switch {
		case matchKey(key, "batch"):
			tok, err := dec.Token()
			if err != nil {
				return malformed()
			}
			out = out[:0] // duplicate key: last one wins, as in encoding/json
			if tok == nil {
				continue // "batch": null
			}
			if tok != json.Delim('[') {
				return fail(newError(-1, "batch", ErrInvalidField, "expected an array, got "+tokenKind(tok)))
			}
			if out == nil {
				out = make([]Message, 0, len(data)/512+1)
			}
			// Each item is fully validated as soon as it is read, so the
			// error reported is always the first invalid item's.
			for dec.More() {
				i := len(out)
				start := dec.InputOffset()
				// Reset, never reuse: RawMessage.UnmarshalJSON appends into
				// an existing slice, which would alias the previous message.
				w = wireMessage{}
				err := dec.Decode(&w)
				raw := bytes.Trim(data[start:dec.InputOffset()], " \t\r\n,")
				var se *json.SyntaxError
				if errors.As(err, &se) {
					return malformed()
				}
				if len(raw) > MaxMessageBytes {
					return fail(newError(i, "", ErrMessageTooLarge,
						"message is "+strconv.Itoa(len(raw))+" bytes, limit is "+strconv.Itoa(MaxMessageBytes)))
				}
				if kind := jsonKind(raw); kind != "object" {
					return fail(newError(i, "", ErrInvalidField, "expected a JSON object, got "+kind))
				}
				if err != nil {
					return fail(jsonError(err, i))
				}
				if !w.Type.present {
					return fail(newError(i, "type", ErrUnknownType, "missing message type"))
				}
				if !w.Type.isString {
					return fail(newError(i, "type", ErrUnknownType, "message type must be a string"))
				}
				t, ok := parseType(w.Type.s)
				if !ok {
					return fail(newError(i, "type", ErrUnknownType, "unknown message type"))
				}
				m, ferr := normalise(&w, t, i, now)
				if ferr != nil {
					return fail(ferr)
				}
				out = append(out, m)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return malformed()
			}
		case matchKey(key, "context"), matchKey(key, "integrations"):
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return malformed()
			}
			field := "context"
			dst := &d.context
			if matchKey(key, "integrations") {
				field, dst = "integrations", &d.integrations
			}
			if *dst, ferr = objectField(raw, -1, field); ferr != nil {
				return fail(ferr)
			}
		case matchKey(key, "sentAt"):
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return malformed()
			}
			s, ok := unquote(raw)
			switch kind := jsonKind(raw); {
			case kind == "null":
				d.sentAt = time.Time{}
			case !ok:
				return fail(newError(-1, "sentAt", ErrInvalidField, "expected a string, got "+kind))
			default:
				if d.sentAt, ferr = parseTimeField(s, -1, "sentAt"); ferr != nil {
					return fail(ferr)
				}
			}
		default:
			var skip skipJSON
			if err := dec.Decode(&skip); err != nil {
				return malformed()
			}
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return malformed()
	}
	if _, err := dec.Token(); err != io.EOF { // nothing may follow the envelope
		return malformed()
	}
	if len(out) == 0 {
		return nil, newError(-1, "batch", ErrEmptyBatch, "batch contains no messages")
	}
	// Batch-level values may appear after "batch" in the body, so they are
	// applied once the whole envelope has been read.
	for i := range out {
		applyDefaults(&out[i], &d)
	}
	return out, nil
}

// matchKey mirrors encoding/json's key matching (exact, else
// case-insensitive) for the hand-streamed batch envelope.
func matchKey(key, name string) bool {
	return key == name || strings.EqualFold(key, name)
}

// tokenKind names the JSON type of a json.Decoder token.
func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "object"
		}
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "number"
}

// skipJSON discards a value without copying it.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }

// syntaxCheck returns an ErrMalformedJSON error with the byte offset of the
// first syntax error in data, or nil if data is valid JSON.
func syntaxCheck(data []byte) *FieldError {
	if json.Valid(data) {
		return nil
	}
	var v skipJSON
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return newError(-1, "", ErrMalformedJSON, syntaxReason(se))
	}
	return newError(-1, "", ErrMalformedJSON, "syntax error")
}

// normalise validates a decoded wire message and turns it into a Message
// carrying only the message's own values; applyDefaults completes it. now
// must already be UTC.
func normalise(w *wireMessage, t Type, idx int, now time.Time) (Message, *FieldError) {
	var err *FieldError
	m := Message{
		Type:        t,
		MessageID:   strings.TrimSpace(w.MessageID),
		UserID:      strings.TrimSpace(w.UserID),
		AnonymousID: strings.TrimSpace(w.AnonymousID),
		PreviousID:  strings.TrimSpace(w.PreviousID),
		GroupID:     strings.TrimSpace(w.GroupID),
		Event:       w.Event,
		Name:        w.Name,
		Category:    w.Category,
		ReceivedAt:  now,
	}

	// Free-form objects: must be objects; null means absent.
	if m.Traits, err = objectField(w.Traits, idx, "traits"); err != nil {
		return Message{}, err
	}
	if m.Properties, err = objectField(w.Properties, idx, "properties"); err != nil {
		return Message{}, err
	}
	if m.Context, err = objectField(w.Context, idx, "context"); err != nil {
		return Message{}, err
	}
	if m.Integrations, err = objectField(w.Integrations, idx, "integrations"); err != nil {
		return Message{}, err
	}

	// Length caps.
	for _, f := range [...]struct {
		name, v string
	}{
		{"messageId", m.MessageID},
		{"userId", m.UserID},
		{"anonymousId", m.AnonymousID},
		{"previousId", m.PreviousID},
		{"groupId", m.GroupID},
		{"event", m.Event},
		{"name", m.Name},
		{"category", m.Category},
	} {
		if len(f.v) > MaxIDBytes {
			return Message{}, newError(idx, f.name, ErrInvalidField,
				"longer than "+strconv.Itoa(MaxIDBytes)+" bytes")
		}
	}

	// Identity and per-type required fields.
	if t == Alias {
		if m.PreviousID == "" {
			return Message{}, newError(idx, "previousId", ErrMissingIdentity, "alias requires previousId")
		}
		if m.UserID == "" {
			return Message{}, newError(idx, "userId", ErrMissingIdentity, "alias requires userId")
		}
	} else if m.UserID == "" && m.AnonymousID == "" {
		return Message{}, newError(idx, "userId", ErrMissingIdentity, "userId or anonymousId is required")
	}
	switch t {
	case Track:
		if strings.TrimSpace(m.Event) == "" {
			return Message{}, newError(idx, "event", ErrInvalidField, "track requires a non-empty event")
		}
	case Group:
		if m.GroupID == "" {
			return Message{}, newError(idx, "groupId", ErrMissingIdentity, "group requires groupId")
		}
	}

	if m.OriginalTimestamp, err = parseTimeField(w.Timestamp, idx, "timestamp"); err != nil {
		return Message{}, err
	}
	if m.SentAt, err = parseTimeField(w.SentAt, idx, "sentAt"); err != nil {
		return Message{}, err
	}
	if m.MessageID == "" {
		m.MessageID = uuid.NewString()
	}
	return m, nil
}

// applyDefaults fills in batch-level values and computes Timestamp. It
// cannot fail.
func applyDefaults(m *Message, d *defaults) {
	if m.SentAt.IsZero() {
		m.SentAt = d.sentAt
	}
	// Segment's clock-skew correction: the client's clock may be wrong, but
	// the interval between the event (timestamp) and the send (sentAt), both
	// measured on that clock, is trustworthy; anchor it to our receive time.
	switch {
	case !m.OriginalTimestamp.IsZero() && !m.SentAt.IsZero():
		m.Timestamp = m.ReceivedAt.Add(-m.SentAt.Sub(m.OriginalTimestamp))
	case !m.OriginalTimestamp.IsZero():
		m.Timestamp = m.OriginalTimestamp
	default:
		m.Timestamp = m.ReceivedAt
	}
	m.Context = mergeObjects(m.Context, d.context)
	m.Integrations = mergeObjects(m.Integrations, d.integrations)
}

// parseType lower-cases and trims s and checks it is a Segment type.
func parseType(s string) (Type, bool) {
	t := Type(s)
	if t.Valid() {
		return t, true
	}
	t = Type(strings.ToLower(strings.TrimSpace(s)))
	return t, t.Valid()
}

// objectField checks that raw is a JSON object; JSON null (or absence) is
// returned as nil.
func objectField(raw json.RawMessage, idx int, field string) (json.RawMessage, *FieldError) {
	if len(raw) == 0 {
		return nil, nil
	}
	switch kind := jsonKind(raw); kind {
	case "object":
		return raw, nil
	case "null":
		return nil, nil
	default:
		return nil, newError(idx, field, ErrInvalidField, "expected an object, got "+kind)
	}
}

// jsonKind names the JSON type of the (valid) value in raw.
func jsonKind(raw []byte) string {
	i := skipSpace(raw, 0)
	if i >= len(raw) {
		return "nothing"
	}
	switch raw[i] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// Accepted timestamp layouts, tried in order. time.Parse accepts an optional
// fractional second (with '.' or ',') after the seconds field for all of
// them, so "…:05Z" and "…:05.123456789Z" both match the first layout.
var timeLayouts = [...]string{
	time.RFC3339Nano,            // 2006-01-02T15:04:05.999999999Z07:00 (fast path)
	"2006-01-02T15:04:05Z0700",  // offset without colon: +0000
	"2006-01-02T15:04:05Z07",    // hour-only offset: +01
	"2006-01-02T15:04Z07:00",    // no seconds
	"2006-01-02T15:04Z0700",     // no seconds, offset without colon
	"2006-01-02 15:04:05Z07:00", // space separator (RFC 3339 §5.6 note)
	"2006-01-02 15:04:05Z0700",  // space separator, offset without colon
	"2006-01-02T15:04:05",       // no zone: taken as UTC
	"2006-01-02T15:04",          // no seconds, no zone: UTC
	"2006-01-02",                // date only: midnight UTC
}

// parseTime parses an ISO-8601 / RFC 3339 timestamp and returns it in UTC.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseTimeField parses a client timestamp. Absent, null, blank and the zero
// time (0001-01-01T00:00:00Z, what a Go client sends for an unset
// time.Time) all mean "not given" and yield the zero time. Instants outside
// years 1–9999 UTC are rejected: they cannot be rendered as RFC 3339 and no
// real clock produces them.
func parseTimeField(s string, idx int, field string) (time.Time, *FieldError) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, ok := parseTime(s)
	if !ok {
		return time.Time{}, newError(idx, field, ErrInvalidField, "not an ISO-8601 timestamp")
	}
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, newError(idx, field, ErrInvalidField, "timestamp out of range")
	}
	return t, nil
}

// checkUTF8 must run before encoding/json sees the bytes: json.Unmarshal
// silently replaces invalid sequences with U+FFFD, which would corrupt ids.
func checkUTF8(data []byte) *FieldError {
	if utf8.Valid(data) {
		return nil
	}
	off := 0
	for off < len(data) {
		r, n := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	return newError(-1, "", ErrInvalidUTF8, "invalid UTF-8 at byte offset "+strconv.Itoa(off))
}

// jsonError converts an encoding/json error into a *FieldError without
// copying any part of the input into the message.
func jsonError(err error, idx int) *FieldError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return newError(idx, "", ErrMalformedJSON, syntaxReason(se))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := typeName(te.Value)
		if te.Field == "" {
			return newError(idx, "", ErrInvalidField, "expected a JSON object, got "+got)
		}
		return newError(idx, te.Field, ErrInvalidField, "expected "+wantName(te.Type)+", got "+got)
	}
	return newError(idx, "", ErrMalformedJSON, "cannot decode JSON")
}

// syntaxReason rewrites json.SyntaxError messages, which quote the offending
// character (`invalid character 'x' after object key`), into position-only
// text.
func syntaxReason(se *json.SyntaxError) string {
	msg := se.Error()
	const p = "invalid character '"
	if rest, ok := strings.CutPrefix(msg, p); ok {
		if i := strings.Index(rest[1:], "' "); i >= 0 {
			msg = "invalid character " + rest[1+i+2:]
		} else {
			msg = "invalid character"
		}
	} else if !strings.HasPrefix(msg, "unexpected end of JSON input") {
		msg = "syntax error"
	}
	return msg + " at byte offset " + strconv.FormatInt(se.Offset, 10)
}

// typeName maps UnmarshalTypeError.Value (which may be "number 123") to a bare
// JSON type name.
func typeName(v string) string {
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	switch v {
	case "string", "number", "array", "object", "null":
		return v
	case "bool":
		return "boolean"
	}
	return "another type"
}

func wantName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another type"
}
