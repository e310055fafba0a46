package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/privacy"
	"github.com/custody-cdp/custody/segments"
)

// Backend is what the server needs from the CDP.
type Backend interface {
	Ingest(ctx context.Context, msgs []event.Message, opts ...core.IngestOption) (core.IngestResult, error)
	Import(ctx context.Context, r io.Reader, opts core.ImportOptions) (core.ImportReport, error)
	Authenticate(ctx context.Context, key string) (core.APIKey, error)
	Profile(ctx context.Context, id identity.Identifier, so core.ShowOptions) (*core.ProfileView, error)
	CreateAPIKey(ctx context.Context, role core.Role, name string) (core.NewAPIKey, error)
	RotateKeys(ctx context.Context) (keys.RotateReport, error)
	Unmerge(ctx context.Context, pid uuid.UUID, reason string) (core.UnmergeResult, error)
	Stats(ctx context.Context) (core.Stats, error)
	RecordConsent(ctx context.Context, req core.ConsentRequest) (privacy.Consent, error)
	Consent(ctx context.Context, id identity.Identifier) (core.ConsentView, error)
	Decide(ctx context.Context, id identity.Identifier, gr core.GateRequest) (policies.Decision, error)
	Reach(ctx context.Context, purposes []string) ([]core.ReachReport, error)
	AuditVerify(ctx context.Context) (audit.VerifyReport, error)
	AuditTail(ctx context.Context, n int) ([]audit.Entry, error)
	ApplySegmentData(ctx context.Context, data []byte) (*segments.Definition, error)
	ApplyTemplate(ctx context.Context, name string, params map[string]string) (*segments.Definition, error)
	Segments(ctx context.Context) ([]*segments.Definition, error)
	EvaluateSegment(ctx context.Context, name string, now time.Time) (core.SegmentEval, error)
	ExportSegment(ctx context.Context, name, destination string, now time.Time, opts ...core.ExportOption) (core.ExportReport, error)
	RefreshSegment(ctx context.Context, name string, now time.Time) (core.RefreshReport, error)
	DeleteSegment(ctx context.Context, name string) error
	ShowSegment(ctx context.Context, name string) (core.SegmentShow, error)
	SegmentReport(ctx context.Context, name string, since, until time.Time) (core.SegmentReport, error)
	HandleRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, *core.AccessReport, error)
	Requests(ctx context.Context, overdue bool) ([]*core.PrivacyRequest, error)
	ExtendRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error)
	Request(ctx context.Context, id string) (*core.PrivacyRequest, error)
}

// Options configure a Server.
type Options struct {
	Logger   *slog.Logger
	Now      func() time.Time
	Registry *prometheus.Registry
	// Console, when set, serves /console/ (the web console).
	Console http.Handler
	// Timeouts for the TCP listener (the socket has no write timeout:
	// imports through it may run long).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// AuthFailures rate-limits failed authentication per client address.
	AuthFailures LimitOptions
	// TLSCertFile and TLSKeyFile (PEM), both or neither: the TCP listener
	// serves HTTPS only. The admin socket stays plain (it never leaves the
	// machine and is owner-only).
	TLSCertFile, TLSKeyFile string
}

// DefaultOptions returns sensible timeouts.
func DefaultOptions() Options {
	return Options{
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, ShutdownTimeout: 20 * time.Second,
		AuthFailures: DefaultLimitOptions(),
	}
}

// Server is the HTTP API over a Backend.
type Server struct {
	b        Backend
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	mux      *http.ServeMux
	metrics  http.Handler
	limiter  *limiter
	// patterns are the mux's registrations, in table order (tests check
	// them against the OpenAPI document).
	patterns []string
}

// New builds a Server.
func New(b Backend, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{b: b, opts: opts, log: opts.Logger, now: opts.Now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "custody_http_request_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
	}
	opts.Registry.MustRegister(s.requests, s.latency)
	s.metrics = promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})
	s.limiter = newLimiter(opts.AuthFailures, opts.Now)
	s.mux = http.NewServeMux()
	for _, rt := range routeTable(s) {
		s.mux.HandleFunc(rt.Method+" "+rt.Pattern, s.guard(rt))
		s.patterns = append(s.patterns, rt.Method+" "+rt.Pattern)
	}
	// The web console is HTML with its own sign-in (sessions, CSRF): not
	// an API route, so not in the table; its handlers check roles as the
	// table does (core/server/console).
	if opts.Console != nil {
		s.mux.Handle("/console/", opts.Console)
		s.mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusSeeOther))
	}
	return s
}

// Handler returns the HTTP handler with logging and metrics.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		s.mux.ServeHTTP(rw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		s.requests.WithLabelValues(route, strconv.Itoa(rw.code)).Inc()
		s.latency.WithLabelValues(route).Observe(d.Seconds())
		// Never the URL's query or the body: lookups carry identifiers.
		s.log.Debug("http", "route", route, "status", rw.code, "duration", d)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type ctxKey int

const (
	localKey ctxKey = 1
	roleKey  ctxKey = 2
)

// roleOf is the role of the request's key; the owner-only socket acts as
// admin.
func roleOf(r *http.Request) core.Role {
	if role, ok := r.Context().Value(roleKey).(core.Role); ok {
		return role
	}
	return core.RoleAdmin
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request, key string, roles ...core.Role) (core.APIKey, bool) {
	var rec core.APIKey
	err := core.ErrUnauthorized
	if key != "" {
		rec, err = s.b.Authenticate(r.Context(), key)
	}
	if err != nil {
		if !errors.Is(err, core.ErrUnauthorized) {
			s.log.Error("authenticate", "err", err)
			writeError(w, http.StatusInternalServerError, "internal error", -1, "")
			return core.APIKey{}, false
		}
		if wait, ok := s.limiter.fail(clientAddr(r)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
			writeError(w, http.StatusTooManyRequests, "too many failed authentications from this address; retry later", -1, "")
			return core.APIKey{}, false
		}
		if key == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="custody"`)
			writeError(w, http.StatusUnauthorized, "missing API key", -1, "")
		} else {
			writeError(w, http.StatusUnauthorized, "invalid API key", -1, "")
		}
		return core.APIKey{}, false
	}
	for _, role := range roles {
		if rec.Role == role {
			return rec, true
		}
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("a %s key may not do this", rec.Role), -1, "")
	return core.APIKey{}, false
}

// readBody reads at most limit bytes (after gzip decoding, if any) and
// reports whether the body was larger.
func readBody(r *http.Request, limit int) ([]byte, bool, error) {
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, int64(limit)*4+1024)
	gz := strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	if gz {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", errNotGzip, err)
		}
		defer zr.Close()
		rd = zr
	}
	hint := int64(0)
	if !gz {
		hint = min(r.ContentLength, int64(limit)+1)
	}
	b, err := readAll(io.LimitReader(rd, int64(limit)+1), hint)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, true, nil
		}
		if gz && (errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, false, fmt.Errorf("%w: %v", errNotGzip, err)
		}
		return nil, false, err
	}
	return b, len(b) > limit, nil
}

// readAll is io.ReadAll with room for hint bytes (the request's
// Content-Length) made first: a batch is read into one allocation instead
// of a doubling series (6% of the bytes ingestion allocated).
func readAll(rd io.Reader, hint int64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(max(hint, 0)) + bytes.MinRead) // ReadFrom wants MinRead free
	_, err := buf.ReadFrom(rd)
	return buf.Bytes(), err
}

// bodyProblem says why a request body could not be read.
func bodyProblem(err error) string {
	if errors.Is(err, errNotGzip) {
		return "body is not valid gzip (Content-Encoding: gzip)"
	}
	return "could not read request body"
}

func (s *Server) handleMessage(t event.Type) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, over, err := readBody(r, event.MaxMessageBytes)
		if err != nil {
			writeError(w, http.StatusBadRequest, bodyProblem(err), -1, "")
			return
		}
		if over {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("message larger than %d bytes", event.MaxMessageBytes), -1, "")
			return
		}
		m, err := event.DecodeMessage(body, t, s.now())
		if err != nil {
			writeDecodeError(w, err)
			return
		}
		s.ingest(w, r, []event.Message{m})
	}
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	body, over, err := readBody(r, event.MaxBatchBytes)
	if err != nil {
		writeError(w, http.StatusBadRequest, bodyProblem(err), -1, "")
		return
	}
	if over {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("batch larger than %d bytes", event.MaxBatchBytes), -1, "")
		return
	}
	msgs, err := event.DecodeBatch(body, s.now())
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	s.ingest(w, r, msgs)
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request, msgs []event.Message) {
	// A Global Privacy Control signal is an opt-out of sale and sharing
	// for every person in the request.
	gpc := strings.TrimSpace(r.Header.Get("Sec-GPC")) == "1"
	if _, err := s.b.Ingest(r.Context(), msgs, core.WithGPC(gpc)); err != nil {
		if errors.Is(err, core.ErrClosed) || errors.Is(err, context.Canceled) {
			writeError(w, http.StatusServiceUnavailable, "shutting down, retry", -1, "")
			return
		}
		s.log.Error("ingest", "messages", len(msgs), "err", err)
		writeError(w, http.StatusInternalServerError, "could not store the batch; nothing was acknowledged, retry", -1, "")
		return
	}
	// Messages dropped because they name a suppressed identifier are
	// still a success: Segment SDKs retry anything else, and a deleted
	// person's device would retry forever. The operator sees them as
	// custody_ingest_messages_total{result="suppressed"}; the answer says
	// nothing about who was deleted.
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, ok := identifierFromQuery(q)
	if !ok {
		writeError(w, http.StatusBadRequest, "give exactly one of user_id, anonymous_id, email, phone", -1, "")
		return
	}
	// Every profile read asks the policy gate (action profile.read).
	d, err := s.b.Decide(r.Context(), id, core.GateRequest{Action: policies.ActionProfileRead, Role: string(roleOf(r))})
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	if !d.Allow {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "the policy gate denied this profile read", "reasons": d.Reasons})
		return
	}
	limit, _ := strconv.Atoi(q.Get("event_limit"))
	p, err := s.b.Profile(r.Context(), id, core.ShowOptions{EventLimit: limit})
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func identifierFromQuery(q url.Values) (identity.Identifier, bool) {
	var id identity.Identifier
	n := 0
	for _, t := range []identity.Type{identity.UserID, identity.AnonymousID, identity.Email, identity.Phone} {
		if v := q.Get(string(t)); v != "" {
			id = identity.Identifier{Type: t, Value: v}
			n++
		}
	}
	return id, n == 1
}

func (s *Server) handleRecordConsent(w http.ResponseWriter, r *http.Request) {
	// The times are decoded here, not by encoding/json, whose errors for a
	// bad time name no field.
	var body struct {
		core.ConsentRequest
		CollectedAt *string `json:"collected_at"`
		ExpiresAt   *string `json:"expires_at"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16384))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body must be a JSON consent request: "+jsonProblem(err), -1, "")
		return
	}
	req := body.ConsentRequest
	for _, f := range []struct {
		name string
		v    *string
		set  func(time.Time)
	}{
		{"collected_at", body.CollectedAt, func(t time.Time) { req.CollectedAt = t }},
		{"expires_at", body.ExpiresAt, func(t time.Time) { req.ExpiresAt = &t }},
	} {
		if f.v == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339, *f.v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("field %q: expected an RFC3339 time such as 2026-01-02T15:04:05Z", f.name), -1, f.name)
			return
		}
		f.set(t)
	}
	if req.Source == "" {
		req.Source = "api"
	}
	rec, err := s.b.RecordConsent(r.Context(), req)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, rec)
}

// jsonProblem describes a JSON decoding error without echoing values.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: expected %s", te.Field, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return "a time is not RFC3339 (such as 2026-01-02T15:04:05Z)"
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return err.Error()
	}
	return "malformed JSON"
}

func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	id, ok := identifierFromQuery(r.URL.Query())
	if !ok {
		writeError(w, http.StatusBadRequest, "give exactly one of user_id, anonymous_id, email, phone", -1, "")
		return
	}
	cv, err := s.b.Consent(r.Context(), id)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cv)
}

func (s *Server) handleSegments(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("hygiene") == "true" {
		s.handleSegmentHygiene(w, r)
		return
	}
	defs, err := s.b.Segments(r.Context())
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	if defs == nil {
		defs = []*segments.Definition{}
	}
	writeJSON(w, http.StatusOK, defs)
}

// handleApplySegment takes a definition (JSON or YAML), or
// {"template": NAME, "params": {...}}.
func (s *Server) handleApplySegment(w http.ResponseWriter, r *http.Request) {
	body, over, err := readBody(r, 64<<10)
	if err != nil || over {
		writeError(w, http.StatusBadRequest, "a segment definition of at most 64 KiB", -1, "")
		return
	}
	var tmpl struct {
		Template string            `json:"template"`
		Params   map[string]string `json:"params"`
	}
	var d *segments.Definition
	if json.Unmarshal(body, &tmpl) == nil && tmpl.Template != "" {
		d, err = s.b.ApplyTemplate(r.Context(), tmpl.Template, tmpl.Params)
	} else {
		d, err = s.b.ApplySegmentData(r.Context(), body)
	}
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) handleEvalSegment(w http.ResponseWriter, r *http.Request) {
	now, ok := queryNow(w, r)
	if !ok {
		return
	}
	ev, err := s.b.EvaluateSegment(r.Context(), r.PathValue("name"), now)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

func (s *Server) handleExportSegment(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now, ok := queryNow(w, r)
	if !ok {
		return
	}
	rep, err := s.b.ExportSegment(r.Context(), r.PathValue("name"), q.Get("destination"), now)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// PrivacyRequestBody is a request to POST /v1/admin/privacy/requests. The
// identifier travels in the body, never in a URL that proxies log.
type PrivacyRequestBody struct {
	Type       string              `json:"type"`
	Regulation string              `json:"regulation"`
	Identifier identity.Identifier `json:"identifier"`
	// ReceiveOnly records the request as received; it is carried out by
	// POST .../{id}/verify once the person's identity is verified.
	ReceiveOnly bool `json:"receive_only,omitempty"`
}

// PrivacyRequestResponse is the request, and the report for access.
type PrivacyRequestResponse struct {
	Request *core.PrivacyRequest `json:"request"`
	Report  *core.AccessReport   `json:"report,omitempty"`
	Error   string               `json:"error,omitempty"`
}

func (s *Server) handlePrivacyRequest(w http.ResponseWriter, r *http.Request) {
	var body PrivacyRequestBody
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil || body.Identifier.Type == "" || body.Identifier.Value == "" {
		writeError(w, http.StatusBadRequest, `body must be {"type": "access|delete|suppress|suppress_with_delete|unsuppress", "regulation": "gdpr|ccpa", "identifier": {"type": "email", "value": "..."}}`, -1, "")
		return
	}
	if body.ReceiveOnly {
		if l, ok := s.lifecycle(w); ok {
			req, err := l.ReceiveRequest(r.Context(), body.Type, body.Regulation, body.Identifier)
			if err != nil {
				s.writeCoreError(w, err)
				return
			}
			writeJSON(w, http.StatusAccepted, PrivacyRequestResponse{Request: req})
		}
		return
	}
	// Once started, a request runs to completion even if the client goes
	// away: a deletion cut short leaves keys to shred and a certificate to
	// write (resumed at the next Open, but not before).
	req, rep, err := s.b.HandleRequest(context.WithoutCancel(r.Context()), body.Type, body.Regulation, body.Identifier)
	if req == nil {
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

func (s *Server) handleReach(w http.ResponseWriter, r *http.Request) {
	var purposes []string
	for _, p := range strings.Split(r.URL.Query().Get("purpose"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			purposes = append(purposes, p)
		}
	}
	if len(purposes) == 0 {
		writeError(w, http.StatusBadRequest, "give purpose=P[,P...]", -1, "purpose")
		return
	}
	reps, err := s.b.Reach(r.Context(), purposes)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reps)
}

func (s *Server) handleUnmerge(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Profile string `json:"profile"`
		Reason  string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8192)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {\"profile\": ..., \"reason\": ...}", -1, "")
		return
	}
	pid, err := uuid.Parse(req.Profile)
	if err != nil {
		writeError(w, http.StatusBadRequest, "profile must be a profile id (UUID)", -1, "profile")
		return
	}
	res, err := s.b.Unmerge(r.Context(), pid, req.Reason)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role string `json:"role"`
		Name string `json:"name"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {\"role\": ..., \"name\": ...}", -1, "")
		return
	}
	role, err := core.ParseRole(req.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), -1, "role")
		return
	}
	k, err := s.b.CreateAPIKey(r.Context(), role, req.Name)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	rep, err := s.b.RotateKeys(r.Context())
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	batch, _ := strconv.Atoi(r.URL.Query().Get("batch"))
	rep, err := s.b.Import(r.Context(), r.Body, core.ImportOptions{BatchSize: batch})
	if err != nil {
		s.log.Error("import", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "report": rep})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) writeCoreError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, core.ErrProfileNotFound):
		writeError(w, http.StatusNotFound, "profile not found", -1, "")
	case errors.Is(err, core.ErrRequestNotFound):
		writeError(w, http.StatusNotFound, "privacy request not found", -1, "")
	case errors.Is(err, core.ErrSegmentNotFound):
		writeError(w, http.StatusNotFound, "segment not found", -1, "")
	case errors.Is(err, core.ErrInvalidInput), errors.Is(err, core.ErrInvalidRole):
		writeError(w, http.StatusBadRequest, err.Error(), -1, "")
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error", -1, "")
	}
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
	Index *int   `json:"index,omitempty"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string, index int, field string) {
	b := ErrorBody{Error: msg, Field: field}
	if index >= 0 {
		b.Index = &index
	}
	writeJSON(w, code, b)
}

func writeDecodeError(w http.ResponseWriter, err error) {
	var fe *event.FieldError
	if errors.As(err, &fe) {
		b := ErrorBody{Error: fe.Error(), Field: fe.Field, Code: codeOf(fe.Err)}
		if fe.Index >= 0 {
			i := fe.Index
			b.Index = &i
		}
		writeJSON(w, http.StatusBadRequest, b)
		return
	}
	writeError(w, http.StatusBadRequest, err.Error(), -1, "")
}

func codeOf(err error) string {
	for code, e := range map[string]error{
		"malformed_json": event.ErrMalformedJSON, "invalid_utf8": event.ErrInvalidUTF8,
		"message_too_large": event.ErrMessageTooLarge, "batch_too_large": event.ErrBatchTooLarge,
		"unknown_type": event.ErrUnknownType, "missing_identity": event.ErrMissingIdentity,
		"invalid_field": event.ErrInvalidField, "empty_batch": event.ErrEmptyBatch,
	} {
		if errors.Is(err, e) {
			return code
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens on addr (TCP) and socketPath (unix, owner-only) until ctx
// is cancelled, then shuts down gracefully: in-flight requests finish, and
// so their acknowledged messages are durable, before it returns.
func (s *Server) Serve(ctx context.Context, addr, socketPath string, ready func(tcpAddr string)) error {
	tlsConf, err := s.tlsConfig()
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if tlsConf != nil {
		tcp = tls.NewListener(tcp, tlsConf)
	}
	unix, err := listenSocket(socketPath)
	if err != nil {
		tcp.Close()
		return err
	}
	defer os.Remove(socketPath)
	h := s.Handler()
	pub := &http.Server{Handler: h, ReadHeaderTimeout: s.opts.ReadHeaderTimeout, ReadTimeout: s.opts.ReadTimeout,
		WriteTimeout: s.opts.WriteTimeout, IdleTimeout: s.opts.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	local := &http.Server{Handler: h, ReadHeaderTimeout: s.opts.ReadHeaderTimeout, IdleTimeout: s.opts.IdleTimeout,
		BaseContext: func(net.Listener) context.Context { return context.WithValue(context.Background(), localKey, true) },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	for _, p := range []struct {
		srv *http.Server
		l   net.Listener
	}{{pub, tcp}, {local, unix}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.srv.Serve(p.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	s.log.Info("serving", "addr", tcp.Addr().String(), "tls", tlsConf != nil, "socket", socketPath)
	if ready != nil {
		ready(tcp.Addr().String())
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err = errors.Join(pub.Shutdown(sctx), local.Shutdown(sctx))
	wg.Wait()
	s.log.Info("server stopped")
	return errors.Join(serveErr, err)
}

// tlsConfig loads the certificate and key, if configured, so that a bad
// file fails at start with its name rather than at the first handshake.
func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, key := s.opts.TLSCertFile, s.opts.TLSKeyFile
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, fmt.Errorf("%w: TLS needs both a certificate and a key file", ErrTLS)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w: load certificate %s and key %s: %v", ErrTLS, cert, key, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func listenSocket(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		// A socket left by a killed server: refuse if something answers.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another server is running", path)
		}
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// queryNow reads ?now= (zero: the current time), answering 400 when bad.
func queryNow(w http.ResponseWriter, r *http.Request) (time.Time, bool) {
	v := r.URL.Query().Get("now")
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "now must be an RFC3339 time", -1, "now")
		return t, false
	}
	return t, true
}
