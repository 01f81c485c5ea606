package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/loupe-dev/loupe/store"
)

// deriveSignals runs the signal rules on b inside AppendBatch's
// transaction, after the batch's rows are written (the session's row lock
// is held, so the session's batches derive one after another): b's page
// view's state (stateJSON, "" for none), and, when b starts a page view
// (isNew), the end of the session's earlier page views that still hold
// state. It stores the signals, the states and the session's counters and
// friction.
func deriveSignals(ctx context.Context, tx dbtx, b *store.Batch, stateJSON string, isNew bool) error {
	st, err := store.DecodeSignalState(stateJSON)
	if err != nil {
		return fmt.Errorf("page view %q: %w", b.PageViewID, err)
	}
	sigs := store.DeriveSignals(&st, b)
	if isNew && b.EventCount > 0 {
		ended, err := endPageViews(ctx, tx, b)
		if err != nil {
			return err
		}
		sigs = append(sigs, ended...)
	}
	// One round trip for the state, the signals and the counters; a second
	// one if the friction changed.
	var q pgx.Batch
	newState, err := st.Encode()
	if err != nil {
		return err
	}
	if newState != stateJSON {
		q.Queue(saveStateSQL, newState, b.PageViewID)
	}
	counted := queueSignals(&q, b.SessionID, sigs, b.Signals.Converted)
	if q.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, &q)
	defer br.Close()
	if newState != stateJSON {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("save signal state: %w", err)
		}
	}
	return finishSignals(ctx, tx, br, b.SessionID, len(sigs) > 0, counted)
}

// Statements of signal derivation.
const (
	saveStateSQL     = `UPDATE page_views SET signal_state = $1 WHERE id = $2`
	insertSignalsSQL = `
	INSERT INTO signals (session_id, page_view_id, at, kind, x, y, node_id, target, url, detail)
	SELECT $1, pv, at, kind, x, y, node_id, target, url, detail
	FROM unnest($2::text[], $3::bigint[], $4::text[], $5::integer[], $6::integer[], $7::integer[],
		$8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS r (pv, at, kind, x, y, node_id, target, url, detail, n)
	ORDER BY n`
	countSignalsSQL = `
	UPDATE sessions SET
		rage_click_count   = rage_click_count + $1,
		dead_click_count   = dead_click_count + $2,
		error_click_count  = error_click_count + $3,
		js_error_count     = js_error_count + $4,
		server_error_count = server_error_count + $5,
		form_abandon_count = form_abandon_count + $6,
		converted          = converted OR $7
	WHERE id = $8
	RETURNING rage_click_count, dead_click_count, error_click_count, js_error_count, server_error_count,
		form_abandon_count, converted, friction`
)

// queueSignals queues the insert of sigs and, if any is counted or the
// session converted, the update of its counters (which returns them). It
// reports whether it queued the update.
func queueSignals(q *pgx.Batch, sessionID string, sigs []store.Signal, converted bool) bool {
	var c store.SignalCounts
	if n := len(sigs); n > 0 {
		pv, at, kind := make([]string, n), make([]int64, n), make([]string, n)
		x, y, node := make([]int32, n), make([]int32, n), make([]int32, n)
		target, url, detail := make([]string, n), make([]string, n), make([]string, n)
		for i, s := range sigs {
			pv[i], at[i], kind[i] = s.PageViewID, s.At, s.Kind
			x[i], y[i], node[i] = int32(s.X), int32(s.Y), int32(s.NodeID)
			target[i], url[i], detail[i] = s.Target, s.URL, s.Detail
			c.Add(s.Kind)
		}
		q.Queue(insertSignalsSQL, sessionID, pv, at, kind, x, y, node, target, url, detail)
	}
	if c.Zero() && !converted {
		return false
	}
	q.Queue(countSignalsSQL, c.RageClick, c.DeadClick, c.ErrorClick, c.JSError, c.ServerError, c.FormAbandon, converted, sessionID)
	return true
}

// finishSignals reads the results of queueSignals' statements and
// updates the session's friction if it changed.
func finishSignals(ctx context.Context, tx dbtx, br pgx.BatchResults, sessionID string, inserted, counted bool) error {
	if inserted {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("insert signals: %w", err)
		}
	}
	if !counted {
		return br.Close()
	}
	var c store.SignalCounts
	var converted bool
	var old float64
	err := br.QueryRow().Scan(&c.RageClick, &c.DeadClick, &c.ErrorClick, &c.JSError, &c.ServerError, &c.FormAbandon, &converted, &old)
	if errors.Is(err, pgx.ErrNoRows) {
		return br.Close() // no such session
	}
	if err != nil {
		return fmt.Errorf("count signals: %w", err)
	}
	if err := br.Close(); err != nil {
		return err
	}
	if f := store.Friction(c, converted); f != old {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET friction = $1 WHERE id = $2`, f, sessionID); err != nil {
			return fmt.Errorf("recompute friction: %w", err)
		}
	}
	return nil
}

// endPageViews ends the session's other page views that started before b
// in its tab (store.Batch.Tab) and still hold state: a later page view
// started there, so they were left.
func endPageViews(ctx context.Context, tx dbtx, b *store.Batch) ([]store.Signal, error) {
	type open struct{ id, state string }
	var opens []open
	rows, err := tx.Query(ctx, `
		SELECT id, signal_state FROM page_views
		WHERE session_id = $1 AND id <> $2 AND signal_state <> '' AND coalesce(started_at, 0) <= $3
			AND ($4 = '' OR tab = '' OR tab = $4)`,
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
		if err := saveState(ctx, tx, o.id, o.state, &st); err != nil {
			return nil, err
		}
	}
	return sigs, nil
}

// saveState writes st as the page view's state unless it is unchanged
// from old.
func saveState(ctx context.Context, tx dbtx, pageViewID, old string, st *store.SignalState) error {
	s, err := st.Encode()
	if err != nil || s == old {
		return err
	}
	if _, err := tx.Exec(ctx, saveStateSQL, s, pageViewID); err != nil {
		return fmt.Errorf("save signal state: %w", err)
	}
	return nil
}

// addSignals inserts signals of one session, adds them to its counters,
// marks it converted if so and recomputes its friction, in tx. Code of
// this package that raises signals (the request log) calls it.
func addSignals(ctx context.Context, tx dbtx, sessionID string, sigs []store.Signal, converted bool) error {
	var q pgx.Batch
	counted := queueSignals(&q, sessionID, sigs, converted)
	if q.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, &q)
	defer br.Close()
	return finishSignals(ctx, tx, br, sessionID, len(sigs) > 0, counted)
}

// recomputeFriction sets the session's friction from its counters and
// converted flag (store.Friction). Code of this package that changes the
// counters calls it in the same transaction. A missing session is no
// error.
func recomputeFriction(ctx context.Context, tx pgx.Tx, sessionID string) error {
	var c store.SignalCounts
	var converted bool
	var old float64
	err := tx.QueryRow(ctx, `
		SELECT rage_click_count, dead_click_count, error_click_count, js_error_count, server_error_count,
			form_abandon_count, converted, friction
		FROM sessions WHERE id = $1`, sessionID).Scan(
		&c.RageClick, &c.DeadClick, &c.ErrorClick, &c.JSError, &c.ServerError, &c.FormAbandon, &converted, &old)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recompute friction: %w", err)
	}
	if f := store.Friction(c, converted); f != old {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET friction = $1 WHERE id = $2`, f, sessionID); err != nil {
			return fmt.Errorf("recompute friction: %w", err)
		}
	}
	return nil
}

// readTx begins a read-only snapshot transaction and checks that the
// session exists (store.ErrNotFound if not).
func (db *DB) readTx(ctx context.Context, sessionID string) (pgx.Tx, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	if err := sessionExists(ctx, tx, sessionID); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// sessionExists returns store.ErrNotFound if the session does not exist.
func sessionExists(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// Signals returns the session's signals in time order (then in the order
// stored), an empty list if none; store.ErrNotFound if the session does
// not exist.
func (db *DB) Signals(ctx context.Context, sessionID string) ([]store.Signal, error) {
	tx, err := db.readTx(ctx, sessionID)
	if err != nil {
		return nil, fmt.Errorf("signals %q: %w", sessionID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := []store.Signal{}
	err = query(ctx, tx, `
		SELECT page_view_id, at, kind, x, y, node_id, target, url, detail
		FROM signals WHERE session_id = $1 ORDER BY at, id`, sessionID,
		func(rows pgx.Rows) error {
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

// EndIdlePageViews implements store.IdleEnder: each page view is ended in
// a transaction of its own that locks its session's row, then its own, as
// an append does, and checks again that it is idle and holds state.
func (db *DB) EndIdlePageViews(ctx context.Context, idleBefore time.Time, limit int) (int, error) {
	cutoff := idleBefore.UnixMilli()
	type idle struct{ id, session string }
	var idles []idle
	rows, err := db.pool.Query(ctx, `
		SELECT p.id, p.session_id FROM page_views p
		WHERE p.signal_state <> ''
			AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.page_view_id = p.id AND c.received_at >= $1)
		LIMIT $2`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("end idle page views: %w", err)
	}
	for rows.Next() {
		var p idle
		if err := rows.Scan(&p.id, &p.session); err != nil {
			rows.Close()
			return 0, fmt.Errorf("end idle page views: %w", err)
		}
		idles = append(idles, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("end idle page views: %w", err)
	}
	n := 0
	for _, p := range idles {
		ended, err := db.endIdle(ctx, p.id, p.session, cutoff)
		if err != nil {
			return n, fmt.Errorf("end idle page views: page view %q: %w", p.id, err)
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// endIdle ends one idle page view; false if it got a batch or was ended
// meanwhile.
func (db *DB) endIdle(ctx context.Context, id, session string, cutoff int64) (bool, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, session); err != nil {
		return false, err
	}
	var state string
	var last int64
	err = tx.QueryRow(ctx, `
		SELECT p.signal_state, coalesce(p.ended_at, p.started_at, 0) FROM page_views p
		WHERE p.id = $1 AND p.signal_state <> ''
			AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.page_view_id = p.id AND c.received_at >= $2)
		FOR UPDATE OF p`, id, cutoff).Scan(&state, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, err := store.DecodeSignalState(state)
	if err != nil {
		return false, err
	}
	sigs := store.EndPageView(&st, session, id, max(st.LastAt, last))
	if err := saveState(ctx, tx, id, state, &st); err != nil {
		return false, err
	}
	if err := addSignals(ctx, tx, session, sigs, false); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}
