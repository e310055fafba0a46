// Command personalize is the personalisation benchmark of `make bench`
// (bench/personalize.sh runs it): a store of -people people (an identify
// with a user id, an anonymous id, a jurisdiction and, for some, a
// personalisation choice through the consent manager, then a few orders and
// page views), built through core.Ingest, with the usual segment templates
// applied and refreshed; then `custody serve`'s HTTP server on loopback and
//
//	(a) GET /v1/personalize from -clients keep-alive clients for -duration,
//	    alone;
//	(b) the same while another client ingests -ingest-rate messages a
//	    second in POST /v1/batch requests of -ingest-batch (orders, page
//	    views and consent changes of the same people, with the live
//	    membership updater running);
//	(c) the same with ingestion as fast as the server takes it (on a small
//	    machine this is CPU saturation: it shows how lookups degrade);
//	(d) core.CDP.Personalize called in-process under the ingestion of (b),
//	    to separate the lookup from HTTP.
//
// Lookups ask for random people by user id or anonymous id, and one in ten
// for someone unknown. It prints lookups per second, the share answered,
// p50/p90/p99/p99.9/max latency and the ingestion rate achieved meanwhile.
// Nothing is asserted: the figures go to docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/server"
	"github.com/custody-cdp/custody/identity"
)

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func main() {
	var (
		people   = flag.Int("people", 100_000, "people in the store")
		clients  = flag.Int("clients", 8, "concurrent lookup clients")
		duration = flag.Duration("duration", 20*time.Second, "length of each measured phase")
		batch    = flag.Int("ingest-batch", 200, "messages per ingestion request during (b), (c) and (d)")
		rate     = flag.Int("ingest-rate", 5000, "messages a second ingested during (b) and (d)")
		dir      = flag.String("dir", "", "data directory (default: a temporary one, removed)")
		seed     = flag.Uint64("seed", 1, "generator seed")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of phase (d) to this file")
		mutexpr  = flag.String("mutexprofile", "", "write a mutex contention profile of phase (d) to this file")
	)
	flag.Parse()
	ctx := context.Background()
	data := *dir
	if data == "" {
		d, err := os.MkdirTemp("", "custody-personalize-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		data = filepath.Join(d, "data")
	}
	fmt.Printf("machine       %d CPUs, %s\n", runtime.NumCPU(), runtime.Version())

	cfg := core.DefaultConfig()
	cfg.DataDir = data
	// The runtime settings of `custody serve`.
	debug.SetGCPercent(cfg.Server.GCPercent)
	debug.SetMemoryLimit(int64(cfg.Server.MemoryLimitMiB) << 20)
	if err := core.Init(ctx, cfg, core.Options{}); err != nil {
		log.Fatal(err)
	}
	// The wall clock: the live updater and the lookups run as in serve.
	c, err := core.Open(ctx, cfg, core.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	start := time.Now()
	msgs := load(ctx, c, *people, *seed)
	fmt.Printf("data          %d people, %d messages, loaded in %.1fs through core.Ingest\n", *people, msgs, time.Since(start).Seconds())
	start = time.Now()
	for _, t := range []string{"first_time_buyers", "repeat_buyers", "at_risk", "lapsed", "vip", "cart_abandoners", "browsers_without_purchase"} {
		if _, err := c.ApplyTemplate(ctx, t, nil); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := c.RefreshAll(ctx, time.Time{}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("segments      7 templates applied and refreshed in %.1fs\n", time.Since(start).Seconds())

	lkey, err := c.CreateAPIKey(ctx, core.RolePersonalize, "bench-storefront")
	if err != nil {
		log.Fatal(err)
	}
	ikey, err := c.CreateAPIKey(ctx, core.RoleIngest, "bench-ingest")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: server.New(c, server.DefaultOptions()).Handler()}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients + 2}, Timeout: 30 * time.Second}

	lookupHTTP := func(r *rand.Rand) (bool, error) {
		k, v := pick(r, *people)
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/personalize?"+url.Values{k: {v}}.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+lkey.Key)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		return !bytes.HasPrefix(b, []byte(`{"segments":[],"traits":{}}`)), nil
	}
	lookupCore := func(r *rand.Rand) (bool, error) {
		k, v := pick(r, *people)
		typ := identity.UserID
		if k == "anonymousId" {
			typ = identity.AnonymousID
		}
		p, err := c.Personalize(ctx, identity.Identifier{Type: typ, Value: v})
		return len(p.Traits) > 0, err
	}

	fmt.Printf("\nGET /v1/personalize, %d clients, %s a phase (latency in ms, over HTTP on loopback unless said)\n", *clients, *duration)
	fmt.Printf("%-32s %10s %9s %7s %7s %7s %7s %7s %12s\n", "phase", "lookups/s", "answered", "p50", "p90", "p99", "p99.9", "max", "ingest msg/s")
	run("(a) alone", *clients, *duration, lookupHTTP, nil)
	run(fmt.Sprintf("(b) ingesting %d msg/s", *rate), *clients, *duration, lookupHTTP, ingester(hc, base, ikey.Key, *people, *batch, *rate, *seed))
	run("(c) ingesting flat out", *clients, *duration, lookupHTTP, ingester(hc, base, ikey.Key, *people, *batch, 0, *seed+1))
	stopProfiles := profile(*cpuprof, *mutexpr)
	run(fmt.Sprintf("(d) in-process, %d msg/s", *rate), *clients, *duration, lookupCore, ingester(hc, base, ikey.Key, *people, *batch, *rate, *seed+2))
	stopProfiles()
	fmt.Printf("\npeak RSS      %s (VmHWM of this process: store, server, clients, generator)\n", vmHWM())
}

// pick is a lookup: a random person by user id or anonymous id, or (one in
// ten) someone unknown.
func pick(r *rand.Rand, people int) (string, string) {
	i := r.IntN(people)
	switch n := r.IntN(10); {
	case n == 0:
		return "userId", fmt.Sprintf("stranger-%d", r.Uint64())
	case n < 5:
		return "anonymousId", fmt.Sprintf("a%08d", i)
	default:
		return "userId", fmt.Sprintf("u%08d", i)
	}
}

// run measures one phase: clients looking up in a loop for d, while ingest
// (if any) runs; it prints one line.
func run(name string, clients int, d time.Duration, lookup func(*rand.Rand) (bool, error), ingest func(stop <-chan struct{}) (*atomic.Int64, <-chan struct{})) {
	stop := make(chan struct{})
	var ingested *atomic.Int64
	done := make(<-chan struct{})
	if ingest != nil {
		ingested, done = ingest(stop)
	}
	lat := make([][]time.Duration, clients)
	answered := make([]int, clients)
	var wg sync.WaitGroup
	t0 := time.Now()
	deadline := t0.Add(d)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(deadline) {
				s := time.Now()
				ok, err := lookup(r)
				if err != nil {
					log.Fatal(err)
				}
				lat[w] = append(lat[w], time.Since(s))
				if ok {
					answered[w]++
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	if ingest != nil {
		<-done
	}
	var all []time.Duration
	n, yes := 0, 0
	for w := range clients {
		all = append(all, lat[w]...)
		yes += answered[w]
	}
	n = len(all)
	slices.Sort(all)
	q := func(p float64) string {
		return fmt.Sprintf("%.2f", float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds())/1000)
	}
	ing := "–"
	if ingested != nil {
		ing = fmt.Sprintf("%.0f", float64(ingested.Load())/elapsed.Seconds())
	}
	fmt.Printf("%-32s %10.0f %8.0f%% %7s %7s %7s %7s %7s %12s\n", name, float64(n)/elapsed.Seconds(), 100*float64(yes)/float64(n),
		q(0.5), q(0.9), q(0.99), q(0.999), q(1), ing)
}

// ingester returns a function that starts one client posting batches of
// orders, page views and consent changes of existing people, rate a
// second (0: as fast as accepted), until stop; it counts the messages
// accepted and closes done when it has stopped.
func ingester(hc *http.Client, base, key string, people, size, rate int, seed uint64) func(<-chan struct{}) (*atomic.Int64, <-chan struct{}) {
	return func(stop <-chan struct{}) (*atomic.Int64, <-chan struct{}) {
		var n atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			r := rand.New(rand.NewPCG(seed, 7))
			start := time.Now()
			for seq := 0; ; seq++ {
				if rate > 0 {
					next := start.Add(time.Duration(float64(seq*size) / float64(rate) * float64(time.Second)))
					select {
					case <-stop:
						return
					case <-time.After(time.Until(next)):
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				var b strings.Builder
				b.WriteString(`{"batch":[`)
				for i := range size {
					if i > 0 {
						b.WriteByte(',')
					}
					p := r.IntN(people)
					ts := now.Add(-time.Duration(r.IntN(30*24)) * time.Hour).Format(time.RFC3339)
					mid := fmt.Sprintf("live-%d-%d-%d", seed, seq, i)
					switch k := r.IntN(10); {
					case k < 4:
						fmt.Fprintf(&b, `{"type":"track","messageId":%q,"userId":"u%08d","event":"Order Completed","properties":{"total":%d},"timestamp":%q}`, mid, p, 10+r.IntN(200), ts)
					case k < 9:
						fmt.Fprintf(&b, `{"type":"page","messageId":%q,"anonymousId":"a%08d","name":"Product","timestamp":%q}`, mid, p, ts)
					default:
						fmt.Fprintf(&b, `{"type":"page","messageId":%q,"anonymousId":"a%08d","context":{"consent":{"categoryPreferences":{"personalization":%v}}},"timestamp":%q}`,
							mid, p, r.IntN(2) == 0, ts)
					}
				}
				b.WriteString(`]}`)
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/batch", strings.NewReader(b.String()))
				req.SetBasicAuth(key, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					log.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					log.Fatalf("ingest: HTTP %d: %s", resp.StatusCode, body)
				}
				n.Add(int64(size))
			}
		}()
		return &n, done
	}
}

// load ingests the people: an identify (user id + anonymous id, a place,
// for half of them a personalisation choice, mostly yes), then 0-4 orders
// and a few page views. It returns the number of messages.
func load(ctx context.Context, c *core.CDP, people int, seed uint64) int {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	places := [][2]string{{"DE", ""}, {"FR", ""}, {"GB", ""}, {"US", "CA"}, {"US", "NY"}}
	work := make(chan []string, 8)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bodies := range work {
				msgs := make([]event.Message, 0, len(bodies))
				for _, b := range bodies {
					m, err := event.DecodeMessage([]byte(b), "", now)
					if err != nil {
						log.Fatalf("%s: %v", b, err)
					}
					msgs = append(msgs, m)
				}
				if _, err := c.Ingest(ctx, msgs); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	total := 0
	var batch []string
	for i := range people {
		pl := places[r.IntN(len(places))]
		consent := ""
		if r.IntN(2) == 0 {
			consent = fmt.Sprintf(`,"context":{"consent":{"categoryPreferences":{"personalization":%v}}}`, r.IntN(5) != 0)
		}
		first := now.Add(-time.Duration(30+r.IntN(400)) * 24 * time.Hour)
		batch = append(batch, fmt.Sprintf(`{"type":"identify","messageId":"id-%d","userId":"u%08d","anonymousId":"a%08d","traits":{"address":{"country":%q,"state":%q}}%s,"timestamp":%q}`,
			i, i, i, pl[0], pl[1], consent, first.Format(time.RFC3339)))
		for j := range r.IntN(5) {
			at := first.Add(time.Duration(r.IntN(int(now.Sub(first).Hours()))) * time.Hour)
			coupon := ""
			if r.IntN(4) == 0 {
				coupon = "SAVE10"
			}
			batch = append(batch, fmt.Sprintf(`{"type":"track","messageId":"o-%d-%d","userId":"u%08d","event":"Order Completed","properties":{"total":%d,"coupon":%q},"timestamp":%q}`,
				i, j, i, 10+r.IntN(300), coupon, at.Format(time.RFC3339)))
		}
		for j := range 1 + r.IntN(3) {
			at := first.Add(time.Duration(r.IntN(int(now.Sub(first).Hours()))) * time.Hour)
			batch = append(batch, fmt.Sprintf(`{"type":"page","messageId":"p-%d-%d","anonymousId":"a%08d","name":"Home","timestamp":%q}`,
				i, j, i, at.Format(time.RFC3339)))
		}
		if len(batch) >= 1000 {
			total += len(batch)
			work <- batch
			batch = nil
		}
	}
	if len(batch) > 0 {
		total += len(batch)
		work <- batch
	}
	close(work)
	wg.Wait()
	if _, err := c.FlushLive(ctx, time.Time{}); err != nil {
		log.Fatal(err)
	}
	return total
}

// profile starts the requested profiles; the returned function writes them.
func profile(cpu, mutex string) func() {
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	if mutex != "" {
		runtime.SetMutexProfileFraction(5)
	}
	return func() {
		if cpu != "" {
			pprof.StopCPUProfile()
		}
		if mutex != "" {
			f, err := os.Create(mutex)
			if err != nil {
				log.Fatal(err)
			}
			defer f.Close()
			if err := pprof.Lookup("mutex").WriteTo(f, 0); err != nil {
				log.Fatal(err)
			}
		}
	}
}

func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}
