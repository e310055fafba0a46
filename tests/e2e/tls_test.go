package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "custody e2e"},
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
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

var tlsReadyRe = regexp.MustCompile(`custody serving on (https://\S+) `)

// TestServeTLS runs `custody serve --tls-cert --tls-key` and sends a
// Segment message over HTTPS with a client that trusts only the test's
// self-signed certificate.
func TestServeTLS(t *testing.T) {
	dir := initDataDir(t)
	key := createKey(t, dir, "ingest")
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir())

	t.Run("flags must come in pairs", func(t *testing.T) {
		r := custody(t, dir, "serve", "--addr", "127.0.0.1:0", "--tls-cert", certFile)
		if r.code == 0 || !strings.Contains(r.stderr, "--tls-key") {
			t.Fatalf("want a refusal naming --tls-key\n%s", r)
		}
	})
	t.Run("a bad key file stops the start", func(t *testing.T) {
		r := custody(t, dir, "serve", "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", certFile)
		if r.code == 0 || !strings.Contains(r.stderr, "cert.pem") {
			t.Fatalf("want a refusal naming the file\n%s", r)
		}
	})

	cmd := exec.Command(custodyBin, "--data", dir, "serve", "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	cmd.Env = baseEnv()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	var url string
	deadline := time.Now().Add(cmdTimeout)
	for url == "" {
		if m := tlsReadyRe.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("serve exited: %v\n%s\n%s", err, stdout, stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready\n%s", stderr)
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/track", strings.NewReader(`{"userId":"tls-user","event":"Over TLS"}`))
	req.SetBasicAuth(key, "")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, b)
	}
	// Plain HTTP on the same port gets no API answer.
	if resp, err := http.Get(strings.Replace(url, "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("serve did not stop cleanly: %v\n%s", err, stderr)
	}
	stopped = true
	p, _ := showProfile(t, dir, "user-id", "tls-user")
	if p.EventCount != 1 {
		t.Fatalf("the message sent over TLS was not stored: %d events", p.EventCount)
	}
}
