package mapping

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custody-cdp/custody/core/event"
)

// Stats counts what Convert did. Messages + SkippedGroups == Groups.
type Stats struct {
	Rows          int // data rows read (not the header; blank rows are not counted)
	Groups        int // groups formed (one per row without group_by)
	Messages      int // messages emitted
	Refunds       int // of Messages, refund events
	Guests        int // of Messages, without a userId (anonymousId only)
	BadRows       int // rows reported to onError as invalid
	SkippedGroups int // groups not emitted: a bad row (on_bad_row: skip_group), no valid row, or an invalid message
}

// RowError is an invalid CSV row. It never contains cell values: only the
// line, the column and what is wrong.
type RowError struct {
	Line   int    // line of the CSV file where the row starts (the header is line 1)
	Column string // CSV column at fault, "" if the problem is not one column's
	Field  string // mapping setting being computed ("products.quantity"), if any
	Reason string
	// GroupBy is set (to the group_by column names) when the row's whole
	// group was skipped because of it (on_bad_row: skip_group).
	GroupBy string
}

func (e *RowError) Error() string {
	var b strings.Builder
	b.WriteString("line ")
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteString(": ")
	switch {
	case e.Column != "":
		b.WriteString("column ")
		b.WriteString(e.Column)
		b.WriteString(": ")
	case e.Field != "":
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	if e.GroupBy != "" {
		b.WriteString("; all rows with the same ")
		b.WriteString(e.GroupBy)
		b.WriteString(" are skipped")
	}
	return b.String()
}

// GroupError is a group whose rows were valid but whose message could not be
// built or does not pass event.DecodeMessage (too large, id too long, no
// identity). Err is free of values (an *event.FieldError or a reason).
type GroupError struct {
	Lines []int // the group's rows, ascending
	Err   error
}

func (e *GroupError) Error() string {
	var b strings.Builder
	b.WriteString("line ")
	if len(e.Lines) > 0 {
		b.WriteString(strconv.Itoa(e.Lines[0]))
	}
	if len(e.Lines) > 1 {
		b.WriteString(": group of ")
		b.WriteString(strconv.Itoa(len(e.Lines)))
		b.WriteString(" rows (lines ")
		for i, l := range e.Lines {
			if i == 5 {
				b.WriteString(", …")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(l))
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *GroupError) Unwrap() error { return e.Err }

// --- binding to a header -------------------------------------------------

type bpart struct {
	text string
	idx  int // -1 for literal text
}

type bfield struct {
	*field
	idx   int
	parts []bpart
}

type binding struct {
	m        *Mapping
	ncols    int
	header   []string
	groupIdx []int
	ts       *bfield
	uid      *bfield
	aid      *bfield
	mid      *bfield
	refund   int
	props    []bfield
	prods    []bfield
	traits   []bfield
	totals   [][]int
}

func (m *Mapping) bind(header []string) (*binding, error) {
	b := &binding{m: m, ncols: len(header), header: make([]string, len(header)), refund: -1}
	index := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))
		}
		b.header[i] = h
		if _, dup := index[h]; dup {
			index[h] = -2
		} else {
			index[h] = i
		}
	}
	var errs []error
	seen := map[string]bool{}
	for _, r := range m.refs {
		i, ok := index[r.column]
		msg := ""
		switch {
		case !ok:
			msg = fmt.Sprintf("column %q is not in the CSV header", r.column)
			for _, h := range b.header {
				if strings.EqualFold(h, r.column) {
					msg += fmt.Sprintf(" (did you mean %q?)", h)
					break
				}
			}
		case i < 0:
			msg = fmt.Sprintf("column %q appears more than once in the CSV header", r.column)
		}
		if msg != "" && !seen[r.path+"\x00"+r.column] {
			seen[r.path+"\x00"+r.column] = true
			errs = append(errs, &Error{Path: r.path, Line: r.line, Msg: msg})
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	if len(errs) > 1 {
		return nil, errors.Join(errs...)
	}
	col := func(name string) int { return index[name] }
	bf := func(f *field) *bfield {
		if f == nil {
			return nil
		}
		out := &bfield{field: f, idx: -1}
		if f.column != "" {
			out.idx = col(f.column)
		}
		for _, p := range f.tmpl {
			if p.col != "" {
				out.parts = append(out.parts, bpart{idx: col(p.col)})
			} else {
				out.parts = append(out.parts, bpart{text: p.text, idx: -1})
			}
		}
		return out
	}
	bfs := func(list []namedField) []bfield {
		out := make([]bfield, len(list))
		for i, nf := range list {
			out[i] = *bf(nf.f)
		}
		return out
	}
	for _, g := range m.groupBy {
		b.groupIdx = append(b.groupIdx, col(g))
	}
	b.ts, b.uid, b.aid, b.mid = bf(m.timestamp), bf(m.userID), bf(m.anonymousID), bf(m.messageID)
	if m.refund != nil {
		b.refund = col(m.refund.column)
	}
	b.props, b.prods, b.traits = bfs(m.properties), bfs(m.products), bfs(m.traits)
	for _, t := range m.totals {
		idx := make([]int, len(t.cols))
		for i, c := range t.cols {
			idx[i] = col(c)
		}
		b.totals = append(b.totals, idx)
	}
	return b, nil
}

// text computes a column or template field's text for one row, after the
// string transforms; "" means empty. For a template, the result is empty
// when every placeholder is empty.
func (f *bfield) text(rec []string, sb *strings.Builder) string {
	if f.idx >= 0 {
		return f.transform(rec[f.idx])
	}
	sb.Reset()
	nonEmpty := false
	for _, p := range f.parts {
		if p.idx < 0 {
			sb.WriteString(p.text)
			continue
		}
		v := rec[p.idx]
		if f.trim {
			v = strings.TrimSpace(v)
		}
		if v != "" {
			nonEmpty = true
		}
		sb.WriteString(v)
	}
	if !nonEmpty {
		return f.transform("")
	}
	return f.transform(sb.String())
}

// --- conversion ------------------------------------------------------------

type group struct {
	key      string
	lines    []int
	refund   bool
	bad      bool
	hasTS    bool
	ts       time.Time
	uid      string
	aid      string
	mid      string
	props    [][]byte
	traits   [][]byte
	products []byte
	totals   []decimal
	digest   [4]uint64 // order-independent sum of row hashes (default messageId)
}

type span struct{ start, end int }

type converter struct {
	b       *binding
	m       *Mapping
	emit    func([]byte, []int) error
	onError func(int, error)
	stats   Stats
	now     time.Time

	// per-row scratch
	sb        strings.Builder
	arena     []byte
	propSpan  []span
	traitSpan []span
	product   []byte
	rowTotals []decimal
	tmp       big.Rat
	hasTS     bool
	ts        time.Time
	uid       string
	aid       string
	mid       string
	rowHash   [sha256.Size]byte
	hasher    hash.Hash
	occ       map[[16]byte]uint32
	msg       []byte
}

// Convert reads CSV (header row first) from r and calls emit with each
// message as Segment JSON (one object, with "type"), together with the CSV
// lines it was built from. Invalid rows are reported through onError (with a
// *RowError) and skipped; a group whose message cannot be built is reported
// through onError with its first line (a *GroupError). The rest continues.
//
// Every emitted message passes event.DecodeMessage(msg, "", now). emit owns
// msg and lines (they are not reused). A nil emit makes a dry run that only
// validates and counts; a nil onError drops the reports (Stats still counts
// them).
//
// With group_by, rows are read to the end before anything is emitted (the
// rows of one group may be anywhere in the file), then groups are emitted in
// the order of their first row. Only the compiled result of each row is
// kept, not the row: about 500 bytes per group plus 60–100 bytes per row
// for the UCI mapping, so ~100–500 MB for 1e6 lines depending on how many
// lines an order has. Without group_by, rows are streamed and emitted one
// by one (without message_id, ~40 bytes per row are kept to tell identical
// rows apart).
//
// Convert returns an error, and stops, if the header lacks a column the
// mapping reads (an *Error naming the setting), on a read error, when ctx is
// done, or when emit fails (that error is returned as is).
func (m *Mapping) Convert(ctx context.Context, r io.Reader, emit func(msg []byte, lines []int) error, onError func(line int, err error)) (Stats, error) {
	if onError == nil {
		onError = func(int, error) {}
	}
	if emit == nil { // a dry run: validate only
		emit = func([]byte, []int) error { return nil }
	}
	br := bufio.NewReaderSize(r, 1<<16)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xEF\xBB\xBF")) {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.Comma = m.delimiter
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Stats{}, errors.New("CSV input is empty: a header row is required")
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return Stats{}, fmt.Errorf("CSV header (line %d): %v", pe.StartLine, pe.Err)
		}
		return Stats{}, err
	}
	b, err := m.bind(header)
	if err != nil {
		return Stats{}, err
	}
	c := &converter{
		b: b, m: m, emit: emit, onError: onError, now: time.Now(),
		propSpan:  make([]span, len(b.props)),
		traitSpan: make([]span, len(b.traits)),
		rowTotals: make([]decimal, len(b.totals)),
	}
	if m.messageID == nil {
		c.hasher = sha256.New()
		if len(m.groupBy) == 0 {
			c.occ = map[[16]byte]uint32{}
		}
	}
	grouped := len(m.groupBy) > 0
	var (
		groups map[string]*group
		order  []*group
	)
	if grouped {
		groups = map[string]*group{}
	}
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return c.stats, err
			}
		}
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return c.stats, err
			}
			c.stats.Rows++
			c.bad(&RowError{Line: pe.StartLine, Reason: "malformed CSV: " + pe.Err.Error()})
			continue
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue
		}
		c.stats.Rows++
		if len(rec) != b.ncols {
			c.bad(&RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), b.ncols)})
			continue
		}
		var g *group
		if grouped {
			key, rerr := c.groupKey(rec, line)
			if rerr != nil {
				c.bad(rerr)
				continue
			}
			if g = groups[key]; g == nil {
				g = c.newGroup(strings.Clone(key), rec)
				groups[g.key] = g // not key: it would keep the whole line alive
				order = append(order, g)
			}
		} else {
			g = c.newGroup("", rec)
		}
		if rerr := c.row(rec, line, g); rerr != nil {
			if grouped && !m.skipRow {
				rerr.GroupBy = strings.Join(m.groupBy, ", ")
				if !g.bad {
					g.bad = true
					g.products, g.props, g.traits, g.totals, g.lines = nil, nil, nil, nil, nil
				}
			}
			c.bad(rerr)
		}
		if !grouped {
			if err := c.finish(g); err != nil {
				return c.stats, err
			}
		}
	}
	groups = nil
	for i, g := range order {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return c.stats, err
			}
		}
		if err := c.finish(g); err != nil {
			return c.stats, err
		}
		order[i] = nil // let the group's memory go
	}
	return c.stats, nil
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func (c *converter) bad(e *RowError) {
	c.stats.BadRows++
	c.onError(e.Line, e)
}

func (c *converter) groupKey(rec []string, line int) (string, *RowError) {
	idx := c.b.groupIdx
	if len(idx) == 1 {
		k := strings.TrimSpace(rec[idx[0]])
		if k == "" {
			return "", &RowError{Line: line, Column: c.m.groupBy[0], Field: "group_by", Reason: "empty (rows are grouped by it)"}
		}
		return k, nil
	}
	c.sb.Reset()
	empty := true
	for i, j := range idx {
		if i > 0 {
			c.sb.WriteByte(0)
		}
		v := strings.TrimSpace(rec[j])
		if v != "" {
			empty = false
		}
		c.sb.WriteString(v)
	}
	if empty {
		return "", &RowError{Line: line, Field: "group_by", Reason: "group_by columns are all empty"}
	}
	return c.sb.String(), nil
}

func (c *converter) newGroup(key string, rec []string) *group {
	c.stats.Groups++
	g := &group{key: key}
	if r := c.m.refund; r != nil {
		v := strings.TrimSpace(rec[c.b.refund])
		if r.hasEquals {
			g.refund = v == r.equals
		} else {
			g.refund = strings.HasPrefix(v, r.prefix)
		}
	}
	g.props = make([][]byte, len(c.b.props))
	g.traits = make([][]byte, len(c.b.traits))
	g.totals = make([]decimal, len(c.b.totals))
	return g
}

// value computes one field of a row into the arena. A literal's JSON is
// constant and not copied.
func (c *converter) value(f *bfield, rec []string, line int, strip string) (span, *RowError) {
	if f.hasLit {
		return span{}, nil
	}
	s := f.text(rec, &c.sb)
	if strip != "" {
		s = strings.TrimPrefix(s, strip)
	}
	if s == "" {
		if f.required {
			return span{}, c.fieldErr(f, line, "empty")
		}
		return span{}, nil
	}
	start := len(c.arena)
	js, _, reason := f.typed(s, c.arena)
	if reason != "" {
		return span{}, c.fieldErr(f, line, reason)
	}
	c.arena = js
	return span{start, len(js)}, nil
}

func (c *converter) fieldErr(f *bfield, line int, reason string) *RowError {
	e := &RowError{Line: line, Field: f.path, Reason: reason}
	if f.idx >= 0 {
		e.Column = f.column
	}
	return e
}

// id computes an identifier field (user_id, anonymous_id, message_id).
func (c *converter) id(f *bfield, rec []string, line int) (string, *RowError) {
	if f == nil {
		return "", nil
	}
	s := f.text(rec, &c.sb)
	if s == "" {
		if f.required {
			return "", c.fieldErr(f, line, "empty")
		}
		return "", nil
	}
	if f.typ == typeInt {
		n, reason := parseInt(s)
		if reason != "" {
			return "", c.fieldErr(f, line, reason)
		}
		return strconv.FormatInt(n, 10), nil
	}
	if !utf8.ValidString(s) {
		return "", c.fieldErr(f, line, "not valid UTF-8 (is the file UTF-8 encoded?)")
	}
	if len(s) > event.MaxIDBytes {
		return "", c.fieldErr(f, line, "longer than "+strconv.Itoa(event.MaxIDBytes)+" bytes")
	}
	return s, nil
}

// row evaluates every field for one row and, if all are valid, merges the
// row into g.
func (c *converter) row(rec []string, line int, g *group) *RowError {
	b, m := c.b, c.m
	c.arena = c.arena[:0]
	c.hasTS = false
	var rerr *RowError
	if b.ts != nil {
		s := b.ts.text(rec, &c.sb)
		switch {
		case s == "" && b.ts.required:
			return c.fieldErr(b.ts, line, "empty")
		case s != "":
			t, reason := b.ts.parseTime(s)
			if reason != "" {
				return c.fieldErr(b.ts, line, reason)
			}
			c.ts, c.hasTS = t, true
		}
	}
	if c.uid, rerr = c.id(b.uid, rec, line); rerr != nil {
		return rerr
	}
	if c.aid, rerr = c.id(b.aid, rec, line); rerr != nil {
		return rerr
	}
	if c.mid, rerr = c.id(b.mid, rec, line); rerr != nil {
		return rerr
	}
	for i := range b.props {
		strip := ""
		if i == m.orderIDIndex && g.refund && m.refund.stripOrderID {
			strip = m.refund.prefix
		}
		if c.propSpan[i], rerr = c.value(&b.props[i], rec, line, strip); rerr != nil {
			return rerr
		}
	}
	for i := range b.traits {
		if c.traitSpan[i], rerr = c.value(&b.traits[i], rec, line, ""); rerr != nil {
			return rerr
		}
	}
	if len(b.prods) > 0 {
		p := append(c.product[:0], '{')
		for i := range b.prods {
			f := &b.prods[i]
			var js []byte
			if f.hasLit {
				js = f.litJSON
			} else {
				sp, rerr := c.value(f, rec, line, "")
				if rerr != nil {
					return rerr
				}
				js = c.arena[sp.start:sp.end]
			}
			if len(js) == 0 {
				continue
			}
			if len(p) > 1 {
				p = append(p, ',')
			}
			p = appendString(p, m.products[i].key)
			p = append(p, ':')
			p = append(p, js...)
		}
		c.product = append(p, '}')
	}
	for i, cols := range b.totals {
		t := &c.rowTotals[i]
		t.setOne()
		for _, j := range cols {
			if reason := t.mulText(rec[j], &c.tmp); reason != "" {
				return &RowError{Line: line, Column: b.header[j], Field: m.totals[i].path, Reason: reason}
			}
		}
	}
	if c.hasher != nil {
		c.hasher.Reset()
		var n [binary.MaxVarintLen64]byte
		for _, f := range rec {
			c.hasher.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
			io.WriteString(c.hasher, f)
		}
		c.hasher.Sum(c.rowHash[:0])
	}

	// The row is valid: merge it.
	if g.bad {
		return nil
	}
	g.lines = append(g.lines, line)
	if c.hasTS && (!g.hasTS || c.ts.Before(g.ts)) {
		g.ts, g.hasTS = c.ts, true
	}
	if g.uid == "" && c.uid != "" {
		g.uid = strings.Clone(c.uid)
	}
	if g.aid == "" && c.aid != "" {
		g.aid = strings.Clone(c.aid)
	}
	if g.mid == "" && c.mid != "" {
		g.mid = strings.Clone(c.mid)
	}
	for i, sp := range c.propSpan {
		if g.props[i] == nil && sp.end > sp.start {
			g.props[i] = bytes.Clone(c.arena[sp.start:sp.end])
		}
	}
	for i, sp := range c.traitSpan {
		if g.traits[i] == nil && sp.end > sp.start {
			g.traits[i] = bytes.Clone(c.arena[sp.start:sp.end])
		}
	}
	if len(b.prods) > 0 {
		if len(g.products) > 0 {
			g.products = append(g.products, ',')
		}
		g.products = append(g.products, c.product...)
	}
	for i := range c.rowTotals {
		g.totals[i].add(&c.rowTotals[i])
	}
	if c.hasher != nil {
		var carry uint64
		for i := range g.digest {
			w := binary.LittleEndian.Uint64(c.rowHash[i*8:])
			s := g.digest[i] + w
			c1 := uint64(0)
			if s < w {
				c1 = 1
			}
			s2 := s + carry
			if s2 < s {
				c1 = 1
			}
			g.digest[i], carry = s2, c1
		}
	}
	return nil
}

// finish builds, validates and emits g's message.
func (c *converter) finish(g *group) error {
	if g.bad || len(g.lines) == 0 {
		c.stats.SkippedGroups++
		return nil
	}
	fail := func(err error) error {
		c.stats.SkippedGroups++
		c.onError(g.lines[0], &GroupError{Lines: g.lines, Err: err})
		return nil
	}
	m, b := c.m, c.b
	evt := m.event
	if g.refund {
		evt = m.refund.event
	}
	if g.uid == "" && g.aid == "" {
		switch {
		case m.userID != nil && m.anonymousID != nil:
			return fail(errors.New("user_id and anonymous_id are both empty"))
		case m.userID != nil:
			return fail(errors.New("user_id is empty (set anonymous_id for guest rows)"))
		default:
			return fail(errors.New("anonymous_id is empty"))
		}
	}
	mid := g.mid
	if m.messageID != nil && mid == "" {
		return fail(errors.New("message_id is empty"))
	}
	if m.messageID == nil {
		mid = c.defaultID(evt, g)
	}

	msg := append(c.msg[:0], `{"type":"track","event":`...)
	msg = appendString(msg, evt)
	msg = append(msg, `,"messageId":`...)
	msg = appendString(msg, mid)
	if g.uid != "" {
		msg = append(msg, `,"userId":`...)
		msg = appendString(msg, g.uid)
	} else {
		msg = append(msg, `,"anonymousId":`...)
		msg = appendString(msg, g.aid)
	}
	if g.hasTS {
		msg = append(msg, `,"timestamp":"`...)
		msg = g.ts.AppendFormat(msg, time.RFC3339Nano)
		msg = append(msg, '"')
	}
	msg = append(msg, `,"properties":{`...)
	n := 0
	member := func(key string, js []byte) {
		if n > 0 {
			msg = append(msg, ',')
		}
		n++
		msg = appendString(msg, key)
		msg = append(msg, ':')
		msg = append(msg, js...)
	}
	for i := range b.props {
		js := g.props[i]
		if b.props[i].hasLit {
			js = b.props[i].litJSON
		}
		if js != nil {
			member(m.properties[i].key, js)
		}
	}
	var num []byte
	for i, t := range m.totals {
		x := g.totals[i].float()
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return fail(errors.New(t.path + ": out of range"))
		}
		if t.abs {
			x = math.Abs(x)
		}
		num = appendFloat(num[:0], x)
		member(t.key, num)
	}
	if len(b.prods) > 0 {
		if n > 0 {
			msg = append(msg, ',')
		}
		n++
		msg = append(msg, `"products":[`...)
		msg = append(msg, g.products...)
		msg = append(msg, ']')
	}
	msg = append(msg, '}')
	traits := false
	for i := range b.traits {
		js := g.traits[i]
		if b.traits[i].hasLit {
			js = b.traits[i].litJSON
		}
		if js == nil {
			continue
		}
		if !traits {
			msg = append(msg, `,"context":{"traits":{`...)
			traits = true
		} else {
			msg = append(msg, ',')
		}
		msg = appendString(msg, m.traits[i].key)
		msg = append(msg, ':')
		msg = append(msg, js...)
	}
	if traits {
		msg = append(msg, "}}"...)
	}
	msg = append(msg, '}')
	c.msg = msg

	if _, err := event.DecodeMessage(msg, "", c.now); err != nil {
		return fail(err)
	}
	out := bytes.Clone(msg)
	if err := c.emit(out, g.lines); err != nil {
		return err
	}
	c.stats.Messages++
	if g.refund {
		c.stats.Refunds++
	}
	if g.uid == "" {
		c.stats.Guests++
	}
	return nil
}

// defaultID derives a stable messageId when the mapping sets none: a hash of
// the event name, the group key and the group's rows (independent of their
// order in the file). Without group_by, identical rows are told apart by
// their occurrence count.
func (c *converter) defaultID(evt string, g *group) string {
	h := sha256.New()
	io.WriteString(h, "custody-csv-v1\x00")
	io.WriteString(h, evt)
	h.Write([]byte{0})
	if len(c.m.groupBy) > 0 {
		io.WriteString(h, g.key)
		h.Write([]byte{0})
		var d [32]byte
		for i, w := range g.digest {
			binary.LittleEndian.PutUint64(d[i*8:], w)
		}
		h.Write(d[:])
	} else {
		var k [16]byte
		copy(k[:], c.rowHash[:])
		occ := c.occ[k]
		c.occ[k] = occ + 1
		h.Write(c.rowHash[:])
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], occ)
		h.Write(n[:])
	}
	sum := h.Sum(nil)
	return "csv-" + hex.EncodeToString(sum[:16])
}
