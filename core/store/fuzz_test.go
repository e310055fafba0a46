package store

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

// FuzzParseEventKey: any key either parses to parts that build the same
// key back, or is refused.
func FuzzParseEventKey(f *testing.F) {
	f.Add(EventKey(uuid.MustParse("01900000-0000-7000-8000-000000000001"), 1_700_000_000_000_000_000, [16]byte{1, 2, 3}))
	f.Add(EventKey(uuid.Nil, -1, [16]byte{}))
	f.Add([]byte(PrefixEvent))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, k []byte) {
		pid, ts, mid, err := ParseEventKey(k)
		if err != nil {
			return
		}
		// ParseEventKey checks the prefix and the length, not the two
		// '/' separators: everything else must come back byte for byte.
		b := EventKey(pid, ts, mid)
		if len(b) != len(k) {
			t.Fatalf("parse+build changed the length: %x -> %x", k, b)
		}
		k2 := bytes.Clone(k)
		for _, sep := range []int{len(PrefixEvent) + 16, len(PrefixEvent) + 16 + 1 + 8} {
			k2[sep] = '/'
		}
		if !bytes.Equal(b, k2) {
			t.Fatalf("parse+build changed the key: %x -> %x", k, b)
		}
	})
}
