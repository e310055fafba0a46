package demo

import (
	"strconv"
	"time"
)

// mix is the splitmix64 finalizer. It is a bijection on uint64, which the
// generator relies on to derive identifiers that are unique by construction.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// rng is a small splitmix64 generator: 8 bytes of state, so that every
// simulated person can own one and their behaviour does not depend on how
// their events interleave with anybody else's.
type rng struct{ s uint64 }

func newRNG(a, b uint64) rng { return rng{s: mix(a ^ mix(b+0x632be59bd9b4e019))} }

func (r *rng) u64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// intn returns a value in [0, n); n must be > 0.
func (r *rng) intn(n int) int { return int((r.u64() >> 1) % uint64(n)) }

// between returns a value in [lo, hi].
func (r *rng) between(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + r.intn(hi-lo+1)
}

func (r *rng) float() float64 { return float64(r.u64()>>11) / (1 << 53) }

func (r *rng) chance(p float64) bool { return r.float() < p }

// pick returns a random element.
func pick[T any](r *rng, xs []T) T { return xs[r.intn(len(xs))] }

const hexDigits = "0123456789abcdef"

// appendUUID appends a random (version 4 layout) UUID drawn from r.
func appendUUID(b []byte, r *rng) []byte {
	hi, lo := r.u64(), r.u64()
	var u [16]byte
	for i := 0; i < 8; i++ {
		u[i] = byte(hi >> (56 - 8*i))
		u[8+i] = byte(lo >> (56 - 8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

func newUUID(r *rng) string { return string(appendUUID(make([]byte, 0, 36), r)) }

func hex16(v uint64) string {
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[v&15]
		v >>= 4
	}
	return string(b[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

// tsLayout is RFC 3339 with fixed millisecond precision, so that the
// timestamps also sort as strings.
const tsLayout = "2006-01-02T15:04:05.000Z07:00"

func appendTS(b []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(b, tsLayout)
}

// appendMoney appends minor units as a decimal number with two places.
func appendMoney(b []byte, cents int64) []byte {
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	c := cents % 100
	return append(b, '.', byte('0'+c/10), byte('0'+c%10))
}

// appendJSONString appends s as a JSON string. Generated strings are valid
// UTF-8, so only quotes, backslashes and control characters need escaping.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		b = append(b, s...)
		return append(b, '"')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// enc is a minimal append-only JSON object writer; it tracks only whether a
// comma is needed before the next member.
type enc struct {
	b     []byte
	first bool
}

func (e *enc) comma() {
	if !e.first {
		e.b = append(e.b, ',')
	}
	e.first = false
}

func (e *enc) open() {
	e.b = append(e.b, '{')
	e.first = true
}

func (e *enc) close() {
	e.b = append(e.b, '}')
	e.first = false
}

func (e *enc) key(k string) {
	e.comma()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *enc) str(k, v string) {
	e.key(k)
	e.b = appendJSONString(e.b, v)
}

func (e *enc) int(k string, v int) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, int64(v), 10)
}

func (e *enc) money(k string, cents int64) {
	e.key(k)
	e.b = appendMoney(e.b, cents)
}

func (e *enc) bool(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

func (e *enc) obj(k string) {
	e.key(k)
	e.open()
}

func (e *enc) arr(k string) {
	e.key(k)
	e.b = append(e.b, '[')
	e.first = true
}

func (e *enc) endArr() {
	e.b = append(e.b, ']')
	e.first = false
}

// elem opens an object element inside an array.
func (e *enc) elem() {
	e.comma()
	e.open()
}
