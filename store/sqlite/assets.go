package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
)

var _ store.AssetStore = (*DB)(nil)

// PutAsset stores body unless a body with its hash is stored already, and
// records the capture unless the URL's latest capture (by capture time)
// has that hash. a.Hash must be the hex SHA-256 of body (either case),
// a.URL set and a.CapturedAt not zero; the stored size is len(body),
// whatever a.Size says. It reports whether a new body was stored.
//
// Both writes are one transaction on the single writer connection, which
// BEGINs IMMEDIATE: concurrent calls, from this process or another on the
// same file, run one after another, so identical calls store one body and
// one capture.
func (db *DB) PutAsset(ctx context.Context, a *store.Asset, body []byte) (bool, error) {
	hash, err := a.Check(body)
	if err != nil {
		return false, fmt.Errorf("put asset: %w", err)
	}
	// Compress outside the writer, unless the body is stored already (the
	// common case: a known stylesheet at a new URL).
	var data []byte
	var codec string
	if has, err := db.HasBody(ctx, hash); err != nil {
		return false, fmt.Errorf("put asset %s: %w", a.URL, err)
	} else if !has {
		data, codec = chunk.EncodeAsset(body, a.ContentType)
	}

	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("put asset %s: %w", a.URL, err)
	}
	defer tx.Rollback()

	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM asset_bodies WHERE hash = ?`, hash).Scan(&one)
	newBody := errors.Is(err, sql.ErrNoRows)
	if err != nil && !newBody {
		return false, fmt.Errorf("put asset %s: look up body: %w", a.URL, err)
	}
	if newBody {
		if data == nil { // pruned since the check above
			data, codec = chunk.EncodeAsset(body, a.ContentType)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO asset_bodies (hash, codec, size, data, created_at)
			VALUES (?, ?, ?, ?, CAST(unixepoch('subsec') * 1000 AS INTEGER))`,
			hash, codec, len(body), data); err != nil {
			return false, fmt.Errorf("put asset %s: insert body: %w", a.URL, err)
		}
	}

	var latest string
	err = tx.QueryRowContext(ctx, `
		SELECT hash FROM asset_captures WHERE url = ?
		ORDER BY captured_at DESC, id DESC LIMIT 1`, a.URL).Scan(&latest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("put asset %s: look up latest capture: %w", a.URL, err)
	}
	if latest != hash {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO asset_captures (url, hash, content_type, size, captured_at)
			VALUES (?, ?, ?, ?, ?)`,
			a.URL, hash, a.ContentType, len(body), a.CapturedAt.UnixMilli()); err != nil {
			return false, fmt.Errorf("put asset %s: insert capture: %w", a.URL, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("put asset %s: commit: %w", a.URL, err)
	}
	return newBody, nil
}

// HasBody reports whether a body with this hash is stored.
func (db *DB) HasBody(ctx context.Context, hash string) (bool, error) {
	var one int
	err := db.read.QueryRowContext(ctx, `SELECT 1 FROM asset_bodies WHERE hash = ?`, strings.ToLower(hash)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("has body: %w", err)
	}
	return true, nil
}

// captureAt selects the id of the capture of url (?1) closest at or before
// ?2 (Unix ms), else the first after; the later-recorded of equal times.
const captureAt = `coalesce(
	(SELECT id FROM asset_captures WHERE url = %[1]s AND captured_at <= %[2]s ORDER BY captured_at DESC, id DESC LIMIT 1),
	(SELECT id FROM asset_captures WHERE url = %[1]s AND captured_at > %[2]s ORDER BY captured_at, id LIMIT 1))`

const assetColumns = `c.url, c.hash, c.content_type, c.size, c.captured_at`

func scanAsset(row interface{ Scan(...any) error }) (*store.Asset, error) {
	var a store.Asset
	var at int64
	if err := row.Scan(&a.URL, &a.Hash, &a.ContentType, &a.Size, &at); err != nil {
		return nil, err
	}
	a.CapturedAt = time.UnixMilli(at).UTC()
	return &a, nil
}

// Capture returns the capture of url closest at or before t, else the first
// after t; store.ErrNotFound if the URL was never captured.
func (db *DB) Capture(ctx context.Context, url string, t time.Time) (*store.Asset, error) {
	a, err := scanAsset(db.read.QueryRowContext(ctx,
		`SELECT `+assetColumns+` FROM asset_captures c WHERE c.id = `+fmt.Sprintf(captureAt, "?1", "?2"),
		url, t.UnixMilli()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("capture %s: %w", url, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", url, err)
	}
	return a, nil
}

// Body returns a stored body, decompressed, and the content type of its
// newest capture ("" if it has none); store.ErrNotFound if absent.
func (db *DB) Body(ctx context.Context, hash string) ([]byte, string, error) {
	var (
		codec, contentType string
		data               []byte
	)
	err := db.read.QueryRowContext(ctx, `
		SELECT b.codec, b.data, coalesce((
			SELECT content_type FROM asset_captures WHERE hash = b.hash
			ORDER BY captured_at DESC, id DESC LIMIT 1), '')
		FROM asset_bodies b WHERE b.hash = ?`, strings.ToLower(hash)).Scan(&codec, &data, &contentType)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("body %s: %w", hash, store.ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("body %s: %w", hash, err)
	}
	body, err := chunk.DecodeAsset(data, codec)
	if err != nil {
		return nil, "", fmt.Errorf("body %s: %w", hash, err)
	}
	return body, contentType, nil
}

// SessionAssets returns, ordered by URL, the capture Capture would choose
// at the session's start for each asset URL the session references; URLs
// never captured are left out. A session without events yet gets each
// URL's latest capture. store.ErrNotFound for an unknown session.
func (db *DB) SessionAssets(ctx context.Context, sessionID string) ([]*store.Asset, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	defer tx.Rollback()

	var started sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT started_at FROM sessions WHERE id = ?`, sessionID).Scan(&started)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	at := int64(math.MaxInt64)
	if started.Valid {
		at = started.Int64
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT `+assetColumns+`
		FROM session_assets sa JOIN asset_captures c ON c.id = `+fmt.Sprintf(captureAt, "sa.url", "?2")+`
		WHERE sa.session_id = ?1
		ORDER BY sa.url`, sessionID, at)
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	defer rows.Close()
	var out []*store.Asset
	for rows.Next() {
		a, err := scanAsset(rows)
		if err != nil {
			return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	return out, nil
}

// PruneAssets deletes the captures made before cutoff of every URL that no
// kept session references (kept: started at or after cutoff, or without
// events yet), then the bodies no capture uses, and returns how many
// bodies it deleted. A URL a kept session references keeps all its
// captures, so the one the session replays with, before or after its
// start, stays. One transaction: appends wait for it.
func (db *DB) PruneAssets(ctx context.Context, cutoff time.Time) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune assets: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
		DELETE FROM asset_captures
		WHERE captured_at < ?1 AND url NOT IN (
			SELECT sa.url FROM session_assets sa JOIN sessions s ON s.id = sa.session_id
			WHERE s.started_at >= ?1 OR s.started_at IS NULL)`, cutoff.UnixMilli()); err != nil {
		return 0, fmt.Errorf("prune assets: captures: %w", err)
	}
	res, err := tx.ExecContext(ctx, `
		DELETE FROM asset_bodies
		WHERE NOT EXISTS (SELECT 1 FROM asset_captures c WHERE c.hash = asset_bodies.hash)`)
	if err != nil {
		return 0, fmt.Errorf("prune assets: bodies: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune assets: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune assets: commit: %w", err)
	}
	return int(n), nil
}
