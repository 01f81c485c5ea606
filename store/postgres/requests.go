package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loupe-dev/loupe/store"
)

var _ store.RequestStore = (*DB)(nil)

// AppendRequests stores the proxy's network log entries, the signals they
// raise, the sessions' counters and friction, and user ids, in one
// transaction (see store.RequestStore). Session rows are changed in id
// order, so that two proxies' batches never deadlock on them.
func (db *DB) AppendRequests(ctx context.Context, reqs []store.Request) error {
	for i := range reqs {
		if err := reqs[i].Validate(); err != nil {
			return fmt.Errorf("append requests: request %d: %w", i, err)
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	n := len(reqs)
	sid, pv, method, url := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at, dur, size := make([]int64, n), make([]int64, n), make([]int64, n)
	status := make([]int32, n)
	for i, r := range reqs {
		sid[i], pv[i], method[i], url[i] = r.SessionID, r.PageViewID, r.Method, r.URL
		at[i], dur[i], size[i], status[i] = r.At, r.DurationMS, r.Bytes, int32(r.Status)
	}

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("append requests: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `
		INSERT INTO requests (session_id, page_view_id, at, method, url, status, duration_ms, bytes)
		SELECT sid, pv, at, method, url, status, dur, bytes
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::integer[], $7::bigint[], $8::bigint[])
			WITH ORDINALITY AS r (sid, pv, at, method, url, status, dur, bytes, n)
		ORDER BY n`,
		sid, pv, at, method, url, status, dur, size); err != nil {
		return fmt.Errorf("append requests: insert: %w", err)
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
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("append requests: commit: %w", err)
	}
	return nil
}

// ensureSession creates the session's row, with no events, unless it
// exists. AppendBatch fills it in later.
func ensureSession(ctx context.Context, tx pgx.Tx, id string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, id); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// setUser sets the session's user id unless it has one.
func setUser(ctx context.Context, tx pgx.Tx, id, user string) error {
	if _, err := tx.Exec(ctx, `UPDATE sessions SET user_id = $1 WHERE id = $2 AND user_id = ''`, user, id); err != nil {
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
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := ensureSession(ctx, tx, sessionID); err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	if err := setUser(ctx, tx, sessionID, userID); err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("set session user: commit: %w", err)
	}
	return nil
}

// Requests returns the session's network log in time order, then in the
// order stored; store.ErrNotFound if the session does not exist.
func (db *DB) Requests(ctx context.Context, sessionID string) ([]store.Request, error) {
	tx, err := db.readTx(ctx, sessionID)
	if err != nil {
		return nil, fmt.Errorf("requests %q: %w", sessionID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := []store.Request{}
	err = query(ctx, tx, `
		SELECT page_view_id, at, method, url, status, duration_ms, bytes
		FROM requests WHERE session_id = $1 ORDER BY at, id`, sessionID,
		func(rows pgx.Rows) error {
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
