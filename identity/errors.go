package identity

import "errors"

var (
	// ErrEmptyIdentifier is returned for an identifier that is empty after
	// normalisation.
	ErrEmptyIdentifier = errors.New("identity: empty identifier")
	// ErrUnknownType is returned for an identifier type this package does
	// not know.
	ErrUnknownType = errors.New("identity: unknown identifier type")
)
