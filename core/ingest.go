package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// IngestResult counts what one Ingest call did.
type IngestResult struct {
	Accepted        int `json:"accepted"`
	Duplicates      int `json:"duplicates"`
	ProfilesCreated int `json:"profiles_created"`
}

func (r *IngestResult) add(o IngestResult) {
	r.Accepted += o.Accepted
	r.Duplicates += o.Duplicates
	r.ProfilesCreated += o.ProfilesCreated
}

// prepared is a message with everything that does not need the store
// computed ahead, in the caller's goroutine, so the committer's serial work
// is only lookups, sealing and writes.
type prepared struct {
	msg     *event.Message
	payload []byte
	mid     [16]byte
	dedup   []byte
	ids     []idRef
	ts      int64
}

type idRef struct {
	typ   identity.Type
	value string // normalised
	key   []byte // i/<type>/<hmac>
}

type job struct {
	items []prepared
	bytes int
	res   IngestResult
	err   error
	done  chan struct{}
}

// Ingest stores msgs durably, resolving each to a profile. It returns when
// the whole batch is committed (or failed as a whole). The messages must
// already be validated by core/event.
func (c *CDP) Ingest(ctx context.Context, msgs []event.Message) (IngestResult, error) {
	if len(msgs) == 0 {
		return IngestResult{}, nil
	}
	j := &job{items: make([]prepared, 0, len(msgs)), done: make(chan struct{})}
	for i := range msgs {
		p, err := c.prepare(&msgs[i])
		if err != nil {
			return IngestResult{}, fmt.Errorf("message %d: %w", i, err)
		}
		j.bytes += len(p.payload)
		j.items = append(j.items, p)
	}
	select {
	case c.jobs <- j:
	case <-c.stopped:
		return IngestResult{}, ErrClosed
	case <-ctx.Done():
		return IngestResult{}, ctx.Err()
	}
	select {
	case <-j.done:
		return j.res, j.err
	case <-ctx.Done():
		// The group may still commit; a retry is de-duplicated.
		return IngestResult{}, ctx.Err()
	}
}

func (c *CDP) prepare(m *event.Message) (prepared, error) {
	payload, err := m.Encode()
	if err != nil {
		return prepared{}, fmt.Errorf("encode: %w", err)
	}
	p := prepared{msg: m, payload: payload, ts: m.Timestamp.UnixNano()}
	sum := c.hasher.Sum("message_id", m.MessageID)
	copy(p.mid[:], sum)
	p.dedup = store.DedupKey(sum)
	add := func(t identity.Type, v string) {
		if v == "" {
			return
		}
		n, err := identity.Normalize(t, v)
		if err != nil {
			return
		}
		p.ids = append(p.ids, idRef{typ: t, value: n, key: store.IdentifierKey(string(t), c.hasher.Sum(string(t), n))})
	}
	// user_id first: it decides which profile a message lands on when its
	// identifiers point at different profiles.
	add(identity.UserID, m.UserID)
	add(identity.AnonymousID, m.AnonymousID)
	if m.Type == event.Alias && m.PreviousID != "" {
		// previousId is either an earlier userId or an anonymousId; the
		// identity-resolution issue turns this into a real merge.
		add(identity.AnonymousID, m.PreviousID)
	}
	return p, nil
}

// commitLoop is the single writer of ingested data. It owns resolution and
// writes; Close stops it after the group in flight.
func (c *CDP) commitLoop() {
	defer c.wg.Done()
	defer close(c.stopped)
	for {
		var first *job
		select {
		case first = <-c.jobs:
		case <-c.stop:
			return
		}
		group := []*job{first}
		n, size := len(first.items), first.bytes
	gather:
		for n < c.cfg.Ingest.GroupMaxMessages && size < c.cfg.Ingest.GroupMaxBytes {
			select {
			case j := <-c.jobs:
				group = append(group, j)
				n += len(j.items)
				size += j.bytes
			default:
				break gather
			}
		}
		c.commitGroup(group, n)
	}
}

func (c *CDP) commitGroup(group []*job, n int) {
	start := time.Now()
	// The group is not tied to any one caller's context: once accepted it
	// runs to completion so a cancelled request cannot tear it.
	ctx := context.Background()
	var st *groupState
	err := c.store.Update(ctx, func(tx *store.Txn) error {
		var err error
		st, err = c.applyGroup(ctx, tx, group)
		return err
	})
	if err == nil {
		// Only committed state reaches the committer's caches.
		for k, pid := range st.ids {
			c.ids.put([]byte(k), pid)
		}
		for k := range st.dedup {
			c.dedup.add([]byte(k)[len(store.PrefixDedup):])
		}
		if c.dedup.full() {
			if ferr := c.loadDedupFilter(ctx); ferr != nil {
				c.log.Error("reload messageId filter", "err", ferr)
			}
		}
	}
	if errors.Is(err, store.ErrTxnTooBig) && len(group) > 1 {
		// Fall back to committing each job on its own.
		for _, j := range group {
			c.commitGroup([]*job{j}, len(j.items))
		}
		return
	}
	for _, j := range group {
		if err != nil {
			j.err = fmt.Errorf("commit: %w", err)
			j.res = IngestResult{}
		} else {
			c.metrics.messages.WithLabelValues("accepted").Add(float64(j.res.Accepted))
			c.metrics.messages.WithLabelValues("duplicate").Add(float64(j.res.Duplicates))
			c.metrics.profilesCreated.Add(float64(j.res.ProfilesCreated))
		}
		close(j.done)
	}
	if err != nil {
		c.log.Error("ingest group failed", "messages", n, "err", err)
	}
	c.metrics.groupSeconds.Observe(time.Since(start).Seconds())
	c.metrics.groupMessages.Observe(float64(n))
}

// groupState is the committer's view of one group: identifiers resolved so
// far and the profiles it changed. Badger transactions see their own writes,
// but caching here skips re-reading and re-unsealing.
type groupState struct {
	ids      map[string]uuid.UUID
	profiles map[uuid.UUID]*profileRecord
	dirty    map[uuid.UUID]bool
	newPIDs  []uuid.UUID
	dedup    map[string]bool
	pids     [][]uuid.UUID // per job, per item; uuid.Nil = duplicate
}

func (c *CDP) applyGroup(ctx context.Context, tx *store.Txn, group []*job) (*groupState, error) {
	now := c.now().UTC()
	st := &groupState{
		ids:      map[string]uuid.UUID{},
		profiles: map[uuid.UUID]*profileRecord{},
		dirty:    map[uuid.UUID]bool{},
		dedup:    map[string]bool{},
		pids:     make([][]uuid.UUID, len(group)),
	}
	// Pass 1: de-duplicate and resolve every message to a profile.
	for gi, j := range group {
		j.res = IngestResult{}
		st.pids[gi] = make([]uuid.UUID, len(j.items))
		for ii := range j.items {
			it := &j.items[ii]
			dk := string(it.dedup)
			if st.dedup[dk] {
				j.res.Duplicates++
				continue
			}
			if c.dedup.mayContain(it.dedup[len(store.PrefixDedup):]) {
				seen, err := tx.Has(it.dedup)
				if err != nil {
					return nil, err
				}
				if seen {
					j.res.Duplicates++
					continue
				}
			}
			st.dedup[dk] = true
			pid, created, err := c.resolve(tx, st, it, now)
			if err != nil {
				return nil, err
			}
			if created {
				j.res.ProfilesCreated++
			}
			st.pids[gi][ii] = pid
			j.res.Accepted++
		}
	}
	// Data keys for new profiles are durable in the vault before anything
	// sealed with them is committed.
	if len(st.newPIDs) > 0 {
		if err := c.vault.CreateDEKs(ctx, st.newPIDs); err != nil {
			return nil, fmt.Errorf("create data keys: %w", err)
		}
	}
	// Pass 2: seal and write.
	ttl := c.cfg.Ingest.DedupWindow.D()
	for gi, j := range group {
		for ii := range j.items {
			pid := st.pids[gi][ii]
			if pid == uuid.Nil {
				continue
			}
			it := &j.items[ii]
			if it.msg.Type == event.Identify && len(it.msg.Traits) > 0 {
				if err := c.applyTraits(tx, st, pid, it); err != nil {
					return nil, err
				}
			}
			key := store.EventKey(pid, it.ts, it.mid)
			sealed, err := c.vault.Seal(ctx, pid, key, it.payload)
			if err != nil {
				return nil, fmt.Errorf("seal event: %w", err)
			}
			if err := tx.Set(key, sealed); err != nil {
				return nil, err
			}
			if err := tx.SetWithTTL(it.dedup, nil, ttl); err != nil {
				return nil, err
			}
		}
	}
	for pid := range st.dirty {
		p := st.profiles[pid]
		p.UpdatedAt = now
		if err := c.putProfile(ctx, tx, p); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// resolve finds or creates the profile for a message by exact match of its
// identifiers, and indexes identifiers the profile did not have yet.
func (c *CDP) resolve(tx *store.Txn, st *groupState, it *prepared, now time.Time) (uuid.UUID, bool, error) {
	found := make([]uuid.UUID, len(it.ids))
	var pid uuid.UUID
	for i, id := range it.ids {
		p, err := c.lookupID(tx, st, id.key)
		if err != nil {
			return uuid.Nil, false, err
		}
		found[i] = p
		if pid == uuid.Nil && p != uuid.Nil {
			pid = p
		}
	}
	created := false
	if pid == uuid.Nil {
		var err error
		if pid, err = uuid.NewV7(); err != nil {
			return uuid.Nil, false, err
		}
		created = true
		st.newPIDs = append(st.newPIDs, pid)
		st.profiles[pid] = &profileRecord{ID: pid, CreatedAt: now}
		st.dirty[pid] = true
	}
	for i, id := range it.ids {
		if found[i] != uuid.Nil {
			continue // known, possibly on another profile: no merge here
		}
		if err := tx.Set(id.key, pid[:]); err != nil {
			return uuid.Nil, false, err
		}
		st.ids[string(id.key)] = pid
		p, err := c.loadProfile(tx, st, pid)
		if err != nil {
			return uuid.Nil, false, err
		}
		if !p.hasIdentifier(id.typ, id.value) {
			p.Identifiers = append(p.Identifiers, identifierRecord{Type: id.typ, Value: id.value, FirstSeen: it.msg.Timestamp})
			st.dirty[pid] = true
		}
	}
	return pid, created, nil
}

func (c *CDP) lookupID(tx *store.Txn, st *groupState, key []byte) (uuid.UUID, error) {
	if p, ok := st.ids[string(key)]; ok {
		return p, nil
	}
	if p, ok := c.ids.get(key); ok {
		return p, nil
	}
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return uuid.Nil, nil
	}
	if err != nil {
		return uuid.Nil, err
	}
	pid, err := uuid.FromBytes(v)
	if err != nil {
		return uuid.Nil, fmt.Errorf("identifier index: %w", err)
	}
	st.ids[string(key)] = pid
	return pid, nil
}

func (c *CDP) applyTraits(tx *store.Txn, st *groupState, pid uuid.UUID, it *prepared) error {
	var traits map[string]json.RawMessage
	if err := json.Unmarshal(it.msg.Traits, &traits); err != nil {
		return fmt.Errorf("traits: %w", err)
	}
	p, err := c.loadProfile(tx, st, pid)
	if err != nil {
		return err
	}
	if p.mergeTraits(traits, it.msg.Timestamp) {
		st.dirty[pid] = true
	}
	return nil
}

func (c *CDP) loadProfile(tx *store.Txn, st *groupState, pid uuid.UUID) (*profileRecord, error) {
	if p, ok := st.profiles[pid]; ok {
		return p, nil
	}
	p, err := c.getProfile(context.Background(), tx, pid)
	if err != nil {
		return nil, err
	}
	st.profiles[pid] = p
	return p, nil
}

func (c *CDP) getProfile(ctx context.Context, tx *store.Txn, pid uuid.UUID) (*profileRecord, error) {
	key := store.ProfileKey(pid)
	sealed, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("profile %s: %w", pid, ErrProfileNotFound)
	}
	if err != nil {
		return nil, err
	}
	plain, err := c.vault.Unseal(ctx, pid, key, sealed)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", pid, err)
	}
	var p profileRecord
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("profile %s: decode: %w", pid, err)
	}
	return &p, nil
}

func (c *CDP) putProfile(ctx context.Context, tx *store.Txn, p *profileRecord) error {
	plain, err := json.Marshal(p)
	if err != nil {
		return err
	}
	key := store.ProfileKey(p.ID)
	sealed, err := c.vault.Seal(ctx, p.ID, key, plain)
	if err != nil {
		return fmt.Errorf("seal profile %s: %w", p.ID, err)
	}
	return tx.Set(key, sealed)
}
