package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

func TestUsersConformance(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) storetest.UserBackend {
		return mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	})
}

// TestAddFirstUserAcrossHandles calls AddFirstUser at once through several
// handles on one file, as separate processes would: each has its own
// writer connection, so only SQLite's write lock keeps two of them from
// both finding the table empty.
func TestAddFirstUserAcrossHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loupe.db")
	const n = 8
	dbs := make([]*sqlite.DB, n)
	for i := range dbs {
		dbs[i] = mustOpen(t, path)
		defer dbs[i].Close()
	}
	var wg sync.WaitGroup
	added := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{}) // releases all calls at once
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			u := &store.User{Name: fmt.Sprintf("admin%d", i), Role: store.RoleAdmin, PasswordHash: "h"}
			added[i], errs[i] = db.AddFirstUser(context.Background(), u)
		})
	}
	close(start)
	wg.Wait()
	var count int
	for i, err := range errs {
		if err != nil {
			t.Errorf("add first user through handle %d: %v", i, err)
		}
		if added[i] {
			count++
		}
	}
	if count != 1 {
		t.Errorf("added through %d handles, want 1", count)
	}
	if users, err := dbs[0].ListUsers(context.Background()); err != nil || len(users) != 1 {
		t.Errorf("users: got %+v, %v, want one", users, err)
	}
}
