package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/storetest"
)

// TestDatabaseFull: when the database cannot grow (SQLite's "database or
// disk is full", here by max_page_count, which fails the way a full disk
// does), an append fails and leaves nothing of its batch; what was
// appended before is intact, and once there is room the same batch goes
// in once, as the recorder's retry would send it.
func TestDatabaseFull(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loupe.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	limit := func(pages int) {
		t.Helper()
		// The writer has exactly one connection, kept for good: the
		// setting holds for every later append.
		if _, err := db.write.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
			t.Fatal(err)
		}
	}

	// Sessions go in until the database is full: the batch that fails
	// may be any, first of its session or not.
	var sessions [][]*store.Batch
	var failed error
	full, acked := -1, 0 // the session that met the limit, its batches in
	for i := 0; i < 100 && failed == nil; i++ {
		batches := storetest.ChromiumSession(fmt.Sprintf("s%d", i))
		sessions = append(sessions, batches)
		for j, b := range batches {
			if failed = db.AppendBatch(ctx, b); failed != nil {
				full, acked = i, j
				break
			}
		}
		if i == 0 {
			var pages int
			if err := db.write.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
				t.Fatal(err)
			}
			limit(pages + 1) // a little room, then none
		}
	}
	if failed == nil {
		t.Fatal("100 sessions went into a database that could not grow")
	}
	t.Logf("the database was full at batch %d of session %d: %v", acked, full, failed)
	if !strings.Contains(failed.Error(), "full") || errors.Is(failed, store.ErrDuplicate) {
		// The collector acknowledges a duplicate as stored.
		t.Errorf("got %v, want SQLite's database or disk is full, not a duplicate", failed)
	}
	check := func(id string, batches []*store.Batch) {
		t.Helper()
		var buf bytes.Buffer
		err := db.WriteEvents(ctx, id, &buf)
		if len(batches) == 0 {
			if _, err := db.Session(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("session %s, whose every batch failed: got %v, want ErrNotFound", id, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		var got []json.RawMessage
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		want := 0
		for _, b := range batches {
			var evs []json.RawMessage
			if err := json.Unmarshal(b.Events, &evs); err != nil {
				t.Fatal(err)
			}
			want += len(evs)
		}
		if len(got) != want {
			t.Errorf("session %s: %d events stored, want %d (the acknowledged batches')", id, len(got), want)
		}
		s, err := db.Session(ctx, id)
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		if s.EventCount != want {
			t.Errorf("session %s: event count %d, want %d: the failed batch's derived rows were kept", id, s.EventCount, want)
		}
	}
	for i, batches := range sessions[:full] {
		check(fmt.Sprintf("s%d", i), batches)
	}
	check(fmt.Sprintf("s%d", full), sessions[full][:acked])

	// Room again: the failed batch, retried, goes in, then the rest.
	limit(1 << 30)
	rest := sessions[full][acked:]
	for _, b := range rest {
		if err := db.AppendBatch(ctx, b); err != nil {
			t.Fatalf("after room was made: %v", err)
		}
	}
	if err := db.AppendBatch(ctx, rest[0]); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("the failed batch sent a third time: got %v, want ErrDuplicate", err)
	}
	for i, batches := range sessions {
		check(fmt.Sprintf("s%d", i), batches)
	}
	var ok string
	if err := db.write.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check: %q, %v", ok, err)
	}
}
