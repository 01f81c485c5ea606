package replayertest

import (
	"testing"

	"github.com/loupe-dev/loupe/store/storetest"
)

// closer is Users with the Close the conformance suite calls.
type closer struct{ *Users }

func (closer) Close() error { return nil }

// TestUsersConformance: the users tests keep in memory behave as the
// stores' do.
func TestUsersConformance(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) storetest.UserBackend { return closer{NewUsers()} })
}
