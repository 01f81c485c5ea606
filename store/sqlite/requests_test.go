package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/loupe-dev/loupe/store/storetest"
)

func TestRequestsConformance(t *testing.T) {
	storetest.RunRequests(t, func(t *testing.T) storetest.RequestBackend {
		return mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	})
}
