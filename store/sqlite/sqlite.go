// Package sqlite is Loupe's embedded store: a store.Store and
// store.AssetStore on one SQLite file, through the pure Go driver
// modernc.org/sqlite, so that nothing needs to be installed.
//
// The database runs in WAL mode with foreign keys on. Writes go through a
// pool holding a single connection, so concurrent AppendBatch calls queue in
// Go instead of failing with SQLITE_BUSY; reads use a separate pool of
// read-only connections, which WAL lets run alongside the writer.
//
// Durability: synchronous=NORMAL, which is safe in WAL mode. When
// AppendBatch returns, its transaction is committed to the write-ahead log
// (written, not fsynced): it survives the process crashing or being killed.
// An OS crash or power loss may lose the commits made since the WAL was last
// synced (at each checkpoint), but never corrupts the database
// (https://www.sqlite.org/pragma.html#pragma_synchronous). FULL would fsync
// the WAL on every commit, putting a disk flush behind every batch through
// the single writer; losing the last moments of replay data on a machine
// crash is the cheaper trade for Loupe.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ store.Store = (*DB)(nil)

// busyTimeoutMS is how long a connection waits for another process's lock
// before failing with SQLITE_BUSY. Within one process the single writer
// connection already serializes writes.
const busyTimeoutMS = 10_000

// DB is a Loupe store in one SQLite database file. It is safe for concurrent
// use.
type DB struct {
	path  string
	write *sql.DB // exactly one connection; every write goes through it
	read  *sql.DB // read-only connections
	stmts statements
	// keyframes caches active sessions' keyframes for AppendBatch.
	keyframes *chunk.Keyframes
}

// Open opens the SQLite database at path, creating the file and its folder
// if missing, and applies any pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("open store: create folder: %w", err)
	}

	db := &DB{path: abs, keyframes: chunk.NewKeyframes(keyframeCacheBytes)}
	// _txlock=immediate: a write transaction takes the write lock at BEGIN,
	// so it never has to upgrade a read lock mid-transaction, which is when
	// SQLite returns SQLITE_BUSY without honouring busy_timeout.
	db.write, err = sql.Open("sqlite", dsn(abs,
		"_txlock=immediate",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
	))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)

	if err := db.write.PingContext(ctx); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	if err := migrate(ctx, db.write); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	if err := db.stmts.prepare(ctx, db.write); err != nil {
		db.stmts.close()
		db.write.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}

	// Opened after the writer has switched the file to WAL (a persistent
	// setting), so readers never need to write.
	read, err := sql.Open("sqlite", dsn(abs, "_pragma=query_only(1)"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	db.read = read
	n := max(4, runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)
	if err := db.read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return db, nil
}

// dsn builds a file: URI for path, so that characters such as '?' and '#'
// in the path are escaped rather than read as URI syntax.
func dsn(path string, params ...string) string {
	q := "_pragma=busy_timeout(" + fmt.Sprint(busyTimeoutMS) + ")&_pragma=foreign_keys(1)"
	for _, p := range params {
		q += "&" + p
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q}
	if filepath.VolumeName(path) != "" { // Windows: file:///C:/…
		u.Path = "/" + u.Path
	}
	return u.String()
}

// Path returns the database file's absolute path.
func (db *DB) Path() string { return db.path }

// Ping reports whether both the write and the read connections respond.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// Close closes the database. Calls in flight may fail; later calls do.
func (db *DB) Close() error {
	errs := []error{db.stmts.close()}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	// The writer closes last: the last connection to close checkpoints the
	// WAL into the main file.
	errs = append(errs, db.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
