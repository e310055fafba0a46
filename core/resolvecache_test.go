package core

import (
	"bytes"
	"testing"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

func TestResolveCaches(t *testing.T) {
	key := func(typ string, b byte) []byte { return store.IdentifierKey(typ, bytes.Repeat([]byte{b}, 32)) }
	pid := func(b byte) uuid.UUID { return uuid.UUID(bytes.Repeat([]byte{b}, 16)) }
	t.Run("identifiers", func(t *testing.T) {
		c := newIDCache(2)
		c.put(key("email", 1), pid(1))
		c.put(key("email", 2), pid(2))
		if p, ok := c.get(key("email", 1)); !ok || p != pid(1) {
			t.Fatalf("get 1: %v %v", p, ok)
		}
		c.put(key("email", 1), pid(9)) // an update takes no new slot
		if p, _ := c.get(key("email", 1)); p != pid(9) {
			t.Fatalf("update: %v", p)
		}
		c.put(key("email", 3), pid(3)) // evicts the oldest: 1
		if _, ok := c.get(key("email", 1)); ok {
			t.Fatal("FIFO eviction kept the oldest entry")
		}
		if _, ok := c.get(key("email", 2)); !ok {
			t.Fatal("eviction dropped the wrong entry")
		}
		c.remove(key("email", 2))
		if _, ok := c.get(key("email", 2)); ok {
			t.Fatal("remove kept the entry")
		}
		if _, ok := c.get([]byte("i/short")); ok {
			t.Fatal("a key without a hash hit")
		}
		c.put([]byte("i/short"), pid(4)) // ignored
		if len(c.c.m) != 1 {
			t.Fatalf("%d entries, want 1", len(c.c.m))
		}
	})
	t.Run("observations", func(t *testing.T) {
		c := newObsCache(2)
		h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 16) }
		k := func(ts int64) identity.ObsKey { return identity.ObsKey{TS: ts} }
		c.put(h(1), k(1))
		c.put(h(2), k(2))
		c.put(h(3), k(3))
		if _, ok := c.get(h(1)); ok {
			t.Fatal("FIFO eviction kept the oldest entry")
		}
		if v, ok := c.get(h(3)); !ok || v != k(3) {
			t.Fatalf("get 3: %v %v", v, ok)
		}
		if _, ok := c.get(h(1)[:8]); ok {
			t.Fatal("a short hash hit")
		}
	})
}
