package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/loupe-dev/loupe/store"
)

// codecZstd marks a chunk whose data is one zstd frame. The codec column
// leaves room for another encoding (say, zstd with a trained rrweb
// dictionary) without rewriting old rows.
const codecZstd = "zstd"

// encoderLevel trades ingest CPU for disk. Measured with
// BenchmarkCompressLevels on synthetic rrweb batches (21 KB incremental,
// 63 KB with a full snapshot; one 2-core machine): SpeedFastest 5.9× at
// ~180 MB/s, SpeedDefault 5.8× at ~100 MB/s, SpeedBetterCompression 6.1× at
// ~60 MB/s, SpeedBestCompression 6.4× at ~14 MB/s. Fastest beats Default on
// both counts for inputs this small, and Better buys 3% of disk for three
// times the CPU. Re-measure on real recordings before changing it; a trained
// dictionary would gain more than any level.
const encoderLevel = zstd.SpeedFastest

// The encoder and decoder are shared: EncodeAll and DecodeAll are safe for
// concurrent use, each running up to GOMAXPROCS calls at once.
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
// event timestamp (then page view, then seq). It decompresses one chunk at a
// time while reading chunks through a cursor, so memory stays bounded by the
// largest chunk. It returns store.ErrNotFound, writing nothing, if the
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
		SELECT page_view_id, seq, codec, data FROM chunks
		WHERE session_id = ?
		ORDER BY first_ts, page_view_id, seq`, id)
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
			data            sql.RawBytes // valid until the next Next; no copy
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
