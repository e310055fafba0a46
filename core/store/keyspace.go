package store

import (
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
)

// SchemaVersion is the version of the keyspace this code reads and writes.
// Version 2 keeps identity observations inline in one list per node (o/)
// instead of a record per observation and node plus a list of hashes (g/).
const SchemaVersion = 2

// MinSchemaVersion is the oldest version Open accepts: core upgrades a
// store of an older version in place (see Store.Schema, SetSchema).
const MinSchemaVersion = 1

// Prefix is the first component of a key.
type Prefix string

// The keyspace prefixes. See doc.go for the layout of each.
const (
	PrefixMeta       Prefix = "!meta/"
	PrefixProfile    Prefix = "p/"
	PrefixEvent      Prefix = "e/"
	PrefixIdentifier Prefix = "i/"
	PrefixDedup      Prefix = "u/"
	PrefixAPIKey     Prefix = "k/"
	PrefixMember     Prefix = "m/"
	PrefixCluster    Prefix = "n/"
	PrefixObs        Prefix = "o/"
	// PrefixObsLegacy held observations in schema version 1: g/<pid> a
	// list of hashes, g/<pid>/<hash> one record per observation and node.
	// Only the upgrade (and restoring a version-1 backup) reads it.
	PrefixObsLegacy  Prefix = "g/"
	PrefixJournal    Prefix = "j/"
	PrefixSeparation Prefix = "q/"
	PrefixConsent    Prefix = "c/"
	PrefixAudit      Prefix = "a/"
	PrefixSegmentDef Prefix = "sd/"
	PrefixExport     Prefix = "x/"
	PrefixSuppressed Prefix = "x-sup/"
	PrefixRequest    Prefix = "r/"
	PrefixMembership Prefix = "s/"
	PrefixSizes      Prefix = "sh/"
	PrefixFlow       Prefix = "sf/"
	PrefixSegmentUse Prefix = "su/"
)

// PrefixInfo says whether a prefix holds personal data keyed by profile id.
type PrefixInfo struct {
	Prefix Prefix
	// PersonScoped prefixes hold records about one person under their pid
	// (or, for the identifier index, pointing at it) and must be covered by
	// access and deletion.
	PersonScoped bool
	Doc          string
}

// Prefixes lists every prefix in use. A test checks that every key written by
// the rest of the system starts with one of these.
var Prefixes = []PrefixInfo{
	{PrefixMeta, false, "store metadata (schema version)"},
	{PrefixProfile, true, "profile record, sealed"},
	{PrefixEvent, true, "events, sealed"},
	{PrefixIdentifier, true, "identifier index: keyed hash -> pid"},
	{PrefixDedup, false, "messageId de-duplication: one record per committed group (keyed hashes, no pid)"},
	{PrefixAPIKey, false, "API key records (hashed keys)"},
	{PrefixMember, true, "cluster membership of a node: root pid, last merge"},
	{PrefixCluster, true, "members of a cluster, one value under its root pid"},
	{PrefixObs, true, "identity observations touching a node, inline in one list"},
	{PrefixJournal, true, "merge journal: merges and refusals, one value a node"},
	{PrefixSeparation, true, "separations recorded by unmerge"},
	{PrefixConsent, true, "consent records, sealed; history never overwritten"},
	{PrefixAudit, false, "audit log: hash-chained entries, no personal data (core/audit)"},
	{PrefixSegmentDef, false, "segment definitions (canonical JSON), by name"},
	{PrefixExport, true, "export ledger: what went where, when, which fields (sealed)"},
	{PrefixSuppressed, false, "suppression list: keyed hashes of deleted people's identifiers"},
	{PrefixRequest, false, "privacy requests: type, status history, due dates, keyed identifier hash, results (no plaintext)"},
	{PrefixMembership, true, "segment memberships: entered/exited times, by segment then person root"},
	{PrefixSizes, false, "segment size history: counts per refresh"},
	{PrefixFlow, false, "segment flow: people who entered, left and moved in from other segments, counts per UTC day"},
	{PrefixSegmentUse, false, "segment use: when a segment was last applied, evaluated, exported, served"},
}

var (
	keySchema  = []byte(string(PrefixMeta) + "schema")
	keyCreated = []byte(string(PrefixMeta) + "created")
)

// ProfileKey is p/<pid>.
func ProfileKey(pid uuid.UUID) []byte {
	k := make([]byte, 0, len(PrefixProfile)+16)
	k = append(k, PrefixProfile...)
	return append(k, pid[:]...)
}

// EventPrefix is e/<pid>/, the range of one profile's events.
func EventPrefix(pid uuid.UUID) []byte {
	k := make([]byte, 0, len(PrefixEvent)+17)
	k = append(k, PrefixEvent...)
	k = append(k, pid[:]...)
	return append(k, '/')
}

// EventKey is e/<pid>/<ts>/<mid>.
func EventKey(pid uuid.UUID, tsNanos int64, mid [16]byte) []byte {
	k := make([]byte, 0, len(PrefixEvent)+17+9+16)
	k = append(k, PrefixEvent...)
	k = append(k, pid[:]...)
	k = append(k, '/')
	k = binary.BigEndian.AppendUint64(k, uint64(tsNanos))
	k = append(k, '/')
	return append(k, mid[:]...)
}

// ParseEventKey returns the parts of an event key.
func ParseEventKey(k []byte) (pid uuid.UUID, tsNanos int64, mid [16]byte, err error) {
	const n = len(PrefixEvent) + 16 + 1 + 8 + 1 + 16
	if len(k) != n || string(k[:len(PrefixEvent)]) != string(PrefixEvent) {
		return pid, 0, mid, fmt.Errorf("parse event key: %w", ErrNotFound)
	}
	off := len(PrefixEvent)
	copy(pid[:], k[off:off+16])
	off += 17
	tsNanos = int64(binary.BigEndian.Uint64(k[off : off+8]))
	off += 9
	copy(mid[:], k[off:])
	return pid, tsNanos, mid, nil
}

// IdentifierKey is i/<type>/<hash>.
func IdentifierKey(typ string, hash []byte) []byte {
	k := make([]byte, 0, len(PrefixIdentifier)+len(typ)+1+len(hash))
	k = append(k, PrefixIdentifier...)
	k = append(k, typ...)
	k = append(k, '/')
	return append(k, hash...)
}

// DedupGroupKey is u/g/<at:8><nonce:8>, at in unix nanoseconds.
func DedupGroupKey(at int64, nonce [8]byte) []byte {
	k := make([]byte, 0, dedupGroupKeyLen)
	k = append(k, PrefixDedup...)
	k = append(k, "g/"...)
	k = binary.BigEndian.AppendUint64(k, uint64(at))
	return append(k, nonce[:]...)
}

const dedupGroupKeyLen = len(PrefixDedup) + 2 + 8 + 8

// ParseDedupKey tells a group record (u/g/<at><nonce>: group set, at its
// time) from a per-message marker of schema-1 stores before groups
// (u/<hmac:32>: marker set, its hash's first 8 bytes in hash).
func ParseDedupKey(k []byte) (at int64, hash uint64, group, marker bool) {
	switch {
	case len(k) == dedupGroupKeyLen && string(k[:len(PrefixDedup)+2]) == string(PrefixDedup)+"g/":
		return int64(binary.BigEndian.Uint64(k[len(PrefixDedup)+2:])), 0, true, false
	case len(k) == len(PrefixDedup)+32 && string(k[:len(PrefixDedup)]) == string(PrefixDedup):
		return 0, binary.BigEndian.Uint64(k[len(PrefixDedup):]), false, true
	}
	return 0, 0, false, false
}

// APIKeyKey is k/<hash>.
func APIKeyKey(hash []byte) []byte {
	k := make([]byte, 0, len(PrefixAPIKey)+len(hash))
	k = append(k, PrefixAPIKey...)
	return append(k, hash...)
}

func pidKey(p Prefix, pid uuid.UUID, extra ...[]byte) []byte {
	n := len(p) + 16
	for _, e := range extra {
		n += 1 + len(e)
	}
	k := make([]byte, 0, n)
	k = append(k, p...)
	k = append(k, pid[:]...)
	for _, e := range extra {
		k = append(k, '/')
		k = append(k, e...)
	}
	return k
}

// PIDPrefix is <prefix><pid>/, the range of one node's records under a
// person-scoped prefix.
func PIDPrefix(p Prefix, pid uuid.UUID) []byte { return append(pidKey(p, pid), '/') }

// MemberKey is m/<pid>.
func MemberKey(pid uuid.UUID) []byte { return pidKey(PrefixMember, pid) }

// ClusterKey is n/<root>: the members of root's cluster.
func ClusterKey(root uuid.UUID) []byte { return pidKey(PrefixCluster, root) }

// ObsListKey is o/<pid>: the observations touching pid.
func ObsListKey(pid uuid.UUID) []byte { return pidKey(PrefixObs, pid) }

// LegacyObsListKey is g/<pid> (schema version 1): the hashes of the
// observations touching pid.
func LegacyObsListKey(pid uuid.UUID) []byte { return pidKey(PrefixObsLegacy, pid) }

// LegacyObsKey is g/<pid>/<obs hash> (schema version 1).
func LegacyObsKey(pid uuid.UUID, obs []byte) []byte { return pidKey(PrefixObsLegacy, pid, obs) }

// JournalKey is j/<pid>: the merge journal kept under pid.
func JournalKey(pid uuid.UUID) []byte { return pidKey(PrefixJournal, pid) }

// SeparationKey is q/<pid>/<other>.
func SeparationKey(pid, other uuid.UUID) []byte { return pidKey(PrefixSeparation, pid, other[:]) }

// ConsentKey is c/<pid>/<collected_at:8>/<id:16>.
func ConsentKey(pid uuid.UUID, collectedNanos int64, id []byte) []byte {
	return pidKey(PrefixConsent, pid, binary.BigEndian.AppendUint64(nil, uint64(collectedNanos)), id)
}

// ExportKey is x/<pid>/<export id>.
func ExportKey(pid uuid.UUID, exportID string) []byte {
	return pidKey(PrefixExport, pid, []byte(exportID))
}

// SuppressedKey is x-sup/<identifier index key hash part>.
func SuppressedKey(identifierKey []byte) []byte {
	k := make([]byte, 0, len(PrefixSuppressed)+len(identifierKey))
	k = append(k, PrefixSuppressed...)
	return append(k, identifierKey...)
}

// MembershipPrefix is s/<segment>/.
func MembershipPrefix(segment string) []byte { return []byte(string(PrefixMembership) + segment + "/") }

// MembershipKey is s/<segment>/<root pid>.
func MembershipKey(segment string, root uuid.UUID) []byte {
	return append(MembershipPrefix(segment), root[:]...)
}

// SegmentUseKey is su/<segment>.
func SegmentUseKey(segment string) []byte { return []byte(string(PrefixSegmentUse) + segment) }

// SizeKey is sh/<segment>/<unix nanos:8>.
func SizeKey(segment string, at int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(string(PrefixSizes)+segment+"/"), uint64(at))
}

// FlowPrefix is sf/<segment>/.
func FlowPrefix(segment string) []byte { return []byte(string(PrefixFlow) + segment + "/") }

// FlowKey is sf/<segment>/<day:4>, day counted in UTC days since
// 1970-01-01, big-endian (so a segment's days sort in order).
func FlowKey(segment string, day int64) []byte {
	return binary.BigEndian.AppendUint32(FlowPrefix(segment), uint32(day))
}
