package sqlite

import (
	"context"
	"database/sql"
	"errors"
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
		if err := applyOrDefer(ctx, tx, e); err != nil {
			return fmt.Errorf("append requests: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append requests: commit: %w", err)
	}
	return nil
}

// applyOrDefer applies e to its session's row, or, when the session has
// no row yet, keeps it in request_effects for the session's first batch.
func applyOrDefer(ctx context.Context, tx *sql.Tx, e store.SessionEffect) error {
	if err := sessionExists(ctx, tx, e.SessionID); errors.Is(err, store.ErrNotFound) {
		return deferEffect(ctx, tx, e)
	} else if err != nil {
		return fmt.Errorf("look up session: %w", err)
	}
	return applyEffect(ctx, tx, e)
}

// applyEffect sets the session's user id unless it has one and adds the
// signals, counters and friction.
func applyEffect(ctx context.Context, tx *sql.Tx, e store.SessionEffect) error {
	if e.UserID != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET user_id = ? WHERE id = ? AND user_id = ''`, e.UserID, e.SessionID); err != nil {
			return fmt.Errorf("set user: %w", err)
		}
	}
	if len(e.Signals) > 0 {
		return addSignals(ctx, tx, e.SessionID, e.Signals, false)
	}
	return nil
}

// deferEffect keeps e for the session's first batch.
func deferEffect(ctx context.Context, tx *sql.Tx, e store.SessionEffect) error {
	ins := func(pv string, at int64, kind, url, detail, user string) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO request_effects (session_id, page_view_id, at, kind, url, detail, user_id)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, e.SessionID, pv, at, kind, url, detail, user)
		if err != nil {
			return fmt.Errorf("defer request effect: %w", err)
		}
		return nil
	}
	for _, g := range e.Signals {
		if err := ins(g.PageViewID, g.At, g.Kind, g.URL, g.Detail, ""); err != nil {
			return err
		}
	}
	if e.UserID != "" {
		return ins("", 0, "", "", "", e.UserID)
	}
	return nil
}

// applyPendingRequests applies what requests logged before the session's
// row existed do to it (see deferEffect) and forgets them. AppendBatch
// calls it in its transaction, after the session's row is written.
func applyPendingRequests(ctx context.Context, tx *sql.Tx, sessionID string) error {
	e := store.SessionEffect{SessionID: sessionID}
	var n int
	err := query(ctx, tx, `
		SELECT page_view_id, at, kind, url, detail, user_id
		FROM request_effects WHERE session_id = ? ORDER BY at, rowid`, sessionID,
		func(rows *sql.Rows) error {
			g := store.Signal{SessionID: sessionID}
			var user string
			if err := rows.Scan(&g.PageViewID, &g.At, &g.Kind, &g.URL, &g.Detail, &user); err != nil {
				return err
			}
			n++
			if g.Kind != "" {
				e.Signals = append(e.Signals, g)
			}
			if e.UserID == "" {
				e.UserID = user
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("pending request effects: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM request_effects WHERE session_id = ?`, sessionID); err != nil {
		return fmt.Errorf("pending request effects: %w", err)
	}
	if err := applyEffect(ctx, tx, e); err != nil {
		return fmt.Errorf("pending request effects: %w", err)
	}
	return nil
}

// SetSessionUser sets the session's user id unless it has one; for a
// session without a row yet, the id waits for its first batch.
func (db *DB) SetSessionUser(ctx context.Context, sessionID, userID string) error {
	if sessionID == "" || userID == "" {
		return fmt.Errorf("set session user: empty session or user id")
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	defer tx.Rollback()
	if err := applyOrDefer(ctx, tx, store.SessionEffect{SessionID: sessionID, UserID: userID}); err != nil {
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
