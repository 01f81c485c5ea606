package main

import (
	"context"
	"errors"

	"github.com/loupe-dev/loupe/store"
)

// openPostgres opens the PostgreSQL store.
func openPostgres(ctx context.Context, dsn string) (store.Store, error) {
	return nil, errors.New("PostgreSQL support is not built into this binary yet")
}
