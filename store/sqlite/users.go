package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/loupe-dev/loupe/store"
)

var _ store.Users = (*DB)(nil)

// AddUser stores u (validated with User.Check) and sets its CreatedAt
// (if zero); store.ErrExists if its name is taken.
func (db *DB) AddUser(ctx context.Context, u *store.User) error {
	if err := u.Check(); err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	if u.CreatedAt == 0 {
		u.CreatedAt = time.Now().UnixMilli()
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	defer tx.Rollback()
	if err := insertUser(ctx, tx, u); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return nil
}

// AddFirstUser stores u (validated with User.Check, CreatedAt set if zero)
// only if there is no user at all, and reports whether it did. The write
// transaction begins IMMEDIATE, taking the file's write lock before it
// counts, so of processes calling it at once only one finds the table
// empty.
func (db *DB) AddFirstUser(ctx context.Context, u *store.User) (bool, error) {
	if err := u.Check(); err != nil {
		return false, fmt.Errorf("add first user: %w", err)
	}
	if u.CreatedAt == 0 {
		u.CreatedAt = time.Now().UnixMilli()
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("add first user %q: %w", u.Name, err)
	}
	defer tx.Rollback()
	var taken bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&taken); err != nil {
		return false, fmt.Errorf("add first user %q: %w", u.Name, err)
	}
	if taken {
		return false, nil
	}
	if err := insertUser(ctx, tx, u); err != nil {
		return false, fmt.Errorf("add first user %q: %w", u.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("add first user %q: %w", u.Name, err)
	}
	return true, nil
}

// insertUser inserts u; store.ErrExists if its name is taken.
func insertUser(ctx context.Context, tx *sql.Tx, u *store.User) error {
	res, err := tx.ExecContext(ctx, `
		INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`,
		u.Name, string(u.Role), u.PasswordHash, u.CreatedAt)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrExists
	}
	return nil
}

// User returns the named user, or store.ErrNotFound.
func (db *DB) User(ctx context.Context, name string) (*store.User, error) {
	u := store.User{Name: name}
	err := db.read.QueryRowContext(ctx, `SELECT role, password_hash, created_at FROM users WHERE name = ?`, name).
		Scan(&u.Role, &u.PasswordHash, &u.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get user %q: %w", name, err)
	}
	return &u, nil
}

// ListUsers returns every user, by name; an empty slice if there are
// none.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, role, password_hash, created_at FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	users := []store.User{}
	for rows.Next() {
		var u store.User
		if err := rows.Scan(&u.Name, &u.Role, &u.PasswordHash, &u.CreatedAt); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// UpdateUser sets the role and password hash of the user named u.Name
// (validated with User.Check); store.ErrNotFound if there is none,
// store.ErrLastAdmin if that would take away the only admin. Its
// CreatedAt stays as stored.
func (db *DB) UpdateUser(ctx context.Context, u *store.User) error {
	if err := u.Check(); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	if err := db.changeUser(ctx, u.Name, u.Role != store.RoleAdmin, `UPDATE users SET role = ?, password_hash = ? WHERE name = ?`,
		string(u.Role), u.PasswordHash, u.Name); err != nil {
		return fmt.Errorf("update user %q: %w", u.Name, err)
	}
	return nil
}

// DeleteUser deletes the named user; store.ErrNotFound if there is none,
// store.ErrLastAdmin if it is the only admin. The notes it wrote keep its
// name as their author.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	if err := db.changeUser(ctx, name, true, `DELETE FROM users WHERE name = ?`, name); err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// changeUser runs query, which changes the one user named name, and
// returns store.ErrNotFound if there is none. If unadmin (the change takes
// away the user's admin role, if it has it), it first returns
// store.ErrLastAdmin if the user is the only admin. The write transaction
// begins IMMEDIATE, so no other process changes the users between the
// check and the change.
func (db *DB) changeUser(ctx context.Context, name string, unadmin bool, query string, args ...any) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if unadmin {
		var last bool
		err := tx.QueryRowContext(ctx, `
			SELECT role = 'admin' AND NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND name <> ?)
			FROM users WHERE name = ?`, name, name).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if last {
			return store.ErrLastAdmin
		}
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return tx.Commit()
}

// RevokeLogin records that the login id is refused until until, and
// deletes the revocations whose until is not after now, in one write
// transaction.
func (db *DB) RevokeLogin(ctx context.Context, id string, until, now time.Time) error {
	if err := store.CheckLoginID(id); err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_logins WHERE expires_at <= ?`, now.UnixMilli()); err != nil {
		return fmt.Errorf("revoke login: forget ended revocations: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO revoked_logins (id, expires_at) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`,
		id, until.UnixMilli()); err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	return nil
}

// SignInAttempt records a sign-in attempt from key and returns the
// attempts of its window, after deleting the windows that ended, in one
// write transaction.
func (db *DB) SignInAttempt(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	if err := store.CheckLoginID(key); err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: %w", err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM sign_in_attempts WHERE ends_at <= ?`, now.UnixMilli()); err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: forget ended windows: %w", err)
	}
	var n int
	var began int64
	if err := tx.QueryRowContext(ctx, `
		INSERT INTO sign_in_attempts (key, began_at, ends_at, attempts) VALUES (?, ?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1
		RETURNING attempts, began_at`,
		key, now.UnixMilli(), now.Add(window).UnixMilli()).Scan(&n, &began); err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: %w", err)
	}
	return n, time.UnixMilli(began), nil
}

// LoginRevoked reports whether the login id is recorded as revoked.
func (db *DB) LoginRevoked(ctx context.Context, id string) (bool, error) {
	var revoked bool
	err := db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_logins WHERE id = ?)`, id).Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("login revoked: %w", err)
	}
	return revoked, nil
}
