package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Victims are people created only to be deleted: each gets a handful of
// messages once, acknowledged before any deletion of them can start, and
// nothing afterwards, so "every acknowledged message is stored, or belongs
// to a person a completed deletion erased" can be checked exactly.
const (
	victimsPerLoop = 2
	victimMessages = 5
)

type victimState int

const (
	victimLive      victimState = iota // stored, no deletion started
	victimDeleting                     // a deletion request is in flight
	victimUncertain                    // its request was cut by the kill
	victimDeleted                      // the request answered 200 completed
	victimErased                       // cut by a kill, found erased afterwards
)

type victim struct {
	name  string
	mids  []string
	state victimState
}

// mixState is what the admin client did and knows.
type mixState struct {
	mu       sync.Mutex
	victims  []*victim
	ops      map[string]int // completed operations by kind
	cut      map[string]int // operations cut by a kill, by kind
	errors   []string       // operations that failed while the server was up
	stranded int            // requests found in_progress after a restart (must stay 0)
}

// TestKillNineMixedWorkload kills the server with SIGKILL at random moments
// of a mixed workload: concurrent batch ingestion whose identifies and
// aliases merge profiles (the clients of TestKillNineLosesNothing), and an
// admin client running deletion requests, KEK rotations, segment exports
// and refreshes and consent changes through the admin API. After every
// restart it checks that the store opens, the audit log verifies, every
// acknowledged message is readable on its person's profile (which also
// proves that no rotation left a data key unreadable), and every deletion
// cut by the kill is either not started (the person is whole) or done (the
// person is gone). CUSTODY_MIX_KILLS sets the number of kills (default 5,
// 2 with -short; `make crash` runs 50), CUSTODY_KILL_SEED the seed.
//
// A deletion request cut between its erasure and its completion is
// finished when the store is opened again (core/erasure.go resumeErasures,
// docs/guarantees.md), and one cut before its erase transaction committed
// was never written as in progress: after every restart, the last one
// included, no request may still be in_progress, and the test fails if one
// is.
func TestKillNineMixedWorkload(t *testing.T) {
	loops := 5
	if testing.Short() {
		loops = 2
	}
	if v := os.Getenv("CUSTODY_MIX_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CUSTODY_MIX_KILLS=%q: want a positive integer", v)
		}
		loops = n
	}
	seed := uint64(20261121)
	if v := os.Getenv("CUSTODY_KILL_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CUSTODY_KILL_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("%d kill -9 loops under a mixed workload, seed %d", loops, seed)
	rng := rand.New(rand.NewPCG(seed, 0x3a1))

	dir := initDataDir(t)
	exports := t.TempDir()
	cfg, err := os.OpenFile(filepath.Join(dir, "custody.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(cfg, "\ndestinations:\n  out: {kind: analytics, format: jsonl, dir: %s, fields: [email]}\n", exports)
	if err := cfg.Close(); err != nil {
		t.Fatal(err)
	}
	segFile := filepath.Join(t.TempDir(), "viewers.json")
	if err := os.WriteFile(segFile, []byte(`{"name": "viewers", "purpose": "analytics", "where": {"event": "Product Viewed"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, dir, "segment", "apply", segFile)
	ingestKey := createKey(t, dir, "ingest")
	adminKey := createKey(t, dir, "admin")

	ledger := &crashLedger{owner: map[string]string{}, acked: map[string]bool{}, statuses: map[int]int{}}
	mix := &mixState{ops: map[string]int{}, cut: map[string]int{}}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	for it := range loops {
		srv := startServer(t, dir)
		if code, body, err := get(srv.URL + "/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("loop %d: /healthz after restart: %d %s %v\nstderr:\n%s", it, code, body, err, srv.stderr)
		}
		if it > 0 {
			verifyAfterRestart(t, fmt.Sprintf("after kill %d", it), dir, srv, adminKey, ledger, mix)
		}
		seedVictims(t, srv, ingestKey, mix, it)

		opsCtx, stopOps := context.WithCancel(context.Background())
		var ops sync.WaitGroup
		ops.Add(1)
		go func(seed uint64) {
			defer ops.Done()
			runAdminOps(opsCtx, srv, adminKey, mix, rand.New(rand.NewPCG(seed, 2)))
		}(rng.Uint64())
		// The kill lands after 1-30 acknowledged batches and up to 400 ms
		// more, so among deletions, rotations and exports in flight.
		target := 1 + rng.IntN(30)
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		acks := runCrashClients(t, srv, ingestKey, ledger, base, rng.Uint64(), rng.Float64() < 0.5, target, delay)
		stopOps()
		ops.Wait()
		t.Logf("loop %d: killed after %d acknowledged batches (+%s)", it, acks, delay)
	}
	if len(ledger.statuses) > 0 || len(ledger.errors) > 0 {
		t.Fatalf("while the server was up: unexpected HTTP statuses %v, failed ingestion requests %v", ledger.statuses, ledger.errors)
	}

	srv := startServer(t, dir)
	verifyAfterRestart(t, "after the last kill", dir, srv, adminKey, ledger, mix)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	for _, b := range ledger.pending {
		if code, body, err := post(ctx, http.DefaultClient, srv.URL, "/v1/batch", ingestKey, b.body); err != nil || code != http.StatusOK {
			t.Fatalf("retrying batch %d: HTTP %d %s %v", b.no, code, body, err)
		}
		for _, mid := range b.mids {
			ledger.acked[mid] = true
		}
	}
	ledger.pending = nil
	verifyCrashStore(t, dir, ledger, "through the server")
	srv.stop(t)
	verifyCrashStore(t, dir, ledger, "direct store open")
	mustCustody(t, dir, "audit", "verify")
	var entries []struct {
		Kind string `json:"kind"`
	}
	if r := mustCustody(t, dir, "audit", "tail", "-n", "1000000", "--json"); json.Unmarshal([]byte(r.stdout), &entries) != nil {
		t.Fatalf("audit tail --json: %s", r)
	}
	certs := 0
	for _, e := range entries {
		if e.Kind == "privacy.delete" {
			certs++
		}
	}

	mix.mu.Lock()
	defer mix.mu.Unlock()
	states := map[victimState]int{}
	for _, v := range mix.victims {
		states[v.state]++
	}
	t.Logf("%d messages acknowledged; admin operations completed %v, cut by a kill %v", len(ledger.acked), mix.ops, mix.cut)
	t.Logf("victims: %d live, %d deleted (request completed), %d erased by a request cut by a kill; %d deletion requests found in_progress after a restart",
		states[victimLive], states[victimDeleted], states[victimErased], mix.stranded)
	if mix.stranded > 0 {
		t.Errorf("%d deletion requests were still in_progress after a restart: Open resumes every interrupted deletion", mix.stranded)
	}
	// The certificate is written after the keys were shredded and the KEK
	// rotated: an erased person without one may still have a live data key.
	t.Logf("deletion certificates on the audit log: %d, people erased: %d", certs, states[victimDeleted]+states[victimErased])
	// Every erased person has one: a deletion cut after its erasure is
	// finished, certificate included, by the next Open.
	if certs < states[victimDeleted]+states[victimErased] {
		t.Errorf("%d people erased (%d answered completed) but only %d certificates were written", states[victimDeleted]+states[victimErased], states[victimDeleted], certs)
	}
	if len(mix.errors) > 0 {
		t.Errorf("admin operations failed while the server was up:\n%v", mix.errors)
	}
}

// seedVictims stores victimsPerLoop new people and waits for the 200.
func seedVictims(t *testing.T, srv *server, key string, mix *mixState, it int) {
	t.Helper()
	for n := range victimsPerLoop {
		v := &victim{name: fmt.Sprintf("victim-%03d-%d", it, n)}
		var msgs []map[string]any
		for i := range victimMessages {
			mid := fmt.Sprintf("%s-%d", v.name, i)
			m := map[string]any{"messageId": mid, "userId": v.name, "type": "track", "event": "Product Viewed",
				"properties": map[string]any{"i": i}}
			if i == 0 {
				m = map[string]any{"messageId": mid, "userId": v.name, "type": "identify",
					"traits": map[string]any{"email": v.name + "@example.test"}}
			}
			msgs = append(msgs, m)
			v.mids = append(v.mids, mid)
		}
		mustPost(t, srv.URL, "/v1/batch", key, map[string]any{"batch": msgs}, http.StatusOK)
		mix.mu.Lock()
		mix.victims = append(mix.victims, v)
		mix.mu.Unlock()
	}
}

// adminCall sends one admin API request; cut reports that it failed
// because the server was killed.
func adminCall(ctx context.Context, srv *server, key, method, path string, body any) (code int, resp []byte, cut bool, err error) {
	hc := &http.Client{Timeout: cmdTimeout}
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, false, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	r, err := hc.Do(req)
	if err != nil {
		// A request cut by the kill: the process is gone (or going) within
		// moments of the error.
		select {
		case <-srv.exited:
			return 0, nil, true, nil
		case <-time.After(5 * time.Second):
			return 0, nil, false, err
		}
	}
	defer r.Body.Close()
	var out json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&out)
	return r.StatusCode, out, false, nil
}

// runAdminOps runs random admin operations until ctx ends or the server
// is killed.
func runAdminOps(ctx context.Context, srv *server, key string, mix *mixState, rng *rand.Rand) {
	for ctx.Err() == nil && !isClosed(srv.exited) {
		var kind, method, path string
		var body any
		var v *victim
		switch r := rng.IntN(100); {
		case r < 30:
			mix.mu.Lock()
			for _, c := range mix.victims {
				if c.state == victimLive {
					v = c
					v.state = victimDeleting
					break
				}
			}
			mix.mu.Unlock()
			if v == nil {
				continue
			}
			kind, method, path = "delete", http.MethodPost, "/v1/admin/privacy/requests"
			body = map[string]any{"type": "suppress_with_delete", "identifier": map[string]string{"type": "user_id", "value": v.name}}
		case r < 50:
			kind, method, path = "rotate", http.MethodPost, "/v1/admin/keys/rotate"
		case r < 70:
			kind, method, path = "export", http.MethodPost, "/v1/admin/segments/viewers/export?destination=out"
		case r < 80:
			kind, method, path = "refresh", http.MethodPost, "/v1/admin/segments/viewers/refresh"
		default:
			kind, method, path = "consent", http.MethodPost, "/v1/admin/consent"
			body = map[string]any{"identifier": map[string]string{"type": "user_id", "value": fmt.Sprintf("crash-user-%02d", rng.IntN(crashUsers))},
				"purpose": "analytics", "status": []string{"granted", "withdrawn"}[rng.IntN(2)]}
		}
		code, resp, cut, err := adminCall(ctx, srv, key, method, path, body)
		mix.mu.Lock()
		switch {
		case cut:
			mix.cut[kind]++
			if v != nil {
				v.state = victimUncertain
			}
		case err != nil || code/100 != 2:
			if ctx.Err() == nil {
				mix.errors = append(mix.errors, fmt.Sprintf("%s %s: HTTP %d %s %v; server log:\n%s", method, path, code, resp, err, lastErrors(srv.stderr.String())))
			}
			if v != nil {
				v.state = victimUncertain
			}
		default:
			mix.ops[kind]++
			if v != nil {
				var pr struct {
					Request struct {
						Status string `json:"status"`
					} `json:"request"`
				}
				if json.Unmarshal(resp, &pr) != nil || pr.Request.Status != "completed" {
					mix.errors = append(mix.errors, fmt.Sprintf("deletion of %s answered 200 but %s", v.name, resp))
				}
				v.state = victimDeleted
			}
		}
		mix.mu.Unlock()
	}
}

// verifyAfterRestart checks a freshly restarted server: the audit log
// verifies (through the admin socket), every acknowledged message is on its
// person's profile exactly once, and each victim is whole or gone as its
// deletion's outcome says.
func verifyAfterRestart(t *testing.T, when, dir string, srv *server, key string, ledger *crashLedger, mix *mixState) {
	t.Helper()
	if r := custody(t, dir, "audit", "verify"); r.code != 0 {
		t.Fatalf("%s: audit verify failed:\n%s", when, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	profile := func(user string) (*profileView, int) {
		code, resp, _, err := adminCall(ctx, srv, key, http.MethodGet, "/v1/admin/profiles?user_id="+url.QueryEscape(user), nil)
		if err != nil {
			t.Fatalf("%s: read profile of %s: %v", when, user, err)
		}
		if code != http.StatusOK {
			return nil, code
		}
		var p profileView
		if err := json.Unmarshal(resp, &p); err != nil {
			t.Fatalf("%s: profile of %s: %v", when, user, err)
		}
		return &p, code
	}

	// Acknowledged messages of the ingestion clients.
	ledger.mu.Lock()
	want := map[string][]string{}
	for mid := range ledger.acked {
		want[ledger.owner[mid]] = append(want[ledger.owner[mid]], mid)
	}
	ledger.mu.Unlock()
	for user, mids := range want {
		p, code := profile(user)
		if p == nil {
			t.Fatalf("%s: profile of %s: HTTP %d, want 200 with %d acknowledged messages", when, user, code, len(mids))
		}
		seen := map[string]int{}
		for _, e := range p.Events {
			seen[e.MessageID]++
		}
		missing := 0
		for _, mid := range mids {
			if seen[mid] == 0 {
				missing++
			}
		}
		for mid, n := range seen {
			if n > 1 {
				t.Errorf("%s: %s: message %s stored %d times", when, user, mid, n)
			}
		}
		if missing > 0 {
			t.Errorf("%s: %s: %d of %d acknowledged messages lost", when, user, missing, len(mids))
		}
	}

	// Victims: whole, or gone.
	mix.mu.Lock()
	defer mix.mu.Unlock()
	for _, v := range mix.victims {
		p, code := profile(v.name)
		switch {
		case v.state == victimDeleted || v.state == victimErased:
			if code != http.StatusNotFound {
				t.Errorf("%s: %s was deleted but its profile answers HTTP %d", when, v.name, code)
			}
		case p != nil:
			if len(p.Events) != len(v.mids) {
				t.Errorf("%s: %s (deletion not started) has %d of its %d messages: a half-done deletion", when, v.name, len(p.Events), len(v.mids))
			}
			if v.state == victimUncertain {
				v.state = victimLive // not started: it can be deleted again
			}
		case code == http.StatusNotFound && v.state == victimUncertain:
			v.state = victimErased
		default:
			t.Errorf("%s: %s (state %d): profile answers HTTP %d", when, v.name, v.state, code)
		}
	}
	code, resp, _, err := adminCall(ctx, srv, key, http.MethodGet, "/v1/admin/privacy/requests", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s: list privacy requests: HTTP %d %s %v", when, code, resp, err)
	}
	var reqs []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(resp, &reqs); err != nil {
		t.Fatalf("%s: privacy requests: %v", when, err)
	}
	var open []string
	for _, r := range reqs {
		if r.Status == "in_progress" {
			open = append(open, r.ID)
		}
	}
	if len(open) > 0 {
		// Open finishes every deletion whose erasure committed (its
		// journal is in the request); none is left in progress.
		t.Errorf("%s: deletion requests still in_progress after the restart (not resumed on open): %v\nserver errors:\n%s",
			when, open, lastErrors(srv.stderr.String()))
		mix.stranded = max(mix.stranded, len(open))
	}
}

// lastErrors returns the server log's ERROR lines (the last few).
func lastErrors(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-3):], "\n")
}
