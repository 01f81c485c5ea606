package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/loupe-dev/loupe/store"
)

var _ store.RequestStore = (*DB)(nil)

// requestColumns is the number of columns an inserted request row binds.
const requestColumns = 8

// requestRowsPerInsert keeps one INSERT under SQLite's default limit of
// 32,766 bound parameters.
const requestRowsPerInsert = 1000

// AppendRequests stores the proxy's network log entries, the signals they
// raise, the sessions' counters and friction, and user ids, in one
// transaction (see store.RequestStore).
func (db *DB) AppendRequests(ctx context.Context, reqs []store.Request) error {
	for i := range reqs {
		if err := reqs[i].Validate(); err != nil {
			return fmt.Errorf("append requests: request %d: %w", i, err)
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append requests: %w", err)
	}
	defer tx.Rollback()

	for rows := reqs; len(rows) > 0; {
		n := min(len(rows), requestRowsPerInsert)
		q := `INSERT INTO requests (session_id, page_view_id, at, method, url, status, duration_ms, bytes) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ")
		args := make([]any, 0, n*requestColumns)
		for _, r := range rows[:n] {
			args = append(args, r.SessionID, r.PageViewID, r.At, r.Method, r.URL, r.Status, r.DurationMS, r.Bytes)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("append requests: insert: %w", err)
		}
		rows = rows[n:]
	}

	for _, e := range store.RequestEffects(reqs) {
		if err := ensureSession(ctx, tx, e.SessionID); err != nil {
			return fmt.Errorf("append requests: %w", err)
		}
		if e.UserID != "" {
			if err := setUser(ctx, tx, e.SessionID, e.UserID); err != nil {
				return fmt.Errorf("append requests: %w", err)
			}
		}
		if len(e.Signals) > 0 {
			if err := addSignals(ctx, tx, e.SessionID, e.Signals, false); err != nil {
				return fmt.Errorf("append requests: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append requests: commit: %w", err)
	}
	return nil
}

// ensureSession creates the session's row, with no events, unless it
// exists. AppendBatch fills it in later.
func ensureSession(ctx context.Context, tx *sql.Tx, id string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id) VALUES (?) ON CONFLICT (id) DO NOTHING`, id); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// setUser sets the session's user id unless it has one.
func setUser(ctx context.Context, tx *sql.Tx, id, user string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET user_id = ? WHERE id = ? AND user_id = ''`, user, id); err != nil {
		return fmt.Errorf("set user: %w", err)
	}
	return nil
}

// SetSessionUser sets the session's user id unless it has one, creating
// the session's row if missing.
func (db *DB) SetSessionUser(ctx context.Context, sessionID, userID string) error {
	if sessionID == "" || userID == "" {
		return fmt.Errorf("set session user: empty session or user id")
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	defer tx.Rollback()
	if err := ensureSession(ctx, tx, sessionID); err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	if err := setUser(ctx, tx, sessionID, userID); err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set session user: commit: %w", err)
	}
	return nil
}

// Requests returns the session's network log in time order, then in the
// order stored; store.ErrNotFound if the session does not exist.
func (db *DB) Requests(ctx context.Context, sessionID string) ([]store.Request, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("requests %q: %w", sessionID, err)
	}
	defer tx.Rollback()
	if err := sessionExists(ctx, tx, sessionID); err != nil {
		return nil, fmt.Errorf("requests %q: %w", sessionID, err)
	}
	out := []store.Request{}
	err = query(ctx, tx, `
		SELECT page_view_id, at, method, url, status, duration_ms, bytes
		FROM requests WHERE session_id = ? ORDER BY at, rowid`, sessionID,
		func(rows *sql.Rows) error {
			r := store.Request{SessionID: sessionID}
			if err := rows.Scan(&r.PageViewID, &r.At, &r.Method, &r.URL, &r.Status, &r.DurationMS, &r.Bytes); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("requests %q: %w", sessionID, err)
	}
	return out, nil
}
