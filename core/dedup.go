package core

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/custody-cdp/custody/core/store"
)

// De-duplication of messageIds.
//
// A message is a duplicate when its messageId was committed within the
// dedup window (ingest.dedup_window), counted from its commit. The committer answers that from
// memory, exactly: seen holds the first 8 bytes of the keyed hash of every
// messageId committed within the window (a false duplicate needs a 64-bit
// collision among the ids of one window: ~n/2^64 per message). What makes
// it durable is one record per committed group, u/g/<at><rand>, listing the
// group's hashes (16 bytes each) with the window as its TTL, written in
// the group's own transaction: a messageId is remembered exactly when its
// event is stored. At Open the records still alive rebuild the set.
//
// One record per group instead of one marker per message: a marker was one
// of the ~5 store entries each event cost, and every entry costs ~2.5 µs
// of the server's CPU in Badger's write path (docs/benchmarks.md).
//
// Stores written before kept one marker per message (u/<hmac:32>, empty,
// with the window as TTL); they are read at Open the same way until they
// expire.

// seenGenerations is how many parts the window is cut into: a hash is
// forgotten between one window and 1+1/seenGenerations windows after it
// was committed, dropped with the part it was added in.
const seenGenerations = 4

// seenSet is the committer's exact set of recent messageIds. Only the
// committer goroutine touches it (and Open, before the committer starts).
type seenSet struct {
	window, span time.Duration
	gens         map[int64]*hashSet // by floor(at / span)
	n            int
}

func newSeenSet(window time.Duration) *seenSet {
	span := window / seenGenerations
	if span <= 0 {
		span = time.Nanosecond
	}
	return &seenSet{window: window, span: span, gens: map[int64]*hashSet{}}
}

func (s *seenSet) has(h uint64) bool {
	for _, g := range s.gens {
		if g.has(h) {
			return true
		}
	}
	return false
}

// add remembers h as committed at at.
func (s *seenSet) add(h uint64, at time.Time) {
	gi := at.UnixNano() / int64(s.span)
	g := s.gens[gi]
	if g == nil {
		g = &hashSet{}
		s.gens[gi] = g
	}
	if g.add(h) {
		s.n++
	}
}

// expire drops the parts whose every hash is older than the window.
func (s *seenSet) expire(now time.Time) {
	for gi, g := range s.gens {
		if end := time.Unix(0, (gi+1)*int64(s.span)); !end.Add(s.window).After(now) {
			s.n -= g.n
			delete(s.gens, gi)
		}
	}
}

// hashSet is a set of uniformly distributed 64-bit hashes: open addressing
// with linear probing, 8 bytes a slot, at most 3/4 full, so 11 to 21 bytes
// an entry where a Go map[uint64]struct{} takes 30 to 36 (measured). A
// week's window of a busy shop holds tens of millions.
type hashSet struct {
	slots []uint64 // 0 is an empty slot; the hash 0 is stored as 1
	n     int
}

func (s *hashSet) has(h uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	_, found := s.probe(h)
	return found
}

// add inserts h and says whether it was new.
func (s *hashSet) add(h uint64) bool {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	i, found := s.probe(h)
	if !found {
		s.slots[i] = max(h, 1)
		s.n++
	}
	return !found
}

// probe finds h's slot, or the empty slot where it would go (the table is
// never full, so the walk ends).
func (s *hashSet) probe(h uint64) (uint64, bool) {
	h = max(h, 1)
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return i, true
		case 0:
			return i, false
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(1024, 2*len(old)))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// seenHash is the set's hash of a messageId: the first 8 bytes of its
// keyed hash (prepared.mid).
func seenHash(mid [16]byte) uint64 { return binary.BigEndian.Uint64(mid[:8]) }

// writeDedup writes the group's record: the hashes of the messages it
// accepted, in its own transaction.
func (c *CDP) writeDedup(tx *store.Txn, st *groupState, now time.Time) error {
	if len(st.seen) == 0 {
		return nil
	}
	// The nonce keeps two records of the same nanosecond apart (a clock
	// that stands still in tests, or one set back).
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("dedup record key: %w", err)
	}
	key := store.DedupGroupKey(now.UnixNano(), nonce)
	val := make([]byte, 0, 16*len(st.seen))
	for _, mid := range st.seen {
		val = append(val, mid[:]...)
	}
	return tx.SetWithTTL(key, val, c.cfg.Ingest.DedupWindow.D())
}

// loadSeen rebuilds the set from the records still alive (Open).
func (c *CDP) loadSeen(ctx context.Context) error {
	now := c.now()
	s := newSeenSet(c.cfg.Ingest.DedupWindow.D())
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixDedup), store.ScanOptions{}, func(k, v []byte) error {
			atNanos, hash, group, marker := store.ParseDedupKey(k)
			switch {
			case group:
				at := time.Unix(0, atNanos)
				if len(v)%16 != 0 {
					return fmt.Errorf("dedup record of %d bytes: %w", len(v), ErrCorrupt)
				}
				for i := 0; i+16 <= len(v); i += 16 {
					s.add(binary.BigEndian.Uint64(v[i:i+8]), at)
				}
			case marker:
				// A per-message marker of an older store: its time is
				// not known, so it counts as committed now.
				s.add(hash, now)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load dedup records: %w", err)
	}
	// Badger hides records past their TTL; the window may also have been
	// shortened since they were written.
	s.expire(now)
	c.seen = s
	return nil
}
