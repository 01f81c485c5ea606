package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
	msqlite "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"
)

// Listing bounds, as documented on store.SessionFilter.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// AppendBatch stores b as one compressed chunk, its clicks, inputs and
// errors, and folds its summary into the page view and session rows, all
// in one transaction. It returns store.ErrDuplicate, storing nothing, if
// b's page view and sequence number are already stored.
//
// A batch with EventCount 0 is stored (so that a retry of it is still a
// duplicate) but its FirstTS and LastTS are ignored, and its page view does
// not count towards PageCount until it sends events.
func (db *DB) AppendBatch(ctx context.Context, b *store.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	// Compress before taking the write connection: the writer is shared by
	// every appender, compression is not.
	kf, err := db.keyframe(ctx, b.SessionID)
	if err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	c := chunk.EncodeBatch(b.Events, kf)

	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	defer tx.Rollback()

	if err := db.appendBatch(ctx, tx, b, &c); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append batch: commit: %w", err)
	}
	if c.IsKeyframe {
		// Copied: the caller may reuse b.Events.
		db.keyframes.Add(b.SessionID, chunk.NewKeyframe(b.PageViewID, b.Seq, b.Events))
	}
	return nil
}

func (db *DB) appendBatch(ctx context.Context, tx *sql.Tx, b *store.Batch, c *chunk.Encoded) error {
	stmt := func(s *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, s) }
	// The write transaction began IMMEDIATE, so nothing can slip in between
	// these checks and the writes below.
	var owner, state string
	isNew := false
	err := stmt(db.stmts.pageViewOwner).QueryRowContext(ctx, b.PageViewID).Scan(&owner, &state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		isNew = true
	case err != nil:
		return fmt.Errorf("look up page view: %w", err)
	case owner != b.SessionID:
		return fmt.Errorf("page view %q belongs to another session", b.PageViewID)
	default:
		var n int
		if err := stmt(db.stmts.chunkExists).QueryRowContext(ctx, b.PageViewID, b.Seq).Scan(&n); err != nil {
			return fmt.Errorf("look up chunk: %w", err)
		}
		if n > 0 {
			return store.ErrDuplicate
		}
	}

	// Check the keyframe the chunk was compressed against, or whether this
	// chunk becomes the keyframe, against the session's row.
	var kfPageView sql.NullString
	var kfSeq sql.NullInt64
	err = stmt(db.stmts.keyframe).QueryRowContext(ctx, b.SessionID).Scan(&kfPageView, &kfSeq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("look up keyframe: %w", err)
	}
	switch {
	case c.Dict != nil && (kfPageView.String != c.Dict.PageViewID || kfSeq.Int64 != int64(c.Dict.Seq)):
		// A cached keyframe that is no longer the session's (the session
		// was deleted and its id reused): compress alone.
		db.keyframes.Forget(b.SessionID)
		*c = chunk.EncodeBatch(b.Events, nil)
		c.IsKeyframe = c.IsKeyframe && !kfPageView.Valid
	case c.IsKeyframe && kfPageView.Valid:
		c.IsKeyframe = false // another append set one meanwhile
	}

	// Timestamps only count for batches that hold events.
	var first, last sql.NullInt64
	if b.EventCount > 0 {
		first = sql.NullInt64{Int64: b.FirstTS, Valid: true}
		last = sql.NullInt64{Int64: b.LastTS, Valid: true}
	}
	var received sql.NullInt64
	if !b.ReceivedAt.IsZero() {
		received = sql.NullInt64{Int64: b.ReceivedAt.UnixMilli(), Valid: true}
	}
	var urlSeq, viewportSeq sql.NullInt64
	if b.URL != "" {
		urlSeq = sql.NullInt64{Int64: int64(b.Seq), Valid: true}
	}
	if b.ViewportW > 0 || b.ViewportH > 0 {
		viewportSeq = sql.NullInt64{Int64: int64(b.Seq), Valid: true}
	}
	var newKF, dictPageView sql.NullString
	var newKFSeq, dictSeq sql.NullInt64
	if c.IsKeyframe {
		newKF = sql.NullString{String: b.PageViewID, Valid: true}
		newKFSeq = sql.NullInt64{Int64: int64(b.Seq), Valid: true}
	}
	if c.Dict != nil {
		dictPageView = sql.NullString{String: c.Dict.PageViewID, Valid: true}
		dictSeq = sql.NullInt64{Int64: int64(c.Dict.Seq), Valid: true}
	}

	cl := b.Client
	if _, err := stmt(db.stmts.upsertSession).ExecContext(ctx,
		b.SessionID, first, last, len(b.Clicks), len(b.Inputs), len(b.Errors), b.EventCount,
		b.UserAgent, len(b.Events), len(c.Data), received,
		cl.Browser, cl.BrowserVersion, cl.OS, cl.Device, cl.Country, cl.IPHash, cl.IP,
		newKF, newKFSeq,
	); err != nil {
		return fmt.Errorf("upsert session: %w", err)
	}

	var page store.PageInfo
	if b.Page != nil {
		page = *b.Page
	}
	if _, err := stmt(db.stmts.upsertPageView).ExecContext(ctx,
		b.PageViewID, b.SessionID, b.URL, urlSeq, first, last, len(b.Clicks), len(b.Inputs), len(b.Errors), b.EventCount,
		b.ScrollDepth, b.ViewportW, b.ViewportH, viewportSeq,
		b.Page != nil, page.Referrer, page.Language, page.UTMSource, page.UTMMedium, page.UTMCampaign, page.UTMTerm, page.UTMContent,
		page.Tab,
	); err != nil {
		return fmt.Errorf("upsert page view: %w", err)
	}

	if _, err := stmt(db.stmts.insertChunk).ExecContext(ctx,
		b.PageViewID, b.Seq, b.SessionID, first, last, b.EventCount, len(b.Events), received, c.Codec, c.Data,
		dictPageView, dictSeq,
	); err != nil {
		if isUniqueViolation(err) { // unreachable after the check above; kept as a guard
			return store.ErrDuplicate
		}
		return fmt.Errorf("insert chunk: %w", err)
	}

	if err := db.insertDerived(ctx, tx, b); err != nil {
		return err
	}
	if err := db.deriveSignals(ctx, tx, b, state, isNew); err != nil {
		return fmt.Errorf("signals: %w", err)
	}
	if len(b.AssetURLs) > 0 {
		urls, err := json.Marshal(b.AssetURLs)
		if err != nil {
			return fmt.Errorf("encode asset urls: %w", err)
		}
		if _, err := stmt(db.stmts.insertAssets).ExecContext(ctx, b.SessionID, string(urls)); err != nil {
			return fmt.Errorf("insert session assets: %w", err)
		}
	}

	if _, err := stmt(db.stmts.updateSession).ExecContext(ctx, b.SessionID); err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	// Requests the proxy logged before the session had a row (requests.go).
	return applyPendingRequests(ctx, tx, b.SessionID)
}

// insertDerived writes the batch's clicks, inputs and errors.
func (db *DB) insertDerived(ctx context.Context, tx *sql.Tx, b *store.Batch) error {
	n := max(len(b.Clicks)*7, len(b.Inputs)*4, len(b.Errors)*9)
	if n == 0 {
		return nil
	}
	args := make([]any, 0, n)
	if len(b.Clicks) > 0 {
		for _, c := range b.Clicks {
			args = append(args, b.SessionID, b.PageViewID, c.At, c.X, c.Y, c.NodeID, c.Target)
		}
		if err := db.stmts.clicks.insert(ctx, tx, args); err != nil {
			return fmt.Errorf("insert clicks: %w", err)
		}
	}
	if len(b.Inputs) > 0 {
		args = args[:0]
		for _, in := range b.Inputs {
			args = append(args, b.SessionID, b.PageViewID, in.At, in.NodeID)
		}
		if err := db.stmts.inputs.insert(ctx, tx, args); err != nil {
			return fmt.Errorf("insert inputs: %w", err)
		}
	}
	if len(b.Errors) > 0 {
		args = args[:0]
		for _, e := range b.Errors {
			args = append(args, b.SessionID, b.PageViewID, e.At, e.Kind, e.Message, e.Stack, e.Source, e.Line, e.Column)
		}
		if err := db.stmts.errors.insert(ctx, tx, args); err != nil {
			return fmt.Errorf("insert errors: %w", err)
		}
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) &&
		(e.Code() == sqlitelib.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlitelib.SQLITE_CONSTRAINT_UNIQUE)
}

const sessionColumns = `id, started_at, ended_at, page_count, click_count, input_count, error_count, event_count,
	entry_url, user_agent, bytes, stored_bytes,
	browser, browser_version, os, device, country, ip_hash, ip,
	referrer, language, viewport_w, viewport_h, utm_source, utm_medium, utm_campaign,
	rage_click_count, dead_click_count, error_click_count, js_error_count, server_error_count, form_abandon_count,
	friction, converted, exit_url, user_id`

// Session returns the session with the given id, or store.ErrNotFound.
func (db *DB) Session(ctx context.Context, id string) (*store.Session, error) {
	row := db.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id)
	s, err := scanSession(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get session %q: %w", id, err)
	}
	return s, nil
}

func scanSession(row interface{ Scan(...any) error }) (*store.Session, error) {
	var s store.Session
	var started, ended sql.NullInt64
	c := &s.Client
	if err := row.Scan(&s.ID, &started, &ended, &s.PageCount, &s.ClickCount, &s.InputCount, &s.ErrorCount, &s.EventCount,
		&s.EntryURL, &s.UserAgent, &s.Bytes, &s.StoredBytes,
		&c.Browser, &c.BrowserVersion, &c.OS, &c.Device, &c.Country, &c.IPHash, &c.IP,
		&s.Referrer, &s.Language, &s.ViewportW, &s.ViewportH, &s.UTMSource, &s.UTMMedium, &s.UTMCampaign,
		&s.Signals.RageClick, &s.Signals.DeadClick, &s.Signals.ErrorClick, &s.Signals.JSError, &s.Signals.ServerError, &s.Signals.FormAbandon,
		&s.Friction, &s.Converted, &s.ExitURL, &s.UserID); err != nil {
		return nil, err
	}
	s.StartedAt = msTime(started)
	s.EndedAt = msTime(ended)
	return &s, nil
}

// msTime converts Unix ms to a UTC time; NULL becomes the zero time.
func msTime(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

// Activity returns the session's page views, clicks, inputs and errors,
// each in time order (then in the order stored), from one snapshot. Each
// list is empty, not nil, when there is nothing in it.
func (db *DB) Activity(ctx context.Context, id string) (*store.Activity, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("activity %q: %w", id, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("activity %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("activity %q: %w", id, err)
	}

	a := &store.Activity{PageViews: []*store.PageView{}, Clicks: []store.Click{}, Inputs: []store.Input{}, Errors: []store.JSError{}}
	// Page views without events yet have no start; they come last.
	err = query(ctx, tx, `
		SELECT id, session_id, url, started_at, ended_at, referrer, viewport_w, viewport_h, scroll_depth,
			click_count, input_count, error_count, event_count
		FROM page_views WHERE session_id = ? ORDER BY started_at IS NULL, started_at, id`, id,
		func(rows *sql.Rows) error {
			pv := &store.PageView{}
			var start, end sql.NullInt64
			if err := rows.Scan(&pv.ID, &pv.SessionID, &pv.URL, &start, &end, &pv.Referrer, &pv.ViewportW, &pv.ViewportH, &pv.ScrollDepth,
				&pv.ClickCount, &pv.InputCount, &pv.ErrorCount, &pv.EventCount); err != nil {
				return err
			}
			pv.StartedAt, pv.EndedAt = msTime(start), msTime(end)
			a.PageViews = append(a.PageViews, pv)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: page views: %w", id, err)
	}
	err = query(ctx, tx, `SELECT page_view_id, at, x, y, node_id, target FROM clicks WHERE session_id = ? ORDER BY at, rowid`, id,
		func(rows *sql.Rows) error {
			var c store.Click
			if err := rows.Scan(&c.PageViewID, &c.At, &c.X, &c.Y, &c.NodeID, &c.Target); err != nil {
				return err
			}
			a.Clicks = append(a.Clicks, c)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: clicks: %w", id, err)
	}
	err = query(ctx, tx, `SELECT page_view_id, at, node_id FROM inputs WHERE session_id = ? ORDER BY at, rowid`, id,
		func(rows *sql.Rows) error {
			var in store.Input
			if err := rows.Scan(&in.PageViewID, &in.At, &in.NodeID); err != nil {
				return err
			}
			a.Inputs = append(a.Inputs, in)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: inputs: %w", id, err)
	}
	err = query(ctx, tx, `
		SELECT page_view_id, at, kind, message, stack, source, line, col
		FROM js_errors WHERE session_id = ? ORDER BY at, rowid`, id,
		func(rows *sql.Rows) error {
			var e store.JSError
			if err := rows.Scan(&e.PageViewID, &e.At, &e.Kind, &e.Message, &e.Stack, &e.Source, &e.Line, &e.Column); err != nil {
				return err
			}
			a.Errors = append(a.Errors, e)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: errors: %w", id, err)
	}
	return a, nil
}

// query runs q and calls scan for each row.
func query(ctx context.Context, tx *sql.Tx, q string, arg any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
