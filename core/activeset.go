package core

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// Active memberships in memory: for each segment the live updater has
// met, the people whose membership record (s/<segment>/<root>) is active,
// so that the update reads a record only when it changes one. Reading
// every record it depends on (each person's, and each former root's among
// their profiles) was most of what the update did at a million profiles,
// though most people's memberships do not change (docs/benchmarks.md,
// session 16).
//
// A segment's set is loaded once, by the updater when it starts and when
// segments are applied (warmActive), or else by the update that first
// needs it, from a snapshot (a scan of s/<segment>/); the store reports
// every change to s/ (store.Options.Watch), in commit order and before it
// is visible. Changes reported from before the snapshot began until the
// set is loaded are kept, and applied on top of the scan if they are
// newer than its snapshot; older ones are in the scan. So a loaded set is
// never older than what a reader can see. It costs a map entry (~40 bytes) per active membership of each
// segment the updater evaluates.

// activeSets are the sets, by segment. Safe for concurrent use.
type activeSets struct {
	mu   sync.Mutex
	sets map[string]*activeSet
}

type activeSet struct {
	ready   bool
	at      uint64         // the snapshot the load scanned
	pending []activeChange // reported while not ready
	active  map[uuid.UUID]struct{}
}

type activeChange struct {
	ts     uint64
	root   uuid.UUID
	active bool
}

// maxPending bounds the changes kept for a set that is not loaded yet.
const maxPending = 1 << 16

// errSetDropped: a set was not prepared, or was dropped before its load
// (more than maxPending changes while it waited).
var errSetDropped = errors.New("not prepared, or dropped")

func newActiveSets() *activeSets { return &activeSets{sets: map[string]*activeSet{}} }

// committed applies a commit's changes to s/ (store.Options.OnCommit).
func (a *activeSets) committed(ts uint64, changes []store.Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ch := range changes {
		seg, root, ok := membershipKeyParts(ch.Key)
		if !ok {
			continue
		}
		s := a.sets[seg]
		if s == nil {
			continue
		}
		c := activeChange{ts: ts, root: root, active: !ch.Deleted && recordActive(ch.Value)}
		if !s.ready {
			if len(s.pending) >= maxPending {
				delete(a.sets, seg) // prepared and never loaded: the next update starts again
				continue
			}
			s.pending = append(s.pending, c)
			continue
		}
		s.apply(c)
	}
}

func (s *activeSet) apply(c activeChange) {
	if c.active {
		s.active[c.root] = struct{}{}
	} else {
		delete(s.active, c.root)
	}
}

// recordActive says whether a membership record has not ended: its
// exited_at is left out until it does (omitempty). Checked on the bytes,
// not decoded: it runs for every record a sweep writes, under the store's
// commit lock.
func recordActive(v []byte) bool { return !bytes.Contains(v, []byte(`"exited_at":`)) }

// membershipKeyParts splits s/<segment>/<root>.
func membershipKeyParts(key []byte) (string, uuid.UUID, bool) {
	p := store.PrefixMembership
	if len(key) < len(p)+1+16+1 || !bytes.HasPrefix(key, []byte(p)) || key[len(key)-17] != '/' {
		return "", uuid.Nil, false
	}
	return string(key[len(p) : len(key)-17]), uuid.UUID(key[len(key)-16:]), true
}

// prepare registers the sets of segments that are not loaded, so that
// the changes reported from now on are kept for them: the caller then
// opens the snapshot load scans (a change reported before that is in it).
// The sets of other segments (deleted, or no longer local) are dropped.
func (a *activeSets) prepare(segments []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for seg := range a.sets {
		if !slices.Contains(segments, seg) {
			delete(a.sets, seg)
		}
	}
	for _, seg := range segments {
		if a.sets[seg] == nil {
			a.sets[seg] = &activeSet{}
		}
	}
}

// load makes sure segment's set (prepared before tx began) is loaded,
// scanning it in tx if it is not. Only membership writers call it, one at
// a time (memberMu).
func (a *activeSets) load(tx *store.Txn, segment string) error {
	a.mu.Lock()
	s := a.sets[segment]
	ready := s != nil && s.ready
	a.mu.Unlock()
	if s == nil {
		return fmt.Errorf("active members of %s: %w", segment, errSetDropped)
	}
	if ready {
		return nil
	}
	active := map[uuid.UUID]struct{}{}
	prefix := store.MembershipPrefix(segment)
	err := tx.Scan(prefix, store.ScanOptions{Borrow: true}, func(k, v []byte) error {
		if len(k) == len(prefix)+16 && recordActive(v) {
			active[uuid.UUID(k[len(prefix):])] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load active members of %s: %w", segment, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s.active, s.at = active, tx.ReadTS()
	for _, c := range s.pending {
		if c.ts > s.at {
			s.apply(c)
		}
	}
	s.pending, s.ready = nil, true
	return nil
}

// isActive looks up whether each (segment, root) has an active record;
// ok is false if a segment's set is not loaded.
func (a *activeSets) isActive(segment string, roots []uuid.UUID, out []bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sets[segment]
	if s == nil || !s.ready {
		return false
	}
	for i, r := range roots {
		_, out[i] = s.active[r]
	}
	return true
}
