package mapping

import (
	"math"
	"math/big"
	"math/bits"
	"strings"
)

// decimal is an exact number m / 10^s, kept in an int64 while it fits (the
// common case: prices and quantities) and in a big.Rat otherwise. Totals are
// summed exactly, so 3*0.1 + 3*0.2 is 0.9, not 0.9000000000000001, and the
// float64 written to JSON is the one nearest to the exact sum.
type decimal struct {
	m int64
	s int32
	r *big.Rat // non-nil: the value, m and s unused
}

const maxScale = 18

var pow10 = func() (p [maxScale + 1]int64) {
	p[0] = 1
	for i := 1; i <= maxScale; i++ {
		p[i] = p[i-1] * 10
	}
	return
}()

// parseFast reads [+-]digits[.digits] with at most 18 digits and no
// exponent. ok is false for anything else (which may still be a valid
// number for parseRat).
func parseFast(s string) (m int64, scale int32, ok bool) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 18 {
				return 0, 0, false
			}
			m = m*10 + int64(c-'0')
			if m != 0 || dot {
				digits++
			}
			if dot {
				scale++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, 0, false
		}
	}
	if !strings.ContainsAny(s, "0123456789") {
		return 0, 0, false
	}
	if neg {
		m = -m
	}
	return m, scale, true
}

func mul64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	neg := (a < 0) != (b < 0)
	hi, lo := bits.Mul64(absU(a), absU(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(lo), true
	}
	return int64(lo), true
}

func absU(a int64) uint64 {
	if a < 0 {
		return uint64(-a) // MinInt64 is never produced by parseFast
	}
	return uint64(a)
}

func (d *decimal) setOne() { *d = decimal{m: 1} }

func (d *decimal) rat() *big.Rat {
	if d.r != nil {
		return d.r
	}
	return new(big.Rat).SetFrac(big.NewInt(d.m), big.NewInt(pow10[d.s]))
}

// mulText multiplies d by the number in the cell s. tmp is scratch.
func (d *decimal) mulText(s string, tmp *big.Rat) string {
	s = strings.TrimSpace(s)
	if d.r == nil {
		if m, sc, ok := parseFast(s); ok && d.s+sc <= maxScale {
			if p, ok := mul64(d.m, m); ok {
				d.m, d.s = p, d.s+sc
				return ""
			}
		}
	}
	if reason := parseRat(tmp, s); reason != "" {
		return reason
	}
	d.r = d.rat()
	d.r.Mul(d.r, tmp)
	return ""
}

// add adds x to d.
func (d *decimal) add(x *decimal) {
	if d.r == nil && x.r == nil {
		a, b, s := d.m, x.m, d.s
		ok := true
		if x.s > s {
			a, ok = mul64(a, pow10[x.s-s])
			s = x.s
		} else if x.s < s {
			b, ok = mul64(b, pow10[s-x.s])
		}
		if ok {
			if sum := a + b; (sum > a) == (b > 0) {
				d.m, d.s = sum, s
				return
			}
		}
	}
	r := d.rat()
	d.r = r.Add(r, x.rat())
}

// float returns the float64 nearest to d.
func (d *decimal) float() float64 {
	if d.r == nil && d.m < 1<<53 && d.m > -(1<<53) {
		// Both operands are exact, so the quotient is correctly rounded.
		return float64(d.m) / float64(pow10[d.s])
	}
	f, _ := d.rat().Float64()
	return f
}
