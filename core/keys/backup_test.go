package keys

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

// A vault backup restores into an empty directory with its keys and
// shredding tombstones; it is never restored over a live vault, and a
// backup taken before a shred-and-rotate cannot open what was shredded
// when the newer keyring is kept.
func TestVaultBackupRestore(t *testing.T) {
	ctx := context.Background()
	m, err := ParseMaster("11223344556677889900aabbccddeeff11223344556677889900aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "vault")
	v := openVault(t, dir, testOptions(m))
	pids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	if err := v.CreateDEKs(ctx, pids); err != nil {
		t.Fatal(err)
	}
	sealed := mustSeal(t, v, pids[0], []byte("ad"), []byte("kept"))
	if _, err := v.Shred(ctx, pids[1:]); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := v.Backup(ctx, &file, nil); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("backup without the master key: %v", err)
	}
	info, err := v.Backup(ctx, &file, m)
	if err != nil || info.Records != 2+2 { // d/ + t/ + the store's two meta keys
		t.Fatalf("backup %+v %v", info, err)
	}
	if _, err := RestoreVault(ctx, dir, bytes.NewReader(file.Bytes()), testOptions(m)); !errors.Is(err, ErrVaultExists) {
		t.Fatalf("restore over a live vault: %v", err)
	}
	other, _ := ParseMaster("99223344556677889900aabbccddeeff11223344556677889900aabbccddeeff")
	dir2 := filepath.Join(t.TempDir(), "vault")
	if _, err := RestoreVault(ctx, dir2, bytes.NewReader(file.Bytes()), testOptions(other)); err == nil {
		t.Fatal("restored under another master key")
	}
	if _, err := RestoreVault(ctx, dir2, bytes.NewReader(file.Bytes()), testOptions(m)); err != nil {
		t.Fatal(err)
	}
	r := openVault(t, dir2, testOptions(m))
	if pt, err := r.Unseal(ctx, pids[0], []byte("ad"), sealed); err != nil || string(pt) != "kept" {
		t.Fatalf("restored key: %q %v", pt, err)
	}
	if _, err := r.Unseal(ctx, pids[1], []byte("ad"), sealed); !errors.Is(err, ErrKeyShredded) {
		t.Fatalf("shredded key after restore: %v", err)
	}
}
