package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/segments"
)

// membershipRecord is the value of s/<segment>/<root>. Earlier holds up
// to maxEarlier former intervals, [entered, exited] in unix nanoseconds
// (flow.go); its JSON key must not contain "exited_at" (scanActive).
type membershipRecord struct {
	EnteredAt time.Time  `json:"entered_at"`
	ExitedAt  *time.Time `json:"exited_at,omitempty"`
	Earlier   [][2]int64 `json:"earlier,omitempty"`
}

// RefreshReport is what a refresh changed. Counts only.
type RefreshReport struct {
	SegmentEval
	Entered int `json:"entered"`
	Exited  int `json:"exited"`
}

// RefreshSegment evaluates the segment through the gate and records who
// entered and who left since the last refresh (a person the gate now denies
// leaves too). Memberships are keyed by the person's root profile at the
// time; a merge that changes the root shows as an exit and an entry.
func (c *CDP) RefreshSegment(ctx context.Context, name string, now time.Time) (RefreshReport, error) {
	return c.refreshSegment(ctx, name, now, nil)
}

// refreshSegment is RefreshSegment. A caller refreshing several segments
// passes shared, so that they share a copy of the clusters from memory
// while no commit changes one (CDP.clusterList).
func (c *CDP) refreshSegment(ctx context.Context, name string, now time.Time, shared **clusterList) (RefreshReport, error) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	sub, err := c.segmentSet(ctx, name)
	if err != nil {
		return RefreshReport{}, err
	}
	if now.IsZero() {
		now = c.now()
	}
	now = now.UTC()
	var r *segments.SegmentResult
	current := map[uuid.UUID]membershipRecord{}
	var clusters *clusterList
	if shared != nil && (*shared).sameAs(c.clusters) != nil {
		clusters = *shared // the snapshot below is newer than the one it was checked in
	} else if clusters = c.clusterList(); shared != nil {
		*shared = clusters
	}
	err = c.store.View(ctx, func(tx *store.Txn) error {
		var err error
		if r, err = c.run(ctx, tx, sub, name, now, clusters.sameAs(c.clusters)); err != nil {
			return err
		}
		prefix := store.MembershipPrefix(name)
		return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) error {
			var m membershipRecord
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			current[uuid.UUID(k[len(prefix):])] = m
			return nil
		})
	})
	if err != nil {
		return RefreshReport{}, fmt.Errorf("refresh %s: %w", name, err)
	}
	rep := RefreshReport{SegmentEval: SegmentEval{Segment: name, Purpose: r.Purpose, At: now, Allowed: len(r.Members),
		NotConsented: r.NotConsented, Evaluated: r.Evaluated, BundleHash: c.engine.BundleHash()}}
	if rep.Groups, err = c.groupCounts(sub.Get(name).Definition(), r.Members); err != nil {
		return rep, err
	}
	type change struct {
		root uuid.UUID
		rec  membershipRecord
		flow flowChange
	}
	var changes []change
	in := map[uuid.UUID]bool{}
	for _, m := range r.Members {
		root, err := uuid.Parse(m.Ref())
		if err != nil {
			return rep, err
		}
		in[root] = true
		if old, ok := current[root]; !ok || old.ExitedAt != nil {
			changes = append(changes, change{root, reentered(old, ok, now), flowChange{count: true, entered: true}})
			rep.Entered++
		}
	}
	for root, old := range current {
		if old.ExitedAt == nil && !in[root] {
			t := now
			old.ExitedAt = &t
			changes = append(changes, change{root, old, flowChange{count: true}})
			rep.Exited++
		}
	}
	// The flow (flow.go): where those entering come from, and which exits
	// and entries are only a merge moving a membership to a new root.
	if len(changes) > 0 {
		err = c.store.View(ctx, func(tx *store.Txn) error {
			others, err := otherNames(tx, name)
			if err != nil {
				return err
			}
			movedTo := map[uuid.UUID]bool{}
			for i := range changes {
				ch := &changes[i]
				if ch.flow.entered {
					continue
				}
				if m, err := c.getMember(tx, ch.root); err == nil && m.root != ch.root && in[m.root] {
					ch.flow.count = false
					movedTo[m.root] = true
				}
			}
			for i := range changes {
				ch := &changes[i]
				if !ch.flow.entered {
					continue
				}
				if movedTo[ch.root] {
					ch.flow.count = false
					continue
				}
				if ch.flow.from, err = movedFrom(tx, others, ch.root, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("refresh %s: %w", name, err)
		}
	}
	if c.afterMemberRead != nil {
		c.afterMemberRead()
	}
	for start := 0; start < len(changes) || start == 0; start += 2000 {
		chunk := changes[start:min(start+2000, len(changes))]
		err := c.store.Update(ctx, func(tx *store.Txn) error {
			flow := flowDelta{}
			for _, ch := range chunk {
				b, _ := json.Marshal(ch.rec)
				if err := tx.Set(store.MembershipKey(name, ch.root), b); err != nil {
					return err
				}
				flow.add(name, now, ch.flow)
			}
			if err := flow.write(tx); err != nil {
				return err
			}
			if start == 0 {
				b, _ := json.Marshal(SizePoint{At: now, Members: rep.Allowed, NotConsented: rep.NotConsented})
				return tx.Set(store.SizeKey(name, now.UnixNano()), b)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("refresh %s: %w", name, err)
		}
		touched := make([]uuid.UUID, len(chunk))
		for i, ch := range chunk {
			touched[i] = ch.root
		}
		c.personal.touch(touched...)
		if len(changes) == 0 {
			break
		}
	}
	return rep, c.record(ctx, "segment.refresh", map[string]any{"segment": name, "purpose": rep.Purpose, "members": rep.Allowed,
		"entered": rep.Entered, "exited": rep.Exited, "not_consented": rep.NotConsented, "bundle_hash": rep.BundleHash})
}

// RefreshAll refreshes every applied segment (the sweep that keeps
// time-based conditions current; `custody serve` runs it periodically).
func (c *CDP) RefreshAll(ctx context.Context, now time.Time) ([]RefreshReport, error) {
	defs, err := c.Segments(ctx)
	if err != nil {
		return nil, err
	}
	var out []RefreshReport
	var clusters *clusterList
	for _, d := range defs {
		rep, err := c.refreshSegment(ctx, d.Name, now, &clusters)
		if errors.Is(err, ErrSegmentNotFound) {
			continue // deleted since the list was read
		}
		if err != nil {
			return out, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// SizePoint is a segment's size at one refresh.
type SizePoint struct {
	At           time.Time `json:"at"`
	Members      int       `json:"members"`
	NotConsented int       `json:"not_consented"`
}

// SegmentShow is a segment's report: counts, never who.
type SegmentShow struct {
	Name        string         `json:"name"`
	Purpose     string         `json:"purpose"`
	Description string         `json:"description,omitempty"`
	Members     int            `json:"members"`
	History     []SizePoint    `json:"size_history"`
	Overlap     map[string]int `json:"overlap"` // current members shared with each other segment
	// Groups counts the current members per group of the segment's splits
	// (absent without splits).
	Groups map[string]int `json:"groups,omitempty"`
}

// ShowSegment reports a segment from its stored memberships (run a refresh
// first for current figures).
func (c *CDP) ShowSegment(ctx context.Context, name string) (SegmentShow, error) {
	defs, err := c.Segments(ctx)
	if err != nil {
		return SegmentShow{}, err
	}
	out := SegmentShow{Name: name, History: []SizePoint{}, Overlap: map[string]int{}}
	var def *segments.Definition
	for _, d := range defs {
		if d.Name == name {
			def, out.Purpose, out.Description = d, d.Purpose, d.Description
		}
	}
	if def == nil {
		return out, fmt.Errorf("%s: %w", name, ErrSegmentNotFound)
	}
	split, err := c.splitter(def)
	if err != nil {
		return out, err
	}
	err = c.store.View(ctx, func(tx *store.Txn) error {
		members := func(seg string) (map[uuid.UUID]bool, error) {
			set := map[uuid.UUID]bool{}
			return set, scanActive(tx, seg, func(root uuid.UUID) { set[root] = true })
		}
		mine, err := members(name)
		if err != nil {
			return err
		}
		out.Members = len(mine)
		if split != nil {
			out.Groups = map[string]int{}
			for _, g := range split.Groups() {
				out.Groups[g] = 0
			}
			for p := range mine {
				out.Groups[split.Group(p[:])]++
			}
		}
		for _, d := range defs {
			if d.Name == name {
				continue
			}
			theirs, err := members(d.Name)
			if err != nil {
				return err
			}
			n := 0
			for p := range mine {
				if theirs[p] {
					n++
				}
			}
			out.Overlap[d.Name] = n
		}
		hp := []byte(string(store.PrefixSizes) + name + "/")
		return tx.Scan(hp, store.ScanOptions{}, func(k, v []byte) error {
			var p SizePoint
			if len(k) != len(hp)+8 {
				return nil // another segment whose name extends this one
			}
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			out.History = append(out.History, p)
			return nil
		})
	})
	sort.Slice(out.History, func(i, j int) bool { return out.History[i].At.Before(out.History[j].At) })
	return out, err
}

// scanActive calls fn with the root of every active membership of seg.
// An exited membership is told by its "exited_at" key alone (omitempty in
// membershipRecord): reading a segment decodes no record.
func scanActive(tx *store.Txn, seg string, fn func(root uuid.UUID)) error {
	prefix := store.MembershipPrefix(seg)
	return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) error {
		if !bytes.Contains(v, []byte(`"exited_at"`)) {
			fn(uuid.UUID(k[len(prefix):]))
		}
		return nil
	})
}

// MembershipView is one segment membership in an access report.
type MembershipView struct {
	Segment   string     `json:"segment"`
	EnteredAt time.Time  `json:"entered_at"`
	ExitedAt  *time.Time `json:"exited_at,omitempty"`
	// Earlier are the person's former memberships of the segment that
	// the record still holds (flow.go), oldest first.
	Earlier []MembershipInterval `json:"earlier,omitempty"`
}

// MembershipInterval is one former membership.
type MembershipInterval struct {
	EnteredAt time.Time `json:"entered_at"`
	ExitedAt  time.Time `json:"exited_at"`
}

// membershipsOf reads the memberships of a person's profiles.
func (c *CDP) membershipsOf(ctx context.Context, tx *store.Txn, members []uuid.UUID) ([]MembershipView, error) {
	defs, err := c.Segments(ctx)
	if err != nil {
		return nil, err
	}
	out := []MembershipView{}
	for _, d := range defs {
		for _, m := range members {
			v, err := tx.Get(store.MembershipKey(d.Name, m))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var r membershipRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return nil, err
			}
			mv := MembershipView{Segment: d.Name, EnteredAt: r.EnteredAt, ExitedAt: r.ExitedAt}
			for _, iv := range r.Earlier {
				mv.Earlier = append(mv.Earlier, MembershipInterval{EnteredAt: time.Unix(0, iv[0]).UTC(), ExitedAt: time.Unix(0, iv[1]).UTC()})
			}
			out = append(out, mv)
		}
	}
	return out, nil
}
