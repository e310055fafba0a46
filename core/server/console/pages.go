package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func prettyJSON(v any) string {
	var b []byte
	switch x := v.(type) {
	case json.RawMessage:
		var buf bytes.Buffer
		if json.Indent(&buf, x, "", "  ") == nil {
			return buf.String()
		}
		return string(x)
	default:
		b, _ = json.MarshalIndent(v, "", "  ")
	}
	return string(b)
}

// sizeChart draws a segment's size over time as an inline SVG built from
// numbers only (members and not consented per refresh).
func sizeChart(h []core.SizePoint) template.HTML {
	if len(h) == 0 {
		return template.HTML(`<p class="muted">No refresh recorded yet: the chart starts with the first refresh.</p>`)
	}
	const W, H, pad = 600.0, 180.0, 24.0
	max := 1
	for _, p := range h {
		if p.Members > max {
			max = p.Members
		}
		if p.NotConsented > max {
			max = p.NotConsented
		}
	}
	x := func(i int) float64 {
		if len(h) == 1 {
			return W / 2
		}
		return pad + float64(i)*(W-2*pad)/float64(len(h)-1)
	}
	y := func(v int) float64 { return H - pad - float64(v)*(H-2*pad)/float64(max) }
	line := func(val func(core.SizePoint) int) string {
		var b strings.Builder
		for i, p := range h {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(val(p)))
		}
		return strings.TrimSpace(b.String())
	}
	last := h[len(h)-1]
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="chart-title"><title id="chart-title">Size over %d refreshes, from %s to %s: now %d members, %d not consented</title>`,
		W, H, len(h), fmtTime(h[0].At), fmtTime(last.At), last.Members, last.NotConsented)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" class="axis"/>`, pad, H-pad, W-pad, H-pad)
	fmt.Fprintf(&b, `<text x="2" y="%.0f" class="tick">%d</text><text x="2" y="%.0f" class="tick">0</text>`, pad, max, H-pad)
	fmt.Fprintf(&b, `<polyline class="members" points="%s"/>`, line(func(p core.SizePoint) int { return p.Members }))
	fmt.Fprintf(&b, `<polyline class="notconsented" points="%s"/>`, line(func(p core.SizePoint) int { return p.NotConsented }))
	for i, p := range h {
		fmt.Fprintf(&b, `<circle class="members" cx="%.1f" cy="%.1f" r="3"/>`, x(i), y(p.Members))
	}
	b.WriteString(`</svg><p class="legend"><span class="key members"></span> members <span class="key notconsented"></span> not consented</p>`)
	return template.HTML(b.String())
}

// ---- DPO ----

type requestsData struct {
	Requests []*core.PrivacyRequest
	Overdue  map[string]bool
	Now      time.Time
	Form     requestForm
}

type requestForm struct {
	Type, Regulation, IDType, IDValue string
}

func (c *Console) requestsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showRequests(w, r, s, http.StatusOK, requestForm{Type: core.RequestAccess, Regulation: "gdpr", IDType: "email"}, "")
}

func (c *Console) showRequests(w http.ResponseWriter, r *http.Request, s *session, code int, f requestForm, msg string) {
	rs, err := c.b.Requests(r.Context(), false)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	now := c.now()
	sortQueue(rs, now)
	od := map[string]bool{}
	for _, q := range rs {
		od[q.ID] = q.Overdue(now)
	}
	c.render(w, r, s, code, "requests", page{Title: "Privacy requests", Error: msg,
		Data: requestsData{Requests: rs, Overdue: od, Now: now, Form: f}})
}

func identifierFrom(r *http.Request) (identity.Identifier, bool) {
	t := identity.Type(r.PostFormValue("id_type"))
	v := strings.TrimSpace(r.PostFormValue("id_value"))
	switch t {
	case identity.Email, identity.UserID, identity.Phone, identity.AnonymousID:
	default:
		return identity.Identifier{}, false
	}
	return identity.Identifier{Type: t, Value: v}, v != ""
}

// newRequest runs a privacy request. A deletion is shown back for
// confirmation first and runs only with confirm=yes.
func (c *Console) newRequest(w http.ResponseWriter, r *http.Request, s *session) {
	f := requestForm{Type: r.PostFormValue("type"), Regulation: r.PostFormValue("regulation"),
		IDType: r.PostFormValue("id_type"), IDValue: strings.TrimSpace(r.PostFormValue("id_value"))}
	id, ok := identifierFrom(r)
	if !ok {
		c.showRequests(w, r, s, http.StatusBadRequest, f, "Give the identifier's type (email, user id, phone or anonymous id) and value.")
		return
	}
	switch f.Type {
	case core.RequestAccess, core.RequestDelete, core.RequestSuppressWithDelete, core.RequestSuppress, core.RequestUnsuppress:
	default:
		c.showRequests(w, r, s, http.StatusBadRequest, f, "Choose a request type.")
		return
	}
	if core.ErasesPerson(f.Type) && r.PostFormValue("confirm") != "yes" {
		c.render(w, r, s, http.StatusOK, "confirm", page{Title: "Confirm deletion", Data: f})
		return
	}
	req, rep, err := c.b.HandleRequest(r.Context(), f.Type, f.Regulation, id)
	if req == nil {
		if errors.Is(err, core.ErrInvalidInput) {
			c.showRequests(w, r, s, http.StatusBadRequest, f, err.Error())
			return
		}
		c.fail(w, r, s, err)
		return
	}
	if rep != nil {
		c.mu.Lock()
		s.reports[req.ID] = rep
		c.mu.Unlock()
	}
	// The request is recorded either way (a rejection has its reason in
	// the history): show it.
	http.Redirect(w, r, prefix+"/requests/"+req.ID, http.StatusSeeOther)
}

type requestData struct {
	Req         *core.PrivacyRequest
	Overdue     bool
	Report      *core.AccessReport
	Certificate *core.DeletionCertificate
	// What may still be done to it, as core allows: verify and run a
	// received request, reject one not yet carried out, extend an open
	// one once.
	CanVerify, CanReject, CanExtend bool
	// Erases is a deletion: running it needs the confirmation box ticked.
	Erases bool
	// ExtendBy is how far an extension moves the due date.
	ExtendBy string
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, s *session) {
	req, err := c.b.Request(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.showRequest(w, r, s, http.StatusOK, req, "")
}

func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, s *session, code int, req *core.PrivacyRequest, msg string) {
	d := requestData{Req: req, Overdue: req.Overdue(c.now()), ExtendBy: req.ExtensionPeriod(), Erases: core.ErasesPerson(req.Type),
		CanVerify: req.CanVerify(), CanReject: req.CanReject(), CanExtend: req.CanExtend()}
	c.mu.Lock()
	d.Report = s.reports[req.ID]
	c.mu.Unlock()
	if d.Erases && req.Status == core.StatusCompleted && len(req.Result) > 0 {
		var cert core.DeletionCertificate
		if json.Unmarshal(req.Result, &cert) == nil {
			d.Certificate = &cert
		}
	}
	c.render(w, r, s, code, "request", page{Title: "Privacy request " + req.ID, Error: msg, Data: d})
}

// actOnRequest runs one queue action and shows the request again: its
// history records the outcome. A refusal the DPO can act on (no reason,
// no longer received, extended already) is shown on the page.
func (c *Console) actOnRequest(w http.ResponseWriter, r *http.Request, s *session, act func(id string) (*core.PrivacyRequest, error)) {
	id := r.PathValue("id")
	req, err := act(id)
	if err == nil || (req != nil && !errors.Is(err, core.ErrInvalidInput)) {
		// Done, or carried out and rejected (no one holds the identifier,
		// or a failure, recorded in the history as such).
		if err != nil && !errors.Is(err, core.ErrProfileNotFound) {
			c.log.Error("console privacy request", "request", id, "err", err)
		}
		http.Redirect(w, r, prefix+"/requests/"+id, http.StatusSeeOther)
		return
	}
	if !errors.Is(err, core.ErrInvalidInput) {
		c.fail(w, r, s, err)
		return
	}
	cur, gerr := c.b.Request(r.Context(), id)
	if gerr != nil {
		c.fail(w, r, s, gerr)
		return
	}
	c.showRequest(w, r, s, http.StatusBadRequest, cur, err.Error())
}

// verifyRequest records how the person's identity was verified and carries
// a received request out. A deletion needs the confirmation box, as one
// filed from the console does.
func (c *Console) verifyRequest(w http.ResponseWriter, r *http.Request, s *session) {
	method := strings.TrimSpace(r.PostFormValue("method"))
	c.actOnRequest(w, r, s, func(id string) (*core.PrivacyRequest, error) {
		req, err := c.b.Request(r.Context(), id)
		if err != nil {
			return nil, err
		}
		if core.ErasesPerson(req.Type) && r.PostFormValue("confirm") != "yes" {
			return nil, fmt.Errorf("%w: tick the confirmation to erase this person", core.ErrInvalidInput)
		}
		// Not cancelled with the browser's request: a deletion once
		// started runs to its end, as the API's verify does.
		req, rep, err := c.b.VerifyRequest(context.WithoutCancel(r.Context()), id, method)
		if rep != nil && req != nil {
			c.mu.Lock()
			s.reports[req.ID] = rep
			c.mu.Unlock()
		}
		return req, err
	})
}

func (c *Console) rejectRequest(w http.ResponseWriter, r *http.Request, s *session) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	c.actOnRequest(w, r, s, func(id string) (*core.PrivacyRequest, error) {
		return c.b.RejectRequest(r.Context(), id, reason)
	})
}

func (c *Console) extendRequest(w http.ResponseWriter, r *http.Request, s *session) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	c.actOnRequest(w, r, s, func(id string) (*core.PrivacyRequest, error) {
		return c.b.ExtendRequest(r.Context(), id, reason)
	})
}

func (c *Console) sessionReport(w http.ResponseWriter, r *http.Request, s *session) (*core.AccessReport, bool) {
	c.mu.Lock()
	rep := s.reports[r.PathValue("id")]
	c.mu.Unlock()
	if rep == nil {
		c.render(w, r, s, http.StatusNotFound, "error", page{Title: "Not found",
			Error: "The access report is only kept in the session that made it; run the access request again."})
		return nil, false
	}
	return rep, true
}

func (c *Console) reportJSON(w http.ResponseWriter, r *http.Request, s *session) {
	rep, ok := c.sessionReport(w, r, s)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="access-report-%s.json"`, r.PathValue("id")))
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func (c *Console) reportHTML(w http.ResponseWriter, r *http.Request, s *session) {
	rep, ok := c.sessionReport(w, r, s)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := core.RenderAccessHTML(&b, *rep); err != nil {
		c.fail(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("download") == "1" {
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="access-report-%s.html"`, r.PathValue("id")))
	}
	_, _ = w.Write(b.Bytes())
}

type personData struct {
	IDType, IDValue string
	Person          *core.ProfileView
	Memberships     []core.MembershipView
	Purposes        []string
	Denied          []string
}

func (c *Console) peoplePage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, http.StatusOK, "people", page{Title: "People", Data: personData{IDType: "email"}})
}

// personPage looks a person up (identifier in the POST body, never in the
// URL) after asking the policy gate, as GET /v1/admin/profiles does.
func (c *Console) personPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showPerson(w, r, s, "", "")
}

func (c *Console) showPerson(w http.ResponseWriter, r *http.Request, s *session, notice, formErr string) {
	d := personData{IDType: r.PostFormValue("id_type"), IDValue: strings.TrimSpace(r.PostFormValue("id_value"))}
	id, ok := identifierFrom(r)
	if !ok {
		c.render(w, r, s, http.StatusBadRequest, "people", page{Title: "People", Error: "Give the identifier's type and value.", Data: d})
		return
	}
	dec, err := c.b.Decide(r.Context(), id, core.GateRequest{Action: policies.ActionProfileRead, Role: string(s.role)})
	if err != nil {
		if errors.Is(err, core.ErrProfileNotFound) || errors.Is(err, core.ErrInvalidInput) {
			msg := "No person holds that identifier."
			if errors.Is(err, core.ErrInvalidInput) {
				msg = err.Error()
			}
			c.render(w, r, s, http.StatusNotFound, "people", page{Title: "People", Error: msg, Data: d})
			return
		}
		c.fail(w, r, s, err)
		return
	}
	if !dec.Allow {
		d.Denied = dec.Reasons
		c.render(w, r, s, http.StatusForbidden, "people", page{Title: "People", Error: "The policy gate denied this profile read.", Data: d})
		return
	}
	p, err := c.b.Profile(r.Context(), id, core.ShowOptions{EventLimit: 20})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d.Person = p
	if d.Memberships, err = c.b.Memberships(r.Context(), id); err != nil {
		c.fail(w, r, s, err)
		return
	}
	d.Purposes = c.purposes()
	c.render(w, r, s, http.StatusOK, "person", page{Title: "Person", Notice: notice, Error: formErr, Data: d})
}

func (c *Console) purposes() []string {
	var out []string
	for _, p := range c.b.Purposes() {
		out = append(out, p.Key)
	}
	return out
}

func (c *Console) recordConsent(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := identifierFrom(r)
	if !ok {
		c.render(w, r, s, http.StatusBadRequest, "people", page{Title: "People", Error: "Give the identifier's type and value."})
		return
	}
	req := core.ConsentRequest{Identifier: id, Purpose: r.PostFormValue("purpose"), Status: r.PostFormValue("status"),
		LawfulBasis: r.PostFormValue("lawful_basis"), Source: "console", Notice: strings.TrimSpace(r.PostFormValue("notice"))}
	if _, err := c.b.RecordConsent(r.Context(), req); err != nil {
		if errors.Is(err, core.ErrInvalidInput) || errors.Is(err, core.ErrProfileNotFound) {
			c.showPerson(w, r, s, "", "Consent not recorded: "+err.Error())
			return
		}
		c.fail(w, r, s, err)
		return
	}
	c.showPerson(w, r, s, fmt.Sprintf("Recorded: %s %s.", req.Purpose, req.Status), "")
}

type auditData struct {
	Verify  audit.VerifyReport
	Entries []audit.Entry
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := c.b.AuditVerify(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	es, err := c.b.AuditTail(r.Context(), 50)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	// Newest first.
	sort.Slice(es, func(i, j int) bool { return es[i].Seq > es[j].Seq })
	c.render(w, r, s, http.StatusOK, "audit", page{Title: "Audit log", Data: auditData{Verify: v, Entries: es}})
}

// ---- Marketer ----

type segmentRow struct {
	Def  *segments.Definition
	Show core.SegmentShow
	Last *core.SizePoint
}

type segmentsData struct {
	Segments  []segmentRow
	Templates []segments.Template
	Template  *segments.Template // chosen for the parameter form
	Params    map[string]string
	JSON      string
	Errors    []fieldError
	Mode      string // template or json: which form the errors belong to
}

type fieldError struct{ Path, Message string }

func (c *Console) segmentsPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := segmentsData{JSON: "{\n  \"name\": \"\",\n  \"purpose\": \"marketing.communications.email\",\n  \"where\": {}\n}"}
	if t := r.URL.Query().Get("template"); t != "" {
		d.Template = findTemplate(t)
	}
	c.showSegments(w, r, s, http.StatusOK, d)
}

func findTemplate(name string) *segments.Template {
	for _, t := range segments.Templates() {
		if t.Name == name {
			return &t
		}
	}
	return nil
}

func (c *Console) showSegments(w http.ResponseWriter, r *http.Request, s *session, code int, d segmentsData) {
	defs, err := c.b.Segments(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, def := range defs {
		sh, err := c.b.ShowSegment(r.Context(), def.Name)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		row := segmentRow{Def: def, Show: sh}
		if n := len(sh.History); n > 0 {
			row.Last = &sh.History[n-1]
		}
		d.Segments = append(d.Segments, row)
	}
	d.Templates = segments.Templates()
	if d.Params == nil && d.Template != nil {
		d.Params = map[string]string{}
		for _, p := range d.Template.Params {
			d.Params[p.Name] = p.Default
		}
	}
	msg := ""
	if len(d.Errors) > 0 {
		msg = "The segment was not created: see the errors below."
	}
	c.render(w, r, s, code, "segments", page{Title: "Segments", Error: msg, Data: d})
}

// segmentErrors splits a validation error into its fields for inline
// display.
func segmentErrors(err error) []fieldError {
	var list segments.ErrorList
	if errors.As(err, &list) {
		out := make([]fieldError, 0, len(list))
		for _, e := range list {
			out = append(out, fieldError{Path: e.Path, Message: e.Message})
		}
		return out
	}
	var one *segments.Error
	if errors.As(err, &one) {
		return []fieldError{{Path: one.Path, Message: one.Message}}
	}
	return []fieldError{{Message: err.Error()}}
}

func (c *Console) createSegment(w http.ResponseWriter, r *http.Request, s *session) {
	d := segmentsData{Mode: r.PostFormValue("mode"), JSON: r.PostFormValue("definition")}
	var def *segments.Definition
	var err error
	switch d.Mode {
	case "template":
		d.Template = findTemplate(r.PostFormValue("template"))
		if d.Template == nil {
			d.Errors = []fieldError{{Path: "template", Message: "choose a template"}}
			c.showSegments(w, r, s, http.StatusBadRequest, d)
			return
		}
		d.Params = map[string]string{}
		for _, p := range d.Template.Params {
			d.Params[p.Name] = strings.TrimSpace(r.PostFormValue("param_" + p.Name))
		}
		def, err = c.b.ApplyTemplate(r.Context(), d.Template.Name, d.Params)
	case "json":
		if strings.TrimSpace(d.JSON) == "" {
			d.Errors = []fieldError{{Path: "definition", Message: "paste a segment definition (JSON or YAML)"}}
			c.showSegments(w, r, s, http.StatusBadRequest, d)
			return
		}
		def, err = c.b.ApplySegmentData(r.Context(), []byte(d.JSON))
	default:
		d.Errors = []fieldError{{Message: "unknown form"}}
		c.showSegments(w, r, s, http.StatusBadRequest, d)
		return
	}
	if err != nil {
		var list segments.ErrorList
		var one *segments.Error
		if !errors.Is(err, core.ErrInvalidInput) && !errors.As(err, &list) && !errors.As(err, &one) {
			c.fail(w, r, s, err)
			return
		}
		d.Errors = segmentErrors(err)
		c.showSegments(w, r, s, http.StatusBadRequest, d)
		return
	}
	// A first refresh records the memberships and the first point of the
	// size chart (the server's sweep adds the next ones).
	if _, err := c.b.RefreshSegment(r.Context(), def.Name, time.Time{}); err != nil {
		c.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, prefix+"/segments/"+def.Name, http.StatusSeeOther)
}

type segmentData struct {
	Show         core.SegmentShow
	Last         *core.SizePoint
	Eval         *core.SegmentEval
	Destinations []string
	Overlap      []overlapRow
}

type overlapRow struct {
	Segment string
	Shared  int
}

func (c *Console) segmentPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showSegment(w, r, s, nil)
}

func (c *Console) showSegment(w http.ResponseWriter, r *http.Request, s *session, ev *core.SegmentEval) {
	sh, err := c.b.ShowSegment(r.Context(), r.PathValue("name"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := segmentData{Show: sh, Eval: ev}
	if n := len(sh.History); n > 0 {
		d.Last = &sh.History[n-1]
	}
	for name := range c.b.Config().Destinations {
		d.Destinations = append(d.Destinations, name)
	}
	sort.Strings(d.Destinations)
	for k, v := range sh.Overlap {
		d.Overlap = append(d.Overlap, overlapRow{k, v})
	}
	sort.Slice(d.Overlap, func(i, j int) bool { return d.Overlap[i].Segment < d.Overlap[j].Segment })
	c.render(w, r, s, http.StatusOK, "segment", page{Title: "Segment " + sh.Name, Data: d})
}

// previewSegment counts the segment now through the gate: how many are
// allowed, how many were not consented; never who.
func (c *Console) previewSegment(w http.ResponseWriter, r *http.Request, s *session) {
	ev, err := c.b.EvaluateSegment(r.Context(), r.PathValue("name"), time.Time{})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.showSegment(w, r, s, &ev)
}

// ---- Admin ----

type keysData struct {
	Keys    []core.APIKey
	Created *core.NewAPIKey
	Roles   []string
	Self    string
}

func (c *Console) keysPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showKeys(w, r, s, http.StatusOK, nil, "", "")
}

func (c *Console) showKeys(w http.ResponseWriter, r *http.Request, s *session, code int, created *core.NewAPIKey, notice, msg string) {
	ks, err := c.b.APIKeys(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, s, code, "keys", page{Title: "API keys", Notice: notice, Error: msg, Data: keysData{Keys: ks, Created: created,
		Roles: []string{"ingest", "marketer", "dpo", "admin", "personalize"}, Self: s.keyID}})
}

func (c *Console) createKey(w http.ResponseWriter, r *http.Request, s *session) {
	role, err := core.ParseRole(r.PostFormValue("role"))
	if err != nil {
		c.showKeys(w, r, s, http.StatusBadRequest, nil, "", "Choose a role.")
		return
	}
	k, err := c.b.CreateAPIKey(r.Context(), role, strings.TrimSpace(r.PostFormValue("name")))
	if err != nil {
		if errors.Is(err, core.ErrInvalidInput) {
			c.showKeys(w, r, s, http.StatusBadRequest, nil, "", err.Error())
			return
		}
		c.fail(w, r, s, err)
		return
	}
	c.showKeys(w, r, s, http.StatusCreated, &k, "", "")
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, s *session) {
	k, err := c.b.RevokeAPIKey(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	// Sessions signed in with it end now (they would at their next
	// request anyway, when the key fails to authenticate).
	c.mu.Lock()
	for t, o := range c.sessions {
		if o.keyID == k.ID {
			delete(c.sessions, t)
		}
	}
	c.mu.Unlock()
	if k.ID == s.keyID {
		http.Redirect(w, r, prefix+"/login", http.StatusSeeOther)
		return
	}
	c.showKeys(w, r, s, http.StatusOK, nil, fmt.Sprintf("Revoked %s (%s).", k.Name, k.ID), "")
}

type systemData struct {
	Policy     core.PolicyStatus
	Failed     []policies.TestResult
	Keys       keys.Status
	LastRotate time.Time
}

func (c *Console) systemPage(w http.ResponseWriter, r *http.Request, s *session) {
	ps, err := c.b.PolicyStatus(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	ks, err := c.b.KeyStatus(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := systemData{Policy: ps, Keys: ks}
	for _, t := range ps.Tests.Results {
		if !t.Pass && !t.Skip {
			d.Failed = append(d.Failed, t)
		}
	}
	// A rotation starts by creating the new epoch, which is current from
	// then on; the old one is retired only when every data key is
	// re-wrapped, so retirement times miss a rotation still pending (or
	// show the one before it). Epoch 1 is the vault's first key: never
	// rotated.
	if ks.Epoch > 1 {
		d.LastRotate = ks.EpochCreatedAt
	}
	c.render(w, r, s, http.StatusOK, "system", page{Title: "Policies & keys", Data: d})
}
