package core

import (
	"cmp"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/custody-cdp/custody/policies"
)

// Gate classes. The policy subject of a person whose gate inputs are all
// on one node (most people) is that node's (gateNode.subject): its
// jurisdiction, whether a record came from Global Privacy Control, and
// each purpose's latest record. The decision cache (policies/cache.go)
// already shares one decision among people of equal subjects, but to find
// it each person still built their subject, had it validated and encoded
// as a key, and looked the key up under a lock: at a million profiles
// that was 0.69 s of the 2.34 s of CPU a cold cart-abandoner evaluation
// took, for a few dozen distinct decisions.
//
// So nodes of equal subjects share a class, assigned when the node's
// entry enters the node table (gateCache.put, gateCache.end), and a
// segment evaluation asks the engine once per class and request; the rest
// of the class's people read the answer from the class. The answer is
// the engine's own decision for the class's subject, kept on the engine's
// terms (policies.Engine.Revision): it is dropped when the bundle is
// reloaded, and not kept when the engine keeps no decisions.
//
// What a class is: the jurisdiction, the GPC flag, and per purpose the
// status and lawful basis of the latest record. That is all of the
// subject a decision may depend on (policies/cache.go) except the
// collection time, which no decision depends on, and expiry. A node with
// a record that expires gets no class (its people are decided one by
// one, as before): its decision changes with the clock, and expiry times
// would make a class per person. So does a node of more than
// maxClassStates purposes, and any node once maxGateClasses classes exist:
// a bound on memory, never on correctness.
//
// A class names no one: it holds no identifier, and no class is removed
// when its last node goes (there are at most maxGateClasses).

const (
	maxGateClasses = 1 << 16
	maxClassStates = 16
	// maxClassAnswers bounds the answers a class keeps per revision: one
	// per (action, purpose, role) asked, and an evaluation asks few.
	maxClassAnswers = 8
	// noClass is a node without a class; noInputsClass is the class of
	// a node with no gate inputs (noGateTraits), the same in every CDP.
	noClass       = 0
	noInputsClass = 1
)

// gateClasses interns classes for one CDP.
type gateClasses struct {
	mu   sync.Mutex
	ids  map[string]uint32
	list atomic.Pointer[[]*gateClass] // index id-1; replaced whole on growth
}

// gateClass is one class's answers.
type gateClass struct {
	answers atomic.Pointer[classAnswers]
}

// classAnswers are the decisions a class got from one revision; never
// modified once published (remember replaces them).
type classAnswers struct {
	rev  uint64
	list []classAnswer
}

type classAnswer struct {
	action, purpose, role string
	dec                   policies.Decision
}

func newGateClasses() *gateClasses {
	g := &gateClasses{ids: map[string]uint32{}}
	g.list.Store(&[]*gateClass{})
	var buf [64]byte
	key, _ := classKey(buf[:0], noGateTraits)
	if id := g.intern(key); id != noInputsClass {
		panic("gate classes: the class of no inputs is not the first")
	}
	return g
}

// classKey appends n's class key to b; false: n gets no class.
func classKey(b []byte, n *gateNode) ([]byte, bool) {
	if len(n.states) > maxClassStates {
		return b, false
	}
	var order [maxClassStates]int
	states := order[:len(n.states)]
	copy(states, n.states)
	slices.SortFunc(states, func(i, j int) int { return cmp.Compare(n.consents[i].Purpose, n.consents[j].Purpose) })
	b = appendClassString(b, n.jurisdiction)
	b = append(b, boolByte(n.gpc))
	for _, i := range states {
		r := &n.consents[i]
		if r.ExpiresAt != nil {
			return b, false
		}
		b = appendClassString(b, r.Purpose)
		b = appendClassString(b, r.Status)
		b = appendClassString(b, r.LawfulBasis)
	}
	return b, true
}

// appendClassString appends s length-prefixed, so that no two different
// sequences of strings encode alike.
func appendClassString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// intern returns key's class id, making the class if it is new and there
// is room (noClass otherwise).
func (g *gateClasses) intern(key []byte) uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := g.ids[string(key)]; ok {
		return id
	}
	old := *g.list.Load()
	if len(old) >= maxGateClasses {
		return noClass
	}
	list := append(old[:len(old):len(old)], &gateClass{})
	g.list.Store(&list)
	id := uint32(len(list))
	g.ids[string(key)] = id
	return id
}

// classify gives n its class, unless it has one. It is called before n
// is published in the table: readers see n.class only through the table,
// whose lock orders the write before their reads.
func (g *gateClasses) classify(n *gateNode) {
	if n.class != noClass {
		return
	}
	var buf [256]byte
	if key, ok := classKey(buf[:0], n); ok {
		if id := g.intern(key); id != noClass {
			n.class = id
		}
	}
}

// class returns class id's answers holder.
func (g *gateClasses) class(id uint32) *gateClass {
	list := *g.list.Load()
	if id == noClass || int(id) > len(list) {
		return nil
	}
	return list[id-1]
}

// decision returns the answer of class id under revision rev, if it has
// one. Its reasons and fields are shared: read only.
func (g *gateClasses) decision(id uint32, rev uint64, action, purpose, role string) (policies.Decision, bool) {
	c := g.class(id)
	if c == nil {
		return policies.Decision{}, false
	}
	a := c.answers.Load()
	if a == nil || a.rev != rev {
		return policies.Decision{}, false
	}
	for i := range a.list {
		if x := &a.list[i]; x.action == action && x.purpose == purpose && x.role == role {
			return x.dec, true
		}
	}
	return policies.Decision{}, false
}

// remember keeps d as class id's answer under revision rev (the caller
// read rev before asking the engine, so that an answer of a newer bundle
// is at worst filed under an older revision, where no one looks for it).
func (g *gateClasses) remember(id uint32, rev uint64, action, purpose, role string, d policies.Decision) {
	c := g.class(id)
	if c == nil {
		return
	}
	d.Reasons = slices.Clip(slices.Clone(d.Reasons))
	d.Fields = slices.Clip(slices.Clone(d.Fields))
	for {
		old := c.answers.Load()
		next := &classAnswers{rev: rev}
		if old != nil && old.rev == rev {
			keep := old.list
			if len(keep) >= maxClassAnswers {
				keep = keep[1:]
			}
			next.list = append(next.list, keep...)
		} else if old != nil && old.rev > rev {
			return // a newer bundle answered meanwhile
		}
		next.list = append(next.list, classAnswer{action, purpose, role, d})
		if c.answers.CompareAndSwap(old, next) {
			return
		}
	}
}
