package segments

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
)

// Split is one group of a segment's holdout or A/B split: its members are
// the people the keyed hash assigns to it, Weight in a hundred.
//
//	"splits": {"treatment": 90, "holdout": 10}
type Split struct {
	// Name matches [a-z0-9_-]{1,32}.
	Name string
	// Weight is a whole number in [1, 99]; the weights of a definition
	// sum to 100.
	Weight int
}

// Limits of splits.
const (
	// MinSplits and MaxSplits bound the number of groups.
	MinSplits = 2
	MaxSplits = 8
	// SplitTotal is what the weights sum to.
	SplitTotal = 100
	// MinSplitKey is the shortest key NewSplitter accepts (bytes).
	MinSplitKey = 16
)

// BaselineGroup returns the group the others are compared against: the
// one named "holdout", else "control", else the first by name.
func BaselineGroup(splits []Split) string {
	for _, want := range []string{"holdout", "control"} {
		for _, s := range splits {
			if s.Name == want {
				return want
			}
		}
	}
	first := ""
	for _, s := range splits {
		if first == "" || s.Name < first {
			first = s.Name
		}
	}
	return first
}

// splits parses the "splits" object: group name -> whole weight, 2 to 8
// groups, weights summing to 100. The result is sorted by name (the
// canonical order, also the order of the assignment's bands).
func (p *parser) splits(v any) []Split {
	const path = "splits"
	m, ok := p.object(v, path, `an object of group name -> weight, e.g. {"treatment": 90, "holdout": 10}`)
	if !ok {
		return nil
	}
	keys := sortedKeys(m)
	switch {
	case len(keys) < MinSplits:
		p.fail(path, ErrInvalidValue, "at least "+strconv.Itoa(MinSplits)+" groups, e.g. {\"treatment\": 90, \"holdout\": 10}")
		return nil
	case len(keys) > MaxSplits:
		p.fail(path, ErrInvalidValue, strconv.Itoa(len(keys))+" groups; at most "+strconv.Itoa(MaxSplits))
		return nil
	}
	out := make([]Split, 0, len(keys))
	sum, bad := 0, false
	for _, k := range keys {
		kp := pathKey(path, k)
		if !validSplitName(k) {
			p.fail(kp, ErrInvalidValue, "invalid group name "+quote(k)+" (want 1 to 32 of a-z, 0-9, _ and -)")
			bad = true
			continue
		}
		f, ok := m[k].(float64)
		if !ok {
			p.fail(kp, ErrType, "expected a whole number (the group's share of 100)")
			bad = true
			continue
		}
		if f != math.Trunc(f) || f < 1 || f >= SplitTotal {
			p.fail(kp, ErrInvalidValue, "weight "+strconv.FormatFloat(f, 'g', 6, 64)+": want a whole number from 1 to 99")
			bad = true
			continue
		}
		sum += int(f)
		out = append(out, Split{Name: k, Weight: int(f)})
	}
	if bad {
		return nil
	}
	if sum != SplitTotal {
		p.fail(path, ErrInvalidValue, "weights sum to "+strconv.Itoa(sum)+"; they must sum to 100")
		return nil
	}
	return out
}

// validSplitName reports whether s is a group name: [a-z0-9_-]{1,32}.
func validSplitName(s string) bool { return len(s) <= 32 && validName(s) }

// writeSplits writes the canonical "splits" object (as stored: Parse
// sorts by name).
func (w *jsonWriter) splits(ss []Split) {
	w.open('{')
	for _, s := range ss {
		w.key(s.Name)
		w.b = strconv.AppendInt(w.b, int64(s.Weight), 10)
	}
	w.close('}')
}

// Splitter assigns people to the groups of one segment's splits. The
// assignment is a keyed hash: HMAC-SHA256 under the caller's secret key of
// the segment name and the person's stable id; its first 8 bytes, as a
// number modulo 100, fall into one group's band of the cumulative weights
// (in name order). So it is deterministic per person and segment, the same
// after a restart and whatever the person's membership does, independent
// between segments, and unpredictable without the key: nobody can choose
// or compute a person's group from their id. Changing the weights moves
// only the people of the bands that change. Not safe for concurrent use
// (make one per goroutine).
type Splitter struct {
	mac    hash.Hash
	prefix []byte
	names  []string
	bounds []uint64 // cumulative weights
	sum    []byte
}

// ErrSplitKey: the key given to NewSplitter is too short.
var ErrSplitKey = errors.New("segments: split key too short")

// NewSplitter returns the assigner of segment's splits under key (at
// least MinSplitKey bytes, secret). The splits must be valid (as Parse
// returns them).
func NewSplitter(key []byte, segment string, splits []Split) (*Splitter, error) {
	if len(key) < MinSplitKey {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrSplitKey, len(key), MinSplitKey)
	}
	total := 0
	s := &Splitter{mac: hmac.New(sha256.New, key)}
	for _, sp := range splits {
		if sp.Weight < 1 {
			return nil, fmt.Errorf("%w: split %q has weight %d", ErrBadArgument, sp.Name, sp.Weight)
		}
		total += sp.Weight
		s.names = append(s.names, sp.Name)
		s.bounds = append(s.bounds, uint64(total))
	}
	if total != SplitTotal || len(splits) < MinSplits {
		return nil, fmt.Errorf("%w: splits of %s do not sum to 100", ErrBadArgument, segment)
	}
	// Domain separation: the segment name, then a zero byte (names hold
	// no zero byte), then the person.
	s.prefix = append([]byte("custody/segment-split/v1\x00"+segment), 0)
	return s, nil
}

// Groups returns the group names in band order.
func (s *Splitter) Groups() []string { return append([]string(nil), s.names...) }

// Group returns the group of the person whose stable id is person (core
// passes the root profile id's 16 bytes).
func (s *Splitter) Group(person []byte) string {
	s.mac.Reset()
	s.mac.Write(s.prefix)
	s.mac.Write(person)
	s.sum = s.mac.Sum(s.sum[:0])
	b := binary.BigEndian.Uint64(s.sum[:8]) % SplitTotal
	for i, hi := range s.bounds {
		if b < hi {
			return s.names[i]
		}
	}
	return s.names[len(s.names)-1] // unreachable: the last bound is 100
}
