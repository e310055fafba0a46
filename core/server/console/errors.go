package console

import "errors"

// ErrClosed: the console was closed.
var ErrClosed = errors.New("console closed")
