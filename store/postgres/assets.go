package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
)

var _ store.AssetStore = (*DB)(nil)

// Advisory locks of the archive, two-key transaction-level ones, which
// never collide with migrate's one-key lock: PutAsset takes the prune lock
// shared and then its URL's lock (second key: hashtext of the URL);
// PruneAssets takes the prune lock exclusively.
const (
	urlLockClass   = 0x4c4f5550 // "LOUP"
	pruneLockClass = urlLockClass + 1
)

// PutAsset stores body unless a body with its hash is stored already, and
// records the capture unless the URL's latest capture (by capture time)
// has that hash. a.Hash must be the hex SHA-256 of body (either case),
// a.URL set and a.CapturedAt not zero; the stored size is len(body),
// whatever a.Size says. It reports whether a new body was stored.
//
// Concurrency, across nodes too: the transaction takes an advisory lock
// on the URL, so captures of one URL are checked and recorded one after
// another; identical bodies race on the primary key, and the losers see
// the winner's row once it commits. It also holds the prune lock shared,
// so that PruneAssets never deletes the body or the latest capture it
// relies on between its check and its commit.
func (db *DB) PutAsset(ctx context.Context, a *store.Asset, body []byte) (bool, error) {
	hash, err := a.Check(body)
	if err != nil {
		return false, fmt.Errorf("put asset: %w", err)
	}
	// Compress before taking a connection, unless the body is stored
	// already (the common case: a known stylesheet at a new URL).
	var data []byte
	var codec string
	if has, err := db.HasBody(ctx, hash); err != nil {
		return false, fmt.Errorf("put asset %s: %w", a.URL, err)
	} else if !has {
		data, codec = chunk.EncodeAsset(body, a.ContentType)
	}

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("put asset %s: %w", a.URL, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, 0), pg_advisory_xact_lock($2, hashtext($3))`,
		int32(pruneLockClass), int32(urlLockClass), a.URL); err != nil {
		return false, fmt.Errorf("put asset %s: lock: %w", a.URL, err)
	}
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM asset_bodies WHERE hash = $1`, hash).Scan(&one)
	newBody := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !newBody {
		return false, fmt.Errorf("put asset %s: look up body: %w", a.URL, err)
	}
	if newBody {
		if data == nil { // pruned since the check above
			data, codec = chunk.EncodeAsset(body, a.ContentType)
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO asset_bodies (hash, codec, size, data, created_at)
			VALUES ($1, $2, $3, $4, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
			ON CONFLICT (hash) DO NOTHING`, hash, codec, len(body), data)
		if err != nil {
			return false, fmt.Errorf("put asset %s: insert body: %w", a.URL, err)
		}
		newBody = tag.RowsAffected() == 1 // else another call stored it first
	}

	var latest string
	err = tx.QueryRow(ctx, `
		SELECT hash FROM asset_captures WHERE url = $1
		ORDER BY captured_at DESC, id DESC LIMIT 1`, a.URL).Scan(&latest)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("put asset %s: look up latest capture: %w", a.URL, err)
	}
	if latest != hash {
		if _, err := tx.Exec(ctx, `
			INSERT INTO asset_captures (url, hash, content_type, size, captured_at)
			VALUES ($1, $2, $3, $4, $5)`,
			a.URL, hash, a.ContentType, len(body), a.CapturedAt.UnixMilli()); err != nil {
			return false, fmt.Errorf("put asset %s: insert capture: %w", a.URL, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("put asset %s: commit: %w", a.URL, err)
	}
	return newBody, nil
}

// HasBody reports whether a body with this hash is stored.
func (db *DB) HasBody(ctx context.Context, hash string) (bool, error) {
	var one int
	err := db.pool.QueryRow(ctx, `SELECT 1 FROM asset_bodies WHERE hash = $1`, strings.ToLower(hash)).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("has body: %w", err)
	}
	return true, nil
}

// captureAt is a query of the capture of url (%[1]s) closest at or before
// %[2]s (Unix ms), else the first after; the later-recorded of equal
// times. Append runs its branches in order, so the second runs only if
// the first finds nothing; each is one index probe.
const captureAt = `(
	(SELECT url, hash, content_type, size, captured_at FROM asset_captures
	 WHERE url = %[1]s AND captured_at <= %[2]s ORDER BY captured_at DESC, id DESC LIMIT 1)
	UNION ALL
	(SELECT url, hash, content_type, size, captured_at FROM asset_captures
	 WHERE url = %[1]s AND captured_at > %[2]s ORDER BY captured_at, id LIMIT 1)
	LIMIT 1)`

const assetColumns = `c.url, c.hash, c.content_type, c.size, c.captured_at`

func scanAsset(row pgx.Row) (*store.Asset, error) {
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
	a, err := scanAsset(db.pool.QueryRow(ctx,
		`SELECT `+assetColumns+` FROM `+fmt.Sprintf(captureAt, "$1", "$2::bigint")+` AS c`,
		url, t.UnixMilli()))
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := db.pool.QueryRow(ctx, `
		SELECT b.codec, b.data, coalesce((
			SELECT content_type FROM asset_captures WHERE hash = b.hash
			ORDER BY captured_at DESC, id DESC LIMIT 1), '')
		FROM asset_bodies b WHERE b.hash = $1`, strings.ToLower(hash)).Scan(&codec, &data, &contentType)
	if errors.Is(err, pgx.ErrNoRows) {
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
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var started *int64
	err = tx.QueryRow(ctx, `SELECT started_at FROM sessions WHERE id = $1`, sessionID).Scan(&started)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	at := int64(math.MaxInt64)
	if started != nil {
		at = *started
	}
	rows, err := tx.Query(ctx, `
		SELECT `+assetColumns+`
		FROM session_assets sa CROSS JOIN LATERAL `+fmt.Sprintf(captureAt, "sa.url", "$2::bigint")+` AS c
		WHERE sa.session_id = $1
		ORDER BY sa.url`, sessionID, at)
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Asset, error) { return scanAsset(r) })
	if err != nil {
		return nil, fmt.Errorf("session assets %q: %w", sessionID, err)
	}
	return out, nil
}

// PruneAssets deletes the captures made before cutoff of every URL that no
// kept session references (kept: started at or after cutoff, or without
// events yet), then the bodies no capture uses, and returns how many
// bodies it deleted. A URL a kept session references keeps all its
// captures, so the one the session replays with, before or after its
// start, stays.
//
// It holds the prune lock exclusively: PutAsset calls wait for it, and it
// for those in flight.
func (db *DB) PruneAssets(ctx context.Context, cutoff time.Time) (int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune assets: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, int32(pruneLockClass)); err != nil {
		return 0, fmt.Errorf("prune assets: lock: %w", err)
	}
	// Each statement's snapshot is taken after the lock: it sees every
	// capture recorded before.
	if _, err := tx.Exec(ctx, `
		DELETE FROM asset_captures
		WHERE captured_at < $1 AND url NOT IN (
			SELECT sa.url FROM session_assets sa JOIN sessions s ON s.id = sa.session_id
			WHERE s.started_at >= $1 OR s.started_at IS NULL)`, cutoff.UnixMilli()); err != nil {
		return 0, fmt.Errorf("prune assets: captures: %w", err)
	}
	tag, err := tx.Exec(ctx, `
		DELETE FROM asset_bodies b
		WHERE NOT EXISTS (SELECT 1 FROM asset_captures c WHERE c.hash = b.hash)`)
	if err != nil {
		return 0, fmt.Errorf("prune assets: bodies: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("prune assets: commit: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
