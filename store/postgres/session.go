package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/loupe-dev/loupe/store"
)

// Listing bounds, as documented on store.SessionFilter.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// AppendBatch's statements. pgx prepares each once per connection and
// caches it. They are store/sqlite's, in PostgreSQL: least() and greatest()
// ignore NULLs, which is what SQLite's coalesce pairs spell out.
const (
	// First, so that the session's row lock is held for the rest of the
	// transaction: appends to one session serialize here, and the statements
	// below (each with its own READ COMMITTED snapshot) see every page view
	// committed by the appends before.
	upsertSessionSQL = `
	INSERT INTO sessions AS s (id, started_at, ended_at, click_count, event_count, user_agent, bytes, stored_bytes, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
	ON CONFLICT (id) DO UPDATE SET
		started_at   = least(s.started_at, excluded.started_at),
		ended_at     = greatest(s.ended_at, excluded.ended_at),
		click_count  = s.click_count + excluded.click_count,
		event_count  = s.event_count + excluded.event_count,
		user_agent   = CASE WHEN s.user_agent = '' THEN excluded.user_agent ELSE s.user_agent END,
		bytes        = s.bytes + excluded.bytes,
		stored_bytes = s.stored_bytes + excluded.stored_bytes,
		created_at   = coalesce(s.created_at, excluded.created_at)`

	// A page view's URL is the one from its lowest-seq batch that has a URL,
	// whatever order its batches arrive in. RETURNING gives the page view's
	// session, which must be the batch's.
	upsertPageViewSQL = `
	INSERT INTO page_views AS p (id, session_id, url, url_seq, started_at, ended_at, click_count, event_count)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (id) DO UPDATE SET
		url         = CASE WHEN excluded.url_seq < coalesce(p.url_seq, excluded.url_seq + 1) THEN excluded.url ELSE p.url END,
		url_seq     = CASE WHEN excluded.url_seq < coalesce(p.url_seq, excluded.url_seq + 1) THEN excluded.url_seq ELSE p.url_seq END,
		started_at  = least(p.started_at, excluded.started_at),
		ended_at    = greatest(p.ended_at, excluded.ended_at),
		click_count = p.click_count + excluded.click_count,
		event_count = p.event_count + excluded.event_count
	RETURNING session_id`

	// No row inserted means the batch is a duplicate. A concurrent insert of
	// the same key waits for the other transaction and then does nothing.
	insertChunkSQL = `
	INSERT INTO chunks (page_view_id, seq, session_id, first_ts, last_ts, event_count, raw_bytes, received_at, codec, data)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (page_view_id, seq) DO NOTHING`

	// Derived from page_views rather than incremented, so that the entry URL
	// is right even when a later page's batch arrives first.
	updateSessionSQL = `
	UPDATE sessions SET
		page_count = (SELECT count(*) FROM page_views WHERE session_id = $1 AND event_count > 0),
		entry_url = coalesce((
			SELECT url FROM page_views
			WHERE session_id = $1 AND url <> ''
			ORDER BY started_at NULLS LAST, id
			LIMIT 1), '')
	WHERE id = $1`
)

// AppendBatch stores b as one compressed chunk and folds its summary into
// the page view and session rows, all in one transaction. It returns
// store.ErrDuplicate, storing nothing, if b's page view and sequence number
// are already stored.
//
// A batch with EventCount 0 is stored (so that a retry of it is still a
// duplicate) but its FirstTS and LastTS are ignored, and its page view does
// not count towards PageCount until it sends events.
func (db *DB) AppendBatch(ctx context.Context, b *store.Batch) error {
	if err := validateBatch(b); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	// Compress before taking a connection.
	data := compress(b.Events)

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	if err := appendBatch(ctx, tx, b, data); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("append batch: commit: %w", err)
	}
	return nil
}

func validateBatch(b *store.Batch) error {
	switch {
	case b == nil:
		return errors.New("nil batch")
	case b.SessionID == "":
		return errors.New("empty session id")
	case b.PageViewID == "":
		return errors.New("empty page view id")
	case b.Seq < 0:
		return fmt.Errorf("negative seq %d", b.Seq)
	case b.EventCount < 0:
		return errors.New("negative count")
	}
	if _, err := arrayContents(b.Events); err != nil {
		return err
	}
	return nil
}

// appendBatch sends all of the batch's statements in one round trip (a pgx
// pipeline) and then checks the results. When the batch turns out to be a
// duplicate or to name another session's page view, the caller's rollback
// undoes what the later statements did.
func appendBatch(ctx context.Context, tx pgx.Tx, b *store.Batch, data []byte) error {
	// Timestamps only count for batches that hold events.
	var first, last, received *int64
	if b.EventCount > 0 {
		first, last = &b.FirstTS, &b.LastTS
	}
	if !b.ReceivedAt.IsZero() {
		ms := b.ReceivedAt.UnixMilli()
		received = &ms
	}
	var urlSeq *int
	if b.URL != "" {
		urlSeq = &b.Seq
	}

	var q pgx.Batch
	q.Queue(upsertSessionSQL, b.SessionID, first, last, len(b.Clicks), b.EventCount, b.UserAgent,
		len(b.Events), len(data), received)
	q.Queue(upsertPageViewSQL, b.PageViewID, b.SessionID, b.URL, urlSeq, first, last, len(b.Clicks), b.EventCount)
	q.Queue(insertChunkSQL, b.PageViewID, b.Seq, b.SessionID, first, last, b.EventCount, len(b.Events), received,
		codecZstd, data)
	queueDerived(&q, b)
	q.Queue(updateSessionSQL, b.SessionID)

	br := tx.SendBatch(ctx, &q)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("upsert session: %w", err)
	}
	var owner string
	if err := br.QueryRow().Scan(&owner); err != nil {
		return fmt.Errorf("upsert page view: %w", err)
	}
	if owner != b.SessionID {
		return fmt.Errorf("page view %q belongs to another session", b.PageViewID)
	}
	tag, err := br.Exec()
	if err != nil {
		return fmt.Errorf("insert chunk: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrDuplicate
	}
	if err := readDerived(br, b); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	return nil
}

// queueDerived queues the inserts of the batch's derived rows; readDerived
// reads their results. Transitional: none until migration 0002.
func queueDerived(q *pgx.Batch, b *store.Batch) {}

func readDerived(br pgx.BatchResults, b *store.Batch) error { return nil }

const sessionColumns = `id, started_at, ended_at, page_count, click_count, event_count, entry_url, user_agent, bytes, stored_bytes`

// Sessions lists sessions, newest first (sessions without events last), then
// by id descending.
func (db *DB) Sessions(ctx context.Context, f store.SessionFilter) ([]*store.Session, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	offset := max(f.Offset, 0)

	// No filters yet; new ones append to where and args.
	var where []string
	var args []any
	q := `SELECT ` + sessionColumns + ` FROM sessions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit, offset)
	q += fmt.Sprintf(` ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args))

	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	ss := []*store.Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		ss = append(ss, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return ss, nil
}

// Session returns the session with the given id, or store.ErrNotFound.
func (db *DB) Session(ctx context.Context, id string) (*store.Session, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id)
	s, err := scanSession(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get session %q: %w", id, err)
	}
	return s, nil
}

func scanSession(row pgx.Row) (*store.Session, error) {
	var s store.Session
	var started, ended *int64
	if err := row.Scan(&s.ID, &started, &ended, &s.PageCount, &s.ClickCount, &s.EventCount,
		&s.EntryURL, &s.UserAgent, &s.Bytes, &s.StoredBytes); err != nil {
		return nil, err
	}
	s.StartedAt = msTime(started)
	s.EndedAt = msTime(ended)
	return &s, nil
}

// msTime converts Unix ms to a UTC time; NULL becomes the zero time.
func msTime(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return time.UnixMilli(*ms).UTC()
}

// Activity returns the session's derived rows.
//
// Transitional: page views only, until the derived-row tables arrive in
// migration 0002.
func (db *DB) Activity(ctx context.Context, id string) (*store.Activity, error) {
	if _, err := db.Session(ctx, id); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx,
		`SELECT id, session_id, url, started_at, ended_at, click_count, event_count
		 FROM page_views WHERE session_id = $1 ORDER BY started_at NULLS FIRST, id`, id)
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	defer rows.Close()
	a := &store.Activity{}
	for rows.Next() {
		pv := &store.PageView{}
		var start, end *int64
		if err := rows.Scan(&pv.ID, &pv.SessionID, &pv.URL, &start, &end, &pv.ClickCount, &pv.EventCount); err != nil {
			return nil, fmt.Errorf("activity: %w", err)
		}
		pv.StartedAt, pv.EndedAt = msTime(start), msTime(end)
		a.PageViews = append(a.PageViews, pv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	return a, nil
}
