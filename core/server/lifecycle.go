package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

// lifecycle is what the privacy request lifecycle and backups need beyond
// Backend; core.CDP and Client both serve it.
type lifecycle interface {
	ReceiveRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, error)
	VerifyRequest(ctx context.Context, id, method string) (*core.PrivacyRequest, *core.AccessReport, error)
	RejectRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error)
	Backup(ctx context.Context, w io.Writer) (store.BackupInfo, error)
	BackupVault(ctx context.Context, w io.Writer) (store.BackupInfo, error)
}

func (s *Server) lifecycle(w http.ResponseWriter) (lifecycle, bool) {
	l, ok := s.b.(lifecycle)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not supported by this backend", -1, "")
	}
	return l, ok
}

// writeRequestOutcome answers a request that was carried out: 200 with the
// request (and the report for access: an empty one when no one holds the
// identifier), 404 when a deletion finds no one holding the identifier,
// 422 when it was rejected for another reason.
func (s *Server) writeRequestOutcome(w http.ResponseWriter, req *core.PrivacyRequest, rep *core.AccessReport, err error) {
	if req == nil || (err != nil && errors.Is(err, core.ErrInvalidInput)) {
		s.writeCoreError(w, err)
		return
	}
	resp := PrivacyRequestResponse{Request: req, Report: rep}
	code := http.StatusOK
	if err != nil {
		resp.Error = req.History[len(req.History)-1].Note
		code = http.StatusUnprocessableEntity
		if errors.Is(err, core.ErrProfileNotFound) {
			code = http.StatusNotFound
		}
	}
	writeJSON(w, code, resp)
}

// handleVerifyRequest is POST /v1/admin/privacy/requests/{id}/verify
// {"method": "..."}: the identity was verified; carry the request out.
func (s *Server) handleVerifyRequest(w http.ResponseWriter, r *http.Request) {
	l, ok := s.lifecycle(w)
	if !ok {
		return
	}
	var body struct {
		Method string `json:"method"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil || body.Method == "" {
		writeError(w, http.StatusBadRequest, `body must be {"method": "how the identity was verified"}`, -1, "")
		return
	}
	req, rep, err := l.VerifyRequest(context.WithoutCancel(r.Context()), r.PathValue("id"), body.Method)
	if errors.Is(err, core.ErrRequestNotFound) {
		s.writeCoreError(w, err)
		return
	}
	s.writeRequestOutcome(w, req, rep, err)
}

// handleRejectRequest is POST /v1/admin/privacy/requests/{id}/reject
// {"reason": "..."}.
func (s *Server) handleRejectRequest(w http.ResponseWriter, r *http.Request) {
	l, ok := s.lifecycle(w)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil || body.Reason == "" {
		writeError(w, http.StatusBadRequest, `body must be {"reason": "..."}`, -1, "")
		return
	}
	req, err := l.RejectRequest(r.Context(), r.PathValue("id"), body.Reason)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// handleBackup is GET /v1/admin/backup[?vault=true]: the encrypted backup
// stream of the data store (or of the key vault) as the response body.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	l, ok := s.lifecycle(w)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	var err error
	if r.URL.Query().Get("vault") == "true" {
		_, err = l.BackupVault(r.Context(), w)
	} else {
		_, err = l.Backup(r.Context(), w)
	}
	if err != nil {
		// The body is under way: the client sees a truncated stream,
		// which ReadBackup rejects (no trailer).
		s.log.Error("backup failed", "err", err)
	}
}

// ReceiveRequest is CDP.ReceiveRequest through the server.
func (c *Client) ReceiveRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, error) {
	b, _ := json.Marshal(PrivacyRequestBody{Type: typ, Regulation: regulation, Identifier: id, ReceiveOnly: true})
	var out PrivacyRequestResponse
	if err := c.do(ctx, http.MethodPost, "/v1/admin/privacy/requests", bytes.NewReader(b), &out); err != nil {
		return nil, err
	}
	return out.Request, nil
}

// VerifyRequest is CDP.VerifyRequest through the server.
func (c *Client) VerifyRequest(ctx context.Context, id, method string) (*core.PrivacyRequest, *core.AccessReport, error) {
	b, _ := json.Marshal(map[string]string{"method": method})
	return c.requestOutcome(ctx, "/v1/admin/privacy/requests/"+url.PathEscape(id)+"/verify", b)
}

func (c *Client) requestOutcome(ctx context.Context, path string, body []byte) (*core.PrivacyRequest, *core.AccessReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://custody"+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("reach running server: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out PrivacyRequestResponse
	if json.Unmarshal(raw, &out) != nil || out.Request == nil {
		var eb ErrorBody
		_ = json.Unmarshal(raw, &eb)
		switch resp.StatusCode {
		case http.StatusNotFound:
			return nil, nil, core.ErrRequestNotFound
		case http.StatusBadRequest:
			return nil, nil, fmt.Errorf("%w: %s", core.ErrInvalidInput, eb.Error)
		}
		return nil, nil, fmt.Errorf("server: %s (HTTP %d)", eb.Error, resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return out.Request, nil, core.ErrProfileNotFound
	case resp.StatusCode != http.StatusOK:
		return out.Request, nil, fmt.Errorf("server: %s", out.Error)
	}
	return out.Request, out.Report, nil
}

// RejectRequest is CDP.RejectRequest through the server.
func (c *Client) RejectRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error) {
	b, _ := json.Marshal(map[string]string{"reason": reason})
	var r core.PrivacyRequest
	err := c.do(ctx, http.MethodPost, "/v1/admin/privacy/requests/"+url.PathEscape(id)+"/reject", bytes.NewReader(b), &r)
	if errors.Is(err, core.ErrProfileNotFound) {
		err = core.ErrRequestNotFound
	}
	return &r, err
}

// Backup is CDP.Backup through the server: the stream is copied to w.
func (c *Client) Backup(ctx context.Context, w io.Writer) (store.BackupInfo, error) {
	return c.backup(ctx, w, "/v1/admin/backup")
}

// BackupVault is CDP.BackupVault through the server.
func (c *Client) BackupVault(ctx context.Context, w io.Writer) (store.BackupInfo, error) {
	return c.backup(ctx, w, "/v1/admin/backup?vault=true")
}

func (c *Client) backup(ctx context.Context, w io.Writer, path string) (store.BackupInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://custody"+path, nil)
	if err != nil {
		return store.BackupInfo{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return store.BackupInfo{}, fmt.Errorf("reach running server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return store.BackupInfo{}, fmt.Errorf("server: backup failed (HTTP %d)", resp.StatusCode)
	}
	n, err := io.Copy(w, resp.Body)
	return store.BackupInfo{Bytes: n}, err
}
