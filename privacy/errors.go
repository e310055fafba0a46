package privacy

import "errors"

var (
	// ErrInvalidConsent is wrapped by every validation error of a consent
	// record; the message names the field.
	ErrInvalidConsent = errors.New("invalid consent record")
)
