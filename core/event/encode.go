package event

import (
	"encoding/binary"
	"encoding/json"
	"time"
)

// Stored record format (version 1). Binary rather than JSON because it is
// both cheaper to produce (no escaping, no time formatting) and exact: times
// are stored as Unix seconds + nanoseconds, so no precision or zone detail is
// lost, and the raw JSON objects are stored byte for byte.
//
//	byte     version (= 1)
//	9 ×      uvarint length + bytes: Type, MessageID, UserID, AnonymousID,
//	         PreviousID, GroupID, Event, Name, Category
//	4 ×      uvarint length + bytes: Traits, Properties, Context, Integrations
//	byte     presence mask of Timestamp, OriginalTimestamp, SentAt, ReceivedAt
//	         (bit 0..3; a zero time.Time is "absent")
//	per set  varint Unix seconds, uvarint nanoseconds
//
// Times are decoded in UTC; a Message whose times carry another location
// decodes to the same instants in UTC. An empty non-nil RawMessage decodes
// as nil. Every Message produced by DecodeMessage/DecodeBatch round-trips
// exactly (reflect.DeepEqual).
const storedVersion = 1

// Encode returns the stored form of m. It never fails for a Message produced
// by this package; the error is part of the signature for future formats.
func (m *Message) Encode() ([]byte, error) {
	return m.AppendBinary(nil)
}

// AppendBinary appends the stored form of m to b (encoding.BinaryAppender),
// letting callers reuse buffers.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	strs := [...]string{string(m.Type), m.MessageID, m.UserID, m.AnonymousID,
		m.PreviousID, m.GroupID, m.Event, m.Name, m.Category}
	raws := [...]json.RawMessage{m.Traits, m.Properties, m.Context, m.Integrations}
	times := [...]time.Time{m.Timestamp, m.OriginalTimestamp, m.SentAt, m.ReceivedAt}

	n := 2 + 4*(binary.MaxVarintLen64+5)
	for _, s := range strs {
		n += len(s) + 3
	}
	for _, r := range raws {
		n += len(r) + 3
	}
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}

	b = append(b, storedVersion)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, r := range raws {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	var mask byte
	for i, t := range times {
		if !t.IsZero() {
			mask |= 1 << i
		}
	}
	b = append(b, mask)
	for _, t := range times {
		if !t.IsZero() {
			b = binary.AppendVarint(b, t.Unix())
			b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
		}
	}
	return b, nil
}

// DecodeStored decodes a record produced by Encode. Strings share one
// allocation and the four JSON objects share another; neither aliases b, so
// callers may reuse b (e.g. a storage engine's value buffer).
func DecodeStored(b []byte) (Message, error) {
	corrupt := func(reason string) (Message, error) {
		return Message{}, newError(-1, "", ErrCorruptRecord, reason)
	}
	if len(b) == 0 || b[0] != storedVersion {
		return corrupt("unknown record version")
	}
	p := 1
	// Pass 1: bounds of the string and raw sections.
	var spans [13][2]int
	for i := range spans {
		l, n := binary.Uvarint(b[p:])
		if n <= 0 || l > uint64(len(b)-p-n) {
			return corrupt("truncated record")
		}
		p += n
		spans[i] = [2]int{p, p + int(l)}
		p += int(l)
	}
	strEnd := spans[8][1]
	rawStart := spans[9][0]

	var m Message
	s := string(b[:strEnd])
	str := func(i int) string { return s[spans[i][0]:spans[i][1]] }
	m.Type = Type(str(0))
	m.MessageID = str(1)
	m.UserID = str(2)
	m.AnonymousID = str(3)
	m.PreviousID = str(4)
	m.GroupID = str(5)
	m.Event = str(6)
	m.Name = str(7)
	m.Category = str(8)

	raw := append([]byte(nil), b[rawStart:spans[12][1]]...)
	rawField := func(i int) json.RawMessage {
		lo, hi := spans[i][0]-rawStart, spans[i][1]-rawStart
		if lo == hi {
			return nil
		}
		return raw[lo:hi:hi]
	}
	m.Traits = rawField(9)
	m.Properties = rawField(10)
	m.Context = rawField(11)
	m.Integrations = rawField(12)

	if p >= len(b) {
		return corrupt("truncated record")
	}
	mask := b[p]
	p++
	if mask&^0x0f != 0 {
		return corrupt("invalid time mask")
	}
	times := [...]*time.Time{&m.Timestamp, &m.OriginalTimestamp, &m.SentAt, &m.ReceivedAt}
	for i, t := range times {
		if mask&(1<<i) == 0 {
			continue
		}
		sec, n := binary.Varint(b[p:])
		if n <= 0 {
			return corrupt("truncated record")
		}
		p += n
		nsec, n := binary.Uvarint(b[p:])
		if n <= 0 || nsec >= 1e9 {
			return corrupt("invalid time")
		}
		p += n
		*t = time.Unix(sec, int64(nsec)).UTC()
		if t.IsZero() {
			return corrupt("invalid time")
		}
	}
	if p != len(b) {
		return corrupt("trailing bytes")
	}
	return m, nil
}
