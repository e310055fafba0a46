// Command segments is the segment benchmark of `make bench`
// (bench/segments.sh runs it): a store of -people profiles with
// -events-per events each, built through core.Ingest, then
//
//	(a) a brand-new segment's full evaluation through the policy gate
//	    (cart abandoners, VIP by quantile, at-risk), the first one cold
//	    (event digests not yet in memory), the others warm;
//	(b) reading the current members of an applied segment after live
//	    updates and a sweep;
//	(c) the live membership update per ingested event;
//
// and, with -pg, the same data in PostgreSQL (profiles, consent, events,
// indexed as a DBA would) answering (a) and (b) with SQL that applies the
// same consent rules, in the same run. Every figure and ratio is printed;
// nothing is asserted. The process's peak RSS (VmHWM) is reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/event"
)

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type person struct {
	user           string
	country, state string
	consent        int8 // 1 granted (marketing), -1 denied, 0 none
	firstSeen      time.Time
	events         []ev
}

type streamedEvent struct {
	user string
	ev   ev
}

type ev struct {
	name   string
	at     time.Time
	total  float64
	coupon string
}

func main() {
	var (
		people    = flag.Int("people", 1_000_000, "profiles")
		eventsPer = flag.Int("events-per", 10, "events per profile (average)")
		pgDSN     = flag.String("pg", "", "PostgreSQL DSN (empty: no PostgreSQL baseline)")
		dir       = flag.String("dir", "", "data directory (default: a temporary one, removed)")
		seed      = flag.Uint64("seed", 1, "generator seed")
		stream    = flag.Int("stream", 20000, "events ingested for (c), with live updates")
		cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of each evaluation (a) to FILE.NAME (the segment's name), and of the stream (c) to FILE.live")
		memprof   = flag.String("memprofile", "", "write heap profiles, taken after the load (FILE.load), after the evaluations (a) (FILE), and before and after the stream (c) (FILE.prelive, FILE.live)")
		quiesce   = flag.Duration("quiesce", 0, "before (c): wait up to this long for the store's compactions to catch up (store.Stats.Backlog 0), and say how long it took")
		settle    = flag.Duration("settle", 0, "without PostgreSQL: wait this long after the load, as PostgreSQL's load would (the store's compactions go on after a load)")
		config    = flag.String("config", "", "a custody.yaml whose settings replace the defaults (store sizes, caches, server runtime)")
	)
	flag.Parse()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go watchRSS(ctx)
	data := *dir
	if data == "" {
		d, err := os.MkdirTemp("", "custody-segbench-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		data = filepath.Join(d, "data")
	}
	pop := population{n: *people, per: *eventsPer, seed: *seed}
	fmt.Printf("machine       %d CPUs, %s\n", runtime.NumCPU(), runtime.Version())

	cfg := core.DefaultConfig()
	if *config != "" {
		if err := cfg.LoadConfigFile(*config, false); err != nil {
			log.Fatal(err)
		}
	}
	cfg.DataDir = data
	// The Go runtime as `custody serve` sets it: the memory limit is what
	// keeps the heap (and the RSS) bounded.
	debug.SetGCPercent(cfg.Server.GCPercent)
	debug.SetMemoryLimit(int64(cfg.Server.MemoryLimitMiB) << 20)
	fmt.Printf("settings      gc_percent %d, memory_limit_mib %d, memtable_mib %d, table_mib %d, block_cache_mib %d, index_cache_mib %d, identifier_cache_size %d\n",
		cfg.Server.GCPercent, cfg.Server.MemoryLimitMiB, cfg.Store.MemTableMiB, cfg.Store.TableMiB, cfg.Store.BlockCacheMiB, cfg.Store.IndexCacheMiB, cfg.Ingest.IdentifierCacheSize)
	cfg.Segments.LiveDelay = core.Duration(time.Hour) // flushed by hand: measured alone
	if err := core.Init(ctx, cfg, core.Options{}); err != nil {
		log.Fatal(err)
	}
	c, err := core.Open(ctx, cfg, core.Options{Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	start := time.Now()
	total := load(ctx, c, pop)
	fmt.Printf("data          %d profiles, %d messages (identify + events), now = %s\n", pop.n, total, now.Format(time.RFC3339))
	fmt.Printf("custody load  %.1fs (%.0f msgs/s through core.Ingest, not compared)\n", time.Since(start).Seconds(), float64(total)/time.Since(start).Seconds())
	fmt.Printf("memory        after the load: %s\n", memLine())
	loadAnon := anonPeak.Swap(procStatus("RssAnon"))
	if *memprof != "" {
		writeHeap(*memprof + ".load")
	}
	_, _ = c.FlushLive(ctx, now) // nothing applied yet: drains the queue

	var pg *pgx.Conn
	if *pgDSN != "" {
		if pg, err = pgx.Connect(ctx, *pgDSN); err != nil {
			log.Fatal(err)
		}
		defer pg.Close(ctx)
		start := time.Now()
		if err := pgLoad(ctx, pg, pop); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("postgres load %.1fs (COPY + indexes + ANALYZE, not compared)\n", time.Since(start).Seconds())
	} else if *settle > 0 {
		time.Sleep(*settle)
	}

	fmt.Println("\n(a) brand-new segment, full evaluation through the gate (members / not consented; seconds)")
	fmt.Printf("%-18s %10s %10s %9s   %10s %9s %7s\n", "segment", "members", "denied", "custody", "pg members", "pg", "ratio")
	for i, name := range []string{"cart_abandoners", "vip", "at_risk"} {
		if _, err := c.ApplyTemplate(ctx, name, nil); err != nil {
			log.Fatal(err)
		}
		stopProfile := startCPUProfile(*cpuprof, name)
		t0 := time.Now()
		r, err := c.EvaluateSegment(ctx, name, now)
		if err != nil {
			log.Fatal(err)
		}
		cs := time.Since(t0).Seconds()
		stopProfile()
		label := name
		if i == 0 {
			label += " (cold)"
		}
		line := fmt.Sprintf("%-18s %10d %10d %9.2f", label, r.Allowed, r.NotConsented, cs)
		if pg != nil {
			n, ps := pgSegment(ctx, pg, name)
			line += fmt.Sprintf("   %10d %9.2f %6.2fx", n, ps, cs/ps)
		}
		fmt.Println(line)
	}

	fmt.Printf("memory        after (a): %s\n", memLine())
	if *memprof != "" {
		writeHeap(*memprof)
	}

	// (b): refresh (the sweep) records memberships; then read them.
	for _, name := range []string{"cart_abandoners", "vip", "at_risk"} {
		if _, err := c.RefreshSegment(ctx, name, now); err != nil {
			log.Fatal(err)
		}
	}
	// (c): a stream of new events for existing people, live updates after
	// each batch of 500 (what the updater does after each group).
	rng := rand.New(rand.NewPCG(*seed, 99))
	var liveTime time.Duration
	var rep core.LiveReport
	var ingestCost, liveCost gcCost
	if *quiesce > 0 {
		t0 := time.Now()
		for c.StoreStats().Backlog > 0 && time.Since(t0) < *quiesce {
			time.Sleep(time.Second)
		}
		fmt.Printf("quiesce       waited %.0fs for compactions before (c); backlog now %d levels\n", time.Since(t0).Seconds(), c.StoreStats().Backlog)
	}
	st0 := c.StoreStats()
	if *memprof != "" {
		writeHeap(*memprof + ".prelive")
	}
	var streamed []streamedEvent
	sent := 0
	stopProfile := startCPUProfile(*cpuprof, "live") // ingest too: focus on UpdateMemberships
	for sent < *stream {
		var msgs []event.Message
		for range 500 {
			user := pop.user(rng.IntN(pop.n))
			name := []string{"Product Viewed", "Product Added", "Order Completed"}[rng.IntN(3)]
			tot := 10 + rng.IntN(300)
			body := fmt.Sprintf(`{"type":"track","messageId":"live-%d","userId":%q,"event":%q,"properties":{"total":%d},"timestamp":%q}`,
				sent, user, name, tot, now.Add(-time.Duration(rng.IntN(72))*time.Hour).Format(time.RFC3339))
			m, err := event.DecodeMessage([]byte(body), "", now)
			if err != nil {
				log.Fatal(err)
			}
			msgs = append(msgs, m)
			streamed = append(streamed, streamedEvent{user, ev{name: name, at: m.Timestamp}})
			if name == "Order Completed" {
				streamed[len(streamed)-1].ev.total = float64(tot)
			}
			sent++
		}
		g0 := readGCCost()
		if _, err := c.Ingest(ctx, msgs); err != nil {
			log.Fatal(err)
		}
		g1 := readGCCost()
		t0 := time.Now()
		r, err := c.FlushLive(ctx, now)
		if err != nil {
			log.Fatal(err)
		}
		liveTime += time.Since(t0)
		g2 := readGCCost()
		ingestCost.add(g1.sub(g0))
		liveCost.add(g2.sub(g1))
		rep.People += r.People
		rep.Segments = r.Segments
		rep.Entered += r.Entered
		rep.Exited += r.Exited
	}
	stopProfile()
	st1 := c.StoreStats()
	if *memprof != "" {
		writeHeap(*memprof + ".live") // alloc_space -diff_base FILE.prelive: what (c) allocated
	}
	if _, err := c.RefreshSegment(ctx, "vip", now); err != nil { // the sweep
		log.Fatal(err)
	}
	if pg != nil {
		if err := pgAppend(ctx, pg, streamed); err != nil {
			log.Fatal(err)
		}
		if _, err := pg.Exec(ctx, "ANALYZE events"); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("\n(b) reading the current members of an applied segment (after live updates and a sweep)")
	fmt.Printf("%-18s %10s %9s   %10s %9s %7s\n", "segment", "members", "custody", "pg members", "pg", "ratio")
	for _, name := range []string{"cart_abandoners", "vip", "at_risk"} {
		t0 := time.Now()
		n, err := c.MemberCount(ctx, name)
		if err != nil {
			log.Fatal(err)
		}
		cs := time.Since(t0).Seconds()
		line := fmt.Sprintf("%-18s %10d %9.4f", name, n, cs)
		if pg != nil {
			pn, ps := pgSegment(ctx, pg, name)
			line += fmt.Sprintf("   %10d %9.4f %6.3fx", pn, ps, cs/ps)
		}
		fmt.Println(line)
	}
	fmt.Printf("\n(c) live membership update: %d events, %d people re-evaluated against %d local segments, %d entered, %d exited\n",
		sent, rep.People, rep.Segments, rep.Entered, rep.Exited)
	fmt.Printf("    %.1f µs per ingested event (update time only; target < 50 µs)\n", float64(liveTime.Microseconds())/float64(sent))
	fmt.Printf("    allocated per event: %.1f KiB by ingestion, %.1f KiB by the update; collections begun: %d during ingestion, %d during the update\n",
		float64(ingestCost.bytes)/1024/float64(sent), float64(liveCost.bytes)/1024/float64(sent), ingestCost.cycles, liveCost.cycles)
	fmt.Printf("    store: %d tables, indexes %d MiB (blooms %d MiB), compaction backlog %d levels at the start, %d at the end; during (c) the block cache missed %d of %d reads, the index cache %d of %d\n",
		st1.Tables, st1.IndexBytes>>20, st1.BloomBytes>>20, st0.Backlog, st1.Backlog, st1.BlockMisses-st0.BlockMisses, st1.BlockMisses+st1.BlockHits-st0.BlockMisses-st0.BlockHits,
		st1.IndexMisses-st0.IndexMisses, st1.IndexMisses+st1.IndexHits-st0.IndexMisses-st0.IndexHits)
	fmt.Printf("\npeak RSS      %d MiB (VmHWM of this process, with the pages of the store's memory-mapped files)\n", procStatus("VmHWM")>>10)
	fmt.Printf("peak anon RSS %d MiB during the load, %d MiB during (a)-(c) (the process's own memory: heap with the store's caches, digests, gate inputs; sampled every 50 ms)\n",
		loadAnon>>10, anonPeak.Load()>>10)
}

func writeHeap(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		log.Fatal(err)
	}
}

// gcCost is what the runtime counted between two readings: bytes
// allocated and collections begun. (c) reads it around ingestion and the
// update, because at a million profiles a collection marks a heap of more
// than a GiB and takes the update's cores while it runs.
type gcCost struct{ bytes, cycles uint64 }

func readGCCost() gcCost {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return gcCost{s[0].Value.Uint64(), s[1].Value.Uint64()}
}

func (g gcCost) sub(o gcCost) gcCost { return gcCost{g.bytes - o.bytes, g.cycles - o.cycles} }

func (g *gcCost) add(o gcCost) { g.bytes += o.bytes; g.cycles += o.cycles }

// memLine is the Go heap (live after the last collection, and what the
// runtime holds from the OS) and the process's peak RSS so far, with the
// peak of its anonymous part (see rssPeak).
func memLine() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	return fmt.Sprintf("heap live %d MiB (at the last collection), heap held %d MiB, peak RSS %d MiB (anonymous %d MiB)",
		live[0].Value.Uint64()>>20, (ms.HeapSys-ms.HeapReleased)>>20, procStatus("VmHWM")>>10, anonPeak.Load()>>10)
}

// anonPeak is the highest RssAnon seen by watchRSS, in KiB. VmHWM counts
// the pages of Badger's memory-mapped tables and value log too (file
// pages the kernel can drop at any time); RssAnon is the process's own
// memory (Go heap, stacks), which the kernel reports only as a current
// value: it is sampled every 50 ms.
var anonPeak atomic.Int64

// watchRSS samples RssAnon until ctx is done.
func watchRSS(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if v := procStatus("RssAnon"); v > anonPeak.Load() {
			anonPeak.Store(v)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// procStatus reads one "kB" field of /proc/self/status (0 if absent).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// population is the generated data: person i is made from its own
// generator stream, so nobody is held in memory (the process's peak RSS is
// Custody's, not the generator's) and the load and PostgreSQL see the same
// people. EU, UK, California and New York; Europeans and Britons consent to
// marketing 40% of the time, Americans opt out 10% of the time; events over
// 400 days.
type population struct {
	n, per int
	seed   uint64
}

func (pop population) user(i int) string { return fmt.Sprintf("u%08d", i) }

func (pop population) person(i int) person {
	rng := rand.New(rand.NewPCG(pop.seed, uint64(i)^0x5eed))
	places := [][2]string{{"DE", ""}, {"FR", ""}, {"GB", ""}, {"US", "CA"}, {"US", "NY"}}
	p := person{user: pop.user(i)}
	pl := places[rng.IntN(len(places))]
	p.country, p.state = pl[0], pl[1]
	switch {
	case p.country == "US" && rng.IntN(10) == 0:
		p.consent = -1
	case p.country != "US" && rng.IntN(10) < 4:
		p.consent = 1
	}
	p.firstSeen = now.Add(-time.Duration(rng.IntN(400*24)+24) * time.Hour)
	k := rng.IntN(2*pop.per-1) + 1
	p.events = make([]ev, 0, k)
	for range k {
		at := p.firstSeen.Add(time.Duration(rng.Int64N(int64(now.Sub(p.firstSeen)))))
		e := ev{at: at}
		switch r := rng.IntN(20); {
		case r < 12:
			e.name = "Product Viewed"
		case r < 17:
			e.name = "Product Added"
		default:
			e.name = "Order Completed"
			e.total = float64(10 + rng.IntN(400))
			if rng.IntN(3) == 0 {
				e.coupon = "SAVE10"
			}
		}
		p.events = append(p.events, e)
	}
	return p
}

func identifyBody(p *person) string {
	ctx := "{}"
	if p.consent != 0 {
		ctx = fmt.Sprintf(`{"consent":{"categoryPreferences":{"marketing":%v}}}`, p.consent > 0)
	}
	return fmt.Sprintf(`{"type":"identify","messageId":"id-%s","userId":%q,"traits":{"email":"%s@example.com","address":{"country":%q,"state":%q}},"context":%s,"timestamp":%q}`,
		p.user, p.user, p.user, p.country, p.state, ctx, p.firstSeen.Format(time.RFC3339))
}

func eventBody(p *person, i int) string {
	e := &p.events[i]
	props := "{}"
	if e.name == "Order Completed" {
		props = fmt.Sprintf(`{"order_id":"%s-%d","total":%g,"coupon":%q}`, p.user, i, e.total, e.coupon)
	}
	return fmt.Sprintf(`{"type":"track","messageId":"ev-%s-%d","userId":%q,"event":%q,"properties":%s,"timestamp":%q}`,
		p.user, i, p.user, e.name, props, e.at.Format(time.RFC3339Nano))
}

// load ingests everyone through core.Ingest from 4 goroutines, batches of
// 1000, and returns how many messages it sent.
func load(ctx context.Context, c *core.CDP, pop population) int {
	work := make(chan []string, 8)
	var wg sync.WaitGroup
	for range 4 {
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
	var batch []string
	total := 0
	for i := range pop.n {
		pp := pop.person(i)
		p := &pp
		total += len(p.events) + 1
		batch = append(batch, identifyBody(p))
		for j := range p.events {
			batch = append(batch, eventBody(p, j))
		}
		if len(batch) >= 1000 {
			work <- batch
			batch = nil
		}
	}
	if len(batch) > 0 {
		work <- batch
	}
	close(work)
	wg.Wait()
	return total
}

// startCPUProfile profiles one evaluation into file.name (nothing if file
// is empty), so that the cold first evaluation is seen apart from the
// others; the returned func stops it.
func startCPUProfile(file, name string) func() {
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file + "." + name)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
}
