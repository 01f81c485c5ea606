package replayer

// Logins. Every route but the login page, the health checks and the UI
// bundle needs a signed-in user, and what a user may do is its role's
// (store.Role). A login is a cookie signed with Config.LoginKey over the
// user's name, its expiry, a random login id and the user's password hash:
// every node that shares the key and the store accepts it, and changing a
// password or deleting the user ends it. Signing out records the login id
// as revoked in the store (store.Users.RevokeLogin), which ends that login
// alone, copies of its cookie included. The user and the revocation are
// read from the store at most every userCacheTTL per cookie, so a change
// made on another node takes effect within that (on this one, at once).

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
)

const (
	// DefaultLoginTTL is how long a login lasts when Config.LoginTTL is 0.
	DefaultLoginTTL = 12 * time.Hour
	// MinPassword and MaxPassword bound a password's length in bytes
	// (bcrypt reads at most 72).
	MinPassword = 10
	MaxPassword = 72

	loginCookie  = "loupe_login" // the proxy keeps it from sites (proxy.replayLoginCookie)
	userCacheTTL = 5 * time.Second
	maxCached    = 10_000
	maxLoginBody = 16 << 10
)

// Sign-in attempts per client address: on each replay server, a burst of
// loginBurst, then one every loginEvery; across all the replay servers of
// a store, at most sharedSignIns in a window of signInWindow.
const (
	loginBurst    = 10
	loginEvery    = 6 * time.Second
	sharedSignIns = 2 * loginBurst
	signInWindow  = time.Minute
)

// HashPassword checks a new password's length and returns its bcrypt hash.
func HashPassword(password string) (string, error) {
	switch {
	case len(password) < MinPassword:
		return "", fmt.Errorf("password is shorter than %d characters", MinPassword)
	case len(password) > MaxPassword:
		return "", fmt.Errorf("password is longer than %d bytes", MaxPassword)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// NewPassword returns a random password: 26 letters and digits, 128 bits.
func NewPassword() string { return rand.Text() }

// dummyHash is compared against when the user does not exist, so that an
// unknown name takes as long to refuse as a wrong password. Made on first
// use: a bcrypt hash costs tens of milliseconds, and most processes that
// link this package (a proxy, a collector) never sign anyone in.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("loupe: no such user"), bcrypt.DefaultCost)
	return h
})

// auth holds the login state of a Server.
type auth struct {
	users store.Users
	key   []byte
	ttl   time.Duration
	now   func() time.Time

	attempts *collector.Limiter[netip.Addr] // sign-ins per client (ClientKey)
	trusted  []netip.Prefix                 // Config.TrustedProxies

	mu    sync.Mutex
	cache map[string]cachedLogin // by cookie value
}

// signedIn is a login cookie that passed its checks.
type signedIn struct {
	user *store.User
	id   string    // the cookie's random login id
	exp  time.Time // when the cookie expires
}

type cachedLogin struct {
	login *signedIn
	until time.Time
}

func newAuth(cfg *Config) (*auth, error) {
	users := cfg.Users
	if users == nil {
		users, _ = cfg.Store.(store.Users)
	}
	if users == nil {
		return nil, errors.New("replayer needs a store of users: it shows nothing without a login")
	}
	key := cfg.LoginKey
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("login key is %d bytes, want at least 32", len(key))
	}
	ttl := cfg.LoginTTL
	if ttl <= 0 {
		ttl = DefaultLoginTTL
	}
	return &auth{users: users, key: key, ttl: ttl, now: cfg.Now, cache: map[string]cachedLogin{},
		attempts: collector.NewLimiter[netip.Addr](rate.Every(loginEvery), loginBurst, maxCached),
		trusted:  cfg.TrustedProxies}, nil
}

// sign is the MAC of the login id of user name until exp (Unix seconds).
// v2 added the id; a v1 cookie (name|exp|mac) is refused, and its user
// signs in again.
func (a *auth) sign(name string, exp int64, id, passwordHash string) []byte {
	m := hmac.New(sha256.New, a.key)
	fmt.Fprintf(m, "loupe login v2\n%s\n%d\n%s\n%s", name, exp, id, passwordHash)
	return m.Sum(nil)
}

// cookie returns the login cookie of a new login of u. Its value is
// name|exp|id|mac: the user's name, the expiry in Unix seconds, the login
// id (rand.Text: 26 letters and digits, 128 bits) and the base64url MAC
// of sign.
func (a *auth) cookie(u *store.User, secure bool) *http.Cookie {
	exp := a.now().Add(a.ttl)
	id := rand.Text()
	mac := a.sign(u.Name, exp.Unix(), id, u.PasswordHash)
	value := u.Name + "|" + strconv.FormatInt(exp.Unix(), 10) + "|" + id + "|" + base64.RawURLEncoding.EncodeToString(mac)
	// MaxAge, not Expires: the browser's clock may differ.
	return loginCookieOf(value, int(a.ttl.Seconds()), secure)
}

// loginCookieOf is the login cookie with value, kept maxAge seconds (a
// negative maxAge deletes it).
func loginCookieOf(value string, maxAge int, secure bool) *http.Cookie {
	return &http.Cookie{Name: loginCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// user returns the signed-in user of r, or nil if there is none (see
// current).
func (a *auth) user(r *http.Request) (*store.User, error) {
	l, err := a.current(r)
	if l == nil {
		return nil, err
	}
	return l.user, nil
}

// current returns the login of r's cookie, or nil if there is none: no
// cookie, or one that is expired, forged, of the old format without a
// login id, signed out, or of a user since deleted or given another
// password.
func (a *auth) current(r *http.Request) (*signedIn, error) {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return nil, nil
	}
	now := a.now()
	a.mu.Lock()
	cached, ok := a.cache[c.Value]
	a.mu.Unlock()
	if ok && now.Before(cached.until) {
		return cached.login, nil
	}
	parts := strings.Split(c.Value, "|")
	if len(parts) != 4 {
		return nil, nil
	}
	name, id := parts[0], parts[2]
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= exp {
		return nil, nil
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || store.CheckUserName(name) != nil || store.CheckLoginID(id) != nil {
		return nil, nil
	}
	u, err := a.users.User(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	if !hmac.Equal(mac, a.sign(name, exp, id, u.PasswordHash)) {
		return nil, nil
	}
	revoked, err := a.users.LoginRevoked(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("read revoked logins: %w", err)
	}
	if revoked {
		return nil, nil
	}
	l := &signedIn{user: u, id: id, exp: time.Unix(exp, 0)}
	a.mu.Lock()
	if len(a.cache) >= maxCached {
		clear(a.cache)
	}
	until := now.Add(userCacheTTL)
	if l.exp.Before(until) {
		until = l.exp
	}
	a.cache[c.Value] = cachedLogin{l, until}
	a.mu.Unlock()
	return l, nil
}

// revoke ends the login of r's cookie l: it records l's id as revoked
// until the cookie expires, and drops the cookie from the cache, so that
// this node refuses a copy of it at once (others within userCacheTTL).
func (a *auth) revoke(r *http.Request, l *signedIn) error {
	if c, err := r.Cookie(loginCookie); err == nil {
		a.mu.Lock()
		delete(a.cache, c.Value)
		a.mu.Unlock()
	}
	if err := a.users.RevokeLogin(r.Context(), l.id, l.exp, a.now()); err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	return nil
}

// forget drops what the cache holds of the named user, so that a change
// made through this server applies to its next request here at once (other
// nodes see it within userCacheTTL).
func (a *auth) forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.cache {
		if strings.HasPrefix(k, name+"|") {
			delete(a.cache, k)
		}
	}
}

// client is the address of the browser that sent r: its peer's, or the
// one a trusted proxy in front names (collector.ClientIP).
func (a *auth) client(r *http.Request) netip.Addr { return collector.ClientIP(r, a.trusted) }

// secure reports whether r came over HTTPS, to the server or to a trusted
// proxy in front of it that ended TLS: the login cookie is then Secure.
func (a *auth) secure(r *http.Request) bool { return collector.ForwardedHTTPS(r, a.trusted) }

// tooSoon takes one sign-in attempt from the client's address, from this
// server's budget and then from the one the store keeps for every replay
// server (store.Users.SignInAttempt), and if either is spent, sets
// Retry-After and reports true. An error is the store's.
func (a *auth) tooSoon(w http.ResponseWriter, r *http.Request) (bool, error) {
	key, now := collector.ClientKey(a.client(r)), a.now()
	d := a.attempts.Wait(key, now)
	if d <= 0 {
		n, began, err := a.users.SignInAttempt(r.Context(), key.String(), now, signInWindow)
		if err != nil {
			return false, err
		}
		if n > sharedSignIns {
			d = max(began.Add(signInWindow).Sub(now), time.Second)
		}
	}
	if d > 0 {
		w.Header().Set("Retry-After", collector.RetryAfter(d))
	}
	return d > 0, nil
}

// check returns the user of name if password is theirs, nil if not.
func (a *auth) check(ctx context.Context, name, password string) (*store.User, error) {
	u, err := a.users.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) || store.CheckUserName(name) != nil {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, nil
	}
	return u, nil
}

type userKey struct{}

// userOf is the signed-in user of a request that passed need.
func userOf(r *http.Request) *store.User {
	u, _ := r.Context().Value(userKey{}).(*store.User)
	return u
}

// need serves fn to users whose role allows role. Others get a 401 (no
// login) or a 403 (a role that may not); a page (one of the UI's HTML
// pages) sends a browser without a login to the login page instead.
func (s *Server) need(role store.Role, page bool, fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		u, err := s.auth.user(r)
		if err != nil {
			return s.usersDown(r, err)
		}
		if u == nil {
			if page {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return nil
			}
			return &Error{http.StatusUnauthorized, "sign in first"}
		}
		if !u.Role.Allows(role) {
			return &Error{http.StatusForbidden, fmt.Sprintf("the %s role may not do this", u.Role)}
		}
		return fn(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// usersDown is the answer when the users cannot be read: 503, as while
// the store is unavailable nobody can be let in (and it is no fault of the
// request's).
func (s *Server) usersDown(r *http.Request, err error) error {
	if r.Context().Err() != nil {
		return err // the client went away
	}
	s.log.Warn("users unavailable", "path", r.URL.Path, "err", err)
	return &Error{http.StatusServiceUnavailable, "the store is unavailable; try again shortly"}
}

// localPath returns next if it is a path on this server, else "/".
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || next[0] != '/' || strings.HasPrefix(next, "//") ||
		strings.Contains(next, `\`) || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

var loginHTML = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Loupe</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><main class="login">
<h1>Loupe</h1>
<form method="post" action="/login">
{{if .Message}}<p class="login-message" role="alert">{{.Message}}</p>{{end}}
<label>User name <input name="name" autocomplete="username" required value="{{.Name}}" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{{.Next}}">
<button type="submit">Sign in</button>
</form></main></body></html>
`))

type loginData struct{ Name, Next, Message string }

func (s *Server) renderLogin(w http.ResponseWriter, status int, d loginData) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return loginHTML.Execute(w, d)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) error {
	return s.renderLogin(w, http.StatusOK, loginData{Next: localPath(r.URL.Query().Get("next"))})
}

// login checks a user name and password from the login form and, if they
// match, sets the login cookie and sends the browser on to the form's next.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		return &Error{http.StatusBadRequest, "could not read the form"}
	}
	name, password := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("password")
	d := loginData{Name: name, Next: localPath(r.PostForm.Get("next"))}
	if soon, err := s.auth.tooSoon(w, r); err != nil {
		return s.usersDown(r, err)
	} else if soon {
		d.Message = fmt.Sprintf("Too many attempts: try again in %s seconds.", w.Header().Get("Retry-After"))
		return s.renderLogin(w, http.StatusTooManyRequests, d)
	}
	u, err := s.auth.check(r.Context(), name, password)
	if err != nil {
		return s.usersDown(r, err)
	}
	if u == nil {
		s.log.Info("sign-in refused", "user", name, "client", s.auth.client(r))
		d.Message = "Wrong user name or password. An admin can set a new one (the account page, or loupe users passwd)."
		return s.renderLogin(w, http.StatusUnauthorized, d)
	}
	http.SetCookie(w, s.auth.cookie(u, s.auth.secure(r)))
	s.log.Info("signed in", "user", u.Name, "role", u.Role, "client", s.auth.client(r))
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
	return nil
}

// logout ends the browser's login: it deletes the cookie and records the
// login as revoked, so that a copy of the cookie no longer signs in. If
// the store is down, the cookie is deleted all the same, and the answer is
// a 503 saying that a copy of it still works.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, loginCookieOf("", -1, s.auth.secure(r)))
	l, err := s.auth.current(r)
	if err == nil && l != nil {
		err = s.auth.revoke(r, l)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return err // the client went away
		}
		s.log.Warn("sign-out could not end the login: the store is unavailable", "client", s.auth.client(r), "err", err)
		return &Error{http.StatusServiceUnavailable, "Signed out of this browser, but the store is unavailable, " +
			"so the login could not be ended on the server: a copy of its cookie works until it expires. " +
			"Changing the password ends it at once."}
	}
	if l != nil {
		s.log.Info("signed out", "user", l.user.Name, "client", s.auth.client(r))
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
