package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
	if err := insertUser(ctx, db.pool, u); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return nil
}

// AddFirstUser stores u (validated with User.Check, CreatedAt set if zero)
// only if there is no user at all, and reports whether it did. Its
// transaction first locks the users table in SHARE ROW EXCLUSIVE mode,
// which conflicts with itself and with the ROW EXCLUSIVE lock of any
// insert: of nodes calling it at once, one counts and inserts while the
// others wait, then find that user.
func (db *DB) AddFirstUser(ctx context.Context, u *store.User) (bool, error) {
	if err := u.Check(); err != nil {
		return false, fmt.Errorf("add first user: %w", err)
	}
	if u.CreatedAt == 0 {
		u.CreatedAt = time.Now().UnixMilli()
	}
	var added bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return nil
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		added = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("add first user %q: %w", u.Name, err)
	}
	return added, nil
}

// insertUser inserts u; store.ErrExists if its name is taken.
func insertUser(ctx context.Context, conn dbtx, u *store.User) error {
	tag, err := conn.Exec(ctx, `
		INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO NOTHING`,
		u.Name, string(u.Role), u.PasswordHash, u.CreatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return nil
}

// User returns the named user, or store.ErrNotFound.
func (db *DB) User(ctx context.Context, name string) (*store.User, error) {
	u := store.User{Name: name}
	err := db.pool.QueryRow(ctx, `SELECT role, password_hash, created_at FROM users WHERE name = $1`, name).
		Scan(&u.Role, &u.PasswordHash, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := db.pool.Query(ctx, `SELECT name, role, password_hash, created_at FROM users ORDER BY name`)
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
	if err := db.changeUser(ctx, u.Name, u.Role != store.RoleAdmin, `UPDATE users SET role = $1, password_hash = $2 WHERE name = $3`,
		string(u.Role), u.PasswordHash, u.Name); err != nil {
		return fmt.Errorf("update user %q: %w", u.Name, err)
	}
	return nil
}

// DeleteUser deletes the named user; store.ErrNotFound if there is none,
// store.ErrLastAdmin if it is the only admin. The notes it wrote keep its
// name as their author.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	if err := db.changeUser(ctx, name, true, `DELETE FROM users WHERE name = $1`, name); err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// changeUser runs query, which changes the one user named name, and
// returns store.ErrNotFound if there is none. If unadmin (the change takes
// away the user's admin role, if it has it), it first returns
// store.ErrLastAdmin if the user is the only admin.
//
// The check locks the admins' rows (FOR UPDATE, in name order, so that
// two checks never wait on each other crosswise) until the change
// commits. Without the locks, two transactions demoting the two last
// admins would each see the other still an admin (READ COMMITTED reads a
// snapshot) and leave none; with them, the second waits for the first,
// then reads the admins as they are after it.
func (db *DB) changeUser(ctx context.Context, name string, unadmin bool, query string, args ...any) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if unadmin {
			rows, err := tx.Query(ctx, `SELECT name FROM users WHERE role = 'admin' ORDER BY name FOR UPDATE`)
			if err != nil {
				return err
			}
			admins, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			if len(admins) == 1 && admins[0] == name {
				return store.ErrLastAdmin
			}
		}
		tag, err := tx.Exec(ctx, query, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// RevokeLogin records that the login id is refused until until, and
// deletes the revocations whose until is not after now, in one
// transaction.
func (db *DB) RevokeLogin(ctx context.Context, id string, until, now time.Time) error {
	if err := store.CheckLoginID(id); err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM revoked_logins WHERE expires_at <= $1`, now.UnixMilli()); err != nil {
			return fmt.Errorf("forget ended revocations: %w", err)
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO revoked_logins (id, expires_at) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET expires_at = greatest(revoked_logins.expires_at, excluded.expires_at)`,
			id, until.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	return nil
}

// SignInAttempt records a sign-in attempt from key and returns the
// attempts of its window, after deleting the windows that ended, in one
// transaction.
func (db *DB) SignInAttempt(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	if err := store.CheckLoginID(key); err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: %w", err)
	}
	var n int
	var began int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sign_in_attempts WHERE ends_at <= $1`, now.UnixMilli()); err != nil {
			return fmt.Errorf("forget ended windows: %w", err)
		}
		return tx.QueryRow(ctx, `
			INSERT INTO sign_in_attempts (key, began_at, ends_at, attempts) VALUES ($1, $2, $3, 1)
			ON CONFLICT (key) DO UPDATE SET attempts = sign_in_attempts.attempts + 1
			RETURNING attempts, began_at`,
			key, now.UnixMilli(), now.Add(window).UnixMilli()).Scan(&n, &began)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sign-in attempt: %w", err)
	}
	return n, time.UnixMilli(began), nil
}

// LoginRevoked reports whether the login id is recorded as revoked.
func (db *DB) LoginRevoked(ctx context.Context, id string) (bool, error) {
	var revoked bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_logins WHERE id = $1)`, id).Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("login revoked: %w", err)
	}
	return revoked, nil
}
