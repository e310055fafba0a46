package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// custodyBin is the binary built once by TestMain.
var custodyBin string

// cmdTimeout bounds every CLI invocation; it is generous because the race
// detector and a busy CI machine slow everything down, and it only exists
// so that a hang fails the test instead of the whole run.
const cmdTimeout = 2 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("CUSTODY_E2E_BIN"); bin != "" {
		// A prebuilt binary (e.g. when iterating on the tests only).
		custodyBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "custody-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	custodyBin = filepath.Join(dir, "custody")
	gobin, err := exec.LookPath("go")
	if err != nil && os.Getenv("GOROOT") != "" {
		gobin, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go command is needed to build custody:", err)
		return 1
	}
	build := exec.Command(gobin, "build", "-o", custodyBin, "./cmd/custody")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building custody in %s: %v\n", root, err)
		return 1
	}
	return m.Run()
}

// moduleRoot finds the directory of Custody's go.mod above the test's
// working directory (tests/e2e).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/custody-cdp/custody\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/custody-cdp/custody not found above the working directory")
		}
		dir = parent
	}
}

// repoPath returns a path inside the repository.
func repoPath(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// baseEnv is the test process's environment without any CUSTODY_ variable,
// so that a developer's settings cannot leak into the tests.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUSTODY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// newDataDir returns a not yet existing data directory under t.TempDir().
// Unix socket paths are limited to ~108 bytes, so a long TMPDIR falls back
// to a short directory.
func newDataDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if len(dir)+len("/custody.sock") < 100 {
		return dir
	}
	short, err := os.MkdirTemp("/tmp", "cus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	return filepath.Join(short, "data")
}

// result is what one CLI invocation did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("custody %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs the custody binary with args and the given extra environment.
type cli struct {
	env   []string
	stdin io.Reader
}

func (c cli) run(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, custodyBin, args...)
	cmd.Env = baseEnv(c.env...)
	cmd.Stdin = c.stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("custody %s: did not finish within %s\nstderr:\n%s", strings.Join(args, " "), cmdTimeout, res.stderr)
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("custody %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// custody runs `custody --data dir args...` with a clean environment.
func custody(t testing.TB, dir string, args ...string) result {
	t.Helper()
	return cli{}.run(t, append([]string{"--data", dir}, args...)...)
}

// mustCustody is custody that fails the test unless the exit code is 0.
func mustCustody(t testing.TB, dir string, args ...string) result {
	t.Helper()
	r := custody(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	return r
}

// initDataDir runs `custody init` on a fresh data directory.
func initDataDir(t testing.TB) string {
	t.Helper()
	dir := newDataDir(t)
	mustCustody(t, dir, "init")
	return dir
}

// createKey creates an API key (through the server if one runs) and
// returns the plaintext key.
func createKey(t testing.TB, dir, role string) string {
	t.Helper()
	r := mustCustody(t, dir, "apikey", "create", "--role", role, "--name", "e2e "+role, "--json")
	var k struct {
		Key  string `json:"key"`
		ID   string `json:"id"`
		Role string `json:"role"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil {
		t.Fatalf("apikey create --json: %v\n%s", err, r)
	}
	if !strings.HasPrefix(k.Key, "cus_") || k.ID == "" || k.Role != role {
		t.Fatalf("apikey create --json: unexpected output\n%s", r)
	}
	return k.Key
}

// profileView is the JSON of `custody profile show --json`.
type profileView struct {
	ID          string `json:"id"`
	Identifiers []struct {
		Type      string    `json:"type"`
		Value     string    `json:"value"`
		FirstSeen time.Time `json:"first_seen"`
	} `json:"identifiers"`
	Traits     map[string]json.RawMessage `json:"traits"`
	EventCount int                        `json:"event_count"`
	Events     []storedEvent              `json:"events"`
	Computed   map[string]any             `json:"computed_traits"`
}

type storedEvent struct {
	Type              string          `json:"type"`
	MessageID         string          `json:"messageId"`
	UserID            string          `json:"userId"`
	AnonymousID       string          `json:"anonymousId"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	Category          string          `json:"category"`
	Traits            json.RawMessage `json:"traits"`
	Properties        json.RawMessage `json:"properties"`
	Context           json.RawMessage `json:"context"`
	Timestamp         time.Time       `json:"timestamp"`
	OriginalTimestamp time.Time       `json:"originalTimestamp"`
}

func (p *profileView) hasIdentifier(typ, value string) bool {
	for _, id := range p.Identifiers {
		if id.Type == typ && id.Value == value {
			return true
		}
	}
	return false
}

// showProfile runs `custody profile show --<flag> value --json` and decodes
// it; it fails the test unless the profile exists.
func showProfile(t testing.TB, dir, flag, value string) (*profileView, result) {
	t.Helper()
	r := mustCustody(t, dir, "profile", "show", "--"+flag, value, "--json")
	var p profileView
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("profile show --json: %v\n%s", err, r)
	}
	if p.EventCount != len(p.Events) {
		t.Fatalf("profile show: event_count %d but %d events listed", p.EventCount, len(p.Events))
	}
	return &p, r
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

var readyRe = regexp.MustCompile(`custody serving on (http://\S+) \(admin socket ([^)\n]+)\)`)

// server is a running `custody serve` process.
type server struct {
	URL     string
	Socket  string
	dataDir string
	cmd     *exec.Cmd
	stdout  *syncBuffer
	stderr  *syncBuffer
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// startServer runs `custody [globalArgs] --data dir serve --addr
// 127.0.0.1:0` and waits for its ready line. The process is stopped with
// SIGTERM when the test ends, if it still runs.
func startServer(t testing.TB, dir string, globalArgs ...string) *server {
	t.Helper()
	args := append([]string{"--data", dir}, globalArgs...)
	args = append(args, "serve", "--addr", "127.0.0.1:0")
	cmd := exec.Command(custodyBin, args...)
	cmd.Env = baseEnv()
	s := &server{dataDir: dir, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start custody serve: %v", err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.stop(t)
		}
	})
	deadline := time.NewTimer(cmdTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := readyRe.FindStringSubmatch(s.stdout.String()); m != nil {
			s.URL, s.Socket = m[1], m[2]
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("custody serve exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", s.waitErr, s.stdout, s.stderr)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			<-s.exited
			t.Fatalf("custody serve was not ready within %s\nstderr:\n%s", cmdTimeout, s.stderr)
		case <-tick.C:
		}
	}
	if want := filepath.Join(dir, "custody.sock"); s.Socket != want {
		t.Errorf("ready line names admin socket %q, want %q", s.Socket, want)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Errorf("server listens on %s, want loopback", s.URL)
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit (code 0).
func (s *server) stop(t testing.TB) {
	t.Helper()
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(cmdTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			t.Errorf("custody serve did not stop within %s of SIGTERM\nstderr:\n%s", cmdTimeout, s.stderr)
			return
		}
		if s.waitErr != nil {
			t.Errorf("custody serve did not exit cleanly on SIGTERM: %v\nstderr:\n%s", s.waitErr, s.stderr)
		}
		if _, err := os.Stat(s.Socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("admin socket %s still exists after a clean stop (stat: %v)", s.Socket, err)
		}
	})
}

// kill9 kills the server with SIGKILL and reaps it.
func (s *server) kill9(t testing.TB) {
	t.Helper()
	s.once.Do(func() {
		if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Errorf("kill -9: %v", err)
		}
		<-s.exited
	})
}

// post sends body (raw bytes, or anything else as JSON) to the ingestion API
// with key as the HTTP Basic user, as Segment's SDKs do.
func post(ctx context.Context, hc *http.Client, baseURL, path, key string, body any) (int, []byte, error) {
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return 0, nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(key, "")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	return resp.StatusCode, rb, err
}

// mustPost is post that fails the test unless the answer has status want.
func mustPost(t testing.TB, baseURL, path, key string, body any, want int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	code, rb, err := post(ctx, http.DefaultClient, baseURL, path, key, body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	if code != want {
		t.Fatalf("POST %s: HTTP %d, want %d: %s", path, code, want, rb)
	}
	return rb
}
