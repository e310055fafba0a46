package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/custody-cdp/custody/core"
	"github.com/custody-cdp/custody/core/audit"
	"github.com/custody-cdp/custody/core/keys"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/privacy"
	"github.com/custody-cdp/custody/segments"
)

// Backend is what the console needs from the CDP (*core.CDP has it all).
type Backend interface {
	Authenticate(ctx context.Context, key string) (core.APIKey, error)

	// DPO.
	Requests(ctx context.Context, overdue bool) ([]*core.PrivacyRequest, error)
	Request(ctx context.Context, id string) (*core.PrivacyRequest, error)
	HandleRequest(ctx context.Context, typ, regulation string, id identity.Identifier) (*core.PrivacyRequest, *core.AccessReport, error)
	// A request filed with receive_only waits in the queue for these.
	VerifyRequest(ctx context.Context, id, method string) (*core.PrivacyRequest, *core.AccessReport, error)
	RejectRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error)
	ExtendRequest(ctx context.Context, id, reason string) (*core.PrivacyRequest, error)
	Decide(ctx context.Context, id identity.Identifier, gr core.GateRequest) (policies.Decision, error)
	Profile(ctx context.Context, id identity.Identifier, so core.ShowOptions) (*core.ProfileView, error)
	Memberships(ctx context.Context, id identity.Identifier) ([]core.MembershipView, error)
	RecordConsent(ctx context.Context, req core.ConsentRequest) (privacy.Consent, error)
	AuditVerify(ctx context.Context) (audit.VerifyReport, error)
	AuditTail(ctx context.Context, n int) ([]audit.Entry, error)

	// Marketer.
	Segments(ctx context.Context) ([]*segments.Definition, error)
	ShowSegment(ctx context.Context, name string) (core.SegmentShow, error)
	EvaluateSegment(ctx context.Context, name string, now time.Time) (core.SegmentEval, error)
	ApplySegmentData(ctx context.Context, data []byte) (*segments.Definition, error)
	ApplyTemplate(ctx context.Context, name string, params map[string]string) (*segments.Definition, error)
	ExportSegment(ctx context.Context, name, destination string, now time.Time, opts ...core.ExportOption) (core.ExportReport, error)
	RefreshSegment(ctx context.Context, name string, now time.Time) (core.RefreshReport, error)
	Config() core.Config

	// Admin.
	APIKeys(ctx context.Context) ([]core.APIKey, error)
	CreateAPIKey(ctx context.Context, role core.Role, name string) (core.NewAPIKey, error)
	RevokeAPIKey(ctx context.Context, id string) (core.APIKey, error)
	PolicyStatus(ctx context.Context) (core.PolicyStatus, error)
	KeyStatus(ctx context.Context) (keys.Status, error)
	Purposes() []policies.Purpose
}

// Options configure a Console.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// SessionTTL is how long a session lives without use.
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure even when the request did not
	// arrive over TLS (behind a TLS-terminating proxy).
	SecureCookies bool
}

// DefaultOptions returns a 30-minute idle session lifetime.
func DefaultOptions() Options {
	return Options{SessionTTL: 30 * time.Minute}
}

//go:embed assets
var assets embed.FS

const (
	prefix       = "/console"
	sessionName  = "custody_console"
	preLoginName = "custody_console_login"
)

// Console is the web console's handler. It owns the sessions and the
// export jobs; Close drops the first and waits for the second.
type Console struct {
	b     Backend
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	mux   *http.ServeMux
	pages map[string]*template.Template

	ctx    context.Context // cancelled by Close: stops export jobs
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	sessions  map[string]*session
	jobs      map[string]*exportJob
	lastSweep time.Time
}

// session is one signed-in browser. The key is kept (in memory only) to
// authenticate it again on every request.
type session struct {
	token   string
	key     string
	csrf    string
	keyID   string
	keyName string
	role    core.Role
	expires time.Time
	// reports are the access reports made in this session, by request id.
	reports map[string]*core.AccessReport
}

// New builds a Console over b.
func New(b Backend, opts Options) (*Console, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultOptions().SessionTTL
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{b: b, opts: opts, log: opts.Logger, now: opts.Now, pages: pages, ctx: ctx, cancel: cancel,
		sessions: map[string]*session{}, jobs: map[string]*exportJob{}}
	c.routes()
	return c, nil
}

// Close signs everyone out and waits for running exports to stop.
func (c *Console) Close() error {
	c.mu.Lock()
	c.closed = true
	c.sessions = map[string]*session{}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// ServeHTTP serves /console/...
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing from elsewhere: scripts, styles and images only from here.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on same-origin POSTs, which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

// parsePages parses the layout with each page template.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time":      fmtTime,
		"date":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"json":      prettyJSON,
		"sizechart": sizeChart,
		"hasrole":   func(r core.Role, roles ...string) bool { return hasRole(r, roles...) },
		"join":      strings.Join,
	}
	layout, err := fs.ReadFile(assets, "assets/templates/layout.html")
	if err != nil {
		return nil, err
	}
	partials, err := fs.ReadFile(assets, "assets/templates/partials.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(assets, "assets/templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(n[len("assets/templates/"):], ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		body, err := fs.ReadFile(assets, n)
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(funcs).Parse(string(layout) + string(partials))
		if err != nil {
			return nil, fmt.Errorf("console template layout: %w", err)
		}
		if _, err := t.Parse(string(body)); err != nil {
			return nil, fmt.Errorf("console template %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

func hasRole(r core.Role, roles ...string) bool {
	for _, x := range roles {
		if string(r) == x {
			return true
		}
	}
	return false
}

// page is what every template gets.
type page struct {
	Title  string
	Role   core.Role
	Name   string
	CSRF   string
	Nav    []navItem
	Error  string
	Notice string
	Data   any
}

type navItem struct {
	Href, Label string
	Current     bool
}

// nav lists the pages a role may open.
func nav(role core.Role, current string) []navItem {
	var items []navItem
	add := func(href, label string) {
		items = append(items, navItem{Href: href, Label: label, Current: strings.HasPrefix(current, href)})
	}
	if hasRole(role, "dpo", "admin") {
		add(prefix+"/requests", "Privacy requests")
		add(prefix+"/people", "People")
		add(prefix+"/audit", "Audit log")
	}
	if hasRole(role, "marketer", "admin") {
		add(prefix+"/segments", "Segments")
	}
	if role == core.RoleAdmin {
		add(prefix+"/admin/keys", "API keys")
		add(prefix+"/admin/system", "Policies & keys")
	}
	return items
}

// home is where a role lands after signing in.
func home(role core.Role) string {
	switch role {
	case core.RoleDPO:
		return prefix + "/requests"
	case core.RoleMarketer:
		return prefix + "/segments"
	case core.RoleAdmin:
		return prefix + "/admin/keys"
	}
	return prefix + "/login"
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, code int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if s != nil {
		p.Role, p.Name, p.CSRF = s.role, s.keyName, s.csrf
		p.Nav = nav(s.role, r.URL.Path)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Pages can hold personal data: never kept by the browser's cache.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, b.String())
}

// fail renders an error page; causes the user cannot act on are logged,
// not shown.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code, msg := http.StatusInternalServerError, "Something went wrong; the server log has the details."
	switch {
	case errors.Is(err, core.ErrProfileNotFound):
		code, msg = http.StatusNotFound, "No person holds that identifier."
	case errors.Is(err, core.ErrRequestNotFound):
		code, msg = http.StatusNotFound, "No privacy request with that id."
	case errors.Is(err, core.ErrSegmentNotFound):
		code, msg = http.StatusNotFound, "No segment with that name."
	case errors.Is(err, core.ErrAPIKeyNotFound):
		code, msg = http.StatusNotFound, "No API key with that id."
	case errors.Is(err, core.ErrInvalidInput), errors.Is(err, core.ErrInvalidRole):
		code, msg = http.StatusBadRequest, err.Error()
	default:
		c.log.Error("console request failed", "route", r.Pattern, "err", err)
	}
	c.render(w, r, s, code, "error", page{Title: http.StatusText(code), Error: msg})
}

func (c *Console) forbidden(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, http.StatusForbidden, "error", page{Title: "Forbidden",
		Error: fmt.Sprintf("A %s key may not open this page.", s.role)})
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.opts.SecureCookies }

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: prefix + "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
}

// sweep drops expired sessions and finished export jobs older than a
// session lifetime; called with c.mu held, at most once a minute.
func (c *Console) sweep(now time.Time) {
	if now.Sub(c.lastSweep) < time.Minute {
		return
	}
	c.lastSweep = now
	for t, s := range c.sessions {
		if now.After(s.expires) {
			delete(c.sessions, t)
		}
	}
	for id, j := range c.jobs {
		if j.done() && now.Sub(j.started) > c.opts.SessionTTL {
			delete(c.jobs, id)
		}
	}
}

// session returns the request's live session, re-authenticating its key,
// or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(sessionName)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	c.sweep(now)
	s := c.sessions[ck.Value]
	if s != nil && now.After(s.expires) {
		delete(c.sessions, ck.Value)
		s = nil
	}
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	rec, err := c.b.Authenticate(r.Context(), s.key)
	if err != nil || rec.ID != s.keyID {
		// Revoked since sign-in (or the store failed: sign in again).
		c.mu.Lock()
		delete(c.sessions, s.token)
		c.mu.Unlock()
		return nil
	}
	c.mu.Lock()
	s.expires = now.Add(c.opts.SessionTTL)
	c.mu.Unlock()
	return s
}

// sameOrigin refuses a POST whose Origin header names another site
// (browsers send it on every cross-origin POST).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func tokenEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// handler wraps a page: signed in (or sent to the sign-in page), one of
// roles (or 403), and for POST a valid CSRF token (or 403). The request's
// context carries the key as the audit actor, as the API's does.
func (c *Console) handler(h func(w http.ResponseWriter, r *http.Request, s *session), roles ...core.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, prefix+"/login", http.StatusSeeOther)
				return
			}
			c.render(w, r, nil, http.StatusUnauthorized, "error", page{Title: "Signed out", Error: "Your session has ended; sign in again."})
			return
		}
		allowed := false
		for _, role := range roles {
			allowed = allowed || s.role == role
		}
		if !allowed {
			c.forbidden(w, r, s)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 128<<10)
			if !sameOrigin(r) || !tokenEqual(r.PostFormValue("csrf"), s.csrf) {
				c.render(w, r, s, http.StatusForbidden, "error", page{Title: "Forbidden", Error: "The form's security token is missing or stale; reload the page and try again."})
				return
			}
		}
		ctx := core.WithActor(r.Context(), "key-"+s.keyID)
		h(w, r.WithContext(ctx), s)
	}
}

func (c *Console) routes() {
	m := http.NewServeMux()
	c.mux = m
	dpo := []core.Role{core.RoleDPO, core.RoleAdmin}
	marketer := []core.Role{core.RoleMarketer, core.RoleAdmin}
	admin := []core.Role{core.RoleAdmin}

	static, _ := fs.Sub(assets, "assets/static")
	m.Handle("GET "+prefix+"/static/", http.StripPrefix(prefix+"/static/", http.FileServerFS(static)))
	m.HandleFunc("GET "+prefix+"/login", c.loginPage)
	m.HandleFunc("POST "+prefix+"/login", c.login)
	m.HandleFunc("POST "+prefix+"/logout", c.handler(c.logout, core.RoleDPO, core.RoleMarketer, core.RoleAdmin, core.RoleIngest, core.RolePersonalize))
	m.HandleFunc("GET "+prefix+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			http.Redirect(w, r, prefix+"/login", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, home(s.role), http.StatusSeeOther)
	})

	m.HandleFunc("GET "+prefix+"/requests", c.handler(c.requestsPage, dpo...))
	m.HandleFunc("POST "+prefix+"/requests", c.handler(c.newRequest, dpo...))
	m.HandleFunc("GET "+prefix+"/requests/{id}", c.handler(c.requestPage, dpo...))
	m.HandleFunc("POST "+prefix+"/requests/{id}/verify", c.handler(c.verifyRequest, dpo...))
	m.HandleFunc("POST "+prefix+"/requests/{id}/reject", c.handler(c.rejectRequest, dpo...))
	m.HandleFunc("POST "+prefix+"/requests/{id}/extend", c.handler(c.extendRequest, dpo...))
	m.HandleFunc("GET "+prefix+"/requests/{id}/report.json", c.handler(c.reportJSON, dpo...))
	m.HandleFunc("GET "+prefix+"/requests/{id}/report.html", c.handler(c.reportHTML, dpo...))
	m.HandleFunc("GET "+prefix+"/people", c.handler(c.peoplePage, dpo...))
	m.HandleFunc("POST "+prefix+"/people", c.handler(c.personPage, dpo...))
	m.HandleFunc("POST "+prefix+"/people/consent", c.handler(c.recordConsent, dpo...))
	m.HandleFunc("GET "+prefix+"/audit", c.handler(c.auditPage, dpo...))

	m.HandleFunc("GET "+prefix+"/segments", c.handler(c.segmentsPage, marketer...))
	m.HandleFunc("POST "+prefix+"/segments", c.handler(c.createSegment, marketer...))
	m.HandleFunc("GET "+prefix+"/segments/{name}", c.handler(c.segmentPage, marketer...))
	m.HandleFunc("POST "+prefix+"/segments/{name}/preview", c.handler(c.previewSegment, marketer...))
	m.HandleFunc("POST "+prefix+"/segments/{name}/export", c.handler(c.startExport, marketer...))
	m.HandleFunc("GET "+prefix+"/exports/{id}", c.handler(c.exportPage, marketer...))
	m.HandleFunc("GET "+prefix+"/exports/{id}/status", c.handler(c.exportStatus, marketer...))

	m.HandleFunc("GET "+prefix+"/admin/keys", c.handler(c.keysPage, admin...))
	m.HandleFunc("POST "+prefix+"/admin/keys", c.handler(c.createKey, admin...))
	m.HandleFunc("POST "+prefix+"/admin/keys/{id}/revoke", c.handler(c.revokeKey, admin...))
	m.HandleFunc("GET "+prefix+"/admin/system", c.handler(c.systemPage, admin...))
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s := c.session(r); s != nil {
		http.Redirect(w, r, home(s.role), http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomToken()
	c.setCookie(w, r, preLoginName, tok, 600)
	c.render(w, r, nil, code, "login", page{Title: "Sign in", CSRF: tok, Error: msg})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	pre, err := r.Cookie(preLoginName)
	if err != nil || !sameOrigin(r) || !tokenEqual(r.PostFormValue("csrf"), pre.Value) {
		c.showLogin(w, r, http.StatusForbidden, "The sign-in form expired; try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	rec, err := c.b.Authenticate(r.Context(), key)
	if err != nil {
		if !errors.Is(err, core.ErrUnauthorized) {
			c.log.Error("console sign-in", "err", err)
		}
		c.showLogin(w, r, http.StatusUnauthorized, "That API key is not valid (unknown or revoked).")
		return
	}
	if !hasRole(rec.Role, "dpo", "marketer", "admin") {
		c.showLogin(w, r, http.StatusForbidden, fmt.Sprintf("A %s key cannot use the console; use a dpo, marketer or admin key.", rec.Role))
		return
	}
	s := &session{token: randomToken(), key: key, csrf: randomToken(), keyID: rec.ID, keyName: rec.Name, role: rec.Role,
		expires: c.now().Add(c.opts.SessionTTL), reports: map[string]*core.AccessReport{}}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	c.sessions[s.token] = s
	c.mu.Unlock()
	c.setCookie(w, r, preLoginName, "", -1)
	c.setCookie(w, r, sessionName, s.token, 0)
	c.log.Info("console sign-in", "key", rec.ID, "role", rec.Role)
	http.Redirect(w, r, home(rec.Role), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.mu.Lock()
	delete(c.sessions, s.token)
	c.mu.Unlock()
	c.setCookie(w, r, sessionName, "", -1)
	http.Redirect(w, r, prefix+"/login", http.StatusSeeOther)
}

// sortQueue puts open overdue requests first (most overdue first), then
// other open requests by due date, then closed ones, newest first.
func sortQueue(rs []*core.PrivacyRequest, now time.Time) {
	rank := func(r *core.PrivacyRequest) int {
		switch {
		case r.Overdue(now):
			return 0
		case r.Status != core.StatusCompleted && r.Status != core.StatusRejected:
			return 1
		}
		return 2
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if rank(a) == 2 {
			return a.ReceivedAt.After(b.ReceivedAt)
		}
		return a.DueAt.Before(b.DueAt)
	})
}
