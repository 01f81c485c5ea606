package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// statements are AppendBatch's queries, prepared once on the single write
// connection: parsing them anew took about a quarter of AppendBatch's CPU.
type statements struct {
	pageViewOwner  *sql.Stmt
	chunkExists    *sql.Stmt
	keyframe       *sql.Stmt
	upsertSession  *sql.Stmt
	upsertPageView *sql.Stmt
	insertChunk    *sql.Stmt
	updateSession  *sql.Stmt
	insertAssets   *sql.Stmt
	// Signals (signals.go).
	saveState     *sql.Stmt
	countSignals  *sql.Stmt
	readFriction  *sql.Stmt
	writeFriction *sql.Stmt

	clicks, inputs, errors, signals rowInserter
}

func (s *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.pageViewOwner, `SELECT session_id, signal_state FROM page_views WHERE id = ?`},
		{&s.chunkExists, `SELECT count(*) FROM chunks WHERE page_view_id = ? AND seq = ?`},
		{&s.keyframe, `SELECT keyframe_page_view_id, keyframe_seq FROM sessions WHERE id = ?`},
		// Scalar min() and max() return NULL if any argument is NULL, hence
		// the coalesce pairs: NULL stands for "no events yet" on either side.
		// The client's fields are taken together from the first batch that
		// has any of them. The keyframe is set once.
		{&s.upsertSession, `
		INSERT INTO sessions (id, started_at, ended_at, click_count, input_count, error_count, event_count,
			user_agent, bytes, stored_bytes, created_at,
			browser, browser_version, os, device, country, ip_hash, ip,
			keyframe_page_view_id, keyframe_seq)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
		ON CONFLICT (id) DO UPDATE SET
			started_at   = min(coalesce(started_at, excluded.started_at), coalesce(excluded.started_at, started_at)),
			ended_at     = max(coalesce(ended_at, excluded.ended_at), coalesce(excluded.ended_at, ended_at)),
			click_count  = click_count + excluded.click_count,
			input_count  = input_count + excluded.input_count,
			error_count  = error_count + excluded.error_count,
			event_count  = event_count + excluded.event_count,
			user_agent   = CASE WHEN user_agent = '' THEN excluded.user_agent ELSE user_agent END,
			bytes        = bytes + excluded.bytes,
			stored_bytes = stored_bytes + excluded.stored_bytes,
			created_at   = coalesce(created_at, excluded.created_at),
			` + clientColumnsUpdate + `,
			keyframe_page_view_id = coalesce(keyframe_page_view_id, excluded.keyframe_page_view_id),
			keyframe_seq          = coalesce(keyframe_seq, excluded.keyframe_seq)`},
		// A page view's URL and viewport are those of its lowest-seq batch
		// that has one, whatever order its batches arrive in; its page info
		// that of the first batch received with one (there is one: seq 0).
		{&s.upsertPageView, `
		INSERT INTO page_views (id, session_id, url, url_seq, started_at, ended_at, click_count, input_count, error_count, event_count,
			scroll_depth, viewport_w, viewport_h, viewport_seq,
			has_page, referrer, language, utm_source, utm_medium, utm_campaign, utm_term, utm_content, tab)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)
		ON CONFLICT (id) DO UPDATE SET
			url = CASE WHEN excluded.url_seq < coalesce(url_seq, excluded.url_seq + 1) THEN excluded.url ELSE url END,
			url_seq = CASE WHEN excluded.url_seq < coalesce(url_seq, excluded.url_seq + 1) THEN excluded.url_seq ELSE url_seq END,
			started_at  = min(coalesce(started_at, excluded.started_at), coalesce(excluded.started_at, started_at)),
			ended_at    = max(coalesce(ended_at, excluded.ended_at), coalesce(excluded.ended_at, ended_at)),
			click_count = click_count + excluded.click_count,
			input_count = input_count + excluded.input_count,
			error_count = error_count + excluded.error_count,
			event_count = event_count + excluded.event_count,
			scroll_depth = max(scroll_depth, excluded.scroll_depth),
			viewport_w = CASE WHEN excluded.viewport_seq < coalesce(viewport_seq, excluded.viewport_seq + 1) THEN excluded.viewport_w ELSE viewport_w END,
			viewport_h = CASE WHEN excluded.viewport_seq < coalesce(viewport_seq, excluded.viewport_seq + 1) THEN excluded.viewport_h ELSE viewport_h END,
			viewport_seq = CASE WHEN excluded.viewport_seq < coalesce(viewport_seq, excluded.viewport_seq + 1) THEN excluded.viewport_seq ELSE viewport_seq END,
			` + pageColumnsUpdate},
		{&s.insertChunk, `
		INSERT INTO chunks (page_view_id, seq, session_id, first_ts, last_ts, event_count, raw_bytes, received_at, codec, data,
			dict_page_view_id, dict_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// Derived from page_views rather than incremented, so that the entry
		// URL, acquisition and viewport are right even when a later page's
		// batch arrives first.
		{&s.updateSession, `
		UPDATE sessions SET
			page_count = (SELECT count(*) FROM page_views WHERE session_id = ?1 AND event_count > 0),
			entry_url = coalesce((
				SELECT url FROM page_views
				WHERE session_id = ?1 AND url <> ''
				ORDER BY started_at IS NULL, started_at, id
				LIMIT 1), ''),
			exit_url = coalesce((
				SELECT url FROM page_views
				WHERE session_id = ?1 AND url <> ''
				ORDER BY started_at IS NULL, started_at DESC, id DESC
				LIMIT 1), ''),
			referrer     = coalesce(a.referrer, ''),
			language     = coalesce(a.language, ''),
			utm_source   = coalesce(a.utm_source, ''),
			utm_medium   = coalesce(a.utm_medium, ''),
			utm_campaign = coalesce(a.utm_campaign, ''),
			viewport_w   = coalesce(v.viewport_w, 0),
			viewport_h   = coalesce(v.viewport_h, 0)
		FROM (SELECT 1) AS one
		LEFT JOIN (
			SELECT referrer, language, utm_source, utm_medium, utm_campaign FROM page_views
			WHERE session_id = ?1 AND has_page = 1
			ORDER BY started_at IS NULL, started_at, id
			LIMIT 1) AS a ON true
		LEFT JOIN (
			SELECT viewport_w, viewport_h FROM page_views
			WHERE session_id = ?1 AND viewport_w > 0
			ORDER BY started_at IS NULL, started_at, id
			LIMIT 1) AS v ON true
		WHERE sessions.id = ?1`},
		{&s.saveState, saveStateSQL},
		{&s.countSignals, countSignalsSQL},
		{&s.readFriction, readFrictionSQL},
		{&s.writeFriction, writeFrictionSQL},
		// ?2 is the batch's AssetURLs as a JSON array of strings.
		{&s.insertAssets, `
		INSERT OR IGNORE INTO session_assets (session_id, url)
		SELECT ?1, value FROM json_each(?2) WHERE value <> ''`},
	} {
		stmt, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	for _, r := range []struct {
		ins  *rowInserter
		head string
		cols int
	}{
		{&s.clicks, `INSERT INTO clicks (session_id, page_view_id, at, x, y, node_id, target) VALUES `, 7},
		{&s.inputs, `INSERT INTO inputs (session_id, page_view_id, at, node_id) VALUES `, 4},
		{&s.errors, `INSERT INTO js_errors (session_id, page_view_id, at, kind, message, stack, source, line, col) VALUES `, 9},
		{&s.signals, `INSERT INTO signals (session_id, page_view_id, at, kind, x, y, node_id, target, url, detail) VALUES `, 10},
	} {
		if err := r.ins.prepare(ctx, db, r.head, r.cols); err != nil {
			return err
		}
	}
	return nil
}

// clientColumnsUpdate takes every client column from the new row when the
// stored ones are all empty.
var clientColumnsUpdate = func() string {
	cols := []string{"browser", "browser_version", "os", "device", "country", "ip_hash", "ip"}
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(",\n\t\t\t")
		}
		fmt.Fprintf(&b, "%s = CASE WHEN %s = '' THEN excluded.%s ELSE %s END", c, strings.Join(cols, " || "), c, c)
	}
	return b.String()
}()

// pageColumnsUpdate takes the page info from the first batch that has one.
var pageColumnsUpdate = func() string {
	cols := []string{"referrer", "language", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "tab", "has_page"}
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(",\n\t\t\t")
		}
		fmt.Fprintf(&b, "%s = CASE WHEN has_page = 0 THEN excluded.%s ELSE %s END", c, c, c)
	}
	return b.String()
}()

// rowInserter inserts any number of rows into one table with few
// statements: multi-row INSERTs of fixed sizes, prepared once, so that
// n rows take at most a handful of executions.
type rowInserter struct {
	cols  int
	stmts []*sql.Stmt // stmts[i] inserts insertSizes[i] rows
}

// insertSizes are the row counts of the prepared INSERTs, largest first.
// SQLite allows 32766 parameters; 64 rows × 9 columns is well within.
var insertSizes = []int{64, 16, 4, 1}

func (r *rowInserter) prepare(ctx context.Context, db *sql.DB, head string, cols int) error {
	r.cols = cols
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	for _, n := range insertSizes {
		q := head + strings.TrimSuffix(strings.Repeat(tuple+", ", n), ", ")
		stmt, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", head, err)
		}
		r.stmts = append(r.stmts, stmt)
	}
	return nil
}

// insert inserts the rows whose values args holds, r.cols per row.
func (r *rowInserter) insert(ctx context.Context, tx *sql.Tx, args []any) error {
	for i, n := range insertSizes {
		for len(args) >= n*r.cols {
			if _, err := tx.StmtContext(ctx, r.stmts[i]).ExecContext(ctx, args[:n*r.cols]...); err != nil {
				return err
			}
			args = args[n*r.cols:]
		}
	}
	return nil
}

func (s *statements) close() error {
	var errs []error
	all := []*sql.Stmt{s.pageViewOwner, s.chunkExists, s.keyframe, s.upsertSession, s.upsertPageView, s.insertChunk, s.updateSession, s.insertAssets,
		s.saveState, s.countSignals, s.readFriction, s.writeFriction}
	for _, r := range []rowInserter{s.clicks, s.inputs, s.errors, s.signals} {
		all = append(all, r.stmts...)
	}
	for _, st := range all {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
