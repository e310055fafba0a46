package server

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// LimitOptions bound failed authentication per client address: a token
// bucket of Burst tokens, refilled by one every Every. Each request with a
// missing or unknown key takes a token; without one it is answered 429
// with Retry-After instead of 401. Valid keys never take or need a token,
// so clients sharing an address with a guesser (a NAT, a proxy) keep
// working.
type LimitOptions struct {
	Burst int
	Every time.Duration
	// MaxClients bounds memory: at most this many addresses are tracked.
	// When they are all in use, failures from untracked addresses are
	// refused (429) until buckets refill and can be dropped.
	MaxClients int
}

// DefaultLimitOptions allow 30 failures at once and one more every 2s
// (30 a minute) per address, tracking at most 10000 addresses (~1 MB).
func DefaultLimitOptions() LimitOptions {
	return LimitOptions{Burst: 30, Every: 2 * time.Second, MaxClients: 10000}
}

// limiter is the per-address failure budget. It has no goroutine: full
// buckets (which mean the same as no bucket) are swept when the table is
// full, at most once per Every.
type limiter struct {
	opts LimitOptions
	now  func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(opts LimitOptions, now func() time.Time) *limiter {
	def := DefaultLimitOptions()
	if opts.Burst <= 0 {
		opts.Burst = def.Burst
	}
	if opts.Every <= 0 {
		opts.Every = def.Every
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = def.MaxClients
	}
	return &limiter{opts: opts, now: now, buckets: map[string]*bucket{}}
}

// refill brings b up to now.
func (l *limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(float64(l.opts.Burst), b.tokens+float64(d)/float64(l.opts.Every))
		b.at = now
	}
}

// fail records a failed authentication from addr. It reports false, and
// how long until the next attempt may fail with 401, when addr has no
// failure left.
func (l *limiter) fail(addr string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= l.opts.MaxClients && !l.sweep(now) {
			return l.opts.Every, false
		}
		b = &bucket{tokens: float64(l.opts.Burst), at: now}
		l.buckets[addr] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(l.opts.Every)), false
	}
	b.tokens--
	return 0, true
}

// sweep drops full buckets and reports whether there is room now.
func (l *limiter) sweep(now time.Time) bool {
	if now.Sub(l.lastSweep) < l.opts.Every {
		return false
	}
	l.lastSweep = now
	for a, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.opts.Burst) {
			delete(l.buckets, a)
		}
	}
	return len(l.buckets) < l.opts.MaxClients
}

// tracked is how many addresses have a bucket.
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// clientAddr is the request's peer address without the port. Forwarding
// headers are not trusted: anyone can set them.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// retryAfter is d in whole seconds, at least 1, for a Retry-After header.
func retryAfter(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
