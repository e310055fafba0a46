package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// An observation list (o/<pid>) holds every observation touching pid
// inline, one entry after another:
//
//	hash of the node set (16) | order key (24) | node count (2) | nodes (16 each)
//
// Inline because every write is a store entry, and the committer's store
// entries are what the write path pays for per event: a new observation of
// k nodes is k list writes, where a record per node plus a list of hashes
// was 2k, and a replay reads one value per node instead of one per
// observation and node.
const obsHeader = 16 + 24 + 2

// obsEntry is one entry of a list; its slices point into the list.
type obsEntry struct {
	raw   []byte // the whole entry, as stored
	hash  []byte
	key   []byte // identity.ObsKey bytes
	nodes []byte // 16 bytes each
}

func (e obsEntry) node(i int) uuid.UUID { return uuid.UUID(e.nodes[16*i : 16*i+16]) }

func (e obsEntry) count() int { return len(e.nodes) / 16 }

// walkObs calls fn for each entry of list, in order, until fn returns false.
func walkObs(list []byte, fn func(e obsEntry) bool) error {
	for len(list) > 0 {
		if len(list) < obsHeader {
			return fmt.Errorf("observation list: %w (truncated entry)", ErrCorrupt)
		}
		n := int(binary.BigEndian.Uint16(list[40:42]))
		end := obsHeader + 16*n
		if n == 0 || len(list) < end {
			return fmt.Errorf("observation list: %w (entry of %d nodes in %d bytes)", ErrCorrupt, n, len(list))
		}
		if !fn(obsEntry{raw: list[:end], hash: list[:16], key: list[16:40], nodes: list[obsHeader:end]}) {
			return nil
		}
		list = list[end:]
	}
	return nil
}

// findObs returns the entry of list with hash h.
func findObs(list, h []byte) (obsEntry, bool, error) {
	var found obsEntry
	ok := false
	err := walkObs(list, func(e obsEntry) bool {
		if bytes.Equal(e.hash, h) {
			found, ok = e, true
		}
		return !ok
	})
	return found, ok, err
}

// appendObsEntry appends one entry to b.
func appendObsEntry(b, h []byte, key identity.ObsKey, nodes []uuid.UUID) []byte {
	b = append(b, h...)
	b = append(b, key.Bytes()...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(nodes)))
	for _, n := range nodes {
		b = append(b, n[:]...)
	}
	return b
}

// putObs returns a new list: list with the entry of hash h replaced by
// (key, nodes), or that entry appended. list itself is not modified.
func putObs(list, h []byte, key identity.ObsKey, nodes []uuid.UUID) ([]byte, error) {
	out := make([]byte, 0, len(list)+obsHeader+16*len(nodes))
	replaced := false
	err := walkObs(list, func(e obsEntry) bool {
		if bytes.Equal(e.hash, h) {
			out = appendObsEntry(out, h, key, nodes)
			replaced = true
		} else {
			out = append(out, e.raw...)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if !replaced {
		out = appendObsEntry(out, h, key, nodes)
	}
	return out, nil
}

// filterObs returns list without the entries for which drop is true (nil
// when none is left), and how many it dropped.
func filterObs(list []byte, drop func(e obsEntry) bool) ([]byte, int, error) {
	var out []byte
	n := 0
	err := walkObs(list, func(e obsEntry) bool {
		if drop(e) {
			n++
			return true
		}
		out = append(out, e.raw...)
		return true
	})
	return out, n, err
}

// obsPIDs is every profile id an observation list names: its own (from
// the key) and the nodes of its entries.
func obsPIDs(k, v []byte) []uuid.UUID {
	out := pidAt(k, len(store.PrefixObs))
	_ = walkObs(v, func(e obsEntry) bool {
		for i := range e.count() {
			if n := e.node(i); len(out) == 0 || n != out[0] {
				out = append(out, n)
			}
		}
		return true
	})
	return out
}

// legacyObsPIDs is obsPIDs for schema version 1's g/ records: the list
// names its own pid, an observation record its nodes too.
func legacyObsPIDs(k, v []byte) []uuid.UUID {
	out := pidAt(k, len(store.PrefixObsLegacy))
	if len(k) > len(store.PrefixObsLegacy)+16 {
		for j := 24; j+16 <= len(v); j += 16 {
			out = append(out, uuid.UUID(v[j:j+16]))
		}
	}
	return out
}

// upgradeObservations converts schema version 1's observations (g/<pid>
// lists of hashes, g/<pid>/<hash> records) into o/<pid> lists. Each node's
// new list is written in the same transaction that deletes its old list,
// so an interrupted upgrade resumes where it stopped: records left without
// a list (their deletion spans several transactions for a node with very
// many) are only deleted. drop, if set, says which profile ids are gone (a
// restore of an older backup): their lists and every entry naming them are
// left out. perTxn bounds the keys a transaction reads or deletes. It
// returns how many nodes it converted.
func upgradeObservations(ctx context.Context, st *store.Store, drop func(uuid.UUID) (bool, error), perTxn int) (int, error) {
	perTxn = max(perTxn, 1)
	prefix := []byte(store.PrefixObsLegacy)
	type node struct {
		pid  uuid.UUID
		list []byte
		recs map[string][]byte
	}
	converted := 0
	var from []byte
	for {
		var nodes []*node
		var next []byte
		keys := 0
		err := st.View(ctx, func(tx *store.Txn) error {
			return tx.Scan(prefix, store.ScanOptions{From: from}, func(k, v []byte) error {
				if len(k) != len(prefix)+16 && len(k) != len(prefix)+16+1+16 {
					return fmt.Errorf("observation key %x: %w", k, ErrCorrupt)
				}
				pid := uuid.UUID(k[len(prefix) : len(prefix)+16])
				if len(nodes) == 0 || nodes[len(nodes)-1].pid != pid {
					if keys >= perTxn {
						next = k
						return store.ErrStopScan
					}
					nodes = append(nodes, &node{pid: pid, recs: map[string][]byte{}})
				}
				n := nodes[len(nodes)-1]
				if len(k) == len(prefix)+16 {
					n.list = v
				} else {
					n.recs[string(k[len(prefix)+17:])] = v
				}
				keys++
				return nil
			})
		})
		if err != nil {
			return converted, fmt.Errorf("upgrade observations: %w", err)
		}
		if len(nodes) == 0 {
			return converted, nil
		}
		var later [][]byte // record deletions beyond this transaction's share
		err = st.Update(ctx, func(tx *store.Txn) error {
			later = later[:0]
			ops := 0
			for _, n := range nodes {
				if n.list != nil {
					if err := tx.Delete(store.LegacyObsListKey(n.pid)); err != nil {
						return err
					}
					ops++
				}
				for h := range n.recs {
					if k := store.LegacyObsKey(n.pid, []byte(h)); ops < perTxn {
						if err := tx.Delete(k); err != nil {
							return err
						}
						ops++
					} else {
						later = append(later, k)
					}
				}
				if drop != nil {
					gone, err := drop(n.pid)
					if err != nil {
						return err
					}
					if gone {
						continue
					}
				}
				list, err := convertLegacyObs(n.pid, n.list, n.recs, drop)
				if err != nil {
					return err
				}
				if len(list) > 0 {
					if err := tx.Set(store.ObsListKey(n.pid), list); err != nil {
						return err
					}
				}
			}
			return nil
		})
		for err == nil && len(later) > 0 {
			chunk := later[:min(perTxn, len(later))]
			later = later[len(chunk):]
			err = st.Update(ctx, func(tx *store.Txn) error {
				for _, k := range chunk {
					if err := tx.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return converted, fmt.Errorf("upgrade observations: %w", err)
		}
		converted += len(nodes)
		if next == nil {
			return converted, nil
		}
		from = next
	}
}

// convertLegacyObs builds pid's o/ list from its g/ list of hashes and
// records, in the list's order, without the entries naming someone drop
// says is gone. A node with records but no list (a deletion interrupted
// mid-way) gets nothing: its list was converted already.
func convertLegacyObs(pid uuid.UUID, hashes []byte, recs map[string][]byte, drop func(uuid.UUID) (bool, error)) ([]byte, error) {
	var list []byte
	for i := 0; i+16 <= len(hashes); i += 16 {
		h := hashes[i : i+16]
		rec, ok := recs[string(h)]
		if !ok {
			continue // listed, never recorded: nothing to keep
		}
		key, ok := identity.ParseObsKey(rec[:min(24, len(rec))])
		if !ok || (len(rec)-24)%16 != 0 || len(rec) == 24 {
			return nil, fmt.Errorf("observation record of %s: %w", pid, ErrCorrupt)
		}
		var nodes []uuid.UUID
		keep := true
		for j := 24; j < len(rec); j += 16 {
			p := uuid.UUID(rec[j : j+16])
			if drop != nil && p != pid {
				gone, err := drop(p)
				if err != nil {
					return nil, err
				}
				keep = keep && !gone
			}
			nodes = append(nodes, p)
		}
		if keep {
			list = appendObsEntry(list, h, key, nodes)
		}
	}
	return list, nil
}

// upgradeKeysPerTxn keeps each upgrade transaction well inside Badger's
// transaction size limits.
const upgradeKeysPerTxn = 4096

// upgrade brings a store of an older schema version to store.SchemaVersion.
// The new version is recorded first, so that an older release refuses a
// store whose upgrade was interrupted (it would misread the half-converted
// records); the conversion then runs, or resumes, while any g/ key is left
// (one seek when none is).
func (c *CDP) upgrade(ctx context.Context) error {
	from := c.store.Schema()
	if from < store.SchemaVersion {
		if err := c.store.SetSchema(ctx, store.SchemaVersion); err != nil {
			return err
		}
	}
	n, err := upgradeObservations(ctx, c.store, nil, upgradeKeysPerTxn)
	if err != nil {
		return err
	}
	if from < store.SchemaVersion || n > 0 {
		c.log.Info("store upgraded", "from_schema", from, "to_schema", store.SchemaVersion, "observation_lists", n)
	}
	return nil
}
