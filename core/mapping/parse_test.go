package mapping

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// base is a minimal valid mapping; cases append to it.
const base = "event: Order Completed\nuser_id: {column: CustomerID}\n"

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"empty", "", "mapping file is empty"},
		{"comment only", "# nothing\n", "mapping file is empty"},
		{"not a mapping", "- a\n- b\n", "expected a mapping of settings at the top level"},
		{"bad yaml", "event: [\n", "invalid YAML: line 1: did not find expected node content"},
		{"invalid utf8", "event: \xff\n", "mapping file is not valid UTF-8"},
		{"unknown top key", base + "grup_by: InvoiceNo\n", "grup_by: unknown key (expected one of " + topKeys + ")"},
		{"duplicate key", base + "event: X\n", "event: set twice"},
		{"no event", "user_id: {column: C}\n", "event: required (the event each group of rows becomes, e.g. Order Completed)"},
		{"null event", "event:\nuser_id: {column: C}\n", "event: expected a string, got nothing"},
		{"blank event", "event: \" \"\nuser_id: {column: C}\n", "event: empty"},
		{"long event", "event: " + strings.Repeat("e", 1025) + "\nuser_id: {column: C}\n", "event: longer than 1024 bytes"},
		{"no identity", "event: E\n", "user_id: user_id or anonymous_id is required"},
		{"format", base + "format: xlsx\n", `format: unsupported format "xlsx" (only csv)`},
		{"delimiter long", base + "delimiter: \";;\"\n", "delimiter: must be a single character"},
		{"delimiter quote", base + "delimiter: '\"'\n", "delimiter: cannot be a quote or a line break"},
		{"group_by map", base + "group_by: {a: b}\n", "group_by: expected a string, got a mapping"},
		{"group_by empty list", base + "group_by: []\n", "group_by: empty list"},
		{"group_by item", base + "group_by: [A, {x: 1}]\n", "group_by[1]: expected a string, got a mapping"},
		{"on_bad_row", base + "on_bad_row: ignore\n", `on_bad_row: unknown value "ignore" (expected skip_group or skip_row)`},

		// field specs
		{"unknown type", base + "products:\n  quantity: {column: Quantity, type: integer}\n",
			`products.quantity.type: unknown type "integer" (expected string, int, float, bool or time)`},
		{"field scalar", base + "properties:\n  country: Country\n",
			`properties.country: expected a mapping such as {column: Name}, {value: x} or {template: "x-{Name}"}, got a scalar`},
		{"field unknown key", base + "properties:\n  country: {colum: Country}\n",
			"properties.country.colum: unknown key (expected one of " + fieldKeys + ")"},
		{"field no source", base + "properties:\n  country: {type: string}\n", "properties.country: needs one of column, value or template"},
		{"field two sources", base + "properties:\n  country: {column: A, value: B}\n", "properties.country: column, value and template are mutually exclusive"},
		{"empty column", base + "properties:\n  country: {column: \"\"}\n", "properties.country.column: empty column name"},
		{"column list", base + "properties:\n  country: {column: [A]}\n", "properties.country.column: expected a string, got a list"},
		{"trim not bool", base + "products:\n  name: {column: D, trim: yes please}\n", "products.name.trim: expected true or false"},
		{"abs on string", base + "products:\n  name: {column: D, abs: true}\n", "products.name.abs: only for type int or float"},
		{"layout on int", base + "properties:\n  n: {column: D, type: int, layout: \"2006\"}\n", "properties.n.layout: only for type time"},
		{"timezone on string", base + "properties:\n  n: {column: D, type: string, timezone: UTC}\n", "properties.n.timezone: only for type time"},
		{"bad layout", base + "timestamp: {column: D, layout: \"YYYY-MM-DD\"}\n",
			`timestamp.layout: not a Go time layout with year, month and day (such as "2006-01-02 15:04:05")`},
		{"bad timezone", base + "timestamp: {column: D, timezone: Mars/Olympus}\n", `timestamp.timezone: unknown time zone "Mars/Olympus"`},
		{"local timezone", base + "timestamp: {column: D, timezone: Local}\n", "timestamp.timezone: must be an IANA time zone name such as UTC or Europe/London"},
		{"timestamp type", base + "timestamp: {column: D, type: string}\n", "timestamp.type: must be time"},
		{"timestamp value", base + "timestamp: {value: \"2020-01-01\"}\n", "timestamp.value: a constant timestamp is not allowed; use column"},
		{"user_id type", "event: E\nuser_id: {column: C, type: float}\n", "user_id.type: must be string or int"},
		{"user_id value", "event: E\nuser_id: {value: u1}\n", "user_id.value: a constant would give every row the same identity; use column or template"},
		{"message_id value", base + "message_id: {value: m}\n", "message_id.value: a constant would make every message a duplicate; use column or template"},
		{"value list", base + "properties:\n  c: {value: [1]}\n", "properties.c.value: expected a scalar, got a list"},
		{"value null", base + "properties:\n  c: {value: null}\n", "properties.c.value: expected a scalar, got nothing"},
		{"value empty", base + "properties:\n  c: {value: \"\"}\n", "properties.c.value: empty"},
		{"default bad int", base + "properties:\n  c: {column: C, type: int, default: none}\n", "properties.c.default: not an integer"},
		{"value bad int", base + "properties:\n  c: {value: abc, type: int}\n", "properties.c.value: not an integer"},
		{"template unclosed", base + "anonymous_id: {template: \"guest-{Invoice\"}\n", `anonymous_id.template: unclosed "{" (write "{{" for a literal brace)`},
		{"template unmatched", base + "anonymous_id: {template: \"guest-}{Invoice}\"}\n", `anonymous_id.template: unmatched "}" (write "}}" for a literal brace)`},
		{"template empty name", base + "anonymous_id: {template: \"guest-{ }\"}\n", `anonymous_id.template: empty column name in "{}"`},
		{"template constant", base + "anonymous_id: {template: \"guest\"}\n", "anonymous_id.template: no {column} placeholder; use value for a constant"},
		{"properties list", base + "properties: [a]\n", "properties: expected a mapping, got a list"},
		{"properties dup", base + "properties:\n  a: {value: 1}\n  a: {value: 2}\n", "properties.a: set twice"},
		{"properties products", base + "properties:\n  products: {value: 1}\nproducts:\n  id: {column: S}\n", "properties.products: conflicts with the products section"},

		// totals
		{"totals no sum", base + "totals:\n  revenue: {abs: true}\n", "totals.revenue.sum: needs at least one column (sum: [Quantity, UnitPrice] sums Quantity*UnitPrice)"},
		{"totals empty sum", base + "totals:\n  revenue: {sum: []}\n", "totals.revenue.sum: needs at least one column (sum: [Quantity, UnitPrice] sums Quantity*UnitPrice)"},
		{"totals bad item", base + "totals:\n  revenue: {sum: [Quantity, {a: 1}]}\n", "totals.revenue.sum[1]: expected a column name"},
		{"totals unknown", base + "totals:\n  revenue: {sum: Q, round: 2}\n", "totals.revenue.round: unknown key (expected one of sum, abs)"},
		{"totals vs properties", base + "properties:\n  revenue: {value: 1}\ntotals:\n  revenue: {sum: Q}\n", "totals.revenue: also set in properties"},

		// refund
		{"refund no column", base + "refund: {prefix: C}\n", "refund.column: required (the column that marks a refund)"},
		{"refund no rule", base + "refund: {column: InvoiceNo}\n", "refund: needs exactly one of prefix or equals"},
		{"refund two rules", base + "refund: {column: InvoiceNo, prefix: C, equals: R}\n", "refund: needs exactly one of prefix or equals"},
		{"refund empty prefix", base + "refund: {column: InvoiceNo, prefix: \"\"}\n", "refund.prefix: empty"},
		{"refund strip without prefix", base + "refund: {column: S, equals: refunded, order_id_strip_prefix: true}\n", "refund.order_id_strip_prefix: needs refund.prefix"},
		{"refund strip without order_id", base + "refund: {column: S, prefix: C, order_id_strip_prefix: true}\n", "refund.order_id_strip_prefix: properties.order_id is not set"},
		{"refund unknown", base + "refund: {column: S, prefix: C, when: x}\n", "refund.when: unknown key (expected one of column, prefix, equals, event, order_id_strip_prefix)"},
		{"refund event", base + "refund: {column: S, prefix: C, event: \"\"}\n", "refund.event: empty"},

		// JSON mapping files go through the same checks.
		{"json", `{"event": "E", "user_id": {"column": "C"}, "products": {"quantity": {"column": "Q", "type": "integer"}}}`,
			`products.quantity.type: unknown type "integer" (expected string, int, float, bool or time)`},
		{"json syntax", `{"event": "E", "user_id": {"column": "C"}`, "invalid YAML: line 1: did not find expected ',' or '}'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse([]byte(c.src))
			if err == nil {
				t.Fatalf("no error, got %+v", m)
			}
			if err.Error() != c.want {
				t.Errorf("error = %q\nwant    %q", err, c.want)
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Errorf("not an *Error: %T", err)
			}
		})
	}
}

func TestParseLine(t *testing.T) {
	_, err := Parse([]byte(base + "products:\n  quantity:\n    column: Quantity\n    type: integer\n"))
	var me *Error
	if !errors.As(err, &me) || me.Path != "products.quantity.type" || me.Line != 6 {
		t.Errorf("err = %#v", err)
	}
}

func TestParseValid(t *testing.T) {
	// The shipped mapping, as YAML and as the equivalent JSON.
	y := retailMapping(t)
	j := mustParse(t, `{
	"format": "csv", "delimiter": ",", "event": "Order Completed", "group_by": "InvoiceNo",
	"timestamp": {"column": "InvoiceDate", "layout": "2006-01-02 15:04:05", "timezone": "Europe/London"},
	"user_id": {"column": "CustomerID", "trim_suffix": ".0"},
	"anonymous_id": {"template": "guest-{InvoiceNo}"},
	"message_id": {"template": "import-{InvoiceNo}"},
	"refund": {"column": "InvoiceNo", "prefix": "C", "event": "Order Refunded", "order_id_strip_prefix": true},
	"properties": {"order_id": {"column": "InvoiceNo"}, "currency": {"value": "GBP"}, "country": {"column": "Country"}},
	"products": {
		"product_id": {"column": "StockCode"}, "name": {"column": "Description", "trim": true},
		"quantity": {"column": "Quantity", "type": "int", "abs": true}, "price": {"column": "UnitPrice", "type": "float"}
	},
	"totals": {"revenue": {"sum": ["Quantity", "UnitPrice"], "abs": true}, "total": {"sum": ["Quantity", "UnitPrice"], "abs": true}},
	"traits": {"country": {"column": "Country"}}
}`)
	csv := readFile(t, "testdata/online_retail.csv")
	a, b := run(t, y, csv), run(t, j, csv)
	if len(a.msgs) != len(b.msgs) {
		t.Fatalf("%d vs %d messages", len(a.msgs), len(b.msgs))
	}
	for i := range a.msgs {
		if string(a.msgs[i].raw) != string(b.msgs[i].raw) {
			t.Errorf("message %d differs:\n%s\n%s", i, a.msgs[i].raw, b.msgs[i].raw)
		}
	}

	// Anchors and aliases, tab delimiter, literal types, equals refunds, a
	// list group_by, null sections.
	m := mustParse(t, `
event: E
delimiter: tab
group_by: [Shop, Order]
anonymous_id: &id {template: "{Shop}-{Order}"}
message_id: *id
refund: {column: Status, equals: refunded}
properties:
  n: {value: 3}
  f: {value: 2.5}
  b: {value: true}
  s: {value: "3", type: string}
  when: {value: "2020-01-02", type: time}
traits:
products:
`)
	res := run(t, m, "Shop\tOrder\tStatus\na\t1\tpaid\nb\t1\trefunded\na\t1\tpaid\n")
	if len(res.msgs) != 2 || res.stats.Refunds != 1 {
		t.Fatalf("stats %+v", res.stats)
	}
	want := `{"type":"track","event":"E","messageId":"a-1","anonymousId":"a-1","properties":{"n":3,"f":2.5,"b":true,"s":"3","when":"2020-01-02T00:00:00Z"}}`
	if string(res.msgs[0].raw) != want || fmt.Sprint(res.msgs[0].lines) != "[2 4]" {
		t.Errorf("got %s %v", res.msgs[0].raw, res.msgs[0].lines)
	}
	if res.msgs[1].msg.Event != "Order Refunded" {
		t.Errorf("refund event = %q", res.msgs[1].msg.Event)
	}
}
