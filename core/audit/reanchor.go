package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/custody-cdp/custody/core/store"
)

// KindReanchor is the kind of the entry Reanchor appends.
const KindReanchor = "audit.reanchor"

// ReanchorReport says what Reanchor replaced.
type ReanchorReport struct {
	// PreviousHead is the sequence number the sealed head named before (0
	// if it was missing or did not authenticate), PreviousHash its hash.
	PreviousHead uint64 `json:"previous_head_seq"`
	PreviousHash string `json:"previous_head_hash,omitempty"`
	HeadState    string `json:"previous_head"` // "matched", "ahead", "behind", "missing", "invalid"
	// ChainEnd is the last entry of the chain found in the store.
	ChainEnd uint64 `json:"chain_end_seq"`
	// Entry is the reanchor entry appended (ChainEnd+1).
	Entry Entry `json:"-"`
}

// Reanchor is the explicit, recorded answer to a legitimate restore of an
// older data backup (or a filesystem snapshot): the store's chain then ends
// before the sealed head, and Open refuses it (ErrHeadMismatch). Reanchor
// checks that the chain in st is intact from entry 1 to its end -- it
// never accepts a tampered chain --, appends an entry of kind
// KindReanchor linked to that end, naming the head it replaces (sequence
// number and hash, so the entries lost with the restore stay accounted
// for) with the caller's data merged in, and seals a new head on it.
// No Log may be open on the head file.
func Reanchor(ctx context.Context, st *store.Store, opts Options, actor string, data map[string]any) (ReanchorReport, error) {
	var rep ReanchorReport
	if st == nil {
		return rep, errors.New("audit: nil store")
	}
	if err := opts.check(); err != nil {
		return rep, err
	}
	if err := validName("actor", actor); err != nil {
		return rep, err
	}
	aead, err := newHeadAEAD(opts.Master)
	if err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	if err := os.MkdirAll(opts.HeadDir, 0o700); err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	path := filepath.Join(opts.HeadDir, HeadFile)
	abs, err := filepath.Abs(path)
	if err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	if _, busy := openHeads.LoadOrStore(abs, struct{}{}); busy {
		return rep, fmt.Errorf("audit: a log is open on %s; close it before reanchoring", abs)
	}
	defer openHeads.Delete(abs)
	if err := removeTemps(opts.HeadDir); err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	old, herr := readHead(path, aead)
	switch {
	case herr == nil:
	case errors.Is(herr, fs.ErrNotExist):
		rep.HeadState = "missing"
	case errors.Is(herr, errHeadInvalid):
		rep.HeadState = "invalid"
	default:
		return rep, fmt.Errorf("audit: reanchor: %w", herr)
	}
	var last record
	if err := st.View(ctx, func(tx *store.Txn) error {
		var n uint64
		bad, end, err := scanChain(tx, &n)
		if err != nil {
			return err
		}
		if bad != nil {
			return fmt.Errorf("%w: entry %d: %s (a broken chain is never reanchored)", bad.kind, bad.seq, bad.msg)
		}
		rep.ChainEnd = end
		if end > 0 {
			last, err = getRecord(tx, end)
		}
		return err
	}); err != nil {
		return rep, fmt.Errorf("audit: reanchor: %w", err)
	}
	if old != nil {
		rep.PreviousHead, rep.PreviousHash = old.seq, hex.EncodeToString(old.hash[:])
		switch {
		case old.seq == rep.ChainEnd && old.hash == last.hash:
			rep.HeadState = "matched"
		case old.seq > rep.ChainEnd:
			rep.HeadState = "behind" // the store is behind the head: a restore
		default:
			rep.HeadState = "ahead"
		}
	}
	merged := map[string]any{}
	for k, v := range data {
		merged[k] = v
	}
	merged["previous_head_seq"] = rep.PreviousHead
	merged["previous_head_hash"] = rep.PreviousHash
	merged["previous_head"] = rep.HeadState
	merged["chain_end_seq"] = rep.ChainEnd
	if rep.PreviousHead > rep.ChainEnd {
		merged["entries_not_in_store"] = rep.PreviousHead - rep.ChainEnd
	}
	b, err := marshalData(merged)
	if err != nil {
		return rep, err
	}
	rec := newRecord(rep.ChainEnd+1, opts.Now().UTC().UnixNano(), KindReanchor, actor, b, last.hash)
	h := &head{seq: rec.seq, hash: rec.hash, recs: []record{rec}}
	if _, err := writeHead(path, aead, h, nil, ""); err != nil {
		return rep, fmt.Errorf("audit: reanchor: %w", err)
	}
	// Like an append: the head is durable first, so a crash here leaves a
	// head whose batch Open re-applies.
	if err := st.Update(ctx, func(tx *store.Txn) error { return setAll(tx, h.recs) }); err != nil {
		return rep, fmt.Errorf("audit: reanchor: %w", err)
	}
	rep.Entry = rec.entry()
	return rep, nil
}

// DecodeEntry decodes a stored entry value (as found under a/ in a store
// or a backup) and checks its own hash. It does not check the chain.
func DecodeEntry(value []byte) (Entry, error) {
	r, err := decodeRecord(value)
	if err != nil {
		return Entry{}, err
	}
	if !r.hashOK() {
		return Entry{}, fmt.Errorf("%w: entry %d does not match its hash", ErrTampered, r.seq)
	}
	return r.entry(), nil
}
