package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres"
	"github.com/loupe-dev/loupe/store/sqlite"
)

// openTimeout bounds opening and first reaching the database at start, so
// that a wrong address is an error rather than a hang.
const openTimeout = 15 * time.Second

// openStore opens the store --database names, once per process: SQLite in
// --data when it is empty, PostgreSQL for a postgres:// URL.
func (m *Main) openStore(ctx context.Context) error {
	if m.db != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	var (
		db  store.Store
		err error
	)
	switch {
	case m.Config.Database == "":
		db, err = sqlite.Open(ctx, m.Config.sqlitePath())
		if err != nil {
			return fmt.Errorf("open store: %s", oneLine(err))
		}
	case m.Config.isPostgres():
		name := redact(m.Config.Database)
		db, err = postgres.Open(ctx, m.Config.Database)
		if errors.As(err, new(*pgconn.ConnectError)) {
			return fmt.Errorf("database %s is unreachable: %s", name, oneLine(err))
		}
		if err != nil {
			return fmt.Errorf("database %s: %s", name, oneLine(err))
		}
	default:
		return usageError{fmt.Sprintf("--database %q is neither empty (SQLite in --data) nor a postgres:// URL", redact(m.Config.Database))}
	}
	m.db = db
	return nil
}

// sqlitePath is the SQLite database in --data.
func (c *Config) sqlitePath() string { return filepath.Join(c.Data, "loupe.db") }

// redact hides the password of a database URL for messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Keep only the scheme: an unparsable URL may still hold a password.
		scheme, _, _ := strings.Cut(dsn, ":")
		return scheme + "://…"
	}
	return u.Redacted()
}

// oneLine joins a multi-line error message (PostgreSQL's detail and hint)
// into one line, so that the start-up error stays one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
