package audit

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRecord: any stored value either decodes to a record whose
// canonical encoding is exactly that value, or is refused with
// ErrInvalidEntry; verification of a damaged log never panics.
func FuzzDecodeRecord(f *testing.F) {
	var prev [hashSize]byte
	r := newRecord(7, 1_700_000_000_000_000_000, "privacy.delete", "key-01", []byte(`{"request":"r1","records":{"e/":3}}`), prev)
	f.Add(r.value)
	f.Add(r.value[:len(r.value)-1])
	f.Add(newRecord(1, 0, "a", "", nil, r.hash).value)
	f.Add([]byte(hashTag))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := decodeRecord(v)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("error does not match ErrInvalidEntry: %v", err)
			}
			return
		}
		again := newRecord(got.seq, got.nanos, got.kind, got.actor, got.data, got.prev)
		if again.hash == got.hash {
			if !bytes.Equal(again.value, v) || !got.hashOK() {
				t.Fatalf("a record with a matching hash does not re-encode to its bytes")
			}
		} else if got.hashOK() {
			t.Fatalf("hashOK accepts a value whose hash is not its canonical hash")
		}
		_ = got.entry()
	})
}
