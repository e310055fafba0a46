package server

import "errors"

// ErrTLS is a TLS configuration that cannot be served.
var ErrTLS = errors.New("tls")
