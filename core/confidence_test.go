package core

import (
	"math"
	"testing"
)

// Student's t quantiles against values computed with 30-digit arithmetic
// (numerical integration of the density).
func TestStudentQuantile(t *testing.T) {
	for _, tc := range []struct{ df, want float64 }{
		{1, 12.7062047361949}, {2, 4.30265272974946}, {5, 2.57058183563632}, {10, 2.22813885198627},
		{30, 2.04227245630124}, {100, 1.98397151852355}, {5.55847795014253, 2.49480740590251}, {1e9, z975},
	} {
		if got := studentQuantile975(tc.df); math.Abs(got-tc.want) > 1e-8 {
			t.Errorf("t(0.975, %g) = %.12f, want %.12f", tc.df, got, tc.want)
		}
	}
}

func TestDifferenceIntervals(t *testing.T) {
	// 30/100 vs 20/100: 0.1 ± 1.959964·sqrt(.21/100 + .16/100).
	d, lo, hi, ok := proportionDiffCI(30, 100, 20, 100)
	se := math.Sqrt(0.3*0.7/100 + 0.2*0.8/100)
	if !ok || math.Abs(d-0.1) > 1e-12 || math.Abs(lo-(0.1-z975*se)) > 1e-12 || math.Abs(hi-(0.1+z975*se)) > 1e-12 {
		t.Fatalf("proportions: %v [%v, %v] %v", d, lo, hi, ok)
	}
	if _, _, _, ok := proportionDiffCI(0, 10, 0, 10); ok {
		t.Fatal("no variation gives no interval")
	}
	if _, _, _, ok := proportionDiffCI(1, 1, 0, 10); ok {
		t.Fatal("one person gives no interval")
	}
	var a, b running
	for _, x := range []float64{1, 2, 3, 4} {
		a.add(x)
	}
	for _, x := range []float64{2, 2, 2, 2, 4} {
		b.add(x)
	}
	// Means 2.5 and 2.4; variances 5/3 and 0.8.
	if math.Abs(a.variance()-5.0/3) > 1e-12 || math.Abs(b.variance()-0.8) > 1e-12 {
		t.Fatalf("variances %v %v", a.variance(), b.variance())
	}
	d, lo, hi, ok = meanDiffCI(a, b)
	va, vb := 5.0/3/4, 0.8/5
	df := (va + vb) * (va + vb) / (va*va/3 + vb*vb/4)
	half := studentQuantile975(df) * math.Sqrt(va+vb)
	if !ok || math.Abs(d-0.1) > 1e-12 || math.Abs(lo-(0.1-half)) > 1e-12 || math.Abs(hi-(0.1+half)) > 1e-12 {
		t.Fatalf("means: %v [%v, %v] %v", d, lo, hi, ok)
	}
}
