package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/privacy"
	"github.com/custody-cdp/custody/segments"
)

// Client reaches a running server's admin API over its unix socket. The
// socket is owner-only, so whoever can open it is the data directory's owner.
type Client struct {
	hc *http.Client
}

// Dial returns a client for the socket at path if a server answers there.
func Dial(ctx context.Context, path string) (*Client, error) {
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return &Client{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
	}}}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://custody"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach running server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		_ = json.Unmarshal(b, &eb)
		switch resp.StatusCode {
		case http.StatusNotFound:
			return core.ErrProfileNotFound
		case http.StatusBadRequest:
			return fmt.Errorf("%w: %s", core.ErrInvalidInput, eb.Error)
		}
		return fmt.Errorf("server: %s (HTTP %d)", eb.Error, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Profile is CDP.Profile through the server.
func (c *Client) Profile(ctx context.Context, id identity.Identifier, so core.ShowOptions) (*core.ProfileView, error) {
	q := url.Values{string(id.Type): {id.Value}}
	if so.EventLimit > 0 {
		q.Set("event_limit", fmt.Sprint(so.EventLimit))
	}
	var p core.ProfileView
	if err := c.do(ctx, http.MethodGet, "/v1/admin/profiles?"+q.Encode(), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// CreateAPIKey is CDP.CreateAPIKey through the server.
func (c *Client) CreateAPIKey(ctx context.Context, role core.Role, name string) (core.NewAPIKey, error) {
	b, _ := json.Marshal(map[string]string{"role": string(role), "name": name})
	var k core.NewAPIKey
	err := c.do(ctx, http.MethodPost, "/v1/admin/apikeys", bytes.NewReader(b), &k)
	return k, err
}

// RotateKeys is CDP.RotateKeys through the server.
func (c *Client) RotateKeys(ctx context.Context) (keys.RotateReport, error) {
	var r keys.RotateReport
	err := c.do(ctx, http.MethodPost, "/v1/admin/keys/rotate", nil, &r)
	return r, err
}

// Import streams JSON Lines to the server's importer. On a failure part way
// the report of what was stored before it comes back with the error.
func (c *Client) Import(ctx context.Context, r io.Reader, opts core.ImportOptions) (core.ImportReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://custody/v1/admin/import?batch=%d", opts.BatchSize), r)
	if err != nil {
		return core.ImportReport{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return core.ImportReport{}, fmt.Errorf("reach running server: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		core.ImportReport
		Error  string             `json:"error"`
		Report *core.ImportReport `json:"report"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return core.ImportReport{}, fmt.Errorf("server: bad import response (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var rep core.ImportReport
		if body.Report != nil {
			rep = *body.Report
		}
		return rep, fmt.Errorf("server: import failed: %s", body.Error)
	}
	return body.ImportReport, nil
}

// Unmerge is CDP.Unmerge through the server.
func (c *Client) Unmerge(ctx context.Context, pid uuid.UUID, reason string) (core.UnmergeResult, error) {
	b, _ := json.Marshal(map[string]string{"profile": pid.String(), "reason": reason})
	var r core.UnmergeResult
	err := c.do(ctx, http.MethodPost, "/v1/admin/profiles/unmerge", bytes.NewReader(b), &r)
	return r, err
}

// Stats is CDP.Stats through the server.
func (c *Client) Stats(ctx context.Context) (core.Stats, error) {
	var st core.Stats
	err := c.do(ctx, http.MethodGet, "/v1/admin/stats", nil, &st)
	return st, err
}

// RecordConsent is CDP.RecordConsent through the server.
func (c *Client) RecordConsent(ctx context.Context, req core.ConsentRequest) (privacy.Consent, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return privacy.Consent{}, err
	}
	var rec privacy.Consent
	err = c.do(ctx, http.MethodPost, "/v1/admin/consent", bytes.NewReader(b), &rec)
	return rec, err
}

// Consent is CDP.Consent through the server.
func (c *Client) Consent(ctx context.Context, id identity.Identifier) (core.ConsentView, error) {
	var cv core.ConsentView
	err := c.do(ctx, http.MethodGet, "/v1/admin/consent?"+url.Values{string(id.Type): {id.Value}}.Encode(), nil, &cv)
	return cv, err
}

// Reach is CDP.Reach through the server.
func (c *Client) Reach(ctx context.Context, purposes []string) ([]core.ReachReport, error) {
	var reps []core.ReachReport
	err := c.do(ctx, http.MethodGet, "/v1/admin/reach?"+url.Values{"purpose": {strings.Join(purposes, ",")}}.Encode(), nil, &reps)
	return reps, err
}

// AuditVerify is CDP.AuditVerify through the server.
func (c *Client) AuditVerify(ctx context.Context) (audit.VerifyReport, error) {
	var r audit.VerifyReport
	err := c.do(ctx, http.MethodGet, "/v1/admin/audit/verify", nil, &r)
	return r, err
}

// AuditTail is CDP.AuditTail through the server.
func (c *Client) AuditTail(ctx context.Context, n int) ([]audit.Entry, error) {
	var es []audit.Entry
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/admin/audit/tail?n=%d", n), nil, &es)
	return es, err
}

// ApplySegmentData is CDP.ApplySegmentData through the server.
func (c *Client) ApplySegmentData(ctx context.Context, data []byte) (*segments.Definition, error) {
	var d segments.Definition
	err := c.do(ctx, http.MethodPost, "/v1/admin/segments", bytes.NewReader(data), &d)
	return &d, err
}

// ApplyTemplate is CDP.ApplyTemplate through the server.
func (c *Client) ApplyTemplate(ctx context.Context, name string, params map[string]string) (*segments.Definition, error) {
	b, _ := json.Marshal(map[string]any{"template": name, "params": params})
	var d segments.Definition
	err := c.do(ctx, http.MethodPost, "/v1/admin/segments", bytes.NewReader(b), &d)
	return &d, err
}

// Segments is CDP.Segments through the server.
func (c *Client) Segments(ctx context.Context) ([]*segments.Definition, error) {
	var defs []*segments.Definition
	err := c.do(ctx, http.MethodGet, "/v1/admin/segments", nil, &defs)
	return defs, err
}

// EvaluateSegment is CDP.EvaluateSegment through the server.
func (c *Client) EvaluateSegment(ctx context.Context, name string, now time.Time) (core.SegmentEval, error) {
	q := url.Values{}
	if !now.IsZero() {
		q.Set("now", now.Format(time.RFC3339))
	}
	var ev core.SegmentEval
	err := c.do(ctx, http.MethodGet, "/v1/admin/segments/"+url.PathEscape(name)+"/eval?"+q.Encode(), nil, &ev)
	return ev, err
}

// ExportSegment is CDP.ExportSegment through the server. The server
// answers when the export is over, so opts (WithProgress) are not used.
func (c *Client) ExportSegment(ctx context.Context, name, destination string, now time.Time, opts ...core.ExportOption) (core.ExportReport, error) {
	q := url.Values{"destination": {destination}}
	if !now.IsZero() {
		q.Set("now", now.Format(time.RFC3339))
	}
	var rep core.ExportReport
	err := c.do(ctx, http.MethodPost, "/v1/admin/segments/"+url.PathEscape(name)+"/export?"+q.Encode(), nil, &rep)
	return rep, err
}

// HandleRequest is CDP.HandleRequest through the server. It shares
// requestOutcome with VerifyRequest, so a request the server refuses as
// invalid (a phone with no digits, an unknown type) is ErrInvalidInput with
// the server's reason here too, as when the store is opened directly.
func (c *Client) HandleRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, *core.AccessReport, error) {
	b, _ := json.Marshal(PrivacyRequestBody{Type: typ, Regulation: regulation, Identifier: id})
	return c.requestOutcome(ctx, "/v1/admin/privacy/requests", b)
}

// Requests is CDP.Requests through the server.
func (c *Client) Requests(ctx context.Context, overdue bool) ([]*core.PrivacyRequest, error) {
	var rs []*core.PrivacyRequest
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/admin/privacy/requests?overdue=%v", overdue), nil, &rs)
	return rs, err
}

// Request is CDP.Request through the server.
func (c *Client) Request(ctx context.Context, id string) (*core.PrivacyRequest, error) {
	var r core.PrivacyRequest
	err := c.do(ctx, http.MethodGet, "/v1/admin/privacy/requests/"+url.PathEscape(id), nil, &r)
	if err != nil && strings.Contains(err.Error(), "not found") {
		err = core.ErrRequestNotFound
	}
	return &r, err
}

// RefreshSegment is CDP.RefreshSegment through the server.
func (c *Client) RefreshSegment(ctx context.Context, name string, now time.Time) (core.RefreshReport, error) {
	q := url.Values{}
	if !now.IsZero() {
		q.Set("now", now.Format(time.RFC3339))
	}
	var rep core.RefreshReport
	err := c.do(ctx, http.MethodPost, "/v1/admin/segments/"+url.PathEscape(name)+"/refresh?"+q.Encode(), nil, &rep)
	return rep, err
}

// ShowSegment is CDP.ShowSegment through the server.
func (c *Client) ShowSegment(ctx context.Context, name string) (core.SegmentShow, error) {
	var sh core.SegmentShow
	err := c.do(ctx, http.MethodGet, "/v1/admin/segments/"+url.PathEscape(name), nil, &sh)
	return sh, err
}

// DeleteSegment is CDP.DeleteSegment through the server.
func (c *Client) DeleteSegment(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin/segments/"+url.PathEscape(name), nil, nil)
}

// ExtendRequest is CDP.ExtendRequest through the server.
func (c *Client) ExtendRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error) {
	b, _ := json.Marshal(map[string]string{"reason": reason})
	var r core.PrivacyRequest
	err := c.do(ctx, http.MethodPost, "/v1/admin/privacy/requests/"+url.PathEscape(id)+"/extend", bytes.NewReader(b), &r)
	return &r, err
}
