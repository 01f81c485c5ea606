package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// UserBackend is what RunUsers needs of a backend.
type UserBackend interface {
	store.Users
	Close() error
}

// RunUsers runs the conformance suite of the replay server's users. open
// must return a new, empty store for each call; RunUsers closes it when
// the subtest ends.
func RunUsers(t *testing.T, open func(t *testing.T) UserBackend) {
	t.Helper()
	runCases(t, open, []testCase[UserBackend]{
		{"RoundTrip", testUserRoundTrip},
		{"Duplicate", testUserDuplicate},
		{"Invalid", testUserInvalid},
		{"NotFound", testUserNotFound},
		{"List", testUserList},
		{"Update", testUserUpdate},
		{"Delete", testUserDelete},
		{"First", testFirstUser},
		{"FirstConcurrent", testFirstUserConcurrent},
		{"LastAdmin", testLastAdmin},
		{"LastAdminConcurrent", testLastAdminConcurrent},
		{"RevokeLogin", testRevokeLogin},
		{"RevokeLoginForgets", testRevokeLoginForgets},
		{"SignInAttempts", testSignInAttempts},
	})
}

// user is a valid user created at base + created ms; hash stands for a
// bcrypt hash, which the stores keep as given.
func user(name string, role store.Role, hash string, created int64) *store.User {
	return &store.User{Name: name, Role: role, PasswordHash: hash, CreatedAt: base + created}
}

func mustAddUser(tb testing.TB, s UserBackend, u *store.User) {
	tb.Helper()
	if err := s.AddUser(context.Background(), u); err != nil {
		tb.Fatalf("add user %q: %v", u.Name, err)
	}
}

func mustUser(tb testing.TB, s UserBackend, name string) *store.User {
	tb.Helper()
	u, err := s.User(context.Background(), name)
	if err != nil {
		tb.Fatalf("user %q: %v", name, err)
	}
	return u
}

func mustListUsers(tb testing.TB, s UserBackend) []store.User {
	tb.Helper()
	us, err := s.ListUsers(context.Background())
	if err != nil {
		tb.Fatalf("list users: %v", err)
	}
	return us
}

// userNames lists the users' names, comma-separated.
func userNames(us []store.User) string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Name
	}
	return strings.Join(names, ",")
}

func testUserRoundTrip(t *testing.T, s UserBackend) {
	ana := user("ana", store.RoleEditor, "$2a$10$anahash", 42)
	mustAddUser(t, s, ana)
	if got, want := mustUser(t, s, "ana"), user("ana", store.RoleEditor, "$2a$10$anahash", 42); !reflect.DeepEqual(got, want) {
		t.Errorf("user: got %+v, want %+v", got, want)
	}

	// A zero CreatedAt is set to the time of adding, and stored.
	bob := &store.User{Name: "bob", Role: store.RoleAdmin, PasswordHash: "$2a$10$bobhash"}
	mustAddUser(t, s, bob)
	if bob.CreatedAt == 0 {
		t.Errorf("CreatedAt of a user added without one: got 0, want the time of adding")
	}
	if got := mustUser(t, s, "bob"); !reflect.DeepEqual(got, bob) {
		t.Errorf("user: got %+v, want %+v", got, bob)
	}
}

func testUserDuplicate(t *testing.T, s UserBackend) {
	mustAddUser(t, s, user("ana", store.RoleViewer, "first", 1))
	err := s.AddUser(context.Background(), user("ana", store.RoleAdmin, "second", 2))
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("add a taken name: got %v, want ErrExists", err)
	}
	if got, want := mustUser(t, s, "ana"), user("ana", store.RoleViewer, "first", 1); !reflect.DeepEqual(got, want) {
		t.Errorf("user after the duplicate: got %+v, want %+v", got, want)
	}
}

func testUserInvalid(t *testing.T, s UserBackend) {
	ctx := context.Background()
	tests := []struct {
		name string
		user *store.User
	}{
		{"EmptyName", user("", store.RoleViewer, "h", 0)},
		{"UpperCase", user("Ana", store.RoleViewer, "h", 0)},
		{"LeadingDot", user(".ana", store.RoleViewer, "h", 0)},
		{"Space", user("ana b", store.RoleViewer, "h", 0)},
		{"LongName", user(strings.Repeat("a", store.MaxUserName+1), store.RoleViewer, "h", 0)},
		{"UnknownRole", user("ana", "root", "h", 0)},
		{"EmptyRole", user("ana", "", "h", 0)},
		{"EmptyHash", user("ana", store.RoleViewer, "", 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.AddUser(ctx, tt.user); err == nil {
				t.Errorf("add user: no error")
			}
			if added, err := s.AddFirstUser(ctx, tt.user); err == nil || added {
				t.Errorf("add first user: got %v, %v, want false and an error", added, err)
			}
			if got := mustListUsers(t, s); len(got) != 0 {
				t.Errorf("users: got %q, want none", userNames(got))
			}
		})
	}

	// An update to an invalid user changes nothing.
	mustAddUser(t, s, user("ana", store.RoleEditor, "h", 1))
	for _, bad := range []*store.User{
		user("ana", "root", "h2", 0),
		user("ana", store.RoleAdmin, "", 0),
	} {
		if err := s.UpdateUser(ctx, bad); err == nil {
			t.Errorf("update user to %+v: no error", bad)
		}
	}
	if got, want := mustUser(t, s, "ana"), user("ana", store.RoleEditor, "h", 1); !reflect.DeepEqual(got, want) {
		t.Errorf("user after invalid updates: got %+v, want %+v", got, want)
	}
}

func testUserNotFound(t *testing.T, s UserBackend) {
	ctx := context.Background()
	mustAddUser(t, s, user("ana", store.RoleAdmin, "h", 0))
	if u, err := s.User(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user: got %+v, %v, want ErrNotFound", u, err)
	}
	if err := s.UpdateUser(ctx, user("bob", store.RoleAdmin, "h", 0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update user: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete user: got %v, want ErrNotFound", err)
	}
	if got := userNames(mustListUsers(t, s)); got != "ana" {
		t.Errorf("users: got %q, want ana", got)
	}
}

func testUserList(t *testing.T, s UserBackend) {
	if got := mustListUsers(t, s); got == nil || len(got) != 0 {
		t.Errorf("users of an empty store: got %#v, want an empty slice", got)
	}
	// Byte order, which a locale's collation (ignoring punctuation) would
	// not give.
	want := []string{"ana", "ana-b", "ana.b", "ana1", "ana@b", "ana_b", "anab", "bob"}
	for i, j := range []int{7, 3, 0, 6, 1, 5, 2, 4} {
		mustAddUser(t, s, user(want[j], store.Roles[i%len(store.Roles)], fmt.Sprintf("h%d", j), int64(i)))
	}
	got := mustListUsers(t, s)
	if g, w := userNames(got), strings.Join(want, ","); g != w {
		t.Errorf("names: got %s, want %s", g, w)
	}
	for _, u := range got {
		if one := mustUser(t, s, u.Name); !reflect.DeepEqual(&u, one) {
			t.Errorf("listed %+v, but User returns %+v", u, one)
		}
	}
}

func testUserUpdate(t *testing.T, s UserBackend) {
	mustAddUser(t, s, user("ana", store.RoleViewer, "old", 5))
	mustAddUser(t, s, user("bob", store.RoleViewer, "bobs", 6))
	// CreatedAt of the argument is ignored: it stays as stored.
	if err := s.UpdateUser(context.Background(), user("ana", store.RoleAdmin, "new", 99)); err != nil {
		t.Fatalf("update user: %v", err)
	}
	if got, want := mustUser(t, s, "ana"), user("ana", store.RoleAdmin, "new", 5); !reflect.DeepEqual(got, want) {
		t.Errorf("updated user: got %+v, want %+v", got, want)
	}
	if got, want := mustUser(t, s, "bob"), user("bob", store.RoleViewer, "bobs", 6); !reflect.DeepEqual(got, want) {
		t.Errorf("other user: got %+v, want %+v", got, want)
	}
}

func testUserDelete(t *testing.T, s UserBackend) {
	ctx := context.Background()
	mustAddUser(t, s, user("ana", store.RoleEditor, "h", 0))
	mustAddUser(t, s, user("bob", store.RoleViewer, "h", 0))
	if err := s.DeleteUser(ctx, "ana"); err != nil {
		t.Fatalf("delete user: %v", err)
	}
	if _, err := s.User(ctx, "ana"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user: got %v, want ErrNotFound", err)
	}
	if got := userNames(mustListUsers(t, s)); got != "bob" {
		t.Errorf("users: got %q, want bob", got)
	}
	if err := s.DeleteUser(ctx, "ana"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete again: got %v, want ErrNotFound", err)
	}
	// The name is free again.
	mustAddUser(t, s, user("ana", store.RoleEditor, "h2", 1))
}

func testFirstUser(t *testing.T, s UserBackend) {
	ctx := context.Background()
	added, err := s.AddFirstUser(ctx, user("ana", store.RoleAdmin, "h", 3))
	if err != nil || !added {
		t.Fatalf("add first user to an empty store: got %v, %v, want true", added, err)
	}
	if got, want := mustUser(t, s, "ana"), user("ana", store.RoleAdmin, "h", 3); !reflect.DeepEqual(got, want) {
		t.Errorf("first user: got %+v, want %+v", got, want)
	}
	for _, u := range []*store.User{
		user("bob", store.RoleAdmin, "h", 4),
		user("ana", store.RoleViewer, "other", 5), // the taken name: still false, not ErrExists
	} {
		added, err := s.AddFirstUser(ctx, u)
		if err != nil || added {
			t.Errorf("add first user %q to a store with a user: got %v, %v, want false, nil", u.Name, added, err)
		}
	}
	if got := mustListUsers(t, s); len(got) != 1 || !reflect.DeepEqual(&got[0], user("ana", store.RoleAdmin, "h", 3)) {
		t.Errorf("users: got %+v, want only the first", got)
	}

	// The first user, an admin, is the only one: it cannot be deleted
	// (testLastAdmin), so the store does not become empty again.
	if err := s.DeleteUser(ctx, "ana"); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("delete the first user, the only admin: got %v, want ErrLastAdmin", err)
	}
	if added, err := s.AddFirstUser(ctx, user("bob", store.RoleAdmin, "h", 6)); err != nil || added {
		t.Errorf("add first user after a refused delete: got %v, %v, want false, nil", added, err)
	}
}

// testFirstUserConcurrent: of many simultaneous AddFirstUser calls with
// different names, exactly one adds its user.
func testFirstUserConcurrent(t *testing.T, s UserBackend) {
	const n = 8
	var wg sync.WaitGroup
	// Concurrent reads first, so that a backend with a connection pool has
	// opened its connections: else the first call may well be done while
	// the others still connect, and a race would go unseen.
	for range n {
		wg.Go(func() { s.ListUsers(context.Background()) })
	}
	wg.Wait()
	added := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{}) // releases all calls at once
	for i := range n {
		wg.Go(func() {
			<-start
			added[i], errs[i] = s.AddFirstUser(context.Background(), user(fmt.Sprintf("admin%d", i), store.RoleAdmin, "h", int64(i)))
		})
	}
	close(start)
	wg.Wait()
	var winners []string
	for i, err := range errs {
		if err != nil {
			t.Errorf("add first user admin%d: %v", i, err)
		}
		if added[i] {
			winners = append(winners, fmt.Sprintf("admin%d", i))
		}
	}
	if len(winners) != 1 {
		t.Errorf("added by %v, want exactly one", winners)
	}
	got := mustListUsers(t, s)
	if len(got) != 1 || len(winners) == 1 && got[0].Name != winners[0] {
		t.Errorf("users: got %q, want the one added (%v)", userNames(got), winners)
	}
}

func mustRevoked(tb testing.TB, s UserBackend, id string) bool {
	tb.Helper()
	revoked, err := s.LoginRevoked(context.Background(), id)
	if err != nil {
		tb.Fatalf("login revoked %q: %v", id, err)
	}
	return revoked
}

func mustRevoke(tb testing.TB, s UserBackend, id string, until, now time.Time) {
	tb.Helper()
	if err := s.RevokeLogin(context.Background(), id, until, now); err != nil {
		tb.Fatalf("revoke login %q: %v", id, err)
	}
}

// testRevokeLogin: a revoked id is reported as such; other ids are not.
func testRevokeLogin(t *testing.T, s UserBackend) {
	now := time.UnixMilli(base)
	if mustRevoked(t, s, "login1") {
		t.Errorf("an id never revoked: got revoked")
	}
	mustRevoke(t, s, "login1", now.Add(12*time.Hour), now)
	if !mustRevoked(t, s, "login1") {
		t.Errorf("a revoked id: got not revoked")
	}
	if mustRevoked(t, s, "login2") {
		t.Errorf("another id: got revoked")
	}
	// Revoking again is no error.
	mustRevoke(t, s, "login1", now.Add(12*time.Hour), now.Add(time.Second))
	if !mustRevoked(t, s, "login1") {
		t.Errorf("an id revoked twice: got not revoked")
	}
	for _, bad := range []string{"", strings.Repeat("a", store.MaxLoginID+1)} {
		if err := s.RevokeLogin(context.Background(), bad, now.Add(time.Hour), now); err == nil {
			t.Errorf("revoke login id of %d bytes: no error", len(bad))
		}
	}
}

// testRevokeLoginForgets: recording a revocation forgets those that ended
// (their until not after now), and keeps the rest; revoking an id twice
// keeps the later until.
func testRevokeLoginForgets(t *testing.T, s UserBackend) {
	t0 := time.UnixMilli(base)
	mustRevoke(t, s, "ends-1h", t0.Add(time.Hour), t0)
	mustRevoke(t, s, "ends-2h", t0.Add(2*time.Hour), t0)
	mustRevoke(t, s, "ends-3h", t0.Add(3*time.Hour), t0)
	mustRevoke(t, s, "ends-3h", t0.Add(90*time.Minute), t0) // earlier: kept at 3h
	// At 2h, the 1h and 2h revocations have ended.
	mustRevoke(t, s, "new", t0.Add(14*time.Hour), t0.Add(2*time.Hour))
	for id, want := range map[string]bool{"ends-1h": false, "ends-2h": false, "ends-3h": true, "new": true} {
		if got := mustRevoked(t, s, id); got != want {
			t.Errorf("%s after a revocation at 2h: got revoked %v, want %v", id, got, want)
		}
	}
}

// testSignInAttempts: attempts are counted per key within the window the
// first began; once it has ended, the next attempt begins a new one.
func testSignInAttempts(t *testing.T, s UserBackend) {
	ctx := context.Background()
	t0 := time.UnixMilli(base)
	attempt := func(key string, at time.Duration, want int, wantBegan time.Duration) {
		t.Helper()
		n, began, err := s.SignInAttempt(ctx, key, t0.Add(at), time.Minute)
		if err != nil {
			t.Fatalf("attempt from %s at %v: %v", key, at, err)
		}
		if n != want || !began.Equal(t0.Add(wantBegan)) {
			t.Errorf("attempt from %s at %v: got %d since %v, want %d since %v", key, at, n, began.Sub(t0), want, wantBegan)
		}
	}
	attempt("192.0.2.1", 0, 1, 0)
	attempt("192.0.2.1", 10*time.Second, 2, 0)
	attempt("2001:db8::", 20*time.Second, 1, 20*time.Second)
	attempt("192.0.2.1", 59*time.Second, 3, 0)
	// The first key's window ended at 60 s: a new one begins.
	attempt("192.0.2.1", 60*time.Second, 1, 60*time.Second)
	attempt("2001:db8::", 79*time.Second, 2, 20*time.Second)
	attempt("2001:db8::", 80*time.Second, 1, 80*time.Second)
	for _, bad := range []string{"", strings.Repeat("a", store.MaxLoginID+1)} {
		if _, _, err := s.SignInAttempt(ctx, bad, t0, time.Minute); err == nil {
			t.Errorf("sign-in attempt from a key of %d bytes: no error", len(bad))
		}
	}
}

// testLastAdmin: a change that would leave no admin is refused with
// ErrLastAdmin and changes nothing; others are made.
func testLastAdmin(t *testing.T, s UserBackend) {
	ctx := context.Background()
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrLastAdmin) {
			t.Errorf("%s: got %v, want ErrLastAdmin", what, err)
		}
	}
	// Without an admin, no change takes one away.
	mustAddUser(t, s, user("ed", store.RoleEditor, "h", 1))
	ok("demote the editor of a store without admins", s.UpdateUser(ctx, user("ed", store.RoleViewer, "h", 1)))

	mustAddUser(t, s, user("ana", store.RoleAdmin, "h", 2))
	refused("demote the only admin", s.UpdateUser(ctx, user("ana", store.RoleEditor, "h", 2)))
	refused("make the only admin a viewer", s.UpdateUser(ctx, user("ana", store.RoleViewer, "h2", 2)))
	refused("delete the only admin", s.DeleteUser(ctx, "ana"))
	if got, want := mustUser(t, s, "ana"), user("ana", store.RoleAdmin, "h", 2); !reflect.DeepEqual(got, want) {
		t.Errorf("the only admin after refused changes: got %+v, want %+v", got, want)
	}
	ok("a new password for the only admin", s.UpdateUser(ctx, user("ana", store.RoleAdmin, "h2", 2)))
	ok("delete a viewer", s.DeleteUser(ctx, "ed"))

	// With two admins, either may go, then not the other.
	mustAddUser(t, s, user("bob", store.RoleAdmin, "h", 3))
	ok("demote one of two admins", s.UpdateUser(ctx, user("ana", store.RoleEditor, "h2", 2)))
	refused("delete the admin left", s.DeleteUser(ctx, "bob"))
	ok("promote an editor", s.UpdateUser(ctx, user("ana", store.RoleAdmin, "h2", 2)))
	ok("delete one of two admins", s.DeleteUser(ctx, "bob"))
	refused("demote the admin left", s.UpdateUser(ctx, user("ana", store.RoleViewer, "h2", 2)))
	if got, want := mustListUsers(t, s), []store.User{*user("ana", store.RoleAdmin, "h2", 2)}; !reflect.DeepEqual(got, want) {
		t.Errorf("users: got %+v, want %+v", got, want)
	}
}

// testLastAdminConcurrent: of simultaneous calls that each demote or
// delete one of n admins, all but one succeed and one is refused: one
// admin is left, never none.
func testLastAdminConcurrent(t *testing.T, s UserBackend) {
	const n = 8
	for i := range n {
		mustAddUser(t, s, user(fmt.Sprintf("admin%d", i), store.RoleAdmin, "h", int64(i)))
	}
	var wg sync.WaitGroup
	// Open a pool's connections first, as testFirstUserConcurrent does.
	for range n {
		wg.Go(func() { s.ListUsers(context.Background()) })
	}
	wg.Wait()
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			name := fmt.Sprintf("admin%d", i)
			if i%2 == 0 {
				errs[i] = s.DeleteUser(context.Background(), name)
			} else {
				errs[i] = s.UpdateUser(context.Background(), user(name, store.RoleViewer, "h", 0))
			}
		})
	}
	close(start)
	wg.Wait()
	var refused int
	for i, err := range errs {
		switch {
		case errors.Is(err, store.ErrLastAdmin):
			refused++
		case err != nil:
			t.Errorf("admin%d: %v", i, err)
		}
	}
	var admins []string
	for _, u := range mustListUsers(t, s) {
		if u.Role == store.RoleAdmin {
			admins = append(admins, u.Name)
		}
	}
	if refused != 1 || len(admins) != 1 {
		t.Errorf("%d calls refused, admins left %v; want one refused and one left", refused, admins)
	}
}
