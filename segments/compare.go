package segments

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseTime parses an RFC 3339 time (optional fraction of up to nine
// digits; Z or ±hh:mm) without allocating.
func parseTime(s string) (sec int64, nsec int32, ok bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, 0, false
	}
	y, ok1 := atoi(s[0:4])
	mo, ok2 := atoi(s[5:7])
	d, ok3 := atoi(s[8:10])
	hh, ok4 := atoi(s[11:13])
	mm, ok5 := atoi(s[14:16])
	ss, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, 0, false
	}
	i := 19
	ns := 0
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n := i - start
		if n == 0 || n > 9 {
			return 0, 0, false
		}
		v, _ := atoi(s[start:i])
		for range 9 - n {
			v *= 10
		}
		ns = v
	}
	if i >= len(s) {
		return 0, 0, false
	}
	off := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return 0, 0, false
		}
		oh, ok1 := atoi(s[i+1 : i+3])
		om, ok2 := atoi(s[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, 0, false
		}
		off = oh*3600 + om*60
		if s[i] == '-' {
			off = -off
		}
		i += 6
	default:
		return 0, 0, false
	}
	if i != len(s) || mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || hh > 23 || mm > 59 || ss > 59 {
		return 0, 0, false
	}
	t := time.Date(y, time.Month(mo), d, hh, mm, ss, 0, time.UTC)
	return t.Unix() - int64(off), int32(ns), true
}

func atoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// toNum returns v as a number when it is one.
func toNum(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case float32:
		return float64(x), !math.IsNaN(float64(x))
	case uint64:
		return float64(x), true
	case uint:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

type litKind uint8

const (
	litNum litKind = iota
	litStr
	litBool
)

// lit is a compiled comparison operand.
type lit struct {
	kind   litKind
	num    float64
	str    string
	b      bool
	isTime bool
	sec    int64
	nsec   int32
}

func newLit(v any) lit {
	switch x := v.(type) {
	case float64:
		return lit{kind: litNum, num: x}
	case string:
		l := lit{kind: litStr, str: x}
		l.sec, l.nsec, l.isTime = parseTime(x)
		return l
	case bool:
		return lit{kind: litBool, b: x}
	}
	return lit{kind: litBool} // unreachable after validation
}

// eq reports whether v equals the operand.
func (l *lit) eq(v any) bool {
	switch l.kind {
	case litNum:
		x, ok := toNum(v)
		return ok && x == l.num
	case litStr:
		s, ok := v.(string)
		if !ok {
			return false
		}
		if s == l.str {
			return true
		}
		if l.isTime {
			if sec, nsec, ok := parseTime(s); ok {
				return sec == l.sec && nsec == l.nsec
			}
		}
		return false
	case litBool:
		b, ok := v.(bool)
		return ok && b == l.b
	}
	return false
}

// order compares v with the operand: -1, 0 or +1, and false when they are
// not comparable (different types, booleans, NaN).
func (l *lit) order(v any) (int, bool) {
	switch l.kind {
	case litNum:
		x, ok := toNum(v)
		if !ok {
			return 0, false
		}
		return cmpFloat(x, l.num), true
	case litStr:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		if l.isTime {
			if sec, nsec, ok := parseTime(s); ok {
				switch {
				case sec < l.sec || sec == l.sec && nsec < l.nsec:
					return -1, true
				case sec == l.sec && nsec == l.nsec:
					return 0, true
				}
				return 1, true
			}
		}
		return strings.Compare(s, l.str), true
	}
	return 0, false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type opcode uint8

const (
	cEq opcode = iota
	cNe
	cIn
	cGt
	cGte
	cLt
	cLte
	cExists
	cContains
)

// ccmp is a compiled comparison.
type ccmp struct {
	op     opcode
	l      lit
	list   []lit
	exists bool
}

func compileCmps(cmps []Comparison) []ccmp {
	out := make([]ccmp, 0, len(cmps))
	for _, c := range cmps {
		cc := ccmp{op: opcode(cmpRank(c.Op))}
		switch c.Op {
		case OpExists:
			cc.exists, _ = c.Value.(bool)
		case OpIn:
			a, _ := c.Value.([]any)
			for _, x := range a {
				cc.list = append(cc.list, newLit(x))
			}
		default:
			cc.l = newLit(c.Value)
		}
		out = append(out, cc)
	}
	return out
}

// test applies the comparison to a value that is present (ok) or not.
func (c *ccmp) test(v any, ok bool) bool {
	if c.op == cExists {
		return ok == c.exists
	}
	if !ok {
		return false
	}
	switch c.op {
	case cEq:
		return c.l.eq(v)
	case cNe:
		return !c.l.eq(v)
	case cIn:
		for i := range c.list {
			if c.list[i].eq(v) {
				return true
			}
		}
		return false
	case cGt, cGte, cLt, cLte:
		r, ok := c.l.order(v)
		return ok && ordered(c.op, r)
	case cContains:
		switch x := v.(type) {
		case string:
			return c.l.kind == litStr && strings.Contains(x, c.l.str)
		case []any:
			for _, e := range x {
				if c.l.eq(e) {
					return true
				}
			}
		}
	}
	return false
}

// testNum is test for a numeric value, without boxing it.
func (c *ccmp) testNum(x float64, ok bool) bool {
	if ok && math.IsNaN(x) {
		ok = false
	}
	if c.op == cExists {
		return ok == c.exists
	}
	if !ok {
		return false
	}
	switch c.op {
	case cEq:
		return c.l.kind == litNum && x == c.l.num
	case cNe:
		return !(c.l.kind == litNum && x == c.l.num)
	case cIn:
		for i := range c.list {
			if c.list[i].kind == litNum && c.list[i].num == x {
				return true
			}
		}
		return false
	case cGt, cGte, cLt, cLte:
		return c.l.kind == litNum && ordered(c.op, cmpFloat(x, c.l.num))
	}
	return false
}

func ordered(op opcode, r int) bool {
	switch op {
	case cGt:
		return r > 0
	case cGte:
		return r >= 0
	case cLt:
		return r < 0
	case cLte:
		return r <= 0
	}
	return false
}

func allTest(cmps []ccmp, v any, ok bool) bool {
	for i := range cmps {
		if !cmps[i].test(v, ok) {
			return false
		}
	}
	return true
}

func allTestNum(cmps []ccmp, x float64, ok bool) bool {
	for i := range cmps {
		if !cmps[i].testNum(x, ok) {
			return false
		}
	}
	return true
}

// tpath is a compiled dot path: the first segment, looked up by the
// caller, and the rest, walked through nested maps and arrays.
type tpath struct {
	head string
	rest []pseg
}

type pseg struct {
	key string
	idx int // the segment as an array index, -1 if not a number
}

func compilePath(s string) tpath {
	parts := strings.Split(s, ".")
	t := tpath{head: parts[0]}
	for _, p := range parts[1:] {
		idx := -1
		if n, err := strconv.Atoi(p); err == nil && n >= 0 && p == strconv.Itoa(n) {
			idx = n
		}
		t.rest = append(t.rest, pseg{key: p, idx: idx})
	}
	return t
}

// walk follows the rest of a path from v; JSON null reads as absent.
func (t *tpath) walk(v any) (any, bool) {
	for i := range t.rest {
		s := &t.rest[i]
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[s.key]; !ok {
				return nil, false
			}
		case []any:
			if s.idx < 0 || s.idx >= len(x) {
				return nil, false
			}
			v = x[s.idx]
		default:
			return nil, false
		}
	}
	return v, v != nil
}

func (t *tpath) trait(p Person) (any, bool) {
	v, ok := p.Trait(t.head)
	if !ok {
		return nil, false
	}
	return t.walk(v)
}

func (t *tpath) prop(props map[string]any) (any, bool) {
	v, ok := props[t.head]
	if !ok {
		return nil, false
	}
	return t.walk(v)
}
