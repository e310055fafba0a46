package mapping

import (
	"context"
	"encoding/csv"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/custody-cdp/custody/core/event"
)

// checkConvert runs Convert and checks the invariants that must hold for any
// input: no panic, every message decodes, lines are valid, stats add up.
func checkConvert(t *testing.T, m *Mapping, input string) {
	var emittedLines int
	stats, err := m.Convert(context.Background(), strings.NewReader(input),
		func(msg []byte, lines []int) error {
			if _, err := event.DecodeMessage(msg, "", testNow); err != nil {
				t.Fatalf("emitted message does not decode: %v\n%s", err, msg)
			}
			if len(lines) == 0 {
				t.Fatalf("message without lines: %s", msg)
			}
			for i, l := range lines {
				if l < 2 || (i > 0 && l <= lines[i-1]) {
					t.Fatalf("bad lines %v", lines)
				}
			}
			emittedLines += len(lines)
			return nil
		},
		func(line int, err error) {
			if line < 1 || err == nil {
				t.Fatalf("onError(%d, %v)", line, err)
			}
		})
	if err != nil {
		return // header problems and the like
	}
	if stats.Messages+stats.SkippedGroups != stats.Groups || emittedLines > stats.Rows || stats.Refunds > stats.Messages || stats.Guests > stats.Messages {
		t.Fatalf("stats don't add up: %+v (emitted lines %d)", stats, emittedLines)
	}
}

func FuzzConvert(f *testing.F) {
	retail, err := os.ReadFile("testdata/online_retail.csv")
	if err != nil {
		f.Fatal(err)
	}
	header := "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
	f.Add(string(retail), false)
	f.Add(string(retail), true)
	f.Add(header+"C1,1,d,-1,2011-01-01 00:00:00,1e300,1.0,UK\nC1,1,d,-1,2011-01-01 00:00:00,1e300,1.0,UK\n", false)
	f.Add(header+"1,\"a\"\"b\",\"x\ny\",1,2011-01-01 00:00:00,0.1,,UK\n,,,,,,,\n", false)
	f.Add(header+"1,2,3\n\"", true)
	f.Add("\xEF\xBB\xBF"+header+"1,2,3,4.0,2011-01-01 00:00:00,5,\xff,7\n", false)
	f.Add("", false)
	grouped, err := Parse(mustRead(f, "testdata/online_retail.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	perRow, err := Parse(mustRead(f, "testdata/per_row.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, input string, rows bool) {
		m := grouped
		if rows {
			m = perRow
		}
		checkConvert(t, m, input)
	})
}

func FuzzParse(f *testing.F) {
	f.Add(string(mustRead(f, "testdata/online_retail.yaml")))
	f.Add(string(mustRead(f, "testdata/per_row.yaml")))
	f.Add(`{"event":"E","anonymous_id":{"template":"{A}{{}}"},"properties":{"x":{"column":"A","type":"time","layout":"2006-01-02","timezone":"Asia/Tokyo"}},"totals":{"t":{"sum":["A","A","A"]}}}`)
	f.Add("event: E\ngroup_by: [A, B]\nuser_id: {column: A, type: int, default: \"7\"}\nrefund: {column: B, equals: x}\nproducts:\n  q: {column: B, type: bool}\n  r: {column: A, type: float, abs: true}\non_bad_row: skip_row\n")
	f.Add("a: &a [*a]\n")
	f.Add("event: E\nuser_id: &u {column: A}\nanonymous_id: *u\nmessage_id: *u\n")
	f.Fuzz(func(t *testing.T, src string) {
		m, err := Parse([]byte(src))
		if err != nil {
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("not an *Error: %T %v", err, err)
			}
			return
		}
		// Feed it a CSV with exactly the columns it reads, with values of
		// every shape.
		cols := m.Columns()
		if len(cols) == 0 {
			cols = []string{"unused"}
		}
		var b strings.Builder
		w := csv.NewWriter(&b)
		w.Comma = m.delimiter
		w.Write(cols)
		for _, v := range []string{"1", "C1", "2011-10-06 16:20:00", "-2.5", "", " x ", "true", "12923.0", "1e5"} {
			row := make([]string, len(cols))
			for i := range row {
				row[i] = v
			}
			w.Write(row)
		}
		w.Flush()
		if w.Error() != nil {
			return
		}
		if err := m.CheckHeader(cols); err != nil {
			t.Fatalf("CheckHeader(Columns()) = %v", err)
		}
		checkConvert(t, m, b.String())
	})
}

func mustRead(f *testing.F, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
