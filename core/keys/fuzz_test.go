package keys

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// FuzzUnseal: opening arbitrary bytes as a sealed value errors with
// ErrUnsealFailed and never panics; only the genuine sealed value (or a
// copy) opens, and a single flipped bit anywhere makes it fail.
func FuzzUnseal(f *testing.F) {
	v := openVault(f, f.TempDir(), testOptions(mustMaster(f, 7)))
	pid := uuid.MustParse("01900000-0000-7000-8000-000000000001")
	ad := []byte("e/fuzz")
	if err := v.CreateDEKs(context.Background(), []uuid.UUID{pid}); err != nil {
		f.Fatal(err)
	}
	genuine := mustSeal(f, v, pid, ad, []byte(`{"email":"fuzz@example.test"}`))
	f.Add(genuine)
	f.Add(genuine[:len(genuine)-1])
	f.Add([]byte{})
	f.Add([]byte{SealFormatV1})
	f.Add(append([]byte{0x02}, genuine[1:]...))
	f.Add(bytes.Repeat([]byte{SealFormatV1}, SealOverhead))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		pt, err := v.Unseal(context.Background(), pid, ad, sealed)
		if bytes.Equal(sealed, genuine) {
			if err != nil {
				t.Fatalf("the genuine value does not open: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("%d arbitrary bytes opened (to %d bytes)", len(sealed), len(pt))
		}
		if !errors.Is(err, ErrUnsealFailed) {
			t.Fatalf("error does not match ErrUnsealFailed: %v", err)
		}
	})
}

// FuzzParseMaster: any string either is a master key (64 hex characters,
// surrounding space ignored) or errors with ErrBadMasterKey, and the error
// never contains the input.
func FuzzParseMaster(f *testing.F) {
	for _, s := range []string{testKeyHex, " " + testKeyHex + "\n", testKeyHex[:63], testKeyHex + "0",
		strings.Replace(testKeyHex, "0", "g", 1), "", strings.Repeat("é", 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMaster(s)
		if err != nil {
			if !errors.Is(err, ErrBadMasterKey) {
				t.Fatalf("error does not match ErrBadMasterKey: %v", err)
			}
			if in := strings.TrimSpace(s); len(in) >= 4 && strings.Contains(err.Error(), in) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		b, herr := hex.DecodeString(strings.TrimSpace(s))
		if herr != nil || !bytes.Equal(b, m.key[:]) {
			t.Fatalf("%q parsed to a key that is not its hex decoding", s)
		}
	})
}

// FuzzReadKeyring: a damaged keyring.json is refused with an error, never
// a panic, and never opens with a KEK the master key did not seal.
func FuzzReadKeyring(f *testing.F) {
	m := mustMaster(f, 9)
	dir := f.TempDir()
	openVault(f, dir, testOptions(m)).Close()
	good, err := os.ReadFile(filepath.Join(dir, KeyringFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"version":1,"current":1,"epochs":[{"epoch":1}]}`))
	f.Add([]byte(`{"version":1,"current":2,"epochs":[]}`))
	f.Add([]byte(`null`))
	ringKey := m.Subkey(PurposeKeyring, chacha20poly1305.KeySize)
	ring, err := chacha20poly1305.NewX(ringKey)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), KeyringFile)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := readKeyring(path, ring)
		if err != nil {
			return
		}
		if len(st.keks) == 0 {
			t.Fatal("a keyring without a KEK was accepted")
		}
		if _, ok := st.keks[st.current]; !ok {
			t.Fatalf("current epoch %d has no KEK", st.current)
		}
	})
}
