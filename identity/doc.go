// Package identity owns identifiers: their types, normalisation and keyed
// hashing. (The identity graph and merge rules arrive with DESIGN.md §4.)
//
// Guarantees: an identifier is looked up only by HMAC-SHA256 of its
// normalised value under the identifier subkey of the master key, so no
// plaintext identifier ever appears in a storage key or an index. Two
// spellings of one identifier that normalise alike hash alike.
package identity
