package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/loupe-dev/loupe/store"
)

// Tags returns the session's tags, sorted; store.ErrNotFound if the
// session does not exist.
func (db *DB) Tags(ctx context.Context, sessionID string) ([]string, error) {
	tx, err := db.readTx(ctx, sessionID)
	if err != nil {
		return nil, fmt.Errorf("tags %q: %w", sessionID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tags := []string{}
	err = query(ctx, tx, `SELECT tag FROM session_tags WHERE session_id = $1 ORDER BY tag`, sessionID,
		func(rows pgx.Rows) error {
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
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Locks the session row: concurrent SetTags of one session serialize.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, sessionID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM session_tags WHERE session_id = $1`, sessionID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO session_tags (session_id, tag) SELECT $1, unnest($2::text[])`, sessionID, tags)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set tags %q: %w", sessionID, err)
	}
	return tags, nil
}

// Notes returns the session's notes, oldest first; store.ErrNotFound if
// the session does not exist.
func (db *DB) Notes(ctx context.Context, sessionID string) ([]store.Note, error) {
	tx, err := db.readTx(ctx, sessionID)
	if err != nil {
		return nil, fmt.Errorf("notes %q: %w", sessionID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	notes := []store.Note{}
	err = query(ctx, tx, `SELECT id, at_ms, text, author, created_at FROM session_notes WHERE session_id = $1 ORDER BY id`, sessionID,
		func(rows pgx.Rows) error {
			n := store.Note{SessionID: sessionID}
			if err := rows.Scan(&n.ID, &n.AtMS, &n.Text, &n.Author, &n.CreatedAt); err != nil {
				return err
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
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, n.SessionID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		var count int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM session_notes WHERE session_id = $1`, n.SessionID).Scan(&count); err != nil {
			return err
		}
		if count >= store.MaxNotes {
			return store.ErrTooMany
		}
		return tx.QueryRow(ctx, `
			INSERT INTO session_notes (session_id, at_ms, text, author, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			n.SessionID, n.AtMS, n.Text, n.Author, n.CreatedAt).Scan(&n.ID)
	})
	if err != nil {
		return fmt.Errorf("add note: %w", err)
	}
	return nil
}

// DeleteNote removes a note of the session; store.ErrNotFound if there is
// no such note.
func (db *DB) DeleteNote(ctx context.Context, sessionID string, id int64) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM session_notes WHERE session_id = $1 AND id = $2`, sessionID, id)
	if err != nil {
		return fmt.Errorf("delete note: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete note %d: %w", id, store.ErrNotFound)
	}
	return nil
}
