package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var fuzzNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

var batchSeeds = []string{
	`{"batch":[{"type":"track","userId":"u1","event":"E","properties":{"a":1},"timestamp":"2024-05-01T10:00:00Z"}],"sentAt":"2024-05-01T10:00:01Z"}`,
	`{"batch":[{"type":"identify","anonymousId":"a","traits":{"email":"x@y.test"}},{"type":"alias","previousId":"a","userId":"u"}],"context":{"ip":"1.2.3.4"},"integrations":{"All":false}}`,
	`{"batch":[{"type":"group","userId":"u","groupId":"g","context":{"ip":"5"}},{"type":"page","userId":"u","name":"n","category":"c"},{"type":"screen","anonymousId":"a"}],"context":{"ip":"1","library":{"name":"x"}}}`,
	`{"batch":[{"type":"track","userId":12,"event":"E"}]}`,
	`{"batch":[]}`,
	`{"batch":[{"type":"track"}]}`,
	`{"batch":[null,1,"x",[]]}`,
	`{"batch":[{"type":"identify","userId":" u ","timestamp":"2024-05-01T10:00:00+0200","sentAt":"2024-05-01T10:00:00.5+02:00"}]}`,
	`{"batch":[{"type":"identify","userId":"u","context":{"a\u0062":1}}],"context":{"ab":2,"c":{}}}`,
	`[]`,
	`{"batch":[{"type":"track","userId":"u","event":"E",}]}`,
}

var messageSeeds = []struct {
	body string
	typ  string
}{
	{`{"userId":"u1","traits":{"email":"a@x.test"}}`, "identify"},
	{`{"anonymousId":"a","event":"Signed Up","timestamp":"2024-05-01T10:00:00Z","sentAt":"2024-05-01T10:00:02Z"}`, "track"},
	{`{"userId":"u","name":"Home","properties":{"path":"/"}}`, "page"},
	{`{"userId":"u","name":"Feed"}`, "Screen"},
	{`{"userId":"u","groupId":"g","traits":null}`, "group"},
	{`{"previousId":"a","userId":"u","type":"track"}`, "alias"},
	{`{"userId":["u"]}`, "identify"},
	{`{"userId":"u"}`, "bogus"},
}

// checkDecoded asserts the invariants every successfully decoded Message
// must satisfy, and that it round-trips through the stored form.
func checkDecoded(t *testing.T, m Message, now time.Time) {
	t.Helper()
	if !m.Type.Valid() {
		t.Fatalf("invalid type %q", m.Type)
	}
	if m.MessageID == "" || len(m.MessageID) > MaxIDBytes {
		t.Fatalf("bad messageId length %d", len(m.MessageID))
	}
	for name, id := range map[string]string{"messageId": m.MessageID, "userId": m.UserID, "anonymousId": m.AnonymousID, "previousId": m.PreviousID, "groupId": m.GroupID} {
		if strings.TrimSpace(id) != id {
			t.Fatalf("%s not trimmed", name)
		}
		if len(id) > MaxIDBytes {
			t.Fatalf("%s too long", name)
		}
	}
	switch m.Type {
	case Alias:
		if m.PreviousID == "" || m.UserID == "" {
			t.Fatalf("alias without previousId/userId")
		}
	default:
		if m.UserID == "" && m.AnonymousID == "" {
			t.Fatalf("%s without identity", m.Type)
		}
	}
	if m.Type == Track && strings.TrimSpace(m.Event) == "" {
		t.Fatalf("track without event")
	}
	if m.Type == Group && m.GroupID == "" {
		t.Fatalf("group without groupId")
	}
	for name, raw := range map[string]json.RawMessage{"traits": m.Traits, "properties": m.Properties, "context": m.Context, "integrations": m.Integrations} {
		if raw == nil {
			continue
		}
		if jsonKind(raw) != "object" || !json.Valid(raw) {
			t.Fatalf("%s is not a valid JSON object", name)
		}
	}
	if !m.ReceivedAt.Equal(now) || m.Timestamp.IsZero() {
		t.Fatalf("receivedAt %v timestamp %v", m.ReceivedAt, m.Timestamp)
	}
	for _, tm := range []time.Time{m.Timestamp, m.OriginalTimestamp, m.SentAt, m.ReceivedAt} {
		if tm.Location() != time.UTC {
			t.Fatalf("time not UTC")
		}
	}
	if _, err := json.Marshal(m); err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	_ = m.TraitString("email")
	b, err := m.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := DecodeStored(b)
	if err != nil {
		t.Fatalf("DecodeStored: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", got, m)
	}
}

func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error is %T, not *FieldError: %v", err, err)
	}
	switch fe.Err {
	case ErrMalformedJSON, ErrInvalidUTF8, ErrMessageTooLarge, ErrBatchTooLarge,
		ErrUnknownType, ErrMissingIdentity, ErrInvalidField, ErrEmptyBatch:
	default:
		t.Fatalf("unexpected sentinel %v", fe.Err)
	}
	if fe.Error() == "" {
		t.Fatalf("empty error text")
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := DecodeBatch(data, fuzzNow)
		if err != nil {
			checkFuzzError(t, err)
			if msgs != nil {
				t.Fatalf("messages returned with error")
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatalf("success with empty batch")
		}
		for _, m := range msgs {
			checkDecoded(t, m, fuzzNow)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s.body), s.typ)
	}
	f.Fuzz(func(t *testing.T, data []byte, typ string) {
		m, err := DecodeMessage(data, Type(typ), fuzzNow)
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		if want, _ := parseType(typ); m.Type != want {
			t.Fatalf("type %q, URL said %q", m.Type, typ)
		}
		checkDecoded(t, m, fuzzNow)
	})
}

// FuzzDecodeStored: arbitrary bytes must never panic DecodeStored, and
// whatever it accepts must re-encode to the same bytes.
func FuzzDecodeStored(f *testing.F) {
	for _, s := range batchSeeds[:3] {
		msgs, err := DecodeBatch([]byte(s), fuzzNow)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range msgs {
			b, _ := m.Encode()
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeStored(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		b2, _ := m.Encode()
		m2, err := DecodeStored(b2)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}
