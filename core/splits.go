package core

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/segments"
)

// Splits (holdouts, A/B groups): a person's group in a segment is
// segments.Splitter's keyed hash of the segment name and the person's root
// profile id, under a subkey of the master key (keys.PurposeSegmentSplit).
// The key never leaves memory and cannot be derived from anything stored
// or exported, so a group cannot be predicted or chosen from a profile id;
// it is the same after a restart, and whatever the person's membership
// does. A merge that gives a person an older root may change their group
// (the root is the cluster's oldest profile id, so this is rare).

// splitter returns the assigner of d's splits, nil when d has none.
func (c *CDP) splitter(d *segments.Definition) (*segments.Splitter, error) {
	if len(d.Splits) == 0 {
		return nil, nil
	}
	s, err := segments.NewSplitter(c.master.Subkey(keys.PurposeSegmentSplit, 32), d.Name, d.Splits)
	if err != nil {
		return nil, fmt.Errorf("splits of %s: %w", d.Name, err)
	}
	return s, nil
}

// groupCounts counts members per group of d's splits (nil without splits).
func (c *CDP) groupCounts(d *segments.Definition, members []segments.Member) (map[string]int, error) {
	s, err := c.splitter(d)
	if s == nil || err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, g := range s.Groups() {
		out[g] = 0
	}
	for _, m := range members {
		root, err := uuid.Parse(m.Ref())
		if err != nil {
			return nil, err
		}
		out[s.Group(root[:])]++
	}
	return out, nil
}

// rowGroups returns the group of each export row (nil without splits).
func (c *CDP) rowGroups(d *segments.Definition, rows []segments.Row) ([]string, error) {
	s, err := c.splitter(d)
	if s == nil || err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		root, err := uuid.Parse(r.Ref())
		if err != nil {
			return nil, err
		}
		out[i] = s.Group(root[:])
	}
	return out, nil
}
