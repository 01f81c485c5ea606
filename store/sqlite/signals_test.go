package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/loupe-dev/loupe/store/storetest"
)

func TestSignalsConformance(t *testing.T) {
	storetest.RunSignals(t, func(t *testing.T) storetest.SignalStore {
		return mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	})
}
