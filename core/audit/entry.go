package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custody-cdp/custody/core/store"
)

// PrefixAudit is the keyspace prefix of the log: a/<seq:8>, seq big-endian
// so that key order is sequence order.
const PrefixAudit = store.PrefixAudit

// Limits of an entry.
const (
	// MaxNameLen is the maximum length in bytes of an entry's kind and
	// actor.
	MaxNameLen = 64
	// MaxDataSize is the maximum size in bytes of an entry's data (the
	// marshalled JSON object). Audit records carry counts, hashes and ids;
	// anything bigger is almost certainly a mistake.
	MaxDataSize = 64 << 10
)

// hashTag starts the canonical encoding of every entry (16 bytes). It names
// the format, so that a future format can never produce the same bytes.
const hashTag = "custody/audit/v1"

const hashSize = sha256.Size

// Entry is one audit record as returned by Append, Tail and Range.
type Entry struct {
	// Seq is the entry's sequence number, 1 for the first entry.
	Seq uint64 `json:"seq"`
	// Time is when the entry was appended (UTC, nanosecond precision;
	// RFC3339Nano in JSON).
	Time time.Time `json:"time"`
	// Kind says what happened, e.g. "policy.decision", "deletion.certificate".
	Kind string `json:"kind"`
	// Actor says who did it, e.g. "dpo", "policy-gate", "apikey.ops".
	Actor string `json:"actor"`
	// Data is a JSON object with the details (counts, hashes, ids).
	Data json.RawMessage `json:"data"`
	// Prev is the hex SHA-256 hash of the previous entry (64 zeros for
	// Seq 1).
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 hash of this entry's canonical encoding.
	Hash string `json:"hash"`
}

// VerifyHash recomputes e.Hash from e's other fields (see the canonical
// encoding in the package documentation). It lets anyone check an exported
// entry without access to the store; it does not check the link to the
// previous entry (compare e.Prev with that entry's Hash for that). It
// returns an error wrapping ErrInvalidEntry for a malformed entry and
// ErrTampered for a hash that does not match.
func (e Entry) VerifyHash() error {
	var prev [hashSize]byte
	if len(e.Prev) != 2*hashSize {
		return fmt.Errorf("%w: entry %d: prev is not a hex SHA-256 hash", ErrInvalidEntry, e.Seq)
	}
	if _, err := hex.Decode(prev[:], []byte(e.Prev)); err != nil {
		return fmt.Errorf("%w: entry %d: prev is not a hex SHA-256 hash", ErrInvalidEntry, e.Seq)
	}
	if err := checkFields(e.Seq, e.Kind, e.Actor, e.Data); err != nil {
		return fmt.Errorf("entry %d: %w", e.Seq, err)
	}
	r := newRecord(e.Seq, e.Time.UnixNano(), e.Kind, e.Actor, e.Data, prev)
	if hex.EncodeToString(r.hash[:]) != e.Hash {
		return fmt.Errorf("%w: entry %d: hash does not match its content", ErrTampered, e.Seq)
	}
	return nil
}

// entryKey is a/<seq:8>.
func entryKey(seq uint64) []byte {
	k := make([]byte, 0, len(PrefixAudit)+8)
	k = append(k, PrefixAudit...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// parseKey returns the sequence number of an entry key.
func parseKey(k []byte) (uint64, bool) {
	if len(k) != len(PrefixAudit)+8 || string(k[:len(PrefixAudit)]) != string(PrefixAudit) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(PrefixAudit):]), true
}

// validName checks a kind or actor. The error never echoes the value: a
// caller who wrongly passes personal data must not get it into a log line.
func validName(field, s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s must be 1 to %d bytes, got %d", ErrInvalidEntry, field, MaxNameLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s may contain only a-z 0-9 . _ - (byte %d is not allowed)", ErrInvalidEntry, field, i)
		}
	}
	return nil
}

// validData checks that data is one JSON object within MaxDataSize.
func validData(data []byte) error {
	if len(data) > MaxDataSize {
		return fmt.Errorf("%w: data is %d bytes, at most %d allowed", ErrInvalidEntry, len(data), MaxDataSize)
	}
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return fmt.Errorf("%w: data must be a JSON object", ErrInvalidEntry)
	}
	return nil
}

func checkFields(seq uint64, kind, actor string, data []byte) error {
	if seq == 0 {
		return fmt.Errorf("%w: sequence number 0", ErrInvalidEntry)
	}
	if err := validName("kind", kind); err != nil {
		return err
	}
	if err := validName("actor", actor); err != nil {
		return err
	}
	return validData(data)
}

// marshalData turns Append's data argument into a compact JSON object. nil
// (and a nil pointer or map) becomes {}.
func marshalData(data any) ([]byte, error) {
	if data == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		// The marshaller's message may quote a custom MarshalJSON error;
		// give the type only.
		return nil, fmt.Errorf("%w: data of type %T does not marshal to JSON", ErrInvalidEntry, data)
	}
	if string(b) == "null" {
		return []byte("{}"), nil
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: data of type %T does not marshal to a JSON object", ErrInvalidEntry, data)
	}
	if len(b) > MaxDataSize {
		return nil, fmt.Errorf("%w: data is %d bytes, at most %d allowed", ErrInvalidEntry, len(b), MaxDataSize)
	}
	return b, nil
}

// record is an entry in its stored form: value = canonical || hash.
type record struct {
	seq         uint64
	nanos       int64
	kind, actor string
	data        []byte
	prev, hash  [hashSize]byte
	value       []byte
}

// appendCanonical appends the canonical encoding of an entry (see doc.go).
func appendCanonical(dst []byte, seq uint64, nanos int64, kind, actor string, data []byte, prev [hashSize]byte) []byte {
	dst = append(dst, hashTag...)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(nanos))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(kind)))
	dst = append(dst, kind...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(actor)))
	dst = append(dst, actor...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	dst = append(dst, data...)
	return append(dst, prev[:]...)
}

func canonicalSize(kind, actor string, data []byte) int {
	return len(hashTag) + 8 + 8 + 4 + len(kind) + 4 + len(actor) + 4 + len(data) + hashSize
}

// newRecord builds and hashes an entry. The fields must be valid.
func newRecord(seq uint64, nanos int64, kind, actor string, data []byte, prev [hashSize]byte) record {
	v := make([]byte, 0, canonicalSize(kind, actor, data)+hashSize)
	v = appendCanonical(v, seq, nanos, kind, actor, data, prev)
	h := sha256.Sum256(v)
	v = append(v, h[:]...)
	r := record{seq: seq, nanos: nanos, kind: kind, actor: actor, prev: prev, hash: h, value: v}
	// data aliases the stored value, so the record owns its bytes.
	off := len(v) - 2*hashSize - len(data)
	r.data = v[off : off+len(data) : off+len(data)]
	return r
}

// decodeRecord parses a stored value. It checks the structure (ErrInvalidEntry)
// but not the hash: see hashOK.
func decodeRecord(v []byte) (record, error) {
	bad := func(what string) (record, error) {
		return record{}, fmt.Errorf("%w: stored entry is malformed (%s)", ErrInvalidEntry, what)
	}
	const fixed = len(hashTag) + 8 + 8 + 3*4 + 2*hashSize
	if len(v) < fixed {
		return bad("too short")
	}
	if string(v[:len(hashTag)]) != hashTag {
		return bad("unknown format tag")
	}
	r := record{value: v}
	p := v[len(hashTag):]
	r.seq = binary.BigEndian.Uint64(p)
	r.nanos = int64(binary.BigEndian.Uint64(p[8:]))
	p = p[16:]
	field := func(max int) ([]byte, bool) {
		if len(p) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(max) || uint64(n) > uint64(len(p)-4) {
			return nil, false
		}
		f := p[4 : 4+n : 4+n]
		p = p[4+n:]
		return f, true
	}
	kind, ok := field(MaxNameLen)
	if !ok {
		return bad("kind length")
	}
	actor, ok := field(MaxNameLen)
	if !ok {
		return bad("actor length")
	}
	data, ok := field(MaxDataSize)
	if !ok {
		return bad("data length")
	}
	if len(p) != 2*hashSize {
		return bad("trailing bytes")
	}
	copy(r.prev[:], p)
	copy(r.hash[:], p[hashSize:])
	r.kind, r.actor, r.data = string(kind), string(actor), data
	if err := checkFields(r.seq, r.kind, r.actor, r.data); err != nil {
		return record{}, fmt.Errorf("stored entry: %w", err)
	}
	return r, nil
}

// hashOK reports whether the stored hash matches the canonical bytes.
func (r *record) hashOK() bool {
	c := r.value[:len(r.value)-hashSize]
	return sha256.Sum256(c) == r.hash
}

func (r *record) entry() Entry {
	return Entry{
		Seq:   r.seq,
		Time:  time.Unix(0, r.nanos).UTC(),
		Kind:  r.kind,
		Actor: r.actor,
		Data:  json.RawMessage(bytes.Clone(r.data)),
		Prev:  hex.EncodeToString(r.prev[:]),
		Hash:  hex.EncodeToString(r.hash[:]),
	}
}
