package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Role is what a user of the replay server may do. Each role may do what
// the ones before it may.
type Role string

const (
	// RoleViewer lists and watches sessions and reads their tags and
	// notes.
	RoleViewer Role = "viewer"
	// RoleEditor also writes tags and notes, and deletes its own notes.
	RoleEditor Role = "editor"
	// RoleAdmin also deletes anyone's notes and manages users.
	RoleAdmin Role = "admin"
)

// Roles lists the roles, least allowed first.
var Roles = []Role{RoleViewer, RoleEditor, RoleAdmin}

// Allows reports whether role r may do what role need may.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && need.rank() > 0 }

func (r Role) rank() int {
	for i, x := range Roles {
		if r == x {
			return i + 1
		}
	}
	return 0
}

// ParseRole returns the role named s, or an error naming the roles.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: one of viewer, editor, admin", s)
}

// MaxUserName is the longest user name, in bytes.
const MaxUserName = 64

// CheckUserName validates a user name: 1 to MaxUserName bytes of lower-case
// ASCII letters, digits and . _ @ -, starting with a letter or digit.
// Names are compared as they are, so one spelling is allowed.
func CheckUserName(name string) error {
	switch {
	case name == "":
		return errors.New("empty user name")
	case len(name) > MaxUserName:
		return fmt.Errorf("user name %.20q… is over %d bytes", name, MaxUserName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '@' && c != '-') {
			return fmt.Errorf("user name %q: use lower-case letters, digits and . _ @ - (starting with a letter or digit)", name)
		}
	}
	return nil
}

// User is a person who may sign in to the replay server.
type User struct {
	Name string
	Role Role
	// PasswordHash is the password's bcrypt hash; the stores keep it as
	// given and never check it.
	PasswordHash string
	CreatedAt    int64 // Unix ms
}

// Check validates a user's name, role and that it has a password hash.
func (u *User) Check() error {
	if err := CheckUserName(u.Name); err != nil {
		return err
	}
	if _, err := ParseRole(string(u.Role)); err != nil {
		return err
	}
	if u.PasswordHash == "" {
		return fmt.Errorf("user %q has no password", u.Name)
	}
	return nil
}

// ErrExists is returned by Users.AddUser when the name is taken.
var ErrExists = errors.New("already exists")

// ErrLastAdmin is returned by Users.UpdateUser and DeleteUser when the
// change would leave the users without an admin: nobody could manage them
// from the replay server.
var ErrLastAdmin = errors.New("the only admin")

// Users stores the replay server's users. Both backends implement it
// beside Store. Methods that take a *User validate it (User.Check).
type Users interface {
	// AddUser stores u; ErrExists if its name is taken.
	AddUser(ctx context.Context, u *User) error
	// AddFirstUser stores u only if there is no user at all, and reports
	// whether it did. Of processes calling it at once on one store, at
	// most one adds a user.
	AddFirstUser(ctx context.Context, u *User) (bool, error)
	// User returns the named user, or ErrNotFound.
	User(ctx context.Context, name string) (*User, error)
	// ListUsers returns every user, by name.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser sets the role and password hash of the user named
	// u.Name; ErrNotFound if there is none, ErrLastAdmin if it is the
	// only admin and u.Role is another role. The check and the change
	// are one transaction: of calls at once that each demote or delete
	// one of the admins, at least one is refused.
	UpdateUser(ctx context.Context, u *User) error
	// DeleteUser deletes the named user; ErrNotFound if there is none,
	// ErrLastAdmin if it is the only admin (checked as UpdateUser does).
	DeleteUser(ctx context.Context, name string) error

	// RevokeLogin records that the login id (the replay server's random
	// id of one login cookie) is refused until until, the cookie's
	// expiry, and forgets the revocations whose until is not after now:
	// their cookies have expired, so the table holds at most the
	// sign-outs of one login's lifetime. Revoking an id twice keeps the
	// later until.
	RevokeLogin(ctx context.Context, id string, until, now time.Time) error
	// LoginRevoked reports whether RevokeLogin recorded id and has not
	// forgotten it yet. A revocation may outlive its until (it is
	// forgotten by a later RevokeLogin): callers refuse an expired login
	// before they ask.
	LoginRevoked(ctx context.Context, id string) (bool, error)

	// SignInAttempt records one sign-in attempt from key (a client
	// address or network, at most MaxLoginID bytes) at now, and returns
	// how many were recorded from key since the window began: the
	// window begins with the first attempt after the last one ended, and
	// ends window after it began. It forgets the windows that ended
	// before now. Every replay server of one store counts in the same
	// windows, so a guesser gets one budget, not one per server.
	SignInAttempt(ctx context.Context, key string, now time.Time, window time.Duration) (attempts int, began time.Time, err error)
}

// MaxLoginID is the longest login id RevokeLogin takes, in bytes.
const MaxLoginID = 64

// CheckLoginID validates a login id: 1 to MaxLoginID bytes.
func CheckLoginID(id string) error {
	switch {
	case id == "":
		return errors.New("empty login id")
	case len(id) > MaxLoginID:
		return fmt.Errorf("login id is over %d bytes", MaxLoginID)
	}
	return nil
}
