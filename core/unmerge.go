package core

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
)

// Separation is an unmerge: two profiles that must never share a cluster
// again, with when and why.
type Separation struct {
	Profile uuid.UUID `json:"profile"`
	From    uuid.UUID `json:"from"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
}

// UnmergeResult says what an unmerge did.
type UnmergeResult struct {
	Profile  uuid.UUID `json:"profile"`
	From     uuid.UUID `json:"from"`
	Reason   string    `json:"reason"`
	NewRoots int       `json:"clusters_after"`
}

// Unmerge splits the profile pid back out of the cluster it was folded
// into, with its own identifiers, traits and events: it records a
// separation between pid and the profile it was merged into and re-clusters
// their component, so the merging evidence (and any later evidence linking
// the two) is refused from then on. pid is a `from` of the person's merges.
func (c *CDP) Unmerge(ctx context.Context, pid uuid.UUID, reason string) (UnmergeResult, error) {
	if reason == "" {
		return UnmergeResult{}, fmt.Errorf("%w: an unmerge needs a reason", ErrInvalidInput)
	}
	if len(reason) > 500 {
		return UnmergeResult{}, fmt.Errorf("%w: reason longer than 500 bytes", ErrInvalidInput)
	}
	var out UnmergeResult
	err := c.runOp(ctx, func(tx *store.Txn) error {
		if _, err := c.getMember(tx, pid); err != nil {
			return fmt.Errorf("unmerge %s: %w", pid, ErrProfileNotFound)
		}
		var into uuid.UUID
		js, err := c.journal(tx, pid)
		if err != nil {
			return err
		}
		for _, e := range js {
			if e.Merged && e.From == pid {
				into = e.Into
			}
		}
		if into == uuid.Nil {
			return fmt.Errorf("%w: profile %s was not folded into another profile; pass a `from` id of the person's merges", ErrInvalidInput, pid)
		}
		now := c.now().UTC()
		for _, p := range [][2]uuid.UUID{{pid, into}, {into, pid}} {
			b, err := json.Marshal(Separation{Profile: p[0], From: p[1], At: now, Reason: reason})
			if err != nil {
				return err
			}
			// The reason is free text and may name the person: sealed.
			key := store.SeparationKey(p[0], p[1])
			sealed, err := c.vault.Seal(ctx, p[0], key, b)
			if err != nil {
				return err
			}
			if err := tx.Set(key, sealed); err != nil {
				return err
			}
		}
		c.seps[pid] = append(c.seps[pid], into)
		c.seps[into] = append(c.seps[into], pid)
		var res IngestResult
		if err := c.replayComponent(tx, []uuid.UUID{pid, into}, &res, nil); err != nil {
			return err
		}
		a, err := c.getMember(tx, pid)
		if err != nil {
			return err
		}
		b, err := c.getMember(tx, into)
		if err != nil {
			return err
		}
		out = UnmergeResult{Profile: pid, From: into, Reason: reason, NewRoots: 1}
		if a.root != b.root {
			out.NewRoots = 2
		}
		return nil
	})
	if err != nil {
		return UnmergeResult{}, err
	}
	c.log.Info("profile unmerged", "profile", pid, "from", out.From)
	return out, c.record(ctx, "identity.unmerge", map[string]any{"profile": pid, "from": out.From, "people_after": out.NewRoots})
}

func (c *CDP) separationRecords(tx *store.Txn, pid uuid.UUID) ([]Separation, error) {
	var out []Separation
	err := tx.Scan(store.PIDPrefix(store.PrefixSeparation, pid), store.ScanOptions{}, func(k, v []byte) error {
		plain, err := c.vault.Unseal(context.Background(), pid, k, v)
		if err != nil {
			return fmt.Errorf("separation record: %w", err)
		}
		var s Separation
		if err := json.Unmarshal(plain, &s); err != nil {
			return fmt.Errorf("separation record: %w", err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// runOp runs fn in its own transaction on the committer goroutine, the
// single writer of identity state, and waits for it to be durable.
// ctx bounds the wait for the committer to take the op; once taken, the op
// runs to its end, and runOp waits for it whatever ctx says: returning
// early would report an op that may yet commit as failed, and let the
// caller go on (an erasure would let go of memberMu) while it runs.
func (c *CDP) runOp(ctx context.Context, fn func(tx *store.Txn) error) error {
	j := &job{op: fn, done: make(chan struct{})}
	select {
	case c.jobs <- j:
	case <-c.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-j.done
	return j.err
}
