package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestFailedAuthIsRateLimited(t *testing.T) {
	clk := &clock{t: fixedNow}
	e := newEnvWith(t, func(o *Options) {
		o.Now = clk.now
		o.AuthFailures = LimitOptions{Burst: 3, Every: 10 * time.Second, MaxClients: 100}
	})
	track := []byte(`{"userId":"rl","event":"E"}`)
	wrong := "cus_wrongwrongwrongwrongwrongwrongwrongwrong"
	post := func(key string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/track", strings.NewReader(string(track)))
		if key != "" {
			req.SetBasicAuth(key, "")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	steps := []struct {
		name    string
		key     string
		advance time.Duration
		want    int
		retry   string
	}{
		{"first failure", wrong, 0, 401, ""},
		{"missing key counts too", "", 0, 401, ""},
		{"third failure", wrong, 0, 401, ""},
		{"budget spent", wrong, 0, 429, "10"},
		{"admin route shares the budget", wrong, 0, 429, "10"},
		{"a valid key still works", e.keys[core.RoleIngest], 0, 200, ""},
		{"part refilled", wrong, 4 * time.Second, 429, "6"},
		{"one token back", wrong, 6 * time.Second, 401, ""},
		{"spent again", "", 0, 429, "10"},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if st.name == "admin route shares the budget" {
			if c, b := e.adminDo(t, http.MethodGet, "/v1/admin/stats", "", ""); c != st.want {
				t.Fatalf("%s: got %d %s, want %d", st.name, c, b, st.want)
			}
			continue
		}
		code, hdr := post(st.key)
		if code != st.want || hdr.Get("Retry-After") != st.retry {
			t.Fatalf("%s: got %d Retry-After %q, want %d %q", st.name, code, hdr.Get("Retry-After"), st.want, st.retry)
		}
	}
}

func TestLimiterBoundsMemory(t *testing.T) {
	clk := &clock{t: fixedNow}
	l := newLimiter(LimitOptions{Burst: 2, Every: time.Second, MaxClients: 3}, clk.now)
	for _, a := range []string{"a", "b", "c"} {
		if _, ok := l.fail(a); !ok {
			t.Fatalf("%s refused", a)
		}
	}
	// The table is full and nothing has refilled: a new address is refused
	// rather than tracked.
	if wait, ok := l.fail("d"); ok || wait != time.Second {
		t.Fatalf("d: ok=%v wait=%s, want refused for 1s", ok, wait)
	}
	if n := l.tracked(); n != 3 {
		t.Fatalf("tracking %d addresses, want 3", n)
	}
	// Known addresses keep their own budget.
	if _, ok := l.fail("a"); !ok {
		t.Fatal("a's second failure refused")
	}
	if _, ok := l.fail("a"); ok {
		t.Fatal("a's third failure allowed")
	}
	// Once buckets have refilled they are swept, making room.
	clk.add(3 * time.Second)
	if _, ok := l.fail("d"); !ok {
		t.Fatal("d refused after the sweep")
	}
	if n := l.tracked(); n != 1 {
		t.Fatalf("tracking %d addresses after the sweep, want 1", n)
	}
	for i := 0; i < 1000; i++ {
		clk.add(time.Millisecond)
		l.fail(string(rune('A' + i)))
		if n := l.tracked(); n > 3 {
			t.Fatalf("tracking %d addresses, bound is 3", n)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "custody test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// shortDir is a temporary directory short enough for a unix socket path.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestServeTLS(t *testing.T) {
	e := newEnv(t)
	dir := shortDir(t)
	certFile, keyFile, pool := selfSigned(t, dir)
	opts := DefaultOptions()
	opts.Now = e.clock
	opts.TLSCertFile, opts.TLSKeyFile = certFile, keyFile
	srv := New(e.cdp, opts)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, "127.0.0.1:0", filepath.Join(dir, "s.sock"), func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/track", strings.NewReader(`{"userId":"tls","event":"E"}`))
	req.SetBasicAuth(e.keys[core.RoleIngest], "")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("over TLS: %d %+v", resp.StatusCode, resp.TLS)
	}
	// Plain HTTP on the TLS port is not served.
	resp, err = http.Get("http://" + addr + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP answered 200 on the TLS port: %s", b)
		}
	}
	// A client that does not trust the certificate is refused.
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

func TestServeTLSBadFiles(t *testing.T) {
	e := newEnv(t)
	dir := shortDir(t)
	certFile, keyFile, _ := selfSigned(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, want string
	}{
		{"cert without key", certFile, "", "both a certificate and a key"},
		{"key without cert", "", keyFile, "both a certificate and a key"},
		{"missing cert file", filepath.Join(dir, "nope.pem"), keyFile, "nope.pem"},
		{"garbage key", certFile, garbage, "garbage.pem"},
		{"key and cert swapped", keyFile, certFile, "cert.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.TLSCertFile, opts.TLSKeyFile = tt.cert, tt.key
			err := New(e.cdp, opts).Serve(context.Background(), "127.0.0.1:0", filepath.Join(dir, "x.sock"), func(string) {
				t.Error("served with a bad TLS configuration")
			})
			if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrTLS naming %q", err, tt.want)
			}
		})
	}
}
