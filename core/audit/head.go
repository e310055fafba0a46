package audit

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/custody-cdp/custody/core/keys"
)

// HeadFile is the name of the sealed chain head inside Options.HeadDir.
const HeadFile = "audit-head"

// PurposeHead is the master-key subkey purpose sealing the head file.
const PurposeHead = "audit-head/v1"

const (
	headMagic   = "CAH1" // file format 1
	headAD      = "custody/audit-head/v1"
	headVersion = 1
	// maxHeadFile bounds what readHead reads: a head holds at most one
	// batch (maxBatchBytes of entries plus framing).
	maxHeadFile = 16 << 20
	tempPattern = ".audit-head-*.tmp"
)

// errHeadInvalid marks a head file that does not authenticate or is
// malformed. It is reported as ErrHeadMismatch.
var errHeadInvalid = errors.New("head file fails authentication (forged, corrupted or sealed under another master key)")

// head is the chain head: the sequence number and hash of the last entry,
// and the last batch of entries in full (seq-len(recs)+1 .. seq). The batch
// is what Open re-applies when the store lacks it after a crash. At seq 0
// (empty log) recs is empty and hash is all zeros.
type head struct {
	seq  uint64
	hash [hashSize]byte
	recs []record
}

// first is the sequence number of the first entry in the batch.
func (h *head) first() uint64 { return h.seq - uint64(len(h.recs)) + 1 }

func newHeadAEAD(m *keys.Master) (cipher.AEAD, error) {
	k := m.Subkey(PurposeHead, chacha20poly1305.KeySize)
	defer clear(k)
	return chacha20poly1305.NewX(k)
}

// sealHead encodes h as magic || nonce || XChaCha20-Poly1305(plaintext,
// AD = headAD || magic), with plaintext = version(1) || seq(8) || hash(32)
// || count(4) || count × (len(4) || stored entry value).
func sealHead(aead cipher.AEAD, h *head) []byte {
	n := 1 + 8 + hashSize + 4
	for i := range h.recs {
		n += 4 + len(h.recs[i].value)
	}
	pt := make([]byte, 0, n)
	pt = append(pt, headVersion)
	pt = binary.BigEndian.AppendUint64(pt, h.seq)
	pt = append(pt, h.hash[:]...)
	pt = binary.BigEndian.AppendUint32(pt, uint32(len(h.recs)))
	for i := range h.recs {
		pt = binary.BigEndian.AppendUint32(pt, uint32(len(h.recs[i].value)))
		pt = append(pt, h.recs[i].value...)
	}
	out := make([]byte, 0, len(headMagic)+chacha20poly1305.NonceSizeX+len(pt)+aead.Overhead())
	out = append(out, headMagic...)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, pt, []byte(headAD+headMagic))
}

// openHead authenticates and decodes a head file, and checks that its batch
// is a valid chain ending at its hash.
func openHead(aead cipher.AEAD, b []byte) (*head, error) {
	if len(b) < len(headMagic)+chacha20poly1305.NonceSizeX+aead.Overhead() || string(b[:len(headMagic)]) != headMagic {
		return nil, errHeadInvalid
	}
	nonce := b[len(headMagic) : len(headMagic)+chacha20poly1305.NonceSizeX]
	pt, err := aead.Open(nil, nonce, b[len(headMagic)+chacha20poly1305.NonceSizeX:], []byte(headAD+headMagic))
	if err != nil {
		return nil, errHeadInvalid
	}
	// From here on the content is authentic: a failure is a bug or a
	// format from another version, still reported as invalid.
	bad := func(what string) (*head, error) {
		return nil, fmt.Errorf("%w: %s", errHeadInvalid, what)
	}
	if len(pt) < 1+8+hashSize+4 || pt[0] != headVersion {
		return bad("unknown version")
	}
	h := &head{seq: binary.BigEndian.Uint64(pt[1:])}
	copy(h.hash[:], pt[9:])
	count := binary.BigEndian.Uint32(pt[9+hashSize:])
	p := pt[9+hashSize+4:]
	if uint64(count) > h.seq || (h.seq > 0 && count == 0) {
		return bad("batch size")
	}
	for i := uint32(0); i < count; i++ {
		if len(p) < 4 {
			return bad("truncated")
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return bad("truncated")
		}
		r, err := decodeRecord(p[4 : 4+n : 4+n])
		if err != nil || !r.hashOK() {
			return bad("batch entry does not decode")
		}
		if i > 0 && (r.seq != h.recs[i-1].seq+1 || r.prev != h.recs[i-1].hash) {
			return bad("batch is not a chain")
		}
		h.recs = append(h.recs, r)
		p = p[4+n:]
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	if count == 0 {
		if h.hash != ([hashSize]byte{}) {
			return bad("empty head with a hash")
		}
		return h, nil
	}
	last := &h.recs[len(h.recs)-1]
	if last.seq != h.seq || last.hash != h.hash {
		return bad("batch does not end at the head")
	}
	if h.first() == 1 && h.recs[0].prev != ([hashSize]byte{}) {
		return bad("first entry has a predecessor")
	}
	return h, nil
}

// readHead reads and opens the head file. A missing file is returned as an
// error wrapping fs.ErrNotExist, one that does not authenticate as
// errHeadInvalid.
func readHead(path string, aead cipher.AEAD) (*head, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHeadFile+1))
	if err != nil {
		return nil, fmt.Errorf("read audit head %s: %w", path, err)
	}
	if len(b) > maxHeadFile {
		return nil, errHeadInvalid
	}
	return openHead(aead, b)
}

// writeHead replaces the head file atomically: temporary file in the same
// directory, fsync, rename over the head, fsync of the directory. When it
// returns nil the new head is durable. hook (tests only) runs after the
// temporary file is durable and after the rename; phase prefixes the step.
// replaced reports whether the rename happened (the head file on disk may
// then be the new one even if err is not nil).
func writeHead(path string, aead cipher.AEAD, h *head, hook func(string) error, phase string) (replaced bool, err error) {
	b := sealHead(aead, h)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern) // mode 0600
	if err != nil {
		return false, fmt.Errorf("write audit head: %w", err)
	}
	defer func() {
		if err != nil && !replaced && !errors.Is(err, errCrash) {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return replaced, fmt.Errorf("write audit head: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return replaced, fmt.Errorf("write audit head: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return replaced, fmt.Errorf("write audit head: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return replaced, fmt.Errorf("write audit head: %w", err)
	}
	if err := runHook(hook, phase+stepHeadTemp); err != nil {
		return replaced, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return replaced, fmt.Errorf("write audit head: %w", err)
	}
	replaced = true
	if err := runHook(hook, phase+stepHeadRenamed); err != nil {
		return replaced, err
	}
	if err := syncDir(dir); err != nil {
		return replaced, fmt.Errorf("write audit head: %w", err)
	}
	return true, nil
}

// removeTemps deletes temporary head files left by a crash before their
// rename; they never hold the current head.
func removeTemps(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, tempPattern))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale audit head temp file: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
