package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/loupe-dev/loupe/store/migration"
)

// migrationFS holds the schema history: files named NNNN_description.sql,
// applied in order of NNNN. The set is append-only; a released file is never
// edited.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies the pending migrations, each in its own transaction that
// also records it in schema_migrations. db must be the write pool: its
// transactions begin IMMEDIATE, so two processes opening the same file
// cannot both apply a migration.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migration.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL -- Unix ms
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	var newest int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(ms) > 0 && newest > ms[len(ms)-1].Version {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", newest, ms[len(ms)-1].Version)
	}

	for _, m := range ms {
		if err := applyMigration(ctx, db, m); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration.Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil // applied already, maybe by another process just now
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, CAST(unixepoch('subsec') * 1000 AS INTEGER))`,
		m.Version, m.Name); err != nil {
		return err
	}
	return tx.Commit()
}
