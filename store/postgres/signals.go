package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
func deriveSignals(ctx context.Context, tx pgx.Tx, b *store.Batch, stateJSON string, isNew bool) error {
	st, err := decodeState(stateJSON)
	if err != nil {
		return fmt.Errorf("page view %q: %w", b.PageViewID, err)
	}
	sigs := store.DeriveSignals(&st, b)
	if err := saveState(ctx, tx, b.PageViewID, stateJSON, &st); err != nil {
		return err
	}
	if isNew && b.EventCount > 0 {
		ended, err := endPageViews(ctx, tx, b)
		if err != nil {
			return err
		}
		sigs = append(sigs, ended...)
	}
	if len(sigs) == 0 && !b.Signals.Converted {
		return nil
	}
	return addSignals(ctx, tx, b.SessionID, sigs, b.Signals.Converted)
}

// endPageViews ends the session's other page views that started before b
// and still hold state: a later page view started, so they were left.
func endPageViews(ctx context.Context, tx pgx.Tx, b *store.Batch) ([]store.Signal, error) {
	type open struct{ id, state string }
	var opens []open
	rows, err := tx.Query(ctx, `
		SELECT id, signal_state FROM page_views
		WHERE session_id = $1 AND id <> $2 AND signal_state <> '' AND coalesce(started_at, 0) <= $3`,
		b.SessionID, b.PageViewID, b.FirstTS)
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
		st, err := decodeState(o.state)
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

func decodeState(s string) (store.SignalState, error) {
	var st store.SignalState
	if s == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return st, fmt.Errorf("decode signal state: %w", err)
	}
	return st, nil
}

// saveState writes st as the page view's state unless it is unchanged
// from old.
func saveState(ctx context.Context, tx pgx.Tx, pageViewID, old string, st *store.SignalState) error {
	s := ""
	if !st.Empty() {
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode signal state: %w", err)
		}
		s = string(b)
	}
	if s == old {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE page_views SET signal_state = $1 WHERE id = $2`, s, pageViewID); err != nil {
		return fmt.Errorf("save signal state: %w", err)
	}
	return nil
}

// addSignals inserts signals of one session, adds them to its counters,
// marks it converted if so and recomputes its friction.
func addSignals(ctx context.Context, tx pgx.Tx, sessionID string, sigs []store.Signal, converted bool) error {
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
		if _, err := tx.Exec(ctx, `
			INSERT INTO signals (session_id, page_view_id, at, kind, x, y, node_id, target, url, detail)
			SELECT $1, pv, at, kind, x, y, node_id, target, url, detail
			FROM unnest($2::text[], $3::bigint[], $4::text[], $5::integer[], $6::integer[], $7::integer[],
				$8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS r (pv, at, kind, x, y, node_id, target, url, detail, n)
			ORDER BY n`,
			sessionID, pv, at, kind, x, y, node, target, url, detail); err != nil {
			return fmt.Errorf("insert signals: %w", err)
		}
	}
	if c.Zero() && !converted {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		UPDATE sessions SET
			rage_click_count   = rage_click_count + $1,
			dead_click_count   = dead_click_count + $2,
			error_click_count  = error_click_count + $3,
			js_error_count     = js_error_count + $4,
			server_error_count = server_error_count + $5,
			form_abandon_count = form_abandon_count + $6,
			converted          = converted OR $7
		WHERE id = $8`,
		c.RageClick, c.DeadClick, c.ErrorClick, c.JSError, c.ServerError, c.FormAbandon, converted, sessionID); err != nil {
		return fmt.Errorf("count signals: %w", err)
	}
	return recomputeFriction(ctx, tx, sessionID)
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
