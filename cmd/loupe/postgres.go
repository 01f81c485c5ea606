package main

import (
	"context"
	"errors"

	"github.com/loupe-dev/loupe/store"
)

// postgresBuilt is false until store/postgres lands (issue 5, in progress).
const postgresBuilt = false

// openPostgres opens the PostgreSQL store.
func openPostgres(ctx context.Context, dsn string) (store.Store, error) {
	return nil, errors.New("PostgreSQL support is not built into this binary yet")
}
