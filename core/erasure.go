package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// AccessReport is everything Custody holds about a person (GDPR Art. 15/20),
// decrypted and machine-readable: identifiers, traits and their history,
// consent state and history, merges and unmerges, every event, every
// export that included them, their segment memberships and the privacy
// requests made with their identifiers. Each field is filled by the rule
// of the keyspace prefix it comes from (keyspace.go).
type AccessReport struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Person is nil when no one holds the identifier asked about (never
	// seen, or deleted): the report is then empty (emptyAccess).
	Person      *ProfileView     `json:"person"`
	Exports     []ledgerEntry    `json:"exports"`
	Memberships []MembershipView `json:"segment_memberships"`
	Requests    []RequestSummary `json:"requests"`
}

// RequestSummary is an earlier privacy request in an access report.
type RequestSummary struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	Regulation     string    `json:"regulation"`
	IdentifierType string    `json:"identifier_type"`
	Status         string    `json:"status"`
	ReceivedAt     time.Time `json:"received_at"`
	DueAt          time.Time `json:"due_at"`
}

// identifierKey is the identifier index key of id (i/<type>/<keyed hash>).
func (c *CDP) identifierKey(id identity.Identifier) ([]byte, error) {
	v, err := c.rules.Normalize(id.Type, id.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return store.IdentifierKey(string(id.Type), c.hasher.Sum(string(id.Type), v)), nil
}

// Access builds the access report of the person holding id, and records
// that it was made on the audit log.
func (c *CDP) Access(ctx context.Context, id identity.Identifier) (AccessReport, error) {
	ik, err := c.identifierKey(id)
	if err != nil {
		return AccessReport{}, err
	}
	return c.access(ctx, ik)
}

func (c *CDP) access(ctx context.Context, ik []byte) (AccessReport, error) {
	rep := AccessReport{GeneratedAt: c.now().UTC(), Exports: []ledgerEntry{}, Memberships: []MembershipView{}, Requests: []RequestSummary{}}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		p, err := c.scope(ctx, tx, ik)
		if err != nil {
			return err
		}
		for i := range keyspace {
			if r := &keyspace[i]; r.export != nil {
				if err := r.export(c, ctx, tx, p, &rep); err != nil {
					return fmt.Errorf("access report (%s): %w", r.prefix, err)
				}
			}
		}
		return nil
	})
	if errors.Is(err, ErrProfileNotFound) {
		return rep, fmt.Errorf("lookup by %s: %w", identifierType(ik), ErrProfileNotFound)
	}
	if err != nil {
		return rep, err
	}
	return rep, c.record(ctx, "privacy.access", map[string]any{"person": rep.Person.ID, "profiles": len(rep.Person.Profiles),
		"events": rep.Person.EventCount, "exports": len(rep.Exports)})
}

// emptyAccess is the access report when no one holds the identifier: no
// person, and nothing in any section. Earlier requests made with the
// identifier are left out on purpose: a deleted person's deletion request
// would otherwise say they existed. The access is recorded on the audit
// log like any other.
func (c *CDP) emptyAccess(ctx context.Context) (AccessReport, error) {
	rep := AccessReport{GeneratedAt: c.now().UTC(), Exports: []ledgerEntry{}, Memberships: []MembershipView{}, Requests: []RequestSummary{}}
	return rep, c.record(ctx, "privacy.access", map[string]any{"person": nil, "profiles": 0, "events": 0, "exports": 0})
}

// identifierType is the type part of an identifier index key.
func identifierType(ik []byte) string {
	if len(ik) < len(store.PrefixIdentifier)+33 {
		return "identifier"
	}
	return string(ik[len(store.PrefixIdentifier) : len(ik)-33])
}

func (c *CDP) exportsOf(ctx context.Context, tx *store.Txn, members []uuid.UUID) ([]ledgerEntry, error) {
	out := []ledgerEntry{}
	for _, m := range members {
		err := tx.Scan(store.PIDPrefix(store.PrefixExport, m), store.ScanOptions{}, func(k, v []byte) error {
			plain, err := c.vault.Unseal(ctx, m, k, v)
			if err != nil {
				return fmt.Errorf("export ledger: %w", err)
			}
			var e ledgerEntry
			if err := json.Unmarshal(plain, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// DeletionCertificate is the proof of an erasure, recorded on the audit
// log: no personal data, only what a DPO needs to show it was done.
type DeletionCertificate struct {
	Request          string         `json:"request"`
	At               time.Time      `json:"at"`
	Person           uuid.UUID      `json:"person"`
	Profiles         []uuid.UUID    `json:"profiles"`
	IdentifierHashes []string       `json:"identifier_hashes"` // keyed hashes of every identifier of the person
	Suppressed       []string       `json:"suppressed"`        // "<type>/<keyed hash>" put on the suppression list
	Records          map[string]int `json:"records"`           // erased keys per prefix
	DEKsShredded     []string       `json:"deks_shredded"`     // fingerprints of the destroyed wrapped keys
	KEKRetired       []uint32       `json:"kek_epochs_retired"`
	// KEKRotationDue is set when the rotation is left to the configured
	// window (privacy.rotation_window): the keys.rotate entry that names
	// this request on the audit log completes the deletion.
	KEKRotationDue *time.Time `json:"kek_rotation_due,omitempty"`
	// Resumed is set when the deletion was interrupted (crash) and finished
	// at the next Open; keys shredded before the crash are then not listed
	// in DEKsShredded.
	Resumed bool `json:"resumed,omitempty"`
	// Recipients are the destinations that received the person's data and
	// must be told (GDPR Art. 17(2), 19).
	Recipients []ledgerEntry `json:"recipients"`
	// Durations of the steps (operational figures; benchmarks print them).
	Durations StepDurations `json:"durations"`
}

// StepDurations is how long each step of a deletion took, in milliseconds
// (zero for a step done before a crash).
type StepDurations struct {
	Erase   float64 `json:"erase_ms"`
	Shred   float64 `json:"shred_ms"`
	Rotate  float64 `json:"rotate_ms"`
	Certify float64 `json:"certify_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Phases of a deletion, journaled in its request record so that a deletion
// interrupted by a crash is finished by the next Open (resumeErasures).
// The erase transaction writes phaseErased together with the erasure, so
// the store holds either the person or the journal, never neither.
//
// Only phaseErased is written to the store: every later step is idempotent
// and cheap to redo, so a crash after it resumes from phaseErased (the
// other phases name the fault-injection points of the tests).
const (
	phaseErased   = "erased"   // records erased, suppression set; keys not shredded yet
	phaseShredded = "shredded" // data keys destroyed; KEK not rotated yet
	phaseRotated  = "rotated"  // KEK rotated; certificate not on the audit log yet
)

// ErasureProgress is the journal of a deletion in progress.
type ErasureProgress struct {
	Phase       string              `json:"phase"`
	Certificate DeletionCertificate `json:"certificate"`
}

// Delete erases the person holding id everywhere (a suppress_with_delete
// request, recorded and carried out at once) and returns the certificate.
func (c *CDP) Delete(ctx context.Context, id identity.Identifier) (DeletionCertificate, error) {
	r, _, err := c.HandleRequest(ctx, RequestSuppressWithDelete, "gdpr", id)
	var cert DeletionCertificate
	if err != nil {
		return cert, err
	}
	if err := json.Unmarshal(r.Result, &cert); err != nil {
		return cert, fmt.Errorf("deletion certificate: %w", err)
	}
	return cert, nil
}

// eraseRequest carries out a deletion request: every record of every
// profile of the person's cluster under every personal prefix, and every
// reference to them from other people's records, is erased in one
// transaction driven by the keyspace registry; their identifiers go on the
// suppression list (suppress_with_delete) so that replayed or late events
// are dropped; then their data keys are shredded and the key-encryption
// key rotated, so that older copies of those keys (old table files,
// backups of the vault's key store) can no longer be unwrapped; last, the
// certificate goes on the audit log.
func (c *CDP) eraseRequest(ctx context.Context, r *PrivacyRequest) (DeletionCertificate, error) {
	ik, err := r.identifierKey()
	if err != nil {
		return DeletionCertificate{}, err
	}
	cert := DeletionCertificate{Request: r.ID, At: c.now().UTC()}
	start := time.Now()
	// Exports hold exportMu from their snapshot to their ledger write, and
	// membership writers memberMu from their read to their write: the
	// erasure waits for those running, so that its certificate lists every
	// export that read the person and none writes a record of them back
	// after the erasure removed it (the store detects no write conflicts);
	// those that start after read a snapshot without them.
	c.exportMu.Lock()
	c.memberMu.Lock()
	err = c.runOp(ctx, func(tx *store.Txn) error {
		cert.Records, cert.IdentifierHashes, cert.Suppressed = map[string]int{}, []string{}, []string{}
		p, err := c.scope(ctx, tx, ik)
		if errors.Is(err, ErrProfileNotFound) {
			return fmt.Errorf("lookup by %s: %w", r.IdentifierType, ErrProfileNotFound)
		}
		if err != nil {
			return err
		}
		cert.Person, cert.Profiles = p.root, p.members
		if cert.Recipients, err = c.exportsOf(ctx, tx, p.members); err != nil {
			return err
		}
		e := &eraseState{cert: &cert, suppress: r.Type == RequestSuppressWithDelete, sepsGone: map[uuid.UUID][]uuid.UUID{}}
		// Find everything first: the identifier index rule needs the
		// profile records, which another rule erases.
		found := make([][][]byte, len(keyspace))
		for i := range keyspace {
			if rule := &keyspace[i]; rule.personal() {
				if found[i], err = rule.find(c, ctx, tx, p); err != nil {
					return fmt.Errorf("find %s: %w", rule.prefix, err)
				}
			}
		}
		for i := range keyspace {
			rule := &keyspace[i]
			if !rule.personal() {
				continue
			}
			if err := c.step("erase:" + string(rule.prefix)); err != nil {
				return err
			}
			if rule.erase != nil {
				err = rule.erase(c, tx, p, found[i], e)
			} else {
				for _, k := range found[i] {
					if err = tx.Delete(k); err != nil {
						break
					}
				}
			}
			if err != nil {
				return fmt.Errorf("erase %s: %w", rule.prefix, err)
			}
			if len(found[i]) > 0 {
				cert.Records[string(rule.prefix)] += len(found[i])
			}
		}
		// The journal, in the same transaction as the erasure.
		r.Erasure = &ErasureProgress{Phase: phaseErased, Certificate: cert}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := tx.Set(requestKey(r.ID), b); err != nil {
			return err
		}
		// Committer-owned state, changed only once everything else is done
		// (a failed op makes the committer reload it from the store).
		for _, k := range e.suppressed {
			c.suppressed[string(k)] = true
		}
		for _, k := range e.dropIDs {
			c.ids.remove(k)
		}
		for a, others := range e.sepsGone {
			for _, o := range others {
				c.seps[a] = removePID(c.seps[a], o)
			}
		}
		for _, m := range p.members {
			delete(c.seps, m)
		}
		return nil
	})
	c.memberMu.Unlock()
	c.exportMu.Unlock()
	if err != nil {
		r.Erasure = nil
		return cert, err
	}
	r.Erasure.Certificate.Durations.Erase = ms(time.Since(start))
	return c.continueErasure(ctx, r)
}

// continueErasure runs the steps of a journaled deletion that are not done
// yet. Every step is idempotent: shredding a shredded key changes nothing,
// a rotation finishes an unfinished one, and the certificate is not
// appended twice.
func (c *CDP) continueErasure(ctx context.Context, r *PrivacyRequest) (DeletionCertificate, error) {
	ep := r.Erasure
	cert := &ep.Certificate
	if ep.Phase == phaseErased {
		if err := c.step(phaseErased); err != nil {
			return *cert, err
		}
		t := time.Now()
		c.aggs.drop(cert.Profiles...) // the in-memory digests of their events
		c.gates.invalidate(cert.Profiles...)
		c.personal.touch(cert.Profiles...)
		shred, err := c.vault.Shred(ctx, cert.Profiles)
		if err != nil {
			return *cert, fmt.Errorf("shred data keys: %w", err)
		}
		cert.DEKsShredded = append(cert.DEKsShredded, shred.Fingerprints...)
		cert.Durations.Shred = ms(time.Since(t))
		// Not journaled: after a crash from here on, the next Open shreds
		// again (a no-op) and finishes or redoes the rotation.
		ep.Phase = phaseShredded
	}
	if ep.Phase == phaseShredded && c.cfg.Privacy.RotationWindow > 0 {
		due := c.now().UTC().Add(c.cfg.Privacy.RotationWindow.D())
		cert.KEKRotationDue = &due
		ep.Phase = phaseRotated
	}
	if ep.Phase == phaseShredded {
		if err := c.step(phaseShredded); err != nil {
			return *cert, err
		}
		t := time.Now()
		rot, err := c.vault.Rotate(ctx)
		if err != nil {
			return *cert, fmt.Errorf("rotate key-encryption key: %w", err)
		}
		cert.KEKRetired = append(cert.KEKRetired, rot.Retired...)
		cert.Durations.Rotate = ms(time.Since(t))
		ep.Phase = phaseRotated
	}
	if err := c.step(phaseRotated); err != nil {
		return *cert, err
	}
	t := time.Now()
	done := false
	if cert.Resumed {
		var err error
		if done, err = c.certified(ctx, r.ID); err != nil {
			return *cert, err
		}
	}
	if !done {
		if err := c.record(ctx, "privacy.delete", cert); err != nil {
			return *cert, err
		}
	}
	out := *cert
	out.Durations.Certify = ms(time.Since(t))
	r.Erasure = nil
	return out, nil
}

// certified reports whether the certificate of request id is on the audit
// log already (a crash after the append, before the request was closed).
func (c *CDP) certified(ctx context.Context, id string) (bool, error) {
	tail, err := c.audit.Tail(ctx, 512)
	if err != nil {
		return false, err
	}
	for _, e := range tail {
		if e.Kind != "privacy.delete" {
			continue
		}
		var d struct {
			Request string `json:"request"`
		}
		if json.Unmarshal(e.Data, &d) == nil && d.Request == id {
			return true, nil
		}
	}
	return false, nil
}

// step runs the fault-injection hook of tests (nil in production).
func (c *CDP) step(name string) error {
	if c.eraseHook == nil {
		return nil
	}
	return c.eraseHook(name)
}

// resumeErasures finishes the deletions a crash interrupted: requests whose
// journal says the records are erased but the keys, the rotation or the
// certificate are not done yet. A deletion interrupted before its erase
// transaction committed left nothing behind: its request was never written
// as in progress (it is as it was, received or not recorded at all; see
// carryOut) and is carried out again by `custody privacy verify` or a new
// request.
func (c *CDP) resumeErasures(ctx context.Context) error {
	var pending []*PrivacyRequest
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixRequest), store.ScanOptions{}, func(_, v []byte) error {
			r, err := decodeRequest(v)
			if err != nil {
				return err
			}
			if r.Erasure != nil {
				pending = append(pending, r)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range pending {
		c.log.Warn("finishing a deletion interrupted by a crash", "request", r.ID, "phase", r.Erasure.Phase)
		r.Erasure.Certificate.Resumed = true
		cert, err := c.continueErasure(ctx, r)
		if err == nil {
			err = c.finish(ctx, r, cert, nil)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resume deletion %s: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}

func removePID(l []uuid.UUID, p uuid.UUID) []uuid.UUID {
	out := l[:0]
	for _, x := range l {
		if x != p {
			out = append(out, x)
		}
	}
	return out
}

func suppressionValue(request string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"request": request, "at": at})
	return b
}

// loadSuppressed reads the suppression list into memory (committer-owned).
func (c *CDP) loadSuppressed(ctx context.Context) error {
	c.suppressed = map[string]bool{}
	return c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixSuppressed), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			c.suppressed[string(store.PrefixIdentifier)+string(k[len(store.PrefixSuppressed):])] = true
			return nil
		})
	})
}

// pendingRotations lists the completed deletions whose KEK rotation was
// left to the window, with their due times.
func (c *CDP) pendingRotations(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixRequest), store.ScanOptions{}, func(_, v []byte) error {
			r, err := decodeRequest(v)
			if err != nil {
				return err
			}
			if r.RotationDue != nil {
				out[r.ID] = *r.RotationDue
			}
			return nil
		})
	})
	return out, err
}

// rotationDone clears the pending rotation of the requests a finished
// rotation covered and returns their ids.
func (c *CDP) rotationDone(ctx context.Context, pending map[string]time.Time) ([]string, error) {
	ids := []string{}
	var errs []error
	for id := range pending {
		r, err := c.Request(ctx, id)
		if err == nil {
			r.RotationDue = nil
			err = c.putRequest(ctx, r)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, errors.Join(errs...)
}

// rotateIfDue runs the KEK rotation when a deletion's window has passed.
func (c *CDP) rotateIfDue(ctx context.Context) (bool, error) {
	c.rotating.Lock()
	defer c.rotating.Unlock()
	pending, err := c.pendingRotations(ctx)
	if err != nil {
		return false, err
	}
	now := c.now()
	for _, due := range pending {
		if !due.After(now) {
			_, err := c.RotateKeys(ctx)
			return err == nil, err
		}
	}
	return false, nil
}

// rotationLoop checks for due rotations (owned by the CDP: Close stops it
// and waits). It checks at once, so a rotation that fell due while no
// process ran is done at the next start.
func (c *CDP) rotationLoop(window time.Duration) {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := min(max(window/10, time.Second), time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := c.rotateIfDue(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("scheduled KEK rotation failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
