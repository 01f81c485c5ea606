package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres"
)

// openPostgres opens the PostgreSQL store; errUnreachable marks a server
// that could not be connected to.
func openPostgres(ctx context.Context, dsn string) (store.Store, error) {
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		if errors.As(err, new(*pgconn.ConnectError)) {
			return nil, unreachableError{err}
		}
		return nil, err
	}
	return db, nil
}

var errUnreachable = errors.New("unreachable")

// unreachableError is an error connecting, which Is errUnreachable.
type unreachableError struct{ err error }

func (e unreachableError) Error() string        { return e.err.Error() }
func (e unreachableError) Unwrap() error        { return e.err }
func (e unreachableError) Is(target error) bool { return target == errUnreachable }
