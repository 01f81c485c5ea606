package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/store"
	msqlite "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"
)

// Listing bounds, as documented on store.SessionFilter.
const (
	defaultLimit = 50
	maxLimit     = 1000
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
	// Compress before taking the write connection: the writer is shared by
	// every appender, compression is not.
	data := compress(b.Events)

	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	defer tx.Rollback()

	if err := db.appendBatch(ctx, tx, b, data); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
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

func (db *DB) appendBatch(ctx context.Context, tx *sql.Tx, b *store.Batch, data []byte) error {
	stmt := func(s *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, s) }
	// The write transaction began IMMEDIATE, so nothing can slip in between
	// these checks and the writes below.
	var owner string
	err := stmt(db.stmts.pageViewOwner).QueryRowContext(ctx, b.PageViewID).Scan(&owner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
	var urlSeq sql.NullInt64
	if b.URL != "" {
		urlSeq = sql.NullInt64{Int64: int64(b.Seq), Valid: true}
	}

	if _, err := stmt(db.stmts.upsertSession).ExecContext(ctx,
		b.SessionID, first, last, len(b.Clicks), b.EventCount, b.UserAgent,
		len(b.Events), len(data), received,
	); err != nil {
		return fmt.Errorf("upsert session: %w", err)
	}

	if _, err := stmt(db.stmts.upsertPageView).ExecContext(ctx,
		b.PageViewID, b.SessionID, b.URL, urlSeq, first, last, len(b.Clicks), b.EventCount,
	); err != nil {
		return fmt.Errorf("upsert page view: %w", err)
	}

	if _, err := stmt(db.stmts.insertChunk).ExecContext(ctx,
		b.PageViewID, b.Seq, b.SessionID, first, last, b.EventCount, len(b.Events), received, codecZstd, data,
	); err != nil {
		if isUniqueViolation(err) { // unreachable after the check above; kept as a guard
			return store.ErrDuplicate
		}
		return fmt.Errorf("insert chunk: %w", err)
	}

	if _, err := stmt(db.stmts.updateSession).ExecContext(ctx, b.SessionID); err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) &&
		(e.Code() == sqlitelib.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlitelib.SQLITE_CONSTRAINT_UNIQUE)
}

const sessionColumns = `id, started_at, ended_at, page_count, click_count, event_count, entry_url, user_agent, bytes, stored_bytes`

// Sessions lists sessions, newest first, then by id descending.
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
	q += ` ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limit, offset)

	rows, err := db.read.QueryContext(ctx, q, args...)
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
	if err := row.Scan(&s.ID, &started, &ended, &s.PageCount, &s.ClickCount, &s.EventCount,
		&s.EntryURL, &s.UserAgent, &s.Bytes, &s.StoredBytes); err != nil {
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

// Activity returns the session's derived rows.
//
// Transitional: page views only, until the derived-row tables arrive in the
// next migration.
func (db *DB) Activity(ctx context.Context, id string) (*store.Activity, error) {
	if _, err := db.Session(ctx, id); err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx,
		`SELECT id, session_id, url, started_at, ended_at, click_count, event_count
		 FROM page_views WHERE session_id = ? ORDER BY started_at, id`, id)
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	defer rows.Close()
	a := &store.Activity{}
	for rows.Next() {
		pv := &store.PageView{}
		var start, end sql.NullInt64
		if err := rows.Scan(&pv.ID, &pv.SessionID, &pv.URL, &start, &end, &pv.ClickCount, &pv.EventCount); err != nil {
			return nil, fmt.Errorf("activity: %w", err)
		}
		pv.StartedAt, pv.EndedAt = time.UnixMilli(start.Int64).UTC(), time.UnixMilli(end.Int64).UTC()
		a.PageViews = append(a.PageViews, pv)
	}
	return a, rows.Err()
}
