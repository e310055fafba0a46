package store

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/crypto/chacha20poly1305"
)

// Backup file format, version 1 (see docs/operations.md, "Backup and
// restore"). Badger's encryption at rest protects its table and value-log
// files, not a stream read out of it: the stream carries every value as
// stored (sealed values stay sealed, but keys, pids, memberships and
// journals are readable). So a backup is encrypted as a whole:
//
//	magic   16 bytes  "custody-backup\x00\x01"
//	header  4 + n     uint32 big-endian length, then JSON (BackupHeader:
//	                  kind, schema, time, random salt; nothing personal)
//	frames  repeated  uint32 big-endian length n, then nonce(24) ||
//	                  XChaCha20-Poly1305(plaintext) with associated data
//	                  SHA-256(magic || header) || frame index (uint64)
//
// The frame key is HMAC-SHA256(key, "custody-backup/v1" || salt), key being
// what the caller passes (core derives it from the master key). A frame's
// plaintext is a type byte then its body:
//
//	1 records: repeated uvarint len || key, uvarint len || value,
//	           uvarint expiresAt (unix seconds, 0: never)
//	2 file:    uvarint len || name, then the file's bytes
//	3 trailer: uint64 records, uint64 frames before it (the last frame)
//
// Frames cannot be reordered, dropped, moved to another backup or cut off
// the end without ReadBackup failing: the index and the header hash are
// authenticated with every frame, and the trailer must come last.
const backupMagic = "custody-backup\x00\x01"

const (
	frameRecords byte = 1
	frameFile    byte = 2
	frameTrailer byte = 3
	// frameTarget is the plaintext size at which a records frame is sealed.
	frameTarget = 1 << 20
	// maxFrame bounds what ReadBackup accepts for one frame.
	maxFrame = 256 << 20
)

// Backup errors.
var (
	// ErrBackupKey: the backup does not open with this key (another master
	// key, or not a backup of this installation).
	ErrBackupKey = errors.New("store: backup does not open with this key (made under another master key?)")
	// ErrBackupCorrupt: the file is not a complete, unmodified backup.
	ErrBackupCorrupt = errors.New("store: backup file is corrupt, truncated or modified")
)

// BackupHeader is the plaintext header of a backup file.
type BackupHeader struct {
	Format  int       `json:"format"`
	Kind    string    `json:"kind"` // "store" or "vault"
	Schema  int       `json:"schema"`
	Created time.Time `json:"created"`
	Salt    []byte    `json:"salt"`
}

// BackupOptions configure Backup.
type BackupOptions struct {
	// Key is the 32-byte backup key. Required.
	Key []byte
	// Kind names what is backed up ("store" if empty).
	Kind string
	// Files are named blobs stored (encrypted) with the records, e.g. the
	// vault's keyring file.
	Files map[string][]byte
	// Now is the clock for the header (time.Now if nil).
	Now func() time.Time
}

// BackupInfo reports what a backup holds: counts only.
type BackupInfo struct {
	Header   BackupHeader     `json:"header"`
	Records  int64            `json:"records"`
	ByPrefix map[string]int64 `json:"by_prefix"`
	Files    []string         `json:"files,omitempty"`
	Bytes    int64            `json:"bytes"`
}

// PrefixOf returns the keyspace prefix of key (up to and including the
// first '/'), or "" if it has none.
func PrefixOf(key []byte) string {
	for i, b := range key {
		if b == '/' {
			return string(key[:i+1])
		}
	}
	return ""
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// frameWriter seals frames.
type frameWriter struct {
	w    *countingWriter
	aead interface {
		Seal(dst, nonce, pt, ad []byte) []byte
	}
	hdrH  [32]byte
	index uint64
}

func frameKey(key, salt []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("custody-backup/v1"))
	m.Write(salt)
	return m.Sum(nil)
}

func frameAD(hdrH [32]byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), hdrH[:]...), index)
}

func (f *frameWriter) write(pt []byte) error {
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := make([]byte, 4, 4+len(nonce)+len(pt)+chacha20poly1305.Overhead)
	out = append(out, nonce...)
	out = f.aead.Seal(out, nonce, pt, frameAD(f.hdrH, f.index))
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	f.index++
	_, err := f.w.Write(out)
	return err
}

func writeHeader(w io.Writer, h BackupHeader) ([32]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return [32]byte{}, err
	}
	buf := append([]byte(backupMagic), binary.BigEndian.AppendUint32(nil, uint32(len(hb)))...)
	buf = append(buf, hb...)
	sum := sha256.Sum256(append([]byte(backupMagic), hb...))
	_, err = w.Write(buf)
	return sum, err
}

// Backup writes an encrypted, consistent snapshot of the whole store to w
// (the latest version of every live key, read at one timestamp, as a
// Badger stream). The store keeps serving reads and writes meanwhile;
// writes after the snapshot are not in the backup.
func (s *Store) Backup(ctx context.Context, w io.Writer, opts BackupOptions) (BackupInfo, error) {
	if len(opts.Key) != 32 {
		return BackupInfo{}, fmt.Errorf("backup: key must be 32 bytes, got %d", len(opts.Key))
	}
	if opts.Kind == "" {
		opts.Kind = "store"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	info := BackupInfo{Header: BackupHeader{Format: 1, Kind: opts.Kind, Schema: SchemaVersion, Created: opts.Now().UTC(), Salt: salt},
		ByPrefix: map[string]int64{}}
	aead, err := chacha20poly1305.NewX(frameKey(opts.Key, salt))
	if err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countingWriter{w: bw}
	hdrH, err := writeHeader(cw, info.Header)
	if err != nil {
		return info, fmt.Errorf("backup: write header: %w", err)
	}
	fw := &frameWriter{w: cw, aead: aead, hdrH: hdrH}
	names := make([]string, 0, len(opts.Files))
	for n := range opts.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pt := []byte{frameFile}
		pt = binary.AppendUvarint(pt, uint64(len(n)))
		pt = append(append(pt, n...), opts.Files[n]...)
		if err := fw.write(pt); err != nil {
			return info, fmt.Errorf("backup: %w", err)
		}
		info.Files = append(info.Files, n)
	}

	var stream *badger.Stream
	if s.opts.Pipelined {
		stream = s.db.NewStreamAt(s.committed.Load())
	} else {
		stream = s.db.NewStream()
	}
	stream.LogPrefix = "custody.Backup"
	stream.NumGo = 2
	var mu sync.Mutex // Send is called by one goroutine; the lock documents it
	buf := []byte{frameRecords}
	stream.Send = func(zb *z.Buffer) error {
		list, err := badger.BufferToKVList(zb)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, kv := range list.Kv {
			if kv.StreamDone || len(kv.Key) == 0 {
				continue
			}
			buf = binary.AppendUvarint(buf, uint64(len(kv.Key)))
			buf = append(buf, kv.Key...)
			buf = binary.AppendUvarint(buf, uint64(len(kv.Value)))
			buf = append(buf, kv.Value...)
			buf = binary.AppendUvarint(buf, kv.ExpiresAt)
			info.Records++
			info.ByPrefix[PrefixOf(kv.Key)]++
			if len(buf) >= frameTarget {
				if err := fw.write(buf); err != nil {
					return err
				}
				buf = buf[:1]
			}
		}
		return ctx.Err()
	}
	if err := stream.Orchestrate(ctx); err != nil {
		return info, fmt.Errorf("backup: %w", translate(err))
	}
	if len(buf) > 1 {
		if err := fw.write(buf); err != nil {
			return info, fmt.Errorf("backup: %w", err)
		}
	}
	tr := []byte{frameTrailer}
	tr = binary.BigEndian.AppendUint64(tr, uint64(info.Records))
	tr = binary.BigEndian.AppendUint64(tr, fw.index)
	if err := fw.write(tr); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	info.Bytes = cw.n
	return info, nil
}

// BackupVisitor receives what ReadBackup decrypts, in file order. Nil
// fields skip that kind of content.
type BackupVisitor struct {
	Record func(key, val []byte, expiresAt uint64) error
	File   func(name string, data []byte) error
}

// ReadBackup authenticates and decrypts a backup, calling v for every
// record and file. It fails with ErrBackupKey if the first frame does not
// open with key, and with ErrBackupCorrupt if any frame is missing,
// modified, reordered or the trailer is absent. Records already passed to v
// before a failure must be discarded by the caller.
func ReadBackup(ctx context.Context, r io.Reader, key []byte, v BackupVisitor) (BackupInfo, error) {
	var info BackupInfo
	info.ByPrefix = map[string]int64{}
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return info, fmt.Errorf("%w: not a Custody backup (bad magic)", ErrBackupCorrupt)
	}
	var n4 [4]byte
	if _, err := io.ReadFull(br, n4[:]); err != nil {
		return info, fmt.Errorf("%w: header", ErrBackupCorrupt)
	}
	hl := binary.BigEndian.Uint32(n4[:])
	if hl > 1<<16 {
		return info, fmt.Errorf("%w: header too long", ErrBackupCorrupt)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return info, fmt.Errorf("%w: header", ErrBackupCorrupt)
	}
	if err := json.Unmarshal(hb, &info.Header); err != nil || info.Header.Format != 1 || len(info.Header.Salt) < 16 {
		return info, fmt.Errorf("%w: header", ErrBackupCorrupt)
	}
	if info.Header.Schema < MinSchemaVersion || info.Header.Schema > SchemaVersion {
		return info, fmt.Errorf("backup of schema version %d, this build reads %d to %d: %w", info.Header.Schema, MinSchemaVersion, SchemaVersion, ErrSchemaVersion)
	}
	hdrH := sha256.Sum256(append([]byte(backupMagic), hb...))
	aead, err := chacha20poly1305.NewX(frameKey(key, info.Header.Salt))
	if err != nil {
		return info, err
	}
	info.Bytes = int64(len(magic) + 4 + len(hb))
	var index uint64
	for {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		if _, err := io.ReadFull(br, n4[:]); err != nil {
			return info, fmt.Errorf("%w: ends after frame %d without its trailer", ErrBackupCorrupt, index)
		}
		fl := binary.BigEndian.Uint32(n4[:])
		if fl < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || fl > maxFrame {
			return info, fmt.Errorf("%w: frame %d has a bad length", ErrBackupCorrupt, index)
		}
		fb := make([]byte, fl)
		if _, err := io.ReadFull(br, fb); err != nil {
			return info, fmt.Errorf("%w: frame %d is truncated", ErrBackupCorrupt, index)
		}
		info.Bytes += int64(4 + fl)
		pt, err := aead.Open(nil, fb[:chacha20poly1305.NonceSizeX], fb[chacha20poly1305.NonceSizeX:], frameAD(hdrH, index))
		if err != nil {
			if index == 0 {
				return info, ErrBackupKey
			}
			return info, fmt.Errorf("%w: frame %d does not authenticate", ErrBackupCorrupt, index)
		}
		if len(pt) == 0 {
			return info, fmt.Errorf("%w: empty frame %d", ErrBackupCorrupt, index)
		}
		body := pt[1:]
		switch pt[0] {
		case frameTrailer:
			if len(body) != 16 || binary.BigEndian.Uint64(body) != uint64(info.Records) || binary.BigEndian.Uint64(body[8:]) != index {
				return info, fmt.Errorf("%w: trailer does not match the frames read", ErrBackupCorrupt)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return info, fmt.Errorf("%w: data after the trailer", ErrBackupCorrupt)
			}
			return info, nil
		case frameFile:
			nl, k := binary.Uvarint(body)
			if k <= 0 || uint64(len(body)-k) < nl {
				return info, fmt.Errorf("%w: frame %d", ErrBackupCorrupt, index)
			}
			name := string(body[k : k+int(nl)])
			info.Files = append(info.Files, name)
			if v.File != nil {
				if err := v.File(name, body[k+int(nl):]); err != nil {
					return info, err
				}
			}
		case frameRecords:
			for len(body) > 0 {
				var parts [2][]byte
				for i := range parts {
					l, k := binary.Uvarint(body)
					if k <= 0 || uint64(len(body)-k) < l {
						return info, fmt.Errorf("%w: frame %d", ErrBackupCorrupt, index)
					}
					parts[i] = body[k : k+int(l) : k+int(l)]
					body = body[k+int(l):]
				}
				exp, k := binary.Uvarint(body)
				if k <= 0 {
					return info, fmt.Errorf("%w: frame %d", ErrBackupCorrupt, index)
				}
				body = body[k:]
				info.Records++
				info.ByPrefix[PrefixOf(parts[0])]++
				if v.Record != nil {
					if err := v.Record(parts[0], parts[1], exp); err != nil {
						return info, err
					}
				}
			}
		default:
			return info, fmt.Errorf("%w: frame %d has an unknown type", ErrBackupCorrupt, index)
		}
		index++
	}
}

// Loader bulk-writes records into a store that nothing else writes to
// (a restore into a fresh store). Call Flush at the end.
type Loader struct {
	s  *Store
	wb *badger.WriteBatch
	ts uint64
}

// NewLoader starts a bulk load.
func (s *Store) NewLoader() *Loader {
	l := &Loader{s: s}
	if s.opts.Pipelined {
		s.mu.Lock()
		s.next++
		l.ts = s.next
		s.mu.Unlock()
		l.wb = s.db.NewWriteBatchAt(l.ts)
	} else {
		l.wb = s.db.NewWriteBatch()
	}
	return l
}

// Set writes key = val, expiring at expiresAt (unix seconds; 0: never).
// key and val must not be modified afterwards.
func (l *Loader) Set(key, val []byte, expiresAt uint64) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	e := badger.NewEntry(key, val)
	e.ExpiresAt = expiresAt
	return translate(l.wb.SetEntry(e))
}

// Flush writes what is pending, durably, and makes it visible.
func (l *Loader) Flush() error {
	err := translate(l.wb.Flush())
	if l.s.opts.Pipelined {
		l.s.finish(l.ts, err, nil)
	}
	if err != nil {
		return err
	}
	return l.s.Sync()
}

// Cancel abandons the load.
func (l *Loader) Cancel() {
	l.wb.Cancel()
	if l.s.opts.Pipelined {
		l.s.finish(l.ts, nil, nil) // nothing was written at ts
	}
}

// Empty reports whether the store holds nothing but its metadata.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := s.View(ctx, func(tx *Txn) error {
		return tx.Scan(nil, ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			if PrefixOf(k) != string(PrefixMeta) {
				empty = false
				return ErrStopScan
			}
			return nil
		})
	})
	return empty, err
}
