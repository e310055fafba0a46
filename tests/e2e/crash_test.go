package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	crashUsers     = 20 // few users, so a few `profile show` calls read everything
	crashClients   = 4  // concurrent HTTP clients
	crashBatchSize = 50 // messages per /v1/batch request
)

// crashBatch is one /v1/batch request body and what it carries.
type crashBatch struct {
	no    int
	body  []byte
	mids  []string
	users []string // users[i] is the userId of mids[i]
}

// crashLedger is what the clients know: every message ever generated, and
// which batches the server acknowledged.
type crashLedger struct {
	mu       sync.Mutex
	owner    map[string]string // messageId -> userId, every generated message
	acked    map[string]bool   // messageId -> got a 200 at least once
	ackedB   []*crashBatch     // acknowledged batches (for replays)
	pending  []*crashBatch     // sent, never acknowledged: retried later
	nextNo   int
	statuses map[int]int // unexpected HTTP statuses
	errors   []string    // requests that failed while the server was up
}

func (l *crashLedger) newBatch(rng *rand.Rand, base time.Time) *crashBatch {
	l.mu.Lock()
	no := l.nextNo
	l.nextNo++
	l.mu.Unlock()
	b := &crashBatch{no: no}
	msgs := make([]map[string]any, 0, crashBatchSize)
	for i := range crashBatchSize {
		mid := fmt.Sprintf("kill9-%05d-%02d", no, i)
		u := rng.IntN(crashUsers)
		user := fmt.Sprintf("crash-user-%02d", u)
		ts := base.Add(time.Duration(no*crashBatchSize+i) * time.Millisecond).Format(time.RFC3339Nano)
		m := map[string]any{"messageId": mid, "timestamp": ts}
		// Each user also has an anonymousId and an email: some messages
		// carry only the anonymousId, some both ids, so the identity graph
		// links (merges) them while the server is being killed.
		switch r := rng.IntN(20); {
		case r < 3:
			m["anonymousId"] = fmt.Sprintf("crash-anon-%02d", u)
		case r < 7:
			m["anonymousId"] = fmt.Sprintf("crash-anon-%02d", u)
			m["userId"] = user
		default:
			m["userId"] = user
		}
		switch r := rng.IntN(10); {
		case r == 0 && rng.IntN(3) == 0:
			// An alias links the anonymousId to the userId explicitly
			// (merging their profiles if both exist already).
			m["type"] = "alias"
			m["previousId"] = fmt.Sprintf("crash-anon-%02d", u)
			m["userId"] = user
			delete(m, "anonymousId")
		case r == 0:
			m["type"] = "identify"
			m["traits"] = map[string]any{"plan": []string{"free", "pro", "team"}[rng.IntN(3)], "seq": no,
				"email": fmt.Sprintf("crash.user.%02d@example.test", u)}
		case r <= 2:
			m["type"] = "page"
			m["name"] = "Page " + strconv.Itoa(rng.IntN(5))
			m["properties"] = map[string]any{"path": "/p/" + strconv.Itoa(rng.IntN(100))}
		default:
			m["type"] = "track"
			m["event"] = []string{"Product Viewed", "Product Added", "Order Completed"}[rng.IntN(3)]
			m["properties"] = map[string]any{"batch": no, "item": i, "price": float64(rng.IntN(10000)) / 100}
		}
		msgs = append(msgs, m)
		b.mids = append(b.mids, mid)
		b.users = append(b.users, user)
	}
	body, err := json.Marshal(map[string]any{"batch": msgs, "context": map[string]any{"library": map[string]any{"name": "e2e-crash"}}})
	if err != nil {
		panic(err)
	}
	b.body = body
	l.mu.Lock()
	for i, mid := range b.mids {
		l.owner[mid] = b.users[i]
	}
	l.mu.Unlock()
	return b
}

// TestKillNineLosesNothing is the crash loop: concurrent clients send
// batches to a real server; at a random moment it is killed with SIGKILL
// and restarted on the same data directory. Every batch that got a 200 must
// be stored, batches that did not are retried (as SDKs do) and must never
// be stored twice. CUSTODY_KILL_LOOPS sets the number of kills (default 5,
// 2 with -short), CUSTODY_KILL_SEED the random seed.
func TestKillNineLosesNothing(t *testing.T) {
	loops := 5
	if testing.Short() {
		loops = 2
	}
	if v := os.Getenv("CUSTODY_KILL_LOOPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CUSTODY_KILL_LOOPS=%q: want a positive integer", v)
		}
		loops = n
	}
	seed := uint64(20240501)
	if v := os.Getenv("CUSTODY_KILL_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CUSTODY_KILL_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("%d kill -9 loops, seed %d", loops, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	dir := initDataDir(t)
	key := createKey(t, dir, "ingest")
	ledger := &crashLedger{owner: map[string]string{}, acked: map[string]bool{}, statuses: map[int]int{}}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	for it := range loops {
		srv := startServer(t, dir)
		if code, body, err := get(srv.URL + "/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("loop %d: /healthz after restart: %d %s %v\nstderr:\n%s", it, code, body, err, srv.stderr)
		}
		// Kill once this many more batches were acknowledged, plus a
		// random delay, so the kill lands among requests in flight.
		target := 3 + rng.IntN(25)
		delay := time.Duration(rng.IntN(30)) * time.Millisecond
		workerSeed := rng.Uint64()
		acks := runCrashClients(t, srv, key, ledger, base, workerSeed, rng.Float64() < 0.5, target, delay)
		if strings.Contains(srv.stderr.String(), "level=ERROR") {
			t.Errorf("loop %d: server logged errors before the kill:\n%s", it, srv.stderr)
		}
		ledger.mu.Lock()
		t.Logf("loop %d: killed after %d acknowledged batches (target %d, +%s); %d of %d batches unacknowledged, %d messages acknowledged so far",
			it, acks, target, delay, len(ledger.pending), ledger.nextNo, len(ledger.acked))
		ledger.mu.Unlock()
	}
	if len(ledger.statuses) > 0 || len(ledger.errors) > 0 {
		t.Fatalf("while the server was up: unexpected HTTP statuses %v, failed requests %v", ledger.statuses, ledger.errors)
	}

	// Restart once more: the store must open cleanly after the last kill;
	// then deliver every batch that was never acknowledged, as a client
	// with retries would.
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	ledger.mu.Lock()
	pending := ledger.pending
	ledger.pending = nil
	ledger.mu.Unlock()
	for _, b := range pending {
		code, body, err := post(ctx, http.DefaultClient, srv.URL, "/v1/batch", key, b.body)
		if err != nil || code != http.StatusOK {
			t.Fatalf("retrying batch %d after the last restart: HTTP %d %s %v", b.no, code, body, err)
		}
		ledger.mu.Lock()
		for _, mid := range b.mids {
			ledger.acked[mid] = true
		}
		ledger.mu.Unlock()
	}
	if len(ledger.acked) != len(ledger.owner) {
		t.Fatalf("%d messages generated but %d acknowledged after retries", len(ledger.owner), len(ledger.acked))
	}
	t.Logf("%d messages in %d batches, all acknowledged; %d batches were retried after the last kill",
		len(ledger.owner), ledger.nextNo, len(pending))

	// Every message is stored exactly once, on its user's profile: read
	// through the running server's socket, then, after a clean stop, by
	// opening the store directly.
	verifyCrashStore(t, dir, ledger, "through the server")
	srv.stop(t)
	verifyCrashStore(t, dir, ledger, "direct store open")
}

// runCrashClients runs crashClients concurrent clients against srv until
// target batches were acknowledged, waits delay, kills the server with
// SIGKILL and returns the number of acknowledged batches. Batches without
// a 200 go to ledger.pending.
func runCrashClients(t *testing.T, srv *server, key string, ledger *crashLedger, base time.Time,
	seed uint64, replay bool, target int, delay time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{
		Timeout:   cmdTimeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: crashClients, DisableCompression: true},
	}
	defer hc.CloseIdleConnections()

	// The feeder hands out first the batches left unacknowledged by the
	// previous kill, then new ones, and (in some loops) now and then an
	// acknowledged batch again, as a client retrying after a timeout does.
	ledger.mu.Lock()
	retry := ledger.pending
	ledger.pending = nil
	ledger.mu.Unlock()
	var killed atomic.Bool // set just before the kill: stop sending
	work := make(chan *crashBatch)
	var feederDone sync.WaitGroup
	feederDone.Add(1)
	go func() {
		defer feederDone.Done()
		defer close(work)
		rng := rand.New(rand.NewPCG(seed, 1))
		for {
			if killed.Load() {
				ledger.mu.Lock()
				ledger.pending = append(ledger.pending, retry...)
				ledger.mu.Unlock()
				return
			}
			var b *crashBatch
			fresh := false
			switch {
			case len(retry) > 0:
				b = retry[0]
			case replay && rng.IntN(8) == 0:
				ledger.mu.Lock()
				if n := len(ledger.ackedB); n > 0 {
					b = ledger.ackedB[rng.IntN(n)]
				}
				ledger.mu.Unlock()
			}
			if b == nil {
				b, fresh = ledger.newBatch(rng, base), true
			}
			select {
			case work <- b:
				if len(retry) > 0 && b == retry[0] {
					retry = retry[1:]
				}
			case <-ctx.Done():
				// Never handed out: a new batch or the retries left stay
				// unacknowledged (a replay was acknowledged before).
				ledger.mu.Lock()
				if fresh {
					ledger.pending = append(ledger.pending, b)
				}
				ledger.pending = append(ledger.pending, retry...)
				ledger.mu.Unlock()
				return
			}
		}
	}()

	ackc := make(chan struct{}, 1024)
	var workers sync.WaitGroup
	for range crashClients {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for b := range work {
				if killed.Load() {
					// The server is (being) killed: do not send, keep it.
					ledger.mu.Lock()
					if !ledger.acked[b.mids[0]] {
						ledger.pending = append(ledger.pending, b)
					}
					ledger.mu.Unlock()
					continue
				}
				code, body, err := post(ctx, hc, srv.URL, "/v1/batch", key, b.body)
				ledger.mu.Lock()
				switch {
				case err == nil && code == http.StatusOK:
					if !ledger.acked[b.mids[0]] {
						ledger.ackedB = append(ledger.ackedB, b)
					}
					for _, mid := range b.mids {
						ledger.acked[mid] = true
					}
				case err == nil && ctx.Err() == nil:
					ledger.statuses[code]++
					t.Logf("batch %d: HTTP %d: %s", b.no, code, body)
					fallthrough
				default:
					if err != nil && !killed.Load() {
						ledger.errors = append(ledger.errors, fmt.Sprintf("batch %d: %v", b.no, err))
					}
					if !ledger.acked[b.mids[0]] {
						ledger.pending = append(ledger.pending, b)
					}
				}
				ledger.mu.Unlock()
				if err == nil && code == http.StatusOK {
					select {
					case ackc <- struct{}{}:
					default:
					}
				}
			}
		}()
	}

	acks := 0
	deadline := time.After(cmdTimeout)
wait:
	for acks < target {
		select {
		case <-ackc:
			acks++
		case <-srv.exited:
			break wait
		case <-deadline:
			break wait
		}
	}
	if acks < target {
		srv.kill9(t)
		cancel()
		workers.Wait()
		feederDone.Wait()
		t.Fatalf("only %d of %d batches acknowledged within %s (server exited: %v)\nstderr:\n%s",
			acks, target, cmdTimeout, isClosed(srv.exited), srv.stderr)
	}
	time.Sleep(delay)
	killed.Store(true)
	srv.kill9(t)
	cancel()
	workers.Wait()
	feederDone.Wait()
	return acks
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// verifyCrashStore reads every user's profile and checks that each
// generated message is stored exactly once, on its user's profile (the
// person that userId, anonymousId and email were merged into).
func verifyCrashStore(t *testing.T, dir string, ledger *crashLedger, how string) {
	t.Helper()
	want := map[string][]string{} // userId -> messageIds
	for mid, user := range ledger.owner {
		want[user] = append(want[user], mid)
	}
	total := 0
	profiles := map[string]string{}
	for u := range crashUsers {
		user := fmt.Sprintf("crash-user-%02d", u)
		if len(want[user]) == 0 {
			continue
		}
		p, _ := showProfile(t, dir, "user-id", user)
		if other, ok := profiles[p.ID]; ok {
			t.Errorf("%s: users %s and %s share profile %s", how, other, user, p.ID)
		}
		profiles[p.ID] = user
		seen := map[string]int{}
		for _, e := range p.Events {
			seen[e.MessageID]++
			if owner := ledger.owner[e.MessageID]; owner != user {
				t.Errorf("%s: message %s of %q is on the profile of %s", how, e.MessageID, owner, user)
			}
		}
		var dups, missing []string
		for mid, n := range seen {
			if n > 1 {
				dups = append(dups, fmt.Sprintf("%s x%d", mid, n))
			}
		}
		for _, mid := range want[user] {
			if seen[mid] == 0 {
				missing = append(missing, mid)
			}
		}
		slices.Sort(dups)
		slices.Sort(missing)
		if len(dups) > 0 {
			t.Errorf("%s: %s: %d messageIds stored more than once, e.g. %v", how, user, len(dups), dups[:min(5, len(dups))])
		}
		if len(missing) > 0 {
			t.Errorf("%s: %s: %d acknowledged messages lost, e.g. %v", how, user, len(missing), missing[:min(5, len(missing))])
		}
		if p.EventCount != len(want[user]) {
			t.Errorf("%s: %s: %d events stored, %d sent", how, user, p.EventCount, len(want[user]))
		}
		total += p.EventCount
	}
	if total != len(ledger.owner) {
		t.Errorf("%s: %d events stored in all, %d distinct messages sent", how, total, len(ledger.owner))
	}
}

// get fetches url and returns the status and body.
func get(url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
