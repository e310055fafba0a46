package segments

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits of the language.
const (
	// MaxDefinitionBytes is the largest input Parse reads.
	MaxDefinitionBytes = 1 << 20
	// MaxDepth is how deep conditions (and event filters) may nest.
	MaxDepth = 32
	// maxRawDepth bounds the nesting of the raw JSON/YAML value.
	maxRawDepth = 4*MaxDepth + 8
	// maxErrors bounds the error list.
	maxErrors = 50
	// maxList bounds "in" arrays.
	maxList = 10000
	// maxYAMLNodes bounds YAML alias expansion.
	maxYAMLNodes = 100000
)

// ParseOptions configure Parse.
type ParseOptions struct {
	// KnownNames are the purposes and computed values the definition may
	// use; the zero value means the built-in taxonomy and ComputedNames.
	KnownNames
	// Structural checks everything but whether the purpose and computed
	// names are known (they must still be well formed). Compile and NewSet
	// check them; templates and UnmarshalJSON parse structurally.
	Structural bool
}

// Parse reads a definition from JSON or, when the input does not start
// with "{" (or is not valid JSON), YAML, and validates it. The error is an
// ErrorList holding every problem found, each at its exact path.
func Parse(data []byte, opts ParseOptions) (*Definition, error) {
	v, e := decode(data)
	if e != nil {
		return nil, ErrorList{e}
	}
	p := &parser{known: opts.KnownNames, check: !opts.Structural}
	d := p.definition(v)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return d, nil
}

// decode turns JSON or YAML into plain values: map[string]any, []any,
// string, float64 (finite), bool and nil.
func decode(data []byte) (any, *Error) {
	if len(data) > MaxDefinitionBytes {
		return nil, &Error{Message: "definition larger than " + strconv.Itoa(MaxDefinitionBytes) + " bytes", Err: ErrSyntax}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, &Error{Message: "empty definition", Err: ErrSyntax}
	}
	if !utf8.Valid(trimmed) {
		return nil, &Error{Message: "definition is not valid UTF-8", Err: ErrSyntax}
	}
	if trimmed[0] == '{' {
		v, jerr := decodeJSON(data) // offsets count from the start of the input
		if jerr == nil {
			return v, nil
		}
		if jerr.Message != "" && strings.HasPrefix(jerr.Message, "invalid JSON") {
			// A YAML flow mapping also starts with "{".
			if v, yerr := decodeYAML(trimmed); yerr == nil {
				return v, nil
			}
		}
		return nil, jerr
	}
	return decodeYAML(trimmed)
}

func decodeJSON(data []byte) (any, *Error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, e := jsonValue(dec, "", 0)
	if e != nil {
		return nil, e
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{Message: "unexpected data after the definition", Err: ErrSyntax}
	}
	return v, nil
}

func jsonSyntax(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &Error{Message: "invalid JSON at offset " + strconv.FormatInt(se.Offset, 10) + ": " + clipMessage(se.Error()), Err: ErrSyntax}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Message: "invalid JSON: unexpected end of input", Err: ErrSyntax}
	}
	return &Error{Message: "invalid JSON: " + clipMessage(err.Error()), Err: ErrSyntax}
}

func jsonValue(dec *json.Decoder, path string, depth int) (any, *Error) {
	if depth > maxRawDepth {
		return nil, &Error{Path: path, Message: "nested too deep", Err: ErrSyntax}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonSyntax(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonSyntax(err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, &Error{Path: path, Message: "invalid JSON: object key is not a string", Err: ErrSyntax}
				}
				kp := pathKey(path, k)
				if _, dup := m[k]; dup {
					return nil, &Error{Path: kp, Message: "duplicate key", Err: ErrSyntax}
				}
				v, e := jsonValue(dec, kp, depth+1)
				if e != nil {
					return nil, e
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonSyntax(err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, e := jsonValue(dec, pathIndex(path, len(a)), depth+1)
				if e != nil {
					return nil, e
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonSyntax(err)
			}
			return a, nil
		}
		return nil, &Error{Path: path, Message: "invalid JSON", Err: ErrSyntax}
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, &Error{Path: path, Message: "number out of range", Err: ErrSyntax}
		}
		return f, nil
	case string, bool, nil:
		return t, nil
	}
	return nil, &Error{Path: path, Message: "invalid JSON", Err: ErrSyntax}
}

func decodeYAML(data []byte) (any, *Error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, &Error{Message: "invalid YAML: " + clipMessage(strings.TrimPrefix(err.Error(), "yaml: ")), Err: ErrSyntax}
	}
	if n.Kind == 0 || (n.Kind == yaml.DocumentNode && len(n.Content) == 0) {
		return nil, &Error{Message: "empty definition", Err: ErrSyntax}
	}
	budget := maxYAMLNodes
	return yamlValue(&n, "", 0, &budget)
}

func yamlValue(n *yaml.Node, path string, depth int, budget *int) (any, *Error) {
	*budget--
	if *budget < 0 {
		return nil, &Error{Message: "YAML expands to too many values", Err: ErrSyntax}
	}
	if depth > maxRawDepth {
		return nil, &Error{Path: path, Message: "nested too deep", Err: ErrSyntax}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0], path, depth, budget)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, &Error{Path: path, Message: "invalid YAML alias", Err: ErrSyntax}
		}
		return yamlValue(n.Alias, path, depth+1, budget)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := n.Content[i]
			if kn.Kind != yaml.ScalarNode {
				return nil, &Error{Path: path, Message: "invalid YAML: keys must be strings", Err: ErrSyntax}
			}
			k := kn.Value
			kp := pathKey(path, k)
			if _, dup := m[k]; dup {
				return nil, &Error{Path: kp, Message: "duplicate key", Err: ErrSyntax}
			}
			v, e := yamlValue(n.Content[i+1], kp, depth+1, budget)
			if e != nil {
				return nil, e
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		a := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, e := yamlValue(c, pathIndex(path, i), depth+1, budget)
			if e != nil {
				return nil, e
			}
			a = append(a, v)
		}
		return a, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp":
			if !utf8.ValidString(n.Value) {
				return nil, &Error{Path: path, Message: "invalid UTF-8", Err: ErrSyntax}
			}
			return n.Value, nil
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, &Error{Path: path, Message: "invalid boolean", Err: ErrSyntax}
			}
			return b, nil
		case "!!int", "!!float":
			var x any
			if err := n.Decode(&x); err != nil {
				return nil, &Error{Path: path, Message: "invalid number", Err: ErrSyntax}
			}
			var f float64
			switch v := x.(type) {
			case int:
				f = float64(v)
			case int64:
				f = float64(v)
			case uint64:
				f = float64(v)
			case float64:
				f = v
			default:
				return nil, &Error{Path: path, Message: "invalid number", Err: ErrSyntax}
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, &Error{Path: path, Message: "number out of range", Err: ErrSyntax}
			}
			return f, nil
		}
		return nil, &Error{Path: path, Message: "unsupported YAML value", Err: ErrSyntax}
	}
	return nil, &Error{Path: path, Message: "invalid YAML", Err: ErrSyntax}
}

// clipMessage bounds a decoder's error message, which may quote input.
func clipMessage(s string) string {
	if len(s) > 120 {
		s = s[:120]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}

// pathKey appends a key to a path: a.b for identifiers, a["x.y"] otherwise.
func pathKey(path, key string) string {
	if isIdent(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + quote(key) + "]"
}

func pathIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isIdent(s string) bool {
	if s == "" || len(s) > maxEcho {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validName reports whether s is a segment name: [a-z0-9_-]{1,64}.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validComputedName reports whether s looks like a computed value name.
func validComputedName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// wellFormedPurpose reports whether p is dot-separated [a-z0-9_]+ segments.
func wellFormedPurpose(p string) bool {
	if p == "" || len(p) > 200 {
		return false
	}
	for seg := range strings.SplitSeq(p, ".") {
		if !validComputedName(seg) {
			return false
		}
	}
	return true
}

// validPath reports whether s is a dot path of non-empty segments.
func validPath(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" {
			return false
		}
	}
	return true
}

// Event filter paths start with one of these: the event's properties, or
// its context (context.campaign.medium, context.page.referrer).
const (
	propertiesPrefix = "properties."
	contextPrefix    = "context."
)

type parser struct {
	errs  ErrorList
	known KnownNames
	check bool
	self  string
}

func (p *parser) fail(path string, sentinel error, msg string) {
	switch {
	case len(p.errs) < maxErrors:
		p.errs = append(p.errs, &Error{Path: path, Message: msg, Err: sentinel})
	case len(p.errs) == maxErrors:
		p.errs = append(p.errs, &Error{Message: "too many errors; stopped reporting", Err: sentinel})
	}
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func (p *parser) str(v any, path string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		p.fail(path, ErrType, "expected string")
	}
	return s, ok
}

func (p *parser) object(v any, path, what string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		p.fail(path, ErrType, "expected "+what)
	}
	return m, ok
}

func (p *parser) definition(v any) *Definition {
	m, ok := p.object(v, "", "an object")
	if !ok {
		return nil
	}
	d := &Definition{}
	for _, k := range sortedKeys(m) {
		switch k {
		case "name", "description", "purpose", "where", "splits":
		default:
			p.fail(pathKey("", k), ErrUnknownField, "unknown field")
		}
	}
	if v, ok := m["name"]; !ok {
		p.fail("name", ErrRequired, "required")
	} else if s, ok := p.str(v, "name"); ok {
		if validName(s) {
			d.Name = s
		} else {
			p.fail("name", ErrInvalidValue, "invalid name "+quote(s)+" (want 1 to 64 of a-z, 0-9, _ and -)")
		}
	}
	p.self = d.Name
	if v, ok := m["description"]; ok {
		if s, ok := p.str(v, "description"); ok {
			if utf8.RuneCountInString(s) > 1000 {
				p.fail("description", ErrInvalidValue, "longer than 1000 characters")
			} else {
				d.Description = s
			}
		}
	}
	if v, ok := m["purpose"]; !ok {
		p.fail("purpose", ErrRequired, "required")
	} else if s, ok := p.str(v, "purpose"); ok {
		switch {
		case p.check && !p.known.purposeOK(s):
			p.fail("purpose", ErrUnknownPurpose, "unknown purpose "+quote(s))
		case !wellFormedPurpose(s):
			p.fail("purpose", ErrInvalidValue, "invalid purpose "+quote(s)+" (want dot-separated a-z, 0-9 and _)")
		default:
			d.Purpose = s
		}
	}
	if v, ok := m["where"]; !ok {
		p.fail("where", ErrRequired, "required")
	} else {
		d.Where = p.cond(v, "where", 0)
	}
	if v, ok := m["splits"]; ok {
		d.Splits = p.splits(v)
	}
	return d
}

func isOperator(k string) bool {
	switch k {
	case "all", "any", "not", "trait", "computed", "event", "top", "bottom", "in_segment":
		return true
	}
	return false
}

const operatorList = "all, any, not, trait, computed, event, top, bottom, in_segment"

func (p *parser) noExtra(path string, others []string, what string) {
	for _, k := range others {
		p.fail(pathKey(path, k), ErrUnknownField, "unknown field of "+what)
	}
}

func (p *parser) cond(v any, path string, depth int) Condition {
	var c Condition
	if depth >= MaxDepth {
		p.fail(path, ErrSyntax, "conditions nested deeper than "+strconv.Itoa(MaxDepth))
		return c
	}
	m, ok := p.object(v, path, "an object with one operator")
	if !ok {
		return c
	}
	var op string
	var others []string
	for _, k := range sortedKeys(m) {
		if !isOperator(k) {
			others = append(others, k)
			continue
		}
		if op != "" {
			p.fail(path, ErrConflict, "more than one operator: "+quote(op)+" and "+quote(k))
			return c
		}
		op = k
	}
	if op == "" {
		if len(others) == 0 {
			p.fail(path, ErrUnknownOperator, "empty condition (want one of "+operatorList+")")
		}
		for _, k := range others {
			p.fail(path, ErrUnknownOperator, "unknown operator "+quote(k))
		}
		return c
	}
	opPath := pathKey(path, op)
	switch op {
	case "all", "any":
		p.noExtra(path, others, "an "+op+" condition")
		kids := p.condList(m[op], opPath, depth)
		if op == "all" {
			c.All = kids
		} else {
			c.Any = kids
		}
	case "not":
		p.noExtra(path, others, "a not condition")
		kid := p.cond(m[op], opPath, depth+1)
		c.Not = &kid
	case "trait":
		if s, ok := p.str(m[op], opPath); ok {
			if validPath(s) {
				c.Trait = s
			} else {
				p.fail(opPath, ErrInvalidValue, "invalid trait path "+quote(s))
			}
		}
		c.Compare = p.comparisons(m, others, path, subject{kind: valTrait})
	case "computed":
		c.Computed = p.computedName(m[op], opPath)
		c.Compare = p.comparisons(m, others, path, computedSubject(c.Computed))
	case "event":
		c.Event = p.event(m, others, path, depth)
	case "top", "bottom":
		p.noExtra(path, others, "a "+op+" condition")
		r := p.rank(m[op], opPath)
		if op == "top" {
			c.Top = r
		} else {
			c.Bottom = r
		}
	case "in_segment":
		p.noExtra(path, others, "an in_segment condition")
		if s, ok := p.str(m[op], opPath); ok {
			switch {
			case !validName(s):
				p.fail(opPath, ErrInvalidValue, "invalid segment name "+quote(s))
			case s == p.self:
				p.fail(opPath, ErrCycle, "cycle: "+s+" -> "+s)
			default:
				c.InSegment = s
			}
		}
	}
	return c
}

func (p *parser) condList(v any, path string, depth int) []Condition {
	a, ok := v.([]any)
	if !ok {
		p.fail(path, ErrType, "expected an array of conditions")
		return nil
	}
	if len(a) == 0 {
		p.fail(path, ErrInvalidValue, "expected at least one condition")
		return nil
	}
	out := make([]Condition, len(a))
	for i, x := range a {
		out[i] = p.cond(x, pathIndex(path, i), depth+1)
	}
	return out
}

func (p *parser) computedName(v any, path string) string {
	s, ok := p.str(v, path)
	if !ok {
		return ""
	}
	switch {
	case p.check && !p.known.computedOK(s):
		p.fail(path, ErrUnknownComputed, "unknown computed value "+quote(s))
	case !validComputedName(s):
		p.fail(path, ErrInvalidValue, "invalid computed value name "+quote(s))
	default:
		return s
	}
	return ""
}

// valKind says which comparisons, with which values, a subject allows.
type valKind uint8

const (
	valTrait     valKind = iota // any JSON scalar: all nine operators
	valComputed                 // a number: no contains
	valAggregate                // a number that always exists: no exists, no contains
	valText                     // a computed text: eq, ne, in, exists, contains with strings
	valTime                     // a computed time: no contains; RFC 3339 operands
	valLoose                    // a computed value of an unknown name: any scalar (only the name is reported)
)

// subject is what comparisons compare: its kind, and for a computed value
// its name and fixed value set (for messages and checks).
type subject struct {
	kind   valKind
	name   string
	values []string
}

// computedSubject is the subject of a computed condition; name is empty
// when it was not valid.
func computedSubject(name string) subject {
	if name == "" {
		return subject{kind: valLoose}
	}
	switch computedKind(name) {
	case KindText:
		return subject{kind: valText, name: name, values: computedValues(name)}
	case KindTime:
		return subject{kind: valTime, name: name}
	}
	return subject{kind: valComputed, name: name}
}

func (s subject) allows(op CmpOp) bool {
	switch op {
	case OpExists:
		return s.kind != valAggregate
	case OpContains:
		return s.kind == valTrait || s.kind == valLoose || s.kind == valText && s.values == nil
	case OpGt, OpGte, OpLt, OpLte:
		return s.kind != valText
	}
	return cmpRank(op) >= 0
}

func (s subject) opList() string {
	switch s.kind {
	case valTrait, valLoose:
		return "eq, ne, in, gt, gte, lt, lte, exists, contains"
	case valComputed, valTime:
		return "eq, ne, in, gt, gte, lt, lte, exists"
	case valText:
		if s.values != nil {
			return "eq, ne, in, exists"
		}
		return "eq, ne, in, exists, contains"
	}
	return "eq, ne, in, gt, gte, lt, lte"
}

// is says what a computed subject is, for messages: " (clv is a number)".
func (s subject) is() string {
	switch {
	case s.name == "":
		return ""
	case s.kind == valText:
		return " (" + s.name + " is a text)"
	case s.kind == valTime:
		return " (" + s.name + " is a time)"
	}
	return " (" + s.name + " is a number)"
}

func (p *parser) comparisons(m map[string]any, keys []string, path string, s subject) []Comparison {
	if len(keys) == 0 {
		p.fail(path, ErrRequired, "missing comparison (want "+s.opList()+")")
		return nil
	}
	var out []Comparison
	for _, k := range keys {
		kp := pathKey(path, k)
		op := CmpOp(k)
		if !s.allows(op) {
			p.fail(kp, ErrUnknownField, "unknown comparison (want "+s.opList()+")"+s.is())
			continue
		}
		if v, ok := p.cmpValue(m[k], kp, op, s); ok {
			out = append(out, Comparison{Op: op, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b Comparison) int { return cmpRank(a.Op) - cmpRank(b.Op) })
	return out
}

func (p *parser) cmpValue(v any, path string, op CmpOp, kind subject) (any, bool) {
	switch op {
	case OpExists:
		if _, ok := v.(bool); !ok {
			p.fail(path, ErrType, "expected true or false")
			return nil, false
		}
		return v, true
	case OpIn:
		a, ok := v.([]any)
		if !ok {
			p.fail(path, ErrType, "expected an array")
			return nil, false
		}
		if len(a) == 0 || len(a) > maxList {
			p.fail(path, ErrInvalidValue, "expected 1 to "+strconv.Itoa(maxList)+" values")
			return nil, false
		}
		good := true
		for i, x := range a {
			if !p.scalar(x, pathIndex(path, i), OpEq, kind) {
				good = false
			}
		}
		if !good {
			return nil, false
		}
		return slices.Clone(a), true
	}
	if !p.scalar(v, path, op, kind) {
		return nil, false
	}
	return v, true
}

// scalar checks a comparison operand other than exists and in.
func (p *parser) scalar(v any, path string, op CmpOp, s subject) bool {
	switch s.kind {
	case valComputed, valAggregate:
		if _, ok := v.(float64); !ok {
			p.fail(path, ErrType, "expected number"+s.is())
			return false
		}
		return true
	case valText:
		str, ok := v.(string)
		if !ok {
			p.fail(path, ErrType, "expected string"+s.is())
			return false
		}
		if s.values != nil && !slices.Contains(s.values, str) {
			p.fail(path, ErrInvalidValue, "unknown "+s.name+" "+quote(str)+" (want "+strings.Join(s.values, ", ")+")")
			return false
		}
		return true
	case valTime:
		str, ok := v.(string)
		if _, _, isTime := parseTime(str); !ok || !isTime {
			p.fail(path, ErrType, "expected an RFC 3339 time such as 2026-01-31T00:00:00Z"+s.is())
			return false
		}
		return true
	}
	switch v.(type) {
	case float64, string:
		return true
	case bool:
		switch op {
		case OpEq, OpNe, OpContains:
			return true
		}
		p.fail(path, ErrType, "expected number or string")
		return false
	}
	switch op {
	case OpEq, OpNe, OpContains:
		p.fail(path, ErrType, "expected string, number or boolean")
	default:
		p.fail(path, ErrType, "expected number or string")
	}
	return false
}

func (p *parser) duration(v any, path string) Duration {
	s, ok := p.str(v, path)
	if !ok {
		return Duration{}
	}
	d, ok := ParseDuration(s)
	if !ok {
		p.fail(path, ErrInvalidDuration, "invalid duration "+quote(s)+" (want a positive count of m, h, d or w, such as 30m, 12h, 3d, 2w)")
	}
	return d
}

func (p *parser) instant(v any, path string) *Instant {
	s, ok := p.str(v, path)
	if !ok {
		return nil
	}
	if sec, nsec, ok := parseTime(s); ok {
		return &Instant{Time: time.Unix(sec, int64(nsec)).UTC()}
	}
	if d, ok := ParseDuration(s); ok {
		return &Instant{Ago: d}
	}
	p.fail(path, ErrInvalidDuration, "invalid time or duration "+quote(s)+" (want RFC 3339 or a duration such as 30d)")
	return nil
}

func (p *parser) event(m map[string]any, others []string, path string, depth int) *EventCondition {
	e := &EventCondition{}
	np := pathKey(path, "event")
	if s, ok := p.str(m["event"], np); ok {
		if s == "" || utf8.RuneCountInString(s) > 200 {
			p.fail(np, ErrInvalidValue, "event name must have 1 to 200 characters")
		} else {
			e.Name = s
		}
	}
	agg := ""
	for _, k := range others {
		kp := pathKey(path, k)
		switch k {
		case "within":
			e.Within = p.duration(m[k], kp)
		case "before":
			e.Before = p.duration(m[k], kp)
		case "after":
			e.After = p.instant(m[k], kp)
		case "where":
			e.Where = p.filter(m[k], kp, depth+1)
		case "count", "sum", "avg", "min", "max":
			if agg != "" {
				p.fail(path, ErrConflict, "more than one aggregate: "+quote(agg)+" and "+quote(k))
				continue
			}
			agg = k
			e.Aggregate = p.aggregate(m[k], kp, AggFunc(k))
		case "first":
			e.First = p.recency(m[k], kp)
		case "last":
			e.Last = p.recency(m[k], kp)
		default:
			p.fail(kp, ErrUnknownField, "unknown field of an event condition")
		}
	}
	return e
}

func (p *parser) filter(v any, path string, depth int) *PropertyFilter {
	if depth >= MaxDepth {
		p.fail(path, ErrSyntax, "filters nested deeper than "+strconv.Itoa(MaxDepth))
		return nil
	}
	m, ok := p.object(v, path, "an object of property tests")
	if !ok {
		return nil
	}
	if len(m) == 0 {
		p.fail(path, ErrInvalidValue, "expected at least one property test")
		return nil
	}
	f := &PropertyFilter{}
	for _, k := range sortedKeys(m) {
		kp := pathKey(path, k)
		switch {
		case k == "all" || k == "any":
			a, ok := m[k].([]any)
			if !ok {
				p.fail(kp, ErrType, "expected an array of filters")
				continue
			}
			if len(a) == 0 {
				p.fail(kp, ErrInvalidValue, "expected at least one filter")
				continue
			}
			list := make([]PropertyFilter, 0, len(a))
			for i, x := range a {
				if sub := p.filter(x, pathIndex(kp, i), depth+1); sub != nil {
					list = append(list, *sub)
				}
			}
			if k == "all" {
				f.All = list
			} else {
				f.Any = list
			}
		case k == "not":
			f.Not = p.filter(m[k], kp, depth+1)
		case strings.HasPrefix(k, propertiesPrefix) && validPath(k[len(propertiesPrefix):]),
			strings.HasPrefix(k, contextPrefix) && validPath(k[len(contextPrefix):]):
			cm, ok := p.object(m[k], kp, "an object of comparisons")
			if !ok {
				continue
			}
			f.Props = append(f.Props, PropertyTest{Path: k, Compare: p.comparisons(cm, sortedKeys(cm), kp, subject{kind: valTrait})})
		default:
			p.fail(kp, ErrUnknownField, `unknown field (want "properties.<path>", "context.<path>", "all", "any" or "not")`)
		}
	}
	return f
}

func (p *parser) aggregate(v any, path string, fn AggFunc) *Aggregate {
	m, ok := p.object(v, path, "an object of comparisons")
	if !ok {
		return nil
	}
	a := &Aggregate{Func: fn}
	var keys []string
	for _, k := range sortedKeys(m) {
		if k == "property" {
			continue
		}
		keys = append(keys, k)
	}
	pp := pathKey(path, "property")
	pv, has := m["property"]
	switch {
	case fn == AggCount && has:
		p.fail(pp, ErrUnknownField, "count takes no property")
	case fn != AggCount && !has:
		p.fail(pp, ErrRequired, "required")
	case fn != AggCount:
		if s, ok := p.str(pv, pp); ok {
			s = strings.TrimPrefix(s, propertiesPrefix)
			if validPath(s) {
				a.Property = s
			} else {
				p.fail(pp, ErrInvalidValue, "invalid property path "+quote(s))
			}
		}
	}
	a.Compare = p.comparisons(m, keys, path, subject{kind: valAggregate})
	return a
}

func (p *parser) recency(v any, path string) *Recency {
	m, ok := p.object(v, path, "an object with older_than or newer_than")
	if !ok {
		return nil
	}
	r := &Recency{}
	if len(m) == 0 {
		p.fail(path, ErrRequired, "expected older_than or newer_than")
	}
	for _, k := range sortedKeys(m) {
		kp := pathKey(path, k)
		switch k {
		case "older_than":
			r.OlderThan = p.duration(m[k], kp)
		case "newer_than":
			r.NewerThan = p.duration(m[k], kp)
		default:
			p.fail(kp, ErrUnknownField, "unknown field (want older_than or newer_than)")
		}
	}
	return r
}

func (p *parser) rank(v any, path string) *Rank {
	m, ok := p.object(v, path, `an object with "percent" and "of"`)
	if !ok {
		return nil
	}
	r := &Rank{}
	for _, k := range sortedKeys(m) {
		if k != "percent" && k != "of" {
			p.fail(pathKey(path, k), ErrUnknownField, "unknown field (want percent and of)")
		}
	}
	pp := pathKey(path, "percent")
	if v, ok := m["percent"]; !ok {
		p.fail(pp, ErrRequired, "required")
	} else if f, ok := v.(float64); !ok {
		p.fail(pp, ErrType, "expected number")
	} else if !(f > 0 && f <= 100) {
		p.fail(pp, ErrInvalidValue, "expected a number in (0, 100]")
	} else {
		r.Percent = f
	}
	op := pathKey(path, "of")
	if v, ok := m["of"]; !ok {
		p.fail(op, ErrRequired, "required")
	} else {
		r.Of = p.computedName(v, op)
		if r.Of != "" && computedKind(r.Of) != KindNumber {
			p.fail(op, ErrType, "cannot rank by "+quote(r.Of)+": it is a "+string(computedKind(r.Of))+", not a number")
			r.Of = ""
		}
	}
	return r
}
