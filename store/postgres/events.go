package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
)

// keyframeCacheBytes bounds the dictionaries and encoders kept for active
// sessions, as in store/sqlite: about 140 sessions (a typical keyframe is
// 20–100 KB and its encoder ~0.9 MiB, chunk.encoderBytes). A session that
// falls out is read back at its next append.
const keyframeCacheBytes = 128 << 20

// keyframe returns the session's keyframe, from this process's cache or
// else read (committed rows only) and decompressed; nil if it has none yet.
// Another node may set the keyframe meanwhile; AppendBatch checks against
// the session row under its lock.
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
	err := db.pool.QueryRow(ctx, `
		SELECT c.page_view_id, c.seq, c.codec, c.data
		FROM sessions s JOIN chunks c ON c.page_view_id = s.keyframe_page_view_id AND c.seq = s.keyframe_seq
		WHERE s.id = $1`, session).Scan(&pageView, &seq, &codec, &data)
	if errors.Is(err, pgx.ErrNoRows) {
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
// event timestamp (chunks without events first, as in SQLite), then page
// view, then seq. pgx reads the rows off the connection as they are
// iterated, and each chunk is decompressed on its own, so memory stays
// bounded by the largest chunk plus the session's keyframe dictionary
// (chunk.MaxDict), read before the chunks. It returns store.ErrNotFound, writing
// nothing, if the session does not exist.
//
// The read transaction, and its connection, stay open while w is written to.
func (db *DB) WriteEvents(ctx context.Context, id string, w io.Writer) error {
	// One snapshot for the session check and the chunks.
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("write events %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}

	// The dictionaries come first: the connection cannot run a query while
	// the chunks' cursor is open. A session's chunks all name its keyframe.
	dicts, err := readDicts(ctx, tx, id)
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}

	rows, err := tx.Query(ctx, `
		SELECT page_view_id, seq, codec, data, dict_page_view_id, dict_seq FROM chunks
		WHERE session_id = $1
		ORDER BY first_ts NULLS FIRST, page_view_id, seq`, id)
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	defer rows.Close()

	ew, err := chunk.NewEventWriter(w)
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	defer ew.Release()
	for rows.Next() {
		var (
			pageView, codec string
			seq             int
			data            pgtype.DriverBytes // valid until the next Next; no copy
			dictPageView    *string
			dictSeq         *int
		)
		if err := rows.Scan(&pageView, &seq, &codec, &data, &dictPageView, &dictSeq); err != nil {
			return fmt.Errorf("write events %q: %w", id, err)
		}
		var dict []byte
		if dictPageView != nil && dictSeq != nil {
			var ok bool
			if dict, ok = dicts[chunkKey{*dictPageView, *dictSeq}]; !ok {
				return fmt.Errorf("write events %q: chunk %s/%d: keyframe %s/%d missing", id, pageView, seq, *dictPageView, *dictSeq)
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

type chunkKey struct {
	pageView string
	seq      int
}

// readDicts returns the dictionaries of the keyframes the session's chunks
// name: normally one, none for a session without dictionary chunks.
func readDicts(ctx context.Context, tx pgx.Tx, session string) (map[chunkKey][]byte, error) {
	rows, err := tx.Query(ctx, `
		SELECT page_view_id, seq, codec, data FROM chunks
		WHERE (page_view_id, seq) IN (
			SELECT DISTINCT dict_page_view_id, dict_seq FROM chunks
			WHERE session_id = $1 AND dict_page_view_id IS NOT NULL)`, session)
	if err != nil {
		return nil, fmt.Errorf("read keyframes: %w", err)
	}
	defer rows.Close()
	dicts := map[chunkKey][]byte{}
	for rows.Next() {
		var (
			k     chunkKey
			codec string
			data  pgtype.DriverBytes
		)
		if err := rows.Scan(&k.pageView, &k.seq, &codec, &data); err != nil {
			return nil, fmt.Errorf("read keyframes: %w", err)
		}
		raw, err := chunk.Decode(data, codec, nil)
		if err != nil {
			return nil, fmt.Errorf("read keyframe %s/%d: %w", k.pageView, k.seq, err)
		}
		d := chunk.Dict(raw)
		if len(d) < len(raw) {
			d = bytes.Clone(d) // let the rest go
		}
		dicts[k] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read keyframes: %w", err)
	}
	return dicts, nil
}
