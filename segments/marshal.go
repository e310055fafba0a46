package segments

import (
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"
)

// MarshalJSON writes the canonical JSON form: keys in a fixed order (name,
// description, purpose, where, splits; an operator before its modifiers;
// comparisons in operator order; property tests by path), no insignificant
// whitespace, times in UTC. Parse reads it back to an equal Definition, and
// equal Definitions marshal to equal bytes. It never fails: a malformed
// Definition built in Go is written as is, so that Compile reports it at its
// path.
func (d *Definition) MarshalJSON() ([]byte, error) {
	if d == nil {
		return []byte("null"), nil
	}
	var w jsonWriter
	w.open('{')
	w.key("name")
	w.str(d.Name)
	if d.Description != "" {
		w.key("description")
		w.str(d.Description)
	}
	w.key("purpose")
	w.str(d.Purpose)
	w.key("where")
	w.cond(&d.Where)
	if len(d.Splits) > 0 {
		w.key("splits")
		w.splits(d.Splits)
	}
	w.close('}')
	return w.b, nil
}

// UnmarshalJSON parses a definition structurally (ParseOptions.Structural):
// whether its purpose and computed names are known is checked by Compile.
func (d *Definition) UnmarshalJSON(data []byte) error {
	v, err := Parse(data, ParseOptions{Structural: true})
	if err != nil {
		return err
	}
	*d = *v
	return nil
}

// jsonWriter writes compact JSON, tracking commas.
type jsonWriter struct {
	b     []byte
	first []bool
}

func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.first = append(w.first, true)
}

func (w *jsonWriter) close(c byte) {
	w.b = append(w.b, c)
	w.first = w.first[:len(w.first)-1]
}

func (w *jsonWriter) sep() {
	i := len(w.first) - 1
	if w.first[i] {
		w.first[i] = false
		return
	}
	w.b = append(w.b, ',')
}

func (w *jsonWriter) key(k string) {
	w.sep()
	w.str(k)
	w.b = append(w.b, ':')
}

func (w *jsonWriter) str(s string) { w.b = appendString(w.b, s) }

// value writes a comparison operand; what is not JSON becomes null, which
// validation then rejects.
func (w *jsonWriter) value(v any) {
	switch x := v.(type) {
	case string:
		w.str(x)
		return
	case []any:
		w.open('[')
		for _, e := range x {
			w.sep()
			w.value(e)
		}
		w.close(']')
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	w.b = append(w.b, b...)
}

// appendString appends s as a JSON string without HTML escaping; invalid
// UTF-8 becomes U+FFFD, as with encoding/json.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func (w *jsonWriter) cond(c *Condition) {
	w.open('{')
	if c.All != nil {
		w.key("all")
		w.condList(c.All)
	}
	if c.Any != nil {
		w.key("any")
		w.condList(c.Any)
	}
	if c.Not != nil {
		w.key("not")
		w.cond(c.Not)
	}
	if c.Trait != "" {
		w.key("trait")
		w.str(c.Trait)
	}
	if c.Computed != "" {
		w.key("computed")
		w.str(c.Computed)
	}
	w.comparisons(c.Compare)
	if c.Event != nil {
		w.event(c.Event)
	}
	if c.Top != nil {
		w.key("top")
		w.rank(c.Top)
	}
	if c.Bottom != nil {
		w.key("bottom")
		w.rank(c.Bottom)
	}
	if c.InSegment != "" {
		w.key("in_segment")
		w.str(c.InSegment)
	}
	w.close('}')
}

func (w *jsonWriter) condList(list []Condition) {
	w.open('[')
	for i := range list {
		w.sep()
		w.cond(&list[i])
	}
	w.close(']')
}

// comparisons writes comparisons as keys of the current object, in
// canonical order (unknown operators last, as written).
func (w *jsonWriter) comparisons(cmps []Comparison) {
	sorted := slices.Clone(cmps)
	slices.SortStableFunc(sorted, func(a, b Comparison) int {
		ra, rb := cmpRank(a.Op), cmpRank(b.Op)
		if ra < 0 {
			ra = 99
		}
		if rb < 0 {
			rb = 99
		}
		return ra - rb
	})
	for _, c := range sorted {
		w.key(string(c.Op))
		w.value(c.Value)
	}
}

func (w *jsonWriter) event(e *EventCondition) {
	w.key("event")
	w.str(e.Name)
	if !e.Within.IsZero() {
		w.key("within")
		w.str(e.Within.String())
	}
	if !e.Before.IsZero() {
		w.key("before")
		w.str(e.Before.String())
	}
	if e.After != nil {
		w.key("after")
		w.str(e.After.String())
	}
	if e.Where != nil {
		w.key("where")
		w.filter(e.Where)
	}
	if a := e.Aggregate; a != nil {
		w.key(string(a.Func))
		w.open('{')
		if a.Property != "" {
			w.key("property")
			w.str(a.Property)
		}
		w.comparisons(a.Compare)
		w.close('}')
	}
	if e.First != nil {
		w.key("first")
		w.recency(e.First)
	}
	if e.Last != nil {
		w.key("last")
		w.recency(e.Last)
	}
}

func (w *jsonWriter) recency(r *Recency) {
	w.open('{')
	if !r.OlderThan.IsZero() {
		w.key("older_than")
		w.str(r.OlderThan.String())
	}
	if !r.NewerThan.IsZero() {
		w.key("newer_than")
		w.str(r.NewerThan.String())
	}
	w.close('}')
}

func (w *jsonWriter) rank(r *Rank) {
	w.open('{')
	w.key("percent")
	w.value(r.Percent)
	w.key("of")
	w.str(r.Of)
	w.close('}')
}

func (w *jsonWriter) filter(f *PropertyFilter) {
	w.open('{')
	props := slices.Clone(f.Props)
	slices.SortStableFunc(props, func(a, b PropertyTest) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	for _, t := range props {
		w.key(t.Path)
		w.open('{')
		w.comparisons(t.Compare)
		w.close('}')
	}
	if f.All != nil {
		w.key("all")
		w.filterList(f.All)
	}
	if f.Any != nil {
		w.key("any")
		w.filterList(f.Any)
	}
	if f.Not != nil {
		w.key("not")
		w.filter(f.Not)
	}
	w.close('}')
}

func (w *jsonWriter) filterList(list []PropertyFilter) {
	w.open('[')
	for i := range list {
		w.sep()
		w.filter(&list[i])
	}
	w.close(']')
}

// String returns the canonical text of the instant: a duration (30d) or an
// RFC 3339 time in UTC. An Instant with both set yields text that does not
// parse, so that validation rejects it.
func (i *Instant) String() string {
	switch {
	case !i.Ago.IsZero() && !i.Time.IsZero():
		return i.Time.UTC().Format(time.RFC3339Nano) + "|" + i.Ago.String()
	case !i.Ago.IsZero():
		return i.Ago.String()
	}
	return i.Time.UTC().Format(time.RFC3339Nano)
}
