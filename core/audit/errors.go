package audit

import "errors"

// Sentinel errors. Callers test them with errors.Is. No error of this
// package carries an entry's data, kind or actor value: only sequence
// numbers and a description of what is wrong.
var (
	// ErrTampered is returned when the entries in the store are not a valid
	// chain: an entry's hash does not match its content, an entry is
	// missing, stored under the wrong sequence number or does not link to
	// its predecessor.
	ErrTampered = errors.New("audit: log has been tampered with")
	// ErrHeadMismatch is returned by Open when the store and the sealed head
	// file disagree: entries were removed from the end (or an older data
	// backup was restored), entries were added past the head, the last
	// entries were rewritten, or the head file is missing, forged or sealed
	// under another master key.
	ErrHeadMismatch = errors.New("audit: log does not match its sealed head")
	// ErrInvalidEntry is returned by Append for an invalid kind, actor or
	// data, and when a stored entry cannot be decoded.
	ErrInvalidEntry = errors.New("audit: invalid entry")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("audit: log closed")
	// ErrNeedsReopen is returned by Append after an append failed half-way
	// in a way the Log could not undo (the head file names entries whose
	// fate only Open can settle). Close the Log and open it again: Open
	// completes or discards the interrupted append.
	ErrNeedsReopen = errors.New("audit: an append was interrupted; close and reopen the log")
)
