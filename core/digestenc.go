package core

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// digest is one node's events in the digest form, encoded in one byte
// slice: the collector never looks inside it (a million people's digests
// as Go structs with pointers were a tenth of the heap and most of the
// collector's marking). Appending an event appends its encoding; a reader
// holding an earlier slice reads only its own length, which no later
// append writes into. Each event:
//
//	at     8 bytes, little endian: unix nanoseconds
//	name   uvarint: index into aggregates.list
//	flags  1 byte: digDisc, digRev, digID, digCats, digTouch
//	rev    8 bytes, float64 bits           if digRev
//	id     uvarint length, bytes           if digID
//	cats   uvarint n, n × (uvarint length, bytes, rev 8, items 8)   if digCats
//	touch  4 × (uvarint length, bytes)     if digTouch: source, medium, campaign, referrer
type digest []byte

const (
	digDisc = 1 << iota
	digRev
	digID
	digCats
	digTouch
)

// appendDigest appends one event to d.
func appendDigest(d digest, name uint32, e *orderEvent) digest {
	d = reserve(d, maxDigestLen(e))
	d = binary.LittleEndian.AppendUint64(d, uint64(e.at))
	d = binary.AppendUvarint(d, uint64(name))
	var flags byte
	if e.disc {
		flags |= digDisc
	}
	if e.rev != 0 {
		flags |= digRev
	}
	if x := e.x; x != nil {
		if x.id != "" {
			flags |= digID
		}
		if len(x.cats) > 0 {
			flags |= digCats
		}
		if x.touch != nil {
			flags |= digTouch
		}
	}
	d = append(d, flags)
	if flags&digRev != 0 {
		d = binary.LittleEndian.AppendUint64(d, math.Float64bits(e.rev))
	}
	if flags&digID != 0 {
		d = appendDigestText(d, e.x.id)
	}
	if flags&digCats != 0 {
		d = binary.AppendUvarint(d, uint64(len(e.x.cats)))
		for _, c := range e.x.cats {
			d = appendDigestText(d, c.cat)
			d = binary.LittleEndian.AppendUint64(d, math.Float64bits(c.rev))
			d = binary.LittleEndian.AppendUint64(d, math.Float64bits(c.items))
		}
	}
	if flags&digTouch != 0 {
		t := e.x.touch
		for _, s := range [...]string{t.source, t.medium, t.campaign, t.referrer} {
			d = appendDigestText(d, s)
		}
	}
	return d
}

// reserve makes room for n more bytes in d. A digest lives as long as its
// node, and append's doubling left a third of a million people's digests
// unused: d grows by an eighth beyond what is needed, to the allocator's
// size class (which append of a fresh slice reports as its capacity).
func reserve(d digest, n int) digest {
	if cap(d)-len(d) >= n {
		return d
	}
	grown := append(digest(nil), make(digest, len(d)+n+len(d)/8)...)
	copy(grown, d)
	return grown[:len(d)]
}

// maxDigestLen bounds the length of e's encoding (uvarints at their
// longest).
func maxDigestLen(e *orderEvent) int {
	n := 8 + binary.MaxVarintLen32 + 1 + 8
	if x := e.x; x != nil {
		n += binary.MaxVarintLen64 + len(x.id) + binary.MaxVarintLen64
		for _, c := range x.cats {
			n += binary.MaxVarintLen64 + len(c.cat) + 16
		}
		if t := x.touch; t != nil {
			n += 4*binary.MaxVarintLen64 + len(t.source) + len(t.medium) + len(t.campaign) + len(t.referrer)
		}
	}
	return n
}

func appendDigestText(d digest, s string) digest {
	d = binary.AppendUvarint(d, uint64(len(s)))
	return append(d, s...)
}

// digestIter reads a digest event by event:
//
//	for it := d.iter(); it.next(); { use it.at, it.name, ... }
//
// Texts (the order id, categories, touch fields) point into the digest's
// bytes, which are never written again once appended, so nothing is copied
// for the common event. it.extra() is valid until the next call to next.
type digestIter struct {
	d    digest
	at   int64
	rev  float64
	name uint32
	disc bool
	has  bool // the event has an id, categories or a touch
	// hasTouch: t holds the event's touch (extra points x.touch at it).
	hasTouch bool
	x        eventExtra
	t        touch
	bad      bool // the encoding ended early: a bug, never input
	// The event's categories, checked by next but decoded only by extra:
	// most readers (event times, quick numbers) never ask for them.
	cats  digest
	ncats uint64
}

func (d digest) iter() digestIter { return digestIter{d: d} }

func (it *digestIter) next() bool {
	if len(it.d) == 0 || it.bad {
		return false
	}
	if len(it.d) < 9 {
		return it.fail()
	}
	it.at = int64(binary.LittleEndian.Uint64(it.d))
	it.d = it.d[8:]
	name, n := binary.Uvarint(it.d)
	if n <= 0 || len(it.d) <= n {
		return it.fail()
	}
	it.name = uint32(name)
	flags := it.d[n]
	it.d = it.d[n+1:]
	it.disc = flags&digDisc != 0
	it.rev = 0
	if flags&digRev != 0 {
		if len(it.d) < 8 {
			return it.fail()
		}
		it.rev = math.Float64frombits(binary.LittleEndian.Uint64(it.d))
		it.d = it.d[8:]
	}
	it.has = flags&(digID|digCats|digTouch) != 0
	it.x = eventExtra{}
	it.cats, it.ncats, it.hasTouch = nil, 0, false
	if flags&digID != 0 {
		it.x.id = it.text()
	}
	if flags&digCats != 0 {
		k, n := binary.Uvarint(it.d)
		if n <= 0 || k > uint64(len(it.d)) {
			return it.fail()
		}
		it.d = it.d[n:]
		it.cats, it.ncats = it.d, k
		if it.readCats(k, false); it.bad {
			return false
		}
	}
	if flags&digTouch != 0 {
		// extra points x.touch at t: a pointer into the iterator set here
		// would make every iterator escape to the heap, and most readers
		// (event times, quick numbers) never ask for it.
		it.t = touch{source: it.text(), medium: it.text(), campaign: it.text(), referrer: it.text()}
		it.hasTouch = true
	}
	return !it.bad
}

// text reads a length-prefixed text as a string sharing the digest's bytes.
func (it *digestIter) text() string {
	k, n := binary.Uvarint(it.d)
	if n <= 0 || k > uint64(len(it.d)-n) {
		it.fail()
		return ""
	}
	b := it.d[n : n+int(k)]
	it.d = it.d[n+int(k):]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (it *digestIter) fail() bool {
	it.bad, it.d = true, nil
	return false
}

// readCats reads k category amounts, returning them when keep (else only
// checking and skipping them).
func (it *digestIter) readCats(k uint64, keep bool) []catAmount {
	var out []catAmount
	if keep {
		out = make([]catAmount, 0, k)
	}
	for range k {
		c := catAmount{cat: it.text()}
		if len(it.d) < 16 {
			it.fail()
			return nil
		}
		c.rev = math.Float64frombits(binary.LittleEndian.Uint64(it.d))
		c.items = math.Float64frombits(binary.LittleEndian.Uint64(it.d[8:]))
		it.d = it.d[16:]
		if keep {
			out = append(out, c)
		}
	}
	return out
}

// extra returns the event's order id, categories and touch, or nil.
func (it *digestIter) extra() *eventExtra {
	if !it.has {
		return nil
	}
	if it.hasTouch {
		it.x.touch = &it.t
	}
	if it.ncats > 0 && it.x.cats == nil {
		sub := digestIter{d: it.cats}
		it.x.cats = sub.readCats(it.ncats, true)
	}
	return &it.x
}
