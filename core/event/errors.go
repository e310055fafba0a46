package event

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by DecodeMessage, DecodeBatch and
// DecodeStored is a *FieldError whose Unwrap returns exactly one of these, so
// callers can branch with errors.Is and map them to HTTP status codes.
var (
	// ErrMalformedJSON: the body is not syntactically valid JSON.
	ErrMalformedJSON = errors.New("malformed JSON")
	// ErrInvalidUTF8: the body contains bytes that are not valid UTF-8.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrMessageTooLarge: a single message exceeds MaxMessageBytes.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrBatchTooLarge: a batch body exceeds MaxBatchBytes.
	ErrBatchTooLarge = errors.New("batch too large")
	// ErrUnknownType: the message type is missing or not one of the six
	// Segment types.
	ErrUnknownType = errors.New("unknown message type")
	// ErrMissingIdentity: the message lacks the identifiers its type needs
	// (userId/anonymousId; previousId+userId for alias; groupId for group).
	ErrMissingIdentity = errors.New("missing identity")
	// ErrInvalidField: a known field has the wrong JSON type, is too long,
	// is required but empty, or (timestamps) does not parse.
	ErrInvalidField = errors.New("invalid field")
	// ErrEmptyBatch: a batch body has no messages.
	ErrEmptyBatch = errors.New("empty batch")
	// ErrCorruptRecord: DecodeStored was given bytes that are not a record
	// produced by Message.Encode (truncated, wrong version, trailing data).
	ErrCorruptRecord = errors.New("corrupt stored message")
)

// FieldError describes why a body or message was rejected.
//
// It deliberately never carries the offending value: event payloads are full
// of personal data (emails, names, phone numbers) and error strings end up in
// logs, HTTP responses and metrics labels. Only positions (message index,
// field path, byte offset) and JSON type names are reported.
type FieldError struct {
	// Index is the message's index in the batch, or -1 for a single message
	// or for an error that concerns the batch body as a whole.
	Index int
	// Field is the JSON path of the offending field, relative to the request
	// body: "traits", "timestamp", "batch[3].userId", "batch". It is empty
	// when the error concerns the whole body (syntax, size, encoding).
	Field string
	// Err is one of the package's sentinel errors.
	Err error
	// Reason is a human-readable explanation free of user data.
	Reason string
}

// Error renders e.g. `message 3: field "userId": expected a string, got number`.
// For batch items the "batch[N]." prefix of Field is not repeated after the
// "message N:" prefix.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.Grow(64)
	if e.Index >= 0 {
		b.WriteString("message ")
		b.WriteString(strconv.Itoa(e.Index))
		b.WriteString(": ")
	}
	if f := e.displayField(); f != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(f))
		b.WriteString(": ")
	}
	switch {
	case e.Reason != "":
		b.WriteString(e.Reason)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("invalid message")
	}
	return b.String()
}

// Unwrap returns the sentinel so that errors.Is(err, ErrInvalidField) works.
func (e *FieldError) Unwrap() error { return e.Err }

func (e *FieldError) displayField() string {
	if e.Index < 0 || e.Field == "" {
		return e.Field
	}
	prefix := batchPrefix(e.Index)
	if rest, ok := strings.CutPrefix(e.Field, prefix); ok && rest != "" {
		return rest
	}
	if e.Field == prefix[:len(prefix)-1] { // "batch[i]": the message itself
		return ""
	}
	return e.Field
}

// batchPrefix returns "batch[i]." — only computed on error paths.
func batchPrefix(i int) string {
	return "batch[" + strconv.Itoa(i) + "]."
}

// newError builds a FieldError; field is relative to the message and is
// turned into a body-relative path ("batch[i].field") for batch items.
func newError(idx int, field string, sentinel error, reason string) *FieldError {
	path := field
	if idx >= 0 {
		if field == "" {
			path = "batch[" + strconv.Itoa(idx) + "]"
		} else {
			path = batchPrefix(idx) + field
		}
	}
	return &FieldError{Index: idx, Field: path, Err: sentinel, Reason: reason}
}
