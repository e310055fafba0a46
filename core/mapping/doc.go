// Package mapping turns tabular exports (CSV with a header row) into
// Segment-spec track messages through a declarative column mapping, so that
// `custody import FILE --map MAPPING` can load a shop's order history.
//
// A mapping file (YAML, or JSON) names the event, how rows are grouped into
// one message (group_by: the lines of one order), where the identity, time
// and message id come from, which groups are refunds, and how columns become
// properties, products[] elements, computed totals and context.traits:
//
//	event: Order Completed
//	group_by: InvoiceNo
//	timestamp: {column: InvoiceDate, layout: "2006-01-02 15:04:05", timezone: Europe/London}
//	user_id: {column: CustomerID, trim_suffix: ".0"}
//	anonymous_id: {template: "guest-{InvoiceNo}"}
//	message_id: {template: "import-{InvoiceNo}"}
//	refund: {column: InvoiceNo, prefix: "C", event: Order Refunded, order_id_strip_prefix: true}
//	properties:
//	  order_id: {column: InvoiceNo}
//	  currency: {value: GBP}
//	products:
//	  quantity: {column: Quantity, type: int, abs: true}
//	  price: {column: UnitPrice, type: float}
//	totals:
//	  revenue: {sum: [Quantity, UnitPrice], abs: true}
//	traits:
//	  country: {column: Country}
//
// README.md in this directory is the user documentation of the format;
// examples/online_retail.yaml is a complete mapping for the UCI "Online
// Retail" data set.
//
// # Use
//
// Parse validates a mapping file; every error is an *Error whose Path names
// the setting ("products.quantity.type: unknown type ..."). Convert binds
// the mapping to the CSV header (a missing column is an *Error naming the
// setting that reads it), then calls emit with each message and the CSV lines
// it came from. A Mapping is immutable and may be used by several Convert
// calls at once.
//
// # Guarantees
//
//   - Every emitted message is one JSON object with "type":"track" that
//     event.DecodeMessage(msg, "", now) accepts; Convert checks this before
//     emitting, and reports a group whose message would be rejected (over
//     32 KiB, id over 1 KiB, no identity) instead of emitting it.
//   - Bad rows never stop the import: they are reported through onError with
//     their line number and skipped. With group_by, the default
//     (on_bad_row: skip_group) also leaves out the rest of that row's group,
//     so an order is imported whole or not at all — and, since message ids
//     are stable, importing the corrected file later adds it.
//   - Errors never contain cell values (they are personal data): only line
//     numbers, column names, mapping paths and what is wrong.
//   - Totals are summed exactly in decimal, not in float64: 3 × 0.10 +
//     3 × 0.20 is 0.9, and the number written is the float64 nearest to the
//     exact sum.
//   - Output is deterministic: keys follow the mapping file's order, groups
//     the order of their first line, and message ids derived without a
//     message_id setting depend only on the rows' content.
//
// # Memory
//
// With group_by the whole file is read before the first message is emitted,
// because the lines of one order may be anywhere in it. Only each row's
// compiled result is kept (its products[] element, the totals and the
// group's first non-empty values): roughly 500 bytes per group plus 60–100
// bytes per row with the UCI mapping, i.e. a few hundred MB for 1e6 lines
// at worst. Without group_by rows are streamed.
package mapping
