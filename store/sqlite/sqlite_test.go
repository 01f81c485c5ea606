package sqlite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	})
}

func mustOpen(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	return db
}

func TestOpenCreatesFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "loupe.db")
	db := mustOpen(t, path)
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	var mode string
	if err := rawQuery(t, path, `PRAGMA journal_mode`, &mode); mode != "wal" {
		t.Errorf("journal_mode: got %q (%v), want wal", mode, err)
	}
}

func TestOpenOddPath(t *testing.T) {
	// '?' and '#' would be URI syntax if the path were pasted into a DSN.
	path := filepath.Join(t.TempDir(), "what?#100%", "loupe.db")
	db := mustOpen(t, path)
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not at the given path: %v", err)
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loupe.db")
	versions := func() []string {
		t.Helper()
		db := mustOpen(t, path)
		defer db.Close()
		var got []string
		rows := rawRows(t, path, `SELECT version || ' ' || name FROM schema_migrations ORDER BY version`)
		for _, r := range rows {
			got = append(got, r)
		}
		return got
	}
	first := versions()
	if len(first) == 0 || first[0] != "1 0001_init.sql" {
		t.Fatalf("schema_migrations: got %v, want 1 0001_init.sql first", first)
	}
	// Reopening applies nothing again (a rerun of 0001 would fail on
	// CREATE TABLE) and records nothing twice.
	if again := versions(); strings.Join(again, ",") != strings.Join(first, ",") {
		t.Errorf("after reopen: got %v, want %v", again, first)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loupe.db")
	mustOpen(t, path).Close()
	rawExec(t, path, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`)
	_, err := sqlite.Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open: got %v, want an error about a newer schema", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loupe.db")
	db := mustOpen(t, path)
	b := storetest.Batch("s", "p", 0, 1_700_000_000_000, 20, 100, "https://x.example/", 2)
	if err := db.AppendBatch(ctx, b); err != nil {
		t.Fatalf("append: %v", err)
	}
	before, err := db.Session(ctx, "s")
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	db = mustOpen(t, path)
	defer db.Close()
	after, err := db.Session(ctx, "s")
	if err != nil {
		t.Fatalf("session after reopen: %v", err)
	}
	if *after != *before {
		t.Errorf("session after reopen:\ngot  %+v\nwant %+v", after, before)
	}
	var buf bytes.Buffer
	if err := db.WriteEvents(ctx, "s", &buf); err != nil {
		t.Fatalf("write events: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), b.Events) {
		t.Errorf("events after reopen:\ngot  %s\nwant %s", buf.Bytes(), b.Events)
	}
	if err := db.AppendBatch(ctx, b); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("append again after reopen: got %v, want ErrDuplicate", err)
	}
}

func TestCompressionRatio(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	defer db.Close()
	bs := storetest.Recording("s", 3, 20)
	var want []json.RawMessage
	for _, b := range bs {
		if err := db.AppendBatch(ctx, b); err != nil {
			t.Fatalf("append: %v", err)
		}
		var evs []json.RawMessage
		if err := json.Unmarshal(b.Events, &evs); err != nil {
			t.Fatalf("generated events: %v", err)
		}
		want = append(want, evs...)
	}
	s, err := db.Session(ctx, "s")
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	ratio := float64(s.Bytes) / float64(s.StoredBytes)
	t.Logf("%d batches, %d events: %d raw bytes stored as %d (%.1f×)", len(bs), s.EventCount, s.Bytes, s.StoredBytes, ratio)
	if s.StoredBytes >= s.Bytes/3 {
		t.Errorf("StoredBytes %d, want < a third of Bytes %d", s.StoredBytes, s.Bytes)
	}

	var buf bytes.Buffer
	if err := db.WriteEvents(ctx, "s", &buf); err != nil {
		t.Fatalf("write events: %v", err)
	}
	var got []json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output is not a JSON array: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("events: got %d, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("event %d:\ngot  %s\nwant %s", i, got[i], want[i])
		}
	}
}

func TestOpenParentIsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(context.Background(), filepath.Join(file, "loupe.db"))
	if err == nil {
		t.Fatal("open under a file: got nil error")
	}
	if !strings.Contains(err.Error(), "open store: create folder") || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("open under a file: got %q, want it to say the folder could not be created", err)
	}
}

func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loupe.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := sqlite.Open(context.Background(), path); err == nil {
		db.Close()
		t.Fatal("open a non-database file: got nil error")
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	b := storetest.Batch("s", "p", 0, 1, 1, 1, "", 0)
	tests := []struct {
		name string
		call func() error
	}{
		{"AppendBatch", func() error { return db.AppendBatch(ctx, b) }},
		{"Session", func() error { _, err := db.Session(ctx, "s"); return err }},
		{"Sessions", func() error { _, err := db.Sessions(ctx, store.SessionFilter{}); return err }},
		{"WriteEvents", func() error { return db.WriteEvents(ctx, "s", &bytes.Buffer{}) }},
		{"Ping", func() error { return db.Ping(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("got nil error after Close")
			}
			if errors.Is(err, store.ErrNotFound) {
				t.Errorf("got %v, want an error other than ErrNotFound", err)
			}
		})
	}
}

func TestAppendBatchInvalid(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	defer db.Close()
	if err := db.AppendBatch(ctx, storetest.Batch("s1", "p", 0, 1, 1, 1, "", 0)); err != nil {
		t.Fatalf("append: %v", err)
	}
	ok := func() *store.Batch { return storetest.Batch("s", "q", 0, 1, 1, 1, "", 0) }
	tests := []struct {
		name   string
		mutate func(*store.Batch)
		want   string
	}{
		{"no session", func(b *store.Batch) { b.SessionID = "" }, "empty session id"},
		{"no page view", func(b *store.Batch) { b.PageViewID = "" }, "empty page view id"},
		{"negative seq", func(b *store.Batch) { b.Seq = -1 }, "negative seq"},
		{"not an array", func(b *store.Batch) { b.Events = []byte(`{"type":4}`) }, "not a JSON array"},
		{"no events", func(b *store.Batch) { b.Events = nil }, "not a JSON array"},
		{"page view of another session", func(b *store.Batch) { b.PageViewID = "p" }, "belongs to another session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ok()
			tt.mutate(b)
			err := db.AppendBatch(ctx, b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "append batch: ") {
				t.Errorf("got %v, want \"append batch: …%s…\"", err, tt.want)
			}
			if _, err := db.Session(ctx, "s"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("session after rejected batch: got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestWriteEventsWriterError(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	defer db.Close()
	if err := db.AppendBatch(ctx, storetest.Batch("s", "p", 0, 1, 5, 1, "", 0)); err != nil {
		t.Fatalf("append: %v", err)
	}
	boom := errors.New("client went away")
	err := db.WriteEvents(ctx, "s", failWriter{boom})
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the writer's error", err)
	}
	// The read connection was released: the store still answers.
	if _, err := db.Session(ctx, "s"); err != nil {
		t.Errorf("session after a failed write: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestAppendBatchCanceled(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.AppendBatch(ctx, storetest.Batch("s", "p", 0, 1, 1, 1, "", 0)); !errors.Is(err, context.Canceled) {
		t.Errorf("append with a canceled context: got %v, want context.Canceled", err)
	}
	if _, err := db.Session(context.Background(), "s"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session: got %v, want ErrNotFound", err)
	}
}

// TestWriteEventsStreams checks that chunks reach w one at a time rather
// than as one assembled buffer.
func TestWriteEventsStreams(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	defer db.Close()
	bs := storetest.Recording("s", 2, 5)
	for _, b := range bs {
		if err := db.AppendBatch(ctx, b); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	var w countWriter
	if err := db.WriteEvents(ctx, "s", &w); err != nil {
		t.Fatalf("write events: %v", err)
	}
	var largest int
	for _, b := range bs {
		largest = max(largest, len(b.Events))
	}
	if w.max > largest {
		t.Errorf("largest write %d bytes, want at most one chunk's %d", w.max, largest)
	}
	if !json.Valid(w.buf.Bytes()) {
		t.Errorf("output is not valid JSON")
	}
}

type countWriter struct {
	buf bytes.Buffer
	max int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.max = max(w.max, len(p))
	return w.buf.Write(p)
}

// TestUpgradeFrom0001 opens a database written at schema version 1, with
// chunks compressed alone (codec zstd, no keyframe), and checks that they
// stay readable next to chunks appended after the upgrade.
func TestUpgradeFrom0001(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loupe.db")
	init1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := storetest.Batch("s", "p1", 0, 1_699_999_000_000, 20, 100, "https://x.example/", 2)
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	data := enc.EncodeAll(old.Events, nil)
	raw := rawDB(t, path)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		string(init1),
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0)`,
		fmt.Sprintf(`INSERT INTO sessions (id, started_at, ended_at, page_count, click_count, event_count, entry_url, bytes, stored_bytes)
			VALUES ('s', %d, %d, 1, 2, 20, 'https://x.example/', %d, %d)`, old.FirstTS, old.LastTS, len(old.Events), len(data)),
		fmt.Sprintf(`INSERT INTO page_views (id, session_id, url, url_seq, started_at, ended_at, click_count, event_count)
			VALUES ('p1', 's', 'https://x.example/', 0, %d, %d, 2, 20)`, old.FirstTS, old.LastTS),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("exec %.60q: %v", q, err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO chunks (page_view_id, seq, session_id, first_ts, last_ts, event_count, raw_bytes, codec, data)
		VALUES ('p1', 0, 's', ?, ?, 20, ?, 'zstd', ?)`, old.FirstTS, old.LastTS, len(old.Events), data); err != nil {
		t.Fatalf("insert chunk: %v", err)
	}
	raw.Close()

	db := mustOpen(t, path)
	defer db.Close()
	later := storetest.Recording("s", 1, 3)
	for _, b := range later {
		if err := db.AppendBatch(ctx, b); err != nil {
			t.Fatalf("append after upgrade: %v", err)
		}
	}
	var buf bytes.Buffer
	if err := db.WriteEvents(ctx, "s", &buf); err != nil {
		t.Fatalf("write events: %v", err)
	}
	var got []json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("events: %v", err)
	}
	want := 20
	for _, b := range later {
		want += b.EventCount
	}
	if len(got) != want {
		t.Errorf("events: got %d, want %d", len(got), want)
	}
	var codecs []string
	for _, r := range rawRows(t, path, `SELECT codec FROM chunks ORDER BY first_ts`) {
		codecs = append(codecs, r)
	}
	if strings.Join(codecs, ",") != "zstd,zstd,zstd-dict,zstd-dict" {
		t.Errorf("codecs: got %v, want the old chunk, a keyframe, then two chunks compressed against it", codecs)
	}
}

func TestAssetConformance(t *testing.T) {
	storetest.RunAssets(t, func(t *testing.T) storetest.AssetBackend {
		return mustOpen(t, filepath.Join(t.TempDir(), "loupe.db"))
	})
}
