// Package replayer is Loupe's replay server: the JSON API over recorded
// sessions, the web UI that lists them and the player that replays them with
// rrweb's replayer. It listens on its own address (the admin listener),
// never on the customer's origin: the replay iframe shares the player page's
// origin, so a site's own origin must never host it.
package replayer

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Reader is the part of the store the replay server reads.
type Reader interface {
	Sessions(ctx context.Context, f store.SessionFilter) ([]*store.Session, error)
	Session(ctx context.Context, id string) (*store.Session, error)
	WriteEvents(ctx context.Context, id string, w io.Writer) error
	Ping(ctx context.Context) error
}

// Config configures a Server.
type Config struct {
	// Store is read for sessions and events. Required.
	Store Reader
	// Assets is the asset archive replays are served from. If nil, the
	// Store is used when it implements Assets too; if it does not, events
	// are always served as recorded and the archive routes answer 404.
	Assets Assets
	// UI holds the built UI bundle (app.js, app.css). If nil or empty,
	// pages explain that the bundle must be built.
	UI fs.FS
	// Logger receives one line per failed request. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time

	// Users are the people who may sign in (auth.go). If nil, the Store
	// is used when it implements store.Users; New fails if it does not.
	Users store.Users
	// LoginKey signs login cookies, at least 32 bytes: the replay nodes
	// of one deployment share it (cmd/loupe derives it from the secret).
	// If nil, a random key: logins last as long as the process.
	LoginKey []byte
	// LoginTTL is how long a login lasts; DefaultLoginTTL if 0.
	LoginTTL time.Duration
	// TrustedProxies are the peers (load balancers) whose X-Forwarded-For
	// names the client, for the sign-in limits, and whose
	// X-Forwarded-Proto: https marks the login cookie Secure, as TLS to
	// this server does.
	TrustedProxies []netip.Prefix
}

// Server serves the replay UI and API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	auth *auth
	mux  http.Handler
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("replayer needs a store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Assets == nil {
		cfg.Assets, _ = cfg.Store.(Assets)
	}
	a, err := newAuth(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, auth: a}
	// Logins are cookies: a state-changing request must come from this
	// server's own pages (Sec-Fetch-Site or Origin), not another site's.
	s.mux = http.NewCrossOriginProtection().Handler(s.routes())
	return s, nil
}

// routes lists every route of the replay server and the role each needs.
func (s *Server) routes() *http.ServeMux {
	as := func(role store.Role, page bool) func(func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		return func(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
			return s.need(role, page, fn)
		}
	}
	page := as(store.RoleViewer, true) // the UI's HTML pages
	viewer, editor, admin := as(store.RoleViewer, false), as(store.RoleEditor, false), as(store.RoleAdmin, false)
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page(s.sessionsPage))
	mux.Handle("GET /sessions/{id}", page(s.playerPage))
	mux.Handle("GET /api/sessions", viewer(s.listSessions))
	mux.Handle("GET /api/sessions/{id}", viewer(s.getSession))
	mux.Handle("GET /api/sessions/{id}/events", viewer(s.getEvents))
	mux.Handle("GET /api/sessions/{id}/timeline", viewer(s.getTimeline))
	mux.Handle("GET /api/sessions/{id}/requests", viewer(s.getRequests))
	mux.Handle("GET /api/sessions/{id}/tags", viewer(s.getTags))
	mux.Handle("PUT /api/sessions/{id}/tags", editor(s.putTags))
	mux.Handle("GET /api/sessions/{id}/notes", viewer(s.getNotes))
	mux.Handle("POST /api/sessions/{id}/notes", editor(s.postNote))
	mux.Handle("DELETE /api/sessions/{id}/notes/{note}", editor(s.deleteNote))
	mux.Handle("GET /api/sessions/{id}/assets.warc", viewer(s.getWARC))
	mux.Handle("GET "+archivePath+"{hash}", viewer(s.getArchived))
	mux.Handle("GET /account", page(s.accountPage))
	mux.Handle("GET /api/me", viewer(s.getMe))
	mux.Handle("PUT /api/me/password", viewer(s.putMyPassword))
	mux.Handle("GET /api/users", admin(s.listUsers))
	mux.Handle("POST /api/users", admin(s.postUser))
	mux.Handle("PATCH /api/users/{name}", admin(s.patchUser))
	mux.Handle("DELETE /api/users/{name}", admin(s.deleteUser))
	mux.Handle("GET /login", s.handle(s.loginPage))
	mux.Handle("POST /login", s.handle(s.login))
	mux.Handle("POST /logout", s.handle(s.logout))
	mux.Handle("GET /healthz", s.handle(s.healthz))
	mux.Handle("GET /readyz", s.handle(s.readyz))
	if s.cfg.UI != nil {
		mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(s.cfg.UI)))
	}
	return mux
}

// ServeHTTP sets the headers every answer carries and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Replayed pages load the recorded site's images, fonts and styles, but
	// never its scripts: the replay iframe is sandboxed without
	// allow-scripts, and this policy keeps script to the UI bundle.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; "+
		"style-src 'self' 'unsafe-inline' http: https:; img-src 'self' data: blob: http: https:; "+
		"font-src 'self' data: http: https:; media-src 'self' data: blob: http: https:; "+
		"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Replayed asset loads must not tell the site which session is watched.
	h.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// Error is an error with the status and message a client may see.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// handle adapts a handler that returns an error: the client gets a status
// and a safe message, the operator a log line.
func (s *Server) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		status, msg := http.StatusInternalServerError, "internal error"
		var e *Error
		switch {
		case errors.As(err, &e):
			status, msg = e.Status, e.Msg
		case errors.Is(err, store.ErrNotFound):
			status, msg = http.StatusNotFound, "session not found"
		case r.Context().Err() != nil:
			return // the client went away
		}
		if status >= 500 {
			s.log.Error("replayer request", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, status, map[string]string{"error": msg})
			return
		}
		http.Error(w, msg, status)
	})
}

// sessionJSON is a session as the API shows it. Later versions add fields;
// none is ever removed or renamed.
type sessionJSON struct {
	ID          string    `json:"id"`
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	DurationMS  int64     `json:"duration_ms"`
	PageCount   int       `json:"page_count"`
	ClickCount  int       `json:"click_count"`
	EventCount  int       `json:"event_count"`
	EntryURL    string    `json:"entry_url"`
	UserAgent   string    `json:"user_agent"`
	Bytes       int64     `json:"bytes"`        // events as received, uncompressed
	StoredBytes int64     `json:"stored_bytes"` // what the store holds for them

	// Added with ingest enrichment (issue 5). Empty strings and zeros
	// mean unknown.
	InputCount     int    `json:"input_count"`
	ErrorCount     int    `json:"error_count"`
	Browser        string `json:"browser"`
	BrowserVersion string `json:"browser_version"`
	OS             string `json:"os"`
	Device         string `json:"device"` // desktop, mobile, tablet or bot
	Country        string `json:"country"`
	Language       string `json:"language"`
	ViewportW      int    `json:"viewport_width"`
	ViewportH      int    `json:"viewport_height"`
	Referrer       string `json:"referrer"`
	UTMSource      string `json:"utm_source"`
	UTMMedium      string `json:"utm_medium"`
	UTMCampaign    string `json:"utm_campaign"`

	// Added with behaviour signals (issue 6); see api.go.
	behaviourJSON
}

func toJSON(s *store.Session) sessionJSON {
	return sessionJSON{
		ID:          s.ID,
		StartedAt:   s.StartedAt.UTC(),
		EndedAt:     s.EndedAt.UTC(),
		DurationMS:  s.Duration().Milliseconds(),
		PageCount:   s.PageCount,
		ClickCount:  s.ClickCount,
		EventCount:  s.EventCount,
		EntryURL:    s.EntryURL,
		UserAgent:   s.UserAgent,
		Bytes:       s.Bytes,
		StoredBytes: s.StoredBytes,

		InputCount:     s.InputCount,
		ErrorCount:     s.ErrorCount,
		Browser:        s.Client.Browser,
		BrowserVersion: s.Client.BrowserVersion,
		OS:             s.Client.OS,
		Device:         s.Client.Device,
		Country:        s.Client.Country,
		Language:       s.Language,
		ViewportW:      s.ViewportW,
		ViewportH:      s.ViewportH,
		Referrer:       s.Referrer,
		UTMSource:      s.UTMSource,
		UTMMedium:      s.UTMMedium,
		UTMCampaign:    s.UTMCampaign,
	}
}

// getEvents streams the session's rrweb events as one JSON array, gzipped
// when the client accepts it. Sessions can be large; nothing is buffered.
//
// ?assets=archive (the default, which the player uses) rewrites every asset
// URL the archive holds to its archived copy closest to the session's
// start; ?assets=live serves the events exactly as recorded. &download=1
// saves the answer as session-<id>.json.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	q := r.URL.Query()
	mode := q.Get("assets")
	switch mode {
	case "", "archive":
		mode = "archive"
	case "live":
	default:
		return &Error{http.StatusBadRequest, "assets must be archive or live"}
	}
	download := false
	switch q.Get("download") {
	case "", "0":
	case "1":
		download = true
	default:
		return &Error{http.StatusBadRequest, "download must be 1 or 0"}
	}
	sess, err := s.cfg.Store.Session(r.Context(), id)
	if err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "private, no-store")
	h.Add("Vary", "Accept-Encoding")
	if download {
		h.Set("Content-Disposition", attachment("session-"+id+".json"))
	}
	var out io.Writer = w
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		defer zw.Close()
		out = zw
	}
	if mode == "archive" && s.cfg.Assets != nil {
		err = s.writeArchivedEvents(r.Context(), out, s.cfg.Assets, sess)
	} else {
		err = s.cfg.Store.WriteEvents(r.Context(), id, out)
	}
	if err != nil {
		// Headers are gone; all that is left is to log and cut the body
		// short, which the client sees as invalid JSON.
		if r.Context().Err() == nil {
			s.log.Error("stream events", "session", id, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
	return nil
}

// readyz reports whether the store answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.Warn("store not ready", "err", err)
		return &Error{http.StatusServiceUnavailable, "store unavailable"}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
	return nil
}

// shell is the HTML of every UI page; the bundle reads data-* to know what
// to show.
var shell = template.Must(template.New("shell").Funcs(template.FuncMap{"friction": func() string { return frictionJSON }}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Loupe</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><header class="account">Signed in as <a href="/account"><b>{{.User}}</b></a> ({{.Role}})
<form method="post" action="/logout"><button type="submit">Sign out</button></form></header>
<div id="app" data-page="{{.Page}}" data-user="{{.User}}" data-role="{{.Role}}" data-friction="{{friction}}"{{if .Session}} data-session="{{.Session}}"{{end}}{{if .T}} data-t="{{.T}}"{{end}}>
{{if not .Built}}<p>The UI bundle is not built. Run <code>make build</code>.</p>{{end}}</div>
<script src="/ui/app.js"></script></body></html>
`))

type shellData struct {
	Title, Page, Session, T string
	User, Role              string // the signed-in user's
	Built                   bool
}

// frictionJSON is the friction formula the UI explains scores with, as the
// store computes them: {"terms": store.FrictionTerms, "converted": …}.
var frictionJSON = func() string {
	b, err := json.Marshal(map[string]any{"terms": store.FrictionTerms, "converted": store.FrictionConverted})
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func (s *Server) uiBuilt() bool {
	if s.cfg.UI == nil {
		return false
	}
	_, err := fs.Stat(s.cfg.UI, "app.js")
	return err == nil
}

// accountPage is the signed-in user's page: its password, and for an
// admin, the users.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) error {
	return s.renderShell(w, r, shellData{Title: "Account", Page: "account"})
}

func (s *Server) sessionsPage(w http.ResponseWriter, r *http.Request) error {
	return s.renderShell(w, r, shellData{Title: "Sessions", Page: "sessions"})
}

// playerPage serves the player; ?t=<ms from session start> opens it paused
// at that moment.
func (s *Server) playerPage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.cfg.Store.Session(r.Context(), id); err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	d := shellData{Title: "Session " + id, Page: "player", Session: id}
	if t := r.URL.Query().Get("t"); t != "" {
		ms, err := intParam(t, 0, 1<<40)
		if err != nil {
			return &Error{http.StatusBadRequest, "t must be milliseconds from the session start: " + err.Error()}
		}
		d.T = strconv.Itoa(ms)
	}
	return s.renderShell(w, r, d)
}

func (s *Server) renderShell(w http.ResponseWriter, r *http.Request, d shellData) error {
	d.Built = s.uiBuilt()
	u := userOf(r)
	d.User, d.Role = u.Name, string(u.Role)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	return shell.Execute(w, d)
}

// intParam parses an optional non-negative integer query parameter.
func intParam(v string, min, max int) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("want an integer from %d to %d, got %q", min, max, v)
	}
	return n, nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			q, _ = strconv.ParseFloat(v, 64)
		}
		return q > 0
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "private, no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
