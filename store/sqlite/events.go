package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
)

// keyframeCacheBytes bounds the dictionaries and encoders kept for active
// sessions: about 140 sessions (a typical keyframe is 20–100 KB and its
// encoder ~0.9 MiB, chunk.encoderBytes). A session that falls out is read
// back at its next append.
const keyframeCacheBytes = 128 << 20

// keyframe returns the session's keyframe, from the cache or else read
// (committed rows only) and decompressed; nil if it has none yet.
func (db *DB) keyframe(ctx context.Context, session string) (*chunk.Keyframe, error) {
	if kf := db.keyframes.Get(session); kf != nil {
		return kf, nil
	}
	var (
		pageView string
		seq      int
		codec    string
		data     []byte
	)
	err := db.read.QueryRowContext(ctx, `
		SELECT c.page_view_id, c.seq, c.codec, c.data
		FROM sessions s JOIN chunks c ON c.page_view_id = s.keyframe_page_view_id AND c.seq = s.keyframe_seq
		WHERE s.id = ?`, session).Scan(&pageView, &seq, &codec, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read keyframe: %w", err)
	}
	raw, err := chunk.Decode(data, codec, nil)
	if err != nil {
		return nil, fmt.Errorf("read keyframe %s/%d: %w", pageView, seq, err)
	}
	kf := chunk.NewKeyframe(pageView, seq, raw)
	db.keyframes.Add(session, kf)
	return kf, nil
}

// WriteEvents writes the session's events to w as one JSON array: the
// contents of each chunk's array, comma-joined, ordered by the chunk's first
// event timestamp (then page view, then seq). It decompresses one chunk at a
// time while reading chunks through a cursor, so memory stays bounded by the
// largest chunk plus one keyframe dictionary (chunk.MaxDict). It returns store.ErrNotFound, writing nothing, if the
// session does not exist.
//
// The read transaction stays open while w is written to; a slow w holds a
// read connection and keeps the WAL from being checkpointed past it.
func (db *DB) WriteEvents(ctx context.Context, id string, w io.Writer) error {
	// One transaction so that the session check and the chunks read the
	// same snapshot.
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	defer tx.Rollback()

	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("write events %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}

	rows, err := tx.QueryContext(ctx, `
		SELECT page_view_id, seq, codec, data, dict_page_view_id, dict_seq FROM chunks
		WHERE session_id = ?
		ORDER BY first_ts, page_view_id, seq`, id)
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	defer rows.Close()

	ew, err := chunk.NewEventWriter(w)
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	defer ew.Release()
	var dicts dictReader // the one dictionary in use
	for rows.Next() {
		var (
			pageView, codec string
			seq             int
			data            sql.RawBytes // valid until the next Next; no copy
			dictPageView    sql.NullString
			dictSeq         sql.NullInt64
		)
		if err := rows.Scan(&pageView, &seq, &codec, &data, &dictPageView, &dictSeq); err != nil {
			return fmt.Errorf("write events %q: %w", id, err)
		}
		var dict []byte
		if dictPageView.Valid {
			if dict, err = dicts.get(ctx, tx, dictPageView.String, int(dictSeq.Int64)); err != nil {
				return fmt.Errorf("write events %q: chunk %s/%d: %w", id, pageView, seq, err)
			}
		}
		if err := ew.Add(data, codec, dict); err != nil {
			return fmt.Errorf("write events %q: chunk %s/%d: %w", id, pageView, seq, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	if err := ew.End(); err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	return nil
}

// dictReader reads a keyframe's dictionary, keeping the last one: a
// session's chunks all name the same keyframe.
type dictReader struct {
	pageView string
	seq      int
	dict     []byte
}

func (r *dictReader) get(ctx context.Context, tx *sql.Tx, pageView string, seq int) ([]byte, error) {
	if r.dict != nil && r.pageView == pageView && r.seq == seq {
		return r.dict, nil
	}
	var codec string
	var data []byte
	err := tx.QueryRowContext(ctx, `SELECT codec, data FROM chunks WHERE page_view_id = ? AND seq = ?`, pageView, seq).Scan(&codec, &data)
	if err != nil {
		return nil, fmt.Errorf("read keyframe %s/%d: %w", pageView, seq, err)
	}
	raw, err := chunk.Decode(data, codec, nil)
	if err != nil {
		return nil, fmt.Errorf("read keyframe %s/%d: %w", pageView, seq, err)
	}
	r.pageView, r.seq, r.dict = pageView, seq, chunk.Dict(raw)
	if len(r.dict) < len(raw) {
		r.dict = bytes.Clone(r.dict) // let the rest go
	}
	return r.dict, nil
}
