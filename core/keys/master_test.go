package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func mustMaster(t testing.TB, fill byte) *Master {
	t.Helper()
	m, err := ParseMaster(strings.Repeat(hex.EncodeToString([]byte{fill}), 32))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGenerateMasterFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MasterKeyFile)
	if err := GenerateMasterFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %04o, want 0600", got)
	}
	b, _ := os.ReadFile(path)
	if len(b) != 65 || b[64] != '\n' {
		t.Errorf("file is %d bytes, want 64 hex chars + newline", len(b))
	}
	if _, err := hex.DecodeString(string(b[:64])); err != nil {
		t.Errorf("not hex: %v", err)
	}
	m, err := LoadMasterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseMaster(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if m.Fingerprint() != m2.Fingerprint() {
		t.Error("LoadMasterFile and ParseMaster disagree")
	}

	t.Run("refuses existing file", func(t *testing.T) {
		err := GenerateMasterFile(path)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want fs.ErrExist", err)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(after, b) {
			t.Fatal("existing key file was modified")
		}
	})
	t.Run("two keys differ", func(t *testing.T) {
		p2 := filepath.Join(dir, "other.key")
		if err := GenerateMasterFile(p2); err != nil {
			t.Fatal(err)
		}
		m3, err := LoadMasterFile(p2)
		if err != nil {
			t.Fatal(err)
		}
		if m3.Fingerprint() == m.Fingerprint() {
			t.Fatal("two generated keys are equal")
		}
	})
}

func TestLoadMasterFilePermissions(t *testing.T) {
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o602, false},
		{0o666, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), MasterKeyFile)
			if err := os.WriteFile(path, []byte(testKeyHex+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadMasterFile(path)
			if tc.ok {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMasterKeyPermissions) {
				t.Fatalf("err = %v, want ErrMasterKeyPermissions", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("%04o", tc.mode)) {
				t.Errorf("error %q should name the path and the mode", msg)
			}
			if strings.Contains(msg, testKeyHex) {
				t.Error("error contains the key")
			}
		})
	}
}

func TestLoadMasterFileMalformed(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr error
	}{
		{"valid with newline", testKeyHex + "\n", nil},
		{"valid without newline", testKeyHex, nil},
		{"valid with CRLF", testKeyHex + "\r\n", nil},
		{"empty", "", ErrBadMasterKey},
		{"too short", testKeyHex[:62] + "\n", ErrBadMasterKey},
		{"too long", testKeyHex + "00\n", ErrBadMasterKey},
		{"not hex", "zz" + testKeyHex[2:] + "\n", ErrBadMasterKey},
		{"two keys", testKeyHex + "\n" + testKeyHex + "\n", ErrBadMasterKey},
		{"huge", strings.Repeat("a", 4096), ErrBadMasterKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), MasterKeyFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadMasterFile(path)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := LoadMasterFile(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestParseMaster(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{"lower hex", testKeyHex, true},
		{"upper hex", strings.ToUpper(testKeyHex), true},
		{"surrounding whitespace", "  " + testKeyHex + "\n", true},
		{"empty", "", false},
		{"spaces only", "   ", false},
		{"63 chars", testKeyHex[:63], false},
		{"65 chars", testKeyHex + "0", false},
		{"32 chars", testKeyHex[:32], false},
		{"non-hex char", testKeyHex[:63] + "g", false},
		{"embedded space", testKeyHex[:30] + " " + testKeyHex[31:], false},
		{"0x prefix", "0x" + testKeyHex[2:], false},
		{"base64 of 32 bytes", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMaster(tc.input)
			if tc.ok {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				want, _ := ParseMaster(testKeyHex)
				if m.Fingerprint() != want.Fingerprint() {
					t.Fatal("parsed a different key")
				}
				return
			}
			if !errors.Is(err, ErrBadMasterKey) {
				t.Fatalf("err = %v, want ErrBadMasterKey", err)
			}
			if s := strings.TrimSpace(tc.input); len(s) > 4 && strings.Contains(err.Error(), s) {
				t.Errorf("error %q echoes the input", err)
			}
		})
	}
}

func TestMasterFromPassphrase(t *testing.T) {
	salt1 := []byte("0123456789abcdef")
	salt2 := []byte("0123456789abcdeF")
	a, err := MasterFromPassphrase([]byte("correct horse battery staple"), salt1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		pass, salt []byte
		same       bool
		wantErr    error
	}{
		{"same passphrase and salt", []byte("correct horse battery staple"), salt1, true, nil},
		{"different salt", []byte("correct horse battery staple"), salt2, false, nil},
		{"different passphrase", []byte("correct horse battery stable"), salt1, false, nil},
		{"longer salt", []byte("correct horse battery staple"), append(salt1, 'x'), false, nil},
		{"short salt", []byte("correct horse battery staple"), salt1[:15], false, ErrBadMasterKey},
		{"empty passphrase", nil, salt1, false, ErrBadMasterKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := MasterFromPassphrase(tc.pass, tc.salt)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b.key == a.key; got != tc.same {
				t.Fatalf("same key = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestSubkey(t *testing.T) {
	m, _ := ParseMaster(testKeyHex)
	purposes := []string{PurposeStoreEncryption, PurposeIdentifierHMAC, PurposeVaultStore, PurposeKeyring}
	seen := map[string]string{}
	for _, p := range purposes {
		t.Run(p, func(t *testing.T) {
			k := m.Subkey(p, 32)
			if len(k) != 32 {
				t.Fatalf("len = %d", len(k))
			}
			// Known answer: HKDF-SHA256(master, salt=nil, info="custody/"+purpose).
			want, err := hkdf.Key(sha256.New, m.key[:], nil, "custody/"+p, 32)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k, want) {
				t.Fatal("subkey does not match HKDF-SHA256 with info custody/<purpose>")
			}
			if !bytes.Equal(k, m.Subkey(p, 32)) {
				t.Fatal("not deterministic")
			}
			if other, dup := seen[string(k)]; dup {
				t.Fatalf("same subkey as %s", other)
			}
			seen[string(k)] = p
			if bytes.Equal(k, m.key[:]) {
				t.Fatal("subkey equals the master key")
			}
			if long := m.Subkey(p, 64); !bytes.Equal(long[:32], k) {
				t.Fatal("longer output should extend the shorter one")
			}
		})
	}
	t.Run("other master differs", func(t *testing.T) {
		if bytes.Equal(mustMaster(t, 7).Subkey(PurposeKeyring, 32), m.Subkey(PurposeKeyring, 32)) {
			t.Fatal("subkeys of different masters are equal")
		}
	})
	t.Run("bad length panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		m.Subkey(PurposeKeyring, 0)
	})
}

func TestFingerprintAndFormatting(t *testing.T) {
	m, _ := ParseMaster(testKeyHex)
	fp := m.Fingerprint()
	if len(fp) != 16 {
		t.Fatalf("fingerprint %q: want 16 hex chars", fp)
	}
	if _, err := hex.DecodeString(fp); err != nil {
		t.Fatal(err)
	}
	if fp != m.Fingerprint() {
		t.Fatal("fingerprint not stable")
	}
	if fp == mustMaster(t, 1).Fingerprint() {
		t.Fatal("different masters, same fingerprint")
	}
	if strings.Contains(testKeyHex, fp) {
		t.Fatal("fingerprint is part of the key")
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "master", m, "value", *m)
	outputs := []string{
		buf.String(),
		fmt.Sprintf("%v %s %x %X %#v %+v %d", m, m, m, m, m, m, m),
		fmt.Sprintf("%v %x %#v %+v", *m, *m, *m, *m),
		fmt.Sprint(struct{ M *Master }{m}),
		fmt.Sprintf("%+v", struct{ M Master }{*m}),
	}
	for _, out := range outputs {
		if strings.Contains(strings.ToLower(out), testKeyHex) || strings.Contains(out, string(m.key[:])) ||
			strings.Contains(out, "[0 1 2 3") {
			t.Errorf("formatting leaks the key: %q", out)
		}
		if !strings.Contains(out, fp) {
			t.Errorf("formatting should show the fingerprint: %q", out)
		}
	}
}
