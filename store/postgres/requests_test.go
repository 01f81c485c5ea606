package postgres_test

import (
	"testing"

	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/storetest"
)

func TestRequestsConformance(t *testing.T) {
	storetest.RunRequests(t, func(t *testing.T) storetest.RequestBackend {
		return mustOpen(t, pgtest.Shared(t).CreateDB(t))
	})
}
