package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/custody-cdp/custody/core/store"
)

func testOptions(m *Master) Options {
	o := DefaultOptions()
	o.Master = m
	o.StoreOptions.MemTableSize = 8 << 20 // badger: 15% of it must hold a 1 MiB value
	o.StoreOptions.BlockCacheSize = 1 << 20
	o.StoreOptions.IndexCacheSize = 1 << 20
	o.StoreOptions.VLogFileSize = 1 << 20
	return o
}

func openVault(t testing.TB, dir string, opts Options) *Vault {
	t.Helper()
	v, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("open vault: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func newPIDs(t testing.TB, n int) []uuid.UUID {
	t.Helper()
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.Must(uuid.NewV7())
	}
	return out
}

func mustSeal(t testing.TB, v *Vault, pid uuid.UUID, ad, pt []byte) []byte {
	t.Helper()
	s, err := v.Seal(context.Background(), pid, ad, pt)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return s
}

func TestSealUnseal(t *testing.T) {
	ctx := context.Background()
	v := openVault(t, t.TempDir(), testOptions(mustMaster(t, 1)))
	pids := newPIDs(t, 3)
	a, b, unknown := pids[0], pids[1], pids[2]
	if err := v.CreateDEKs(ctx, []uuid.UUID{a, b}); err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"email":"alice@example.com","plan":"pro"}`)
	adA := store.ProfileKey(a)
	sealedA := mustSeal(t, v, a, adA, plain)

	if len(sealedA) != len(plain)+SealOverhead || sealedA[0] != SealFormatV1 {
		t.Fatalf("sealed layout: len %d, first byte %#x", len(sealedA), sealedA[0])
	}
	if bytes.Contains(sealedA, plain) || bytes.Contains(sealedA, []byte("alice")) {
		t.Fatal("plaintext visible in sealed value")
	}
	if again := mustSeal(t, v, a, adA, plain); bytes.Equal(again, sealedA) {
		t.Fatal("two seals of the same value are identical (nonce reuse)")
	}

	flip := func(i int) []byte {
		c := bytes.Clone(sealedA)
		c[i] ^= 0x01
		return c
	}
	eventKey := store.EventKey(a, 1, [16]byte{1})
	tests := []struct {
		name    string
		pid     uuid.UUID
		ad      []byte
		sealed  []byte
		want    []byte
		wantErr error
	}{
		{"round trip", a, adA, sealedA, plain, nil},
		{"empty plaintext", a, adA, mustSeal(t, v, a, adA, nil), []byte{}, nil},
		{"large plaintext", a, eventKey, mustSeal(t, v, a, eventKey, bytes.Repeat([]byte("x"), 1<<20)), bytes.Repeat([]byte("x"), 1<<20), nil},
		{"moved to another storage key", a, store.EventKey(a, 2, [16]byte{1}), sealedA, nil, ErrUnsealFailed},
		{"moved to another profile's key", a, store.ProfileKey(b), sealedA, nil, ErrUnsealFailed},
		{"nil ad", a, nil, sealedA, nil, ErrUnsealFailed},
		{"wrong profile's DEK", b, adA, sealedA, nil, ErrUnsealFailed},
		{"tampered version byte", a, adA, flip(0), nil, ErrUnsealFailed},
		{"tampered nonce", a, adA, flip(5), nil, ErrUnsealFailed},
		{"tampered ciphertext", a, adA, flip(1 + 24 + 3), nil, ErrUnsealFailed},
		{"tampered tag", a, adA, flip(len(sealedA) - 1), nil, ErrUnsealFailed},
		{"truncated", a, adA, sealedA[:len(sealedA)-1], nil, ErrUnsealFailed},
		{"too short", a, adA, sealedA[:SealOverhead-1], nil, ErrUnsealFailed},
		{"empty", a, adA, nil, nil, ErrUnsealFailed},
		{"extended", a, adA, append(bytes.Clone(sealedA), 0), nil, ErrUnsealFailed},
		{"unknown profile", unknown, adA, sealedA, nil, ErrDEKNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Unseal(ctx, tc.pid, tc.ad, tc.sealed)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if got != nil {
					t.Fatal("returned data on error")
				}
				if strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), tc.pid.String()) {
					t.Fatalf("error %q: must name the profile and not leak plaintext", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatal("round trip mismatch")
			}
		})
	}

	t.Run("seal for unknown profile", func(t *testing.T) {
		if _, err := v.Seal(ctx, unknown, adA, plain); !errors.Is(err, ErrDEKNotFound) {
			t.Fatalf("err = %v, want ErrDEKNotFound", err)
		}
	})
	t.Run("SealTo and UnsealTo append", func(t *testing.T) {
		prefix := []byte("prefix")
		dst := make([]byte, len(prefix), 256)
		copy(dst, prefix)
		out, err := v.SealTo(ctx, dst, a, adA, plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, prefix) || &out[0] != &dst[0] {
			t.Fatal("SealTo did not append in place")
		}
		pt, err := v.UnsealTo(ctx, []byte("p:"), a, adA, out[len(prefix):])
		if err != nil || string(pt) != "p:"+string(plain) {
			t.Fatalf("UnsealTo = %q, %v", pt, err)
		}
		if out, err := v.SealTo(ctx, prefix, unknown, adA, plain); err == nil || !bytes.Equal(out, prefix) {
			t.Fatal("SealTo must return dst unchanged on error")
		}
	})
}

func TestUnsealAfterReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := testOptions(mustMaster(t, 1))
	v := openVault(t, dir, opts)
	pids := newPIDs(t, 20)
	if err := v.CreateDEKs(ctx, pids); err != nil {
		t.Fatal(err)
	}
	sealed := make([][]byte, len(pids))
	for i, p := range pids {
		sealed[i] = mustSeal(t, v, p, store.ProfileKey(p), []byte(p.String()))
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Seal(ctx, pids[0], nil, nil); !errors.Is(err, ErrVaultClosed) {
		t.Fatalf("seal after close: %v, want ErrVaultClosed", err)
	}
	opts.StoreOptions.MustExist = true
	v2 := openVault(t, dir, opts)
	if got := v2.cache.len(); got != 0 {
		t.Fatalf("cache not cold: %d", got)
	}
	for i, p := range pids {
		pt, err := v2.Unseal(ctx, p, store.ProfileKey(p), sealed[i])
		if err != nil || string(pt) != p.String() {
			t.Fatalf("unseal after reopen: %q %v", pt, err)
		}
	}
}

func TestCreateDEKs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := testOptions(mustMaster(t, 1))
	v := openVault(t, dir, opts)
	pids := newPIDs(t, 5)
	tests := []struct {
		name string
		pids []uuid.UUID
		live int
	}{
		{"empty batch", nil, 0},
		{"first batch", pids[:3], 3},
		{"again: existing left alone", pids[:3], 3},
		{"duplicates in one batch", []uuid.UUID{pids[3], pids[3], pids[4], pids[3]}, 5},
	}
	var sealed []byte
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.CreateDEKs(ctx, tc.pids); err != nil {
				t.Fatal(err)
			}
			if sealed == nil && tc.live > 0 {
				sealed = mustSeal(t, v, pids[0], []byte("k"), []byte("v"))
			}
			st, err := v.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.LiveDEKs != tc.live {
				t.Fatalf("live DEKs = %d, want %d", st.LiveDEKs, tc.live)
			}
			if sealed != nil {
				if _, err := v.Unseal(ctx, pids[0], []byte("k"), sealed); err != nil {
					t.Fatalf("existing key changed: %v", err)
				}
			}
		})
	}
	t.Run("large batch is one store transaction or split automatically", func(t *testing.T) {
		big := newPIDs(t, 30_000) // more than one 8 MiB-memtable transaction holds
		if err := v.CreateDEKs(ctx, big); err != nil {
			t.Fatal(err)
		}
		st, _ := v.Status(ctx)
		if st.LiveDEKs != 5+len(big) {
			t.Fatalf("live DEKs = %d", st.LiveDEKs)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := v.CreateDEKs(cctx, newPIDs(t, 2)); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(mustMaster(t, 1))
	opts.CacheSize = 8
	v := openVault(t, t.TempDir(), opts)
	pids := newPIDs(t, 100)
	if err := v.CreateDEKs(ctx, pids); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		for _, p := range pids {
			s := mustSeal(t, v, p, p[:], p[:])
			if _, err := v.Unseal(ctx, p, p[:], s); err != nil {
				t.Fatal(err)
			}
		}
		if n := v.cache.len(); n > 8 || n == 0 {
			t.Fatalf("cache holds %d entries, cap 8", n)
		}
	}
}

// snapshotDir returns path -> (mode, size, sha256) for everything under dir.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel] = fmt.Sprintf("dir %v", fi.Mode())
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%v %d %x %v", fi.Mode(), fi.Size(), sha256.Sum256(b), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	right, wrong := mustMaster(t, 1), mustMaster(t, 2)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"complete vault", func(t *testing.T, dir string) {}},
		{"keyring without deks", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, DeksDir)); err != nil {
				t.Fatal(err)
			}
		}},
		{"unfinished rotation", func(t *testing.T, dir string) {
			v := openVault(t, dir, testOptions(right))
			if _, _, err := v.rotateBegin(ctx); err != nil {
				t.Fatal(err)
			}
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			v := openVault(t, dir, testOptions(right))
			pids := newPIDs(t, 10)
			if err := v.CreateDEKs(ctx, pids); err != nil {
				t.Fatal(err)
			}
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			before := snapshotDir(t, dir)

			for _, opts := range []Options{testOptions(wrong), func() Options {
				o := testOptions(wrong)
				o.StoreOptions.MustExist = true
				return o
			}()} {
				_, err := Open(ctx, dir, opts)
				if !errors.Is(err, ErrWrongMasterKey) {
					t.Fatalf("err = %v, want ErrWrongMasterKey", err)
				}
				if !strings.Contains(err.Error(), "master key does not match this data directory") {
					t.Errorf("error %q lacks the explanation", err)
				}
			}
			after := snapshotDir(t, dir)
			if len(before) != len(after) {
				t.Errorf("files changed: before %d entries, after %d", len(before), len(after))
			}
			for p, b := range before {
				if after[p] != b {
					t.Errorf("%s changed: %s -> %s", p, b, after[p])
				}
			}
			for p := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("%s created", p)
				}
			}
			// And the right key still works.
			if _, err := openVault(t, dir, testOptions(right)).Status(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	m := mustMaster(t, 1)
	t.Run("no master", func(t *testing.T) {
		if _, err := Open(ctx, t.TempDir(), DefaultOptions()); err == nil {
			t.Fatal("opened without a master key")
		}
	})
	t.Run("zero StoreOptions take default sizes", func(t *testing.T) {
		v := openVault(t, t.TempDir(), Options{Master: m})
		if err := v.CreateDEKs(ctx, newPIDs(t, 3)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("MustExist on empty dir", func(t *testing.T) {
		dir := t.TempDir()
		o := testOptions(m)
		o.StoreOptions.MustExist = true
		if _, err := Open(ctx, dir, o); !errors.Is(err, store.ErrNotInitialised) {
			t.Fatalf("err = %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatal("created files")
		}
	})
	t.Run("deks without keyring", func(t *testing.T) {
		dir := t.TempDir()
		v := openVault(t, dir, testOptions(m))
		_ = v.Close()
		if err := os.Remove(filepath.Join(dir, KeyringFile)); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, dir, testOptions(m))
		if err == nil || !strings.Contains(err.Error(), KeyringFile) {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, KeyringFile)); err == nil {
			t.Fatal("created a new keyring next to existing DEKs")
		}
	})
	t.Run("corrupted keyring", func(t *testing.T) {
		dir := t.TempDir()
		v := openVault(t, dir, testOptions(m))
		_, _, _ = v.rotateBegin(ctx)
		_ = v.Close()
		path := filepath.Join(dir, KeyringFile)
		var f keyringFile
		b, _ := os.ReadFile(path)
		_ = json.Unmarshal(b, &f)
		f.Epochs[1].SealedKEK[30] ^= 1
		b, _ = json.Marshal(f)
		_ = os.WriteFile(path, b, 0o600)
		_, err := Open(ctx, dir, testOptions(m))
		if err == nil || errors.Is(err, ErrWrongMasterKey) || !strings.Contains(err.Error(), "corrupted") {
			t.Fatalf("err = %v, want a corruption error (not ErrWrongMasterKey)", err)
		}
	})
	t.Run("locked by another vault", func(t *testing.T) {
		dir := t.TempDir()
		openVault(t, dir, testOptions(m))
		if _, err := Open(ctx, dir, testOptions(m)); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("err = %v, want store.ErrLocked", err)
		}
	})
}

func readKeyringJSON(t *testing.T, dir string) (keyringFile, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	var f keyringFile
	var raw map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return f, raw
}

func TestKeyringFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	opts := testOptions(mustMaster(t, 1))
	opts.Now = func() time.Time { return now }
	v := openVault(t, dir, opts)

	fi, err := os.Stat(filepath.Join(dir, KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode %04o", fi.Mode().Perm())
	}
	f, raw := readKeyringJSON(t, dir)
	for _, k := range []string{"version", "current", "epochs", "retired"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("keyring.json lacks %q", k)
		}
	}
	ep := raw["epochs"].([]any)[0].(map[string]any)
	for _, k := range []string{"epoch", "created_at", "sealed_kek"} {
		if _, ok := ep[k]; !ok {
			t.Errorf("epoch entry lacks %q", k)
		}
	}
	if f.Version != 1 || f.Current != 1 || len(f.Epochs) != 1 || f.Epochs[0].Epoch != 1 || len(f.Retired) != 0 {
		t.Fatalf("new keyring: %+v", f)
	}
	if !f.Epochs[0].CreatedAt.Equal(now) || len(f.Epochs[0].SealedKEK) != 24+32+16 {
		t.Fatalf("epoch 1: %+v", f.Epochs[0])
	}
	if v.Epoch() != 1 {
		t.Fatalf("Epoch() = %d", v.Epoch())
	}

	now = now.Add(time.Hour)
	rep, err := v.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FromEpoch != 1 || rep.ToEpoch != 2 || !slices.Equal(rep.Retired, []uint32{1}) {
		t.Fatalf("report %+v", rep)
	}
	f, _ = readKeyringJSON(t, dir)
	if f.Current != 2 || len(f.Epochs) != 1 || f.Epochs[0].Epoch != 2 ||
		len(f.Retired) != 1 || f.Retired[0].Epoch != 1 || !f.Retired[0].RetiredAt.Equal(now) {
		t.Fatalf("after rotate: %+v", f)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("vault dir holds %d entries (temp files left?)", len(ents))
	}
	st, err := v.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 2 || st.RotationPending || len(st.Retired) != 1 || st.MasterFingerprint != opts.Master.Fingerprint() {
		t.Fatalf("status %+v", st)
	}
}

func TestShred(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := testOptions(mustMaster(t, 1))
	v := openVault(t, dir, opts)
	pids := newPIDs(t, 4)
	a, b, c, never := pids[0], pids[1], pids[2], pids[3]
	if err := v.CreateDEKs(ctx, []uuid.UUID{a, b, c}); err != nil {
		t.Fatal(err)
	}
	sealed := map[uuid.UUID][]byte{}
	for _, p := range []uuid.UUID{a, b, c} {
		sealed[p] = mustSeal(t, v, p, store.ProfileKey(p), []byte("secret of "+p.String()))
	}
	rep, err := v.Shred(ctx, []uuid.UUID{a, c, never, a})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count != 2 || len(rep.Fingerprints) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, fp := range rep.Fingerprints {
		if len(fp) != 16 {
			t.Fatalf("fingerprint %q", fp)
		}
	}
	check := func(t *testing.T, v *Vault) {
		tests := []struct {
			pid     uuid.UUID
			wantErr error
		}{{a, ErrKeyShredded}, {c, ErrKeyShredded}, {never, ErrKeyShredded}, {b, nil}}
		for _, tc := range tests {
			_, err := v.Unseal(ctx, tc.pid, store.ProfileKey(tc.pid), sealed[tc.pid])
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("unseal %s: err = %v, want %v", tc.pid, err, tc.wantErr)
			}
			_, err = v.Seal(ctx, tc.pid, nil, []byte("x"))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("seal %s: err = %v, want %v", tc.pid, err, tc.wantErr)
			}
		}
	}
	t.Run("live", func(t *testing.T) { check(t, v) })
	t.Run("CreateDEKs does not resurrect", func(t *testing.T) {
		if err := v.CreateDEKs(ctx, []uuid.UUID{a}); err != nil {
			t.Fatal(err)
		}
		check(t, v)
	})
	t.Run("shred again counts nothing", func(t *testing.T) {
		rep, err := v.Shred(ctx, []uuid.UUID{a})
		if err != nil || rep.Count != 0 {
			t.Fatalf("%+v %v", rep, err)
		}
	})
	t.Run("after reopen", func(t *testing.T) {
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		v2 := openVault(t, dir, opts)
		check(t, v2)
		st, err := v2.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LiveDEKs != 1 || st.Shredded != 3 {
			t.Fatalf("status %+v", st)
		}
	})
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShreddingProof shows what Shred + Rotate guarantees about copies of
// deks/ (old store files, backups): once the KEK epoch they were wrapped
// under is retired, they cannot be unwrapped with the current keyring.
func TestShreddingProof(t *testing.T) {
	ctx := context.Background()
	m := mustMaster(t, 1)
	opts := testOptions(m)
	live := t.TempDir()
	v := openVault(t, live, opts)
	pids := newPIDs(t, 2)
	a, b := pids[0], pids[1]
	if err := v.CreateDEKs(ctx, pids); err != nil {
		t.Fatal(err)
	}
	adA, adB := store.ProfileKey(a), store.ProfileKey(b)
	sealedA := mustSeal(t, v, a, adA, []byte("alice's data"))
	sealedB := mustSeal(t, v, b, adB, []byte("bob's data"))

	// A raw copy of the whole vault directory: "a backup".
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	copyTree(t, live, backup)
	oldRing, _ := readKeyringJSON(t, backup)

	v = openVault(t, live, opts)
	if rep, err := v.Shred(ctx, []uuid.UUID{a}); err != nil || rep.Count != 1 {
		t.Fatalf("shred: %+v %v", rep, err)
	}
	rep, err := v.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewrapped != 1 || !slices.Equal(rep.Retired, []uint32{1}) {
		t.Fatalf("rotate report %+v", rep)
	}
	if _, err := v.Unseal(ctx, a, adA, sealedA); !errors.Is(err, ErrKeyShredded) {
		t.Fatalf("live A: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("current keyring holds no trace of the retired KEK", func(t *testing.T) {
		cur, _ := readKeyringJSON(t, live)
		raw, _ := os.ReadFile(filepath.Join(live, KeyringFile))
		for _, e := range cur.Epochs {
			if e.Epoch == 1 {
				t.Fatal("epoch 1 still live")
			}
		}
		if bytes.Contains(raw, []byte(mustJSONBytes(t, oldRing.Epochs[0].SealedKEK))) {
			t.Fatal("sealed epoch-1 KEK still in keyring.json")
		}
	})

	t.Run("live vault still opens B with its re-wrapped DEK", func(t *testing.T) {
		v := openVault(t, live, opts) // cold cache: unwraps from deks/
		pt, err := v.Unseal(ctx, b, adB, sealedB)
		if err != nil || string(pt) != "bob's data" {
			t.Fatalf("B: %q %v", pt, err)
		}
		st, _ := v.Status(ctx)
		if st.DEKsByEpoch[2] != 1 || len(st.DEKsByEpoch) != 1 {
			t.Fatalf("DEKs by epoch %v", st.DEKsByEpoch)
		}
		_ = v.Close()
	})

	t.Run("old deks backup restored next to the current keyring", func(t *testing.T) {
		restored := filepath.Join(t.TempDir(), "restored")
		copyTree(t, filepath.Join(backup, DeksDir), filepath.Join(restored, DeksDir))
		copyTree(t, filepath.Join(live, KeyringFile), filepath.Join(restored, KeyringFile))
		rv := openVault(t, restored, opts)
		st, err := rv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LiveDEKs != 2 || st.DEKsByEpoch[1] != 2 {
			t.Fatalf("restored backup should hold A's and B's old wrapped DEKs: %+v", st)
		}
		for _, tc := range []struct {
			name   string
			pid    uuid.UUID
			ad     []byte
			sealed []byte
		}{{"A", a, adA, sealedA}, {"B (old copy)", b, adB, sealedB}} {
			_, err := rv.Unseal(ctx, tc.pid, tc.ad, tc.sealed)
			if !errors.Is(err, ErrKEKRetired) || !errors.Is(err, ErrKeyShredded) {
				t.Fatalf("%s: err = %v, want ErrKEKRetired and ErrKeyShredded", tc.name, err)
			}
		}
		// Rotating does not bring them back either; they are orphans.
		rep, err := rv.Rotate(ctx)
		if err != nil || rep.Orphaned != 2 || rep.Rewrapped != 0 {
			t.Fatalf("rotate restored: %+v %v", rep, err)
		}
		if _, err := rv.Unseal(ctx, a, adA, sealedA); !errors.Is(err, ErrKEKRetired) {
			t.Fatalf("A after rotate: %v", err)
		}
	})

	t.Run("even the raw KEK-sealed bytes cannot be opened under any live KEK", func(t *testing.T) {
		// Unwrap A's backed-up DEK by hand with every KEK in the current keyring.
		ringKey := m.Subkey(PurposeKeyring, 32)
		ring, _ := chacha20poly1305.NewX(ringKey)
		st, err := readKeyring(filepath.Join(live, KeyringFile), ring)
		if err != nil {
			t.Fatal(err)
		}
		w := readWrappedFromBackup(t, ctx, filepath.Join(backup, DeksDir), m, a)
		for e, kek := range st.keks {
			if _, err := unwrapDEK(kek, a[:], w); err == nil {
				t.Fatalf("A's old wrapped DEK opens under live epoch %d", e)
			}
		}
	})

	// Documented limitation (see doc.go): a copy of the whole vault
	// directory taken before the rotation includes the old keyring.json, so
	// with the master key it still opens A. Vault backups must therefore be
	// kept apart from data backups and expire, or the master key replaced.
	t.Run("whole-vault backup with its own old keyring (documented limitation)", func(t *testing.T) {
		bv := openVault(t, backup, opts)
		if _, err := bv.Unseal(ctx, a, adA, sealedA); err != nil {
			t.Fatalf("expected the full pre-rotation vault copy to still open A: %v", err)
		}
	})
}

func mustJSONBytes(t *testing.T, b []byte) string {
	t.Helper()
	j, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(string(j), `"`)
}

func readWrappedFromBackup(t *testing.T, ctx context.Context, dir string, m *Master, pid uuid.UUID) []byte {
	t.Helper()
	so := testOptions(m).StoreOptions
	so.EncryptionKey = m.Subkey(PurposeVaultStore, 32)
	so.MustExist = true
	db, err := store.Open(ctx, dir, so)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var w []byte
	if err := db.View(ctx, func(tx *store.Txn) error {
		w, err = tx.Get(dekKey(pid))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if e, _ := wrappedEpoch(w); e != 1 {
		t.Fatalf("backup copy wrapped under epoch %d", e)
	}
	return w
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := testOptions(mustMaster(t, 1))
	opts.CacheSize = 16
	v := openVault(t, dir, opts)
	v.segment = 1500         // several scan rounds...
	pids := newPIDs(t, 5000) // ...and several re-wrap batches
	if err := v.CreateDEKs(ctx, pids); err != nil {
		t.Fatal(err)
	}
	sealed := make([][]byte, len(pids))
	for i, p := range pids {
		sealed[i] = mustSeal(t, v, p, p[:], []byte(p.String()))
	}
	checkAll := func(t *testing.T, v *Vault) {
		t.Helper()
		for i, p := range pids {
			pt, err := v.Unseal(ctx, p, p[:], sealed[i])
			if err != nil || string(pt) != p.String() {
				t.Fatalf("unseal %d: %v", i, err)
			}
		}
	}
	for want := uint32(2); want <= 4; want++ {
		t.Run(fmt.Sprintf("to epoch %d", want), func(t *testing.T) {
			rep, err := v.Rotate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.FromEpoch != want-1 || rep.ToEpoch != want || rep.Rewrapped != len(pids) ||
				!slices.Equal(rep.Retired, []uint32{want - 1}) {
				t.Fatalf("report %+v", rep)
			}
			if v.Epoch() != want {
				t.Fatalf("Epoch() = %d", v.Epoch())
			}
			checkAll(t, v)
			st, err := v.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.LiveDEKs != len(pids) || st.DEKsByEpoch[want] != len(pids) || len(st.LiveEpochs) != 1 ||
				len(st.Retired) != int(want-1) || st.RotationPending {
				t.Fatalf("status %+v", st)
			}
		})
	}
	t.Run("after reopen", func(t *testing.T) {
		_ = v.Close()
		v2 := openVault(t, dir, opts)
		v2.segment = 1500
		if v2.Epoch() != 4 {
			t.Fatalf("epoch %d", v2.Epoch())
		}
		checkAll(t, v2)
	})
}

func TestRotateResume(t *testing.T) {
	ctx := context.Background()
	const n = 3000
	tests := []struct {
		name string
		// crash runs part of a rotation on v, then the vault is closed
		// (every step is durable on its own, so Close = crash).
		crash         func(t *testing.T, v *Vault)
		wantRewrapped int
	}{
		{"crash after step 1", func(t *testing.T, v *Vault) {
			if _, _, err := v.rotateBegin(ctx); err != nil {
				t.Fatal(err)
			}
		}, n},
		{"crash in the middle of step 2", func(t *testing.T, v *Vault) {
			if _, _, err := v.rotateBegin(ctx); err != nil {
				t.Fatal(err)
			}
			var keys [][]byte
			_ = v.db.View(ctx, func(tx *store.Txn) error {
				return tx.Scan([]byte(dekPrefix), store.ScanOptions{KeysOnly: true, Limit: n / 3}, func(k, _ []byte) error {
					keys = append(keys, k)
					return nil
				})
			})
			if got, err := v.rewrapKeys(ctx, v.state.Load(), keys); err != nil || got != n/3 {
				t.Fatalf("rewrapped %d, %v", got, err)
			}
		}, n - n/3},
		{"crash after step 2", func(t *testing.T, v *Vault) {
			if _, _, err := v.rotateBegin(ctx); err != nil {
				t.Fatal(err)
			}
			if got, _, err := v.rewrapAll(ctx); err != nil || got != n {
				t.Fatalf("rewrapped %d, %v", got, err)
			}
		}, 0},
		{"cancelled during step 2", func(t *testing.T, v *Vault) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := v.rotateBegin(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Rotate(cctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
		}, n},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(mustMaster(t, 1))
			v := openVault(t, dir, opts)
			pids := newPIDs(t, n)
			if err := v.CreateDEKs(ctx, pids); err != nil {
				t.Fatal(err)
			}
			sealed := make([][]byte, n)
			for i, p := range pids {
				sealed[i] = mustSeal(t, v, p, p[:], p[:])
			}
			tc.crash(t, v)
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}

			v = openVault(t, dir, opts)
			st, err := v.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !st.RotationPending || len(st.LiveEpochs) != 2 || v.Epoch() != 2 {
				t.Fatalf("after crash: %+v", st)
			}
			for i, p := range pids { // DEKs under either epoch open
				if _, err := v.Unseal(ctx, p, p[:], sealed[i]); err != nil {
					t.Fatalf("unseal %d before resume: %v", i, err)
				}
			}
			extra := uuid.Must(uuid.NewV7())
			if err := v.CreateDEKs(ctx, []uuid.UUID{extra}); err != nil {
				t.Fatal(err)
			}
			rep, err := v.Rotate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.FromEpoch != 1 || rep.ToEpoch != 2 || rep.Rewrapped != tc.wantRewrapped ||
				!slices.Equal(rep.Retired, []uint32{1}) {
				t.Fatalf("resume report %+v", rep)
			}
			_ = v.Close()
			v = openVault(t, dir, opts)
			st, _ = v.Status(ctx)
			if st.RotationPending || st.Epoch != 2 || st.DEKsByEpoch[2] != n+1 || len(st.DEKsByEpoch) != 1 ||
				len(st.Retired) != 1 || st.Retired[0].Epoch != 1 {
				t.Fatalf("after resume: %+v", st)
			}
			for i, p := range pids {
				if _, err := v.Unseal(ctx, p, p[:], sealed[i]); err != nil {
					t.Fatalf("unseal %d after resume: %v", i, err)
				}
			}
		})
	}
}

func TestConcurrentSealUnsealRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := testOptions(mustMaster(t, 1))
	opts.CacheSize = 32 // force misses, so DEKs are unwrapped during rotation
	v := openVault(t, dir, opts)
	v.segment = 500 // several scan rounds per rotation
	pids := newPIDs(t, 3000)
	if err := v.CreateDEKs(ctx, pids); err != nil {
		t.Fatal(err)
	}
	victims := newPIDs(t, 50)
	if err := v.CreateDEKs(ctx, victims); err != nil {
		t.Fatal(err)
	}

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		ops     atomic.Int64
		errMu   sync.Mutex
		errs    []error
		created sync.Map
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			buf := make([]byte, 0, 1024)
			for !stop.Load() {
				p := pids[r.IntN(len(pids))]
				msg := []byte(p.String())
				s, err := v.SealTo(ctx, buf[:0], p, p[:], msg)
				if err != nil {
					fail(err)
					return
				}
				pt, err := v.Unseal(ctx, p, p[:], s)
				if err != nil || !bytes.Equal(pt, msg) {
					fail(fmt.Errorf("unseal: %v", err))
					return
				}
				ops.Add(1)
			}
		}(uint64(g))
	}
	wg.Add(1)
	go func() { // ingest creating new profiles during rotation
		defer wg.Done()
		for !stop.Load() {
			batch := make([]uuid.UUID, 20)
			for i := range batch {
				batch[i] = uuid.Must(uuid.NewV7())
			}
			if err := v.CreateDEKs(ctx, batch); err != nil {
				fail(err)
				return
			}
			for _, p := range batch {
				s, err := v.Seal(ctx, p, p[:], []byte("new"))
				if err != nil {
					fail(err)
					return
				}
				created.Store(p, s)
			}
		}
	}()
	wg.Add(1)
	go func() { // erasure requests during rotation
		defer wg.Done()
		for _, p := range victims {
			if stop.Load() {
				return
			}
			if _, err := v.Shred(ctx, []uuid.UUID{p}); err != nil {
				fail(err)
				return
			}
			if _, err := v.Seal(ctx, p, nil, nil); !errors.Is(err, ErrKeyShredded) {
				fail(fmt.Errorf("seal after shred: %v", err))
				return
			}
		}
	}()

	for ops.Load() < 100 { // let the workers get going
		time.Sleep(time.Millisecond)
	}
	opsBefore := ops.Load()
	var reps []RotateReport
	for i := 0; i < 3; i++ {
		rep, err := v.Rotate(ctx)
		if err != nil {
			t.Error(err)
			break
		}
		reps = append(reps, rep)
	}
	opsDuring := ops.Load() - opsBefore
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d seal+unseal pairs during %d rotations %+v", opsDuring, len(reps), reps)
	if opsDuring == 0 {
		t.Error("no seal/unseal ran while rotating")
	}
	if v.Epoch() != 4 {
		t.Fatalf("epoch %d", v.Epoch())
	}
	// Everything created during the rotations is under the final epoch and
	// opens after a restart.
	_ = v.Close()
	v = openVault(t, dir, opts)
	st, err := v.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.DEKsByEpoch) != 1 || st.DEKsByEpoch[4] != st.LiveDEKs {
		t.Fatalf("DEKs left under old epochs: %v", st.DEKsByEpoch)
	}
	created.Range(func(k, val any) bool {
		p := k.(uuid.UUID)
		if _, err := v.Unseal(ctx, p, p[:], val.([]byte)); err != nil {
			t.Errorf("profile created during rotation: %v", err)
			return false
		}
		return true
	})
	for _, p := range victims {
		if _, err := v.Seal(ctx, p, nil, nil); err != nil && !errors.Is(err, ErrKeyShredded) {
			t.Fatal(err)
		}
	}
}

func TestNoSecretsInErrors(t *testing.T) {
	// Errors carry profile ids and sizes, never key bytes: make sure the
	// wrapped-DEK path does not format its inputs.
	ctx := context.Background()
	m, _ := ParseMaster(testKeyHex)
	v := openVault(t, t.TempDir(), testOptions(m))
	p := uuid.Must(uuid.NewV7())
	_ = v.CreateDEKs(ctx, []uuid.UUID{p})
	s := mustSeal(t, v, p, []byte("ad"), []byte("top secret plaintext"))
	s[len(s)-1] ^= 1
	_, err := v.Unseal(ctx, p, []byte("ad"), s)
	for _, bad := range []string{"top secret", hex.EncodeToString(s[1:25]), testKeyHex} {
		if strings.Contains(err.Error(), bad) {
			t.Fatalf("error %q contains secret material", err)
		}
	}
}
