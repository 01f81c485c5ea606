package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/loupe-dev/loupe/replayer/replayertest"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/sqlite"
)

// signIn signs in to m's replay server, through its login form, as the
// admin m made at start, and registers the client for adminGet, getJSON
// and getBody (replayertest.ClientFor) until the test ends.
func signIn(t testing.TB, m *Main) *http.Client {
	t.Helper()
	if c := replayertest.ClientFor(m.AdminURL + "/"); c != http.DefaultClient {
		return c
	}
	if m.firstLogin.name == "" {
		t.Fatal("the replay server made no first user")
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(m.AdminURL+"/login", url.Values{"name": {m.firstLogin.name}, "password": {m.firstLogin.password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("sign in: %s at %s", resp.Status, resp.Request.URL)
	}
	replayertest.Register(t, m.AdminURL, c)
	return c
}

// adminGet GETs u with the client signed in to the replay server u is on,
// or with none if no test signed in there.
func adminGet(u string) (*http.Response, error) { return replayertest.ClientFor(u).Get(u) }

// browserSignIn signs the browser in to m's replay server through its
// login form, as the admin m made at start.
func browserSignIn(t *testing.T, ctx context.Context, m *Main) {
	t.Helper()
	browserLogin(t, ctx, m.AdminURL, m.firstLogin.name, m.firstLogin.password)
}

// browserLogin signs the browser in to the replay server at base through
// its login form.
func browserLogin(tb testing.TB, ctx context.Context, base, name, password string) {
	tb.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, replayertest.SignInSteps(base, name, password)); err != nil {
		tb.Fatalf("sign in to the replay UI at %s: %v", base, err)
	}
}

// TestFirstUser: a replay server on a store without users makes an admin
// and prints its password once; the next start on the store makes none.
func TestFirstUser(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Main, string) {
		m := &Main{Config: Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: dir},
			Roles: roleReplayer, Logger: newLogger(new(bytes.Buffer))}
		if err := m.Open(context.Background()); err != nil {
			m.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		var out bytes.Buffer
		m.describe(&out)
		return m, out.String()
	}
	m, out := start()
	if m.firstLogin.name != "admin" || !strings.Contains(out, "admin / "+m.firstLogin.password) {
		t.Fatalf("first start printed %q; want the admin's password (%q)", out, m.firstLogin.password)
	}
	// Without a login the UI sends the browser to sign in; with one it shows.
	resp, err := http.Get(m.AdminURL + "/api/sessions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no login: got %d, want 401", resp.StatusCode)
	}
	var list struct{ Sessions []any }
	signIn(t, m)
	getJSON(t, m.AdminURL+"/api/sessions", &list)
	m.Close()

	m2, out2 := start()
	if m2.firstLogin.name != "" || strings.Contains(out2, "sign in as") || !strings.Contains(out2, "loupe users passwd") {
		t.Errorf("second start made a user (%q) or printed one, or not how to manage them: %q", m2.firstLogin.name, out2)
	}
	// The login of the first start holds on the second: one key, from the
	// secret in the data folder.
	c := signIn(t, m)
	resp, err = c.Get(m2.AdminURL + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the first start's login on the second: got %d, want 200", resp.StatusCode)
	}
}

func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	var errOut bytes.Buffer
	users := func(stdinText string, args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		errOut.Reset()
		stdin = strings.NewReader(stdinText)
		t.Cleanup(func() { stdin = nil })
		err := run(context.Background(), append(append([]string{"users"}, args...), "--data", dir), &out, &errOut)
		return out.String(), err
	}
	out, err := users("", "add", "ed", "--role", "editor")
	if err != nil || !strings.HasPrefix(out, "ed's password: ") {
		t.Fatalf("add: %q, %v", out, err)
	}
	if !strings.Contains(errOut.String(), "there was no database in "+dir) {
		t.Errorf("the first command, in a folder without a database, warned %q; want it to say it made one", errOut.String())
	}
	made := strings.TrimSpace(strings.TrimPrefix(out, "ed's password: "))
	if _, err := users("", "add", "ed"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("add twice: %v, want an error saying it exists", err)
	}
	if _, err := users("long enough password\n", "add", "--password-stdin", "vi"); err != nil {
		t.Fatalf("add from stdin: %v", err)
	}
	if errOut.Len() > 0 {
		t.Errorf("a command on an existing database warned %q", errOut.String())
	}
	if _, err := users("short\n", "passwd", "vi", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Errorf("short password: %v, want it refused", err)
	}
	if _, err := users("", "role", "vi", "admin"); err != nil {
		t.Fatal(err)
	}
	out, err = users("", "list")
	if err != nil || !regexpLines(out, `^NAME\s+ROLE\s+ADDED$`, `^ed\s+editor\s`, `^vi\s+admin\s`) {
		t.Errorf("list: %q, %v", out, err)
	}
	for _, bad := range [][]string{
		{"add", "Bad Name"}, {"add", "x", "--role", "owner"}, {"role", "vi", "root"}, {"add"}, {"frob"}, {"list", "extra"},
	} {
		if _, err := users("", bad...); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	if _, err := users("", "remove", "nobody"); err == nil || !strings.Contains(err.Error(), `no user "nobody"`) {
		t.Errorf("remove unknown: %v", err)
	}
	if _, err := users("", "passwd", "nobody"); err == nil || !strings.Contains(err.Error(), `no user "nobody"`) {
		t.Errorf("passwd unknown: %v", err)
	}

	// vi is the only admin: neither another role nor removed.
	for _, args := range [][]string{{"role", "vi", "editor"}, {"role", "vi", "viewer"}, {"remove", "vi"}} {
		if _, err := users("", args...); err == nil || !strings.Contains(err.Error(), "vi is the only admin") {
			t.Errorf("%v: %v, want an error saying vi is the only admin", args, err)
		}
	}
	// The binary says so and exits 1.
	cmd := exec.Command(loupeBin, "users", "remove", "vi", "--data", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 ||
		!strings.Contains(stderr.String(), "loupe: vi is the only admin") {
		t.Errorf("loupe users remove vi: %v, %q; want exit status 1 and the reason", err, stderr.String())
	}

	// What the command stored is what the replay server checks.
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "loupe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]struct {
		role     store.Role
		password string
	}{"ed": {store.RoleEditor, made}, "vi": {store.RoleAdmin, "long enough password"}} {
		u, err := db.User(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if u.Role != want.role || bcryptMismatch(u.PasswordHash, want.password) {
			t.Errorf("%s: role %s, password matches %v; want %s and true", name, u.Role, !bcryptMismatch(u.PasswordHash, want.password), want.role)
		}
	}
	if _, err := users("", "remove", "ed"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.User(context.Background(), "ed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after remove: %v, want not found", err)
	}
}

// regexpLines reports whether each line of s matches the pattern of the
// same index, and s has as many lines.
func regexpLines(s string, patterns ...string) bool {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != len(patterns) {
		return false
	}
	for i, p := range patterns {
		if !regexp.MustCompile(p).MatchString(lines[i]) {
			return false
		}
	}
	return true
}

func bcryptMismatch(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil
}

// TestTwoReplayersOneLogin: two replay server processes on one PostgreSQL
// with one secret: the first makes the admin, the second none; a user
// added with loupe users signs in on one and is signed in on the other, as
// behind a load balancer. (Starts at once are storetest's FirstConcurrent.)
func TestTwoReplayersOneLogin(t *testing.T) {
	dsn := pgtest.Start(t, pgtest.Fast()).CreateDB(t)
	var procs [2]*proc
	for i := range procs {
		procs[i] = startProc(t, []string{"the replay UI"}, "replayer", "--database", dsn,
			"--admin", "127.0.0.1:0", "--data", t.TempDir())
	}

	cmd := exec.Command(loupeBin, "users", "add", "ana", "--role", "viewer", "--password-stdin", "--database", dsn)
	cmd.Stdin = strings.NewReader("ana's long password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("loupe users add: %v\n%s", err, out)
	}
	out, err := exec.Command(loupeBin, "users", "list", "--database", dsn).CombinedOutput()
	if err != nil || !regexpLines(string(out), `^NAME\s+ROLE\s+ADDED$`, `^admin\s+admin\s`, `^ana\s+viewer\s`) {
		t.Fatalf("loupe users list: %v\n%s; want one admin and ana", err, out)
	}

	a, b := procs[0].url("the replay UI"), procs[1].url("the replay UI")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(a+"/login", url.Values{"name": {"ana"}, "password": {"ana's long password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("sign in on A: %s at %s", resp.Status, resp.Request.URL)
	}
	// The cookie jar sends 127.0.0.1's cookie to every port: B gets A's login.
	for _, base := range []string{a, b} {
		var me struct{ Name, Role string }
		resp, err := c.Get(base + "/api/me")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&me)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || me.Name != "ana" || me.Role != "viewer" {
			t.Errorf("GET %s/api/me with A's login: %d %+v; want ana, viewer", base, resp.StatusCode, me)
		}
	}
}
