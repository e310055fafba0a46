package server

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/identity"
)

// personalizer answers personalisation lookups; *core.CDP has it. Asked
// for by type assertion, so Backend fakes need not implement it.
type personalizer interface {
	Personalize(ctx context.Context, id identity.Identifier) (core.Personalization, error)
}

// handlePersonalize is GET /v1/personalize?anonymousId=…|userId=…: the
// storefront's lookup. The answer has the same shape for everyone, and is
// the same empty one for a person who did not allow personalisation, an
// unknown and an erased one; it is never cached by intermediaries. The
// identifier is never logged (the access log has the route pattern only)
// nor echoed in an error.
func (s *Server) handlePersonalize(w http.ResponseWriter, r *http.Request) {
	p, ok := s.b.(personalizer)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server cannot answer personalisation lookups", -1, "")
		return
	}
	q := r.URL.Query()
	var id identity.Identifier
	switch uid, aid := q.Has("userId"), q.Has("anonymousId"); {
	case uid && !aid:
		id = identity.Identifier{Type: identity.UserID, Value: q.Get("userId")}
	case aid && !uid:
		id = identity.Identifier{Type: identity.AnonymousID, Value: q.Get("anonymousId")}
	default:
		writeError(w, http.StatusBadRequest, "give exactly one of anonymousId or userId", -1, "")
		return
	}
	res, err := p.Personalize(r.Context(), id)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
}

// hygienist lists segments with their hygiene warnings; *core.CDP has it.
type hygienist interface {
	SegmentHygiene(ctx context.Context, now time.Time) ([]core.SegmentHealth, error)
}

// handleSegmentHygiene is GET /v1/admin/segments?hygiene=true.
func (s *Server) handleSegmentHygiene(w http.ResponseWriter, r *http.Request) {
	h, ok := s.b.(hygienist)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server cannot list segment warnings", -1, "")
		return
	}
	now, ok := queryNow(w, r)
	if !ok {
		return
	}
	list, err := h.SegmentHygiene(r.Context(), now)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// SegmentHygiene is CDP.SegmentHygiene through the server.
func (c *Client) SegmentHygiene(ctx context.Context, now time.Time) ([]core.SegmentHealth, error) {
	q := url.Values{"hygiene": {"true"}}
	if !now.IsZero() {
		q.Set("now", now.Format(time.RFC3339))
	}
	var out []core.SegmentHealth
	err := c.do(ctx, http.MethodGet, "/v1/admin/segments?"+q.Encode(), nil, &out)
	return out, err
}
