package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

func testOptions() Options {
	o := DefaultOptions()
	o.EncryptionKey = bytes.Repeat([]byte{7}, 32)
	o.MemTableSize, o.BlockCacheSize, o.IndexCacheSize = 8<<20, 8<<20, 8<<20
	return o
}

func openTest(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	tests := []struct {
		name string
		dir  string
		opts func(*Options)
		want error
	}{
		{"locked by another open", dir, func(*Options) {}, ErrLocked},
		{"must exist", filepath.Join(t.TempDir(), "none"), func(o *Options) { o.MustExist = true }, ErrNotInitialised},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.opts(&o)
			if _, err := Open(ctx, tt.dir, o); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("wrong key", func(t *testing.T) {
		o := testOptions()
		o.EncryptionKey = bytes.Repeat([]byte{8}, 32)
		if _, err := Open(ctx, dir, o); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("err = %v, want ErrWrongKey", err)
		}
	})
	t.Run("short key", func(t *testing.T) {
		o := testOptions()
		o.EncryptionKey = []byte("short")
		if _, err := Open(ctx, t.TempDir(), o); err == nil {
			t.Fatal("opened with a short key")
		}
	})
}

func TestSchemaVersionChecked(t *testing.T) {
	for _, tc := range []struct {
		stored string
		want   int // 0: Open fails with ErrSchemaVersion
	}{
		{"99", 0},
		{"0", 0},
		{"x", 0},
		{strconv.Itoa(SchemaVersion + 1), 0},
		{strconv.Itoa(MinSchemaVersion), MinSchemaVersion},
		{strconv.Itoa(SchemaVersion), SchemaVersion},
	} {
		t.Run(tc.stored, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openTest(t, dir, testOptions())
			if s.Schema() != SchemaVersion {
				t.Fatalf("new store at version %d", s.Schema())
			}
			if err := s.Update(ctx, func(tx *Txn) error { return tx.Set(keySchema, []byte(tc.stored)) }); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, dir, testOptions())
			if tc.want == 0 {
				if !errors.Is(err, ErrSchemaVersion) {
					t.Fatalf("err = %v, want ErrSchemaVersion", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Schema() != tc.want {
				t.Fatalf("Schema() = %d, want %d", s.Schema(), tc.want)
			}
			if err := s.SetSchema(ctx, SchemaVersion); err != nil {
				t.Fatal(err)
			}
			if err := s.SetSchema(ctx, SchemaVersion+1); !errors.Is(err, ErrSchemaVersion) {
				t.Fatalf("SetSchema beyond this build: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, testOptions())
			if s.Schema() != SchemaVersion {
				t.Fatalf("after SetSchema, reopened at %d", s.Schema())
			}
		})
	}
}

func TestTxnAndScan(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions())
	pid := uuid.Must(uuid.NewV7())
	err := s.Update(ctx, func(tx *Txn) error {
		for i := 0; i < 5; i++ {
			var mid [16]byte
			mid[0] = byte(i)
			if err := tx.Set(EventKey(pid, int64(1000-i), mid), []byte{byte(i)}); err != nil {
				return err
			}
		}
		return tx.Set(ProfileKey(pid), []byte("p"))
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		so   ScanOptions
		want []byte // first byte of each value, in scan order
	}{
		{"forward, by time", ScanOptions{}, []byte{4, 3, 2, 1, 0}},
		{"reverse", ScanOptions{Reverse: true}, []byte{0, 1, 2, 3, 4}},
		{"limit", ScanOptions{Limit: 2}, []byte{4, 3}},
		{"from a key", ScanOptions{From: EventKey(pid, 998, [16]byte{2})}, []byte{2, 1, 0}},
		{"from between keys", ScanOptions{From: append(EventKey(pid, 997, [16]byte{3}), 0)}, []byte{2, 1, 0}},
		{"from outside the prefix is ignored", ScanOptions{From: ProfileKey(pid)}, []byte{4, 3, 2, 1, 0}},
		{"borrowed", ScanOptions{Borrow: true}, []byte{4, 3, 2, 1, 0}},
		{"borrowed, reverse, limit", ScanOptions{Borrow: true, Reverse: true, Limit: 3}, []byte{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			err := s.View(ctx, func(tx *Txn) error {
				return tx.Scan(EventPrefix(pid), tt.so, func(k, v []byte) error {
					if _, ts, _, err := ParseEventKey(k); err != nil || ts < 996 {
						return fmt.Errorf("bad key %x", k)
					}
					got = append(got, v[0])
					return nil
				})
			})
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	err = s.View(ctx, func(tx *Txn) error {
		if _, err := tx.Get(ProfileKey(uuid.New())); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("missing key: %v", err)
		}
		ok, err := tx.Has(ProfileKey(pid))
		if !ok || err != nil {
			return fmt.Errorf("Has = %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A borrowing scan makes no copy per key: over many keys it allocates a
// fraction of what a copying scan does, however many keys there are.
func TestScanBorrowDoesNotCopy(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions())
	const n = 2000
	err := s.Update(ctx, func(tx *Txn) error {
		for i := 0; i < n; i++ {
			if err := tx.Set([]byte(fmt.Sprintf("e/%06d", i)), bytes.Repeat([]byte{byte(i)}, 40)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	scan := func(so ScanOptions) float64 {
		return testing.AllocsPerRun(3, func() {
			seen := 0
			err := s.View(ctx, func(tx *Txn) error {
				return tx.Scan([]byte("e/"), so, func(k, v []byte) error {
					if len(k) != 8 || len(v) != 40 || v[0] != byte(seen) {
						return fmt.Errorf("key %q value %x", k, v)
					}
					seen++
					return nil
				})
			})
			if err != nil || seen != n {
				t.Fatalf("%d keys, %v", seen, err)
			}
		})
	}
	copied, borrowed := scan(ScanOptions{}), scan(ScanOptions{Borrow: true})
	if copied < 2*n || borrowed > n/10 {
		t.Fatalf("%d keys: %.0f allocations copying, %.0f borrowing", n, copied, borrowed)
	}
}

// TableSize sets one size for the tables of every level; zero keeps
// Badger's growth.
func TestTableSize(t *testing.T) {
	def := badger.DefaultOptions("")
	for _, tc := range []struct {
		name       string
		size       int64
		base       int64
		multiplier int
	}{
		{"badger's", 0, def.BaseTableSize, def.TableSizeMultiplier},
		{"one size", 1 << 20, 1 << 20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.TableSize = tc.size
			got := openTest(t, t.TempDir(), o).db.Opts()
			if got.BaseTableSize != tc.base || got.TableSizeMultiplier != tc.multiplier {
				t.Fatalf("base table %d ×%d, want %d ×%d", got.BaseTableSize, got.TableSizeMultiplier, tc.base, tc.multiplier)
			}
		})
	}
}

func TestScanHonoursContext(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	err := s.Update(context.Background(), func(tx *Txn) error {
		for i := 0; i < 3000; i++ {
			if err := tx.Set([]byte(fmt.Sprintf("e/%06d", i)), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err = s.View(ctx, func(tx *Txn) error {
		return tx.Scan([]byte("e/"), ScanOptions{KeysOnly: true}, func(_, _ []byte) error {
			n++
			if n == 10 {
				cancel()
			}
			return nil
		})
	})
	if !errors.Is(err, context.Canceled) || n >= 3000 {
		t.Fatalf("scan went on after cancel: %d keys, err %v", n, err)
	}
}

func TestTTLExpires(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions())
	if err := s.Update(ctx, func(tx *Txn) error { return tx.SetWithTTL([]byte("u/x"), nil, time.Second) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // Badger's TTL has second resolution
	err := s.View(ctx, func(tx *Txn) error {
		if ok, _ := tx.Has([]byte("u/x")); ok {
			return errors.New("expired key still present")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every key the system writes must start with a registered prefix.
func TestPrefixesAreDistinct(t *testing.T) {
	for i, a := range Prefixes {
		for j, b := range Prefixes {
			if i != j && bytes.HasPrefix([]byte(a.Prefix), []byte(b.Prefix)) {
				t.Errorf("prefix %q shadows %q", b.Prefix, a.Prefix)
			}
		}
	}
	if _, err := os.Stat("doc.go"); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile("doc.go")
	for _, p := range Prefixes {
		if !bytes.Contains(doc, []byte(string(p.Prefix))) {
			t.Errorf("prefix %q is not documented in doc.go", p.Prefix)
		}
	}
}

// TestStats: the tree's shape counts the tables written, and reads through
// them are counted by both caches (encryption at rest puts every index
// in the index cache).
func TestStats(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	if st := s.Stats(); st.Tables != 0 || st.Keys != 0 {
		t.Fatalf("empty store: %+v", st)
	}
	const n = 3000
	key := func(i int) []byte { return []byte(fmt.Sprintf("x/%06d", i)) }
	if err := s.Update(ctx, func(tx *Txn) error {
		for i := range n {
			if err := tx.Set(key(i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close() // the memtable becomes a table
	s = openTest(t, dir, testOptions())
	st := s.Stats()
	if st.Tables == 0 || st.Keys < n || st.TableBytes == 0 || st.IndexBytes == 0 || st.BloomBytes == 0 || st.BloomBytes > st.IndexBytes {
		t.Fatalf("after %d keys: %+v", n, st)
	}
	before := st.BlockHits + st.BlockMisses + st.IndexHits + st.IndexMisses
	if err := s.View(ctx, func(tx *Txn) error {
		for i := range n {
			if _, err := tx.Get(key(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	if st.BlockHits+st.BlockMisses == 0 || st.IndexHits+st.IndexMisses == 0 || st.BlockHits+st.BlockMisses+st.IndexHits+st.IndexMisses < before+n {
		t.Fatalf("after %d reads: %+v", n, st)
	}
}
