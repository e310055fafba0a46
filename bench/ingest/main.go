// Command ingest is Custody's ingestion load generator. It pre-generates
// realistic Segment messages (see gen.go), then sends them with C concurrent
// workers either to a Custody server (POST /v1/batch, one batch per request)
// or, with -pg, to PostgreSQL as rows of an events table (one multi-row
// INSERT per batch, i.e. one transaction per batch). It reports events/s and
// per-batch latency. Generation is done before the clock starts.
//
// With -report it instead merges the JSON results of Custody and PostgreSQL
// runs (one or more rounds each; the median round by events/s is reported)
// into a comparison table and one JSON file; bench/ingest.sh drives all of
// this.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

type config struct {
	url, key, pg   string
	messages       int
	batch          int
	concurrency    int
	users          int
	seed           uint64
	maxTime        time.Duration
	pid            int
	jsonOut        bool
	out            string
	pgCopy         bool
	report         bool
	custodyRes     string
	postgresRes    string
	reportOut      string
	serverPeakKB   int64
	custodyInfo    string
	postgresInfo   string
	requestTimeout time.Duration
}

// Latency is in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// CPUShare is how the machine's CPU time was spent during the run, in
// percent of all CPUs (from /proc/stat). Steal is time the hypervisor gave
// to other guests: a high value means the figures are not trustworthy.
type CPUShare struct {
	User   float64 `json:"user_pct"`
	System float64 `json:"system_pct"`
	IOWait float64 `json:"iowait_pct"`
	Idle   float64 `json:"idle_pct"`
	Steal  float64 `json:"steal_pct"`
}

// CoreUse splits the machine's busy CPU time during the run, in cores
// (1.0 = one CPU fully busy): the server (the -pid process and its
// descendants), this load generator, the kernel (kernel threads such as
// writeback and journaling, plus interrupt and softirq time, e.g. loopback
// networking), and everything else: busy time minus the rest, i.e. other
// user processes, including short-lived ones. If Other is well above zero,
// something else competed for the CPUs and the figures are pessimistic.
type CoreUse struct {
	Server  float64 `json:"server"`
	Loadgen float64 `json:"loadgen"`
	Kernel  float64 `json:"kernel"`
	Other   float64 `json:"other"`
}

// procTicks returns, for every process, its parent and utime+stime in
// clock ticks (USER_HZ, the unit of /proc/stat too).
func procTicks() map[int][2]int64 {
	m := map[int][2]int64{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return m
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.ParseInt(f[1], 10, 64)
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		m[pid] = [2]int64{ppid, ut + st}
	}
	return m
}

// treeTicks sums the CPU ticks spent between two snapshots by root and its
// descendants (as of the second snapshot).
func treeTicks(root int, a, b map[int][2]int64) int64 {
	if root <= 0 {
		return 0
	}
	var sum int64
	for pid, v := range b {
		for p, n := pid, 0; p > 0 && n < 64; n++ {
			if p == root {
				sum += v[1] - a[pid][1]
				break
			}
			p = int(b[p][0])
		}
	}
	return sum
}

const userHZ = 100 // clock ticks per second in /proc/stat and /proc/PID/stat

// coreUse attributes the busy CPU time between two snapshots; it also
// returns the server's ticks.
func coreUse(serverPID int, elapsed time.Duration, cpu0, cpu1 [8]float64, procs0, procs1 map[int][2]int64) (CoreUse, int64) {
	var busy float64
	for _, i := range []int{0, 1, 2, 5, 6} { // user nice system irq softirq
		busy += cpu1[i] - cpu0[i]
	}
	srv := treeTicks(serverPID, procs0, procs1)
	self := float64(treeTicks(os.Getpid(), procs0, procs1))
	// Kernel threads are kthreadd's (pid 2) children; irq and softirq time
	// is not charged to any process.
	kern := float64(treeTicks(2, procs0, procs1)) + (cpu1[5] - cpu0[5]) + (cpu1[6] - cpu0[6])
	cores := func(ticks float64) float64 {
		return float64(int(ticks/userHZ/elapsed.Seconds()*100+0.5)) / 100
	}
	return CoreUse{Server: cores(float64(srv)), Loadgen: cores(self), Kernel: cores(kern),
		Other: cores(max(busy-float64(srv)-self-kern, 0))}, srv
}

// cpuTimes reads the aggregate cpu line of /proc/stat: user, nice, system,
// idle, iowait, irq, softirq, steal.
func cpuTimes() [8]float64 {
	var t [8]float64
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i := 0; i < 8 && i+1 < len(f); i++ {
		t[i], _ = strconv.ParseFloat(f[i+1], 64)
	}
	return t
}

func cpuShare(a, b [8]float64) CPUShare {
	var d [8]float64
	var total float64
	for i := range d {
		d[i] = b[i] - a[i]
		total += d[i]
	}
	if total <= 0 {
		return CPUShare{}
	}
	pct := func(v float64) float64 { return float64(int(v/total*1000+0.5)) / 10 }
	return CPUShare{User: pct(d[0] + d[1]), System: pct(d[2] + d[5] + d[6]), IOWait: pct(d[4]), Idle: pct(d[3]), Steal: pct(d[7])}
}

// Result is one run's figures.
type Result struct {
	Target                  string   `json:"target"` // "custody" or "postgres"
	Mode                    string   `json:"mode"`
	Messages                int      `json:"messages"`
	Sent                    int      `json:"messages_sent"`
	Acknowledged            int      `json:"messages_acknowledged"`
	BatchSize               int      `json:"batch_size"`
	Batches                 int      `json:"batches"`
	Concurrency             int      `json:"concurrency"`
	Users                   int      `json:"users"`
	DistinctUsers           int      `json:"distinct_users"`
	NewSessions             int      `json:"sessions_new_user"`
	ReturnSessions          int      `json:"sessions_returning_user"`
	AnonymousOnly           int      `json:"messages_anonymous_only"`
	AvgMessageBytes         float64  `json:"avg_message_bytes"`
	MinMessageBytes         int      `json:"min_message_bytes"`
	MaxMessageBytes         int      `json:"max_message_bytes"`
	AvgBatchBytes           float64  `json:"avg_batch_bytes"`
	Mix                     string   `json:"mix"`
	GenSeconds              float64  `json:"generation_seconds"`
	Seconds                 float64  `json:"seconds"`
	EventsPerSec            float64  `json:"events_per_sec"`
	MBPerSec                float64  `json:"mb_per_sec"`
	Latency                 Latency  `json:"batch_latency"`
	Errors                  int      `json:"errors"`
	FirstError              string   `json:"first_error,omitempty"`
	TimedOut                bool     `json:"timed_out"`
	ServerCPUMicrosPerEvent float64  `json:"server_cpu_us_per_event"`   // server CPU time / acknowledged events
	RowsInTable             int64    `json:"rows_in_table,omitempty"`   // postgres: SELECT count(*) after the run
	ServerAccepted          int64    `json:"server_accepted,omitempty"` // custody: accepted messages per /metrics (best effort)
	PID                     int      `json:"pid,omitempty"`
	VmHWMKB                 int64    `json:"vm_hwm_kb,omitempty"`
	VmRSSKB                 int64    `json:"vm_rss_kb,omitempty"`
	CPU                     CPUShare `json:"machine_cpu"` // whole machine, over the measured interval
	Cores                   CoreUse  `json:"cores_used"`
	GoMaxProcs              int      `json:"loadgen_gomaxprocs"`
	NumCPU                  int      `json:"num_cpu"`
	Started                 string   `json:"started"`
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:8700", "Custody base URL (POST {url}/v1/batch)")
	flag.StringVar(&c.key, "key", "", "ingest write key (HTTP Basic user)")
	flag.StringVar(&c.pg, "pg", "", "PostgreSQL DSN: target PostgreSQL instead of Custody (the events table is dropped and re-created)")
	flag.BoolVar(&c.pgCopy, "pg-copy", false, "with -pg: COPY each batch inside BEGIN/COMMIT instead of one multi-row INSERT ... ON CONFLICT DO NOTHING")
	flag.IntVar(&c.messages, "messages", 1_000_000, "messages to send")
	flag.IntVar(&c.batch, "batch", 100, "messages per batch (request or transaction)")
	flag.IntVar(&c.concurrency, "concurrency", 16, "concurrent workers (connections)")
	flag.IntVar(&c.users, "users", 100_000, "distinct userIds to draw from")
	flag.Uint64Var(&c.seed, "seed", 42, "generator seed")
	flag.DurationVar(&c.maxTime, "max-time", 3*time.Minute, "stop sending after this long (the run is then reported as timed out)")
	flag.DurationVar(&c.requestTimeout, "request-timeout", 60*time.Second, "per-batch timeout")
	flag.IntVar(&c.pid, "pid", 0, "server process to report VmHWM/VmRSS of after the run")
	flag.BoolVar(&c.jsonOut, "json", false, "print the result as JSON")
	flag.StringVar(&c.out, "out", "", "also write the result as JSON to this file")
	flag.BoolVar(&c.report, "report", false, "report mode: compare the -out files of earlier runs instead of running")
	flag.StringVar(&c.custodyRes, "custody-results", "", "report mode: comma-separated result files of Custody rounds")
	flag.StringVar(&c.postgresRes, "postgres-results", "", "report mode: comma-separated result files of PostgreSQL rounds")
	flag.StringVar(&c.reportOut, "report-out", "", "report mode: write the combined JSON here")
	flag.Int64Var(&c.serverPeakKB, "server-peak-kb", 0, "report mode: Custody server VmHWM measured by the caller (the higher of this and the results' is reported)")
	flag.StringVar(&c.custodyInfo, "custody-info", "", "report mode: free-form description of the Custody setup")
	flag.StringVar(&c.postgresInfo, "postgres-info", "", "report mode: free-form description of the PostgreSQL setup")
	flag.Parse()

	if c.report {
		if err := report(c); err != nil {
			fmt.Fprintln(os.Stderr, "ingest:", err)
			os.Exit(1)
		}
		return
	}
	if c.messages < 1 || c.batch < 1 || c.concurrency < 1 || c.users < 1 {
		fmt.Fprintln(os.Stderr, "ingest: -messages, -batch, -concurrency and -users must be positive")
		os.Exit(2)
	}
	if c.pg == "" && c.key == "" {
		fmt.Fprintln(os.Stderr, "ingest: -key is required (or -pg DSN)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
	if c.out != "" {
		if err := writeJSON(c.out, res); err != nil {
			fmt.Fprintln(os.Stderr, "ingest:", err)
			os.Exit(1)
		}
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printResult(os.Stdout, res)
	}
	if res.Errors > 0 || res.TimedOut {
		os.Exit(1)
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// sender sends one batch (messages [lo,hi) of the generated set); it is
// created per worker so that each owns its connection.
type sender interface {
	send(ctx context.Context, lo, hi int) error
	close()
}

func run(ctx context.Context, c config) (*Result, error) {
	res := &Result{Messages: c.messages, BatchSize: c.batch, Concurrency: c.concurrency, Users: c.users,
		GoMaxProcs: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), PID: c.pid}
	// Timestamps: a fixed hour-aligned start an hour ago, so messages (and
	// their IDs) depend only on the seed and the flags.
	start := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	t0 := time.Now()
	msgs, gs := generate(genOptions{seed: c.seed, messages: c.messages, users: c.users, start: start})
	res.DistinctUsers, res.NewSessions, res.ReturnSessions, res.AnonymousOnly = gs.distinctUsers, gs.newSessions, gs.returningSessions, gs.anonymousOnly
	res.AvgMessageBytes = float64(gs.bytes) / float64(gs.messages)
	res.MinMessageBytes, res.MaxMessageBytes = gs.minBytes, gs.maxBytes
	res.Mix = fmt.Sprintf("identify %d, Product Viewed %d, Product Added %d, Order Completed %d", gs.identifies, gs.views, gs.adds, gs.orders)

	nb := (len(msgs) + c.batch - 1) / c.batch
	var newSender func() (sender, error)
	var payloadBytes int64
	if c.pg != "" {
		res.Target = "postgres"
		if c.pgCopy {
			res.Mode = "COPY per batch inside BEGIN/COMMIT"
		} else {
			res.Mode = "multi-row INSERT ... ON CONFLICT (message_id) DO NOTHING per batch (one transaction)"
		}
		if err := pgSetup(ctx, c.pg); err != nil {
			return nil, err
		}
		for _, m := range msgs {
			payloadBytes += int64(len(m.json))
		}
		newSender = func() (sender, error) { return newPGSender(ctx, c, msgs) }
	} else {
		res.Target = "custody"
		res.Mode = "HTTP POST /v1/batch (keep-alive, Basic auth)"
		bodies := make([][]byte, nb)
		for b := range nb {
			lo, hi := b*c.batch, min((b+1)*c.batch, len(msgs))
			n := len(`{"batch":[]}`) + (hi - lo - 1)
			for _, m := range msgs[lo:hi] {
				n += len(m.json)
			}
			buf := make([]byte, 0, n)
			buf = append(buf, `{"batch":[`...)
			for i, m := range msgs[lo:hi] {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, m.json...)
			}
			buf = append(buf, "]}"...)
			bodies[b] = buf
			payloadBytes += int64(len(buf))
		}
		msgs = nil // only the bodies are needed now
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        c.concurrency * 2,
			MaxIdleConnsPerHost: c.concurrency * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		}
		client := &http.Client{Transport: tr, Timeout: c.requestTimeout}
		url := strings.TrimRight(c.url, "/") + "/v1/batch"
		newSender = func() (sender, error) {
			return &httpSender{client: client, url: url, key: c.key, bodies: bodies, batch: c.batch}, nil
		}
		defer tr.CloseIdleConnections()
	}
	res.AvgBatchBytes = float64(payloadBytes) / float64(nb)
	res.GenSeconds = time.Since(t0).Seconds()
	runtime.GC() // keep the generator's garbage out of the measurement

	senders := make([]sender, c.concurrency)
	for i := range senders {
		s, err := newSender()
		if err != nil {
			for _, s := range senders[:i] {
				s.close()
			}
			return nil, err
		}
		senders[i] = s
	}
	defer func() {
		for _, s := range senders {
			s.close()
		}
	}()

	var (
		next      atomic.Int64
		errCount  atomic.Int64
		acked     atomic.Int64
		sent      atomic.Int64
		firstErr  sync.Once
		firstText string
		timedOut  atomic.Bool
	)
	lat := make([]time.Duration, nb) // per batch; 0 = not sent
	deadline := time.Now().Add(c.maxTime)
	res.Started = time.Now().UTC().Format(time.RFC3339)
	cpu0, procs0 := cpuTimes(), procTicks()
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range c.concurrency {
		wg.Add(1)
		go func(s sender) {
			defer wg.Done()
			for ctx.Err() == nil {
				b := int(next.Add(1) - 1)
				if b >= nb {
					return
				}
				if time.Now().After(deadline) {
					timedOut.Store(true)
					return
				}
				lo, hi := b*c.batch, min((b+1)*c.batch, c.messages)
				ts := time.Now()
				err := s.send(ctx, lo, hi)
				lat[b] = max(time.Since(ts), 1)
				sent.Add(int64(hi - lo))
				if err != nil {
					errCount.Add(1)
					firstErr.Do(func() { firstText = fmt.Sprintf("batch %d: %v", b, err) })
					continue
				}
				acked.Add(int64(hi - lo))
			}
		}(senders[w])
	}
	wg.Wait()
	elapsed := time.Since(begin)
	cpu1, procs1 := cpuTimes(), procTicks()
	res.CPU = cpuShare(cpu0, cpu1)
	var srvTicks int64
	res.Cores, srvTicks = coreUse(c.pid, elapsed, cpu0, cpu1, procs0, procs1)
	if n := acked.Load(); n > 0 {
		res.ServerCPUMicrosPerEvent = float64(int(float64(srvTicks)/userHZ*1e6/float64(n)*10+0.5)) / 10
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	var ls []time.Duration
	var sum time.Duration
	for _, d := range lat {
		if d > 0 {
			ls = append(ls, d)
			sum += d
		}
	}
	slices.Sort(ls)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration {
		if len(ls) == 0 {
			return 0
		}
		i := int(p*float64(len(ls))+0.5) - 1
		return ls[min(max(i, 0), len(ls)-1)]
	}
	res.Batches = len(ls)
	if len(ls) > 0 {
		res.Latency = Latency{P50: ms(pct(0.50)), P90: ms(pct(0.90)), P99: ms(pct(0.99)), Max: ms(ls[len(ls)-1]),
			Mean: ms(sum / time.Duration(len(ls)))}
	}
	res.Seconds = elapsed.Seconds()
	res.Sent, res.Acknowledged = int(sent.Load()), int(acked.Load())
	res.EventsPerSec = float64(res.Acknowledged) / elapsed.Seconds()
	res.MBPerSec = res.AvgBatchBytes * float64(res.Batches) / elapsed.Seconds() / 1e6
	res.Errors, res.FirstError, res.TimedOut = int(errCount.Load()), firstText, timedOut.Load()
	if c.pid > 0 && c.pg == "" { // postgres' shared memory makes its RSS meaningless here
		res.VmHWMKB, res.VmRSSKB = procMem(c.pid)
	}
	if c.pg == "" {
		res.ServerAccepted = scrapeAccepted(strings.TrimRight(c.url, "/") + "/metrics")
	} else {
		n, err := pgCount(ctx, c.pg)
		if err != nil {
			return nil, err
		}
		res.RowsInTable = n
		if n != int64(res.Acknowledged) && res.Errors == 0 {
			res.Errors++
			res.FirstError = fmt.Sprintf("events has %d rows, %d were acknowledged", n, res.Acknowledged)
		}
	}
	return res, nil
}

type httpSender struct {
	client *http.Client
	url    string
	key    string
	bodies [][]byte
	batch  int
}

func (s *httpSender) send(ctx context.Context, lo, _ int) error {
	body := s.bodies[lo/s.batch]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(s.key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(rb)))
	}
	if !bytes.Contains(rb, []byte(`"success":true`)) {
		return fmt.Errorf("HTTP 200 without success: %s", strings.TrimSpace(string(rb)))
	}
	return nil
}

func (s *httpSender) close() {}

const pgSchema = `
DROP TABLE IF EXISTS events;
CREATE TABLE events (
	id           bigserial PRIMARY KEY,
	message_id   text UNIQUE,
	user_id      text,
	anonymous_id text,
	type         text,
	event        text,
	ts           timestamptz,
	payload      jsonb
);
CREATE INDEX events_user_ts ON events (user_id, ts);
`

func pgSetup(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, pgSchema); err != nil {
		return fmt.Errorf("postgres schema: %w", err)
	}
	// Durability as Custody's: every acknowledged batch is flushed to disk.
	var fsync, sc string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &sc); err != nil {
		return err
	}
	if fsync != "on" || sc != "on" {
		return fmt.Errorf("postgres must run with fsync=on and synchronous_commit=on (have fsync=%s synchronous_commit=%s)", fsync, sc)
	}
	return nil
}

// scrapeAccepted reads custody_ingest_messages_total{result="accepted"}
// from the server's metrics; 0 if unavailable.
func scrapeAccepted(url string) int64 {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, `custody_ingest_messages_total{result="accepted"} `) {
			f, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return 0
}

func pgCount(ctx context.Context, dsn string) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	return n, err
}

type pgSender struct {
	conn *pgx.Conn
	msgs []genMessage
	copy bool
	sqls map[int]string
	args []any
}

func newPGSender(ctx context.Context, c config, msgs []genMessage) (*pgSender, error) {
	conn, err := pgx.Connect(ctx, c.pg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if _, err := conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return &pgSender{conn: conn, msgs: msgs, copy: c.pgCopy, sqls: map[int]string{}}, nil
}

var pgColumns = []string{"message_id", "user_id", "anonymous_id", "type", "event", "ts", "payload"}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *pgSender) send(ctx context.Context, lo, hi int) error {
	rows := s.msgs[lo:hi]
	if s.copy {
		tx, err := s.conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, pgColumns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			m := &rows[i]
			return []any{m.id, nullable(m.user), nullable(m.anon), m.typ, nullable(m.event), m.ts, string(m.json)}, nil
		})); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	q, ok := s.sqls[len(rows)]
	if !ok {
		var b strings.Builder
		b.WriteString("INSERT INTO events (message_id, user_id, anonymous_id, type, event, ts, payload) VALUES ")
		for i := range rows {
			if i > 0 {
				b.WriteByte(',')
			}
			p := i*7 + 1
			fmt.Fprintf(&b, "($%d,$%d,$%d,$%d,$%d,$%d,$%d::jsonb)", p, p+1, p+2, p+3, p+4, p+5, p+6)
		}
		b.WriteString(" ON CONFLICT (message_id) DO NOTHING")
		q = b.String()
		s.sqls[len(rows)] = q
	}
	args := s.args[:0]
	for i := range rows {
		m := &rows[i]
		args = append(args, m.id, nullable(m.user), nullable(m.anon), m.typ, nullable(m.event), m.ts, string(m.json))
	}
	s.args = args
	// A single statement outside BEGIN is its own transaction: one round
	// trip, committed (WAL flushed) before the reply.
	_, err := s.conn.Exec(ctx, q, args...)
	return err
}

func (s *pgSender) close() { s.conn.Close(context.Background()) }

// procMem reads VmHWM (peak RSS) and VmRSS of pid, in KiB.
func procMem(pid int) (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "target        %s (%s)\n", r.Target, r.Mode)
	fmt.Fprintf(w, "messages      %d sent, %d acknowledged, in %d batches of %d, concurrency %d\n", r.Sent, r.Acknowledged, r.Batches, r.BatchSize, r.Concurrency)
	fmt.Fprintf(w, "payload       avg %.0f B/message (min %d, max %d), avg %.1f KB/batch; %s\n", r.AvgMessageBytes, r.MinMessageBytes, r.MaxMessageBytes, r.AvgBatchBytes/1000, r.Mix)
	fmt.Fprintf(w, "users         %d distinct userIds (%d sessions of first-seen users, %d returning), %d anonymous-only messages\n", r.DistinctUsers, r.NewSessions, r.ReturnSessions, r.AnonymousOnly)
	fmt.Fprintf(w, "generation    %.1fs (not measured)\n", r.GenSeconds)
	fmt.Fprintf(w, "throughput    %.0f events/s, %.1f MB/s over %.2fs\n", r.EventsPerSec, r.MBPerSec, r.Seconds)
	fmt.Fprintf(w, "batch latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, mean %.1f ms\n", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Latency.Mean)
	fmt.Fprintf(w, "machine CPU   user %.0f%%, system %.0f%%, iowait %.0f%%, idle %.0f%%, steal %.0f%% (all %d CPUs, load generator included)\n",
		r.CPU.User, r.CPU.System, r.CPU.IOWait, r.CPU.Idle, r.CPU.Steal, r.NumCPU)
	fmt.Fprintf(w, "cores used    server %.2f (%.1f µs CPU/event), load generator %.2f, kernel threads+irq %.2f, other processes %.2f\n",
		r.Cores.Server, r.ServerCPUMicrosPerEvent, r.Cores.Loadgen, r.Cores.Kernel, r.Cores.Other)
	fmt.Fprintf(w, "errors        %d", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, " (first: %s)", r.FirstError)
	}
	fmt.Fprintln(w)
	if r.TimedOut {
		fmt.Fprintln(w, "TIMED OUT     the run hit -max-time before all messages were sent")
	}
	if r.ServerAccepted > 0 {
		fmt.Fprintf(w, "server        %d messages accepted per /metrics\n", r.ServerAccepted)
	}
	if r.RowsInTable > 0 {
		fmt.Fprintf(w, "table         %d rows in events after the run\n", r.RowsInTable)
	}
	if r.VmHWMKB > 0 {
		fmt.Fprintf(w, "server pid %d  VmHWM %.1f MiB, VmRSS %.1f MiB\n", r.PID, float64(r.VmHWMKB)/1024, float64(r.VmRSSKB)/1024)
	}
}

// Report is the combined output of bench/ingest.sh.
type Report struct {
	Date          string    `json:"date"`
	Host          string    `json:"host"`
	NumCPU        int       `json:"num_cpu"`
	Rounds        int       `json:"rounds"`
	Custody       *Result   `json:"custody"`  // the median round
	Postgres      *Result   `json:"postgres"` // the median round
	CustodyRounds []float64 `json:"custody_rounds_events_per_sec"`
	PGRounds      []float64 `json:"postgres_rounds_events_per_sec"`
	CustodyInfo   string    `json:"custody_setup,omitempty"`
	PostgresInfo  string    `json:"postgres_setup,omitempty"`
	ServerHWMKB   int64     `json:"custody_server_peak_rss_kb"` // max VmHWM over the rounds
	Ratio         float64   `json:"custody_over_postgres_events_per_sec"`
}

// loadRounds reads result files and returns the median one (the lower of
// the two middle ones for an even count), every round's events/s in run
// order, and the highest server VmHWM.
func loadRounds(list string) (*Result, []float64, int64, error) {
	if list == "" {
		return nil, nil, 0, nil
	}
	var rs []*Result
	var eps []float64
	var hwm int64
	for _, p := range strings.Split(list, ",") {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, 0, err
		}
		r := new(Result)
		if err := json.Unmarshal(b, r); err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %w", p, err)
		}
		rs = append(rs, r)
		eps = append(eps, float64(int(r.EventsPerSec+0.5)))
		hwm = max(hwm, r.VmHWMKB)
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b *Result) int {
		switch {
		case a.EventsPerSec < b.EventsPerSec:
			return -1
		case a.EventsPerSec > b.EventsPerSec:
			return 1
		}
		return 0
	})
	return sorted[(len(sorted)-1)/2], eps, hwm, nil
}

func report(c config) error {
	cr, ceps, hwm, err := loadRounds(c.custodyRes)
	if err != nil {
		return err
	}
	pr, peps, _, err := loadRounds(c.postgresRes)
	if err != nil {
		return err
	}
	if cr == nil && pr == nil {
		return errors.New("report: no -custody-results or -postgres-results")
	}
	host, _ := os.Hostname()
	rep := Report{Date: time.Now().UTC().Format(time.RFC3339), Host: host, NumCPU: runtime.NumCPU(),
		Rounds: max(len(ceps), len(peps)), Custody: cr, Postgres: pr, CustodyRounds: ceps, PGRounds: peps,
		CustodyInfo: c.custodyInfo, PostgresInfo: c.postgresInfo, ServerHWMKB: max(hwm, c.serverPeakKB)}
	if cr != nil && pr != nil && pr.EventsPerSec > 0 {
		rep.Ratio = float64(int(cr.EventsPerSec/pr.EventsPerSec*1000+0.5)) / 1000
	}
	w := os.Stdout
	line := strings.Repeat("-", 86)
	fmt.Fprintln(w, line)
	fmt.Fprintf(w, "Ingestion benchmark — %d CPUs, %s", rep.NumCPU, rep.Date)
	if rep.Rounds > 1 {
		fmt.Fprintf(w, " — median of %d rounds", rep.Rounds)
	}
	fmt.Fprintln(w)
	if r := cmp.Or(cr, pr); r != nil {
		fmt.Fprintf(w, "%d messages (avg %.0f B), batches of %d, concurrency %d, %d distinct users\n",
			r.Messages, r.AvgMessageBytes, r.BatchSize, r.Concurrency, r.DistinctUsers)
	}
	fmt.Fprintln(w, line)
	fmt.Fprintf(w, "%-9s %9s %7s %7s %7s %7s %6s %6s %7s %6s %14s\n", "target", "events/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "cores", "µs/ev", "other", "server RSS")
	row := func(name string, r *Result, rss string) {
		if r == nil {
			fmt.Fprintf(w, "%-9s %10s\n", name, "(not run)")
			return
		}
		note := ""
		if r.TimedOut {
			note = "  (timed out)"
		}
		fmt.Fprintf(w, "%-9s %9.0f %7.1f %7.1f %7.1f %7.1f %6d %6.2f %7.1f %6.2f %14s%s\n", name, r.EventsPerSec,
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Errors, r.Cores.Server, r.ServerCPUMicrosPerEvent, r.Cores.Other, rss, note)
	}
	rss := "-"
	if rep.ServerHWMKB > 0 {
		rss = fmt.Sprintf("%.0f MiB peak", float64(rep.ServerHWMKB)/1024)
	}
	row("custody", cr, rss)
	row("postgres", pr, "-")
	fmt.Fprintln(w, line)
	fmt.Fprintln(w, "cores = CPUs used by the server process tree; µs/ev = its CPU time per event; other = CPUs used by other")
	fmt.Fprintln(w, "user processes (neither server, load generator nor kernel threads) during the run")
	if rep.Ratio > 0 {
		fmt.Fprintf(w, "custody / postgres throughput: %.2fx\n", rep.Ratio)
	}
	for _, r := range []*Result{cr, pr} {
		if r != nil && (r.Cores.Other > 0.15 || r.CPU.Steal > 5) {
			fmt.Fprintf(w, "WARNING: other processes used %.2f cores (steal %.0f%%) during the %s run: its figures are pessimistic\n", r.Cores.Other, r.CPU.Steal, r.Target)
		}
	}
	if rep.Rounds > 1 {
		fmt.Fprintf(w, "rounds (events/s, in run order): custody %v, postgres %v\n", ceps, peps)
	}
	if c.custodyInfo != "" {
		fmt.Fprintf(w, "custody:  %s\n", c.custodyInfo)
	}
	if c.postgresInfo != "" {
		fmt.Fprintf(w, "postgres: %s\n", c.postgresInfo)
	}
	for _, t := range []struct {
		name string
		r    *Result
	}{{"custody", cr}, {"postgres", pr}} {
		if t.r != nil && t.r.FirstError != "" {
			fmt.Fprintf(w, "%s first error: %s\n", t.name, t.r.FirstError)
		}
	}
	if c.reportOut != "" {
		if err := writeJSON(c.reportOut, rep); err != nil {
			return err
		}
		fmt.Fprintf(w, "written to %s\n", c.reportOut)
	}
	return nil
}
