// Package replayertest signs tests in to a replay server, and keeps users in
// memory for tests whose store keeps none.
package replayertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/loupe-dev/loupe/store"
)

// AddUser makes a user of role in users, named after the role (kept as it
// is if it exists: a second sign-in must not end the first), and returns
// its name and password.
func AddUser(tb testing.TB, users store.Users, role store.Role) (name, password string) {
	tb.Helper()
	name, password = "test-"+string(role), "password of a test user"
	// The lowest cost: tests sign in often, and nothing here guards a secret.
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	u := &store.User{Name: name, Role: role, PasswordHash: string(h)}
	if err := users.AddUser(context.Background(), u); err != nil && !errors.Is(err, store.ErrExists) {
		tb.Fatalf("add user %s: %v", name, err)
	}
	return name, password
}

// SignIn makes a user of role in users (AddUser) and signs it in through
// the replay server's login form at base, with c, which then carries the
// login (in its cookie jar, made if c has none) and is registered for
// ClientFor.
func SignIn(tb testing.TB, c *http.Client, base string, users store.Users, role store.Role) {
	tb.Helper()
	signIn(tb, c, base, users, role)
	Register(tb, base, c)
}

// Client returns a new client signed in as SignIn does, but not
// registered: for a second user of one server.
func Client(tb testing.TB, base string, users store.Users, role store.Role) *http.Client {
	tb.Helper()
	c := &http.Client{}
	signIn(tb, c, base, users, role)
	return c
}

func signIn(tb testing.TB, c *http.Client, base string, users store.Users, role store.Role) {
	tb.Helper()
	name, password := AddUser(tb, users, role)
	if c.Jar == nil {
		c.Jar, _ = cookiejar.New(nil)
	}
	resp, err := c.PostForm(strings.TrimSuffix(base, "/")+"/login", url.Values{"name": {name}, "password": {password}})
	if err != nil {
		tb.Fatalf("sign in: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		tb.Fatalf("sign in as %s: %s, ended at %s", name, resp.Status, resp.Request.URL)
	}
}

// signedIn holds the clients Register was given, by replay server.
var signedIn sync.Map // base URL → *http.Client

// Register makes c the client ClientFor returns for URLs on the replay
// server at base, until the test ends.
func Register(tb testing.TB, base string, c *http.Client) {
	base = strings.TrimSuffix(base, "/")
	signedIn.Store(base, c)
	tb.Cleanup(func() { signedIn.CompareAndDelete(base, c) })
}

// ClientFor returns the client registered for the replay server u is on
// (SignIn, Register), or http.DefaultClient, which is signed in nowhere.
func ClientFor(u string) *http.Client {
	c := http.DefaultClient
	signedIn.Range(func(k, v any) bool {
		if strings.HasPrefix(u, k.(string)+"/") {
			c = v.(*http.Client)
			return false
		}
		return true
	})
	return c
}

// SignInSteps sign a browser in through the login page at base, as name,
// and wait for the sessions page.
func SignInSteps(base, name, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(strings.TrimSuffix(base, "/")+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#app[data-page="sessions"]`)))
}

// Cookie is the login cookie of a client SignIn signed in, for a browser.
func Cookie(tb testing.TB, c *http.Client, base string) *http.Cookie {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "loupe_login" {
			return ck
		}
	}
	tb.Fatalf("no login cookie for %s", base)
	return nil
}

// Users is a store.Users in memory, safe for concurrent use.
type Users struct {
	mu      sync.Mutex
	m       map[string]store.User
	revoked map[string]time.Time // login id → until
	signIns map[string]signInWindow
}

type signInWindow struct {
	began, ends time.Time
	attempts    int
}

var _ store.Users = (*Users)(nil)

// NewUsers returns an empty Users.
func NewUsers() *Users {
	return &Users{m: map[string]store.User{}, revoked: map[string]time.Time{}, signIns: map[string]signInWindow{}}
}

func (s *Users) AddUser(_ context.Context, u *store.User) error {
	if err := u.Check(); err != nil {
		return err
	}
	if u.CreatedAt == 0 {
		u.CreatedAt = time.Now().UnixMilli()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[u.Name]; ok {
		return fmt.Errorf("add user %q: %w", u.Name, store.ErrExists)
	}
	s.m[u.Name] = *u
	return nil
}

func (s *Users) AddFirstUser(ctx context.Context, u *store.User) (bool, error) {
	if err := u.Check(); err != nil {
		return false, err
	}
	if u.CreatedAt == 0 {
		u.CreatedAt = time.Now().UnixMilli()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) > 0 {
		return false, nil
	}
	s.m[u.Name] = *u
	return true, nil
}

func (s *Users) User(_ context.Context, name string) (*store.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.m[name]
	if !ok {
		return nil, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	return &u, nil
}

func (s *Users) ListUsers(context.Context) ([]store.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.User, 0, len(s.m))
	for _, u := range s.m {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b store.User) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *Users) UpdateUser(_ context.Context, u *store.User) error {
	if err := u.Check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[u.Name]
	if !ok {
		return fmt.Errorf("user %q: %w", u.Name, store.ErrNotFound)
	}
	if u.Role != store.RoleAdmin && s.lastAdmin(u.Name) {
		return fmt.Errorf("update user %q: %w", u.Name, store.ErrLastAdmin)
	}
	old.Role, old.PasswordHash = u.Role, u.PasswordHash
	s.m[u.Name] = old
	return nil
}

func (s *Users) DeleteUser(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[name]; !ok {
		return fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if s.lastAdmin(name) {
		return fmt.Errorf("delete user %q: %w", name, store.ErrLastAdmin)
	}
	delete(s.m, name)
	return nil
}

// lastAdmin reports whether the named user is the only admin. s.mu is
// held.
func (s *Users) lastAdmin(name string) bool {
	if s.m[name].Role != store.RoleAdmin {
		return false
	}
	for _, u := range s.m {
		if u.Role == store.RoleAdmin && u.Name != name {
			return false
		}
	}
	return true
}

func (s *Users) RevokeLogin(_ context.Context, id string, until, now time.Time) error {
	if err := store.CheckLoginID(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.revoked {
		if !t.After(now) {
			delete(s.revoked, k)
		}
	}
	if t, ok := s.revoked[id]; !ok || until.After(t) {
		s.revoked[id] = until
	}
	return nil
}

func (s *Users) SignInAttempt(_ context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	if err := store.CheckLoginID(key); err != nil {
		return 0, time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.signIns {
		if !w.ends.After(now) {
			delete(s.signIns, k)
		}
	}
	w, ok := s.signIns[key]
	if !ok {
		w = signInWindow{began: now.Truncate(time.Millisecond), ends: now.Add(window)}
	}
	w.attempts++
	s.signIns[key] = w
	return w.attempts, w.began, nil
}

func (s *Users) LoginRevoked(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[id]
	return ok, nil
}
