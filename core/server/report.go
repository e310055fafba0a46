package server

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/custody-cdp/custody/core"
)

// handleSegmentReport answers GET /v1/admin/segments/{name}/report: the
// segment's performance over ?since&until (dates or RFC 3339 times),
// counts only.
func (s *Server) handleSegmentReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := core.ParseReportTime(q.Get("since"), false)
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: "+err.Error(), -1, "since")
		return
	}
	until, err := core.ParseReportTime(q.Get("until"), true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "until: "+err.Error(), -1, "until")
		return
	}
	rep, err := s.b.SegmentReport(r.Context(), r.PathValue("name"), since, until)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// SegmentReport is CDP.SegmentReport through the server.
func (c *Client) SegmentReport(ctx context.Context, name string, since, until time.Time) (core.SegmentReport, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		q.Set("until", until.Format(time.RFC3339Nano))
	}
	var rep core.SegmentReport
	err := c.do(ctx, http.MethodGet, "/v1/admin/segments/"+url.PathEscape(name)+"/report?"+q.Encode(), nil, &rep)
	return rep, err
}
