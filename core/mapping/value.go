package mapping

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on numeric cells: long digit strings and huge exponents would make
// exact (big.Rat) arithmetic slow, and no price or quantity needs them.
const (
	maxNumberLen   = 64
	maxExponentAbs = 330
)

// defaultLayouts are tried in order when a time field has no layout.
var defaultLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// transform applies the string steps of a field spec to a raw text: trim,
// trim_prefix, trim_suffix (each at most once), then default if the result
// is empty.
func (f *field) transform(s string) string {
	if f.trim {
		s = strings.TrimSpace(s)
	}
	if f.trimPrefix != "" {
		s = strings.TrimPrefix(s, f.trimPrefix)
	}
	if f.trimSuffix != "" {
		s = strings.TrimSuffix(s, f.trimSuffix)
	}
	if s == "" && f.hasDflt {
		s = f.dflt
	}
	return s
}

// typed converts a non-empty text into a JSON value of the field's type. It
// returns a reason (free of the value) when the text does not fit. For type
// time, the instant is returned too. buf is reused for the result.
func (f *field) typed(s string, buf []byte) (js []byte, t time.Time, reason string) {
	switch f.typ {
	case typeInt:
		n, r := parseInt(s)
		if r != "" {
			return nil, t, r
		}
		if f.abs && n < 0 {
			if n == math.MinInt64 {
				return nil, t, "integer out of range"
			}
			n = -n
		}
		return strconv.AppendInt(buf, n, 10), t, ""
	case typeFloat:
		x, r := parseFloat(s)
		if r != "" {
			return nil, t, r
		}
		if f.abs {
			x = math.Abs(x)
		}
		return appendFloat(buf, x), t, ""
	case typeBool:
		b, ok := parseBool(s)
		if !ok {
			return nil, t, "not a boolean (expected true/false, yes/no or 1/0)"
		}
		return strconv.AppendBool(buf, b), t, ""
	case typeTime:
		t, r := f.parseTime(s)
		if r != "" {
			return nil, t, r
		}
		buf = append(buf, '"')
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		return append(buf, '"'), t, ""
	}
	if !utf8.ValidString(s) {
		return nil, t, "not valid UTF-8 (is the file UTF-8 encoded?)"
	}
	return appendString(buf, s), t, ""
}

func (f *field) parseTime(s string) (time.Time, string) {
	loc := f.loc
	if loc == nil {
		loc = time.UTC
	}
	var (
		t   time.Time
		err error
	)
	if f.layout != "" {
		t, err = time.ParseInLocation(f.layout, s, loc)
		if err != nil {
			return t, "not a time in layout " + strconv.Quote(f.layout)
		}
	} else {
		ok := false
		for _, l := range defaultLayouts {
			if t, err = time.ParseInLocation(l, s, loc); err == nil {
				ok = true
				break
			}
		}
		if !ok {
			return t, "not a time (set layout, e.g. \"2006-01-02 15:04:05\")"
		}
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return t, "time out of range"
	}
	return t, ""
}

// numberSyntax checks for a plain decimal number: optional sign, digits with
// at most one '.', optional exponent. No thousands separators, currency
// symbols, hex, Inf or NaN.
func numberSyntax(s string) string {
	if len(s) > maxNumberLen {
		return "number too long"
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits, dot := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			digits++
		} else if c == '.' && !dot {
			dot = true
		} else {
			break
		}
	}
	if digits == 0 {
		return "not a number"
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return "not a number"
		}
		if e, _ := strconv.Atoi(s[start:i]); i-start > 3 || e > maxExponentAbs {
			return "number out of range"
		}
	}
	if i != len(s) {
		return "not a number"
	}
	return ""
}

func parseInt(s string) (int64, string) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, ""
	}
	// "12.0", "1e3": integral values written as decimals (spreadsheet
	// exports) are accepted; "2.5" is not.
	if numberSyntax(s) != "" {
		return 0, "not an integer"
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, "not an integer"
	}
	if !r.IsInt() {
		return 0, "not an integer"
	}
	if !r.Num().IsInt64() {
		return 0, "integer out of range"
	}
	return r.Num().Int64(), ""
}

func parseFloat(s string) (float64, string) {
	s = strings.TrimSpace(s)
	if r := numberSyntax(s); r != "" {
		return 0, r
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, "number out of range"
	}
	return x, ""
}

// parseRat parses a number exactly, for totals.
func parseRat(dst *big.Rat, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "empty (needed for a total)"
	}
	if r := numberSyntax(s); r != "" {
		return r
	}
	if _, ok := dst.SetString(s); !ok {
		return "not a number"
	}
	return ""
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "yes", "y", "1":
		return true, true
	case "false", "f", "no", "n", "0":
		return false, true
	}
	return false, false
}

// appendFloat writes x as a JSON number, the way encoding/json does.
func appendFloat(b []byte, x float64) []byte {
	if x == 0 {
		return append(b, '0') // also turns -0 into 0
	}
	abs := math.Abs(x)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	b = strconv.AppendFloat(b, x, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString writes s (valid UTF-8) as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&0xF])
				i += size
				start = i
				continue
			}
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
