package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// Membership history and segment flow.
//
// A person's s/<segment>/<root> record holds their current (or last)
// membership interval and up to maxEarlier earlier ones, so that "was a
// member during a period" is exact for everyone who did not churn in and
// out more often than that (the report's definition, performance.go). It is
// personal and is erased with the rest of the s/ records.
//
// What a report says about days and movements between segments comes from
// sf/<segment>/<day> instead: per UTC day, how many people entered the
// segment, how many left it, and how many of those who entered came from
// each other segment. These are counts with no profile id, written by the
// membership writers (RefreshSegment, UpdateMemberships) in the same
// transaction as the s/ records they count, and kept after an erasure: they
// say nothing about anyone.
//
// A move from A into B is counted, on the day of the entry into B, when the
// person entering B had entered A earlier (strictly before) and was still a
// member of A, or had left A at most moveWindow before. So an at-risk buyer
// who orders again and enters repeat_buyers counts as at_risk -> repeat
// buyers whether the same update also takes them out of at_risk or not, and
// an at-risk person who also enters lapsed (a subset) counts as at_risk ->
// lapsed. People entering two segments at the same instant are not a move.
// A merge that only moves a membership to the person's new root profile is
// neither an entry nor an exit (the live updater sees it; a full refresh
// recognises the exit of a former root whose new root is a member).

// maxEarlier bounds the earlier intervals kept in a membership record.
const maxEarlier = 8

// moveWindow is how long after leaving A an entry into B still counts as
// a move from A.
const moveWindow = 24 * time.Hour

// reentered returns the record of a person entering a segment at now,
// keeping their last interval (if it had ended) among the earlier ones.
func reentered(old membershipRecord, found bool, now time.Time) membershipRecord {
	rec := membershipRecord{EnteredAt: now}
	if found && old.ExitedAt != nil {
		rec.Earlier = append(rec.Earlier, old.Earlier...)
		rec.Earlier = append(rec.Earlier, [2]int64{old.EnteredAt.UnixNano(), old.ExitedAt.UnixNano()})
		if n := len(rec.Earlier); n > maxEarlier {
			rec.Earlier = rec.Earlier[n-maxEarlier:]
		}
	}
	return rec
}

// overlaps reports whether one of the record's intervals [entered,
// exited) meets [since, until): entered before until, and still a member
// after since.
func (m membershipRecord) overlaps(since, until time.Time) bool {
	if m.EnteredAt.Before(until) && (m.ExitedAt == nil || m.ExitedAt.After(since)) {
		return true
	}
	s, u := since.UnixNano(), until.UnixNano()
	for _, iv := range m.Earlier {
		if iv[0] < u && iv[1] > s {
			return true
		}
	}
	return false
}

// flowDay is the value of sf/<segment>/<day>.
type flowDay struct {
	Entered int            `json:"entered"`
	Exited  int            `json:"exited"`
	From    map[string]int `json:"from,omitempty"`
}

// unixDay is t's UTC day number.
func unixDay(t time.Time) int64 { return t.Unix() / 86400 }

// flowChange is what one membership change adds to the flow.
type flowChange struct {
	count   bool // false: not counted (a merge moving the record)
	entered bool // else exited
	from    []string
}

// flowDelta accumulates changes per segment and day.
type flowDelta map[string]map[int64]*flowDay

func (d flowDelta) add(segment string, at time.Time, f flowChange) {
	if !f.count {
		return
	}
	days := d[segment]
	if days == nil {
		days = map[int64]*flowDay{}
		d[segment] = days
	}
	day := days[unixDay(at)]
	if day == nil {
		day = &flowDay{}
		days[unixDay(at)] = day
	}
	if !f.entered {
		day.Exited++
		return
	}
	day.Entered++
	for _, a := range f.from {
		if day.From == nil {
			day.From = map[string]int{}
		}
		day.From[a]++
	}
}

// write adds the delta to the stored days, in tx.
func (d flowDelta) write(tx *store.Txn) error {
	for seg, days := range d {
		for day, add := range days {
			key := store.FlowKey(seg, day)
			cur, err := getFlow(tx, key)
			if err != nil {
				return err
			}
			cur.Entered += add.Entered
			cur.Exited += add.Exited
			for a, n := range add.From {
				if cur.From == nil {
					cur.From = map[string]int{}
				}
				cur.From[a] += n
			}
			b, _ := json.Marshal(cur)
			if err := tx.Set(key, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func getFlow(tx *store.Txn, key []byte) (flowDay, error) {
	var f flowDay
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(v, &f); err != nil {
		return f, fmt.Errorf("segment flow record: %w", err)
	}
	return f, nil
}

// movedFrom lists the segments of others that the person of root entering
// a segment at t moves from (see the comment at the top of this file), as
// their records stand in tx.
func movedFrom(tx *store.Txn, others []string, root uuid.UUID, t time.Time) ([]string, error) {
	var out []string
	for _, a := range others {
		rec, found, err := getMembership(tx, store.MembershipKey(a, root))
		if err != nil {
			return nil, err
		}
		if found && rec.EnteredAt.Before(t) && (rec.ExitedAt == nil || !rec.ExitedAt.Before(t.Add(-moveWindow))) {
			out = append(out, a)
		}
	}
	return out, nil
}

// otherNames returns the names of every applied segment but name.
func otherNames(tx *store.Txn, name string) ([]string, error) {
	var out []string
	err := tx.Scan([]byte(store.PrefixSegmentDef), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
		if n := string(k[len(store.PrefixSegmentDef):]); n != name {
			out = append(out, n)
		}
		return nil
	})
	return out, err
}
