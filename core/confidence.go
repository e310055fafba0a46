package core

import "math"

// Confidence intervals of a split comparison (docs/segments.md):
//
//   - difference of two proportions (conversion rates): the normal
//     approximation (Wald), p1-p2 ± 1.96·sqrt(p1(1-p1)/n1 + p2(1-p2)/n2);
//   - difference of two means (revenue per person): Welch's t interval,
//     m1-m2 ± t(0.975, ν)·sqrt(s1²/n1 + s2²/n2), with the
//     Welch–Satterthwaite degrees of freedom ν; s² the sample variances.
//
// Both need at least two people in each group, and some variation.

// z975 is the 0.975 quantile of the standard normal distribution.
const z975 = 1.959963984540054

// running accumulates a mean and a sum of squared deviations (Welford),
// which stay exact where sum-of-squares formulas lose digits.
type running struct {
	n    int
	mean float64
	m2   float64
}

func (r *running) add(x float64) {
	r.n++
	d := x - r.mean
	r.mean += d / float64(r.n)
	r.m2 += d * (x - r.mean)
}

// variance is the sample variance (n-1).
func (r running) variance() float64 {
	if r.n < 2 {
		return math.NaN()
	}
	return r.m2 / float64(r.n-1)
}

// proportionDiffCI is the Wald interval of p1-p2 (ok false when a group
// has fewer than two people or neither varies).
func proportionDiffCI(x1, n1, x2, n2 int) (diff, lo, hi float64, ok bool) {
	if n1 == 0 || n2 == 0 {
		return 0, 0, 0, false
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	diff = p1 - p2
	se := math.Sqrt(p1*(1-p1)/float64(n1) + p2*(1-p2)/float64(n2))
	if n1 < 2 || n2 < 2 || se == 0 {
		return diff, 0, 0, false
	}
	return diff, diff - z975*se, diff + z975*se, true
}

// meanDiffCI is Welch's interval of m1-m2.
func meanDiffCI(a, b running) (diff, lo, hi float64, ok bool) {
	if a.n == 0 || b.n == 0 {
		return 0, 0, 0, false
	}
	diff = a.mean - b.mean
	if a.n < 2 || b.n < 2 {
		return diff, 0, 0, false
	}
	va, vb := a.variance()/float64(a.n), b.variance()/float64(b.n)
	se := math.Sqrt(va + vb)
	if se == 0 {
		return diff, 0, 0, false
	}
	df := (va + vb) * (va + vb) / (va*va/float64(a.n-1) + vb*vb/float64(b.n-1))
	t := studentQuantile975(df)
	return diff, diff - t*se, diff + t*se, true
}

// studentQuantile975 is the 0.975 quantile of Student's t distribution
// with df degrees of freedom (df > 0, not necessarily whole), found by
// bisection on the distribution function.
func studentQuantile975(df float64) float64 {
	if df > 1e7 || math.IsInf(df, 1) {
		return z975
	}
	lo, hi := 0.0, 1e4
	for range 200 {
		mid := (lo + hi) / 2
		if studentCDF(mid, df) < 0.975 {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo < 1e-12 {
			break
		}
	}
	return (lo + hi) / 2
}

// studentCDF is P(T <= t) for t >= 0: 1 - I_x(df/2, 1/2)/2 with
// x = df/(df+t²).
func studentCDF(t, df float64) float64 {
	x := df / (df + t*t)
	return 1 - 0.5*regIncBeta(x, df/2, 0.5)
}

// regIncBeta is the regularized incomplete beta function I_x(a, b),
// by its continued fraction (modified Lentz), using the symmetry
// I_x(a,b) = 1 - I_{1-x}(b,a) where the fraction converges slowly.
func regIncBeta(x, a, b float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log1p(-x))
	if x > (a+1)/(a+b+2) {
		return 1 - front*betaFraction(1-x, b, a)/b
	}
	return front * betaFraction(x, a, b) / a
}

func betaFraction(x, a, b float64) float64 {
	const tiny, eps = 1e-300, 1e-15
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	f := d
	for m := 1; m <= 300; m++ {
		fm := float64(m)
		// Even step.
		num := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		f *= d * c
		// Odd step.
		num = -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		f *= delta
		if math.Abs(delta-1) < eps {
			break
		}
	}
	return f
}
