package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// A backup round-trips every live key of a pipelined (managed) store into
// a fresh one, holds no value or key in plaintext, and any change to the
// file is detected.
func TestBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	o.Pipelined = true
	src := openTest(t, t.TempDir(), o)
	secret := []byte("plaintext-marker-4711")
	if err := src.Update(ctx, func(tx *Txn) error {
		for i := range 3000 {
			if err := tx.Set([]byte(fmt.Sprintf("e/%05d", i)), append([]byte(nil), secret...)); err != nil {
				return err
			}
		}
		return tx.Set([]byte("p/gone"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := src.Update(ctx, func(tx *Txn) error { return tx.Delete([]byte("p/gone")) }); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{9}, 32)
	var file bytes.Buffer
	info, err := src.Backup(ctx, &file, BackupOptions{Key: key, Files: map[string][]byte{"keyring.json": []byte("ring")}})
	if err != nil {
		t.Fatal(err)
	}
	if info.ByPrefix["e/"] != 3000 || info.ByPrefix["p/"] != 0 || info.Records != 3002 { // + !meta/schema, !meta/created
		t.Fatalf("backup info %+v", info)
	}
	if bytes.Contains(file.Bytes(), secret) || bytes.Contains(file.Bytes(), []byte("e/00001")) || bytes.Contains(file.Bytes(), []byte("ring")) {
		t.Fatal("backup file holds plaintext")
	}

	dst := openTest(t, t.TempDir(), o)
	l := dst.NewLoader()
	files := map[string]string{}
	got, err := ReadBackup(ctx, bytes.NewReader(file.Bytes()), key, BackupVisitor{
		Record: func(k, v []byte, exp uint64) error { return l.Set(k, v, exp) },
		File:   func(n string, b []byte) error { files[n] = string(b); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if got.Records != info.Records || files["keyring.json"] != "ring" {
		t.Fatalf("read %+v files %v", got, files)
	}
	n := 0
	if err := dst.View(ctx, func(tx *Txn) error {
		return tx.Scan([]byte("e/"), ScanOptions{}, func(_, v []byte) error {
			if !bytes.Equal(v, secret) {
				return errors.New("value changed")
			}
			n++
			return nil
		})
	}); err != nil || n != 3000 {
		t.Fatalf("restored %d events: %v", n, err)
	}
	// The store keeps working after a load.
	if err := dst.Update(ctx, func(tx *Txn) error { return tx.Set([]byte("k/after"), []byte("1")) }); err != nil {
		t.Fatal(err)
	}

	tamper := []struct {
		name string
		edit func([]byte) []byte
		key  []byte
		want error
	}{
		{"wrong key", func(b []byte) []byte { return b }, bytes.Repeat([]byte{1}, 32), ErrBackupKey},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }, key, ErrBackupCorrupt},
		{"trailer cut off", func(b []byte) []byte { return b[:len(b)-(4+24+16+17)] }, key, ErrBackupCorrupt},
		{"byte flipped", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, key, ErrBackupCorrupt},
		{"header changed", func(b []byte) []byte { return bytes.Replace(b, []byte(`"store"`), []byte(`"vault"`), 1) }, key, ErrBackupKey},
		{"not a backup", func([]byte) []byte { return []byte("hello") }, key, ErrBackupCorrupt},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(append([]byte(nil), file.Bytes()...))
			if _, err := ReadBackup(ctx, bytes.NewReader(b), tt.key, BackupVisitor{}); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
