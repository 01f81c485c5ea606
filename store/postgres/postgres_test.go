package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/storetest"
)

// One server for the package's tests; each test takes a fresh database.
// The outage test starts its own, durable one.
func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Fast()) }

func mustOpen(tb testing.TB, dsn string) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	return db
}

// mustNew opens a store on a fresh database of the shared server and closes
// it when the test ends.
func mustNew(tb testing.TB) (*postgres.DB, string) {
	tb.Helper()
	dsn := pgtest.Shared(tb).CreateDB(tb)
	db := mustOpen(tb, dsn)
	tb.Cleanup(func() { db.Close() })
	return db, dsn
}

// rawConn connects to dsn directly, bypassing the package.
func rawConn(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		// storetest.Run closes the store.
		return mustOpen(t, pgtest.Shared(t).CreateDB(t))
	})
}

func migrationsApplied(tb testing.TB, dsn string) []string {
	tb.Helper()
	rows, err := rawConn(tb, dsn).Query(context.Background(),
		`SELECT version || ' ' || name FROM schema_migrations ORDER BY version`)
	if err != nil {
		tb.Fatalf("schema_migrations: %v", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("schema_migrations: %v", err)
	}
	return got
}

func TestMigrations(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t)
	mustOpen(t, dsn).Close()
	first := migrationsApplied(t, dsn)
	if len(first) == 0 || first[0] != "1 0001_init.sql" {
		t.Fatalf("schema_migrations: got %v, want 1 0001_init.sql first", first)
	}
	// Reopening applies nothing again (a rerun of 0001 would fail on
	// CREATE TABLE) and records nothing twice.
	mustOpen(t, dsn).Close()
	if again := migrationsApplied(t, dsn); strings.Join(again, ",") != strings.Join(first, ",") {
		t.Errorf("after reopen: got %v, want %v", again, first)
	}
}

// TestMigrationsConcurrent opens one empty database from many goroutines at
// once, as collector nodes starting together would.
func TestMigrationsConcurrent(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			db, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	got := migrationsApplied(t, dsn)
	seen := map[string]bool{}
	for _, m := range got {
		if seen[m] {
			t.Errorf("migration %s recorded twice", m)
		}
		seen[m] = true
	}
	if len(got) == 0 {
		t.Errorf("no migrations recorded")
	}
}

func TestOpenNewerSchema(t *testing.T) {
	dsn := pgtest.Shared(t).CreateDB(t)
	mustOpen(t, dsn).Close()
	if _, err := rawConn(t, dsn).Exec(context.Background(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), dsn)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open: got %v, want an error about a newer schema", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	// Port 1 on loopback: nothing listens there.
	_, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable")
	if err == nil || !strings.HasPrefix(err.Error(), "open store: ") {
		t.Errorf("open: got %v, want \"open store: …\"", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("open took %v, want it to fail within seconds", d)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Shared(t).CreateDB(t)
	db := mustOpen(t, dsn)
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

	db = mustOpen(t, dsn)
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

// TestDuplicateAcrossNodes: two stores on one database, as two collector
// nodes, receive the same retried batches at once; each is stored once.
func TestDuplicateAcrossNodes(t *testing.T) {
	ctx := context.Background()
	_, dsn := mustNew(t)
	nodes := []*postgres.DB{mustOpen(t, dsn), mustOpen(t, dsn)}
	for _, n := range nodes {
		defer n.Close()
	}
	bs := storetest.Recording("s", 2, 10)
	for _, b := range bs {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = nodes[i%2].AppendBatch(ctx, b) })
		}
		wg.Wait()
		var stored int
		for _, err := range errs {
			switch {
			case err == nil:
				stored++
			case !errors.Is(err, store.ErrDuplicate):
				t.Fatalf("append %s/%d: %v", b.PageViewID, b.Seq, err)
			}
		}
		if stored != 1 {
			t.Fatalf("batch %s/%d stored %d times, want 1", b.PageViewID, b.Seq, stored)
		}
	}
	var events, clicks int
	for _, b := range bs {
		events += b.EventCount
		clicks += len(b.Clicks)
	}
	s, err := nodes[0].Session(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if s.EventCount != events || s.ClickCount != clicks || s.PageCount != 2 {
		t.Errorf("EventCount, ClickCount, PageCount: got %d, %d, %d, want %d, %d, 2",
			s.EventCount, s.ClickCount, s.PageCount, events, clicks)
	}
}

// TestAppendFailuresLeaveNoTransaction: AppendBatch begins its transaction
// inside its pipeline, so every way an append fails must end it. On a pool
// of one connection, each failure is followed by an append that must
// commit alone: a transaction left open would take the failed append's
// rows with it (or leave them uncommitted).
func TestAppendFailuresLeaveNoTransaction(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	_, dsn := mustNew(t)
	db := mustOpen(t, dsn+"&pool_max_conns=1")
	defer db.Close()
	raw := rawConn(t, dsn)
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := raw.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	mustAppend := func(b *store.Batch) {
		t.Helper()
		if err := db.AppendBatch(ctx, b); err != nil {
			t.Fatalf("append %s/%s/%d: %v", b.SessionID, b.PageViewID, b.Seq, err)
		}
	}
	mustAppend(storetest.Batch("a", "a1", 0, base, 5, 10, "https://x.example/", 1))

	// A duplicate: rolled back after its session and page view upserts ran.
	dup := storetest.Batch("a", "a1", 0, base+9000, 7, 10, "https://x.example/other", 2)
	if err := db.AppendBatch(ctx, dup); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate: got %v, want ErrDuplicate", err)
	}
	mustAppend(storetest.Batch("b", "b1", 0, base, 3, 10, "https://x.example/b", 0))
	if n := count(`SELECT event_count FROM sessions WHERE id = 'a'`); n != 5 {
		t.Errorf("session a has %d events after its duplicate, want 5", n)
	}

	// Another session's page view: refused after its statements ran.
	if err := db.AppendBatch(ctx, storetest.Batch("c", "a1", 1, base, 3, 10, "", 0)); err == nil {
		t.Fatal("a batch naming another session's page view was stored")
	}
	mustAppend(storetest.Batch("b", "b1", 1, base+100, 3, 10, "", 0))
	if n := count(`SELECT count(*) FROM sessions WHERE id = 'c'`); n != 0 {
		t.Errorf("the refused batch's session was stored")
	}

	// A context canceled mid-append.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.AppendBatch(cctx, storetest.Batch("d", "d1", 0, base, 3, 10, "", 0)); err == nil {
		t.Fatal("append with a canceled context succeeded")
	}
	mustAppend(storetest.Batch("b", "b1", 2, base+200, 3, 10, "", 0))
	if n := count(`SELECT count(*) FROM chunks WHERE session_id = 'b'`); n != 3 {
		t.Errorf("session b has %d chunks, want 3", n)
	}
	if n := count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`); n != 0 {
		t.Errorf("%d connections idle in a transaction, want none", n)
	}
}

func TestCompressionRatio(t *testing.T) {
	ctx := context.Background()
	db, _ := mustNew(t)
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
	t.Logf("%d batches, %d events: %d raw bytes stored as %d (%.1f×)", len(bs), s.EventCount, s.Bytes, s.StoredBytes,
		float64(s.Bytes)/float64(s.StoredBytes))
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

func TestClosed(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, pgtest.Shared(t).CreateDB(t))
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
		{"Activity", func() error { _, err := db.Activity(ctx, "s"); return err }},
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
	db, _ := mustNew(t)
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
	// The other session's page view is untouched.
	s, err := db.Session(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.EventCount != 1 {
		t.Errorf("s1 EventCount: got %d, want 1", s.EventCount)
	}
}

func TestWriteEventsWriterError(t *testing.T) {
	ctx := context.Background()
	db, _ := mustNew(t)
	if err := db.AppendBatch(ctx, storetest.Batch("s", "p", 0, 1, 5, 1, "", 0)); err != nil {
		t.Fatalf("append: %v", err)
	}
	boom := errors.New("client went away")
	err := db.WriteEvents(ctx, "s", failWriter{boom})
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the writer's error", err)
	}
	// The connection was released: the store still answers.
	if _, err := db.Session(ctx, "s"); err != nil {
		t.Errorf("session after a failed write: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestAppendBatchCanceled(t *testing.T) {
	db, _ := mustNew(t)
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
	db, _ := mustNew(t)
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

// TestOutage stops the database under a store: calls fail within seconds
// instead of hanging, and once the database is back the pool reconnects
// without the store being reopened.
func TestOutage(t *testing.T) {
	t.Parallel()           // mostly waiting for its own server to start, twice
	srv := pgtest.Start(t) // durable, and ours to stop
	db := mustOpen(t, srv.CreateDB(t))
	defer db.Close()
	ctx := context.Background()
	if err := db.AppendBatch(ctx, storetest.Batch("s", "p", 0, 1000, 5, 10, "", 0)); err != nil {
		t.Fatalf("append before the outage: %v", err)
	}

	srv.Stop(t)
	for i, call := range []struct {
		name string
		fn   func() error
	}{
		{"AppendBatch", func() error { return db.AppendBatch(ctx, storetest.Batch("s", "p", 1, 2000, 5, 10, "", 0)) }},
		{"AppendBatch again", func() error { return db.AppendBatch(ctx, storetest.Batch("s", "p", 1, 2000, 5, 10, "", 0)) }},
		{"Session", func() error { _, err := db.Session(ctx, "s"); return err }},
		{"WriteEvents", func() error { return db.WriteEvents(ctx, "s", &bytes.Buffer{}) }},
		{"Ping", func() error { return db.Ping(ctx) }},
	} {
		start := time.Now()
		err := call.fn()
		d := time.Since(start)
		if err == nil {
			t.Errorf("%d %s while the database is down: got nil error", i, call.name)
		} else if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDuplicate) {
			t.Errorf("%s while the database is down: got %v, want a connection error", call.name, err)
		}
		if d > 5*time.Second {
			t.Errorf("%s while the database is down took %v, want under 5s", call.name, d)
		}
		t.Logf("%s while down: %v after %v", call.name, err, d.Round(time.Millisecond))
	}

	srv.Start(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.AppendBatch(ctx, storetest.Batch("s", "p", 1, 2000, 5, 10, "", 0))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, err := db.Session(ctx, "s")
	if err != nil {
		t.Fatalf("session after the outage: %v", err)
	}
	if s.EventCount != 10 {
		t.Errorf("EventCount after the outage: got %d, want 10 (the batch before, the batch after)", s.EventCount)
	}
}

func TestAssetConformance(t *testing.T) {
	storetest.RunAssets(t, func(t *testing.T) storetest.AssetBackend {
		// storetest.RunAssets closes the store.
		return mustOpen(t, pgtest.Shared(t).CreateDB(t))
	})
}
