package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/replayer/ui"
	"github.com/loupe-dev/loupe/store"
)

// firstUserName is the admin made when a replay server starts on a store
// with no user.
const firstUserName = "admin"

// loginKey is the key of the replay server's login cookies: derived from
// the deployment's secret, so that every replay node accepts the others'.
func (m *Main) loginKey() ([]byte, error) {
	secret, err := m.secret()
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("loupe replayer login key v1"))
	return mac.Sum(nil), nil
}

// replayServer is the replay server over the store, with its logins. It
// makes the first user if the store has none.
func (m *Main) replayServer(ctx context.Context) (*replayer.Server, error) {
	users, ok := m.db.(store.Users)
	if !ok {
		return nil, errors.New("replayer: the store keeps no users")
	}
	key, err := m.loginKey()
	if err != nil {
		return nil, err
	}
	trusted, err := m.Config.trustedProxies()
	if err != nil {
		return nil, err
	}
	rp, err := replayer.New(replayer.Config{Store: m.db, Users: users, LoginKey: key, UI: ui.FS(), Logger: m.Logger,
		TrustedProxies: trusted})
	if err != nil {
		return nil, fmt.Errorf("replayer: %w", err)
	}
	if err := m.firstUser(ctx, users); err != nil {
		return nil, err
	}
	return rp, nil
}

// firstUser makes the admin user, with a random password, when the store
// has no user at all: the replay server shows nothing without a login.
// Of several nodes starting at once, one makes it.
func (m *Main) firstUser(ctx context.Context, users store.Users) error {
	// Most starts find users: skip hashing a password (tens of ms) then.
	if list, err := users.ListUsers(ctx); err == nil && len(list) > 0 {
		return nil
	}
	password := replayer.NewPassword()
	hash, err := replayer.HashPassword(password)
	if err != nil {
		return err
	}
	u := &store.User{Name: firstUserName, Role: store.RoleAdmin, PasswordHash: hash, CreatedAt: time.Now().UnixMilli()}
	added, err := users.AddFirstUser(ctx, u)
	if err != nil {
		return fmt.Errorf("first user: %w", err)
	}
	if added {
		m.firstLogin.name, m.firstLogin.password = u.Name, password
		m.Logger.Warn("the store had no user: made one; its password is shown once, at start",
			"user", u.Name, "role", u.Role)
	}
	return nil
}

// describeFirstUser prints the first user's password, if this start made
// it, or else how to manage users.
func (m *Main) describeFirstUser(w io.Writer, indent string) {
	if m.firstLogin.name == "" {
		fmt.Fprintf(w, "%ssign in:                an existing user (loupe users list; loupe users passwd NAME sets a new password)\n", indent)
		return
	}
	fmt.Fprintf(w, "%ssign in as:             %s / %s\n%s  (shown once; change it with: loupe users passwd %s)\n",
		indent, m.firstLogin.name, m.firstLogin.password, indent, m.firstLogin.name)
}

const usersUsage = `loupe users manages who may sign in to the replay UI.

Usage:
  loupe users list                                    every user and role
  loupe users add NAME [--role R] [--password-stdin]  a new user (role viewer unless given)
  loupe users passwd NAME [--password-stdin]          a new password (ends its logins)
  loupe users role NAME ROLE                          another role
  loupe users remove NAME                             delete a user

The only admin can be neither removed nor given another role: make
another user an admin first.

Roles: viewer (watch sessions), editor (also tags and notes), admin (also
anyone's notes and users). A password is read from standard input with
--password-stdin (one line), or else made and printed.
Every command takes --data and --database, as loupe serve does.
`

// runUsers is the users command.
func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage)
		return usageError{"loupe users: missing list, add, passwd, role or remove"}
	}
	sub := args[0]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, usersUsage)
		return nil
	}
	want := map[string]int{"list": 0, "add": 1, "passwd": 1, "role": 2, "remove": 1}
	nargs, ok := want[sub]
	if !ok {
		fmt.Fprint(stderr, usersUsage)
		return usageError{fmt.Sprintf("loupe users: unknown command %q", sub)}
	}
	fs := flag.NewFlagSet("loupe users "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.Data, "data", "./loupe-data", "data `folder` of the SQLite database")
	fs.StringVar(&cfg.Database, "database", "", "postgres://… `URL` of a PostgreSQL database; empty for SQLite in --data")
	role := string(store.RoleViewer)
	fromStdin := false
	if sub == "add" {
		fs.StringVar(&role, "role", role, "`role` of the new user: viewer, editor or admin")
	}
	if sub == "add" || sub == "passwd" {
		fs.BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input rather than make one")
	}
	if err := bindEnv(fs); err != nil {
		return err
	}
	// Flags may come before or after the operands.
	var operands []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		operands = append(operands, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(operands) != nargs {
		return usageError{fmt.Sprintf("loupe users %s takes %d argument(s), got %d", sub, nargs, len(operands))}
	}
	r, err := store.ParseRole(role)
	if err != nil {
		return usageError{err.Error()}
	}
	if sub == "role" {
		if r, err = store.ParseRole(operands[1]); err != nil {
			return usageError{err.Error()}
		}
	}
	if len(operands) > 0 {
		if err := store.CheckUserName(operands[0]); err != nil {
			return usageError{err.Error()}
		}
	}

	m := &Main{Config: cfg}
	_, statErr := os.Stat(cfg.sqlitePath())
	if err := m.openStore(ctx); err != nil {
		return err
	}
	if cfg.Database == "" && errors.Is(statErr, os.ErrNotExist) {
		// Most likely the wrong folder: say so rather than manage users
		// nobody's server reads.
		fmt.Fprintf(stderr, "loupe users: there was no database in %s; made a new one (is --data the server's?)\n", cfg.Data)
	}
	defer m.db.Close()
	users, ok := m.db.(store.Users)
	if !ok {
		return errors.New("this store keeps no users")
	}
	switch sub {
	case "list":
		list, err := users.ListUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tADDED")
		for _, u := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, time.UnixMilli(u.CreatedAt).UTC().Format(time.DateTime))
		}
		return tw.Flush()
	case "add", "passwd":
		password, made, err := readPassword(fromStdin)
		if err != nil {
			return err
		}
		hash, err := replayer.HashPassword(password)
		if err != nil {
			return usageError{err.Error()}
		}
		name := operands[0]
		if sub == "add" {
			err = users.AddUser(ctx, &store.User{Name: name, Role: r, PasswordHash: hash, CreatedAt: time.Now().UnixMilli()})
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("user %q exists; loupe users passwd or role change it", name)
			}
		} else {
			err = updateUser(ctx, users, name, func(u *store.User) { u.PasswordHash = hash })
		}
		if err != nil {
			return err
		}
		if made {
			fmt.Fprintf(stdout, "%s's password: %s\n", name, password)
		} else {
			fmt.Fprintf(stdout, "%s's password is set\n", name)
		}
		return nil
	case "role":
		name := operands[0]
		if err := updateUser(ctx, users, name, func(u *store.User) { u.Role = r }); err != nil {
			return lastAdminError(name, err)
		}
		fmt.Fprintf(stdout, "%s is now %s\n", name, r)
		return nil
	default: // remove
		name := operands[0]
		if err := users.DeleteUser(ctx, name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no user %q", name)
			}
			return lastAdminError(name, err)
		}
		fmt.Fprintf(stdout, "removed %s\n", name)
		return nil
	}
}

// updateUser changes the named user with change.
func updateUser(ctx context.Context, users store.Users, name string, change func(*store.User)) error {
	u, err := users.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q; loupe users add makes one", name)
	}
	if err != nil {
		return err
	}
	change(u)
	return users.UpdateUser(ctx, u)
}

// lastAdminError says what to do when err is store.ErrLastAdmin: the
// store refused to take away the only admin, name.
func lastAdminError(name string, err error) error {
	if errors.Is(err, store.ErrLastAdmin) {
		return fmt.Errorf("%s is the only admin; make another user an admin first (loupe users role NAME admin)", name)
	}
	return err
}

// stdin is where --password-stdin reads; nil for os.Stdin (tests set it).
var stdin io.Reader

// readPassword reads one line of standard input when fromStdin, else makes
// a password (made is then true).
func readPassword(fromStdin bool) (password string, made bool, err error) {
	if !fromStdin {
		return replayer.NewPassword(), true, nil
	}
	in := stdin
	if in == nil {
		in = os.Stdin
	}
	line, err := bufio.NewReader(io.LimitReader(in, replayer.MaxPassword+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), false, nil
}
