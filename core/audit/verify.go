package audit

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/custody-cdp/custody/core/store"
)

// VerifyReport is the outcome of Verify. Problem never contains entry
// content, only sequence numbers and what is wrong.
type VerifyReport struct {
	// Entries is the number of entries found in the store.
	Entries uint64 `json:"entries"`
	// Head is the sequence number named by the sealed head file (0 when
	// it is missing or does not authenticate).
	Head uint64 `json:"head"`
	// Pending is the number of entries the head file holds that the store
	// does not have yet: an append interrupted by a crash, which the next
	// Open completes. They were checked against the chain. (Someone who
	// deletes exactly these entries from the store looks the same; nothing
	// is lost, since Open puts them back from the head.)
	Pending uint64 `json:"pending,omitempty"`
	// OK is true when every entry checks, every link holds and the last
	// entry is the one sealed in the head.
	OK bool `json:"ok"`
	// FirstBad is the first sequence number that cannot be trusted: the
	// first changed, missing, moved or unlinked entry, the first entry past
	// the sealed head, or the first entry missing before it. When the
	// head file is missing or forged nothing is anchored, and FirstBad
	// is 1.
	FirstBad uint64 `json:"first_bad,omitempty"`
	// Problem says what is wrong at FirstBad.
	Problem string `json:"problem,omitempty"`
}

// problem is a finding: the first bad sequence number, the sentinel it
// maps to and a description without entry content.
type problem struct {
	seq  uint64
	kind error
	msg  string
}

// Verify walks the whole log: it recomputes every entry's hash, checks
// every sequence number and link, and compares the end of the chain with
// the sealed head file. Findings are reported in the VerifyReport (OK
// false), not as an error; the error is for I/O failures. Verify runs on
// a consistent snapshot: appends wait only while it takes it.
func (l *Log) Verify(ctx context.Context) (VerifyReport, error) {
	if l.isClosed() {
		return VerifyReport{}, ErrClosed
	}
	l.ioMu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			l.ioMu.Unlock()
		}
	}
	defer unlock()
	return verify(ctx, l.st, l.aead, l.headPath, unlock)
}

// VerifyStore is Verify for a store with no open Log, e.g. one opened
// read-only by `custody audit verify`. opts.Master and opts.HeadDir are
// required; it writes nothing (a pending append is reported, not
// completed).
func VerifyStore(ctx context.Context, st *store.Store, opts Options) (VerifyReport, error) {
	if st == nil {
		return VerifyReport{}, errors.New("audit: nil store")
	}
	if err := opts.check(); err != nil {
		return VerifyReport{}, err
	}
	aead, err := newHeadAEAD(opts.Master)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("audit: %w", err)
	}
	return verify(ctx, st, aead, filepath.Join(opts.HeadDir, HeadFile), nil)
}

// verify reads the head file after the store snapshot is taken (inside the
// transaction): appends write the head before the store, so the head read
// is never older than the snapshot. release, if set, is called once both
// are taken.
func verify(ctx context.Context, st *store.Store, aead cipher.AEAD, path string, release func()) (VerifyReport, error) {
	var rep VerifyReport
	err := st.View(ctx, func(tx *store.Txn) error {
		h, herr := readHead(path, aead)
		if release != nil {
			release()
		}
		switch {
		case herr == nil:
			rep.Head = h.seq
		case errors.Is(herr, fs.ErrNotExist), errors.Is(herr, errHeadInvalid):
		default:
			return fmt.Errorf("audit: verify: %w", herr)
		}
		chain, last, err := scanChain(tx, &rep.Entries)
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		var pending []record
		var hp *problem
		switch {
		case h != nil:
			pending, hp, err = compareHead(tx, h, last)
			if err != nil {
				return fmt.Errorf("audit: verify: %w", err)
			}
		case errors.Is(herr, fs.ErrNotExist):
			if rep.Entries > 0 {
				hp = &problem{1, ErrHeadMismatch, "the head file is missing: the end of the chain is not anchored"}
			}
			// No head and no entries: a log that was never opened.
		default:
			hp = &problem{1, ErrHeadMismatch, errHeadInvalid.Error()}
		}
		p := chain
		if hp != nil && (p == nil || hp.seq < p.seq) {
			p = hp
		}
		if p != nil {
			rep.FirstBad, rep.Problem = p.seq, p.msg
			return nil
		}
		rep.OK = true
		rep.Pending = uint64(len(pending))
		return nil
	})
	if err != nil {
		return VerifyReport{}, err
	}
	return rep, nil
}

// scanChain walks every key under a/ in order and returns the first
// problem of the chain, and the largest well-formed sequence number.
func scanChain(tx *store.Txn, count *uint64) (*problem, uint64, error) {
	var bad *problem
	var last uint64
	next := uint64(1)
	var prev [hashSize]byte
	err := tx.Scan([]byte(PrefixAudit), store.ScanOptions{}, func(k, v []byte) error {
		*count++
		seq, ok := parseKey(k)
		if ok && seq > last {
			last = seq
		}
		if bad != nil {
			return nil
		}
		switch {
		case !ok:
			bad = &problem{next, ErrTampered, "a malformed key lies where this entry should be"}
		case seq == 0:
			bad = &problem{next, ErrTampered, "an entry is stored under sequence number 0"}
		case seq != next:
			bad = &problem{next, ErrTampered, fmt.Sprintf("the entry is missing (the store continues at %d)", seq)}
		default:
			r, err := decodeRecord(v)
			switch {
			case err != nil:
				bad = &problem{seq, ErrTampered, "the entry is malformed"}
			case r.seq != seq:
				bad = &problem{seq, ErrTampered, fmt.Sprintf("the entry holds sequence number %d (moved or swapped)", r.seq)}
			case !r.hashOK():
				bad = &problem{seq, ErrTampered, "the entry does not match its hash (changed)"}
			case r.prev != prev:
				bad = &problem{seq, ErrTampered, fmt.Sprintf("the entry does not link to entry %d (an entry was inserted or replaced)", seq-1)}
			default:
				prev = r.hash
				next++
			}
		}
		return nil
	})
	return bad, last, err
}

// compareHead checks the end of the store (last = largest sequence number
// in it) against the sealed head h. It returns the head's entries the
// store lacks (an interrupted append, to re-apply), or the problem found.
// It reads only the head's batch and the entry before it.
func compareHead(tx *store.Txn, h *head, last uint64) ([]record, *problem, error) {
	if h.seq == 0 {
		if last == 0 {
			return nil, nil, nil
		}
		return nil, &problem{1, ErrHeadMismatch, fmt.Sprintf(
			"the store holds entries up to %d but the sealed head is empty (entries added without the key, or the head file replaced by an older copy)", last)}, nil
	}
	first := h.first()
	for i := range h.recs {
		r := &h.recs[i]
		if r.seq > last {
			break
		}
		v, err := tx.Get(entryKey(r.seq))
		if errors.Is(err, store.ErrNotFound) {
			return nil, &problem{r.seq, ErrTampered, "the entry is missing"}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if string(v) != string(r.value) {
			return nil, &problem{r.seq, ErrHeadMismatch,
				"the entry differs from its copy sealed in the head file (the chain was rewritten up to here)"}, nil
		}
	}
	if last > h.seq {
		return nil, &problem{h.seq + 1, ErrHeadMismatch, fmt.Sprintf(
			"the store holds %d entries past the sealed head at %d (entries added without the key, or the head file replaced by an older copy)", last-h.seq, h.seq)}, nil
	}
	if last+1 < first {
		return nil, &problem{last + 1, ErrHeadMismatch, fmt.Sprintf(
			"the store ends at entry %d but the sealed head is at %d (entries removed from the end, or an older data backup restored)", last, h.seq)}, nil
	}
	if first > 1 {
		v, err := tx.Get(entryKey(first - 1))
		if errors.Is(err, store.ErrNotFound) {
			return nil, &problem{first - 1, ErrTampered, "the entry is missing"}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		r, err := decodeRecord(v)
		if err != nil || r.seq != first-1 || !r.hashOK() || r.hash != h.recs[0].prev {
			return nil, &problem{first - 1, ErrHeadMismatch,
				"the entry is not the one the sealed head's entries link to"}, nil
		}
	}
	if last >= h.seq {
		return nil, nil, nil
	}
	return h.recs[last+1-first:], nil, nil
}
