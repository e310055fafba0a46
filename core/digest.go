package core

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/custody-cdp/custody/core/store"
)

// StoreDigest is a SHA-256 over every key and value of the store, in key
// order, and the number of keys: equal digests mean the store holds the
// same data. Values are hashed as stored (sealed), so the digest reveals
// nothing about them. Tests use it to prove that rejected input stored
// nothing, and an operator can use it to compare a restored copy.
func (c *CDP) StoreDigest(ctx context.Context) (string, int, error) {
	h := sha256.New()
	n := 0
	var lens [8]byte
	err := c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) error {
			// Lengths first, so that no two different stores hash alike.
			binary.BigEndian.PutUint32(lens[:4], uint32(len(k)))
			binary.BigEndian.PutUint32(lens[4:], uint32(len(v)))
			h.Write(lens[:])
			h.Write(k)
			h.Write(v)
			n++
			return nil
		})
	})
	if err != nil {
		return "", 0, fmt.Errorf("store digest: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
