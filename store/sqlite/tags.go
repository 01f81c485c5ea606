package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Tags returns the session's tags, sorted; store.ErrNotFound if the
// session does not exist.
func (db *DB) Tags(ctx context.Context, sessionID string) ([]string, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("tags %q: %w", sessionID, err)
	}
	defer tx.Rollback()
	if err := sessionExists(ctx, tx, sessionID); err != nil {
		return nil, fmt.Errorf("tags %q: %w", sessionID, err)
	}
	tags := []string{}
	err = query(ctx, tx, `SELECT tag FROM session_tags WHERE session_id = ? ORDER BY tag`, sessionID,
		func(rows *sql.Rows) error {
			var t string
			if err := rows.Scan(&t); err != nil {
				return err
			}
			tags = append(tags, t)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("tags %q: %w", sessionID, err)
	}
	return tags, nil
}

// SetTags replaces the session's tags (validated with store.CheckTags)
// and returns them as stored; store.ErrNotFound if the session does not
// exist.
func (db *DB) SetTags(ctx context.Context, sessionID string, tags []string) ([]string, error) {
	tags, err := store.CheckTags(tags)
	if err != nil {
		return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
	}
	defer tx.Rollback()
	if err := sessionExists(ctx, tx, sessionID); err != nil {
		return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM session_tags WHERE session_id = ?`, sessionID); err != nil {
		return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
	}
	for _, t := range tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO session_tags (session_id, tag) VALUES (?, ?)`, sessionID, t); err != nil {
			return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
	}
	return tags, nil
}

// Notes returns the session's notes, oldest first; store.ErrNotFound if
// the session does not exist.
func (db *DB) Notes(ctx context.Context, sessionID string) ([]store.Note, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("notes %q: %w", sessionID, err)
	}
	defer tx.Rollback()
	if err := sessionExists(ctx, tx, sessionID); err != nil {
		return nil, fmt.Errorf("notes %q: %w", sessionID, err)
	}
	notes := []store.Note{}
	err = query(ctx, tx, `SELECT id, at_ms, text, author, created_at FROM session_notes WHERE session_id = ? ORDER BY id`, sessionID,
		func(rows *sql.Rows) error {
			n := store.Note{SessionID: sessionID}
			var at sql.NullInt64
			if err := rows.Scan(&n.ID, &at, &n.Text, &n.Author, &n.CreatedAt); err != nil {
				return err
			}
			if at.Valid {
				n.AtMS = &at.Int64
			}
			notes = append(notes, n)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("notes %q: %w", sessionID, err)
	}
	return notes, nil
}

// AddNote stores a note (validated with store.CheckNote) on its session
// and sets its ID and CreatedAt (if zero); store.ErrNotFound if the
// session does not exist. A session holds at most store.MaxNotes notes.
func (db *DB) AddNote(ctx context.Context, n *store.Note) error {
	if err := store.CheckNote(n); err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	if n.CreatedAt == 0 {
		n.CreatedAt = time.Now().UnixMilli()
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	defer tx.Rollback()
	if err := sessionExists(ctx, tx, n.SessionID); err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	var count int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM session_notes WHERE session_id = ?`, n.SessionID).Scan(&count); err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	if count >= store.MaxNotes {
		return fmt.Errorf("add note: %w", store.ErrTooMany)
	}
	var at sql.NullInt64
	if n.AtMS != nil {
		at = sql.NullInt64{Int64: *n.AtMS, Valid: true}
	}
	if err := tx.QueryRowContext(ctx, `
		INSERT INTO session_notes (session_id, at_ms, text, author, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		n.SessionID, at, n.Text, n.Author, n.CreatedAt).Scan(&n.ID); err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	return nil
}

// DeleteNote removes a note of the session; store.ErrNotFound if there is
// no such note.
func (db *DB) DeleteNote(ctx context.Context, sessionID string, id int64) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM session_notes WHERE session_id = ? AND id = ?`, sessionID, id)
	if err != nil {
		return fmt.Errorf("delete note: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete note: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("delete note %d: %w", id, store.ErrNotFound)
	}
	return nil
}
