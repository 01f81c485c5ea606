package postgres_test

import (
	"testing"

	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/storetest"
)

func TestUsersConformance(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) storetest.UserBackend {
		return mustOpen(t, pgtest.Shared(t).CreateDB(t))
	})
}
