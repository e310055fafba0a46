package server

import "errors"

// ErrTLS is a TLS configuration that cannot be served.
var ErrTLS = errors.New("tls")

// errNotGzip: a body sent with Content-Encoding: gzip does not decompress.
var errNotGzip = errors.New("not gzip")
