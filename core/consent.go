package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/privacy"
)

// IngestOption is a per-call setting of Ingest.
type IngestOption func(*ingestOptions)

type ingestOptions struct {
	gpc bool
}

// WithGPC marks the messages as sent with a Global Privacy Control signal
// (Sec-GPC: 1): an opt-out of sale, sharing and cross-context advertising
// is recorded for each person.
func WithGPC(on bool) IngestOption { return func(o *ingestOptions) { o.gpc = on } }

// consentSignals extracts the consent records a message carries:
// context.consent.categoryPreferences (as Segment's consent management
// sends it) and, for requests with Sec-GPC: 1, the GPC opt-outs.
func (c *CDP) consentSignals(it *prepared, gpc bool, now time.Time) []privacy.Consent {
	var out []privacy.Consent
	if len(it.msg.Context) > 0 && bytes.Contains(it.msg.Context, []byte("categoryPreferences")) {
		var ctx struct {
			Consent struct {
				CategoryPreferences json.RawMessage `json:"categoryPreferences"`
			} `json:"consent"`
		}
		if json.Unmarshal(it.msg.Context, &ctx) == nil {
			recs, _ := privacy.FromCategoryPreferences(ctx.Consent.CategoryPreferences, c.cfg.Consent.Categories, it.msg.Timestamp, now, "")
			out = append(out, recs...)
		}
	}
	if gpc {
		out = append(out, privacy.FromGPC(it.msg.Timestamp, now, "")...)
	}
	return out
}

// putConsent seals a consent record under pid and returns its key. id
// makes the key deterministic, so a replay of the same origin writes the
// same key.
func (c *CDP) putConsent(ctx context.Context, tx *store.Txn, pid uuid.UUID, rec privacy.Consent, id []byte) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	key := store.ConsentKey(pid, rec.CollectedAt.UnixNano(), id[:16])
	// Before the commit: if it fails, the extra entry only costs a scan.
	c.consented.add(pid)
	sealed, err := c.vault.Seal(ctx, pid, key, plain)
	if err != nil {
		return nil, fmt.Errorf("seal consent: %w", err)
	}
	// Consent records are read only by scans, which never run over an
	// overlay: kept out of it.
	return key, tx.SetUnread(key, sealed)
}

func (c *CDP) consentRecords(ctx context.Context, tx *store.Txn, pid uuid.UUID) ([]privacy.Consent, error) {
	var out []privacy.Consent
	if !c.consented.has(pid) {
		return nil, nil // never had a record: no iterator to open
	}
	err := tx.Scan(store.PIDPrefix(store.PrefixConsent, pid), store.ScanOptions{}, func(k, v []byte) error {
		plain, err := c.vault.Unseal(ctx, pid, k, v)
		if err != nil {
			return fmt.Errorf("consent of profile %s: %w", pid, err)
		}
		var r privacy.Consent
		if err := json.Unmarshal(plain, &r); err != nil {
			return fmt.Errorf("consent of profile %s: %w", pid, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// ConsentRequest records one consent decision for the person holding an
// identifier (creating a profile for it if none exists: a preference centre
// may know a person before any event does).
type ConsentRequest struct {
	Identifier   identity.Identifier `json:"identifier"`
	Purpose      string              `json:"purpose"`
	Status       string              `json:"status"`
	LawfulBasis  string              `json:"lawful_basis,omitempty"`
	Jurisdiction string              `json:"jurisdiction,omitempty"`
	Source       string              `json:"source,omitempty"`
	Notice       string              `json:"notice,omitempty"`
	CollectedAt  time.Time           `json:"collected_at,omitzero"`
	ExpiresAt    *time.Time          `json:"expires_at,omitempty"`
}

// RecordConsent adds a consent record. The history is never overwritten.
func (c *CDP) RecordConsent(ctx context.Context, req ConsentRequest) (privacy.Consent, error) {
	now := c.now().UTC()
	rec := privacy.Consent{Purpose: req.Purpose, Status: req.Status, LawfulBasis: req.LawfulBasis,
		Jurisdiction: privacy.NormalizeJurisdiction(req.Jurisdiction), Source: req.Source, Notice: req.Notice,
		CollectedAt: req.CollectedAt.UTC(), ExpiresAt: req.ExpiresAt, RecordedAt: now}
	if req.Jurisdiction != "" && rec.Jurisdiction == "" {
		return rec, fmt.Errorf("%w: %w: jurisdiction: must be EU, UK, US-<state> or an ISO country code", ErrInvalidInput, privacy.ErrInvalidConsent)
	}
	if rec.Source == "" {
		rec.Source = privacy.SourceAPI
	}
	if rec.CollectedAt.IsZero() {
		rec.CollectedAt = now
	}
	if rec.Status == policies.StatusGranted && rec.LawfulBasis == "" {
		rec.LawfulBasis = policies.BasisConsent
	}
	if err := rec.Validate(c.engine.ValidPurpose); err != nil {
		return rec, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	v, err := c.rules.Normalize(req.Identifier.Type, req.Identifier.Value)
	if err != nil {
		return rec, fmt.Errorf("%w: identifier: %v", ErrInvalidInput, err)
	}
	if c.rules.Blocked(req.Identifier.Type, v) {
		return rec, fmt.Errorf("%w: identifier: a blocklisted value identifies no one", ErrInvalidInput)
	}
	var recorded uuid.UUID
	ref := idRef{typ: req.Identifier.Type, value: v, key: store.IdentifierKey(string(req.Identifier.Type), c.hasher.Sum(string(req.Identifier.Type), v))}
	err = c.runOp(ctx, func(tx *store.Txn) error {
		st := newGroupState(0)
		pid, _, err := c.node(tx, st, &ref, rec.CollectedAt, now)
		if err != nil {
			return err
		}
		if err := c.writeUnlisted(tx, st); err != nil {
			return err
		}
		if len(st.newPIDs) > 0 {
			if err := c.vault.CreateDEKs(ctx, st.newPIDs); err != nil {
				return err
			}
		}
		for p := range st.dirty {
			if err := c.putRecord(ctx, tx, st.records[p]); err != nil {
				return err
			}
		}
		id := c.hasher.Sum("consent", fmt.Sprintf("%s|%s|%s|%d", pid, rec.Purpose, rec.Status, now.UnixNano()))
		recorded = pid
		_, err = c.putConsent(ctx, tx, pid, rec, id)
		return err
	})
	if err != nil {
		return rec, err
	}
	// Durable now: the gate must read the new record.
	c.gates.invalidate(recorded)
	// A consent change can move the person in or out of segments.
	c.touchLive(recorded)
	c.personal.touch(recorded)
	return rec, c.record(ctx, "consent.record", map[string]any{"profile": recorded, "purpose": rec.Purpose,
		"status": rec.Status, "source": rec.Source, "lawful_basis": rec.LawfulBasis})
}

// ConsentView is a person's consent: the state per purpose, and every
// record ever made.
type ConsentView struct {
	Jurisdiction string                   `json:"jurisdiction"`
	States       map[string]privacy.State `json:"states"`
	History      []privacy.Consent        `json:"history"`
}

// consentOf resolves the consent of a person (root and members).
func (c *CDP) consentOf(ctx context.Context, tx *store.Txn, root uuid.UUID, members []uuid.UUID, traits map[string]json.RawMessage) (ConsentView, error) {
	v := ConsentView{States: map[string]privacy.State{}, History: []privacy.Consent{}}
	var per [][]privacy.Consent
	for _, m := range members {
		recs, err := c.consentRecords(ctx, tx, m)
		if err != nil {
			return v, err
		}
		per = append(per, recs)
		v.History = append(v.History, recs...)
	}
	rm, err := c.getMember(tx, root)
	if err != nil {
		return v, err
	}
	var mergedAt time.Time
	if !rm.last.IsZero() {
		mergedAt = time.Unix(0, rm.last.TS)
	}
	v.States = privacy.Resolve(per, mergedAt)
	sort.Slice(v.History, func(i, j int) bool { return v.History[i].CollectedAt.Before(v.History[j].CollectedAt) })
	v.Jurisdiction = jurisdictionOf(traits, v.History)
	return v, nil
}

// jurisdictionOf derives a person's jurisdiction: an explicit
// "jurisdiction" trait, else the address (or country/state traits), else
// the latest consent record that names one. Unknown is "" (strictest).
func jurisdictionOf(traits map[string]json.RawMessage, history []privacy.Consent) string {
	str := func(raw json.RawMessage) string {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	if j := privacy.NormalizeJurisdiction(str(traits["jurisdiction"])); j != "" {
		return j
	}
	var addr struct {
		Country string `json:"country"`
		State   string `json:"state"`
	}
	if raw, ok := traits["address"]; ok && json.Unmarshal(raw, &addr) == nil && addr.Country != "" {
		if j := privacy.Jurisdiction(addr.Country, addr.State); j != "" {
			return j
		}
	}
	if j := privacy.Jurisdiction(str(traits["country"]), str(traits["state"])); j != "" {
		return j
	}
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Jurisdiction != "" {
			return history[i].Jurisdiction
		}
	}
	return ""
}

// GateRequest is what the gate is asked: may this person's data be used?
type GateRequest struct {
	Action      string
	Purpose     string
	Destination policies.Destination
	Role        string
}

func (c *CDP) subjectInput(gr GateRequest, cv ConsentView) policies.Input {
	return c.gateInput(gr, subjectOf(cv))
}

// gateInput is the policy input of a request about a subject.
func (c *CDP) gateInput(gr GateRequest, s policies.Subject) policies.Input {
	return policies.Input{Action: gr.Action, Purpose: gr.Purpose, Now: c.now().UTC(), Destination: gr.Destination,
		Subject: s, Requester: policies.Requester{Role: gr.Role}}
}

// subjectOf is the policy subject of a consent view.
func subjectOf(cv ConsentView) policies.Subject {
	gpc := false
	for _, h := range cv.History {
		if h.Source == privacy.SourceGPC {
			gpc = true
		}
	}
	return privacy.Subject(cv.States, cv.Jurisdiction, gpc, false, nil, nil)
}

// ReachReport counts, for one purpose, how many people the gate lets a
// marketer reach and how many it holds back (counts, never who).
type ReachReport struct {
	Purpose        string         `json:"purpose"`
	Allowed        int            `json:"allowed"`
	NotConsented   int            `json:"not_consented"`
	ByJurisdiction map[string]int `json:"allowed_by_jurisdiction"`
}

// Reach runs every person through the policy gate for each purpose
// (segment.evaluate by a marketer) and counts the outcomes. It is the
// gated pass that segments build on.
func (c *CDP) Reach(ctx context.Context, purposes []string) ([]ReachReport, error) {
	reps := make([]ReachReport, len(purposes))
	for i, p := range purposes {
		if !c.engine.ValidPurpose(p) {
			return nil, fmt.Errorf("%w: unknown purpose %q", ErrInvalidInput, p)
		}
		reps[i] = ReachReport{Purpose: p, ByJurisdiction: map[string]int{}}
	}
	err := c.eachPerson(ctx, func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error {
		traits, err := c.traitsOf(ctx, tx, members)
		if err != nil {
			return err
		}
		cv, err := c.consentOf(ctx, tx, root, members, traits)
		if err != nil {
			return err
		}
		for i, p := range purposes {
			d, err := c.engine.Decide(ctx, c.subjectInput(GateRequest{Action: policies.ActionSegmentEvaluate, Purpose: p, Role: policies.RoleMarketer}, cv))
			if err != nil {
				return err
			}
			if d.Allow {
				reps[i].Allowed++
				j := cv.Jurisdiction
				if j == "" {
					j = "unknown"
				}
				reps[i].ByJurisdiction[j]++
			} else {
				reps[i].NotConsented++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range reps {
		// Decision records: counts per purpose and the bundle that decided.
		if err := c.record(ctx, "gate.decisions", map[string]any{"action": policies.ActionSegmentEvaluate, "purpose": r.Purpose,
			"allowed": r.Allowed, "denied": r.NotConsented, "bundle_hash": c.engine.BundleHash()}); err != nil {
			return nil, err
		}
	}
	return reps, nil
}

// eachPerson calls fn for every person (cluster root and members) in one
// read transaction.
func (c *CDP) eachPerson(ctx context.Context, fn func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error) error {
	return c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{Borrow: true}, func(k, v []byte) error {
			ms, err := decodeMembers(v)
			if err != nil {
				return err
			}
			root := uuid.UUID(k[len(store.PrefixCluster):])
			members := make([]uuid.UUID, 0, len(ms))
			for _, m := range ms {
				members = append(members, m.pid)
			}
			return fn(tx, root, members)
		})
	})
}

// traitsOf merges the traits of a person's nodes (latest observation wins).
func (c *CDP) traitsOf(ctx context.Context, tx *store.Txn, members []uuid.UUID) (map[string]json.RawMessage, error) {
	traits := map[string]json.RawMessage{}
	at := map[string]time.Time{}
	for _, n := range members {
		rec, err := c.getTraits(ctx, tx, n)
		if err != nil {
			return nil, err
		}
		for k, v := range rec.Traits {
			mergeTrait(traits, at, k, v, rec.TraitTimes[k])
		}
	}
	return traits, nil
}

// mergeTrait keeps, across a person's profiles, the latest observation of
// trait k (the larger value on a tie, so the order of profiles is moot).
func mergeTrait(traits map[string]json.RawMessage, at map[string]time.Time, k string, v json.RawMessage, t time.Time) {
	if prev, ok := at[k]; !ok || t.After(prev) || (t.Equal(prev) && string(v) > string(traits[k])) {
		traits[k], at[k] = v, t
	}
}

// Consent returns the consent view of the person holding id.
func (c *CDP) Consent(ctx context.Context, id identity.Identifier) (ConsentView, error) {
	var cv ConsentView
	err := c.withPerson(ctx, id, func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error {
		traits, err := c.traitsOf(ctx, tx, members)
		if err != nil {
			return err
		}
		cv, err = c.consentOf(ctx, tx, root, members, traits)
		return err
	})
	return cv, err
}

func (c *CDP) withPerson(ctx context.Context, id identity.Identifier, fn func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error) error {
	v, err := c.rules.Normalize(id.Type, id.Value)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	h := c.hasher.Sum(string(id.Type), v)
	return c.store.View(ctx, func(tx *store.Txn) error {
		raw, err := tx.Get(store.IdentifierKey(string(id.Type), h))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lookup by %s: %w", id.Type, ErrProfileNotFound)
		}
		if err != nil {
			return err
		}
		pid, err := uuid.FromBytes(raw)
		if err != nil {
			return err
		}
		root, members, err := c.members(tx, pid)
		if err != nil {
			return err
		}
		return fn(tx, root, members)
	})
}

// Decide asks the policy gate about the person holding id. Profile reads
// are recorded on the audit log (who, which person, the outcome).
func (c *CDP) Decide(ctx context.Context, id identity.Identifier, gr GateRequest) (policies.Decision, error) {
	var cv ConsentView
	var root uuid.UUID
	err := c.withPerson(ctx, id, func(tx *store.Txn, r uuid.UUID, members []uuid.UUID) error {
		traits, err := c.traitsOf(ctx, tx, members)
		if err != nil {
			return err
		}
		root = r
		cv, err = c.consentOf(ctx, tx, r, members, traits)
		return err
	})
	if err != nil {
		return policies.Decision{}, err
	}
	d, err := c.engine.Decide(ctx, c.subjectInput(gr, cv))
	if err != nil {
		return d, err
	}
	if gr.Action == policies.ActionProfileRead {
		err = c.record(ctx, "profile.read", map[string]any{"person": root, "role": gr.Role, "allowed": d.Allow, "bundle_hash": c.engine.BundleHash()})
	}
	return d, err
}

// PolicyEngine returns the policy engine (for `custody policy eval`).
func (c *CDP) PolicyEngine() *policies.Engine { return c.engine }

// recordTraits is the part of a node record the gate reads: decoding only
// it skips the rest (the trait history can be long).
type recordTraits struct {
	Traits     map[string]json.RawMessage `json:"traits"`
	TraitTimes map[string]time.Time       `json:"trait_times"`
}

func (c *CDP) getTraits(ctx context.Context, tx *store.Txn, pid uuid.UUID) (*recordTraits, error) {
	var r recordTraits
	if err := c.readRecord(ctx, tx, pid, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// pidSet is a set of profile ids, safe for concurrent use: the profiles
// that have (or once had) consent records, so that evaluating the many
// people who never recorded consent opens no iterator for them.
type pidSet struct {
	mu sync.RWMutex
	m  map[uuid.UUID]struct{}
}

func newPIDSet() *pidSet { return &pidSet{m: map[uuid.UUID]struct{}{}} }

func (s *pidSet) add(p uuid.UUID) {
	s.mu.Lock()
	s.m[p] = struct{}{}
	s.mu.Unlock()
}

func (s *pidSet) has(p uuid.UUID) bool {
	s.mu.RLock()
	_, ok := s.m[p]
	s.mu.RUnlock()
	return ok
}

// loadConsented fills c.consented from the consent keys (no value read).
func (c *CDP) loadConsented(ctx context.Context) error {
	return c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixConsent), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			if len(k) >= len(store.PrefixConsent)+16 {
				c.consented.add(uuid.UUID(k[len(store.PrefixConsent) : len(store.PrefixConsent)+16]))
			}
			return nil
		})
	})
}
