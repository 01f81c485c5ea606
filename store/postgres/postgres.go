// Package postgres is Loupe's store for scale-out: a store.Store on a
// PostgreSQL database, through pgx, that any number of collector and replay
// nodes share. It mirrors store/sqlite: the same schema (in PostgreSQL
// types), the same summary rules, the same chunk encoding (store/chunk), and the same
// conformance suite (store/storetest).
//
// Concurrency: every AppendBatch is one READ COMMITTED transaction that
// first upserts its session row, so batches of one session serialize on that
// row lock (their summaries add up exactly) while batches of different
// sessions run in parallel. Retries of one batch from several nodes race on
// the chunk's primary key: exactly one is stored, the others get
// store.ErrDuplicate. The asset archive (store.AssetStore) serializes
// PutAsset per URL with advisory locks; see PutAsset and PruneAssets.
//
// Outages: connections time out after 3 s and idle ones are checked before
// use, so while the database is down calls fail within seconds (the collector
// answers 503) and the pool reconnects by itself once it is back.
package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
)

var _ store.Store = (*DB)(nil)

// Connection defaults, for settings the DSN leaves out.
const (
	connectTimeout    = 3 * time.Second
	pingTimeout       = 3 * time.Second
	healthCheckPeriod = 10 * time.Second
)

// DB is a Loupe store in a PostgreSQL database. It is safe for concurrent
// use.
type DB struct {
	pool *pgxpool.Pool
	// keyframes caches active sessions' keyframes for AppendBatch.
	keyframes *chunk.Keyframes
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, with pgxpool's pool_* settings) and applies any pending
// migrations. Several processes may open the same database at once.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = pingTimeout
	}
	if !strings.Contains(dsn, "pool_health_check_period") {
		cfg.HealthCheckPeriod = healthCheckPeriod
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := &DB{pool: pool, keyframes: chunk.NewKeyframes(keyframeCacheBytes)}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
// Later calls fail with pgxpool's "closed pool" error.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}
