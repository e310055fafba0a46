package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	soakClients   = 4    // concurrent ingestion clients
	soakBatch     = 100  // messages per /v1/batch request
	soakUsers     = 2000 // people the clients send for
	cmdTimeout    = 2 * time.Minute
	rssMaxGrowth  = 0.10 // allowed growth of anonymous RSS over the second half
	victimBatchSz = 5
)

var custodyBin string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if bin := os.Getenv("CUSTODY_E2E_BIN"); bin != "" {
		custodyBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "custody-soak-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	custodyBin = filepath.Join(dir, "custody")
	build := exec.Command("go", "build", "-o", custodyBin, "github.com/custody-cdp/custody/cmd/custody")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak: building custody:", err)
		return 1
	}
	return m.Run()
}

// custody runs the CLI on the data directory and returns stdout; it fails
// the test on a non-zero exit.
func custody(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, custodyBin, append([]string{"--data", dir}, args...)...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("custody %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUSTODY_") {
			env = append(env, kv)
		}
	}
	return env
}

func apiKey(t *testing.T, dir, role string) string {
	t.Helper()
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(custody(t, dir, "apikey", "create", "--role", role, "--json")), &k); err != nil || k.Key == "" {
		t.Fatalf("apikey create: %v", err)
	}
	return k.Key
}

// lockedBuffer collects the server's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var readyRe = regexp.MustCompile(`custody serving on (http://\S+) `)

// serve starts `custody serve` on loopback and waits for its ready line.
func serve(t *testing.T, dir string) (cmd *exec.Cmd, baseURL string, stderr *lockedBuffer, exited chan struct{}) {
	t.Helper()
	cmd = exec.Command(custodyBin, "--data", dir, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	stdout := &lockedBuffer{}
	stderr = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(cmdTimeout)
	for time.Now().Before(deadline) {
		if m := readyRe.FindStringSubmatch(stdout.String()); m != nil {
			return cmd, m[1], stderr, exited
		}
		select {
		case <-exited:
			t.Fatalf("custody serve exited before it was ready:\n%s", stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("custody serve not ready within %s", cmdTimeout)
	return
}

// memory is one reading of /proc/<pid>/status, in KiB: VmRSS, and its
// anonymous (heap, stacks, caches) and file-backed (the store's
// memory-mapped table and value-log pages) parts.
type memory struct{ rss, anon, file int }

func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		switch k {
		case "VmRSS":
			m.rss = n
		case "RssAnon":
			m.anon = n
		case "RssFile":
			m.file = n
		}
	}
	if m.rss == 0 {
		return m, errors.New("no VmRSS line")
	}
	return m, sc.Err()
}

// soakLedger is what the clients know.
type soakLedger struct {
	mu        sync.Mutex
	acked     map[int][]string // user number -> acknowledged messageIds
	latencies []time.Duration  // one per acknowledged batch
	messages  int64
	errors    []string
}

func (l *soakLedger) errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) < 50 {
		l.errors = append(l.errors, fmt.Sprintf(format, args...))
	}
}

func TestSoak(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/status")
	}
	duration, judgeRSS := 5*time.Second, false
	if v := os.Getenv("CUSTODY_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CUSTODY_SOAK_DURATION=%q: want a positive duration", v)
		}
		duration, judgeRSS = d, d >= time.Minute
	}

	dir := filepath.Join(t.TempDir(), "data")
	if len(dir) > 90 {
		short, err := os.MkdirTemp("/tmp", "soak")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		dir = filepath.Join(short, "data")
	}
	custody(t, dir, "init")
	exports := t.TempDir()
	cfg, err := os.OpenFile(filepath.Join(dir, "custody.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(cfg, "\ndestinations:\n  out: {kind: analytics, format: jsonl, dir: %s, fields: [email]}\n", exports)
	if err := cfg.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(t.TempDir(), "buyers.json")
	if err := os.WriteFile(seg, []byte(`{"name": "buyers", "purpose": "analytics", "where": {"event": "Order Completed", "within": "30d"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	custody(t, dir, "segment", "apply", seg)
	ingestKey, adminKey := apiKey(t, dir, "ingest"), apiKey(t, dir, "admin")

	cmd, baseURL, stderr, exited := serve(t, dir)
	pid := cmd.Process.Pid
	ledger := &soakLedger{acked: map[int][]string{}}
	hc := &http.Client{Timeout: cmdTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: soakClients + 2}}
	defer hc.CloseIdleConnections()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var batches atomic.Int64
	for c := range soakClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ingestLoop(ctx, hc, baseURL, ingestKey, c, ledger, &batches)
		}()
	}
	adm := &adminClient{hc: hc, baseURL: baseURL, key: adminKey, dir: dir, ingestKey: ingestKey, ledger: ledger,
		ops: map[string]int{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		adm.loop(ctx, t)
	}()

	// RSS: sampled every second; start, middle and end are the means of
	// the samples in the first, middle and last 5% of the run (at least
	// one sample each), so one GC cycle does not decide.
	type sample struct {
		at time.Duration
		memory
	}
	var samples []sample
	began := time.Now()
	tick := time.NewTicker(time.Second)
	progress := time.NewTicker(30 * time.Second)
loop:
	for {
		select {
		case <-exited:
			t.Fatalf("custody serve exited during the soak:\n%s", stderr)
		case <-progress.C:
			m := samples[len(samples)-1]
			t.Logf("%s: %d messages acknowledged, RSS %d KiB (anonymous %d, file-backed %d)", time.Since(began).Round(time.Second), atomic.LoadInt64(&ledger.messages), m.rss, m.anon, m.file)
		case <-tick.C:
			m, err := readMemory(pid)
			if err != nil {
				t.Fatalf("memory of %d: %v", pid, err)
			}
			samples = append(samples, sample{time.Since(began), m})
			if time.Since(began) >= duration {
				break loop
			}
		}
	}
	tick.Stop()
	progress.Stop()
	stop()
	wg.Wait()
	elapsed := time.Since(began)

	window := func(from, to time.Duration) memory {
		var sum memory
		n := 0
		for _, s := range samples {
			if s.at >= from && s.at <= to {
				sum.rss, sum.anon, sum.file = sum.rss+s.rss, sum.anon+s.anon, sum.file+s.file
				n++
			}
		}
		if n == 0 { // short runs: the nearest sample
			best := samples[0]
			for _, s := range samples {
				if (s.at - from).Abs() < (best.at - from).Abs() {
					best = s
				}
			}
			return best.memory
		}
		return memory{sum.rss / n, sum.anon / n, sum.file / n}
	}
	w := duration / 20
	start := window(0, w)
	mid := window(duration/2-w/2, duration/2+w/2)
	end := window(duration-w, duration+2*time.Second)
	growth := func(a, b int) float64 { return float64(b-a) / float64(a) }

	// Every acknowledged message must be readable, on its person's
	// profile, unless the person was erased by a completed deletion.
	lost, read := verifySoak(t, hc, baseURL, adminKey, ledger)
	victimsLeft := adm.verifyVictims(t)

	slices.Sort(ledger.latencies)
	pct := func(p float64) time.Duration {
		if len(ledger.latencies) == 0 {
			return 0
		}
		return ledger.latencies[min(len(ledger.latencies)-1, int(p*float64(len(ledger.latencies))))]
	}
	var load [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &load[0], &load[1], &load[2])
	}
	t.Logf("soak: %s on %d CPUs (load average at the end %.2f %.2f %.2f: shared with other work)", elapsed.Round(time.Second), runtime.NumCPU(), load[0], load[1], load[2])
	t.Logf("ingest: %d messages in %d batches of %d from %d clients: %.0f events/s; batch latency p50 %s, p99 %s",
		ledger.messages, batches.Load(), soakBatch, soakClients, float64(ledger.messages)/elapsed.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	t.Logf("admin: %v", adm.ops)
	t.Logf("server VmRSS: start %d KiB, middle %d KiB, end %d KiB (second half %+.1f%%)", start.rss, mid.rss, end.rss, 100*growth(mid.rss, end.rss))
	t.Logf("  anonymous (heap, caches): %d, %d, %d KiB (second half %+.1f%%); file-backed (mapped store files): %d, %d, %d KiB (%+.1f%%)",
		start.anon, mid.anon, end.anon, 100*growth(mid.anon, end.anon), start.file, mid.file, end.file, 100*growth(mid.file, end.file))
	t.Logf("verify: %d acknowledged messages read back, %d lost; %d victims erased by completed deletions, %d wrongly readable", read, lost, adm.deleted(), victimsLeft)
	t.Logf("errors: %d %v", len(ledger.errors), ledger.errors)

	// A clean stop, then the audit log must verify.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(cmdTimeout):
		t.Fatalf("custody serve did not stop on SIGTERM")
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("custody serve exited with %d on SIGTERM:\n%s", cmd.ProcessState.ExitCode(), stderr)
	}
	custody(t, dir, "audit", "verify")
	if strings.Contains(stderr.String(), "level=ERROR") {
		t.Errorf("the server logged errors:\n%s", lastLines(stderr.String(), "level=ERROR", 5))
	}

	if len(ledger.errors) > 0 {
		t.Errorf("%d errors during the soak, e.g. %v", len(ledger.errors), ledger.errors[:min(5, len(ledger.errors))])
	}
	if lost > 0 {
		t.Errorf("%d acknowledged messages lost", lost)
	}
	if victimsLeft > 0 {
		t.Errorf("%d people deleted by completed requests are still readable", victimsLeft)
	}
	// The criterion is the anonymous part: what a leak grows. The
	// file-backed part is the kernel mapping the store's files, which grow
	// with every message stored (and reads of old events page them in);
	// the kernel reclaims those pages under pressure.
	if g := growth(mid.anon, end.anon); judgeRSS && g >= rssMaxGrowth {
		t.Errorf("server anonymous memory grew by %.1f%% over the second half (%d -> %d KiB), limit %.0f%%", 100*g, mid.anon, end.anon, 100*rssMaxGrowth)
	}
}

func lastLines(s, substr string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}

// ingestLoop sends batches until ctx ends. Messages carry a userId, an
// anonymousId or both (so profiles merge as the run goes on); some are
// identifies with an email, some Order Completed events (segment members).
func ingestLoop(ctx context.Context, hc *http.Client, baseURL, key string, client int, ledger *soakLedger, batches *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(client), 77))
	for n := 0; ctx.Err() == nil; n++ {
		msgs := make([]map[string]any, 0, soakBatch)
		users := make([]int, 0, soakBatch)
		mids := make([]string, 0, soakBatch)
		now := time.Now().UTC()
		for i := range soakBatch {
			u := rng.IntN(soakUsers)
			mid := fmt.Sprintf("s%d-%d-%d", client, n, i)
			m := map[string]any{"messageId": mid, "timestamp": now.Format(time.RFC3339Nano)}
			switch r := rng.IntN(10); {
			case r == 0:
				m["anonymousId"] = fmt.Sprintf("soak-anon-%04d", u)
			case r < 3:
				m["anonymousId"] = fmt.Sprintf("soak-anon-%04d", u)
				m["userId"] = fmt.Sprintf("soak-user-%04d", u)
			default:
				m["userId"] = fmt.Sprintf("soak-user-%04d", u)
			}
			switch r := rng.IntN(20); {
			case r == 0:
				m["type"] = "identify"
				m["traits"] = map[string]any{"email": fmt.Sprintf("soak.%04d@example.test", u), "plan": []string{"free", "pro"}[rng.IntN(2)]}
			case r < 3:
				m["type"] = "track"
				m["event"] = "Order Completed"
				m["properties"] = map[string]any{"order_id": mid, "revenue": float64(rng.IntN(20000)) / 100, "currency": "EUR"}
			case r < 6:
				m["type"] = "page"
				m["name"] = "Product"
				m["properties"] = map[string]any{"path": "/p/" + strconv.Itoa(rng.IntN(500))}
			default:
				m["type"] = "track"
				m["event"] = []string{"Product Viewed", "Product Added", "Cart Viewed"}[rng.IntN(3)]
				m["properties"] = map[string]any{"product_id": strconv.Itoa(rng.IntN(500)), "price": float64(rng.IntN(10000)) / 100}
			}
			msgs = append(msgs, m)
			users = append(users, u)
			mids = append(mids, mid)
		}
		body, _ := json.Marshal(map[string]any{"batch": msgs, "context": map[string]any{"library": map[string]any{"name": "custody-soak"}}})
		start := time.Now()
		// A request in flight when the soak ends is finished, not cut.
		code, resp, err := do(context.WithoutCancel(ctx), hc, http.MethodPost, baseURL+"/v1/batch", "", key, body)
		lat := time.Since(start)
		if err != nil || code != http.StatusOK {
			ledger.errorf("batch %d/%d: HTTP %d %s %v", client, n, code, resp, err)
			continue
		}
		batches.Add(1)
		ledger.mu.Lock()
		ledger.latencies = append(ledger.latencies, lat)
		for i, u := range users {
			ledger.acked[u] = append(ledger.acked[u], mids[i])
		}
		ledger.messages += int64(len(mids))
		ledger.mu.Unlock()
	}
}

// do sends one request: Basic auth with the key as user (ingestion) when
// bearer is empty, else the bearer key (admin API).
func do(ctx context.Context, hc *http.Client, method, url, bearer, basic string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	} else {
		req.SetBasicAuth(basic, "")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// adminClient runs the admin side of the workload: segment evaluation,
// refresh and export, consent changes, and deletions of people created
// for it (victims), alternately through the admin API and through the CLI
// over the admin socket.
type adminClient struct {
	hc             *http.Client
	baseURL, key   string
	dir, ingestKey string
	ledger         *soakLedger
	mu             sync.Mutex
	ops            map[string]int
	victims        []string // deleted by a completed request
}

func (a *adminClient) deleted() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.victims)
}

func (a *adminClient) call(ctx context.Context, kind, method, path string, body any) []byte {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	code, resp, err := do(context.WithoutCancel(ctx), a.hc, method, a.baseURL+path, a.key, "", b)
	if err != nil || code/100 != 2 {
		a.ledger.errorf("%s %s: HTTP %d %s %v", method, path, code, resp, err)
		return nil
	}
	a.mu.Lock()
	a.ops[kind]++
	a.mu.Unlock()
	return resp
}

func (a *adminClient) loop(ctx context.Context, t *testing.T) {
	rng := rand.New(rand.NewPCG(99, 1))
	for n := 0; ctx.Err() == nil; n++ {
		switch n % 6 {
		case 0:
			a.call(ctx, "segment eval", http.MethodGet, "/v1/admin/segments/buyers/eval", nil)
		case 1:
			a.call(ctx, "consent", http.MethodPost, "/v1/admin/consent", map[string]any{
				"identifier": map[string]string{"type": "user_id", "value": fmt.Sprintf("soak-user-%04d", rng.IntN(soakUsers))},
				"purpose":    "analytics", "status": []string{"granted", "granted", "withdrawn"}[rng.IntN(3)]})
		case 2:
			a.call(ctx, "segment refresh", http.MethodPost, "/v1/admin/segments/buyers/refresh", nil)
		case 3:
			a.call(ctx, "segment export", http.MethodPost, "/v1/admin/segments/buyers/export?destination=out", nil)
		case 4, 5:
			a.deleteVictim(ctx, t, n, n%2 == 0)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deleteVictim stores a new person, waits for the acknowledgement, and
// deletes them (admin API, or the CLI through the admin socket).
func (a *adminClient) deleteVictim(ctx context.Context, t *testing.T, n int, viaCLI bool) {
	name := fmt.Sprintf("soak-victim-%05d", n)
	var msgs []map[string]any
	for i := range victimBatchSz {
		msgs = append(msgs, map[string]any{"type": "track", "event": "Order Completed", "userId": name,
			"messageId": fmt.Sprintf("%s-%d", name, i), "properties": map[string]any{"revenue": 10}})
	}
	body, _ := json.Marshal(map[string]any{"batch": msgs})
	code, resp, err := do(context.WithoutCancel(ctx), a.hc, http.MethodPost, a.baseURL+"/v1/batch", "", a.ingestKey, body)
	if err != nil || code != http.StatusOK {
		a.ledger.errorf("victim batch: HTTP %d %s %v", code, resp, err)
		return
	}
	var status string
	if viaCLI {
		cctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, custodyBin, "--data", a.dir, "privacy", "delete", "--user-id", name, "--json")
		cmd.Env = cleanEnv()
		out, err := cmd.Output()
		var r struct {
			Status string `json:"status"`
		}
		if err != nil || json.Unmarshal(out, &r) != nil {
			a.ledger.errorf("custody privacy delete: %v %s", err, out)
			return
		}
		status = r.Status
		a.mu.Lock()
		a.ops["delete (CLI)"]++
		a.mu.Unlock()
	} else {
		resp := a.call(ctx, "delete (API)", http.MethodPost, "/v1/admin/privacy/requests",
			map[string]any{"type": "suppress_with_delete", "identifier": map[string]string{"type": "user_id", "value": name}})
		if resp == nil {
			return
		}
		var r struct {
			Request struct {
				Status string `json:"status"`
			} `json:"request"`
		}
		_ = json.Unmarshal(resp, &r)
		status = r.Request.Status
	}
	if status != "completed" {
		a.ledger.errorf("deletion of %s: status %q", name, status)
		return
	}
	a.mu.Lock()
	a.victims = append(a.victims, name)
	a.mu.Unlock()
}

// verifyVictims counts deleted people whose profile can still be read.
func (a *adminClient) verifyVictims(t *testing.T) int {
	left := 0
	for _, v := range a.victims {
		code, _, err := do(context.Background(), a.hc, http.MethodGet, a.baseURL+"/v1/admin/profiles?user_id="+v, a.key, "", nil)
		if err != nil {
			t.Fatalf("read %s: %v", v, err)
		}
		if code != http.StatusNotFound {
			left++
		}
	}
	return left
}

// verifySoak reads every user's profile (by userId, and by anonymousId for
// messages not yet merged) and counts acknowledged messages not found.
func verifySoak(t *testing.T, hc *http.Client, baseURL, key string, ledger *soakLedger) (lost, read int) {
	t.Helper()
	ctx := context.Background()
	fetch := func(q string) (string, map[string]bool) {
		code, b, err := do(ctx, hc, http.MethodGet, baseURL+"/v1/admin/profiles?"+q, key, "", nil)
		if err != nil {
			t.Fatalf("read profile: %v", err)
		}
		if code == http.StatusNotFound {
			return "", nil
		}
		if code != http.StatusOK {
			t.Fatalf("read profile %s: HTTP %d %s", q, code, b)
		}
		var p struct {
			ID     string `json:"id"`
			Events []struct {
				MessageID string `json:"messageId"`
			} `json:"events"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range p.Events {
			if seen[e.MessageID] {
				ledger.errorf("message %s stored twice", e.MessageID)
			}
			seen[e.MessageID] = true
		}
		return p.ID, seen
	}
	for u, mids := range ledger.acked {
		id, seen := fetch("user_id=" + url.QueryEscape(fmt.Sprintf("soak-user-%04d", u)))
		if aid, aseen := fetch("anonymous_id=" + url.QueryEscape(fmt.Sprintf("soak-anon-%04d", u))); aid != id {
			if seen == nil {
				seen = map[string]bool{}
			}
			for m := range aseen {
				seen[m] = true
			}
		}
		for _, m := range mids {
			if seen[m] {
				read++
			} else {
				lost++
			}
		}
	}
	return lost, read
}
