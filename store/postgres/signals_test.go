package postgres_test

import (
	"testing"

	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/storetest"
)

func TestSignalsConformance(t *testing.T) {
	storetest.RunSignals(t, func(t *testing.T) storetest.SignalStore {
		return mustOpen(t, pgtest.Shared(t).CreateDB(t))
	})
}
