package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Statements of this file, prepared with AppendBatch's (statements.go).
const (
	saveStateSQL    = `UPDATE page_views SET signal_state = ? WHERE id = ?`
	countSignalsSQL = `
	UPDATE sessions SET
		rage_click_count   = rage_click_count + ?,
		dead_click_count   = dead_click_count + ?,
		error_click_count  = error_click_count + ?,
		js_error_count     = js_error_count + ?,
		server_error_count = server_error_count + ?,
		form_abandon_count = form_abandon_count + ?,
		converted          = max(converted, ?)
	WHERE id = ?`
	readFrictionSQL = `
	SELECT rage_click_count, dead_click_count, error_click_count, js_error_count, server_error_count,
		form_abandon_count, converted, friction
	FROM sessions WHERE id = ?`
	writeFrictionSQL = `UPDATE sessions SET friction = ? WHERE id = ?`
)

// deriveSignals runs the signal rules on b inside AppendBatch's
// transaction: b's page view's state (stateJSON, as read with its owner;
// "" for none), and, when b starts a page view (isNew), the end of the
// session's earlier page views that still hold state. It stores the
// signals, the states and the session's counters and friction.
func (db *DB) deriveSignals(ctx context.Context, tx *sql.Tx, b *store.Batch, stateJSON string, isNew bool) error {
	st, err := store.DecodeSignalState(stateJSON)
	if err != nil {
		return fmt.Errorf("page view %q: %w", b.PageViewID, err)
	}
	sigs := store.DeriveSignals(&st, b)
	if err := db.saveState(ctx, tx, b.PageViewID, stateJSON, &st); err != nil {
		return err
	}
	if isNew && b.EventCount > 0 {
		ended, err := db.endPageViews(ctx, tx, b)
		if err != nil {
			return err
		}
		sigs = append(sigs, ended...)
	}
	if len(sigs) == 0 && !b.Signals.Converted {
		return nil
	}
	return db.addBatchSignals(ctx, tx, b.SessionID, sigs, b.Signals.Converted)
}

// endPageViews ends the session's other page views that started before b
// in its tab (store.Batch.Tab) and still hold state: a later page view
// started there, so they were left.
func (db *DB) endPageViews(ctx context.Context, tx *sql.Tx, b *store.Batch) ([]store.Signal, error) {
	type open struct{ id, state string }
	var opens []open
	rows, err := tx.QueryContext(ctx, `
		SELECT id, signal_state FROM page_views
		WHERE session_id = ?1 AND id <> ?2 AND signal_state <> '' AND coalesce(started_at, 0) <= ?3
			AND (?4 = '' OR tab = '' OR tab = ?4)`,
		b.SessionID, b.PageViewID, b.FirstTS, b.Tab())
	if err != nil {
		return nil, fmt.Errorf("open page views: %w", err)
	}
	for rows.Next() {
		var o open
		if err := rows.Scan(&o.id, &o.state); err != nil {
			rows.Close()
			return nil, fmt.Errorf("open page views: %w", err)
		}
		opens = append(opens, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("open page views: %w", err)
	}
	var sigs []store.Signal
	for _, o := range opens {
		st, err := store.DecodeSignalState(o.state)
		if err != nil {
			return nil, fmt.Errorf("page view %q: %w", o.id, err)
		}
		sigs = append(sigs, store.EndPageView(&st, b.SessionID, o.id, b.FirstTS)...)
		if err := db.saveState(ctx, tx, o.id, o.state, &st); err != nil {
			return nil, err
		}
	}
	return sigs, nil
}

// saveState writes st as the page view's state unless it is unchanged
// from old.
func (db *DB) saveState(ctx context.Context, tx *sql.Tx, pageViewID, old string, st *store.SignalState) error {
	s, err := st.Encode()
	if err != nil || s == old {
		return err
	}
	if _, err := tx.StmtContext(ctx, db.stmts.saveState).ExecContext(ctx, s, pageViewID); err != nil {
		return fmt.Errorf("save signal state: %w", err)
	}
	return nil
}

// addBatchSignals is addSignals with AppendBatch's prepared statements.
func (db *DB) addBatchSignals(ctx context.Context, tx *sql.Tx, sessionID string, sigs []store.Signal, converted bool) error {
	var c store.SignalCounts
	if len(sigs) > 0 {
		args := make([]any, 0, len(sigs)*10)
		for _, s := range sigs {
			args = append(args, sessionID, s.PageViewID, s.At, s.Kind, s.X, s.Y, s.NodeID, s.Target, s.URL, s.Detail)
			c.Add(s.Kind)
		}
		if err := db.stmts.signals.insert(ctx, tx, args); err != nil {
			return fmt.Errorf("insert signals: %w", err)
		}
	}
	if c.Zero() && !converted {
		return nil
	}
	if _, err := tx.StmtContext(ctx, db.stmts.countSignals).ExecContext(ctx,
		c.RageClick, c.DeadClick, c.ErrorClick, c.JSError, c.ServerError, c.FormAbandon, converted, sessionID); err != nil {
		return fmt.Errorf("count signals: %w", err)
	}
	return friction(ctx, tx.StmtContext(ctx, db.stmts.readFriction), tx.StmtContext(ctx, db.stmts.writeFriction), sessionID)
}

// addSignals inserts signals of one session, adds them to its counters,
// marks it converted if so and recomputes its friction, in tx. Code of
// this package that raises signals (the request log) calls it.
func addSignals(ctx context.Context, tx *sql.Tx, sessionID string, sigs []store.Signal, converted bool) error {
	var c store.SignalCounts
	for _, s := range sigs {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO signals (session_id, page_view_id, at, kind, x, y, node_id, target, url, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sessionID, s.PageViewID, s.At, s.Kind, s.X, s.Y, s.NodeID, s.Target, s.URL, s.Detail); err != nil {
			return fmt.Errorf("insert signal: %w", err)
		}
		c.Add(s.Kind)
	}
	if c.Zero() && !converted {
		return nil
	}
	if _, err := tx.ExecContext(ctx, countSignalsSQL,
		c.RageClick, c.DeadClick, c.ErrorClick, c.JSError, c.ServerError, c.FormAbandon, converted, sessionID); err != nil {
		return fmt.Errorf("count signals: %w", err)
	}
	return recomputeFriction(ctx, tx, sessionID)
}

// recomputeFriction sets the session's friction from its counters and
// converted flag (store.Friction). Code of this package that changes the
// counters calls it in the same transaction. A missing session is no
// error.
func recomputeFriction(ctx context.Context, tx *sql.Tx, sessionID string) error {
	read, err := tx.PrepareContext(ctx, readFrictionSQL)
	if err != nil {
		return fmt.Errorf("recompute friction: %w", err)
	}
	defer read.Close()
	write, err := tx.PrepareContext(ctx, writeFrictionSQL)
	if err != nil {
		return fmt.Errorf("recompute friction: %w", err)
	}
	defer write.Close()
	return friction(ctx, read, write, sessionID)
}

// friction is recomputeFriction with its statements.
func friction(ctx context.Context, read, write *sql.Stmt, sessionID string) error {
	var c store.SignalCounts
	var converted bool
	var old float64
	err := read.QueryRowContext(ctx, sessionID).Scan(
		&c.RageClick, &c.DeadClick, &c.ErrorClick, &c.JSError, &c.ServerError, &c.FormAbandon, &converted, &old)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recompute friction: %w", err)
	}
	if f := store.Friction(c, converted); f != old {
		if _, err := write.ExecContext(ctx, f, sessionID); err != nil {
			return fmt.Errorf("recompute friction: %w", err)
		}
	}
	return nil
}

// Signals returns the session's signals in time order (then in the order
// stored), an empty list if none; store.ErrNotFound if the session does
// not exist.
func (db *DB) Signals(ctx context.Context, sessionID string) ([]store.Signal, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("signals %q: %w", sessionID, err)
	}
	defer tx.Rollback()
	if err := sessionExists(ctx, tx, sessionID); err != nil {
		return nil, fmt.Errorf("signals %q: %w", sessionID, err)
	}
	out := []store.Signal{}
	err = query(ctx, tx, `
		SELECT page_view_id, at, kind, x, y, node_id, target, url, detail
		FROM signals WHERE session_id = ? ORDER BY at, rowid`, sessionID,
		func(rows *sql.Rows) error {
			s := store.Signal{SessionID: sessionID}
			if err := rows.Scan(&s.PageViewID, &s.At, &s.Kind, &s.X, &s.Y, &s.NodeID, &s.Target, &s.URL, &s.Detail); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("signals %q: %w", sessionID, err)
	}
	return out, nil
}

// sessionExists returns store.ErrNotFound if the session does not exist.
func sessionExists(ctx context.Context, tx *sql.Tx, id string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// EndIdlePageViews implements store.IdleEnder. SQLite has one writer: the
// candidates are read and ended in one transaction.
func (db *DB) EndIdlePageViews(ctx context.Context, idleBefore time.Time, limit int) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("end idle page views: %w", err)
	}
	defer tx.Rollback()
	type idle struct {
		id, session, state string
		ended              int64
	}
	var idles []idle
	rows, err := tx.QueryContext(ctx, `
		SELECT p.id, p.session_id, p.signal_state, coalesce(p.ended_at, p.started_at, 0) FROM page_views p
		WHERE p.signal_state <> ''
			AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.page_view_id = p.id AND c.received_at >= ?)
		LIMIT ?`, idleBefore.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("end idle page views: %w", err)
	}
	for rows.Next() {
		var p idle
		if err := rows.Scan(&p.id, &p.session, &p.state, &p.ended); err != nil {
			rows.Close()
			return 0, fmt.Errorf("end idle page views: %w", err)
		}
		idles = append(idles, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("end idle page views: %w", err)
	}
	for _, p := range idles {
		st, err := store.DecodeSignalState(p.state)
		if err != nil {
			return 0, fmt.Errorf("end idle page views: page view %q: %w", p.id, err)
		}
		sigs := store.EndPageView(&st, p.session, p.id, max(st.LastAt, p.ended))
		if err := db.saveState(ctx, tx, p.id, p.state, &st); err != nil {
			return 0, fmt.Errorf("end idle page views: %w", err)
		}
		if len(sigs) > 0 {
			if err := db.addBatchSignals(ctx, tx, p.session, sigs, false); err != nil {
				return 0, fmt.Errorf("end idle page views: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("end idle page views: commit: %w", err)
	}
	return len(idles), nil
}
