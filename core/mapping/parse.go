package mapping

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones work on hosts without /usr/share/zoneinfo
	"unicode/utf8"

	"github.com/custody-cdp/custody/core/event"
	"gopkg.in/yaml.v3"
)

// MaxMappingBytes caps the size of a mapping file given to Parse.
const MaxMappingBytes = 1 << 20

// Error is a problem in a mapping file, or a mapping that does not fit the
// CSV header it is used with. Path names the offending setting with dots and
// list indexes ("products.quantity.type", "totals.revenue.sum[1]"); it is
// empty when the problem concerns the file as a whole.
type Error struct {
	Path string
	Line int // line in the mapping file, 0 if unknown
	Msg  string
}

// Error renders `path: message`.
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

type valueType uint8

const (
	typeString valueType = iota
	typeInt
	typeFloat
	typeBool
	typeTime
)

var typeNames = [...]string{"string", "int", "float", "bool", "time"}

func (t valueType) String() string { return typeNames[t] }

// field is a compiled field spec: where a value comes from and how the text
// is turned into a JSON value.
type field struct {
	path string
	line int

	column  string     // source: one column
	literal string     // source: value (its text; see hasLiteral)
	tmpl    []tmplPart // source: template
	hasLit  bool

	typ        valueType
	trim       bool
	trimPrefix string
	trimSuffix string
	abs        bool
	layout     string // "" means defaultLayouts
	loc        *time.Location
	required   bool
	dflt       string
	hasDflt    bool

	litJSON []byte // typed literal, computed by Parse
	litTime time.Time
}

// tmplPart is literal text, or a placeholder when col is set.
type tmplPart struct {
	text string
	col  string
}

type namedField struct {
	key string
	f   *field
}

type totalSpec struct {
	key   string
	path  string
	cols  []string
	paths []string // path of each column reference
	abs   bool
}

type refundSpec struct {
	column       string
	prefix       string
	equals       string
	hasEquals    bool
	event        string
	stripOrderID bool
}

// colRef is one reference to a CSV column, checked against the header when
// the CSV is opened.
type colRef struct {
	path   string
	line   int
	column string
}

// Mapping is a parsed, validated mapping file. It is immutable and safe for
// concurrent use; each Convert call binds it to its own CSV header.
type Mapping struct {
	delimiter    rune
	event        string
	groupBy      []string
	timestamp    *field
	userID       *field
	anonymousID  *field
	messageID    *field
	refund       *refundSpec
	properties   []namedField
	products     []namedField
	totals       []totalSpec
	traits       []namedField
	skipRow      bool // on_bad_row: skip_row
	refs         []colRef
	orderIDIndex int // index of properties.order_id, -1 if none
}

// Parse reads a mapping file (YAML, or JSON, which is read as YAML). Every
// error is an *Error naming the offending setting.
func Parse(data []byte) (m *Mapping, err error) {
	if len(data) > MaxMappingBytes {
		return nil, &Error{Msg: "mapping file is larger than " + strconv.Itoa(MaxMappingBytes) + " bytes"}
	}
	if !utf8.Valid(data) {
		return nil, &Error{Msg: "mapping file is not valid UTF-8"}
	}
	var doc yaml.Node
	func() {
		defer func() {
			if r := recover(); r != nil { // yaml.v3 must not take the process down
				err = &Error{Msg: "invalid YAML"}
			}
		}()
		if e := yaml.Unmarshal(data, &doc); e != nil {
			err = &Error{Msg: "invalid YAML: " + strings.TrimPrefix(e.Error(), "yaml: ")}
		}
	}()
	if err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{Msg: "mapping file is empty"}
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Line: root.Line, Msg: "expected a mapping of settings at the top level"}
	}
	p := &parser{m: &Mapping{delimiter: ',', orderIDIndex: -1}}
	p.top(root)
	if p.err != nil {
		return nil, p.err
	}
	return p.m, nil
}

type parser struct {
	m   *Mapping
	err *Error
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	if p.err != nil {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	p.err = &Error{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return deref(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// members walks a mapping node's key/value pairs; keys must be non-empty
// strings and unique.
func (p *parser) members(n *yaml.Node, path string, fn func(key string, kn, vn *yaml.Node)) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "expected a mapping, got %s", kind(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		kn, vn := deref(n.Content[i]), n.Content[i+1]
		if kn.Kind != yaml.ScalarNode || isNull(kn) {
			p.errorf(kn, path, "keys must be strings")
			return
		}
		key := kn.Value
		if key == "" {
			p.errorf(kn, path, "empty key")
			return
		}
		if seen[key] {
			p.errorf(kn, join(path, key), "set twice")
			return
		}
		seen[key] = true
		fn(key, kn, deref(vn))
	}
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return "a scalar"
	}
	return "something else"
}

// str reads a scalar as a string (numbers and booleans are taken as
// written).
func (p *parser) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, path, "expected a string, got %s", kind(n))
		return ""
	}
	return n.Value
}

func (p *parser) boolean(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, path, "expected true or false")
		return false
	}
	var b bool
	if n.Decode(&b) != nil {
		p.errorf(n, path, "expected true or false")
	}
	return b
}

func unknownKey(valid string) string {
	return "unknown key (expected one of " + valid + ")"
}

const topKeys = "format, delimiter, event, group_by, timestamp, user_id, anonymous_id, message_id, refund, properties, products, totals, traits, on_bad_row"

func (p *parser) top(root *yaml.Node) {
	m := p.m
	var eventNode *yaml.Node
	p.members(root, "", func(key string, kn, vn *yaml.Node) {
		if isNull(vn) && key != "event" {
			return // an empty setting is the same as an absent one
		}
		switch key {
		case "format":
			if f := p.str(vn, key); p.err == nil && !strings.EqualFold(f, "csv") {
				p.errorf(vn, key, "unsupported format %q (only csv)", f)
			}
		case "delimiter":
			m.delimiter = p.delimiter(vn)
		case "event":
			eventNode = vn
			m.event = p.eventName(vn, key)
		case "group_by":
			p.groupBy(vn)
		case "timestamp":
			m.timestamp = p.field(vn, key, typeTime)
		case "user_id":
			m.userID = p.field(vn, key, typeString)
		case "anonymous_id":
			m.anonymousID = p.field(vn, key, typeString)
		case "message_id":
			m.messageID = p.field(vn, key, typeString)
		case "refund":
			p.refund(vn)
		case "properties":
			m.properties = p.fields(vn, key)
		case "products":
			m.products = p.fields(vn, key)
		case "traits":
			m.traits = p.fields(vn, key)
		case "totals":
			p.totals(vn)
		case "on_bad_row":
			switch v := p.str(vn, key); v {
			case "skip_group":
			case "skip_row":
				m.skipRow = true
			default:
				if p.err == nil {
					p.errorf(vn, key, "unknown value %q (expected skip_group or skip_row)", v)
				}
			}
		default:
			p.errorf(kn, key, "%s", unknownKey(topKeys))
		}
	})
	if p.err != nil {
		return
	}
	if eventNode == nil {
		p.errorf(root, "event", "required (the event each group of rows becomes, e.g. Order Completed)")
		return
	}
	// Cross-checks.
	for _, id := range []struct {
		name string
		f    *field
	}{{"timestamp", m.timestamp}, {"user_id", m.userID}, {"anonymous_id", m.anonymousID}, {"message_id", m.messageID}} {
		if id.f == nil {
			continue
		}
		if id.name == "timestamp" {
			if id.f.typ != typeTime {
				p.errorf(nil, id.name+".type", "must be time")
			}
		} else if id.f.typ != typeString && id.f.typ != typeInt {
			p.errorf(nil, id.name+".type", "must be string or int")
		}
		if id.f.hasLit && id.name != "message_id" && id.name != "timestamp" {
			// A constant user id would merge every row into one person.
			p.errorf(nil, id.name+".value", "a constant would give every row the same identity; use column or template")
		}
	}
	if m.timestamp != nil && m.timestamp.hasLit {
		p.errorf(nil, "timestamp.value", "a constant timestamp is not allowed; use column")
	}
	if m.messageID != nil && m.messageID.hasLit {
		p.errorf(nil, "message_id.value", "a constant would make every message a duplicate; use column or template")
	}
	if m.userID == nil && m.anonymousID == nil {
		p.errorf(root, "user_id", "user_id or anonymous_id is required")
	}
	for i, nf := range m.properties {
		if nf.key == "products" && len(m.products) > 0 {
			p.errorf(nil, "properties.products", "conflicts with the products section")
		}
		if nf.key == "order_id" {
			m.orderIDIndex = i
		}
	}
	for _, t := range m.totals {
		for _, nf := range m.properties {
			if nf.key == t.key {
				p.errorf(nil, t.path, "also set in properties")
			}
		}
		if t.key == "products" && len(m.products) > 0 {
			p.errorf(nil, t.path, "conflicts with the products section")
		}
	}
	if r := m.refund; r != nil && r.stripOrderID && m.orderIDIndex < 0 {
		p.errorf(nil, "refund.order_id_strip_prefix", "properties.order_id is not set")
	}
	p.collectRefs()
}

func (p *parser) eventName(n *yaml.Node, path string) string {
	s := strings.TrimSpace(p.str(n, path))
	switch {
	case p.err != nil:
	case s == "":
		p.errorf(n, path, "empty")
	case len(s) > event.MaxIDBytes:
		p.errorf(n, path, "longer than %d bytes", event.MaxIDBytes)
	}
	return s
}

func (p *parser) delimiter(n *yaml.Node) rune {
	s := p.str(n, "delimiter")
	if p.err != nil {
		return ','
	}
	switch s {
	case "tab", `\t`:
		s = "\t"
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case s == "" || size != len(s):
		p.errorf(n, "delimiter", "must be a single character")
	case r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError:
		p.errorf(n, "delimiter", "cannot be a quote or a line break")
	}
	return r
}

func (p *parser) groupBy(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		if len(n.Content) == 0 {
			p.errorf(n, "group_by", "empty list")
		}
		for i, c := range n.Content {
			path := "group_by[" + strconv.Itoa(i) + "]"
			if s := p.str(deref(c), path); p.err == nil {
				if s == "" {
					p.errorf(c, path, "empty column name")
				}
				p.m.groupBy = append(p.m.groupBy, s)
			}
		}
		return
	}
	if s := p.str(n, "group_by"); p.err == nil {
		if s == "" {
			p.errorf(n, "group_by", "empty column name")
		}
		p.m.groupBy = []string{s}
	}
}

const fieldKeys = "column, value, template, type, trim, trim_prefix, trim_suffix, abs, layout, timezone, required, default"

// field compiles one field spec. dflt is the type when none is given.
func (p *parser) field(n *yaml.Node, path string, dflt valueType) *field {
	f := &field{path: path, line: n.Line, typ: dflt, trim: true, required: path == "timestamp"}
	var (
		typeSet             bool
		valueNode           *yaml.Node
		layoutNode, tzNode  *yaml.Node
		absNode             *yaml.Node
		sources             int
		tz                  = "UTC"
		tzSet, layoutSet    bool
		columnSet, templSet bool
		templateText        string
		templateNode        *yaml.Node
	)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "expected a mapping such as {column: Name}, {value: x} or {template: \"x-{Name}\"}, got %s", kind(n))
		return f
	}
	p.members(n, path, func(key string, kn, vn *yaml.Node) {
		kp := join(path, key)
		switch key {
		case "column":
			sources++
			columnSet = true
			f.column = p.str(vn, kp)
			if p.err == nil && f.column == "" {
				p.errorf(vn, kp, "empty column name")
			}
		case "value":
			sources++
			valueNode = vn
			f.hasLit = true
		case "template":
			sources++
			templSet = true
			templateNode = vn
			templateText = p.str(vn, kp)
		case "type":
			typeSet = true
			s := p.str(vn, kp)
			if p.err != nil {
				return
			}
			found := false
			for i, name := range typeNames {
				if s == name {
					f.typ, found = valueType(i), true
				}
			}
			if !found {
				p.errorf(vn, kp, "unknown type %q (expected string, int, float, bool or time)", s)
			}
		case "trim":
			f.trim = p.boolean(vn, kp)
		case "trim_prefix":
			f.trimPrefix = p.str(vn, kp)
		case "trim_suffix":
			f.trimSuffix = p.str(vn, kp)
		case "abs":
			absNode = vn
			f.abs = p.boolean(vn, kp)
		case "layout":
			layoutSet, layoutNode = true, vn
			f.layout = p.str(vn, kp)
		case "timezone":
			tzSet, tzNode = true, vn
			tz = p.str(vn, kp)
		case "required":
			f.required = p.boolean(vn, kp)
		case "default":
			f.hasDflt = true
			f.dflt = p.str(vn, kp)
		default:
			p.errorf(kn, kp, "%s", unknownKey(fieldKeys))
		}
	})
	if p.err != nil {
		return f
	}
	switch {
	case sources == 0:
		p.errorf(n, path, "needs one of column, value or template")
		return f
	case sources > 1:
		p.errorf(n, path, "column, value and template are mutually exclusive")
		return f
	}
	if (layoutSet || tzSet) && !typeSet {
		f.typ = typeTime
	}
	if f.abs && f.typ != typeInt && f.typ != typeFloat {
		p.errorf(absNode, path+".abs", "only for type int or float")
	}
	if f.typ == typeTime {
		if layoutSet {
			if !validLayout(f.layout) {
				p.errorf(layoutNode, path+".layout", "not a Go time layout with year, month and day (such as \"2006-01-02 15:04:05\")")
			}
		}
		switch loc, err := time.LoadLocation(tz); {
		case tz == "Local" || tz == "":
			p.errorf(tzNode, path+".timezone", "must be an IANA time zone name such as UTC or Europe/London")
		case err != nil:
			p.errorf(tzNode, path+".timezone", "unknown time zone %q", tz)
		default:
			f.loc = loc
		}
	} else {
		if layoutSet {
			p.errorf(layoutNode, path+".layout", "only for type time")
		}
		if tzSet {
			p.errorf(tzNode, path+".timezone", "only for type time")
		}
	}
	if templSet {
		f.tmpl = p.template(templateNode, path+".template", templateText)
	}
	if f.hasDflt && f.dflt != "" && p.err == nil {
		if _, _, reason := f.typed(f.dflt, nil); reason != "" {
			p.errorf(n, path+".default", "%s", reason)
		}
	}
	if columnSet || templSet || p.err != nil {
		return f
	}
	// A literal: typed once, here.
	vp := path + ".value"
	if valueNode.Kind != yaml.ScalarNode || isNull(valueNode) {
		p.errorf(valueNode, vp, "expected a scalar, got %s", kind(valueNode))
		return f
	}
	f.literal = valueNode.Value
	if !typeSet && !layoutSet && !tzSet {
		switch valueNode.Tag {
		case "!!int":
			f.typ = typeInt
		case "!!float":
			f.typ = typeFloat
		case "!!bool":
			f.typ = typeBool
		}
	}
	text := f.transform(f.literal)
	if text == "" {
		p.errorf(valueNode, vp, "empty")
		return f
	}
	js, t, reason := f.typed(text, nil)
	if reason != "" {
		p.errorf(valueNode, vp, "%s", reason)
		return f
	}
	f.litJSON, f.litTime = js, t
	return f
}

// validLayout reports whether layout formats and parses back a date.
func validLayout(layout string) bool {
	ref := time.Date(2011, 10, 6, 16, 20, 0, 0, time.UTC)
	t, err := time.Parse(layout, ref.Format(layout))
	return err == nil && t.Year() == 2011 && t.Month() == 10 && t.Day() == 6
}

// template splits "guest-{InvoiceNo}" into parts; "{{" and "}}" are literal
// braces.
func (p *parser) template(n *yaml.Node, path, s string) []tmplPart {
	var parts []tmplPart
	var lit strings.Builder
	placeholders := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				p.errorf(n, path, `unclosed "{" (write "{{" for a literal brace)`)
				return nil
			}
			col := s[i+1 : i+1+end]
			if strings.TrimSpace(col) == "" {
				p.errorf(n, path, `empty column name in "{}"`)
				return nil
			}
			if lit.Len() > 0 {
				parts = append(parts, tmplPart{text: lit.String()})
				lit.Reset()
			}
			parts = append(parts, tmplPart{col: col})
			placeholders++
			i += end + 1
		case c == '}':
			p.errorf(n, path, `unmatched "}" (write "}}" for a literal brace)`)
			return nil
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		parts = append(parts, tmplPart{text: lit.String()})
	}
	if placeholders == 0 {
		p.errorf(n, path, "no {column} placeholder; use value for a constant")
	}
	return parts
}

// fields compiles a mapping of key -> field spec, in file order.
func (p *parser) fields(n *yaml.Node, path string) []namedField {
	var out []namedField
	p.members(n, path, func(key string, _, vn *yaml.Node) {
		out = append(out, namedField{key: key, f: p.field(vn, join(path, key), typeString)})
	})
	return out
}

func (p *parser) totals(n *yaml.Node) {
	p.members(n, "totals", func(key string, _, vn *yaml.Node) {
		path := "totals." + key
		t := totalSpec{key: key, path: path}
		var sumSet bool
		p.members(vn, path, func(k string, kn, v *yaml.Node) {
			kp := path + "." + k
			switch k {
			case "sum":
				sumSet = true
				if v.Kind == yaml.SequenceNode {
					for i, c := range v.Content {
						cp := kp + "[" + strconv.Itoa(i) + "]"
						c = deref(c)
						if c.Kind != yaml.ScalarNode || isNull(c) || c.Value == "" {
							p.errorf(c, cp, "expected a column name")
							return
						}
						t.cols = append(t.cols, c.Value)
						t.paths = append(t.paths, cp)
					}
					return
				}
				if s := p.str(v, kp); p.err == nil {
					if s == "" {
						p.errorf(v, kp, "expected a column name")
					}
					t.cols, t.paths = []string{s}, []string{kp}
				}
			case "abs":
				t.abs = p.boolean(v, kp)
			default:
				p.errorf(kn, kp, "%s", unknownKey("sum, abs"))
			}
		})
		if p.err != nil {
			return
		}
		if !sumSet || len(t.cols) == 0 {
			p.errorf(vn, path+".sum", "needs at least one column (sum: [Quantity, UnitPrice] sums Quantity*UnitPrice)")
			return
		}
		p.m.totals = append(p.m.totals, t)
	})
}

func (p *parser) refund(n *yaml.Node) {
	r := &refundSpec{event: "Order Refunded"}
	var prefixSet bool
	p.members(n, "refund", func(key string, kn, vn *yaml.Node) {
		kp := "refund." + key
		switch key {
		case "column":
			r.column = p.str(vn, kp)
		case "prefix":
			prefixSet = true
			r.prefix = p.str(vn, kp)
			if p.err == nil && r.prefix == "" {
				p.errorf(vn, kp, "empty")
			}
		case "equals":
			r.hasEquals = true
			r.equals = p.str(vn, kp)
		case "event":
			r.event = p.eventName(vn, kp)
		case "order_id_strip_prefix":
			r.stripOrderID = p.boolean(vn, kp)
		default:
			p.errorf(kn, kp, "%s", unknownKey("column, prefix, equals, event, order_id_strip_prefix"))
		}
	})
	if p.err != nil {
		return
	}
	switch {
	case r.column == "":
		p.errorf(n, "refund.column", "required (the column that marks a refund)")
	case prefixSet == r.hasEquals:
		p.errorf(n, "refund", "needs exactly one of prefix or equals")
	case r.stripOrderID && !prefixSet:
		p.errorf(n, "refund.order_id_strip_prefix", "needs refund.prefix")
	}
	p.m.refund = r
}

func (p *parser) collectRefs() {
	m := p.m
	add := func(path string, line int, col string) {
		m.refs = append(m.refs, colRef{path: path, line: line, column: col})
	}
	for i, c := range m.groupBy {
		path := "group_by"
		if len(m.groupBy) > 1 {
			path += "[" + strconv.Itoa(i) + "]"
		}
		add(path, 0, c)
	}
	addField := func(f *field) {
		if f == nil {
			return
		}
		if f.column != "" {
			add(f.path+".column", f.line, f.column)
		}
		for _, part := range f.tmpl {
			if part.col != "" {
				add(f.path+".template", f.line, part.col)
			}
		}
	}
	for _, f := range []*field{m.timestamp, m.userID, m.anonymousID, m.messageID} {
		addField(f)
	}
	if m.refund != nil {
		add("refund.column", 0, m.refund.column)
	}
	for _, list := range [][]namedField{m.properties, m.products, m.traits} {
		for _, nf := range list {
			addField(nf.f)
		}
	}
	for _, t := range m.totals {
		for i, c := range t.cols {
			add(t.paths[i], 0, c)
		}
	}
}

// Columns returns the CSV columns the mapping reads, each once, in the order
// they are first referenced.
func (m *Mapping) Columns() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range m.refs {
		if !seen[r.column] {
			seen[r.column] = true
			out = append(out, r.column)
		}
	}
	return out
}

// CheckHeader reports whether every column the mapping reads is in header
// (names are compared after trimming white space, case-sensitively). The
// error is an *Error naming the setting, or several joined.
func (m *Mapping) CheckHeader(header []string) error {
	_, err := m.bind(header)
	return err
}
