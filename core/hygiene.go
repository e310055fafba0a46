package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/segments"
)

// Segment hygiene: "set it and forget it" is how segments rot. The list of
// segments (`custody segment list`, GET /v1/admin/segments?hygiene=true)
// carries warnings, computed from counts only, never from who:
//
//   - too_small: fewer active members than segments.hygiene.min_members
//     (default 100: ad platforms refuse smaller audiences, and a campaign
//     to fewer people measures nothing);
//   - overlap: the active members of two segments have a Jaccard index
//     |A∩B| / |A∪B| of at least segments.hygiene.max_overlap (default
//     0.9): they are the same audience under two names;
//   - unused: nobody applied, evaluated, exported or served (personalisation)
//     the segment for segments.hygiene.unused_after (default 90d). The
//     automatic refresh is not a use. Last uses are kept per segment in
//     su/<name> (no personal data), written when they happen.

// HygieneConfig sets the thresholds of the segment warnings.
type HygieneConfig struct {
	MinMembers  int      `yaml:"min_members"`
	MaxOverlap  float64  `yaml:"max_overlap"`
	UnusedAfter Duration `yaml:"unused_after"`
}

// DefaultHygiene returns the documented defaults.
func DefaultHygiene() HygieneConfig {
	return HygieneConfig{MinMembers: 100, MaxOverlap: 0.9, UnusedAfter: Duration(90 * 24 * time.Hour)}
}

func (h *HygieneConfig) validate() error {
	bad := func(k, r string) error { return &ConfigError{Key: "segments.hygiene." + k, Reason: r} }
	if h.MinMembers < 0 {
		return bad("min_members", "must be 0 (no warning) or more")
	}
	if math.IsNaN(h.MaxOverlap) || h.MaxOverlap <= 0 || h.MaxOverlap > 1 {
		return bad("max_overlap", "must be a Jaccard index in (0, 1], such as 0.9")
	}
	if h.UnusedAfter < 0 {
		return bad("unused_after", "must be 0 (no warning) or a duration such as 90d")
	}
	return nil
}

// Uses of a segment, as recorded in su/<name>.
const (
	useApplied   = "applied"
	useEvaluated = "evaluated"
	useExported  = "exported"
	useServed    = "personalized"
	useReported  = "reported"
)

// markUsed records that the segment was used now. A failure is logged, not
// returned: the use itself succeeded, and the record only feeds warnings.
func (c *CDP) markUsed(ctx context.Context, name, use string) {
	at := c.now().UTC()
	key := store.SegmentUseKey(name)
	err := c.store.Update(ctx, func(tx *store.Txn) error {
		if ok, err := tx.Has([]byte(string(store.PrefixSegmentDef) + name)); err != nil || !ok {
			return err // deleted meanwhile: no record for it
		}
		uses := map[string]time.Time{}
		v, err := tx.Get(key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(v, &uses); err != nil {
				return fmt.Errorf("segment use record: %w", err)
			}
		}
		if !at.After(uses[use]) {
			return nil
		}
		uses[use] = at
		b, _ := json.Marshal(uses)
		return tx.Set(key, b)
	})
	if err != nil {
		c.log.Warn("could not record a segment's use", "segment", name, "use", use, "err", err)
	}
}

// SegmentWarning is one hygiene warning.
type SegmentWarning struct {
	// Code is too_small, overlap or unused.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Other is the other segment of an overlap, with their Jaccard index.
	Other   string  `json:"other,omitempty"`
	Jaccard float64 `json:"jaccard,omitempty"`
}

// SegmentHealth is a segment in the list: its definition, how many people
// are active members now, when it was last used, and its warnings.
type SegmentHealth struct {
	Name        string               `json:"name"`
	Purpose     string               `json:"purpose"`
	Description string               `json:"description,omitempty"`
	Members     int                  `json:"members"`
	LastUsed    *time.Time           `json:"last_used,omitempty"`
	Uses        map[string]time.Time `json:"uses"`
	Warnings    []SegmentWarning     `json:"warnings"`
	Definition  *segments.Definition `json:"definition"`
}

// SegmentHygiene lists the applied segments with their warnings as of now
// (zero: the clock). One scan of the active memberships; counts only.
func (c *CDP) SegmentHygiene(ctx context.Context, now time.Time) ([]SegmentHealth, error) {
	if now.IsZero() {
		now = c.now()
	}
	now = now.UTC()
	defs, err := c.Segments(ctx)
	if err != nil {
		return nil, err
	}
	h := c.cfg.Segments.Hygiene
	out := make([]SegmentHealth, len(defs))
	// Each segment's active roots, in key order (sorted): overlaps are
	// merge-intersections, 16 bytes a membership while the list is built.
	roots := make([][]uuid.UUID, len(defs))
	err = c.store.View(ctx, func(tx *store.Txn) error {
		for i, d := range defs {
			out[i] = SegmentHealth{Name: d.Name, Purpose: d.Purpose, Description: d.Description, Definition: d,
				Uses: map[string]time.Time{}, Warnings: []SegmentWarning{}}
			if err := scanActive(tx, d.Name, func(r uuid.UUID) { roots[i] = append(roots[i], r) }); err != nil {
				return err
			}
			out[i].Members = len(roots[i])
			v, err := tx.Get(store.SegmentUseKey(d.Name))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := json.Unmarshal(v, &out[i].Uses); err != nil {
				return fmt.Errorf("segment %s: use record: %w", d.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("segment hygiene: %w", err)
	}
	for i := range out {
		s := &out[i]
		if s.Members < h.MinMembers {
			s.Warnings = append(s.Warnings, SegmentWarning{Code: "too_small",
				Message: fmt.Sprintf("%d active members, fewer than %d (segments.hygiene.min_members): too small to act on", s.Members, h.MinMembers)})
		}
		for j := range out {
			if j == i || len(roots[i]) == 0 || len(roots[j]) == 0 {
				continue
			}
			inter := intersectSorted(roots[i], roots[j])
			jac := float64(inter) / float64(len(roots[i])+len(roots[j])-inter)
			if jac >= h.MaxOverlap {
				s.Warnings = append(s.Warnings, SegmentWarning{Code: "overlap", Other: out[j].Name, Jaccard: math.Round(jac*1000) / 1000,
					Message: fmt.Sprintf("overlaps %s almost entirely: %d shared of %d and %d members (Jaccard %.3f >= %g)",
						out[j].Name, inter, len(roots[i]), len(roots[j]), jac, h.MaxOverlap)})
			}
		}
		for _, t := range s.Uses {
			if s.LastUsed == nil || t.After(*s.LastUsed) {
				t := t
				s.LastUsed = &t
			}
		}
		if h.UnusedAfter > 0 {
			switch {
			case s.LastUsed == nil:
				s.Warnings = append(s.Warnings, SegmentWarning{Code: "unused",
					Message: "no application, evaluation, export or personalisation of it is recorded"})
			case now.Sub(*s.LastUsed) >= h.UnusedAfter.D():
				s.Warnings = append(s.Warnings, SegmentWarning{Code: "unused",
					Message: fmt.Sprintf("not applied, evaluated, exported or served since %s (%d days; segments.hygiene.unused_after %s)",
						s.LastUsed.Format(time.RFC3339), int(now.Sub(*s.LastUsed).Hours()/24), fmtDays(h.UnusedAfter.D()))})
			}
		}
	}
	return out, nil
}

// intersectSorted counts the roots two sorted lists share.
func intersectSorted(a, b []uuid.UUID) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch c := bytes.Compare(a[i][:], b[j][:]); {
		case c == 0:
			n++
			i++
			j++
		case c < 0:
			i++
		default:
			j++
		}
	}
	return n
}

func fmtDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
