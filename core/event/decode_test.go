package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var testNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

// checkErr asserts err is a *FieldError wrapping sentinel with the given
// index and field.
func checkErr(t *testing.T, err, sentinel error, index int, field string) *FieldError {
	t.Helper()
	if err == nil {
		t.Fatalf("expected error %v, got nil", sentinel)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %T %v is not a *FieldError", err, err)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q: want sentinel %v, got %v", err, sentinel, fe.Err)
	}
	if fe.Index != index {
		t.Errorf("error %q: index = %d, want %d", err, fe.Index, index)
	}
	if fe.Field != field {
		t.Errorf("error %q: field = %q, want %q", err, fe.Field, field)
	}
	if fe.Error() == "" {
		t.Errorf("empty error text")
	}
	return fe
}

func TestDecodeMessageHappy(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		body  string
		check func(t *testing.T, m Message)
	}{
		{
			name: "identify",
			typ:  Identify,
			body: `{"userId":" u1 ","traits":{"email":"a@example.com","name":"A"},"context":{"ip":"1.2.3.4"},"messageId":"m1","timestamp":"2024-05-01T11:00:00Z"}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Identify || m.UserID != "u1" || m.MessageID != "m1" {
					t.Errorf("got %+v", m)
				}
				if string(m.Traits) != `{"email":"a@example.com","name":"A"}` {
					t.Errorf("traits = %s", m.Traits)
				}
				if string(m.Context) != `{"ip":"1.2.3.4"}` {
					t.Errorf("context = %s", m.Context)
				}
				if !m.Timestamp.Equal(mustTime(t, "2024-05-01T11:00:00Z")) || !m.OriginalTimestamp.Equal(m.Timestamp) {
					t.Errorf("timestamp = %v / %v", m.Timestamp, m.OriginalTimestamp)
				}
				if !m.SentAt.IsZero() || !m.ReceivedAt.Equal(testNow) {
					t.Errorf("sentAt %v receivedAt %v", m.SentAt, m.ReceivedAt)
				}
			},
		},
		{
			name: "track",
			typ:  Track,
			body: `{"anonymousId":"anon-1","event":"Order Completed","properties":{"total":12.5},"integrations":{"All":true}}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Track || m.AnonymousID != "anon-1" || m.Event != "Order Completed" || m.UserID != "" {
					t.Errorf("got %+v", m)
				}
				if string(m.Properties) != `{"total":12.5}` || string(m.Integrations) != `{"All":true}` {
					t.Errorf("properties %s integrations %s", m.Properties, m.Integrations)
				}
				if !m.Timestamp.Equal(testNow) || !m.OriginalTimestamp.IsZero() {
					t.Errorf("no client times: timestamp should be receivedAt, got %v", m.Timestamp)
				}
				if _, err := uuid.Parse(m.MessageID); err != nil {
					t.Errorf("generated messageId %q is not a UUID", m.MessageID)
				}
			},
		},
		{
			name: "page",
			typ:  Page,
			body: `{"userId":"u1","name":"Pricing","category":"Docs","properties":{"url":"https://x.test/p"}}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Page || m.Name != "Pricing" || m.Category != "Docs" {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "page without name",
			typ:  Page,
			body: `{"userId":"u1"}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Page || m.Name != "" {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "screen",
			typ:  Screen,
			body: `{"userId":"u1","name":"Home","properties":{}}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Screen || m.Name != "Home" || string(m.Properties) != `{}` {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "group",
			typ:  Group,
			body: `{"userId":"u1","groupId":" g1 ","traits":{"plan":"pro"}}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Group || m.GroupID != "g1" || string(m.Traits) != `{"plan":"pro"}` {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "alias",
			typ:  Alias,
			body: `{"previousId":"anon-1","userId":"u1"}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Alias || m.PreviousID != "anon-1" || m.UserID != "u1" {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "url type is case-insensitive",
			typ:  "Track",
			body: `{"userId":"u1","event":"E"}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Track {
					t.Errorf("type = %q", m.Type)
				}
			},
		},
		{
			name: "body type disagreeing with URL is ignored",
			typ:  Track,
			body: `{"type":"alias","userId":"u1","event":"E"}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Track {
					t.Errorf("type = %q", m.Type)
				}
			},
		},
		{
			name: "non-string body type is ignored",
			typ:  Identify,
			body: `{"type":5,"userId":"u1"}`,
			check: func(t *testing.T, m Message) {
				if m.Type != Identify {
					t.Errorf("type = %q", m.Type)
				}
			},
		},
		{
			name: "null objects and ids are absent",
			typ:  Identify,
			body: `{"userId":"u1","anonymousId":null,"traits":null,"properties":null,"context":null,"integrations":null,"timestamp":null,"sentAt":null}`,
			check: func(t *testing.T, m Message) {
				if m.Traits != nil || m.Properties != nil || m.Context != nil || m.Integrations != nil || m.AnonymousID != "" {
					t.Errorf("got %+v", m)
				}
				if !m.Timestamp.Equal(testNow) {
					t.Errorf("timestamp = %v", m.Timestamp)
				}
			},
		},
		{
			name: "unknown top-level fields are dropped, context kept as sent",
			typ:  Track,
			body: `{"userId":"u1","event":"E","_metadata":{"x":1},"writeKey":"wk","receivedAt":"2020-01-01T00:00:00Z","context":{"library":{"name":"analytics-node"},"weird":[1,2]}}`,
			check: func(t *testing.T, m Message) {
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "_metadata") || strings.Contains(string(b), "writeKey") {
					t.Errorf("unknown fields kept: %s", b)
				}
				if !m.ReceivedAt.Equal(testNow) {
					t.Errorf("client receivedAt must be ignored")
				}
				if string(m.Context) != `{"library":{"name":"analytics-node"},"weird":[1,2]}` {
					t.Errorf("context = %s", m.Context)
				}
			},
		},
		{
			name: "skew correction on single message",
			typ:  Track,
			body: `{"userId":"u1","event":"E","timestamp":"2024-05-01T10:00:00.000Z","sentAt":"2024-05-01T10:00:05.000Z"}`,
			check: func(t *testing.T, m Message) {
				if want := mustTime(t, "2024-05-01T11:59:55Z"); !m.Timestamp.Equal(want) {
					t.Errorf("timestamp = %v, want %v", m.Timestamp, want)
				}
				if want := mustTime(t, "2024-05-01T10:00:00Z"); !m.OriginalTimestamp.Equal(want) {
					t.Errorf("originalTimestamp = %v", m.OriginalTimestamp)
				}
				if want := mustTime(t, "2024-05-01T10:00:05Z"); !m.SentAt.Equal(want) {
					t.Errorf("sentAt = %v", m.SentAt)
				}
			},
		},
		{
			name: "max-length id accepted",
			typ:  Identify,
			body: `{"userId":"` + strings.Repeat("a", MaxIDBytes) + `"}`,
			check: func(t *testing.T, m Message) {
				if len(m.UserID) != MaxIDBytes {
					t.Errorf("len = %d", len(m.UserID))
				}
			},
		},
		{
			name: "escaped strings are decoded",
			typ:  Identify,
			body: `{"userId":"caf\u00e9 \"x\""}`,
			check: func(t *testing.T, m Message) {
				if m.UserID != `café "x"` {
					t.Errorf("userId = %q", m.UserID)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tc.body), tc.typ, testNow)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			for _, tm := range []time.Time{m.Timestamp, m.OriginalTimestamp, m.SentAt, m.ReceivedAt} {
				if tm.Location() != time.UTC {
					t.Errorf("time %v not UTC", tm)
				}
			}
			tc.check(t, m)
		})
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	long := strings.Repeat("x", MaxIDBytes+1)
	tests := []struct {
		name     string
		typ      Type
		body     string
		sentinel error
		field    string
	}{
		{"unknown url type", "purchase", `{"userId":"u1"}`, ErrUnknownType, "type"},
		{"empty url type, no body type", "", `{"userId":"u1"}`, ErrUnknownType, "type"},
		{"empty url type, body type number", "", `{"type":3,"userId":"u1"}`, ErrUnknownType, "type"},
		{"empty url type, body type unknown", "", `{"type":"purchase","userId":"u1"}`, ErrUnknownType, "type"},
		{"empty url type, body type track without event", "", `{"type":"track","userId":"u1"}`, ErrInvalidField, "event"},
		{"too large", Track, `{"userId":"u1","event":"E","properties":{"p":"` + strings.Repeat("x", MaxMessageBytes) + `"}}`, ErrMessageTooLarge, ""},
		{"invalid utf8", Identify, "{\"userId\":\"\xff\xfe\"}", ErrInvalidUTF8, ""},
		{"malformed json", Identify, `{"userId":"u1",}`, ErrMalformedJSON, ""},
		{"truncated json", Identify, `{"userId":"u1"`, ErrMalformedJSON, ""},
		{"empty body", Identify, ``, ErrMalformedJSON, ""},
		{"trailing garbage", Identify, `{"userId":"u1"} x`, ErrMalformedJSON, ""},
		{"body is array", Identify, `[{"userId":"u1"}]`, ErrInvalidField, ""},
		{"body is null", Identify, `null`, ErrInvalidField, ""},
		{"body is string", Identify, `"u1"`, ErrInvalidField, ""},
		{"userId number", Identify, `{"userId":12345678}`, ErrInvalidField, "userId"},
		{"anonymousId bool", Identify, `{"anonymousId":true}`, ErrInvalidField, "anonymousId"},
		{"previousId object", Alias, `{"userId":"u1","previousId":{}}`, ErrInvalidField, "previousId"},
		{"groupId array", Group, `{"userId":"u1","groupId":["g"]}`, ErrInvalidField, "groupId"},
		{"event number", Track, `{"userId":"u1","event":1}`, ErrInvalidField, "event"},
		{"name number", Page, `{"userId":"u1","name":1}`, ErrInvalidField, "name"},
		{"category bool", Page, `{"userId":"u1","category":false}`, ErrInvalidField, "category"},
		{"messageId number", Identify, `{"userId":"u1","messageId":42}`, ErrInvalidField, "messageId"},
		{"traits array", Identify, `{"userId":"u1","traits":["a"]}`, ErrInvalidField, "traits"},
		{"traits string", Identify, `{"userId":"u1","traits":"a"}`, ErrInvalidField, "traits"},
		{"properties string", Track, `{"userId":"u1","event":"E","properties":"p"}`, ErrInvalidField, "properties"},
		{"context number", Track, `{"userId":"u1","event":"E","context":1}`, ErrInvalidField, "context"},
		{"integrations bool", Track, `{"userId":"u1","event":"E","integrations":true}`, ErrInvalidField, "integrations"},
		{"timestamp number", Track, `{"userId":"u1","event":"E","timestamp":1714564800}`, ErrInvalidField, "timestamp"},
		{"timestamp unparsable", Track, `{"userId":"u1","event":"E","timestamp":"yesterday"}`, ErrInvalidField, "timestamp"},
		{"timestamp bad month", Track, `{"userId":"u1","event":"E","timestamp":"2024-13-01T00:00:00Z"}`, ErrInvalidField, "timestamp"},
		{"sentAt unparsable", Track, `{"userId":"u1","event":"E","sentAt":"2024/05/01"}`, ErrInvalidField, "sentAt"},
		{"sentAt object", Track, `{"userId":"u1","event":"E","sentAt":{}}`, ErrInvalidField, "sentAt"},
		{"missing identity", Identify, `{"traits":{"a":1}}`, ErrMissingIdentity, "userId"},
		{"blank identity", Track, `{"userId":"  ","anonymousId":"\t","event":"E"}`, ErrMissingIdentity, "userId"},
		{"alias missing previousId", Alias, `{"userId":"u1"}`, ErrMissingIdentity, "previousId"},
		{"alias missing userId", Alias, `{"previousId":"p","anonymousId":"a"}`, ErrMissingIdentity, "userId"},
		{"track missing event", Track, `{"userId":"u1"}`, ErrInvalidField, "event"},
		{"track blank event", Track, `{"userId":"u1","event":"  "}`, ErrInvalidField, "event"},
		{"group missing groupId", Group, `{"userId":"u1"}`, ErrMissingIdentity, "groupId"},
		{"userId too long", Identify, `{"userId":"` + long + `"}`, ErrInvalidField, "userId"},
		{"anonymousId too long", Identify, `{"anonymousId":"` + long + `"}`, ErrInvalidField, "anonymousId"},
		{"messageId too long", Identify, `{"userId":"u","messageId":"` + long + `"}`, ErrInvalidField, "messageId"},
		{"event too long", Track, `{"userId":"u","event":"` + long + `"}`, ErrInvalidField, "event"},
		{"groupId too long", Group, `{"userId":"u","groupId":"` + long + `"}`, ErrInvalidField, "groupId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tc.body), tc.typ, testNow)
			checkErr(t, err, tc.sentinel, -1, tc.field)
		})
	}
}

func TestTimestampFormats(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"},
		{"2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123Z"},
		{"2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.123456789Z"},
		{"2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"},
		{"2024-05-01T05:30:00.5-04:30", "2024-05-01T10:00:00.5Z"},
		{"2024-05-01T12:00:00+0200", "2024-05-01T10:00:00Z"},
		{"2024-05-01T12:00:00.250+0200", "2024-05-01T10:00:00.25Z"},
		{"2024-05-01T12:00:00+02", "2024-05-01T10:00:00Z"},
		{"2024-05-01T12:00+02:00", "2024-05-01T10:00:00Z"},
		{"2024-05-01 12:00:00+02:00", "2024-05-01T10:00:00Z"},
		{"2024-05-01T10:00:00", "2024-05-01T10:00:00Z"},
		{"2024-05-01T10:00:00.75", "2024-05-01T10:00:00.75Z"},
		{"2024-05-01T10:00", "2024-05-01T10:00:00Z"},
		{"2024-05-01", "2024-05-01T00:00:00Z"},
		{" 2024-05-01T10:00:00Z ", "2024-05-01T10:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			body := `{"userId":"u","event":"E","timestamp":"` + tc.in + `"}`
			m, err := DecodeMessage([]byte(body), Track, testNow)
			if err != nil {
				t.Fatal(err)
			}
			want := mustTime(t, tc.want)
			if !m.Timestamp.Equal(want) || m.Timestamp.Location() != time.UTC {
				t.Errorf("got %v, want %v", m.Timestamp, want)
			}
		})
	}
	for _, bad := range []string{"0000-06-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-02:00", "1714564800", "2024-05-01T25:00:00Z", "May 1 2024", "2024-05-01T10:00:00Zjunk", "T10:00:00Z"} {
		t.Run("bad/"+bad, func(t *testing.T) {
			body := `{"userId":"u","event":"E","timestamp":"` + bad + `"}`
			_, err := DecodeMessage([]byte(body), Track, testNow)
			checkErr(t, err, ErrInvalidField, -1, "timestamp")
		})
	}
}

func TestSkewCorrection(t *testing.T) {
	tests := []struct {
		name             string
		body             string
		wantTS, wantOrig string
		wantSent         string
	}{
		{
			name:     "client clock 2h slow",
			body:     `{"timestamp":"2024-05-01T10:00:00Z","sentAt":"2024-05-01T10:00:05Z"}`,
			wantTS:   "2024-05-01T11:59:55Z",
			wantOrig: "2024-05-01T10:00:00Z",
			wantSent: "2024-05-01T10:00:05Z",
		},
		{
			name:     "client clock ahead, sub-second",
			body:     `{"timestamp":"2024-05-01T13:00:00.250Z","sentAt":"2024-05-01T13:00:01Z"}`,
			wantTS:   "2024-05-01T11:59:59.25Z",
			wantOrig: "2024-05-01T13:00:00.25Z",
			wantSent: "2024-05-01T13:00:01Z",
		},
		{
			name:     "only timestamp",
			body:     `{"timestamp":"2024-05-01T10:00:00Z"}`,
			wantTS:   "2024-05-01T10:00:00Z",
			wantOrig: "2024-05-01T10:00:00Z",
		},
		{
			name:     "only sentAt",
			body:     `{"sentAt":"2024-05-01T10:00:05Z"}`,
			wantTS:   "2024-05-01T12:00:00Z",
			wantSent: "2024-05-01T10:00:05Z",
		},
		{
			name:   "neither",
			body:   `{}`,
			wantTS: "2024-05-01T12:00:00Z",
		},
		{
			name:   "empty strings count as absent",
			body:   `{"timestamp":"","sentAt":" "}`,
			wantTS: "2024-05-01T12:00:00Z",
		},
		{
			name:     "Go zero time counts as absent",
			body:     `{"timestamp":"0001-01-01T00:00:00Z","sentAt":"2024-05-01T10:00:05Z"}`,
			wantTS:   "2024-05-01T12:00:00Z",
			wantSent: "2024-05-01T10:00:05Z",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Inject identity + event into the body.
			body := `{"userId":"u","event":"E",` + strings.TrimPrefix(tc.body, "{")
			body = strings.Replace(body, `"E",}`, `"E"}`, 1)
			m, err := DecodeMessage([]byte(body), Track, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Timestamp.Equal(mustTime(t, tc.wantTS)) {
				t.Errorf("timestamp = %v, want %v", m.Timestamp, tc.wantTS)
			}
			if tc.wantOrig == "" {
				if !m.OriginalTimestamp.IsZero() {
					t.Errorf("originalTimestamp = %v, want zero", m.OriginalTimestamp)
				}
			} else if !m.OriginalTimestamp.Equal(mustTime(t, tc.wantOrig)) {
				t.Errorf("originalTimestamp = %v, want %v", m.OriginalTimestamp, tc.wantOrig)
			}
			if tc.wantSent == "" {
				if !m.SentAt.IsZero() {
					t.Errorf("sentAt = %v, want zero", m.SentAt)
				}
			} else if !m.SentAt.Equal(mustTime(t, tc.wantSent)) {
				t.Errorf("sentAt = %v, want %v", m.SentAt, tc.wantSent)
			}
			if !m.ReceivedAt.Equal(testNow) {
				t.Errorf("receivedAt = %v", m.ReceivedAt)
			}
		})
	}
}

func TestDecodeBatchHappy(t *testing.T) {
	body := `{
	  "batch": [
	    {"type":"identify","userId":"u1","traits":{"email":"a@example.com"},"timestamp":"2024-05-01T10:00:00Z","context":{"ip":"9.9.9.9"}},
	    {"type":"TRACK","anonymousId":"a1","event":"Product Viewed","properties":{"sku":"s1"},"timestamp":"2024-05-01T10:00:01Z","sentAt":"2024-05-01T10:00:03Z","integrations":{"Mixpanel":false}},
	    {"type":"page","userId":"u1","name":"Home"},
	    {"type":"screen","userId":"u1","name":"Cart","context":{}},
	    {"type":"group","userId":"u1","groupId":"g1","context":{ "library" : {"name":"own"} , "locale":"fr-FR" }},
	    {"type":"alias","previousId":"a1","userId":"u1","messageId":"fixed"}
	  ],
	  "context": {"library":{"name":"analytics-node","version":"2.1.0"},"ip":"1.1.1.1"},
	  "integrations": {"All":true},
	  "sentAt": "2024-05-01T10:00:04Z",
	  "writeKey": "ignored"
	}`
	msgs, err := DecodeBatch([]byte(body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 6 {
		t.Fatalf("got %d messages", len(msgs))
	}
	wantTypes := []Type{Identify, Track, Page, Screen, Group, Alias}
	for i, m := range msgs {
		if m.Type != wantTypes[i] {
			t.Errorf("msg %d type %q, want %q", i, m.Type, wantTypes[i])
		}
		if m.MessageID == "" || !m.ReceivedAt.Equal(testNow) {
			t.Errorf("msg %d: messageId %q receivedAt %v", i, m.MessageID, m.ReceivedAt)
		}
	}

	t.Run("batch context fills in missing keys, own keys win", func(t *testing.T) {
		var ctx map[string]any
		if err := json.Unmarshal(msgs[0].Context, &ctx); err != nil {
			t.Fatalf("merged context %s: %v", msgs[0].Context, err)
		}
		if ctx["ip"] != "9.9.9.9" {
			t.Errorf("own ip overwritten: %s", msgs[0].Context)
		}
		if lib, _ := ctx["library"].(map[string]any); lib["name"] != "analytics-node" {
			t.Errorf("batch library missing: %s", msgs[0].Context)
		}
		if !strings.HasPrefix(string(msgs[0].Context), `{"ip":"9.9.9.9"`) {
			t.Errorf("own bytes not preserved: %s", msgs[0].Context)
		}
	})
	t.Run("message without context gets batch context", func(t *testing.T) {
		if string(msgs[1].Context) != `{"library":{"name":"analytics-node","version":"2.1.0"},"ip":"1.1.1.1"}` {
			t.Errorf("context = %s", msgs[1].Context)
		}
	})
	t.Run("empty own context", func(t *testing.T) {
		var ctx map[string]any
		if err := json.Unmarshal(msgs[3].Context, &ctx); err != nil || len(ctx) != 2 {
			t.Errorf("context = %s (%v)", msgs[3].Context, err)
		}
	})
	t.Run("own nested key wins, whitespace tolerated", func(t *testing.T) {
		var ctx map[string]any
		if err := json.Unmarshal(msgs[4].Context, &ctx); err != nil {
			t.Fatalf("context %s: %v", msgs[4].Context, err)
		}
		if lib, _ := ctx["library"].(map[string]any); lib["name"] != "own" || len(lib) != 1 {
			t.Errorf("shallow merge broken: %s", msgs[4].Context)
		}
		if ctx["locale"] != "fr-FR" || ctx["ip"] != "1.1.1.1" {
			t.Errorf("context = %s", msgs[4].Context)
		}
	})
	t.Run("integrations", func(t *testing.T) {
		if string(msgs[0].Integrations) != `{"All":true}` {
			t.Errorf("integrations = %s", msgs[0].Integrations)
		}
		var integ map[string]bool
		if err := json.Unmarshal(msgs[1].Integrations, &integ); err != nil || !integ["All"] || integ["Mixpanel"] {
			t.Errorf("integrations = %s", msgs[1].Integrations)
		}
	})
	t.Run("batch sentAt and skew", func(t *testing.T) {
		// msg 0: timestamp 10:00:00, batch sentAt 10:00:04 → now - 4s.
		if want := mustTime(t, "2024-05-01T11:59:56Z"); !msgs[0].Timestamp.Equal(want) {
			t.Errorf("msg0 timestamp = %v, want %v", msgs[0].Timestamp, want)
		}
		if want := mustTime(t, "2024-05-01T10:00:04Z"); !msgs[0].SentAt.Equal(want) {
			t.Errorf("msg0 sentAt = %v", msgs[0].SentAt)
		}
		// msg 1: own sentAt 10:00:03 wins over batch → now - 2s.
		if want := mustTime(t, "2024-05-01T11:59:58Z"); !msgs[1].Timestamp.Equal(want) {
			t.Errorf("msg1 timestamp = %v, want %v", msgs[1].Timestamp, want)
		}
		if want := mustTime(t, "2024-05-01T10:00:01Z"); !msgs[1].OriginalTimestamp.Equal(want) {
			t.Errorf("msg1 originalTimestamp = %v", msgs[1].OriginalTimestamp)
		}
		// msg 2: no timestamp → receivedAt, sentAt from batch.
		if !msgs[2].Timestamp.Equal(testNow) || msgs[2].SentAt.IsZero() {
			t.Errorf("msg2 timestamp %v sentAt %v", msgs[2].Timestamp, msgs[2].SentAt)
		}
	})
	t.Run("alias keeps messageId", func(t *testing.T) {
		if msgs[5].MessageID != "fixed" {
			t.Errorf("messageId = %q", msgs[5].MessageID)
		}
	})
}

func TestDecodeBatchErrors(t *testing.T) {
	big := `{"type":"track","userId":"u","event":"E","properties":{"p":"` + strings.Repeat("x", MaxMessageBytes) + `"}}`
	var huge strings.Builder
	huge.WriteString(`{"batch":[`)
	for i := 0; huge.Len() <= MaxBatchBytes; i++ {
		if i > 0 {
			huge.WriteByte(',')
		}
		huge.WriteString(`{"type":"track","userId":"u","event":"E","properties":{"p":"` + strings.Repeat("x", 1000) + `"}}`)
	}
	huge.WriteString(`]}`)
	ok := `{"type":"track","userId":"u","event":"E"}`

	tests := []struct {
		name     string
		body     string
		sentinel error
		index    int
		field    string
		text     string // expected Error() text, if set
	}{
		{"batch too large", huge.String(), ErrBatchTooLarge, -1, "", ""},
		{"item too large", `{"batch":[` + ok + `,` + big + `]}`, ErrMessageTooLarge, 1, "batch[1]", ""},
		{"empty batch", `{"batch":[]}`, ErrEmptyBatch, -1, "batch", ""},
		{"missing batch", `{"sentAt":"2024-05-01T10:00:00Z"}`, ErrEmptyBatch, -1, "batch", ""},
		{"null batch", `{"batch":null}`, ErrEmptyBatch, -1, "batch", ""},
		{"batch is object", `{"batch":{}}`, ErrInvalidField, -1, "batch", `field "batch": expected an array, got object`},
		{"batch is string", `{"batch":"x"}`, ErrInvalidField, -1, "batch", `field "batch": expected an array, got string`},
		{"batch is number", `{"batch":1}`, ErrInvalidField, -1, "batch", `field "batch": expected an array, got number`},
		{"batch is bool", `{"batch":true}`, ErrInvalidField, -1, "batch", `field "batch": expected an array, got boolean`},
		{"body is array", `[` + ok + `]`, ErrInvalidField, -1, "", `expected a JSON object, got array`},
		{"empty body", ``, ErrMalformedJSON, -1, "", `unexpected end of JSON input at byte offset 0`},
		{"malformed", `{"batch":[` + ok + `,]}`, ErrMalformedJSON, -1, "", ""},
		{"invalid utf8", "{\"batch\":[{\"type\":\"track\",\"userId\":\"\xc3\x28\",\"event\":\"E\"}]}", ErrInvalidUTF8, -1, "", ""},
		{"missing type", `{"batch":[` + ok + `,{"userId":"u"}]}`, ErrUnknownType, 1, "batch[1].type", `message 1: field "type": missing message type`},
		{"null type", `{"batch":[{"type":null,"userId":"u"}]}`, ErrUnknownType, 0, "batch[0].type", ""},
		{"unknown type", `{"batch":[` + ok + `,` + ok + `,{"type":"purchase","userId":"u"}]}`, ErrUnknownType, 2, "batch[2].type", ""},
		{"numeric type", `{"batch":[{"type":1,"userId":"u"}]}`, ErrUnknownType, 0, "batch[0].type", ""},
		{"item not object", `{"batch":[` + ok + `,"x"]}`, ErrInvalidField, 1, "batch[1]", `message 1: expected a JSON object, got string`},
		{"item null", `{"batch":[null]}`, ErrInvalidField, 0, "batch[0]", ""},
		{"userId number", `{"batch":[` + ok + `,{"type":"identify","userId":12345678}]}`, ErrInvalidField, 1, "batch[1].userId", `message 1: field "userId": expected a string, got number`},
		{"traits array", `{"batch":[{"type":"identify","userId":"u","traits":[1]}]}`, ErrInvalidField, 0, "batch[0].traits", `message 0: field "traits": expected an object, got array`},
		{"timestamp bad", `{"batch":[{"type":"identify","userId":"u","timestamp":"nope"}]}`, ErrInvalidField, 0, "batch[0].timestamp", ""},
		{"missing identity", `{"batch":[` + ok + `,{"type":"page"}]}`, ErrMissingIdentity, 1, "batch[1].userId", ""},
		{"alias missing previousId", `{"batch":[{"type":"alias","userId":"u"}]}`, ErrMissingIdentity, 0, "batch[0].previousId", ""},
		{"group missing groupId", `{"batch":[{"type":"group","userId":"u"}]}`, ErrMissingIdentity, 0, "batch[0].groupId", ""},
		{"track missing event", `{"batch":[{"type":"track","userId":"u"}]}`, ErrInvalidField, 0, "batch[0].event", ""},
		{"trailing value after envelope", `{"batch":[` + ok + `]} {}`, ErrMalformedJSON, -1, "", ""},
		{"trailing garbage after envelope", `{"batch":[` + ok + `]}x`, ErrMalformedJSON, -1, "", ""},
		{"syntax error beats earlier field error", `{"batch":[{"type":"track","userId":5}],}`, ErrMalformedJSON, -1, "", ""},
		{"syntax error inside later item", `{"batch":[{"type":"page"},{"type":"page","userId":"u",}]}`, ErrMalformedJSON, -1, "", ""},
		{"first invalid item is reported", `{"batch":[` + ok + `,{"userId":"u"},{"type":"track","userId":5}]}`, ErrUnknownType, 1, "batch[1].type", ""},
		{"identity error before later type error", `{"batch":[{"type":"page"},{"type":5,"userId":"u"}]}`, ErrMissingIdentity, 0, "batch[0].userId", ""},
		{"top-level sentAt bad", `{"batch":[` + ok + `],"sentAt":"soon"}`, ErrInvalidField, -1, "sentAt", `field "sentAt": not an ISO-8601 timestamp`},
		{"top-level sentAt number", `{"batch":[` + ok + `],"sentAt":5}`, ErrInvalidField, -1, "sentAt", ""},
		{"top-level context array", `{"batch":[` + ok + `],"context":[]}`, ErrInvalidField, -1, "context", ""},
		{"top-level integrations string", `{"batch":[` + ok + `],"integrations":"all"}`, ErrInvalidField, -1, "integrations", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := DecodeBatch([]byte(tc.body), testNow)
			if msgs != nil {
				t.Errorf("messages returned alongside error")
			}
			fe := checkErr(t, err, tc.sentinel, tc.index, tc.field)
			if tc.text != "" && fe.Error() != tc.text {
				t.Errorf("Error() = %q, want %q", fe.Error(), tc.text)
			}
		})
	}
}

func TestDecodeBatchEnvelope(t *testing.T) {
	ok := `{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T10:00:00Z"}`
	t.Run("defaults before batch key", func(t *testing.T) {
		msgs, err := DecodeBatch([]byte(`{"sentAt":"2024-05-01T10:00:10Z","context":{"ip":"1"},"integrations":{"All":false},"batch":[`+ok+`]}`), testNow)
		if err != nil {
			t.Fatal(err)
		}
		m := msgs[0]
		if string(m.Context) != `{"ip":"1"}` || string(m.Integrations) != `{"All":false}` {
			t.Errorf("defaults not applied: %s %s", m.Context, m.Integrations)
		}
		if want := mustTime(t, "2024-05-01T11:59:50Z"); !m.Timestamp.Equal(want) {
			t.Errorf("timestamp = %v, want %v", m.Timestamp, want)
		}
	})
	t.Run("duplicate batch key: last wins", func(t *testing.T) {
		msgs, err := DecodeBatch([]byte(`{"batch":[`+ok+`,`+ok+`],"batch":[`+ok+`]}`), testNow)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("got %d messages, err %v", len(msgs), err)
		}
	})
	t.Run("keys match case-insensitively like encoding/json", func(t *testing.T) {
		msgs, err := DecodeBatch([]byte(`{"Batch":[{"type":"track","UserId":"u","event":"E"}],"SENTAT":"2024-05-01T10:00:00Z"}`), testNow)
		if err != nil || len(msgs) != 1 || msgs[0].UserID != "u" || msgs[0].SentAt.IsZero() {
			t.Fatalf("got %+v, err %v", msgs, err)
		}
	})
	t.Run("null defaults are absent", func(t *testing.T) {
		msgs, err := DecodeBatch([]byte(`{"batch":[`+ok+`],"context":null,"integrations":null,"sentAt":null,"writeKey":{"x":[1]}}`), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if msgs[0].Context != nil || msgs[0].Integrations != nil || !msgs[0].SentAt.IsZero() {
			t.Errorf("got %+v", msgs[0])
		}
	})
	t.Run("messages do not share raw buffers", func(t *testing.T) {
		msgs, err := DecodeBatch([]byte(`{"batch":[{"type":"identify","userId":"a","traits":{"n":1}},{"type":"identify","userId":"b","traits":{"n":2}}]}`), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if string(msgs[0].Traits) != `{"n":1}` || string(msgs[1].Traits) != `{"n":2}` {
			t.Errorf("traits %s %s", msgs[0].Traits, msgs[1].Traits)
		}
	})
	t.Run("batch and single decode agree", func(t *testing.T) {
		body := `{"type":"group","userId":" u ","groupId":"g","traits":{"a":1},"context":{"b":2},"timestamp":"2024-05-01T10:00:00Z","sentAt":"2024-05-01T10:00:01Z","messageId":"m"}`
		single, err := DecodeMessage([]byte(body), Group, testNow)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := DecodeBatch([]byte(`{"batch":[`+body+`]}`), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(single, batch[0]) {
			t.Errorf("single %+v\nbatch %+v", single, batch[0])
		}
	})
}

// Error text must never contain the offending value: bodies carry personal
// data and error strings reach logs and HTTP clients.
func TestErrorsNeverContainValues(t *testing.T) {
	const email = "jane.doe@example.com"
	tests := []struct {
		name  string
		batch bool
		typ   Type
		body  string
	}{
		{"numeric userId in batch", true, "", `{"batch":[{"type":"identify","userId":12345678,"traits":"` + email + `"}]}`},
		{"email in wrong-typed traits", true, "", `{"batch":[{"type":"identify","userId":"u","traits":"` + email + `"}]}`},
		{"email as wrong-typed context", false, Track, `{"userId":"u","event":"E","context":"` + email + `"}`},
		{"numeric anonymousId", false, Identify, `{"anonymousId":12345678}`},
		{"big number messageId", false, Identify, `{"userId":"u","messageId":12345678901234567890}`},
		{"email as timestamp", false, Identify, `{"userId":"u","timestamp":"` + email + `"}`},
		{"email as batch sentAt", true, "", `{"batch":[{"type":"identify","userId":"u"}],"sentAt":"` + email + `"}`},
		{"email as type", true, "", `{"batch":[{"type":"` + email + `","userId":"u"}]}`},
		{"email in syntax error", false, Identify, `{"userId":"` + email + `" 12345678}`},
		{"invalid char after email", false, Identify, `{"userId":"` + email + `"j}`},
		{"unquoted email", false, Identify, `{"userId":` + email + `}`},
		{"email in invalid utf8", false, Identify, "{\"userId\":\"" + email + "\xff\"}"},
		{"email as item", true, "", `{"batch":["` + email + `"]}`},
		{"email as body", false, Identify, `"` + email + `"`},
		{"email id too long", false, Identify, `{"userId":"` + email + strings.Repeat("x", MaxIDBytes) + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.batch {
				_, err = DecodeBatch([]byte(tc.body), testNow)
			} else {
				_, err = DecodeMessage([]byte(tc.body), tc.typ, testNow)
			}
			if err == nil {
				t.Fatal("expected an error")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %T", err)
			}
			for _, s := range []string{err.Error(), fe.Reason, fe.Field} {
				for _, secret := range []string{"12345678", "jane", "example.com", "@"} {
					if strings.Contains(s, secret) {
						t.Errorf("error %q leaks %q", s, secret)
					}
				}
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		err  *FieldError
		want string
	}{
		{&FieldError{Index: 3, Field: "batch[3].userId", Err: ErrInvalidField, Reason: "expected a string, got number"}, `message 3: field "userId": expected a string, got number`},
		{&FieldError{Index: -1, Field: "timestamp", Err: ErrInvalidField, Reason: "not an ISO-8601 timestamp"}, `field "timestamp": not an ISO-8601 timestamp`},
		{&FieldError{Index: 2, Field: "batch[2]", Err: ErrMessageTooLarge, Reason: "too big"}, `message 2: too big`},
		{&FieldError{Index: -1, Err: ErrEmptyBatch}, `empty batch`},
		{&FieldError{Index: 0, Field: "other", Err: ErrInvalidField}, `message 0: field "other": invalid field`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !errors.Is(tc.err, tc.err.Err) {
				t.Errorf("Unwrap broken")
			}
		})
	}
}

func TestTraitString(t *testing.T) {
	tests := []struct {
		name    string
		traits  string
		context string
		key     string
		want    string
	}{
		{"from traits", `{"email":"a@x.test"}`, ``, "email", "a@x.test"},
		{"from context.traits", ``, `{"ip":"1","traits":{"email":"c@x.test"}}`, "email", "c@x.test"},
		{"traits win", `{"email":"a@x.test"}`, `{"traits":{"email":"c@x.test"}}`, "email", "a@x.test"},
		{"non-string trait falls back", `{"email":5}`, `{"traits":{"email":"c@x.test"}}`, "email", "c@x.test"},
		{"empty trait falls back", `{"email":""}`, `{"traits":{"email":"c@x.test"}}`, "email", "c@x.test"},
		{"non-string everywhere", `{"email":5}`, `{"traits":{"email":[1]}}`, "email", ""},
		{"missing", `{"name":"n"}`, `{"traits":{}}`, "email", ""},
		{"nested key not matched", `{"a":{"email":"x"}}`, ``, "email", ""},
		{"key inside string value not matched", `{"a":"\"email\":\"x\""}`, ``, "email", ""},
		{"escaped value", `{"name":"Ren\u00e9e \"R\""}`, ``, "name", `Renée "R"`},
		{"escaped key", `{"em\u0061il":"a@x.test"}`, ``, "email", "a@x.test"},
		{"last duplicate wins", `{"email":"first","email":"last"}`, ``, "email", "last"},
		{"case-sensitive", `{"Email":"a@x.test"}`, ``, "email", ""},
		{"whitespace", " { \"x\" : [ 1 , { \"y\" : \"}\" } ] , \"email\" :\n\"w@x.test\" } ", ``, "email", "w@x.test"},
		{"context.traits not object", ``, `{"traits":"email"}`, "email", ""},
		{"garbage is safe", `{"email"`, `{"traits":`, "email", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Message{}
			if tc.traits != "" {
				m.Traits = json.RawMessage(tc.traits)
			}
			if tc.context != "" {
				m.Context = json.RawMessage(tc.context)
			}
			if got := m.TraitString(tc.key); got != tc.want {
				t.Errorf("TraitString(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

func TestMergeObjects(t *testing.T) {
	tests := []struct {
		name, own, dflt, want string
	}{
		{"no default", `{"a":1}`, ``, `{"a":1}`},
		{"no own", ``, `{"a":1}`, `{"a":1}`},
		{"disjoint", `{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{"own wins", `{"a":1}`, `{"a":2,"b":3}`, `{"a":1,"b":3}`},
		{"all present", `{"a":1}`, `{"a":2}`, `{"a":1}`},
		{"empty own", `{}`, `{"b":2}`, `{"b":2}`},
		{"empty own with spaces", `{ }`, `{"b":2}`, `{"b":2}`},
		{"trailing spaces", `{"a":1 } `, `{ "b" : [2] }`, `{"a":1,"b":[2]}`},
		{"escaped keys", `{"\u0061":1}`, `{"a":2,"c":3}`, `{"\u0061":1,"c":3}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var own, dflt json.RawMessage
			if tc.own != "" {
				own = json.RawMessage(tc.own)
			}
			if tc.dflt != "" {
				dflt = json.RawMessage(tc.dflt)
			}
			got := mergeObjects(own, dflt)
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON %s", got)
			}
		})
	}
}

func TestTypeValid(t *testing.T) {
	for _, ty := range []Type{Identify, Track, Page, Screen, Group, Alias} {
		if !ty.Valid() {
			t.Errorf("%q not valid", ty)
		}
	}
	for _, ty := range []Type{"", "Track", "batch", "purchase"} {
		if ty.Valid() {
			t.Errorf("%q valid", ty)
		}
	}
}

func TestDecodeDoesNotAliasInput(t *testing.T) {
	body := []byte(`{"userId":"u1","traits":{"email":"a@x.test"},"context":{"ip":"1"}}`)
	m, err := DecodeMessage(body, Identify, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := m
	want.Traits = append(json.RawMessage(nil), m.Traits...)
	want.Context = append(json.RawMessage(nil), m.Context...)
	for i := range body {
		body[i] = 'z'
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("message changed after input buffer reuse: %+v", m)
	}
}

// An empty type takes the body's "type", as import lines do.
func TestDecodeMessageTypeFromBody(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, typ := range []Type{Identify, Track, Page, Screen, Group, Alias} {
		t.Run(string(typ), func(t *testing.T) {
			body := `{"type":"` + strings.ToUpper(string(typ)) + `","userId":"u1","anonymousId":"a1","event":"E","groupId":"g","previousId":"p"}`
			m, err := DecodeMessage([]byte(body), "", now)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != typ {
				t.Fatalf("type = %q, want %q", m.Type, typ)
			}
		})
	}
}
