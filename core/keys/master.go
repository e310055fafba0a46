package keys

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/hkdf"
)

// MasterKeySize is the size of the master key in bytes.
const MasterKeySize = 32

// MasterKeyFile is the conventional file name of the master key.
const MasterKeyFile = "master.key"

// MasterKeyEnv is the environment variable that may hold the master key as
// 64 hex characters (see ParseMaster).
const MasterKeyEnv = "CUSTODY_MASTER_KEY"

// Subkey purposes. Each names one independent key derived from the master
// key with Master.Subkey; the "/vN" suffix lets a purpose be re-keyed
// without touching the others.
const (
	// PurposeStoreEncryption: 32-byte at-rest encryption key of the data
	// store (Badger).
	PurposeStoreEncryption = "store-encryption/v1"
	// PurposeIdentifierHMAC: HMAC-SHA256 key for identifier index hashes.
	PurposeIdentifierHMAC = "identifier-hmac/v1"
	// PurposeVaultStore: 32-byte at-rest encryption key of the vault's
	// deks/ store.
	PurposeVaultStore = "vault-store/v1"
	// PurposeKeyring: 32-byte key sealing the KEKs in keyring.json.
	PurposeKeyring = "keyring/v1"
	// PurposeSegmentSplit: HMAC-SHA256 key assigning people to the groups
	// of a segment's splits (holdouts, A/B variants).
	PurposeSegmentSplit = "segment-split/v1"
)

// Argon2id parameters of MasterFromPassphrase. They are part of the on-disk
// contract: changing them changes the derived key.
const (
	PassphraseTime    = 3
	PassphraseMemory  = 64 * 1024 // KiB = 64 MiB
	PassphraseThreads = 2
	// MinSaltSize is the minimum salt length accepted by MasterFromPassphrase.
	MinSaltSize = 16
)

const fingerprintLabel = "custody/master-key-fingerprint/v1"

// Master is the root key. Its bytes never leave the package: String, %v and
// slog print only the fingerprint.
type Master struct {
	key [MasterKeySize]byte
}

// GenerateMasterFile writes a new random master key to path, hex-encoded with
// a trailing newline, mode 0600. It fails if the file exists (O_EXCL). The
// file and its directory are fsynced before it returns.
func GenerateMasterFile(path string) (err error) {
	var key [MasterKeySize]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	buf := make([]byte, hex.EncodedLen(len(key))+1)
	hex.Encode(buf, key[:])
	buf[len(buf)-1] = '\n'
	defer clear(key[:])
	defer clear(buf)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("generate master key: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	// The umask can only remove bits; make sure nothing else set them.
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("generate master key %s: %w", path, err)
	}
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("generate master key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("generate master key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("generate master key %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("generate master key %s: %w", path, err)
	}
	return nil
}

// LoadMasterFile reads a master key file written by GenerateMasterFile (64
// hex characters, surrounding whitespace ignored). It refuses a file whose
// mode grants any access to group or others (ErrMasterKeyPermissions); a
// malformed file yields ErrBadMasterKey.
func LoadMasterFile(path string) (*Master, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("load master key %s: file mode is %04o, want 0600 (run: chmod 600 %s): %w",
			path, mode, path, ErrMasterKeyPermissions)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load master key %s: not a regular file: %w", path, ErrBadMasterKey)
	}
	// A valid file is 65 bytes; read a little more to detect junk.
	buf := make([]byte, 256)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	m, err := parseMasterBytes(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	return m, nil
}

// ParseMaster parses a master key given as 64 hex characters (as in the
// CUSTODY_MASTER_KEY environment variable). Surrounding whitespace is
// ignored. The error never echoes the input.
func ParseMaster(hexKey string) (*Master, error) {
	b := []byte(hexKey)
	defer clear(b)
	m, err := parseMasterBytes(b)
	if err != nil {
		return nil, fmt.Errorf("parse master key: %w", err)
	}
	return m, nil
}

func parseMasterBytes(b []byte) (*Master, error) {
	b = bytes.TrimSpace(b)
	if len(b) != hex.EncodedLen(MasterKeySize) {
		return nil, fmt.Errorf("got %d characters: %w", len(b), ErrBadMasterKey)
	}
	m := &Master{}
	// hex's own error names the offending character; do not pass it on.
	if _, err := hex.Decode(m.key[:], b); err != nil {
		clear(m.key[:])
		return nil, fmt.Errorf("not hexadecimal: %w", ErrBadMasterKey)
	}
	return m, nil
}

// MasterFromPassphrase derives the master key from a passphrase with
// Argon2id (time=3, memory=64 MiB, threads=2, 32-byte output) and salt,
// which must be at least MinSaltSize bytes and should be random and stored
// next to the data. The same passphrase and salt always give the same key.
func MasterFromPassphrase(passphrase, salt []byte) (*Master, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("master key from passphrase: empty passphrase: %w", ErrBadMasterKey)
	}
	if len(salt) < MinSaltSize {
		return nil, fmt.Errorf("master key from passphrase: salt is %d bytes, need at least %d: %w",
			len(salt), MinSaltSize, ErrBadMasterKey)
	}
	k := argon2.IDKey(passphrase, salt, PassphraseTime, PassphraseMemory, PassphraseThreads, MasterKeySize)
	m := &Master{}
	copy(m.key[:], k)
	clear(k)
	return m, nil
}

// Subkey derives an n-byte key for purpose with HKDF-SHA256 (secret = the
// master key, salt = nil, info = "custody/"+purpose). Different purposes give
// independent keys. It panics if n is not in 1..8160 (a programming error).
func (m *Master) Subkey(purpose string, n int) []byte {
	if n <= 0 || n > 255*sha256.Size {
		panic(fmt.Sprintf("keys: Subkey length %d out of range", n))
	}
	out := make([]byte, n)
	r := hkdf.New(sha256.New, m.key[:], nil, []byte("custody/"+purpose))
	if _, err := io.ReadFull(r, out); err != nil {
		panic("keys: hkdf: " + err.Error()) // unreachable for valid n
	}
	return out
}

// Fingerprint is a short (16 hex characters) identifier of the master key,
// safe to print and log: the first 8 bytes of HMAC-SHA256(master, fixed
// label). It lets an operator check which key a directory expects.
func (m *Master) Fingerprint() string {
	h := hmac.New(sha256.New, m.key[:])
	h.Write([]byte(fingerprintLabel))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// String prints the fingerprint only, so that a Master accidentally passed to
// fmt never reveals the key.
func (m Master) String() string { return "master-key:" + m.Fingerprint() }

// Format makes every fmt verb (%v, %x, %#v, %d, ...) print String.
func (m Master) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// LogValue makes slog print the fingerprint only.
func (m Master) LogValue() slog.Value { return slog.StringValue(m.String()) }

// syncDir fsyncs a directory so that a rename or create in it is durable.
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
