package policies

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// checkCacheAgrees decides in with both engines and fails unless they agree
// (same decision, or both the same kind of error).
func checkCacheAgrees(t testing.TB, cached, uncached *Engine, in Input) {
	t.Helper()
	ctx := context.Background()
	want, werr := uncached.Decide(ctx, in)
	got, gerr := cached.Decide(ctx, in)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("errors differ: cached %v, uncached %v\ninput %+v", gerr, werr, in)
	}
	if werr != nil {
		if !errors.Is(werr, ErrInvalidInput) {
			t.Fatalf("unexpected error %v\ninput %+v", werr, in)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cached decision differs from uncached\ncached   %+v\nuncached %+v\ninput %+v\nkey %q", got, want, in, cacheKey(&in))
	}
	if len(want.Reasons) == 0 {
		t.Fatalf("decision without reason for %+v", in)
	}
}

// TestCacheMatchesUncached is the property that makes the cache safe: for
// random inputs, and for siblings that share their cache key, the cached
// decision equals the one the policy computes.
func TestCacheMatchesUncached(t *testing.T) {
	cached := newEngine(t, Options{CacheSize: 1 << 16})
	uncached := newEngine(t, Options{CacheSize: -1})
	n := 4000
	if testing.Short() {
		n = 500
	}
	c := randChooser{newRand(1)}
	for range n {
		in := randomInput(c)
		checkCacheAgrees(t, cached, uncached, in)
		sib := sibling(in, c)
		if validate(&in) == nil && cacheKey(&in) != cacheKey(&sib) {
			t.Fatalf("sibling has another key\n%q\n%q", cacheKey(&in), cacheKey(&sib))
		}
		checkCacheAgrees(t, cached, uncached, sib)
	}
	st := cached.CacheStats()
	if st.Hits < uint64(n/2) {
		t.Fatalf("only %d hits in %d decisions: siblings should hit", st.Hits, 2*n)
	}
	t.Logf("cache: %+v", st)
}

func TestCacheKeyDistinguishes(t *testing.T) {
	base := baseInput()
	base.Subject.Consents = map[string]Consent{"marketing": granted()}
	base.Subject.Age = ptr(20)
	key := cacheKey(&base)
	edits := map[string]func(in *Input){
		"action":         func(in *Input) { in.Action = ActionSegmentExport },
		"purpose":        func(in *Input) { in.Purpose = "marketing.communications.sms" },
		"kind":           func(in *Input) { in.Destination.Kind = KindAds },
		"region":         func(in *Input) { in.Destination.Region = "US" },
		"field order":    func(in *Input) { in.Destination.Fields = []string{"first_name", "email", "email_sha256"} },
		"field repeated": func(in *Input) { in.Destination.Fields = append(in.Destination.Fields, "email") },
		"jurisdiction":   func(in *Input) { in.Subject.Jurisdiction = "eu" },
		"role":           func(in *Input) { in.Requester.Role = RoleDPO },
		"gpc":            func(in *Input) { in.Subject.GPC = true },
		"restricted":     func(in *Input) { in.Subject.Restricted = true },
		"age band":       func(in *Input) { in.Subject.Age = ptr(15) },
		"age unknown":    func(in *Input) { in.Subject.Age = nil },
		"record status": func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": withStatus(granted(), StatusDenied)}
		},
		"record basis": func(in *Input) {
			c := granted()
			c.LawfulBasis = ""
			in.Subject.Consents = map[string]Consent{"marketing": c}
		},
		"record expired": func(in *Input) {
			in.Subject.Consents = map[string]Consent{"marketing": expiringAt(granted(), testNow())}
		},
		"record moved":      func(in *Input) { in.Subject.Consents = map[string]Consent{"marketing.communications": granted()} },
		"record added":      func(in *Input) { in.Subject.Consents["marketing.communications.email"] = granted() },
		"objection":         func(in *Input) { in.Subject.Objections = []string{"marketing"} },
		"objection to self": func(in *Input) { in.Subject.Objections = []string{"marketing.communications.email"} },
	}
	for name, edit := range edits {
		in := baseInput()
		in.Subject.Consents = map[string]Consent{"marketing": granted()}
		in.Subject.Age = ptr(20)
		edit(&in)
		if cacheKey(&in) == key {
			t.Errorf("%s: same key", name)
		}
	}
	same := map[string]func(in *Input){
		"name": func(in *Input) { in.Destination.Name = "other" },
		"timestamps": func(in *Input) {
			c := granted()
			c.At = time.Time{}
			in.Subject.Consents["marketing"] = c
			in.Now = in.Now.Add(time.Hour)
		},
		"unrelated record":  func(in *Input) { in.Subject.Consents["marketing.communications.sms"] = granted() },
		"descendant record": func(in *Input) { in.Subject.Consents["marketing.communications.email.weekly"] = granted() },
		"unrelated objection": func(in *Input) {
			in.Subject.Objections = []string{"analytics", "marketingx", "marketing.communications.e"}
		},
		"age in band": func(in *Input) { in.Subject.Age = ptr(99) },
	}
	for name, edit := range same {
		in := baseInput()
		in.Subject.Consents = map[string]Consent{"marketing": granted()}
		in.Subject.Age = ptr(20)
		edit(&in)
		if cacheKey(&in) != key {
			t.Errorf("%s: key changed", name)
		}
	}
}

func TestCacheBoundedLRU(t *testing.T) {
	c := newDecisionCache(3)
	d := func(r string) Decision { return Decision{Reasons: []string{r}} }
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		c.put(k, d(k))
		if st := c.stats(); st.Entries > 3 || st.Entries < 1 || st.Capacity != 3 {
			t.Fatalf("after %d puts: %+v", i+1, st)
		}
	}
	// Three shards of one entry each: whatever is left is right.
	hits := 0
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if got, ok := c.get([]byte(k)); ok {
			hits++
			if got.Reasons[0] != k {
				t.Fatalf("%s -> %v", k, got)
			}
		}
	}
	if hits == 0 || hits > 3 {
		t.Fatalf("%d hits", hits)
	}
	// A single shard evicts the least recently used entry.
	one := newDecisionCache(2)
	one.shards = one.shards[:1]
	one.shards[0].max = 2
	one.put("a", d("a"))
	one.put("b", d("b"))
	one.get([]byte("a"))
	one.put("c", d("c"))
	if _, ok := one.get([]byte("b")); ok {
		t.Fatal("b should have been evicted")
	}
	if _, ok := one.get([]byte("a")); !ok {
		t.Fatal("a, recently used, was evicted")
	}
}

// A hit is what nearly every decision of a segment evaluation is: building
// its key and looking it up must not allocate (a million keys as strings
// were a twentieth of an evaluation's garbage).
func TestCacheHitDoesNotAllocate(t *testing.T) {
	c := newDecisionCache(16)
	in := Input{Action: ActionSegmentEvaluate, Purpose: "marketing.email", Subject: Subject{Jurisdiction: "EU",
		Consents: map[string]Consent{"marketing": {Status: "granted"}}}, Requester: Requester{Role: "marketer"}}
	c.put(cacheKey(&in), Decision{Allow: true})
	allocs := testing.AllocsPerRun(100, func() {
		var buf [512]byte
		if d, ok := c.get(appendCacheKey(buf[:0], &in)); !ok || !d.Allow {
			t.Fatal("missed")
		}
	})
	if allocs != 0 {
		t.Fatalf("a cache hit allocated %.0f times", allocs)
	}
}

// FuzzInput builds inputs from the fuzzer's bytes and checks that deciding
// never panics and that the cache (shared across the fuzz run, so entries
// of earlier inputs are hit) agrees with the policy, for the input and a
// sibling that shares its key.
func FuzzInput(f *testing.F) {
	cached := newEngine(f, Options{CacheSize: 1024})
	uncached := newEngine(f, Options{CacheSize: -1})
	for _, seed := range [][]byte{
		{}, {0}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		{3, 7, 0, 0, 4, 2, 1, 0, 0, 1, 3, 3, 3, 2, 1, 6, 4, 5, 0, 1, 2},
		[]byte("custody consent gate fuzz seed: GDPR CCPA GPC"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &byteChooser{b: data}
		in := randomInput(c)
		checkCacheAgrees(t, cached, uncached, in)
		checkCacheAgrees(t, cached, uncached, sibling(in, c))
	})
}
