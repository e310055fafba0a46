package core

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	c := openTest(t, cfg)
	k, err := c.CreateAPIKey(ctx, RoleMarketer, "m")
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.CreateAPIKey(ctx, RoleIngest, "i")
	if err != nil {
		t.Fatal(err)
	}
	// The last character flipped: same length and prefix, another digest.
	last := k.Key[len(k.Key)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	tampered := k.Key[:len(k.Key)-1] + string(flip)
	tests := []struct {
		name string
		key  string
		want Role
	}{
		{"valid, from the store", k.Key, RoleMarketer},
		{"valid, from the cache", k.Key, RoleMarketer},
		{"another valid key", other.Key, RoleIngest},
		{"tampered", tampered, ""},
		{"prefix only", "cus_", ""},
		{"no prefix", strings.TrimPrefix(k.Key, "cus_"), ""},
		{"too long", k.Key + strings.Repeat("x", 100), ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := c.Authenticate(ctx, tt.key)
			if tt.want == "" {
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("got %+v %v, want ErrUnauthorized", rec, err)
				}
				return
			}
			if err != nil || rec.Role != tt.want {
				t.Fatalf("got %+v %v, want role %s", rec, err, tt.want)
			}
		})
	}
	// A fresh process (empty cache) finds the keys in the store.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := openTest(t, cfg)
	if rec, err := c2.Authenticate(ctx, other.Key); err != nil || rec.ID != other.ID {
		t.Fatalf("after reopen: %+v %v", rec, err)
	}
	if _, err := c2.Authenticate(ctx, tampered); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("tampered key after reopen: %v", err)
	}
}
