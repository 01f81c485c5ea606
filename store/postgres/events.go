package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/klauspost/compress/zstd"
	"github.com/loupe-dev/loupe/store"
)

// codecZstd marks a chunk whose data is one zstd frame, as in store/sqlite:
// chunks are encoded identically in both backends.
const codecZstd = "zstd"

// encoderLevel is store/sqlite's; see BenchmarkCompressLevels there.
const encoderLevel = zstd.SpeedFastest

// The encoder and decoder are shared: EncodeAll and DecodeAll are safe for
// concurrent use.
var (
	encoder = mustEncoder()
	decoder = mustDecoder()
)

func mustEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(encoderLevel), zstd.WithEncoderConcurrency(0))
	if err != nil {
		panic(err) // only on invalid options
	}
	return e
}

func mustDecoder() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic(err) // only on invalid options
	}
	return d
}

func compress(src []byte) []byte {
	return encoder.EncodeAll(src, make([]byte, 0, len(src)/4))
}

// WriteEvents writes the session's events to w as one JSON array: the
// contents of each chunk's array, comma-joined, ordered by the chunk's first
// event timestamp (chunks without events first, as in SQLite), then page
// view, then seq. pgx reads the rows off the connection as they are
// iterated, and each chunk is decompressed on its own, so memory stays
// bounded by the largest chunk. It returns store.ErrNotFound, writing
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

	rows, err := tx.Query(ctx, `
		SELECT page_view_id, seq, codec, data FROM chunks
		WHERE session_id = $1
		ORDER BY first_ts NULLS FIRST, page_view_id, seq`, id)
	if err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	defer rows.Close()

	if _, err := io.WriteString(w, "["); err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	var (
		buf   []byte // decompressed chunk, reused
		wrote bool   // whether an event was written, so the next needs a comma
	)
	for rows.Next() {
		var (
			pageView, codec string
			seq             int
			data            pgtype.DriverBytes // valid until the next Next; no copy
		)
		if err := rows.Scan(&pageView, &seq, &codec, &data); err != nil {
			return fmt.Errorf("write events %q: %w", id, err)
		}
		if codec != codecZstd {
			return fmt.Errorf("write events %q: chunk %s/%d: unknown codec %q", id, pageView, seq, codec)
		}
		buf, err = decoder.DecodeAll(data, buf[:0])
		if err != nil {
			return fmt.Errorf("write events %q: decompress chunk %s/%d: %w", id, pageView, seq, err)
		}
		inner, err := arrayContents(buf)
		if err != nil {
			return fmt.Errorf("write events %q: chunk %s/%d: %w", id, pageView, seq, err)
		}
		if len(inner) == 0 {
			continue
		}
		if wrote {
			if _, err := io.WriteString(w, ","); err != nil {
				return fmt.Errorf("write events %q: %w", id, err)
			}
		}
		if _, err := w.Write(inner); err != nil {
			return fmt.Errorf("write events %q: %w", id, err)
		}
		wrote = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	if _, err := io.WriteString(w, "]"); err != nil {
		return fmt.Errorf("write events %q: %w", id, err)
	}
	return nil
}

// arrayContents returns what lies between the outer brackets of the JSON
// array in b, trimmed of JSON whitespace; it is empty for an empty array.
// It checks only the brackets: the collector has validated the JSON.
func arrayContents(b []byte) ([]byte, error) {
	b = bytes.Trim(b, " \t\r\n")
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, errors.New("events are not a JSON array")
	}
	return bytes.Trim(b[1:len(b)-1], " \t\r\n"), nil
}
