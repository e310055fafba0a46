package core

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
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
	Merges          int `json:"merges"`
	MergesRefused   int `json:"merges_refused"`
	ConsentRecorded int `json:"consent_recorded"`
	// Suppressed counts messages dropped because they name a deleted person.
	Suppressed int `json:"suppressed"`
}

func (r *IngestResult) add(o IngestResult) {
	r.Accepted += o.Accepted
	r.Duplicates += o.Duplicates
	r.ProfilesCreated += o.ProfilesCreated
	r.Merges += o.Merges
	r.MergesRefused += o.MergesRefused
	r.ConsentRecorded += o.ConsentRecorded
	r.Suppressed += o.Suppressed
}

// prepared is a message with everything that does not need the store
// computed ahead, in the caller's goroutine, so the committer's serial work
// is only lookups, sealing and writes.
type prepared struct {
	msg      *event.Message
	payload  []byte
	mid      [16]byte // first 16 bytes of the messageId's keyed hash
	seen     uint64   // seenHash(mid)
	ids      []idRef  // strongest first
	explicit bool     // alias: an explicit merge instruction
	ts       int64
	agg      orderEvent // for the digests (aggregate.go)
}

type idRef struct {
	typ     identity.Type
	value   string // normalised
	key     []byte // i/<type>/<hmac>
	blocked bool
}

type job struct {
	// op, when set, is an identity operation (unmerge) run alone in its own
	// transaction instead of ingesting items.
	op    func(tx *store.Txn) error
	items []prepared
	gpc   bool
	bytes int
	res   IngestResult
	err   error
	done  chan struct{}
}

// Ingest stores msgs durably, resolving each to a profile. It returns when
// the whole batch is committed (or failed as a whole). The messages must
// already be validated by core/event.
func (c *CDP) Ingest(ctx context.Context, msgs []event.Message, opts ...IngestOption) (IngestResult, error) {
	if len(msgs) == 0 {
		return IngestResult{}, nil
	}
	var o ingestOptions
	for _, opt := range opts {
		opt(&o)
	}
	j := &job{items: make([]prepared, 0, len(msgs)), done: make(chan struct{}), gpc: o.gpc}
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
	p := prepared{msg: m, payload: payload, ts: m.Timestamp.UnixNano(), explicit: m.Type == event.Alias, agg: summarise(m)}
	sum := c.hasher.Sum("message_id", m.MessageID)
	copy(p.mid[:], sum)
	p.seen = seenHash(p.mid)
	seen := map[string]bool{}
	add := func(t identity.Type, v string) {
		if v == "" {
			return
		}
		n, err := c.rules.Normalize(t, v)
		if err != nil {
			return
		}
		k := store.IdentifierKey(string(t), c.hasher.Sum(string(t), n))
		if seen[string(k)] {
			return
		}
		seen[string(k)] = true
		p.ids = append(p.ids, idRef{typ: t, value: n, key: k, blocked: c.rules.Blocked(t, n)})
	}
	add(identity.UserID, m.UserID)
	add(identity.AnonymousID, m.AnonymousID)
	if m.Type == event.Alias {
		// previousId is an earlier userId or anonymousId: it names both,
		// so the result does not depend on which was seen first.
		add(identity.UserID, m.PreviousID)
		add(identity.AnonymousID, m.PreviousID)
	}
	add(identity.Email, m.TraitString("email"))
	add(identity.Phone, m.TraitString("phone"))
	for _, x := range m.ExternalIDs() {
		add(identity.Type("x:"+x.Type), x.ID)
	}
	sort.SliceStable(p.ids, func(i, j int) bool {
		return c.rules.Rule(p.ids[i].typ).Priority < c.rules.Rule(p.ids[j].typ).Priority
	})
	return p, nil
}

// inflight is a group handed to the store and not yet durable.
type inflight struct {
	st     *groupState
	writes store.Overlay
	done   chan error
}

// commitLoop is the single writer of ingested data and identity state.
// It pipelines: while group N is being written and synced by the store,
// it builds group N+1, reading N's writes through an overlay. At most one
// group is in flight while the next is built. Ops (unmerge, consent) run
// alone, after the group in flight is durable. Close stops it after the
// group in flight.
func (c *CDP) commitLoop() {
	defer c.wg.Done()
	defer close(c.stopped)
	var prev *inflight
	settle := func() {
		if prev == nil {
			return
		}
		if err := <-prev.done; err == nil {
			c.publish(context.Background(), prev.st)
		}
		prev = nil
	}
	defer settle()
	for {
		var first *job
		// The group in flight settles here, unless a job comes first (a
		// nil channel never fires: nothing in flight). Tests (holdInflight)
		// always build the next group first, the schedule this select
		// takes only sometimes.
		var done chan error
		if prev != nil && !c.holdInflight.Load() {
			done = prev.done
		}
		select {
		case first = <-c.jobs:
		case err := <-done:
			if err == nil {
				c.publish(context.Background(), prev.st)
			}
			prev = nil
			continue
		case <-c.stop:
			return
		}
		for first != nil {
			if first.op != nil {
				settle()
				first.err = c.store.Update(context.Background(), first.op)
				if first.err != nil {
					// An op may have changed committer-owned state that its
					// failed transaction did not persist: reload it.
					if err := errors.Join(c.loadSeparations(context.Background()), c.loadSuppressed(context.Background())); err != nil {
						c.log.Error("reload separations and suppressions", "err", err)
					}
				}
				close(first.done)
				break
			}
			group := []*job{first}
			n, size := len(first.items), first.bytes
			first = nil
		gather:
			for n < c.cfg.Ingest.GroupMaxMessages && size < c.cfg.Ingest.GroupMaxBytes {
				select {
				case j := <-c.jobs:
					if j.op != nil {
						first = j // run it after this group
						break gather
					}
					group = append(group, j)
					n += len(j.items)
					size += j.bytes
				default:
					break gather
				}
			}
			cur := c.commitGroup(group, n, prev, settle)
			// Keep at most one group in flight while building the next.
			settle()
			prev = cur
		}
	}
}

// commitGroup builds the group's transaction on top of prev (in flight)
// and hands it to the store; its jobs are answered when it is durable.
// It returns the in-flight group, or nil if it failed before committing.
func (c *CDP) commitGroup(group []*job, n int, prev *inflight, settle func()) *inflight {
	start := time.Now()
	// The group is not tied to any one caller's context: once accepted it
	// runs to completion so a cancelled request cannot tear it.
	ctx := context.Background()
	var overlay store.Overlay
	if prev != nil {
		overlay = prev.writes
	}
	fail := func(err error) *inflight {
		c.log.Error("ingest group failed", "messages", n, "err", err)
		for _, j := range group {
			j.err, j.res = fmt.Errorf("commit: %w", err), IngestResult{}
			close(j.done)
		}
		return nil
	}
	tx, err := c.store.Begin(ctx, overlay)
	if err != nil {
		return fail(err)
	}
	var prevState *groupState
	if prev != nil {
		prevState = prev.st
	}
	st, err := c.applyGroup(ctx, tx, group, prevState)
	if errors.Is(err, store.ErrTxnTooBig) && len(group) > 1 {
		// Too much for one transaction: let the group in flight finish,
		// then commit the halves one after the other.
		tx.Discard()
		settle()
		for _, half := range [][]*job{group[:len(group)/2], group[len(group)/2:]} {
			m := 0
			for _, j := range half {
				m += len(j.items)
			}
			if f := c.commitGroup(half, m, nil, func() {}); f != nil {
				if err := <-f.done; err == nil {
					c.publish(ctx, f.st)
				}
			}
		}
		return nil
	}
	if err != nil {
		tx.Discard()
		return fail(err)
	}
	c.metrics.buildSeconds.Observe(time.Since(start).Seconds())
	cur := &inflight{st: st, writes: tx.Writes(), done: make(chan error, 1)}
	err = tx.CommitAsync(func(err error) {
		if err == nil {
			// Before anyone is told: a caller that reads its own events
			// through a cached digest must find them there.
			c.aggs.apply(st.events, st.created)
			c.gatesCommitted(st)
			c.personal.touchEvents(st.events)
			if c.cfg.Segments.LiveDelay > 0 {
				c.live.touch(st.events)
			}
		}
		for _, j := range group {
			if err != nil {
				j.err, j.res = fmt.Errorf("commit: %w", err), IngestResult{}
			} else {
				c.metrics.messages.WithLabelValues("accepted").Add(float64(j.res.Accepted))
				c.metrics.messages.WithLabelValues("duplicate").Add(float64(j.res.Duplicates))
				// Counted here, where every ingestion path (HTTP, socket,
				// import) ends: the HTTP answer stays {"success": true} for
				// SDKs, so this counter is how the operator sees the drops.
				c.metrics.messages.WithLabelValues("suppressed").Add(float64(j.res.Suppressed))
				c.metrics.profilesCreated.Add(float64(j.res.ProfilesCreated))
				c.metrics.merges.WithLabelValues("merged").Add(float64(j.res.Merges))
				c.metrics.merges.WithLabelValues("refused").Add(float64(j.res.MergesRefused))
			}
			close(j.done)
		}
		if err != nil {
			c.log.Error("ingest group failed to commit", "messages", n, "err", err)
		}
		c.metrics.groupSeconds.Observe(time.Since(start).Seconds())
		c.metrics.groupMessages.Observe(float64(n))
		cur.done <- err
	})
	if err != nil {
		return fail(err)
	}
	return cur
}

// publish moves what a committed group learned into the committer's caches.
// Only committed state reaches the caches, which must be exact; the Bloom
// filters take keys as they are written (an extra entry only costs a read).
// A group is published after the next one was built on top of it, so until
// that one is published too the caches can be behind it: readers look in
// the group in flight first (groupState.prevSeen, prevObs).
func (c *CDP) publish(ctx context.Context, st *groupState) {
	for k, pid := range st.ids {
		c.ids.put([]byte(k), pid)
	}
	for k, key := range st.obs {
		c.obs.put([]byte(k), key)
	}
	for _, mid := range st.seen {
		c.seen.add(seenHash(mid), st.now)
	}
	if c.idFilter.full() || c.obsFilter.full() {
		if err := c.loadFilters(ctx); err != nil {
			c.log.Error("reload filters", "err", err)
		}
	}
}

// groupState is the committer's view of one group: identifiers resolved so
// far and the node records it changed. Badger transactions see their own
// writes, but caching here skips re-reading and re-unsealing.
type groupState struct {
	ids     map[string]uuid.UUID
	obs     map[string]identity.ObsKey
	records map[uuid.UUID]*nodeRecord
	dirty   map[uuid.UUID]bool
	// consents are the nodes the group recorded consent for, and
	// consentRecs the records, for the nodes it created (whose records are
	// then all here: gatecache.go writes their gate inputs through).
	consents    []uuid.UUID
	consentRecs map[uuid.UUID][]keyedConsent
	newPIDs     []uuid.UUID
	created     []uuid.UUID // nodes the group created (pooled ids too)
	// born is created as a set (see mayHave). Their cluster lists n/<pid>
	// are not written as they are born: most new nodes are merged into an
	// older one by the very message that created them, and a one-member
	// list written then deleted in the same transaction still leaves a
	// tombstone to log and compact (5.7% of ingestion's store entries).
	// The lists of the nodes still alone are written once the group is
	// resolved (writeUnlisted).
	born  map[uuid.UUID]bool
	gates []gateWrite // gate inputs of the records the group wrote
	// seen are the messageIds the group accepted (dedup.go), seenIn the
	// same as a set, and prevSeen the group in flight's, not yet in c.seen.
	seen     [][16]byte
	seenIn   map[uint64]bool
	prevSeen map[uint64]bool
	// prevObs are the order keys of the observations the group in flight
	// recorded (its obs), not yet in c.obs. They must be consulted before
	// c.obs: the group before it is published only once this group is
	// built, so c.obs can hold a key that the group in flight has since
	// moved earlier (see knownObs).
	prevObs map[string]identity.ObsKey
	now     time.Time
	pids    [][]uuid.UUID // per job, per item; uuid.Nil = duplicate
	events  []nodeEvent   // stored events, for the digests once committed
}

func newGroupState(jobs int) *groupState {
	return &groupState{
		ids:     map[string]uuid.UUID{},
		obs:     map[string]identity.ObsKey{},
		records: map[uuid.UUID]*nodeRecord{},
		dirty:   map[uuid.UUID]bool{},
		seenIn:  map[uint64]bool{},
		pids:    make([][]uuid.UUID, jobs),
		born:    map[uuid.UUID]bool{},
	}
}

func (c *CDP) applyGroup(ctx context.Context, tx *store.Txn, group []*job, prev *groupState) (*groupState, error) {
	now := c.now().UTC()
	st := newGroupState(len(group))
	st.now = now
	c.seen.expire(now)
	if prev != nil {
		st.prevSeen = prev.seenIn
		st.prevObs = prev.obs
	}
	// Pass 1: de-duplicate and resolve every message to a node.
	for gi, j := range group {
		j.res = IngestResult{}
		st.pids[gi] = make([]uuid.UUID, len(j.items))
		for ii := range j.items {
			it := &j.items[ii]
			// In this group, in the group still being committed under
			// this one, or committed within the window.
			if st.seenIn[it.seen] || st.prevSeen[it.seen] || c.seen.has(it.seen) {
				j.res.Duplicates++
				continue
			}
			if c.isSuppressed(it) {
				j.res.Suppressed++
				continue
			}
			st.seenIn[it.seen] = true
			st.seen = append(st.seen, it.mid)
			pid, err := c.resolve(tx, st, it, &j.res, now)
			if err != nil {
				return nil, err
			}
			st.pids[gi][ii] = pid
			j.res.Accepted++
		}
	}
	if err := c.writeUnlisted(tx, st); err != nil {
		return nil, err
	}
	// Data keys for new nodes are durable in the vault before anything
	// sealed with them is committed.
	if len(st.newPIDs) > 0 {
		if err := c.vault.CreateDEKs(ctx, st.newPIDs); err != nil {
			return nil, fmt.Errorf("create data keys: %w", err)
		}
	}
	// Pass 2: traits (serial: records are shared), then sealing in
	// parallel on every core, then the writes (a transaction is not safe
	// for concurrent use, and Set is cheap).
	type sealedEvent struct {
		key, val []byte
	}
	var work []*prepared
	var workPID []uuid.UUID
	for gi, j := range group {
		for ii := range j.items {
			pid := st.pids[gi][ii]
			if pid == uuid.Nil {
				continue
			}
			it := &j.items[ii]
			if len(it.msg.Traits) > 0 && (it.msg.Type == event.Identify || it.msg.Type == event.Group) {
				if err := c.applyTraits(tx, st, pid, it); err != nil {
					return nil, err
				}
			}
			work = append(work, it)
			workPID = append(workPID, pid)
		}
	}
	sealed := make([]sealedEvent, len(work))
	records := make([]*nodeRecord, 0, len(st.dirty))
	for pid := range st.dirty {
		records = append(records, st.records[pid])
	}
	sealedRecords := make([]sealedEvent, len(records))
	st.gates = make([]gateWrite, len(records))
	if err := c.parallel(len(work)+len(records), func(i int) error {
		if i < len(work) {
			key := store.EventKey(workPID[i], work[i].ts, work[i].mid)
			v, err := c.vault.Seal(ctx, workPID[i], key, work[i].payload)
			if err != nil {
				return fmt.Errorf("seal event: %w", err)
			}
			sealed[i] = sealedEvent{key, v}
			return nil
		}
		r := records[i-len(work)]
		key, v, err := c.sealRecord(ctx, r)
		sealedRecords[i-len(work)] = sealedEvent{key, v}
		// The gate input the commit will write through (gatecache.go),
		// made here, in parallel, not in the commit callback.
		st.gates[i-len(work)] = gateWrite{r.ID, gateNodeFrom(r.Traits, r.TraitTimes)}
		return err
	}); err != nil {
		return nil, err
	}
	if err := c.writeDedup(tx, st, now); err != nil {
		return nil, err
	}
	wi := 0
	for _, j := range group {
		for ii := range j.items {
			if wi >= len(work) || work[wi] != &j.items[ii] {
				continue
			}
			it := work[wi]
			// Events are never read back by the committer: kept out of
			// the overlay.
			if err := tx.SetUnread(sealed[wi].key, sealed[wi].val); err != nil {
				return nil, err
			}
			st.events = append(st.events, nodeEvent{pid: workPID[wi], ev: it.agg})
			for _, rec := range c.consentSignals(it, j.gpc, now) {
				id := c.hasher.Sum("consent", string(it.mid[:])+"|"+rec.Purpose+"|"+rec.Source)
				key, err := c.putConsent(ctx, tx, workPID[wi], rec, id)
				if err != nil {
					return nil, err
				}
				st.consents = append(st.consents, workPID[wi])
				if st.consentRecs == nil {
					st.consentRecs = map[uuid.UUID][]keyedConsent{}
				}
				st.consentRecs[workPID[wi]] = append(st.consentRecs[workPID[wi]], keyedConsent{key, rec})
				j.res.ConsentRecorded++
			}
			wi++
		}
	}
	for _, r := range sealedRecords {
		if err := tx.Set(r.key, r.val); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// resolve finds or creates the node of each of the message's identifiers,
// records what they say about each other (merging clusters as the rules
// allow), and returns the node the event is stored under: the strongest
// usable identifier's.
func (c *CDP) resolve(tx *store.Txn, st *groupState, it *prepared, res *IngestResult, now time.Time) (uuid.UUID, error) {
	var usable, junk []uuid.UUID
	hasUsable := false
	for i := range it.ids {
		hasUsable = hasUsable || !it.ids[i].blocked
	}
	for i := range it.ids {
		id := &it.ids[i]
		if id.blocked && (hasUsable || len(junk) > 0) {
			// Junk values get a node only as the home of events that carry
			// nothing else.
			continue
		}
		pid, created, err := c.node(tx, st, id, it.msg.Timestamp, now)
		if err != nil {
			return uuid.Nil, err
		}
		if created {
			res.ProfilesCreated++
		}
		if id.blocked {
			junk = append(junk, pid)
		} else {
			usable = append(usable, pid)
		}
	}
	if len(usable) >= 2 {
		if err := c.observe(tx, st, it, usable, res); err != nil {
			return uuid.Nil, err
		}
	}
	switch {
	case len(usable) > 0:
		return usable[0], nil
	case len(junk) > 0:
		// Only junk identifiers: the event is kept on the junk node, which
		// never merges with anything.
		return junk[0], nil
	}
	return uuid.Nil, fmt.Errorf("message has no identifier: %w", ErrInvalidInput)
}

// node returns the node of one identifier, creating it (own cluster, own
// data key) at first sight.
func (c *CDP) node(tx *store.Txn, st *groupState, id *idRef, seen, now time.Time) (uuid.UUID, bool, error) {
	p, err := c.lookupID(tx, st, id.key)
	if err != nil || p != uuid.Nil {
		return p, false, err
	}
	pid, pooled, err := c.pids.take()
	if err != nil {
		return uuid.Nil, false, err
	}
	if !pooled {
		st.newPIDs = append(st.newPIDs, pid)
	}
	if err := tx.Set(id.key, pid[:]); err != nil {
		return uuid.Nil, false, err
	}
	token := id.key[len(id.key)-32:]
	if err := c.setMember(tx, pid, membership{root: pid, typ: id.typ, token: token}); err != nil {
		return uuid.Nil, false, err
	}
	st.ids[string(id.key)] = pid
	c.idFilter.add(identifierHash(id.key))
	st.records[pid] = &nodeRecord{ID: pid, Type: id.typ, Value: id.value, Blocked: id.blocked, CreatedAt: now, FirstSeen: seen}
	st.dirty[pid] = true
	st.created = append(st.created, pid)
	st.born[pid] = true
	return pid, true, nil
}

// mayHave reports whether pid's record under key can exist: a node born
// in this group has nothing in the store, only what the group's own
// transaction holds, so a read that would miss is skipped. A nil group
// (an operation outside ingestion) knows of no births.
func (st *groupState) mayHave(tx *store.Txn, pid uuid.UUID, key []byte) bool {
	return st == nil || !st.born[pid] || tx.Pending(key)
}

// members returns root's cluster; rm is root's membership. A node created
// by this group that has no list yet is a cluster of its own.
func (st *groupState) members(c *CDP, tx *store.Txn, root uuid.UUID, rm membership) ([]clusterMember, error) {
	if !st.mayHave(tx, root, store.ClusterKey(root)) {
		return []clusterMember{{pid: root, token: rm.token, typ: rm.typ}}, nil
	}
	return c.getMembers(tx, root)
}

// writeUnlisted writes the one-member cluster list of every node the group
// created that is still a cluster of its own (see groupState.born).
func (c *CDP) writeUnlisted(tx *store.Txn, st *groupState) error {
	for pid := range st.born {
		if tx.Pending(store.ClusterKey(pid)) {
			continue // root of a larger cluster: persistClusters wrote it
		}
		m, err := c.getMember(tx, pid)
		if err != nil {
			return err
		}
		if m.root != pid {
			continue // merged into another node
		}
		if err := tx.Set(store.ClusterKey(pid), encodeMembers([]clusterMember{{pid: pid, token: m.token, typ: m.typ}})); err != nil {
			return err
		}
	}
	return nil
}

func (c *CDP) lookupID(tx *store.Txn, st *groupState, key []byte) (uuid.UUID, error) {
	if p, ok := st.ids[string(key)]; ok {
		return p, nil
	}
	if p, ok := c.ids.get(key); ok {
		return p, nil
	}
	if !c.idFilter.mayContain(identifierHash(key)) && !tx.Pending(key) {
		return uuid.Nil, nil // certainly new: no store read
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
	p, err := c.loadRecord(tx, st, pid)
	if err != nil {
		return err
	}
	if p.mergeTraits(traits, it.msg.Timestamp) {
		st.dirty[pid] = true
	}
	return nil
}

func (c *CDP) loadRecord(tx *store.Txn, st *groupState, pid uuid.UUID) (*nodeRecord, error) {
	if p, ok := st.records[pid]; ok {
		return p, nil
	}
	p, err := c.getRecord(context.Background(), tx, pid)
	if err != nil {
		return nil, err
	}
	st.records[pid] = p
	return p, nil
}

func (c *CDP) getRecord(ctx context.Context, tx *store.Txn, pid uuid.UUID) (*nodeRecord, error) {
	var p nodeRecord
	if err := c.readRecord(ctx, tx, pid, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// readRecord unseals a node's profile record into v (a nodeRecord, or a
// struct of the fields a reader needs).
func (c *CDP) readRecord(ctx context.Context, tx *store.Txn, pid uuid.UUID, v any) error {
	key := store.ProfileKey(pid)
	sealed, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("profile %s: %w", pid, ErrProfileNotFound)
	}
	if err != nil {
		return err
	}
	plain, err := c.vault.Unseal(ctx, pid, key, sealed)
	if err != nil {
		return fmt.Errorf("profile %s: %w", pid, err)
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("profile %s: decode: %w", pid, err)
	}
	return nil
}

func (c *CDP) putRecord(ctx context.Context, tx *store.Txn, p *nodeRecord) error {
	key, sealed, err := c.sealRecord(ctx, p)
	if err != nil {
		return err
	}
	return tx.Set(key, sealed)
}

func (c *CDP) sealRecord(ctx context.Context, p *nodeRecord) ([]byte, []byte, error) {
	plain, err := p.appendJSON(make([]byte, 0, 512))
	if err != nil {
		return nil, nil, fmt.Errorf("encode profile %s: %w", p.ID, err)
	}
	key := store.ProfileKey(p.ID)
	sealed, err := c.vault.Seal(ctx, p.ID, key, plain)
	if err != nil {
		return nil, nil, fmt.Errorf("seal profile %s: %w", p.ID, err)
	}
	return key, sealed, nil
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines and returns the
// first error. Small jobs run inline: goroutines cost more than they save.
func (c *CDP) parallel(n int, fn func(i int) error) error {
	workers := runtime.GOMAXPROCS(0)
	if n < 64 || workers < 2 {
		for i := 0; i < n; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// obsHash names an observation by its node set.
func obsHash(nodes []uuid.UUID) []byte {
	h := sha256.New()
	for _, n := range nodes {
		h.Write(n[:])
	}
	return h.Sum(nil)[:16]
}

// isSuppressed reports whether a message names a deleted person: it is
// dropped (and counted), so the person does not come back.
func (c *CDP) isSuppressed(it *prepared) bool {
	if len(c.suppressed) == 0 {
		return false
	}
	for _, id := range it.ids {
		if c.suppressed[string(id.key)] {
			return true
		}
	}
	return false
}
