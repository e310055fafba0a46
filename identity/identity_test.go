package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		in    string
		want  string
		isErr error
	}{
		{"email case and space", Email, "  Ada.Lovelace@Example.COM ", "ada.lovelace@example.com", nil},
		{"user id trimmed", UserID, " u-1 ", "u-1", nil},
		{"user id keeps case", UserID, "AbC", "AbC", nil},
		{"phone punctuation", Phone, "+44 (20) 7946-0958", "+442079460958", nil},
		{"empty", AnonymousID, "   ", "", ErrEmptyIdentifier},
		{"external", Type("x:shopify"), " 42 ", "42", nil},
		{"unknown", Type("ssn"), "1", "", ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.typ, tt.in)
			if !errors.Is(err, tt.isErr) {
				t.Fatalf("err = %v, want %v", err, tt.isErr)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHashSeparatesTypesAndKeys(t *testing.T) {
	h1 := NewHasher([]byte("key-one"))
	h2 := NewHasher([]byte("key-two"))
	a, _ := h1.Hash(UserID, "42")
	b, _ := h1.Hash(AnonymousID, "42")
	c, _ := h2.Hash(UserID, "42")
	d, _ := h1.Hash(UserID, " 42 ")
	if bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("hashes of different types or keys must differ")
	}
	if !bytes.Equal(a, d) {
		t.Fatal("normalised spellings must hash alike")
	}
	if bytes.Contains(a, []byte("42")) {
		t.Fatal("hash contains plaintext")
	}
}
