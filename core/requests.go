package core

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// Request types, as Segment names them where they fit.
const (
	RequestAccess             = "access"
	RequestDelete             = "delete"               // delete only
	RequestSuppress           = "suppress"             // suppress only
	RequestSuppressWithDelete = "suppress_with_delete" // the default of privacy delete
	RequestUnsuppress         = "unsuppress"
)

// Request statuses.
const (
	StatusReceived   = "received"
	StatusVerified   = "verified"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusRejected   = "rejected"
)

// ErrRequestNotFound: no privacy request with that id.
var ErrRequestNotFound = errors.New("privacy request not found")

// PrivacyRequest is a data subject request and its history. It keeps the
// keyed hash of the identifier, never the identifier: a request that waits
// for verification is carried out later from the hash alone.
type PrivacyRequest struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Regulation     string          `json:"regulation"` // gdpr or ccpa
	IdentifierType identity.Type   `json:"identifier_type"`
	IdentifierHash string          `json:"identifier_hash"`
	Status         string          `json:"status"`
	ReceivedAt     time.Time       `json:"received_at"`
	DueAt          time.Time       `json:"due_at"`
	History        []RequestStep   `json:"history"`
	Result         json.RawMessage `json:"result,omitempty"` // counts, certificate; no personal data
	// Erasure is the journal of a deletion in progress (see erasure.go);
	// it is cleared when the request completes.
	Erasure *ErasureProgress `json:"erasure,omitempty"`
	// RotationDue is set on a completed deletion whose KEK rotation waits
	// for the window (privacy.rotation_window); cleared by the rotation.
	RotationDue *time.Time `json:"rotation_due,omitempty"`
}

// RequestStep is one change of status.
type RequestStep struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	Note   string    `json:"note,omitempty"`
}

// Overdue reports whether the request is open past its due date.
func (r *PrivacyRequest) Overdue(now time.Time) bool {
	return r.open() && now.After(r.DueAt)
}

// open reports whether the request is neither completed nor rejected.
func (r *PrivacyRequest) open() bool {
	return r.Status != StatusCompleted && r.Status != StatusRejected
}

// What may still be done to a request: VerifyRequest, RejectRequest and
// ExtendRequest refuse the rest. CanVerify: it is waiting for verification.
// CanReject: it was not carried out yet. CanExtend: it is open and was
// never extended (once only).
func (r *PrivacyRequest) CanVerify() bool { return r.Status == StatusReceived }
func (r *PrivacyRequest) CanReject() bool { return r.CanVerify() || r.Status == StatusVerified }
func (r *PrivacyRequest) CanExtend() bool { return r.open() && !r.extended() }

// extension is how far the one extension a regulation allows moves the due
// date, and its name for people: GDPR Art. 12(3) two further months, CCPA
// 45 further days.
func (r *PrivacyRequest) extension() (months, days int, text string) {
	if r.Regulation == "ccpa" {
		return 0, 45, "45 days (CCPA)"
	}
	return 2, 0, "two months (GDPR)"
}

// ExtensionPeriod says how far an extension moves the due date.
func (r *PrivacyRequest) ExtensionPeriod() string {
	_, _, text := r.extension()
	return text
}

func (r *PrivacyRequest) extended() bool {
	for _, h := range r.History {
		if h.Status == "extended" {
			return true
		}
	}
	return false
}

// ErasesPerson reports whether a request of type typ erases the person
// when carried out (delete, suppress_with_delete).
func ErasesPerson(typ string) bool {
	return typ == RequestDelete || typ == RequestSuppressWithDelete
}

// identifierKey is the identifier index key the request names.
func (r *PrivacyRequest) identifierKey() ([]byte, error) {
	h, err := hex.DecodeString(r.IdentifierHash)
	if err != nil || len(h) != 32 {
		return nil, fmt.Errorf("%w: request %s has a malformed identifier hash", ErrInvalidInput, r.ID)
	}
	return store.IdentifierKey(string(r.IdentifierType), h), nil
}

// dueDate is when the regulation requires an answer: one month under the
// GDPR (Art. 12(3)), 45 days under the CCPA.
func dueDate(regulation string, received time.Time) (time.Time, error) {
	switch regulation {
	case "", "gdpr":
		return received.AddDate(0, 1, 0), nil
	case "ccpa":
		return received.AddDate(0, 0, 45), nil
	}
	return time.Time{}, fmt.Errorf("%w: regulation must be gdpr or ccpa", ErrInvalidInput)
}

func requestKey(id string) []byte { return []byte(string(store.PrefixRequest) + id) }

func decodeRequest(v []byte) (*PrivacyRequest, error) {
	var r PrivacyRequest
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("privacy request record: %w", err)
	}
	return &r, nil
}

func (c *CDP) putRequest(ctx context.Context, r *PrivacyRequest) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.store.Update(ctx, func(tx *store.Txn) error { return tx.Set(requestKey(r.ID), b) })
}

func (c *CDP) addStep(r *PrivacyRequest, status, note string) {
	r.Status = status
	r.History = append(r.History, RequestStep{At: c.now().UTC(), Status: status, Note: note})
}

// HandleRequest records a privacy request and carries it out at once: the
// operator who runs it has verified the person's identity (received,
// verified, in progress, completed or rejected). It returns the request
// and, for access, the report.
func (c *CDP) HandleRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*PrivacyRequest, *AccessReport, error) {
	r, err := c.newRequest(typ, regulation, id)
	if err != nil {
		return nil, nil, err
	}
	c.addStep(r, StatusVerified, "verified: by the operator who filed it ("+actorOf(ctx)+")")
	c.addStep(r, StatusInProgress, "")
	return c.carryOut(ctx, r)
}

// newRequest validates a request and builds it, received, in memory.
func (c *CDP) newRequest(typ, regulation string, id identity.Identifier) (*PrivacyRequest, error) {
	switch typ {
	case RequestAccess, RequestDelete, RequestSuppress, RequestSuppressWithDelete, RequestUnsuppress:
	default:
		return nil, fmt.Errorf("%w: request type must be access, delete, suppress, suppress_with_delete or unsuppress", ErrInvalidInput)
	}
	ik, err := c.identifierKey(id)
	if err != nil {
		return nil, err
	}
	now := c.now().UTC()
	due, err := dueDate(regulation, now)
	if err != nil {
		return nil, err
	}
	if regulation == "" {
		regulation = "gdpr"
	}
	r := &PrivacyRequest{ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Regulation: regulation, IdentifierType: id.Type,
		IdentifierHash: hex.EncodeToString(ik[len(ik)-32:]), ReceivedAt: now, DueAt: due}
	c.addStep(r, StatusReceived, "")
	return r, nil
}

// ReceiveRequest records a privacy request as received: nothing is done
// until the person's identity is verified (VerifyRequest) or the request
// is rejected (RejectRequest). The due date runs from now.
func (c *CDP) ReceiveRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*PrivacyRequest, error) {
	r, err := c.newRequest(typ, regulation, id)
	if err != nil {
		return nil, err
	}
	if err := c.putRequest(ctx, r); err != nil {
		return nil, err
	}
	return r, c.record(ctx, "privacy.receive", map[string]any{"request": r.ID, "type": r.Type, "regulation": r.Regulation,
		"identifier_hash": r.IdentifierHash})
}

// VerifyRequest records that the person's identity was verified (method
// says how: "signed-in account", "email round-trip", ...) and carries the
// request out: in progress, then completed or rejected. For access it
// returns the report, which is never stored.
func (c *CDP) VerifyRequest(ctx context.Context, id, method string) (*PrivacyRequest, *AccessReport, error) {
	if method == "" || len(method) > 200 {
		return nil, nil, fmt.Errorf("%w: verification needs a method (at most 200 bytes), e.g. \"email round-trip\"", ErrInvalidInput)
	}
	r, err := c.Request(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !r.CanVerify() {
		return r, nil, fmt.Errorf("%w: request %s is %s, not received", ErrInvalidInput, id, r.Status)
	}
	c.addStep(r, StatusVerified, "verified: "+method)
	c.addStep(r, StatusInProgress, "")
	return c.carryOut(ctx, r)
}

// carryOut does what a verified request asks. The request is written once
// it is done (and, for a deletion, in the erase transaction): a crash
// before leaves it as it was (received, or not recorded for HandleRequest),
// with nothing done.
func (c *CDP) carryOut(ctx context.Context, r *PrivacyRequest) (*PrivacyRequest, *AccessReport, error) {
	ik, err := r.identifierKey()
	if err != nil {
		return r, nil, c.finish(ctx, r, nil, err)
	}
	switch r.Type {
	case RequestAccess:
		rep, err := c.access(ctx, ik)
		if errors.Is(err, ErrProfileNotFound) {
			// No one holds the identifier: the answer to the request is
			// that nothing is held, so it completes with an empty report.
			// Someone never seen and someone deleted get the same report
			// (and the same request record), so neither says the person
			// ever existed; only the audit log's deletion certificate
			// does, by keyed hash.
			rep, err = c.emptyAccess(ctx)
		}
		if err != nil {
			return r, nil, c.finish(ctx, r, nil, err)
		}
		result := map[string]any{"profiles": 0, "events": 0, "exports": len(rep.Exports)}
		if rep.Person != nil {
			result["profiles"], result["events"] = len(rep.Person.Profiles), rep.Person.EventCount
		}
		return r, &rep, c.finish(ctx, r, result, nil)
	case RequestDelete, RequestSuppressWithDelete:
		cert, err := c.eraseRequest(ctx, r)
		if err != nil && r.Erasure != nil {
			// Erased, but a later step failed: the journal stays, and the
			// next Open finishes the deletion.
			return r, nil, err
		}
		return r, nil, c.finish(ctx, r, cert, err)
	default: // suppress, unsuppress
		err := c.setSuppressed(ctx, [][]byte{ik}, r.Type == RequestSuppress)
		return r, nil, c.finish(ctx, r, map[string]any{"identifier_hash": r.IdentifierHash}, err)
	}
}

// RejectRequest closes a request that was not carried out (identity not
// verified, manifestly unfounded, ...), with the reason recorded.
func (c *CDP) RejectRequest(ctx context.Context, id, reason string) (*PrivacyRequest, error) {
	if reason == "" || len(reason) > 500 {
		return nil, fmt.Errorf("%w: a rejection needs a reason (at most 500 bytes)", ErrInvalidInput)
	}
	r, err := c.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	if !r.CanReject() {
		return r, fmt.Errorf("%w: request %s is %s; only a request not yet carried out can be rejected", ErrInvalidInput, id, r.Status)
	}
	c.addStep(r, StatusRejected, reason)
	if err := c.putRequest(ctx, r); err != nil {
		return nil, err
	}
	return r, c.record(ctx, "privacy.request", map[string]any{"request": r.ID, "type": r.Type, "regulation": r.Regulation,
		"status": r.Status, "identifier_hash": r.IdentifierHash})
}

func (c *CDP) finish(ctx context.Context, r *PrivacyRequest, result any, err error) error {
	r.Erasure = nil
	if cert, ok := result.(DeletionCertificate); ok && err == nil {
		r.RotationDue = cert.KEKRotationDue
	}
	if err != nil {
		c.addStep(r, StatusRejected, rejectionNote(err))
	} else {
		r.Result, _ = json.Marshal(result)
		c.addStep(r, StatusCompleted, "")
	}
	if perr := c.putRequest(ctx, r); perr != nil {
		return errors.Join(err, perr)
	}
	if _, ok := result.(DeletionCertificate); ok && err == nil {
		return nil // the certificate on the audit log records the request
	}
	if aerr := c.record(ctx, "privacy.request", map[string]any{"request": r.ID, "type": r.Type, "regulation": r.Regulation,
		"status": r.Status, "identifier_hash": r.IdentifierHash}); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// rejectionNote names why without personal data.
func rejectionNote(err error) string {
	if errors.Is(err, ErrProfileNotFound) {
		return "no person holds this identifier"
	}
	return "failed: see the server log"
}

// setSuppressed adds or lifts the suppression of identifiers (their
// identifier index keys). It runs on the committer, which owns the
// suppression set.
func (c *CDP) setSuppressed(ctx context.Context, keys [][]byte, on bool) error {
	return c.runOp(ctx, func(tx *store.Txn) error {
		for _, ik := range keys {
			sk := store.SuppressedKey(ik[len(store.PrefixIdentifier):])
			if on {
				if err := tx.Set(sk, []byte(`{}`)); err != nil {
					return err
				}
				c.suppressed[string(ik)] = true
				continue
			}
			if err := tx.Delete(sk); err != nil {
				return err
			}
			delete(c.suppressed, string(ik))
		}
		return nil
	})
}

// Requests lists privacy requests, newest first; overdue keeps only open
// requests past their due date.
func (c *CDP) Requests(ctx context.Context, overdue bool) ([]*PrivacyRequest, error) {
	now := c.now()
	out := []*PrivacyRequest{}
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixRequest), store.ScanOptions{}, func(_, v []byte) error {
			r, err := decodeRequest(v)
			if err != nil {
				return err
			}
			if !overdue || r.Overdue(now) {
				out = append(out, r)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ReceivedAt.After(out[j].ReceivedAt) })
	return out, err
}

// Request returns one privacy request.
func (c *CDP) Request(ctx context.Context, id string) (*PrivacyRequest, error) {
	var r PrivacyRequest
	err := c.store.View(ctx, func(tx *store.Txn) error {
		v, err := tx.Get(requestKey(id))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", id, ErrRequestNotFound)
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(v, &r)
	})
	return &r, err
}

// ExtendRequest extends an open request's deadline once, with a recorded
// reason: by two months under the GDPR (Art. 12(3)), by 45 days under the
// CCPA.
func (c *CDP) ExtendRequest(ctx context.Context, id, reason string) (*PrivacyRequest, error) {
	if reason == "" || len(reason) > 500 {
		return nil, fmt.Errorf("%w: an extension needs a reason (at most 500 bytes)", ErrInvalidInput)
	}
	r, err := c.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	if !r.open() {
		return nil, fmt.Errorf("%w: request %s is %s", ErrInvalidInput, id, r.Status)
	}
	if r.extended() {
		return nil, fmt.Errorf("%w: request %s was extended already", ErrInvalidInput, id)
	}
	months, days, _ := r.extension()
	r.DueAt = r.DueAt.AddDate(0, months, days)
	r.History = append(r.History, RequestStep{At: c.now().UTC(), Status: "extended", Note: reason})
	if err := c.putRequest(ctx, r); err != nil {
		return nil, err
	}
	return r, c.record(ctx, "privacy.extend", map[string]any{"request": r.ID, "due_at": r.DueAt})
}
