package core

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/identity"
)

// TestMemberPIDs: the segment scan's decoder gives the ids decodeMembers
// gives, and refuses what it refuses.
func TestMemberPIDs(t *testing.T) {
	member := func(b byte, typ identity.Type) clusterMember {
		m := clusterMember{token: make([]byte, 32), typ: typ}
		m.pid[0] = b
		return m
	}
	one := encodeMembers([]clusterMember{member(1, identity.UserID)})
	three := encodeMembers([]clusterMember{member(1, identity.UserID), member(2, identity.Email), member(3, identity.AnonymousID)})
	for _, tc := range []struct {
		name string
		rec  []byte
		bad  bool
	}{
		{"empty", nil, false},
		{"one", one, false},
		{"three", three, false},
		{"short", three[:40], true},
		{"type cut", three[:len(three)-2], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := memberPIDs(tc.rec, nil)
			// Into a buffer of one: used when it has room, else not
			// written past.
			var buf [2]uuid.UUID
			inBuf, berr := memberPIDs(tc.rec, buf[:0:1])
			ms, werr := decodeMembers(tc.rec)
			if (berr != nil) != tc.bad || !slices.Equal(inBuf, got) || buf[1] != (uuid.UUID{}) {
				t.Fatalf("into a buffer: %v %v (buffer %v)", inBuf, berr, buf)
			}
			if len(got) == 1 && &inBuf[0] != &buf[0] {
				t.Fatal("one member was not decoded into the buffer")
			}
			if (err != nil) != tc.bad || (werr != nil) != tc.bad {
				t.Fatalf("errors %v / %v, want failure %v", err, werr, tc.bad)
			}
			var want []uuid.UUID
			for _, m := range ms {
				want = append(want, m.pid)
			}
			if len(got) != len(want) || !slices.Equal(got, want) {
				t.Fatalf("pids %v, want %v", got, want)
			}
		})
	}
}
