package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// statements are AppendBatch's queries, prepared once on the single write
// connection: parsing them anew took about a quarter of AppendBatch's CPU.
type statements struct {
	pageViewOwner  *sql.Stmt
	chunkExists    *sql.Stmt
	upsertSession  *sql.Stmt
	upsertPageView *sql.Stmt
	insertChunk    *sql.Stmt
	updateSession  *sql.Stmt
}

func (s *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.pageViewOwner, `SELECT session_id FROM page_views WHERE id = ?`},
		{&s.chunkExists, `SELECT count(*) FROM chunks WHERE page_view_id = ? AND seq = ?`},
		// Scalar min() and max() return NULL if any argument is NULL, hence
		// the coalesce pairs: NULL stands for "no events yet" on either side.
		{&s.upsertSession, `
		INSERT INTO sessions (id, started_at, ended_at, click_count, event_count, user_agent, bytes, stored_bytes, created_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
		ON CONFLICT (id) DO UPDATE SET
			started_at   = min(coalesce(started_at, excluded.started_at), coalesce(excluded.started_at, started_at)),
			ended_at     = max(coalesce(ended_at, excluded.ended_at), coalesce(excluded.ended_at, ended_at)),
			click_count  = click_count + excluded.click_count,
			event_count  = event_count + excluded.event_count,
			user_agent   = CASE WHEN user_agent = '' THEN excluded.user_agent ELSE user_agent END,
			bytes        = bytes + excluded.bytes,
			stored_bytes = stored_bytes + excluded.stored_bytes,
			created_at   = coalesce(created_at, excluded.created_at)`},
		// A page view's URL is the one from its lowest-seq batch that has a
		// URL, whatever order its batches arrive in.
		{&s.upsertPageView, `
		INSERT INTO page_views (id, session_id, url, url_seq, started_at, ended_at, click_count, event_count)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
		ON CONFLICT (id) DO UPDATE SET
			url = CASE WHEN excluded.url_seq < coalesce(url_seq, excluded.url_seq + 1) THEN excluded.url ELSE url END,
			url_seq = CASE WHEN excluded.url_seq < coalesce(url_seq, excluded.url_seq + 1) THEN excluded.url_seq ELSE url_seq END,
			started_at  = min(coalesce(started_at, excluded.started_at), coalesce(excluded.started_at, started_at)),
			ended_at    = max(coalesce(ended_at, excluded.ended_at), coalesce(excluded.ended_at, ended_at)),
			click_count = click_count + excluded.click_count,
			event_count = event_count + excluded.event_count`},
		{&s.insertChunk, `
		INSERT INTO chunks (page_view_id, seq, session_id, first_ts, last_ts, event_count, raw_bytes, received_at, codec, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// Derived from page_views rather than incremented, so that the entry
		// URL is right even when a later page's batch arrives first.
		{&s.updateSession, `
		UPDATE sessions SET
			page_count = (SELECT count(*) FROM page_views WHERE session_id = ?1 AND event_count > 0),
			entry_url = coalesce((
				SELECT url FROM page_views
				WHERE session_id = ?1 AND url <> ''
				ORDER BY started_at IS NULL, started_at, id
				LIMIT 1), '')
		WHERE id = ?1`},
	} {
		stmt, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	return nil
}

func (s *statements) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.pageViewOwner, s.chunkExists, s.upsertSession, s.upsertPageView, s.insertChunk, s.updateSession} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
