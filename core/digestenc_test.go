package core

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestDigestEncoding checks that every event form reads back as appended,
// alone and after other events, and that a truncated digest stops without
// reading past its end.
func TestDigestEncoding(t *testing.T) {
	cases := []struct {
		name string
		ev   orderEvent
	}{
		{"a view", orderEvent{at: 1_700_000_000_123_456_789}},
		{"before 1970", orderEvent{at: -86_400_000_000_000}},
		{"an order with a coupon", orderEvent{at: 5, rev: 129.95, disc: true, x: &eventExtra{id: "A-1001"}}},
		{"a negative revenue", orderEvent{at: 6, rev: -3.5}},
		{"a refund", orderEvent{at: 7, x: &eventExtra{id: "A-1001"}}},
		{"an order with categories", orderEvent{at: 8, rev: 30, x: &eventExtra{id: "7", cats: []catAmount{{"shoes", 20, 1}, {"", 10, 2.5}}}}},
		{"a touch", orderEvent{at: 9, x: &eventExtra{touch: &touch{source: "news", medium: "email", campaign: "", referrer: "example.org"}}}},
		{"everything", orderEvent{at: math.MaxInt64, rev: math.SmallestNonzeroFloat64, disc: true,
			x: &eventExtra{id: "é✓", cats: []catAmount{{"bags", 1, 1}}, touch: &touch{source: "s", medium: "m", campaign: "c", referrer: "r"}}}},
	}
	read := func(d digest) (out []orderEvent, names []uint32) {
		it := d.iter()
		for it.next() {
			e := orderEvent{at: it.at, rev: it.rev, disc: it.disc}
			if x := it.extra(); x != nil {
				c := *x
				if x.touch != nil {
					tc := *x.touch
					c.touch = &tc
				}
				e.x = &c
			}
			out = append(out, e)
			names = append(names, it.name)
		}
		if it.bad {
			t.Fatalf("a well-formed digest read as malformed")
		}
		return out, names
	}
	var all digest
	var want []orderEvent
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := appendDigest(nil, uint32(i*300), &tc.ev)
			got, names := read(d)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.ev) || names[0] != uint32(i*300) {
				t.Fatalf("read back %+v (name %v), want %+v", got, names, tc.ev)
			}
			for cut := range len(d) - 1 {
				it := d[:cut+1].iter()
				for it.next() {
				}
				if !it.bad {
					t.Fatalf("cut to %d of %d bytes: not noticed", cut+1, len(d))
				}
			}
		})
		all = appendDigest(all, uint32(i), &cases[i].ev)
		want = append(want, tc.ev)
	}
	t.Run("all in one digest", func(t *testing.T) {
		got, names := read(all)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
		}
		for i, n := range names {
			if n != uint32(i) {
				t.Fatalf("name %d read as %d", i, n)
			}
		}
	})
	t.Run("the reserve bounds every encoding", func(t *testing.T) {
		for _, tc := range cases {
			if n := len(appendDigest(nil, 1<<31, &tc.ev)); n > maxDigestLen(&tc.ev) {
				t.Errorf("%s: %d bytes, bound %d", tc.name, n, maxDigestLen(&tc.ev))
			}
		}
	})
	t.Run("little room is left unused", func(t *testing.T) {
		// Doubling left up to half of a digest unused; reserve leaves at
		// most an eighth, the size class's rounding (up to a fifth between
		// 3 and 4 KiB) and one event's bound.
		bound := 0
		for _, tc := range cases {
			bound = max(bound, maxDigestLen(&tc.ev))
		}
		var d digest
		for i := range 200 {
			d = appendDigest(d, 2, &cases[i%len(cases)].ev)
			if slack := cap(d) - len(d); len(d) > 256 && slack > len(d)*3/8+bound {
				t.Fatalf("after %d events: %d bytes, capacity %d", i+1, len(d), cap(d))
			}
		}
	})
	t.Run("a reader's slice is not changed by later appends", func(t *testing.T) {
		d := make(digest, 0, 1024)
		d = appendDigest(d, 1, &cases[2].ev)
		held := d
		before := string(held)
		for i := range 20 {
			d = appendDigest(d, 2, &cases[i%len(cases)].ev)
		}
		if string(held) != before {
			t.Fatal("an append rewrote bytes a reader holds")
		}
	})
}

// FuzzDigest: any bytes read as a digest end the walk without a panic.
func FuzzDigest(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	var d digest
	for i := range 8 {
		d = appendDigest(d, uint32(rng.IntN(500)), &orderEvent{at: rng.Int64(), rev: float64(i), x: &eventExtra{id: "x", cats: []catAmount{{"c", 1, 1}}}})
	}
	f.Add([]byte(d))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		it := digest(b).iter()
		for it.next() {
			_ = it.extra()
		}
	})
}

// TestDigestIterDoesNotAllocate: reading event times and order values (what
// Events and quickValues read of every person at every evaluation) costs
// no allocation. An iterator that points into itself escapes to the heap:
// that was more than half of what a segment evaluation allocated.
func TestDigestIterDoesNotAllocate(t *testing.T) {
	var d digest
	for i, e := range []orderEvent{
		{at: 1, rev: 20},
		{at: 2, disc: true, x: &eventExtra{id: "o-1", cats: []catAmount{{"bags", 10, 1}}}},
		{at: 3, x: &eventExtra{touch: &touch{source: "news", medium: "email", referrer: "example.org"}}},
	} {
		d = appendDigest(d, uint32(i), &e)
	}
	var sum float64
	allocs := testing.AllocsPerRun(100, func() {
		for it := d.iter(); it.next(); {
			sum += float64(it.at) + it.rev
		}
	})
	if allocs != 0 {
		t.Fatalf("iterating a digest allocated %v times per pass, want 0", allocs)
	}
	if sum == 0 {
		t.Fatal("nothing read")
	}
}
