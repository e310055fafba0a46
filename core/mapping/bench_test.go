package mapping

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkConvert measures the UCI mapping on generated order lines
// (8 lines per invoice, invoices interleaved across the file).
func BenchmarkConvert(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
	const rows = 20000
	for i := 0; i < rows; i++ {
		inv := 500000 + i%(rows/8)
		fmt.Fprintf(&sb, "%d,%d,WHITE HANGING HEART T-LIGHT HOLDER ,%d,2011-10-06 16:20:00,%d.%02d,%d.0,United Kingdom\n",
			inv, 20000+i%3000, 1+i%12, i%10, i%100, 12000+i%4000)
	}
	input := sb.String()
	m := retailMapping(b)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		_, err := m.Convert(context.Background(), strings.NewReader(input), func([]byte, []int) error { return nil }, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
