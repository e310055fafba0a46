package keys

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeyringFile is the name of the keyring inside the vault directory.
const KeyringFile = "keyring.json"

const keyringVersion = 1

// keyringFile is the JSON layout of keyring.json.
type keyringFile struct {
	Version int            `json:"version"`
	Current uint32         `json:"current"`
	Epochs  []epochRecord  `json:"epochs"`
	Retired []RetiredEpoch `json:"retired"`
}

type epochRecord struct {
	Epoch     uint32    `json:"epoch"`
	CreatedAt time.Time `json:"created_at"`
	// SealedKEK is nonce(24) || XChaCha20-Poly1305(keyring subkey, KEK,
	// AD="custody-kek/<epoch>"); base64 in JSON.
	SealedKEK []byte `json:"sealed_kek"`
}

// keyState is an immutable snapshot of the keyring with its KEKs opened.
// The vault swaps it atomically; readers never lock.
type keyState struct {
	file    keyringFile
	current uint32
	keks    map[uint32]cipher.AEAD
}

func (s *keyState) clone() keyringFile {
	f := s.file
	f.Epochs = slices.Clone(f.Epochs)
	f.Retired = slices.Clone(f.Retired)
	return f
}

func kekAD(epoch uint32) []byte {
	return []byte("custody-kek/" + strconv.FormatUint(uint64(epoch), 10))
}

// newEpoch creates a random KEK and returns its sealed record and AEAD.
func newEpoch(ring cipher.AEAD, epoch uint32, now time.Time) (epochRecord, cipher.AEAD) {
	var kek [chacha20poly1305.KeySize]byte
	_, _ = rand.Read(kek[:])
	defer clear(kek[:])
	aead, err := chacha20poly1305.NewX(kek[:])
	if err != nil {
		panic("keys: " + err.Error()) // unreachable: key size is fixed
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(kek)+chacha20poly1305.Overhead)
	_, _ = rand.Read(nonce)
	sealed := ring.Seal(nonce, nonce, kek[:], kekAD(epoch))
	return epochRecord{Epoch: epoch, CreatedAt: now.UTC(), SealedKEK: sealed}, aead
}

// errKEKAuth marks a KEK that does not open under the keyring subkey.
var errKEKAuth = errors.New("KEK does not authenticate")

func openEpoch(ring cipher.AEAD, e epochRecord) (cipher.AEAD, error) {
	if len(e.SealedKEK) != chacha20poly1305.NonceSizeX+chacha20poly1305.KeySize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("epoch %d: sealed KEK has %d bytes", e.Epoch, len(e.SealedKEK))
	}
	nonce, ct := e.SealedKEK[:chacha20poly1305.NonceSizeX], e.SealedKEK[chacha20poly1305.NonceSizeX:]
	kek, err := ring.Open(nil, nonce, ct, kekAD(e.Epoch))
	if err != nil {
		return nil, fmt.Errorf("epoch %d: %w", e.Epoch, errKEKAuth)
	}
	defer clear(kek)
	return chacha20poly1305.NewX(kek)
}

// readKeyring reads and opens dir/keyring.json. It returns fs.ErrNotExist
// (wrapped) if there is none, ErrWrongMasterKey if no KEK opens. It never
// writes.
func readKeyring(path string, ring cipher.AEAD) (*keyState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("keyring %s: malformed: %w", path, err)
	}
	if f.Version != keyringVersion {
		return nil, fmt.Errorf("keyring %s: version %d, this build reads %d", path, f.Version, keyringVersion)
	}
	if len(f.Epochs) == 0 {
		return nil, fmt.Errorf("keyring %s: no live KEK epoch", path)
	}
	st := &keyState{file: f, current: f.Current, keks: make(map[uint32]cipher.AEAD, len(f.Epochs))}
	opened, failed := 0, 0
	for _, e := range f.Epochs {
		if e.Epoch == 0 {
			return nil, fmt.Errorf("keyring %s: epoch 0 is invalid", path)
		}
		if _, dup := st.keks[e.Epoch]; dup {
			return nil, fmt.Errorf("keyring %s: epoch %d listed twice", path, e.Epoch)
		}
		aead, err := openEpoch(ring, e)
		if errors.Is(err, errKEKAuth) {
			failed++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keyring %s: %w", path, err)
		}
		st.keks[e.Epoch] = aead
		opened++
	}
	if opened == 0 {
		return nil, fmt.Errorf("keyring %s: no KEK opens with this master key: %w", path, ErrWrongMasterKey)
	}
	if failed > 0 {
		// The master key is right (some KEK opened) but the file was
		// altered: refuse rather than silently lose DEKs.
		return nil, fmt.Errorf("keyring %s: %d KEK epoch(s) fail authentication; the file is corrupted", path, failed)
	}
	if _, ok := st.keks[f.Current]; !ok {
		return nil, fmt.Errorf("keyring %s: current epoch %d is not a live epoch", path, f.Current)
	}
	for _, e := range f.Epochs {
		if e.Epoch > f.Current {
			return nil, fmt.Errorf("keyring %s: live epoch %d is newer than current %d", path, e.Epoch, f.Current)
		}
	}
	return st, nil
}

// writeKeyring writes f to path atomically: temp file in the same
// directory, fsync, rename over path, fsync the directory.
func writeKeyring(path string, f keyringFile) (err error) {
	if f.Retired == nil {
		f.Retired = []RetiredEpoch{}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".keyring-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
