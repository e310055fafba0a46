package mapping

import (
	"math/big"
	"testing"
)

func TestDecimal(t *testing.T) {
	cases := []struct {
		rows [][]string
		want float64
	}{
		{[][]string{{"3", "0.1"}, {"3", "0.2"}}, 0.9},
		{[][]string{{"-2", "4.15"}, {"-8", "1.69"}}, -21.82},
		{[][]string{{"2", "4.15"}, {"12", "1.95"}, {"4", "2.10"}}, 40.1},
		{[][]string{{" 1e2 ", "0.5"}}, 50},
		{[][]string{{"123456789012345678", "0.000000000000000001"}, {"1", "0.5"}}, 0.623456789012345678},
		{[][]string{{"999999999999999999", "999999999999999999"}}, 999999999999999998000000000000000001},
		{[][]string{{"9223372036854775807", "1"}, {"1", "1"}}, 9223372036854775808},
		{[][]string{{"0.1", "0.1"}, {"1e-300", "1"}}, 0.01},
		{[][]string{{".5", "+2."}}, 1},
		{[][]string{{"00000000000000000000000001.5", "2"}}, 3},
	}
	for _, c := range cases {
		var sum, row decimal
		var tmp big.Rat
		for _, r := range c.rows {
			row.setOne()
			for _, cell := range r {
				if reason := row.mulText(cell, &tmp); reason != "" {
					t.Fatalf("%v: %s", r, reason)
				}
			}
			sum.add(&row)
		}
		if got := sum.float(); got != c.want {
			t.Errorf("%v = %v, want %v", c.rows, got, c.want)
		}
	}
	var d decimal
	d.setOne()
	for _, bad := range []string{"", "x", "1,5", "£2", "NaN", "Inf", "0x10", "1e999", "1/2"} {
		if reason := d.mulText(bad, new(big.Rat)); reason == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}
