package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/custody-cdp/custody/core"
)

// keyManager lists and revokes API keys; *core.CDP has it. It is asked
// for by type assertion so that Backend implementations without it (fakes)
// still serve everything else.
type keyManager interface {
	APIKeys(ctx context.Context) ([]core.APIKey, error)
	RevokeAPIKey(ctx context.Context, id string) (core.APIKey, error)
}

func (s *Server) handleListKeys(w http.ResponseWriter, r *http.Request) {
	km, ok := s.b.(keyManager)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server cannot list API keys", -1, "")
		return
	}
	ks, err := km.APIKeys(r.Context())
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ks)
}

func (s *Server) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	km, ok := s.b.(keyManager)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server cannot revoke API keys", -1, "")
		return
	}
	k, err := km.RevokeAPIKey(r.Context(), r.PathValue("id"))
	if errors.Is(err, core.ErrAPIKeyNotFound) {
		writeError(w, http.StatusNotFound, "api key not found", -1, "id")
		return
	}
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

// APIKeys is CDP.APIKeys through the server.
func (c *Client) APIKeys(ctx context.Context) ([]core.APIKey, error) {
	var ks []core.APIKey
	err := c.do(ctx, http.MethodGet, "/v1/admin/apikeys", nil, &ks)
	return ks, err
}

// RevokeAPIKey is CDP.RevokeAPIKey through the server.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (core.APIKey, error) {
	var k core.APIKey
	err := c.do(ctx, http.MethodPost, "/v1/admin/apikeys/"+url.PathEscape(id)+"/revoke", nil, &k)
	if errors.Is(err, core.ErrProfileNotFound) { // the client's reading of any 404
		err = core.ErrAPIKeyNotFound
	}
	return k, err
}
