package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var testNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

type emitted struct {
	raw   []byte
	lines []int
	msg   event.Message
	props map[string]any
}

type reported struct {
	line int
	err  error
}

type result struct {
	msgs  []emitted
	errs  []reported
	stats Stats
}

// run converts csv with mp; every emitted message must decode.
func run(t testing.TB, mp *Mapping, csv string) result {
	t.Helper()
	var res result
	stats, err := mp.Convert(context.Background(), strings.NewReader(csv),
		func(msg []byte, lines []int) error {
			m, err := event.DecodeMessage(msg, "", testNow)
			if err != nil {
				t.Fatalf("emitted message does not decode: %v\n%s", err, msg)
			}
			e := emitted{raw: msg, lines: append([]int(nil), lines...), msg: m}
			if len(m.Properties) > 0 {
				if err := json.Unmarshal(m.Properties, &e.props); err != nil {
					t.Fatal(err)
				}
			}
			res.msgs = append(res.msgs, e)
			return nil
		},
		func(line int, err error) { res.errs = append(res.errs, reported{line, err}) })
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	res.stats = stats
	return res
}

func mustParse(t testing.TB, src string) *Mapping {
	t.Helper()
	m, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func retailMapping(t testing.TB) *Mapping {
	return mustParse(t, readFile(t, "testdata/online_retail.yaml"))
}

func byOrder(t *testing.T, res result, messageID string) emitted {
	t.Helper()
	for _, e := range res.msgs {
		if e.msg.MessageID == messageID {
			return e
		}
	}
	t.Fatalf("no message %s", messageID)
	return emitted{}
}

func products(t *testing.T, e emitted) []map[string]any {
	t.Helper()
	raw, ok := e.props["products"].([]any)
	if !ok {
		t.Fatalf("products missing: %s", e.raw)
	}
	var out []map[string]any
	for _, p := range raw {
		out = append(out, p.(map[string]any))
	}
	return out
}

func TestConvertOnlineRetail(t *testing.T) {
	res := run(t, retailMapping(t), readFile(t, "testdata/online_retail.csv"))

	want := Stats{Rows: 13, Groups: 7, Messages: 6, Refunds: 1, Guests: 2, BadRows: 1, SkippedGroups: 1}
	if res.stats != want {
		t.Errorf("stats = %+v, want %+v", res.stats, want)
	}

	// Groups come out in the order of their first line.
	var ids []string
	for _, e := range res.msgs {
		ids = append(ids, e.msg.MessageID)
	}
	if got := strings.Join(ids, " "); got != "import-569901 import-536365 import-C569902 import-570001 import-570002 import-547596" {
		t.Errorf("order = %s", got)
	}

	t.Run("multi-line invoice far apart", func(t *testing.T) {
		e := byOrder(t, res, "import-569901")
		if fmt.Sprint(e.lines) != "[2 5 14]" {
			t.Errorf("lines = %v", e.lines)
		}
		if e.msg.Type != event.Track || e.msg.Event != "Order Completed" {
			t.Errorf("type/event = %s/%s", e.msg.Type, e.msg.Event)
		}
		if e.msg.UserID != "12923" || e.msg.AnonymousID != "" {
			t.Errorf("userId = %q anonymousId = %q", e.msg.UserID, e.msg.AnonymousID)
		}
		// Earliest line time, Europe/London summer time -> UTC.
		if got := e.msg.Timestamp.Format(time.RFC3339); got != "2011-10-06T15:20:00Z" {
			t.Errorf("timestamp = %s", got)
		}
		// 2*4.15 + 12*1.95 + 4*2.10, exact to the cent.
		if e.props["revenue"] != 40.1 || e.props["total"] != 40.1 {
			t.Errorf("revenue = %v total = %v", e.props["revenue"], e.props["total"])
		}
		if e.props["order_id"] != "569901" || e.props["currency"] != "GBP" || e.props["country"] != "United Kingdom" {
			t.Errorf("properties = %v", e.props)
		}
		ps := products(t, e)
		if len(ps) != 3 {
			t.Fatalf("products = %v", ps)
		}
		if ps[0]["product_id"] != "23256" || ps[0]["name"] != "CHILDRENS CUTLERY SPACEBOY" || ps[0]["quantity"] != 2.0 || ps[0]["price"] != 4.15 {
			t.Errorf("products[0] = %v (trailing space must be trimmed)", ps[0])
		}
		if ps[2]["product_id"] != "22384" || ps[2]["quantity"] != 4.0 {
			t.Errorf("products[2] = %v", ps[2])
		}
		if got := e.msg.TraitString("country"); got != "United Kingdom" {
			t.Errorf("context.traits.country = %q", got)
		}
	})

	t.Run("cents", func(t *testing.T) {
		// 3*0.1 + 3*0.2 is 0.9000000000000001 in float64 arithmetic.
		e := byOrder(t, res, "import-570001")
		if e.props["revenue"] != 0.9 {
			t.Errorf("revenue = %v, want 0.9", e.props["revenue"])
		}
		if !bytes.Contains(e.raw, []byte(`"revenue":0.9,`)) {
			t.Errorf("raw = %s", e.raw)
		}
	})

	t.Run("refund", func(t *testing.T) {
		e := byOrder(t, res, "import-C569902")
		if e.msg.Event != "Order Refunded" {
			t.Errorf("event = %q", e.msg.Event)
		}
		if e.props["order_id"] != "569902" {
			t.Errorf("order_id = %v, want the invoice without C", e.props["order_id"])
		}
		// |-2*4.15 - 8*1.69| = 21.82
		if e.props["total"] != 21.82 || e.props["revenue"] != 21.82 {
			t.Errorf("total = %v revenue = %v", e.props["total"], e.props["revenue"])
		}
		for _, p := range products(t, e) {
			if q := p["quantity"].(float64); q <= 0 {
				t.Errorf("refund quantity %v is not positive", q)
			}
		}
	})

	t.Run("guest", func(t *testing.T) {
		e := byOrder(t, res, "import-536365")
		if e.msg.UserID != "" || e.msg.AnonymousID != "guest-536365" {
			t.Errorf("userId = %q anonymousId = %q", e.msg.UserID, e.msg.AnonymousID)
		}
		if e.props["revenue"] != 35.64 {
			t.Errorf("revenue = %v", e.props["revenue"])
		}
		if got := e.msg.Timestamp.Format(time.RFC3339); got != "2010-12-01T08:26:00Z" {
			t.Errorf("timestamp = %s (GMT in winter)", got)
		}
		// An empty description is left out of its product, not sent as "".
		g := byOrder(t, res, "import-547596")
		ps := products(t, g)
		if _, ok := ps[0]["name"]; ok || ps[0]["quantity"] != 5.0 || g.props["revenue"] != 0.0 {
			t.Errorf("547596 = %s", g.raw)
		}
	})

	t.Run("quoted delimiter", func(t *testing.T) {
		e := byOrder(t, res, "import-570002")
		if ps := products(t, e); ps[0]["name"] != "RED HANGING HEART, T-LIGHT HOLDER" {
			t.Errorf("name = %v", ps[0]["name"])
		}
	})

	t.Run("bad row", func(t *testing.T) {
		if len(res.errs) != 1 {
			t.Fatalf("errors = %v", res.errs)
		}
		r := res.errs[0]
		want := "line 6: column Quantity: not an integer; all rows with the same InvoiceNo are skipped"
		if r.line != 6 || r.err.Error() != want {
			t.Errorf("got line %d %q, want %q", r.line, r.err, want)
		}
		var re *RowError
		if !errors.As(r.err, &re) || re.Column != "Quantity" || re.Field != "products.quantity" {
			t.Errorf("RowError = %+v", re)
		}
		for _, e := range res.msgs {
			if strings.Contains(string(e.raw), "570000") {
				t.Errorf("group of the bad row was emitted: %s", e.raw)
			}
		}
	})
}

func TestSkipRow(t *testing.T) {
	src := readFile(t, "testdata/online_retail.yaml") + "on_bad_row: skip_row\n"
	res := run(t, mustParse(t, src), readFile(t, "testdata/online_retail.csv"))
	if len(res.errs) != 1 || res.errs[0].err.Error() != "line 6: column Quantity: not an integer" {
		t.Fatalf("errors = %v", res.errs)
	}
	e := byOrder(t, res, "import-570000")
	if fmt.Sprint(e.lines) != "[9]" || e.props["revenue"] != 17.7 {
		t.Errorf("570000 without its bad line: lines %v, %s", e.lines, e.raw)
	}
	want := Stats{Rows: 13, Groups: 7, Messages: 7, Refunds: 1, Guests: 2, BadRows: 1}
	if res.stats != want {
		t.Errorf("stats = %+v, want %+v", res.stats, want)
	}
}

// The golden file pins the exact bytes emitted for the fixture.
func TestGolden(t *testing.T) {
	cases := []struct{ mapping, csv, golden string }{
		{"testdata/online_retail.yaml", "testdata/online_retail.csv", "testdata/online_retail.golden"},
		{"testdata/per_row.yaml", "testdata/online_retail.csv", "testdata/per_row.golden"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.golden), func(t *testing.T) {
			res := run(t, mustParse(t, readFile(t, c.mapping)), readFile(t, c.csv))
			var b bytes.Buffer
			for _, e := range res.msgs {
				fmt.Fprintf(&b, "# lines %v\n%s\n", e.lines, e.raw)
			}
			for _, r := range res.errs {
				fmt.Fprintf(&b, "# error %s\n", r.err)
			}
			fmt.Fprintf(&b, "# stats %+v\n", res.stats)
			if *update {
				if err := os.WriteFile(c.golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := readFile(t, c.golden)
			if b.String() != want {
				t.Errorf("output differs from %s (run go test -update):\n%s", c.golden, b.String())
			}
		})
	}
}

func TestExampleMatchesTestdata(t *testing.T) {
	if readFile(t, "examples/online_retail.yaml") != readFile(t, "testdata/online_retail.yaml") {
		t.Error("examples/online_retail.yaml and testdata/online_retail.yaml differ")
	}
}

func TestMissingHeaderColumn(t *testing.T) {
	csv := "Invoice,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n1,2,3,4,5,6,7,8\n"
	_, err := retailMapping(t).Convert(context.Background(), strings.NewReader(csv),
		func([]byte, []int) error { t.Fatal("emitted"); return nil }, nil)
	if err == nil {
		t.Fatal("no error")
	}
	first := strings.Split(err.Error(), "\n")[0]
	if first != `group_by: column "InvoiceNo" is not in the CSV header` {
		t.Errorf("err = %v", err)
	}
	var me *Error
	if !errors.As(err, &me) || me.Path != "group_by" {
		t.Errorf("not an *Error with the path: %#v", err)
	}
	for _, want := range []string{"anonymous_id.template", "message_id.template", "refund.column", "properties.order_id.column"} {
		if !strings.Contains(err.Error(), want+`: column "InvoiceNo" is not in the CSV header`) {
			t.Errorf("missing %s in %v", want, err)
		}
	}

	m := mustParse(t, "event: E\nuser_id: {column: customerid}\n")
	err = m.CheckHeader([]string{"CustomerID"})
	if err == nil || err.Error() != `user_id.column: column "customerid" is not in the CSV header (did you mean "CustomerID"?)` {
		t.Errorf("err = %v", err)
	}
	err = m.CheckHeader([]string{"customerid", " customerid "})
	if err == nil || err.Error() != `user_id.column: column "customerid" appears more than once in the CSV header` {
		t.Errorf("err = %v", err)
	}
	if got := fmt.Sprint(retailMapping(t).Columns()); got != "[InvoiceNo InvoiceDate CustomerID Country StockCode Description Quantity UnitPrice]" {
		t.Errorf("Columns = %s", got)
	}
}

func TestEmptyInput(t *testing.T) {
	_, err := retailMapping(t).Convert(context.Background(), strings.NewReader(""), func([]byte, []int) error { return nil }, nil)
	if err == nil || !strings.Contains(err.Error(), "header row is required") {
		t.Errorf("err = %v", err)
	}
	// A header and nothing else is fine.
	res := run(t, retailMapping(t), "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
	if res.stats != (Stats{}) || len(res.msgs) != 0 {
		t.Errorf("stats = %+v", res.stats)
	}
}

func TestPerRowDefaultIDs(t *testing.T) {
	m := mustParse(t, readFile(t, "testdata/per_row.yaml"))
	csv := "CustomerID;InvoiceNo;StockCode;Quantity;InvoiceDate;UnitPrice\r\n" +
		"12923.0;1;A;1;2011-01-01 10:00:00;1.5\r\n" +
		"12923.0;1;A;1;2011-01-01 10:00:00;1.5\r\n" + // identical line: a second, distinct message
		";2;B;2;2011-01-01 10:00:00;2\r\n" +
		";;;;;\r\n" + // blank row: ignored
		"\r\n"
	m.delimiter = ';'
	res := run(t, m, "\uFEFF"+csv)
	if len(res.errs) != 0 || len(res.msgs) != 3 {
		t.Fatalf("msgs %d errs %v", len(res.msgs), res.errs)
	}
	if res.msgs[0].msg.UserID != "12923" {
		t.Errorf("type int user_id = %q", res.msgs[0].msg.UserID)
	}
	if res.msgs[0].msg.MessageID == res.msgs[1].msg.MessageID {
		t.Error("identical rows got the same messageId")
	}
	if res.msgs[2].msg.AnonymousID != "guest-2" || res.stats.Guests != 1 || res.stats.Rows != 3 {
		t.Errorf("guest: %s stats %+v", res.msgs[2].raw, res.stats)
	}
	if res.msgs[0].props["gift"] != false {
		t.Errorf("literal bool: %s", res.msgs[0].raw)
	}
	// Stable across runs.
	again := run(t, m, csv)
	for i := range res.msgs {
		if res.msgs[i].msg.MessageID != again.msgs[i].msg.MessageID || !strings.HasPrefix(res.msgs[i].msg.MessageID, "csv-") {
			t.Errorf("messageId %d not stable: %s vs %s", i, res.msgs[i].msg.MessageID, again.msgs[i].msg.MessageID)
		}
	}
}

func TestGroupedDefaultIDIgnoresRowOrder(t *testing.T) {
	src := strings.Replace(readFile(t, "testdata/online_retail.yaml"), "message_id:\n  template: \"import-{InvoiceNo}\"", "", 1)
	m := mustParse(t, src)
	if m.messageID != nil {
		t.Fatal("message_id still set")
	}
	head := "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
	a := "1,X,x,1,2011-01-01 10:00:00,1,5.0,UK\n"
	b := "1,Y,y,2,2011-01-01 10:00:00,1,5.0,UK\n"
	c := "2,Y,y,2,2011-01-01 10:00:00,1,5.0,UK\n"
	r1 := run(t, m, head+a+c+b)
	r2 := run(t, m, head+b+a+c)
	r3 := run(t, m, head+a+a+c)
	id1, id2, id3 := r1.msgs[0].msg.MessageID, r2.msgs[0].msg.MessageID, r3.msgs[0].msg.MessageID
	if id1 != id2 {
		t.Errorf("row order changed the id: %s %s", id1, id2)
	}
	if id1 == id3 || id1 == r1.msgs[1].msg.MessageID {
		t.Error("different groups share an id")
	}
}

func TestRowErrors(t *testing.T) {
	m := mustParse(t, `
event: E
group_by: Order
user_id: {column: User, required: true}
timestamp: {column: When}
properties:
  n: {column: N, type: float}
  ok: {column: Flag, type: bool}
totals:
  t: {sum: [N, Price]}
`)
	csv := "Order,User,When,N,Flag,Price\n" +
		"1,u,2020-01-01,1,yes,1\n" + // 2 ok
		",u,2020-01-01,1,yes,1\n" + // 3 empty group key
		"3,,2020-01-01,1,yes,1\n" + // 4 required
		"4,u,SECRET-1,1,yes,1\n" + // 5 time
		"5,u,2020-01-01,SECRET,yes,1\n" + // 6 float
		"6,u,2020-01-01,1,SECRET,1\n" + // 7 bool
		"7,u,2020-01-01,1,yes,SECRET\n" + // 8 totals
		"8,u,2020-01-01,1,yes\n" + // 9 field count
		"9,u,\"SECRET\"x,1,yes,1\n" + // 10 malformed
		"10,u,,1,yes,1\n" + // 11 empty timestamp
		"11,u,2020-01-01,1e999,yes,1\n" + // 12
		"12,u\xff,2020-01-01,1,yes,1\n" + // 13
		"13,u,2020-01-01,\"1\n2\",yes,1\n" + // 14-15: a quoted newline, still a number error at line 14
		"14,u,2020-01-01,1,yes,1\n" // 16 ok
	res := run(t, m, csv)
	want := []string{
		"line 3: column Order: empty (rows are grouped by it)",
		"line 4: column User: empty; all rows with the same Order are skipped",
		`line 5: column When: not a time (set layout, e.g. "2006-01-02 15:04:05"); all rows with the same Order are skipped`,
		"line 6: column N: not a number; all rows with the same Order are skipped",
		"line 7: column Flag: not a boolean (expected true/false, yes/no or 1/0); all rows with the same Order are skipped",
		"line 8: column Price: not a number; all rows with the same Order are skipped",
		"line 9: has 5 fields, the header has 6",
		`line 10: malformed CSV: extraneous or missing " in quoted-field`,
		"line 11: column When: empty; all rows with the same Order are skipped",
		"line 12: column N: number out of range; all rows with the same Order are skipped",
		"line 13: column User: not valid UTF-8 (is the file UTF-8 encoded?); all rows with the same Order are skipped",
		"line 14: column N: not a number; all rows with the same Order are skipped",
	}
	var got []string
	for _, r := range res.errs {
		got = append(got, r.err.Error())
		if strings.Contains(r.err.Error(), "SECRET") {
			t.Errorf("error leaks a cell value: %v", r.err)
		}
		if !strings.HasPrefix(r.err.Error(), fmt.Sprintf("line %d: ", r.line)) {
			t.Errorf("line %d does not match %v", r.line, r.err)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(res.msgs) != 2 || res.msgs[0].msg.UserID != "u" || fmt.Sprint(res.msgs[1].lines) != "[16]" {
		t.Errorf("the rest was lost: %d messages", len(res.msgs))
	}
	if res.stats.BadRows != len(want) || res.stats.Messages+res.stats.SkippedGroups != res.stats.Groups {
		t.Errorf("stats = %+v", res.stats)
	}
}

func TestGroupErrors(t *testing.T) {
	m := mustParse(t, `
event: E
group_by: Order
user_id: {column: User}
properties:
  note: {column: Note}
products:
  name: {column: Name}
`)
	big := strings.Repeat("n", 10000)
	var b strings.Builder
	b.WriteString("Order,User,Note,Name\n")
	b.WriteString("1,,,a\n")                                   // no identity
	b.WriteString("2,u," + strings.Repeat("x", 2000) + ",a\n") // ok
	for i := 0; i < 4; i++ {
		b.WriteString("3,u,," + big + "\n") // 40 KB message
	}
	b.WriteString("4,u,,a\n")
	res := run(t, m, b.String())
	if len(res.errs) != 2 {
		t.Fatalf("errors = %v", res.errs)
	}
	if got := res.errs[0].err.Error(); got != "line 2: user_id is empty (set anonymous_id for guest rows)" {
		t.Errorf("err 0 = %q", got)
	}
	got := res.errs[1].err.Error()
	if res.errs[1].line != 4 || !strings.HasPrefix(got, "line 4: group of 4 rows (lines 4, 5, 6, 7): ") || !errors.Is(res.errs[1].err, event.ErrMessageTooLarge) {
		t.Errorf("err 1 = %d %q", res.errs[1].line, got)
	}
	if len(res.msgs) != 2 || res.stats.SkippedGroups != 2 || res.stats.BadRows != 0 {
		t.Errorf("msgs %d stats %+v", len(res.msgs), res.stats)
	}
}

func TestTemplates(t *testing.T) {
	m := mustParse(t, `
event: E
anonymous_id: {template: "{{x}}-{A}-{B c}", trim_prefix: "{"}
properties:
  both: {template: "{A}/{B c}"}
  n: {template: "{A}{A}", type: int}
  d: {column: Missing, default: "none"}
  t: {column: When, type: time}
`)
	res := run(t, m, "A,B c,Missing,When\n 1 ,2,,2011-10-06T16:20:00+02:00\n,,,\n3,,,\n")
	if len(res.msgs) != 2 || len(res.errs) != 0 {
		t.Fatalf("msgs %d errs %v", len(res.msgs), res.errs)
	}
	e := res.msgs[0]
	if e.msg.AnonymousID != "x}-1-2" {
		t.Errorf("anonymousId = %q", e.msg.AnonymousID)
	}
	if e.props["both"] != "1/2" || e.props["n"] != 11.0 || e.props["d"] != "none" || e.props["t"] != "2011-10-06T14:20:00Z" {
		t.Errorf("props = %v", e.props)
	}
	if !e.msg.OriginalTimestamp.IsZero() || bytes.Contains(e.raw, []byte(`"timestamp"`)) {
		t.Errorf("no timestamp is mapped, got %s", e.raw)
	}
	if p := res.msgs[1].props; p["both"] != "3/" || p["n"] != 33.0 {
		t.Errorf("props = %v", p)
	}
	// A template whose placeholders are all empty is empty: the key is left out.
	res = run(t, m, "A,B c,Missing,When\n,x,,\n")
	if _, ok := res.msgs[0].props["n"]; ok || res.msgs[0].props["both"] != "/x" {
		t.Errorf("n should be left out: %s", res.msgs[0].raw)
	}
}

func TestEmitErrorAndCancel(t *testing.T) {
	m := retailMapping(t)
	boom := errors.New("boom")
	calls := 0
	_, err := m.Convert(context.Background(), strings.NewReader(readFile(t, "testdata/online_retail.csv")),
		func([]byte, []int) error { calls++; return boom }, nil)
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("err = %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.Convert(ctx, strings.NewReader(readFile(t, "testdata/online_retail.csv")),
		func([]byte, []int) error { t.Error("emitted after cancel"); return nil }, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// A larger generated file: invoices spread across the whole file, totals
// exact, every message decodes.
func TestConvertLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
	const invoices, lines = 500, 8
	for l := 0; l < lines; l++ {
		for i := 0; i < invoices; i++ {
			inv := fmt.Sprint(600000 + i)
			qty := l + 1
			if i%10 == 0 {
				inv = "C" + inv
				qty = -qty
			}
			cust := fmt.Sprintf("%d.0", 13000+i%50)
			if i%7 == 0 {
				cust = ""
			}
			fmt.Fprintf(&b, "%s,%d,ITEM %d ,%d,2011-01-02 10:%02d:00,0.%02d,%s,United Kingdom\n", inv, 20000+l, l, qty, l, 10+l, cust)
		}
	}
	res := run(t, retailMapping(t), b.String())
	if res.stats.Messages != invoices || len(res.errs) != 0 || res.stats.Refunds != invoices/10 {
		t.Fatalf("stats = %+v errs %v", res.stats, res.errs)
	}
	// sum over l of (l+1)*(0.10+0.01*l) for l = 0..7
	want := 0.0
	for l := 0; l < lines; l++ {
		want += float64(l+1) * float64(10+l)
	}
	want /= 100 // exact: integer cents, then one division
	for _, e := range res.msgs {
		if e.props["total"] != want || len(products(t, e)) != lines {
			t.Fatalf("%s: total %v want %v", e.msg.MessageID, e.props["total"], want)
		}
	}
}
