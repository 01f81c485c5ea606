package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

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
		if err := applyOrDefer(ctx, tx, e); err != nil {
			return fmt.Errorf("append requests: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("append requests: commit: %w", err)
	}
	return nil
}

// applyOrDefer applies e to its session's row, or, when the session has
// no row yet, keeps it in request_effects for the session's first batch.
// A first batch committing meanwhile leaves e for the session's next one.
func applyOrDefer(ctx context.Context, tx pgx.Tx, e store.SessionEffect) error {
	if err := sessionExists(ctx, tx, e.SessionID); errors.Is(err, store.ErrNotFound) {
		return deferEffect(ctx, tx, e)
	} else if err != nil {
		return fmt.Errorf("look up session: %w", err)
	}
	return applyEffect(ctx, tx, e)
}

// applyEffect sets the session's user id unless it has one and adds the
// signals, counters and friction.
func applyEffect(ctx context.Context, tx dbtx, e store.SessionEffect) error {
	if e.UserID != "" {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET user_id = $1 WHERE id = $2 AND user_id = ''`, e.UserID, e.SessionID); err != nil {
			return fmt.Errorf("set user: %w", err)
		}
	}
	if len(e.Signals) > 0 {
		return addSignals(ctx, tx, e.SessionID, e.Signals, false)
	}
	return nil
}

// deferEffect keeps e for the session's first batch.
func deferEffect(ctx context.Context, tx pgx.Tx, e store.SessionEffect) error {
	n := len(e.Signals)
	if e.UserID != "" {
		n++
	}
	pv, at, kind := make([]string, 0, n), make([]int64, 0, n), make([]string, 0, n)
	url, detail, user := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, g := range e.Signals {
		pv, at, kind = append(pv, g.PageViewID), append(at, g.At), append(kind, g.Kind)
		url, detail, user = append(url, g.URL), append(detail, g.Detail), append(user, "")
	}
	if e.UserID != "" {
		pv, at, kind = append(pv, ""), append(at, 0), append(kind, "")
		url, detail, user = append(url, ""), append(detail, ""), append(user, e.UserID)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO request_effects (session_id, page_view_id, at, kind, url, detail, user_id)
		SELECT $1, pv, at, kind, url, detail, u
		FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
			WITH ORDINALITY AS r (pv, at, kind, url, detail, u, n)
		ORDER BY n`,
		e.SessionID, pv, at, kind, url, detail, user); err != nil {
		return fmt.Errorf("defer request effects: %w", err)
	}
	return nil
}

// takePendingSQL takes what requests logged before the session's row
// existed do to it (see deferEffect). AppendBatch runs it in its
// transaction, after the session's row is written, and applies the
// effects (readPending).
const takePendingSQL = `
	DELETE FROM request_effects WHERE session_id = $1
	RETURNING page_view_id, at, kind, url, detail, user_id, id`

// readPending reads takePendingSQL's result into one effect, its signals
// in the order they were raised.
func readPending(br pgx.BatchResults, sessionID string) (store.SessionEffect, error) {
	e := store.SessionEffect{SessionID: sessionID}
	rows, err := br.Query()
	if err != nil {
		return e, fmt.Errorf("pending request effects: %w", err)
	}
	type pending struct {
		g    store.Signal
		user string
		id   int64
	}
	var ps []pending
	for rows.Next() {
		p := pending{g: store.Signal{SessionID: sessionID}}
		if err := rows.Scan(&p.g.PageViewID, &p.g.At, &p.g.Kind, &p.g.URL, &p.g.Detail, &p.user, &p.id); err != nil {
			rows.Close()
			return e, fmt.Errorf("pending request effects: %w", err)
		}
		ps = append(ps, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return e, fmt.Errorf("pending request effects: %w", err)
	}
	// RETURNING has no order: the signals go in as they were raised.
	slices.SortFunc(ps, func(a, b pending) int {
		if a.g.At != b.g.At {
			return cmp.Compare(a.g.At, b.g.At)
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, p := range ps {
		if p.g.Kind != "" {
			e.Signals = append(e.Signals, p.g)
		}
		if e.UserID == "" {
			e.UserID = p.user
		}
	}
	return e, nil
}

// SetSessionUser sets the session's user id unless it has one; for a
// session without a row yet, the id waits for its first batch.
func (db *DB) SetSessionUser(ctx context.Context, sessionID, userID string) error {
	if sessionID == "" || userID == "" {
		return fmt.Errorf("set session user: empty session or user id")
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("set session user: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := applyOrDefer(ctx, tx, store.SessionEffect{SessionID: sessionID, UserID: userID}); err != nil {
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
