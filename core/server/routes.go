package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/event"
)

// Route is one endpoint of the HTTP API. The mux is built from the route
// table and from nothing else, so every endpoint has an entry: its roles
// are enforced from the entry (guard), the role-matrix test calls every
// entry with every kind of key, docs/http-api.md renders the table and
// GET /v1/openapi.json is generated from it.
type Route struct {
	Method string
	// Pattern is the net/http pattern's path, e.g. /v1/admin/segments/{name}.
	Pattern string
	// Roles may call the route. None: no key is needed (health, metrics,
	// the OpenAPI document).
	Roles []core.Role
	// Basic: the key may come as the HTTP Basic user, as Segment SDKs send
	// the write key. Such routes need a key on the admin socket too.
	Basic bool
	// Query parameters the route reads.
	Query []Param
	// Summary says what the route does; Request and Response describe the
	// bodies ("" Request: no body).
	Summary, Request, Response string
	// Success is the status of a successful call.
	Success int

	handler http.HandlerFunc
}

// Param is a query parameter.
type Param struct {
	Name, Description string
}

// Public reports whether the route needs no key.
func (rt Route) Public() bool { return len(rt.Roles) == 0 }

// Allows reports whether a key of role may call the route.
func (rt Route) Allows(role core.Role) bool {
	for _, r := range rt.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Routes returns the route table (without handlers).
func Routes() []Route {
	rts := routeTable(nil)
	for i := range rts {
		rts[i].handler = nil
	}
	return rts
}

var (
	rolesIngest   = []core.Role{core.RoleIngest, core.RoleAdmin}
	rolesDPO      = []core.Role{core.RoleDPO, core.RoleAdmin}
	rolesMarketer = []core.Role{core.RoleMarketer, core.RoleAdmin}
	rolesReaders  = []core.Role{core.RoleMarketer, core.RoleDPO, core.RoleAdmin}
	rolesAdmin    = []core.Role{core.RoleAdmin}
	// The storefront's lookup key reads nothing else, and no other key
	// reads through it (docs/activation.md).
	rolesPersonalize = []core.Role{core.RolePersonalize}
)

var (
	identifierQuery = []Param{
		{"user_id", "the person's user id"}, {"anonymous_id", "an anonymous id"},
		{"email", "an email address"}, {"phone", "a phone number"},
	}
	nowQuery = Param{"now", "evaluate as of this RFC3339 time (default: now)"}
)

const (
	errorResponse   = "on failure an ErrorBody: {\"error\", \"code\", \"index\", \"field\"}"
	segmentResponse = "the applied segment definition"
)

// routeTable is the API. s may be nil when only the entries are wanted;
// handlers are then never called.
func routeTable(s *Server) []Route {
	var rts []Route
	for _, t := range []struct {
		typ  event.Type
		note string
	}{
		{event.Identify, ""}, {event.Track, " (`event` required)"}, {event.Page, ""},
		{event.Screen, ""}, {event.Group, " (`groupId` required)"}, {event.Alias, " (`previousId` and `userId` required)"},
	} {
		rts = append(rts, Route{
			Method: http.MethodPost, Pattern: "/v1/" + string(t.typ), Roles: rolesIngest, Basic: true,
			Summary:  "ingest one " + string(t.typ) + " message",
			Request:  "one Segment " + string(t.typ) + " message" + t.note,
			Response: `{"success": true} once durable; 400 names the field and nothing is stored`,
			Success:  http.StatusOK, handler: s.handleMessage(t.typ),
		})
	}
	rts = append(rts,
		Route{Method: http.MethodPost, Pattern: "/v1/batch", Roles: rolesIngest, Basic: true,
			Summary:  "ingest a batch of messages, all or nothing",
			Request:  `{"batch": [...], "context": {...}, "integrations": {...}, "sentAt": "..."}`,
			Response: `{"success": true} once every message is durable; 400 names the message index and field`,
			Success:  http.StatusOK, handler: s.handleBatch},
		Route{Method: http.MethodGet, Pattern: "/healthz",
			Summary: "liveness", Response: `{"status": "ok"}`, Success: http.StatusOK, handler: s.handleHealth},
		Route{Method: http.MethodGet, Pattern: "/metrics",
			Summary: "Prometheus metrics (no personal data in labels)", Response: "Prometheus text format",
			Success: http.StatusOK, handler: s.handleMetrics},
		Route{Method: http.MethodGet, Pattern: "/v1/openapi.json",
			Summary: "this API as an OpenAPI 3 document", Response: "OpenAPI 3.1 JSON",
			Success: http.StatusOK, handler: s.handleOpenAPI},
		Route{Method: http.MethodGet, Pattern: "/v1/personalize", Roles: rolesPersonalize,
			Query:    []Param{{"anonymousId", "the visitor's anonymous id"}, {"userId", "the visitor's user id (give exactly one)"}},
			Summary:  "the visitor's segment names and allowed computed values, if they allowed personalize.content.profiled",
			Response: `{"segments": [...], "traits": {...}}; the same empty answer for a person who did not allow it, an unknown and an erased one`,
			Success:  http.StatusOK, handler: s.handlePersonalize},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/profiles", Roles: rolesDPO,
			Query:    append(identifierQuery[:len(identifierQuery):len(identifierQuery)], Param{"event_limit", "at most this many events"}),
			Summary:  "the whole person, decrypted, if the policy gate allows profile.read",
			Response: "the profile: identifiers, traits and their history, merges, events",
			Success:  http.StatusOK, handler: s.handleProfile},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/profiles/unmerge", Roles: rolesDPO,
			Summary: "split a wrong merge", Request: `{"profile": "<profile id>", "reason": "..."}`,
			Response: "the unmerge result", Success: http.StatusOK, handler: s.handleUnmerge},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/consent", Roles: rolesDPO,
			Summary: "record consent", Request: "a consent request (docs/consent.md); unknown fields are refused",
			Response: "the consent record", Success: http.StatusCreated, handler: s.handleRecordConsent},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/consent", Roles: rolesDPO, Query: identifierQuery,
			Summary:  "consent state per purpose, jurisdiction and full history",
			Response: "the consent view", Success: http.StatusOK, handler: s.handleConsent},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/reach", Roles: rolesReaders,
			Query:    []Param{{"purpose", "comma-separated purposes (required)"}},
			Summary:  "how many people each purpose may reach through the gate, and how many were held back",
			Response: "counts per purpose", Success: http.StatusOK, handler: s.handleReach},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/stats", Roles: rolesReaders,
			Summary:  "counts: events, profiles, people, known customers, stitched devices, refused merges",
			Response: "the counts", Success: http.StatusOK, handler: s.handleStats},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/segments", Roles: rolesMarketer,
			Query:   []Param{{"hygiene", "true: each segment with its active member count, last use and warnings (too_small, overlap, unused)"}, nowQuery},
			Summary: "applied segment definitions", Response: "a list of definitions; with hygiene=true a list of {name, purpose, members, last_used, uses, warnings, definition}",
			Success: http.StatusOK, handler: s.handleSegments},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/segments", Roles: rolesMarketer,
			Summary: "apply a segment", Request: `a definition (JSON or YAML), or {"template": NAME, "params": {...}}`,
			Response: segmentResponse, Success: http.StatusCreated, handler: s.handleApplySegment},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/segments/{name}", Roles: rolesMarketer,
			Summary: "a segment's definition, size and history", Response: "the segment",
			Success: http.StatusOK, handler: s.handleShowSegment},
		Route{Method: http.MethodDelete, Pattern: "/v1/admin/segments/{name}", Roles: rolesMarketer,
			Summary: "delete a segment and its memberships", Response: `{"deleted": NAME}`,
			Success: http.StatusOK, handler: s.handleDeleteSegment},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/segments/{name}/eval", Roles: rolesMarketer, Query: []Param{nowQuery},
			Summary:  "counts through the gate: allowed, not consented",
			Response: "the evaluation (counts only)", Success: http.StatusOK, handler: s.handleEvalSegment},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/segments/{name}/refresh", Roles: rolesMarketer, Query: []Param{nowQuery},
			Summary:  "re-evaluate now and record who entered and left",
			Response: "the refresh report", Success: http.StatusOK, handler: s.handleRefreshSegment},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/segments/{name}/report", Roles: rolesMarketer,
			Query: []Param{{"since", "start of the period: a date (2006-01-02, UTC) or RFC3339 time (default: 30 days before until)"},
				{"until", "end of the period, exclusive; a date includes that day (default: now)"}},
			Summary:  "performance over a period: members vs non-members, split groups vs the holdout with 95% intervals, movement, entered/exited per day",
			Response: "the report (counts only; people the gate denies are only counted)", Success: http.StatusOK, handler: s.handleSegmentReport},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/segments/{name}/export", Roles: rolesMarketer,
			Query:    []Param{{"destination", "a configured destination (required)"}, nowQuery},
			Summary:  "gated, minimal export to a configured destination",
			Response: "the export report", Success: http.StatusOK, handler: s.handleExportSegment},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/privacy/requests", Roles: rolesDPO,
			Summary:  "carry out an access, delete, suppress or unsuppress request",
			Request:  `{"type": "access|delete|suppress|suppress_with_delete|unsuppress", "regulation": "gdpr|ccpa", "identifier": {"type": ..., "value": ...}}`,
			Response: `{"request": ..., "report": ...} (access for an identifier no one holds, never seen or deleted: completed, "person": null, every section empty); 404 (a deletion or suppression of no one) or 422 with the rejected request; with "receive_only": true, 202 with the received request (carried out by .../verify)`,
			Success:  http.StatusOK, handler: s.handlePrivacyRequest},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/privacy/requests", Roles: rolesDPO,
			Query:    []Param{{"overdue", "true: only requests past their due date"}},
			Summary:  "privacy requests with history and due dates",
			Response: "a list of requests", Success: http.StatusOK, handler: s.handleRequests},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/privacy/requests/{id}", Roles: rolesDPO,
			Summary: "one privacy request", Response: "the request", Success: http.StatusOK, handler: s.handleRequest},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/privacy/requests/{id}/extend", Roles: rolesDPO,
			Summary: "extend a request's deadline, with the reason recorded", Request: `{"reason": "..."}`,
			Response: "the request", Success: http.StatusOK, handler: s.handleExtendRequest},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/privacy/requests/{id}/verify", Roles: rolesDPO,
			Summary: "record the requester's identity verification and carry the request out", Request: `{"method": "..."}`,
			Response: `{"request": ..., "report": ...}`, Success: http.StatusOK, handler: s.handleVerifyRequest},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/privacy/requests/{id}/reject", Roles: rolesDPO,
			Summary: "reject a request, with the reason recorded", Request: `{"reason": "..."}`,
			Response: "the request", Success: http.StatusOK, handler: s.handleRejectRequest},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/audit/verify", Roles: rolesDPO,
			Summary: "check the audit hash chain", Response: "the verification report",
			Success: http.StatusOK, handler: s.handleAuditVerify},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/audit/tail", Roles: rolesDPO,
			Query:   []Param{{"n", "how many entries (default 20, at most 10000)"}},
			Summary: "the last audit entries", Response: "a list of audit entries",
			Success: http.StatusOK, handler: s.handleAuditTail},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/apikeys", Roles: rolesAdmin,
			Summary: "create an API key", Request: `{"role": "...", "name": "..."}`,
			Response: `{"key": "cus_...", ...}: the key is shown once`, Success: http.StatusCreated, handler: s.handleCreateKey},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/apikeys", Roles: rolesAdmin,
			Summary: "list API keys (never the keys themselves)", Response: "a list of key records: id, role, name, created, revoked",
			Success: http.StatusOK, handler: s.handleListKeys},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/apikeys/{id}/revoke", Roles: rolesAdmin,
			Summary: "revoke an API key: it fails authentication from now on", Response: "the revoked key's record",
			Success: http.StatusOK, handler: s.handleRevokeKey},
		Route{Method: http.MethodGet, Pattern: "/v1/admin/backup", Roles: rolesAdmin,
			Query:    []Param{{"vault", "true: the key vault instead of the data store (keep the two backups apart)"}},
			Summary:  "stream an encrypted backup of the data store or the key vault",
			Response: "the backup stream (application/octet-stream)", Success: http.StatusOK, handler: s.handleBackup},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/keys/rotate", Roles: rolesAdmin,
			Summary:  "new KEK epoch: re-wrap data keys, destroy the old KEK",
			Response: "the rotation report", Success: http.StatusOK, handler: s.handleRotate},
		Route{Method: http.MethodPost, Pattern: "/v1/admin/import", Roles: rolesAdmin,
			Query:   []Param{{"batch", "messages per commit"}},
			Summary: "import Segment messages", Request: "JSON Lines, one message per line",
			Response: "the import report: counts, and each rejected line with its number and problem (lines are independent: the good ones are stored)",
			Success:  http.StatusOK, handler: s.handleImport},
	)
	return rts
}

// guard enforces a route's roles before its handler runs. Requests on the
// owner-only admin socket need no key for admin routes: whoever can open
// the socket owns the data directory.
func (s *Server) guard(rt Route) http.HandlerFunc {
	if rt.Public() {
		return rt.handler
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !rt.Basic && r.Context().Value(localKey) != nil {
			rt.handler(w, r)
			return
		}
		key := bearer(r)
		if rt.Basic {
			if user, _, ok := r.BasicAuth(); ok {
				key = user
			}
		}
		rec, ok := s.authorize(w, r, key, rt.Roles...)
		if !ok {
			return
		}
		ctx := context.WithValue(r.Context(), roleKey, rec.Role)
		rt.handler(w, r.WithContext(core.WithActor(ctx, "key-"+rec.ID)))
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) { s.metrics.ServeHTTP(w, r) }

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, OpenAPI())
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.Stats(r.Context())
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	rep, err := s.b.AuditVerify(r.Context())
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) handleAuditTail(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 || n > 10000 {
		n = 20
	}
	es, err := s.b.AuditTail(r.Context(), n)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, es)
}

func (s *Server) handleShowSegment(w http.ResponseWriter, r *http.Request) {
	sh, err := s.b.ShowSegment(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sh)
}

func (s *Server) handleDeleteSegment(w http.ResponseWriter, r *http.Request) {
	if err := s.b.DeleteSegment(r.Context(), r.PathValue("name")); err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("name")})
}

func (s *Server) handleRefreshSegment(w http.ResponseWriter, r *http.Request) {
	now, ok := queryNow(w, r)
	if !ok {
		return
	}
	rep, err := s.b.RefreshSegment(r.Context(), r.PathValue("name"), now)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) handleRequests(w http.ResponseWriter, r *http.Request) {
	rs, err := s.b.Requests(r.Context(), r.URL.Query().Get("overdue") == "true")
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

func (s *Server) handleRequest(w http.ResponseWriter, r *http.Request) {
	req, err := s.b.Request(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleExtendRequest(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, `body must be {"reason": "..."}`, -1, "")
		return
	}
	req, err := s.b.ExtendRequest(r.Context(), r.PathValue("id"), body.Reason)
	if err != nil {
		s.writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// RoutesMarkdown renders the route table for docs/http-api.md.
func RoutesMarkdown() string {
	var b strings.Builder
	b.WriteString("| Method | Path | Roles | Does | Request | Response |\n|---|---|---|---|---|---|\n")
	cell := func(s string) string {
		if s == "" {
			return "–"
		}
		return strings.ReplaceAll(s, "|", `\|`)
	}
	for _, rt := range Routes() {
		roles := "none (no key)"
		if !rt.Public() {
			var rs []string
			for _, r := range rt.Roles {
				rs = append(rs, string(r))
			}
			roles = strings.Join(rs, ", ")
			if rt.Basic {
				roles += " (Basic or Bearer)"
			}
		}
		path := "`" + rt.Pattern + "`"
		if len(rt.Query) > 0 {
			var qs []string
			for _, q := range rt.Query {
				qs = append(qs, q.Name)
			}
			path += " `?" + strings.Join(qs, "&") + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d: %s |\n", rt.Method, path, roles,
			cell(rt.Summary), cell(rt.Request), rt.Success, cell(rt.Response))
	}
	return b.String()
}
