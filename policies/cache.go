package policies

import (
	"container/list"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The decision cache maps the policy-relevant part of an input to its
// decision. The key (cacheKey) holds: the action, the purpose, the
// destination's kind, region and fields (in order), the jurisdiction, the
// requester's role, gpc, restricted, the age band (under 13, 13-15, 16 and
// over, unknown), for each of the purpose and its ancestors that has a
// consent record its status, lawful basis and whether it has expired at
// now, and the objections to the purpose or an ancestor (as a set). It
// holds no timestamp, no destination name and no record of an unrelated
// purpose, so that many people share an entry. A policy may depend on
// nothing else (gate.rego says so; the property and fuzz tests check it for
// the default bundle).

// cacheKey encodes the policy-relevant part of in canonically: each string
// length-prefixed, so that no two different parts encode alike.
func cacheKey(in *Input) string {
	return string(appendCacheKey(nil, in))
}

// appendCacheKey appends in's key to b: Decide builds it in a buffer on its
// stack, and a cache hit (nearly every decision of a segment evaluation)
// allocates nothing for it.
func appendCacheKey(b []byte, in *Input) []byte {
	b = append(b, 'v', '1')
	b = appendString(b, in.Action)
	b = appendString(b, in.Purpose)
	b = appendString(b, in.Destination.Kind)
	b = appendString(b, in.Destination.Region)
	b = strconv.AppendInt(b, int64(len(in.Destination.Fields)), 10)
	for _, f := range in.Destination.Fields {
		b = appendString(b, f)
	}
	b = appendString(b, in.Subject.Jurisdiction)
	b = appendString(b, in.Requester.Role)
	b = append(b, boolByte(in.Subject.GPC), boolByte(in.Subject.Restricted), ageBand(in.Subject.Age))
	// Consent records of the purpose and its ancestors, least specific first.
	if in.Purpose != "" {
		for i := 0; ; {
			j := strings.IndexByte(in.Purpose[i:], '.')
			prefix := in.Purpose
			if j >= 0 {
				prefix = in.Purpose[:i+j]
			}
			if c, ok := in.Subject.Consents[prefix]; ok {
				b = append(b, 'c')
				b = appendString(b, prefix)
				b = appendString(b, c.Status)
				b = appendString(b, c.LawfulBasis)
				b = append(b, boolByte(expired(c, in.Now)))
			}
			if j < 0 {
				break
			}
			i += j + 1
		}
	}
	// Objections to the purpose or an ancestor, sorted and deduplicated.
	var rel []string
	for _, o := range in.Subject.Objections {
		if coversPurpose(o, in.Purpose) && !slices.Contains(rel, o) {
			rel = append(rel, o)
		}
	}
	slices.Sort(rel)
	for _, o := range rel {
		b = append(b, 'o')
		b = appendString(b, o)
	}
	return b
}

// coversPurpose reports whether o is p or an ancestor of p.
func coversPurpose(o, p string) bool {
	return o != "" && strings.HasPrefix(p, o) && (len(p) == len(o) || p[len(o)] == '.')
}

func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func boolByte(v bool) byte {
	if v {
		return 'T'
	}
	return 'F'
}

// ageBand is the age as the policies may see it: under 13, 13-15, 16 and
// over, unknown.
func ageBand(age *int) byte {
	switch {
	case age == nil:
		return 'u'
	case *age < 13:
		return 'a'
	case *age < 16:
		return 'b'
	default:
		return 'c'
	}
}

// decisionCache is a bounded LRU cache, sharded to keep lock contention
// low under many concurrent deciders.
type decisionCache struct {
	seed   maphash.Seed
	shards []cacheShard
	hits   atomic.Uint64
	misses atomic.Uint64
}

type cacheShard struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order list.List // front: most recently used
}

type cacheEntry struct {
	key string
	d   Decision
}

const maxShards = 16

func newDecisionCache(size int) *decisionCache {
	n := min(size, maxShards)
	c := &decisionCache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n)}
	for i := range c.shards {
		// Shares of size that add up to size exactly.
		c.shards[i].max = size / n
		if i < size%n {
			c.shards[i].max++
		}
		c.shards[i].items = make(map[string]*list.Element)
	}
	return c
}

func (c *decisionCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

// get looks key up; the map index with string(key) does not copy it.
func (c *decisionCache) get(key []byte) (Decision, bool) {
	s := c.shard(key)
	s.mu.Lock()
	el, ok := s.items[string(key)]
	var d Decision
	if ok {
		s.order.MoveToFront(el)
		d = el.Value.(*cacheEntry).d
	}
	s.mu.Unlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return d, ok
}

func (c *decisionCache) put(key string, d Decision) {
	s := c.shard([]byte(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[key]; ok {
		el.Value.(*cacheEntry).d = d
		s.order.MoveToFront(el)
		return
	}
	s.items[key] = s.order.PushFront(&cacheEntry{key: key, d: d})
	for s.order.Len() > s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.items, last.Value.(*cacheEntry).key)
	}
}

func (c *decisionCache) stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += s.order.Len()
		st.Capacity += s.max
		s.mu.Unlock()
	}
	return st
}
