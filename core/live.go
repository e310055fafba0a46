package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

// Live membership: after every committed group, the people whose events
// arrived (and the clusters merged by them) are re-evaluated against the
// applied segments whose membership depends on the person alone
// (segments.Set.Local), through the policy gate, and their s/ records get
// entered/exited times. Segments that rank people against everyone (top,
// bottom) and the passing of time are left to the sweep (RefreshAll),
// which `custody serve` runs every segments.refresh_interval.
//
// The updater runs beside the committer, never in it: an acknowledgement
// does not wait for segment evaluation, and under load the people touched
// by many groups are evaluated once (changes are coalesced for
// segments.live_delay). Updates and refreshes of memberships are
// serialised (memberMu), so a refresh never overwrites a newer live update
// with an older view, nor the other way round.

// liveQueue collects the nodes touched since the last update.
type liveQueue struct {
	mu      sync.Mutex
	pending map[uuid.UUID]struct{}
	wake    chan struct{}
	// segments says the applied segments changed: the updater loads the
	// active memberships of the local ones (warmActive).
	segments chan struct{}
	// clusters asks the updater to load every cluster into memory again
	// (warmClusters): memory no longer holds them all.
	clusters chan struct{}
}

func newLiveQueue() *liveQueue {
	return &liveQueue{pending: map[uuid.UUID]struct{}{}, wake: make(chan struct{}, 1),
		segments: make(chan struct{}, 1), clusters: make(chan struct{}, 1)}
}

// clustersWanted asks the updater (when it runs) to load the clusters.
func (q *liveQueue) clustersWanted() {
	select {
	case q.clusters <- struct{}{}:
	default:
	}
}

// segmentsChanged tells the updater (when it runs) that a segment was
// applied or deleted.
func (q *liveQueue) segmentsChanged() {
	select {
	case q.segments <- struct{}{}:
	default:
	}
}

func (q *liveQueue) touch(evs []nodeEvent) {
	if len(evs) == 0 {
		return
	}
	q.mu.Lock()
	for _, e := range evs {
		q.pending[e.pid] = struct{}{}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *liveQueue) take() []uuid.UUID {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]uuid.UUID, 0, len(q.pending))
	for p := range q.pending {
		out = append(out, p)
	}
	// A new map, not clear: a map keeps the buckets of its largest size,
	// and clear (like every later range) walks them all. After a bulk
	// import it had millions, and emptying it was 40% of a million-profile
	// live update (docs/benchmarks.md, session 16).
	q.pending = make(map[uuid.UUID]struct{}, len(out))
	return out
}

// touchLive queues nodes for the live updater (when it runs).
func (c *CDP) touchLive(pids ...uuid.UUID) {
	if c.cfg.Segments.LiveDelay <= 0 {
		return
	}
	evs := make([]nodeEvent, len(pids))
	for i, p := range pids {
		evs[i].pid = p
	}
	c.live.touch(evs)
}

// FlushLive runs the live update for everything queued so far, now,
// instead of after segments.live_delay (tools, benchmarks, tests).
func (c *CDP) FlushLive(ctx context.Context, now time.Time) (LiveReport, error) {
	return c.UpdateMemberships(ctx, c.live.take(), now)
}

// MemberCount is the number of people recorded in a segment now (its
// active memberships): what reading an applied segment costs.
func (c *CDP) MemberCount(ctx context.Context, name string) (int, error) {
	n := 0
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return scanActive(tx, name, func(uuid.UUID) { n++ })
	})
	return n, err
}

// liveLoop is the updater goroutine; Close stops it and waits.
func (c *CDP) liveLoop() {
	defer c.wg.Done()
	// The loads below stop when Close does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// due fires segments.live_delay after the first wake since the last
	// update (nil: none pending): a busy stream touches the same people
	// again and again, and they are evaluated once. Loads asked for in
	// the meantime run at once.
	var due <-chan time.Time
	for {
		select {
		case <-c.stop:
			return
		case <-c.live.segments:
			if err := c.warmActive(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				c.log.Error("load active segment memberships", "err", err)
			}
		case <-c.live.clusters:
			if err := c.warmClusters(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				c.log.Error("load clusters into memory", "err", err)
			}
		case <-c.live.wake:
			if due == nil {
				due = time.After(c.cfg.Segments.LiveDelay.D())
			}
		case <-due:
			due = nil
			nodes := c.live.take()
			if len(nodes) == 0 {
				continue
			}
			if _, err := c.UpdateMemberships(ctx, nodes, time.Time{}); err != nil {
				if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
					c.log.Error("live segment membership update", "people", len(nodes), "err", err)
				}
			}
		}
	}
}

// LiveReport is what one live update changed. Counts only.
type LiveReport struct {
	People   int `json:"people"`
	Segments int `json:"segments"`
	Entered  int `json:"entered"`
	Exited   int `json:"exited"`
}

// localSegments are the applied segments, and the names of those the
// live update evaluates (segments.Set.Local).
func (c *CDP) localSegments(ctx context.Context) (*segments.Set, []string, error) {
	defs, err := c.Segments(ctx)
	if err != nil || len(defs) == 0 {
		return nil, nil, err
	}
	set, err := segments.NewSet(c.known(), defs...)
	if err != nil {
		return nil, nil, fmt.Errorf("live update: %w", err)
	}
	var local []string
	for _, n := range set.Names() {
		if set.Local(n) {
			local = append(local, n)
		}
	}
	return set, local, nil
}

// warmActive loads the active memberships of every local segment
// (activeset.go), so that no live update pays for the scan: the updater
// runs it when it starts and after a segment is applied or deleted. A
// newly applied segment has no records, and its scan finds none: from
// then on, what the store reports keeps its set.
func (c *CDP) warmActive(ctx context.Context) error {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	_, local, err := c.localSegments(ctx)
	if err != nil {
		return err
	}
	c.active.prepare(local)
	c.store.Settle() // the snapshot holds every change reported before prepare
	return c.store.View(ctx, func(tx *store.Txn) error {
		for _, seg := range local {
			// A set dropped since prepare (too many changes while it
			// waited) is left to the update that needs it.
			if err := c.active.load(tx, seg); err != nil && !errors.Is(err, errSetDropped) {
				return err
			}
		}
		return nil
	})
}

// UpdateMemberships re-evaluates the people of nodes against every local
// segment (segments.Set.Local) at now (zero: the clock) and records who
// entered and who left. The live updater calls it after ingestion; it is
// exported for tests and tools that need the update to have happened.
func (c *CDP) UpdateMemberships(ctx context.Context, nodes []uuid.UUID, now time.Time) (LiveReport, error) {
	var rep LiveReport
	if now.IsZero() {
		now = c.now()
	}
	now = now.UTC()
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	set, local, err := c.localSegments(ctx)
	if err != nil || len(local) == 0 {
		return rep, err
	}
	rep.Segments = len(local)
	// Before the snapshot: the sets of active memberships start keeping
	// what the store reports (activeset.go), and the people are looked up
	// in memory (clustercache.go); Settle then makes the snapshot at least
	// as new as both, so that no node of a cluster from memory is missing
	// from it.
	c.active.prepare(local)
	known, knownOrder, inMemory := c.clusters.people(nodes)
	c.store.Settle()

	type change struct {
		root uuid.UUID // the person the record is about now
		seg  string
		key  []byte
		rec  membershipRecord
		flow flowChange
	}
	var changes []change
	err = c.store.View(ctx, func(tx *store.Txn) error {
		// The people touched, by root, and the former roots among their
		// members (a merge moves memberships to the new root), from memory
		// (readRoots). What is read from the store are independent point
		// reads, most of them missing every cache: they run on every core
		// (readRoots, readNeeded).
		roots, order := known, knownOrder
		if !inMemory {
			if roots, order, err = c.readRoots(tx, nodes); err != nil {
				return err
			}
		}
		rep.People = len(order)
		run := &viewRun{c: c, ctx: ctx, tx: tx, now: now, needProps: c.needProps(set), needCtx: c.needCtx(set)}
		people := func(yield func(segments.Candidate) bool) {
			for _, r := range order {
				pv := &personView{viewRun: run, root: r, members: roots[r]}
				if !yield(segments.Candidate{Ref: r.String(), Person: pv}) {
					return
				}
			}
		}
		res, err := segments.RunLocal(ctx, set, people, gate{c: c, role: policies.RoleMarketer}, now)
		if err != nil {
			return err
		}
		// Every record the changes depend on: per segment, each root's and
		// each former root's. Whether each is active is in memory
		// (activeset.go); a record is read only where it changes.
		var keys [][]byte
		var pids []uuid.UUID
		var former []bool
		ins := make([]map[uuid.UUID]bool, len(res.Segments))
		for s, sr := range res.Segments {
			ins[s] = make(map[uuid.UUID]bool, len(sr.Members))
			for _, m := range sr.Members {
				r, err := uuid.Parse(m.Ref())
				if err != nil {
					return err
				}
				ins[s][r] = true
			}
			for _, r := range order {
				for _, p := range roots[r] {
					if p != r {
						keys, pids, former = append(keys, store.MembershipKey(sr.Name, p)), append(pids, p), append(former, true)
					}
				}
				keys, pids, former = append(keys, store.MembershipKey(sr.Name, r)), append(pids, r), append(former, false)
			}
		}
		act := make([]bool, len(keys))
		need := make([]bool, len(keys))
		per := len(keys) / max(len(res.Segments), 1) // every segment lists the same people
		for s, sr := range res.Segments {
			lo, hi := s*per, (s+1)*per
			if err := c.active.load(tx, sr.Name); err != nil {
				return err
			}
			loaded := c.active.isActive(sr.Name, pids[lo:hi], act[lo:hi])
			for i := lo; i < hi; i++ {
				switch {
				case !loaded:
					need[i] = true
				case former[i]:
					need[i] = act[i] // a former root: its record ends
				default:
					need[i] = act[i] != ins[s][pids[i]] // the root: enters or leaves
				}
			}
		}
		recs, err := c.readNeeded(tx, keys, need)
		if err != nil {
			return err
		}
		next := 0
		for s, sr := range res.Segments {
			in := ins[s]
			var others []string
			for _, r := range order {
				// Members that were roots before a merge leave; when the
				// person stays a member under their new root, that is no
				// movement (flow.go): neither counted as an exit nor as an
				// entry.
				moved := false
				for _, p := range roots[r] {
					if p == r {
						continue
					}
					key, old := keys[next], recs[next]
					next++
					if old.found && old.rec.ExitedAt == nil {
						t := now
						old.rec.ExitedAt = &t
						changes = append(changes, change{r, sr.Name, key, old.rec, flowChange{count: !in[r]}})
						rep.Exited++
						moved = true
					}
				}
				key, old, read := keys[next], recs[next], need[next]
				active := act[next]
				next++
				if read {
					// Read: the record decides (a set in memory is never
					// older than the snapshot, but the record is exact).
					active = old.found && old.rec.ExitedAt == nil
				}
				switch {
				case in[r] && !active:
					f := flowChange{count: !moved, entered: true}
					if f.count {
						if others == nil {
							if others, err = otherNames(tx, sr.Name); err != nil {
								return err
							}
						}
						if f.from, err = movedFrom(tx, others, r, now); err != nil {
							return err
						}
					}
					changes = append(changes, change{r, sr.Name, key, reentered(old.rec, old.found, now), f})
					rep.Entered++
				case !in[r] && active:
					t := now
					old.rec.ExitedAt = &t
					changes = append(changes, change{r, sr.Name, key, old.rec, flowChange{count: true}})
					rep.Exited++
				}
			}
		}
		if next != len(keys) {
			return fmt.Errorf("%d membership records read, %d used", len(keys), next)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("live update: %w", err)
	}
	if len(changes) == 0 {
		return rep, nil
	}
	if c.afterMemberRead != nil {
		c.afterMemberRead()
	}
	err = c.store.Update(ctx, func(tx *store.Txn) error {
		flow := flowDelta{}
		for _, ch := range changes {
			b, _ := json.Marshal(ch.rec)
			if err := tx.Set(ch.key, b); err != nil {
				return err
			}
			flow.add(ch.seg, now, ch.flow)
		}
		return flow.write(tx)
	})
	if err != nil {
		return rep, fmt.Errorf("live update: %w", err)
	}
	touched := make([]uuid.UUID, 0, 2*len(changes))
	for _, ch := range changes {
		touched = append(touched, ch.root, uuid.UUID(ch.key[len(ch.key)-16:]))
	}
	c.personal.touch(touched...)
	c.metrics.liveChanges.Add(float64(rep.Entered + rep.Exited))
	return rep, nil
}

// readRoots returns the roots of nodes (each once, in the order of their
// first node) with the members of each; nodes erased meanwhile are left
// out. The update takes them from memory (clusterCache.people) when every
// node's cluster is there; else all are read here from the transaction's
// snapshot, with point reads on every core, and cached: people from memory
// and from the snapshot in one update could be the same person under two
// roots, before and after a merge.
func (c *CDP) readRoots(tx *store.Txn, nodes []uuid.UUID) (map[uuid.UUID][]uuid.UUID, []uuid.UUID, error) {
	type found struct {
		root uuid.UUID
		ok   bool
	}
	of := make([]found, len(nodes))
	err := c.parallel(len(nodes), func(i int) error {
		m, err := c.getMember(tx, nodes[i])
		if errors.Is(err, store.ErrNotFound) {
			return nil // erased meanwhile
		}
		of[i] = found{m.root, true}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	roots := map[uuid.UUID][]uuid.UUID{}
	var order []uuid.UUID
	for _, f := range of {
		if _, seen := roots[f.root]; f.ok && !seen {
			roots[f.root] = nil
			order = append(order, f.root)
		}
	}
	members := make([][]uuid.UUID, len(order))
	err = c.parallel(len(order), func(i int) error {
		v, err := tx.Get(store.ClusterKey(order[i]))
		if err != nil {
			return fmt.Errorf("cluster %s: %w", order[i], err)
		}
		members[i], err = memberPIDs(v, nil) // the ids alone, as the scan reads them
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for i, r := range order {
		roots[r] = members[i]
	}
	c.clusters.fill(tx.ReadTS(), roots)
	return roots, order, nil
}

// readNeeded reads the membership records of keys where need says so, on
// every core; the others are left not found.
func (c *CDP) readNeeded(tx *store.Txn, keys [][]byte, need []bool) ([]readMembership, error) {
	var idx []int
	for i, n := range need {
		if n {
			idx = append(idx, i)
		}
	}
	out := make([]readMembership, len(keys))
	err := c.parallel(len(idx), func(j int) error {
		rec, found, err := getMembership(tx, keys[idx[j]])
		out[idx[j]] = readMembership{rec, found}
		return err
	})
	return out, err
}

// readMembership is a membership record as read, found or not.
type readMembership struct {
	rec   membershipRecord
	found bool
}

func getMembership(tx *store.Txn, key []byte) (membershipRecord, bool, error) {
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return membershipRecord{}, false, nil
	}
	if err != nil {
		return membershipRecord{}, false, err
	}
	var m membershipRecord
	if err := json.Unmarshal(v, &m); err != nil {
		return m, false, fmt.Errorf("membership record: %w", err)
	}
	return m, true, nil
}
