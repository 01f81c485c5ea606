package replayer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/loupe-dev/loupe/replayer/replayertest"
	"github.com/loupe-dev/loupe/store"
)

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testLoginKey is the login key of the test servers: nodes of one
// deployment share it.
var testLoginKey = []byte("the login key of the test servers")

// authServer serves the fake store's session s1, with users alice (viewer,
// password "alice's password") and a clock the test moves.
func authServer(t *testing.T) (*httptest.Server, *fakeStore, *clock) {
	t.Helper()
	fs := &fakeStore{Users: replayertest.NewUsers(),
		sessions: []*store.Session{{ID: "s1"}}, events: map[string]string{"s1": `[]`}}
	addUser(t, fs, "alice", store.RoleViewer, "alice's password")
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	return authNode(t, fs, fs, clk), fs, clk
}

// authNode is another replay server over fs and users, with the key of
// authServer's and the clock clk: a node of the same deployment.
func authNode(t *testing.T, fs *fakeStore, users store.Users, clk *clock) *httptest.Server {
	t.Helper()
	srv, err := New(Config{Store: fs, Users: users, LoginKey: testLoginKey, Logger: slog.New(slog.DiscardHandler), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func addUser(t *testing.T, users store.Users, name string, role store.Role, password string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.AddUser(context.Background(), &store.User{Name: name, Role: role, PasswordHash: string(h)}); err != nil {
		t.Fatal(err)
	}
}

// noRedirects is a client with a cookie jar that shows redirects rather
// than following them.
func noRedirects() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func login(t *testing.T, c *http.Client, base, name, password, next string) *http.Response {
	t.Helper()
	resp, err := c.PostForm(base+"/login", url.Values{"name": {name}, "password": {password}, "next": {next}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func status(t *testing.T, c *http.Client, method, u string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader("[]"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestLoginRequired: without a login every route that shows or changes
// anything refuses, pages by sending the browser to the login page.
func TestLoginRequired(t *testing.T) {
	ts, _, _ := authServer(t)
	c := noRedirects()
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 303},
		{"GET", "/sessions/s1?t=5", 303},
		{"GET", "/api/sessions", 401},
		{"GET", "/api/sessions/s1", 401},
		{"GET", "/api/sessions/s1/events", 401},
		{"GET", "/api/sessions/s1/timeline", 401},
		{"GET", "/api/sessions/s1/requests", 401},
		{"GET", "/api/sessions/s1/tags", 401},
		{"PUT", "/api/sessions/s1/tags", 401},
		{"GET", "/api/sessions/s1/notes", 401},
		{"POST", "/api/sessions/s1/notes", 401},
		{"DELETE", "/api/sessions/s1/notes/1", 401},
		{"GET", "/api/sessions/s1/assets.warc", 401},
		{"GET", archivePath + strings.Repeat("a", 64), 401},
		{"GET", "/api/me", 401},
		{"GET", "/api/users", 401},
		{"POST", "/api/users", 401},
		{"PATCH", "/api/users/alice", 401},
		{"DELETE", "/api/users/alice", 401},
		{"GET", "/login", 200},
		{"GET", "/healthz", 200},
		{"GET", "/readyz", 200},
	} {
		got, h := status(t, c, tt.method, ts.URL+tt.path)
		if got != tt.want {
			t.Errorf("%s %s: got %d, want %d", tt.method, tt.path, got, tt.want)
		}
		if got == 303 {
			if loc, want := h.Get("Location"), "/login?next="+url.QueryEscape(tt.path); loc != want {
				t.Errorf("%s %s: sent to %q, want %q", tt.method, tt.path, loc, want)
			}
		}
	}
}

func TestLogin(t *testing.T) {
	ts, _, _ := authServer(t)
	c := noRedirects()
	for _, tt := range []struct{ name, password string }{
		{"alice", "wrong password"}, {"bob", "alice's password"}, {"ALICE", "alice's password"}, {"", ""},
	} {
		if resp := login(t, c, ts.URL, tt.name, tt.password, "/"); resp.StatusCode != 401 {
			t.Errorf("%q/%q: got %d, want 401", tt.name, tt.password, resp.StatusCode)
		}
		if got, _ := status(t, c, "GET", ts.URL+"/api/me"); got != 401 {
			t.Fatalf("after a refused sign-in: /api/me got %d, want 401", got)
		}
	}

	resp := login(t, c, ts.URL, "alice", "alice's password", "/sessions/s1?t=5")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/sessions/s1?t=5" {
		t.Fatalf("sign-in: got %d to %q, want 303 to the page asked for", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("login cookie %+v: want one, HttpOnly, SameSite=Strict", ck)
	}
	if got, _ := status(t, c, "GET", ts.URL+"/api/me"); got != 200 {
		t.Errorf("signed in: /api/me got %d, want 200", got)
	}
	if got, _ := status(t, c, "GET", ts.URL+"/sessions/s1"); got != 200 {
		t.Errorf("signed in: the player page got %d, want 200", got)
	}

	// Sign out ends it.
	req, _ := http.NewRequest("POST", ts.URL+"/logout", nil)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 303 {
		t.Fatalf("sign out: %v %v", resp, err)
	}
	if got, _ := status(t, c, "GET", ts.URL+"/api/me"); got != 401 {
		t.Errorf("signed out: /api/me got %d, want 401", got)
	}
}

// TestLoginNext: the page after signing in is on this server only.
func TestLoginNext(t *testing.T) {
	ts, _, _ := authServer(t)
	for next, want := range map[string]string{
		"/sessions/s1": "/sessions/s1", "": "/", "//evil.test/x": "/", "https://evil.test/": "/",
		`/\evil.test`: "/", "javascript:alert(1)": "/", "sessions": "/",
	} {
		resp := login(t, noRedirects(), ts.URL, "alice", "alice's password", next)
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("next %q: sent to %q, want %q", next, got, want)
		}
	}
}

// loginValue is the value of the login cookie c holds for base.
func loginValue(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	return replayertest.Cookie(t, c, base).Value
}

// meWith is the status of GET base/api/me with the login cookie value.
func meWith(t *testing.T, base, value string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/me", nil)
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLoginCookie: a cookie that is forged, expired, or of a user since
// deleted or given another password does not sign in.
func TestLoginCookie(t *testing.T) {
	ts, fs, clk := authServer(t)
	c := noRedirects()
	login(t, c, ts.URL, "alice", "alice's password", "/")
	good := loginValue(t, c, ts.URL)
	with := func(value string) int { return meWith(t, ts.URL, value) }
	if got := with(good); got != 200 {
		t.Fatalf("the cookie as set: got %d, want 200", got)
	}
	parts := strings.Split(good, "|")
	if len(parts) != 4 {
		t.Fatalf("cookie %q: want name|exp|id|mac", good)
	}
	name, exp, id, mac := parts[0], parts[1], parts[2], parts[3]
	rest := exp + "|" + id + "|" + mac
	for what, v := range map[string]string{
		"another user":     "bob|" + rest,
		"a later expiry":   name + "|9" + exp + "|" + id + "|" + mac,
		"another id":       name + "|" + exp + "|" + strings.Repeat("A", len(id)) + "|" + mac,
		"no id":            name + "|" + exp + "|" + mac,
		"an empty id":      name + "|" + exp + "||" + mac,
		"another mac":      name + "|" + exp + "|" + id + "|" + strings.Repeat("A", len(mac)),
		"no mac":           name + "|" + exp + "|" + id,
		"a fifth part":     good + "|x",
		"garbage":          "%%%",
		"an empty cookie":  "",
		"a name too long":  strings.Repeat("a", 100) + "|" + rest,
		"a non-number exp": name + "|x|" + id + "|" + mac,
	} {
		if got := with(v); got != 401 {
			t.Errorf("%s: got %d, want 401", what, got)
		}
	}

	// Expired: the clock passes the login's lifetime.
	clk.add(DefaultLoginTTL + time.Second)
	if got := with(good); got != 401 {
		t.Errorf("expired: got %d, want 401", got)
	}
	clk.add(-DefaultLoginTTL - time.Second)

	// Another password ends it once the cached user is stale.
	h, _ := bcrypt.GenerateFromPassword([]byte("a new password"), bcrypt.MinCost)
	if err := fs.UpdateUser(context.Background(), &store.User{Name: "alice", Role: store.RoleViewer, PasswordHash: string(h)}); err != nil {
		t.Fatal(err)
	}
	clk.add(userCacheTTL + time.Second)
	if got := with(good); got != 401 {
		t.Errorf("after a password change: got %d, want 401", got)
	}

	// So does deleting the user.
	c2 := noRedirects()
	login(t, c2, ts.URL, "alice", "a new password", "/")
	second := loginValue(t, c2, ts.URL)
	if got := with(second); got != 200 {
		t.Fatalf("new login: got %d, want 200", got)
	}
	fs.DeleteUser(context.Background(), "alice")
	clk.add(userCacheTTL + time.Second)
	if got := with(second); got != 401 {
		t.Errorf("after deleting the user: got %d, want 401", got)
	}
}

// TestOldLoginCookie: a cookie of the format before login ids
// (name|exp|mac, MAC "loupe login v1") no longer signs in, though its MAC
// is right: its user signs in again.
func TestOldLoginCookie(t *testing.T) {
	ts, fs, clk := authServer(t)
	u, err := fs.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	exp := clk.now().Add(time.Hour).Unix()
	m := hmac.New(sha256.New, testLoginKey)
	fmt.Fprintf(m, "loupe login v1\n%s\n%d\n%s", u.Name, exp, u.PasswordHash)
	old := fmt.Sprintf("%s|%d|%s", u.Name, exp, base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
	if got := meWith(t, ts.URL, old); got != 401 {
		t.Errorf("a v1 cookie: got %d, want 401", got)
	}
}

// logout signs c out of the replay server at base and returns the
// response, its body read.
func logout(t *testing.T, c *http.Client, base string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Post(base+"/logout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestLogoutEndsLogin: signing out ends the login on the server, so that a
// copy of its cookie made before is refused: at once on the node signed
// out of, within userCacheTTL on another. Other logins of the user go on.
func TestLogoutEndsLogin(t *testing.T) {
	a, fs, clk := authServer(t)
	b := authNode(t, fs, fs, clk)
	c, other := noRedirects(), noRedirects()
	login(t, c, a.URL, "alice", "alice's password", "/")
	login(t, other, a.URL, "alice", "alice's password", "/")
	copied, otherValue := loginValue(t, c, a.URL), loginValue(t, other, a.URL)
	for _, base := range []string{a.URL, b.URL} { // both nodes cache the login
		if got := meWith(t, base, copied); got != 200 {
			t.Fatalf("%s before sign-out: got %d, want 200", base, got)
		}
	}

	resp, body := logout(t, c, a.URL)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login" {
		t.Fatalf("sign out: %d to %q %s; want 303 to /login", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if ck := resp.Cookies(); len(ck) != 1 || ck[0].Name != loginCookie || ck[0].MaxAge >= 0 {
		t.Errorf("sign-out cookies %+v: want the login cookie deleted", ck)
	}
	if got := meWith(t, a.URL, copied); got != 401 {
		t.Errorf("the copied cookie on the node signed out of: got %d, want 401 at once", got)
	}
	clk.add(userCacheTTL + time.Second)
	if got := meWith(t, b.URL, copied); got != 401 {
		t.Errorf("the copied cookie on another node, after its cache: got %d, want 401", got)
	}
	for _, base := range []string{a.URL, b.URL} {
		if got := meWith(t, base, otherValue); got != 200 {
			t.Errorf("%s: alice's other login: got %d, want 200", base, got)
		}
	}
	// Signing in again makes a new login, which works.
	login(t, c, a.URL, "alice", "alice's password", "/")
	if got := meWith(t, a.URL, loginValue(t, c, a.URL)); got != 200 {
		t.Errorf("a new login after signing out: got %d, want 200", got)
	}
}

// switchedUsers is a store of users the test takes down and brings back.
type switchedUsers struct {
	*replayertest.Users
	down atomic.Bool
}

var errUsersDown = errors.New("connection refused")

func (s *switchedUsers) User(ctx context.Context, name string) (*store.User, error) {
	if s.down.Load() {
		return nil, errUsersDown
	}
	return s.Users.User(ctx, name)
}

func (s *switchedUsers) RevokeLogin(ctx context.Context, id string, until, now time.Time) error {
	if s.down.Load() {
		return errUsersDown
	}
	return s.Users.RevokeLogin(ctx, id, until, now)
}

func (s *switchedUsers) SignInAttempt(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	if s.down.Load() {
		return 0, time.Time{}, errUsersDown
	}
	return s.Users.SignInAttempt(ctx, key, now, window)
}

func (s *switchedUsers) LoginRevoked(ctx context.Context, id string) (bool, error) {
	if s.down.Load() {
		return false, errUsersDown
	}
	return s.Users.LoginRevoked(ctx, id)
}

// TestLogoutStoreDown: signing out while the store is down deletes the
// browser's cookie, but answers 503 saying the login could not be ended
// on the server; a copy of the cookie then still works.
func TestLogoutStoreDown(t *testing.T) {
	_, fs, clk := authServer(t)
	users := &switchedUsers{Users: fs.Users}
	ts := authNode(t, fs, users, clk)
	cached, uncached := noRedirects(), noRedirects()
	login(t, cached, ts.URL, "alice", "alice's password", "/")
	login(t, uncached, ts.URL, "alice", "alice's password", "/")
	cachedValue, uncachedValue := loginValue(t, cached, ts.URL), loginValue(t, uncached, ts.URL)
	if got := meWith(t, ts.URL, cachedValue); got != 200 {
		t.Fatalf("before sign-out: got %d, want 200", got)
	}

	users.down.Store(true)
	// The cached login fails to be revoked; the other, to be read.
	for what, c := range map[string]*http.Client{"a cached login": cached, "a login not cached": uncached} {
		resp, body := logout(t, c, ts.URL)
		if resp.StatusCode != 503 || !strings.Contains(body, "could not be ended") || strings.Contains(body, "refused") {
			t.Errorf("sign out of %s: %d %q; want 503 saying the login was not ended, without the store's error", what, resp.StatusCode, body)
		}
		if ck := resp.Cookies(); len(ck) != 1 || ck[0].Name != loginCookie || ck[0].MaxAge >= 0 {
			t.Errorf("sign out of %s: cookies %+v, want the login cookie deleted all the same", what, ck)
		}
	}

	users.down.Store(false)
	for _, v := range []string{cachedValue, uncachedValue} {
		if got := meWith(t, ts.URL, v); got != 200 {
			t.Errorf("a copy of a cookie not revoked: got %d, want 200 (as the 503 said)", got)
		}
	}
}

// TestLoginRateLimit: a client that keeps guessing is told to wait.
func TestLoginRateLimit(t *testing.T) {
	ts, _, clk := authServer(t)
	c := noRedirects()
	for i := 0; i < loginBurst; i++ {
		if resp := login(t, c, ts.URL, "alice", "guess", "/"); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: got %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp := login(t, c, ts.URL, "alice", "alice's password", "/")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("attempt %d: got %d (Retry-After %q), want 429 with Retry-After",
			loginBurst+1, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	clk.add(loginEvery)
	if resp := login(t, c, ts.URL, "alice", "alice's password", "/"); resp.StatusCode != 303 {
		t.Errorf("after waiting: got %d, want 303", resp.StatusCode)
	}
}

// TestSignInBehindProxy: behind a trusted load balancer, sign-in limits
// are per client as X-Forwarded-For names it, and a login made over HTTPS
// to the balancer (X-Forwarded-Proto) gets a Secure cookie; from a peer
// that is not trusted, both headers are ignored.
func TestSignInBehindProxy(t *testing.T) {
	fs := &fakeStore{Users: replayertest.NewUsers()}
	addUser(t, fs, "alice", store.RoleViewer, "alice's password")
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	node := func(trusted ...netip.Prefix) string {
		srv, err := New(Config{Store: fs, Users: fs, LoginKey: testLoginKey, Logger: slog.New(slog.DiscardHandler),
			Now: clk.now, TrustedProxies: trusted})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		return ts.URL
	}
	signIn := func(base, client, proto, password string) *http.Response {
		t.Helper()
		form := url.Values{"name": {"alice"}, "password": {password}, "next": {"/"}}
		req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", client)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	secure := func(resp *http.Response) bool {
		for _, c := range resp.Cookies() {
			if c.Name == loginCookie {
				return c.Secure
			}
		}
		t.Fatalf("no login cookie in %d answer", resp.StatusCode)
		return false
	}

	behind := node(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	for range loginBurst {
		signIn(behind, "198.51.100.1", "", "guess")
	}
	if got := signIn(behind, "198.51.100.1", "", "guess").StatusCode; got != 429 {
		t.Errorf("the guessing client: got %d, want 429", got)
	}
	resp := signIn(behind, "198.51.100.2", "https", "alice's password")
	if resp.StatusCode != 303 {
		t.Fatalf("another client behind the same balancer: got %d, want 303", resp.StatusCode)
	}
	if !secure(resp) {
		t.Error("signed in over HTTPS to a trusted balancer: the cookie is not Secure")
	}
	if resp := signIn(behind, "198.51.100.3", "http", "alice's password"); secure(resp) {
		t.Error("signed in over plain HTTP: the cookie is Secure")
	}

	direct := node()
	for range loginBurst {
		signIn(direct, "198.51.100.1", "", "guess")
	}
	resp = signIn(direct, "198.51.100.2", "https", "alice's password")
	if resp.StatusCode != 429 {
		t.Errorf("a peer not trusted names another client: got %d, want 429 (its own limit used up)", resp.StatusCode)
	}
	clk.add(loginEvery)
	if resp := signIn(direct, "198.51.100.2", "https", "alice's password"); resp.StatusCode != 303 || secure(resp) {
		t.Errorf("a peer not trusted claims HTTPS: got %d, Secure %v; want 303 and no Secure", resp.StatusCode, secure(resp))
	}
}

// TestCrossOrigin: another site cannot make a signed-in browser change
// anything, nor sign it in.
func TestCrossOrigin(t *testing.T) {
	ts, fs, _ := authServer(t)
	addUser(t, fs, "root", store.RoleAdmin, "root's password")
	c := noRedirects()
	login(t, c, ts.URL, "root", "root's password", "/")
	for _, path := range []string{"/api/users", "/logout", "/login"} {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(`{"name":"eve","role":"admin","password":"0123456789ab"}`))
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.test")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("cross-site POST %s: got %d, want 403", path, resp.StatusCode)
		}
	}
	if _, err := fs.User(context.Background(), "eve"); err == nil {
		t.Error("a cross-site request added a user")
	}
}

// TestRoles: what each role may do.
func TestRoles(t *testing.T) {
	ts, fs, _ := authServer(t)
	addUser(t, fs, "ed", store.RoleEditor, "ed's password!")
	addUser(t, fs, "root", store.RoleAdmin, "root's password")
	as := func(name, password string) *http.Client {
		c := noRedirects()
		if resp := login(t, c, ts.URL, name, password, "/"); resp.StatusCode != 303 {
			t.Fatalf("sign in %s: %d", name, resp.StatusCode)
		}
		return c
	}
	viewer, editor, admin := as("alice", "alice's password"), as("ed", "ed's password!"), as("root", "root's password")
	// The fake store keeps no tags: an allowed PUT reaches the handler,
	// which answers 404; a refused one stops at 403.
	for _, tt := range []struct {
		c            *http.Client
		method, path string
		want         int
	}{
		{viewer, "GET", "/api/sessions", 200},
		{viewer, "PUT", "/api/sessions/s1/tags", 403},
		{viewer, "POST", "/api/sessions/s1/notes", 403},
		{viewer, "GET", "/api/users", 403},
		{editor, "PUT", "/api/sessions/s1/tags", 404},
		{editor, "GET", "/api/users", 403},
		{editor, "DELETE", "/api/users/alice", 403},
		{admin, "GET", "/api/users", 200},
		{admin, "PUT", "/api/sessions/s1/tags", 404},
	} {
		if got, _ := status(t, tt.c, tt.method, ts.URL+tt.path); got != tt.want {
			t.Errorf("%s %s: got %d, want %d", tt.method, tt.path, got, tt.want)
		}
	}
}

// downUsers is a store of users that cannot be reached.
type downUsers struct{ *replayertest.Users }

func (downUsers) User(context.Context, string) (*store.User, error) {
	return nil, errors.New("connection refused")
}

// TestUsersDown: while the users cannot be read, every request that needs
// a login, and a sign-in, answer 503 (not 401: nobody is refused, nobody
// is let in), without the store's error text.
func TestUsersDown(t *testing.T) {
	ts, fs, clk := authServer(t)
	c := noRedirects()
	login(t, c, ts.URL, "alice", "alice's password", "/")
	down, err := New(Config{Store: fs, Users: downUsers{fs.Users}, Logger: slog.New(slog.DiscardHandler), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ds := httptest.NewServer(down)
	t.Cleanup(ds.Close)
	for _, tt := range []struct{ method, path string }{{"GET", "/api/sessions"}, {"GET", "/"}, {"GET", "/api/me"}} {
		req, _ := http.NewRequest(tt.method, ds.URL+tt.path, nil)
		for _, ck := range c.Jar.Cookies(mustURL(t, ts.URL)) {
			req.AddCookie(ck)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || strings.Contains(string(body), "refused") {
			t.Errorf("%s %s: %d %s; want 503 without the store's error", tt.method, tt.path, resp.StatusCode, body)
		}
	}
	if resp := login(t, noRedirects(), ds.URL, "alice", "alice's password", "/"); resp.StatusCode != 503 {
		t.Errorf("sign-in: %d, want 503", resp.StatusCode)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSignInLimitPerSubscriber: addresses of one IPv6 /64 share one budget
// of sign-in attempts (one subscriber holds the whole /64); another /64
// has its own.
func TestSignInLimitPerSubscriber(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	a, err := newAuth(&Config{Users: replayertest.NewUsers(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	try := func(addr string) bool {
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = addr
		soon, err := a.tooSoon(httptest.NewRecorder(), r)
		if err != nil {
			t.Fatal(err)
		}
		return soon
	}
	for i := 0; i < loginBurst; i++ {
		if try(fmt.Sprintf("[2001:db8:0:1::%x]:4000", i)) {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	if !try("[2001:db8:0:1::ffff]:4000") {
		t.Error("another address of the same /64 was let through after the burst")
	}
	if try("[2001:db8:0:2::1]:4000") {
		t.Error("an address of another /64 was refused")
	}
}

// TestSignInLimitShared: the replay servers of one store share a budget of
// sign-in attempts per address: after two servers took their own bursts,
// a third refuses the same address though its own budget is whole, until
// the window ends. Another address is let through.
func TestSignInLimitShared(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	users := replayertest.NewUsers()
	var servers [3]*auth
	for i := range servers {
		a, err := newAuth(&Config{Users: users, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = a
	}
	try := func(a *auth, addr string) (bool, string) {
		t.Helper()
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		soon, err := a.tooSoon(w, r)
		if err != nil {
			t.Fatal(err)
		}
		return soon, w.Header().Get("Retry-After")
	}
	for _, a := range servers[:2] {
		for i := 0; i < loginBurst; i++ {
			if soon, _ := try(a, "192.0.2.7:4000"); soon {
				t.Fatalf("attempt %d on a server of its own refused", i+1)
			}
		}
	}
	clk.add(20 * time.Second)
	if soon, after := try(servers[2], "192.0.2.7:4000"); !soon || after != "40" {
		t.Errorf("attempt %d across servers: refused %v, Retry-After %q; want refused, 40", 2*loginBurst+1, soon, after)
	}
	if soon, _ := try(servers[2], "192.0.2.8:4000"); soon {
		t.Error("another address was refused")
	}
	clk.add(40 * time.Second)
	if soon, _ := try(servers[2], "192.0.2.7:4000"); soon {
		t.Error("refused after the window ended")
	}
}

// signInsDown is a store of users that cannot count sign-in attempts.
type signInsDown struct{ *replayertest.Users }

func (signInsDown) SignInAttempt(context.Context, string, time.Time, time.Duration) (int, time.Time, error) {
	return 0, time.Time{}, errUsersDown
}

// TestSignInCountDown: a sign-in the store cannot count is answered 503
// without the store's error, not let past the shared budget; the same
// store counting again signs the user in.
func TestSignInCountDown(t *testing.T) {
	_, fs, clk := authServer(t)
	ts := authNode(t, fs, signInsDown{fs.Users}, clk)
	if resp := login(t, noRedirects(), ts.URL, "alice", "alice's password", "/"); resp.StatusCode != 503 {
		t.Errorf("sign-in not counted: got %d, want 503", resp.StatusCode)
	}
	ts = authNode(t, fs, fs.Users, clk)
	if resp := login(t, noRedirects(), ts.URL, "alice", "alice's password", "/"); resp.StatusCode != 303 {
		t.Errorf("sign-in counted: got %d, want 303", resp.StatusCode)
	}
}
