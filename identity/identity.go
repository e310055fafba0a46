package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Type is the kind of an identifier.
type Type string

// The identifier types.
const (
	UserID      Type = "user_id"
	AnonymousID Type = "anonymous_id"
	Email       Type = "email"
	Phone       Type = "phone"
)

// Identifier is one typed identifier in plaintext. It exists only in memory
// and inside sealed values.
type Identifier struct {
	Type  Type   `json:"type"`
	Value string `json:"value"`
}

// Normalize returns the canonical form of value for typ: ids are trimmed,
// emails trimmed and lower-cased, phones in E.164 (a national number needs
// Rules.Normalize, which knows the default region).
func Normalize(typ Type, value string) (string, error) {
	v := strings.TrimSpace(value)
	switch typ {
	case UserID, AnonymousID:
	case Email:
		v = strings.ToLower(v)
	case Phone:
		v = NormalizePhone(v, "")
	default:
		if !strings.HasPrefix(string(typ), "x:") {
			return "", fmt.Errorf("normalize %q: %w", typ, ErrUnknownType)
		}
	}
	if v == "" {
		return "", emptyError(typ)
	}
	return v, nil
}

// emptyError says why nothing is left of an identifier: a phone number
// without digits is not "empty" to whoever typed it.
func emptyError(typ Type) error {
	if typ == Phone {
		return fmt.Errorf("normalize phone: not a phone number (no digits): %w", ErrEmptyIdentifier)
	}
	return fmt.Errorf("normalize %s: %w", typ, ErrEmptyIdentifier)
}

// Hasher computes keyed hashes of identifiers. It is safe for concurrent use.
type Hasher struct {
	pool sync.Pool
}

// NewHasher returns a Hasher keyed with key (the identifier subkey).
func NewHasher(key []byte) *Hasher {
	k := append([]byte(nil), key...)
	return &Hasher{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

// Sum returns HMAC-SHA256(key, domain || 0x00 || value) for an already
// normalised value. The domain separates identifier types (and other uses,
// such as message ids) so equal strings of different kinds never collide.
func (h *Hasher) Sum(domain, value string) []byte {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(value))
	out := m.Sum(make([]byte, 0, sha256.Size))
	h.pool.Put(m)
	return out
}

// Hash normalises value and returns its keyed hash.
func (h *Hasher) Hash(typ Type, value string) ([]byte, error) {
	v, err := Normalize(typ, value)
	if err != nil {
		return nil, err
	}
	return h.Sum(string(typ), v), nil
}

// Normalize is the package Normalize, reading national phone numbers in the
// rules' default region.
func (r *Rules) Normalize(typ Type, value string) (string, error) {
	if typ == Phone {
		v := NormalizePhone(value, r.DefaultRegion)
		if v == "" {
			return "", emptyError(typ)
		}
		return v, nil
	}
	return Normalize(typ, value)
}
