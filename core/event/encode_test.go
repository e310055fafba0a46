package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func roundTrip(t testing.TB, m Message) {
	t.Helper()
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
	// AppendBinary onto a non-empty buffer must produce the same bytes.
	b2, err := m.AppendBinary([]byte("prefix"))
	if err != nil || string(b2[len("prefix"):]) != string(b) {
		t.Fatalf("AppendBinary differs from Encode")
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	body := `{"batch":[
	  {"type":"identify","userId":"u1","traits":{"email":"a@x.test","n":[1,2,{"k":null}]},"timestamp":"2024-05-01T10:00:00.123456789+02:00"},
	  {"type":"track","anonymousId":"a1","event":"Order Completed","properties":{"total":10},"sentAt":"2024-05-01T10:00:03Z","timestamp":"2024-05-01T10:00:01Z"},
	  {"type":"page","userId":"u1","name":"Home","category":"Landing","context":{"page":{"path":"/"}}},
	  {"type":"screen","userId":"ü","name":"Ünïcödé 🎉"},
	  {"type":"group","userId":"u1","groupId":"g1","traits":{}},
	  {"type":"alias","previousId":"a1","userId":"u1","messageId":"m-1"}
	],"context":{"library":{"name":"analytics-node"}},"sentAt":"2024-05-01T10:00:04Z"}`
	msgs, err := DecodeBatch([]byte(body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		t.Run(string(m.Type), func(t *testing.T) { roundTrip(t, m) })
	}
	t.Run("single message, minimal", func(t *testing.T) {
		m, err := DecodeMessage([]byte(`{"anonymousId":"a"}`), Page, testNow)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, m)
	})
	t.Run("hand-built message with extreme times", func(t *testing.T) {
		roundTrip(t, Message{
			Type:              "custom",
			Timestamp:         time.Date(-500, 1, 1, 0, 0, 0, 1, time.UTC),
			OriginalTimestamp: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			ReceivedAt:        time.Unix(0, 0).UTC(),
			Properties:        json.RawMessage(`{"a":"` + string(make([]byte, 300)) + `"}`),
		})
	})
	t.Run("zero message", func(t *testing.T) { roundTrip(t, Message{}) })
	t.Run("non-UTC times decode as the same instant in UTC", func(t *testing.T) {
		loc := time.FixedZone("X", 3600)
		m := Message{Type: Track, Timestamp: time.Date(2024, 1, 1, 1, 0, 0, 0, loc)}
		b, _ := m.Encode()
		got, err := DecodeStored(b)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Timestamp.Equal(m.Timestamp) || got.Timestamp.Location() != time.UTC {
			t.Errorf("got %v", got.Timestamp)
		}
	})
	t.Run("decoded record does not alias input", func(t *testing.T) {
		m := msgs[0]
		b, _ := m.Encode()
		got, err := DecodeStored(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 0
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("decoded message changed when input was overwritten")
		}
		// Appending to one raw field must not clobber the next.
		got.Traits = append(got.Traits, 'X')
		if !reflect.DeepEqual(got.Properties, m.Properties) || !reflect.DeepEqual(got.Context, m.Context) {
			t.Errorf("raw fields share capacity")
		}
	})
}

func TestDecodeStoredCorrupt(t *testing.T) {
	m, err := DecodeMessage([]byte(`{"userId":"u","event":"E","traits":{"a":1},"timestamp":"2024-05-01T10:00:00Z","sentAt":"2024-05-01T10:00:01Z"}`), Track, testNow)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := m.Encode()
	tests := map[string][]byte{
		"empty":          nil,
		"bad version":    append([]byte{9}, good[1:]...),
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"bad time mask":  withMask(append([]byte(nil), good...), 0xf0),
	}
	for i := 0; i < len(good); i++ {
		tests["truncated at "+strconv.Itoa(i)] = good[:i]
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeStored(b)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("want ErrCorruptRecord FieldError, got %v", err)
			}
		})
	}
}

// withMask rewrites the time-mask byte of an encoded record.
func withMask(b []byte, mask byte) []byte {
	p := 1
	for range 13 {
		l, n := uvarint(b[p:])
		p += n + int(l)
	}
	b[p] = mask
	return b
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}
