package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Fast()) }

func mustConnect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect %s: %v", dsn, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(tb testing.TB, conn *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// TestRestart starts a durable server, writes, stops it as a crash would,
// starts it again on the same port and reads the data back.
func TestRestart(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t)
	ctx := context.Background()

	conn := mustConnect(t, dsn)
	mustExec(t, conn, `CREATE TABLE t (v text)`)
	mustExec(t, conn, `INSERT INTO t VALUES ($1)`, "kept")
	var fsync string
	if err := conn.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "on" {
		t.Errorf("fsync = %s, want on for a server started without Fast", fsync)
	}
	conn.Close(ctx)

	port := srv.Port()
	srv.Stop(t)
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Fatal("connect to a stopped server succeeded")
	}
	srv.Start(t)
	if srv.Port() != port {
		t.Errorf("port after restart = %d, want %d", srv.Port(), port)
	}

	conn = mustConnect(t, dsn)
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM t`).Scan(&v); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if v != "kept" {
		t.Errorf("got %q, want %q", v, "kept")
	}
}

// TestCleanup checks that a server's folder is removed when its test ends.
func TestCleanup(t *testing.T) {
	var dir string
	t.Run("server", func(t *testing.T) {
		srv := pgtest.Start(t, pgtest.Fast())
		dir = srv.Dir()
		mustConnect(t, srv.DSN())
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("server folder %s still there after the test: %v", dir, err)
	}
}

// TestShared checks that the shared server is one server, with databases
// that are separate and empty.
func TestShared(t *testing.T) {
	a, b := pgtest.Shared(t), pgtest.Shared(t)
	if a != b {
		t.Fatal("Shared returned two servers")
	}
	dsn1, dsn2 := a.CreateDB(t), a.CreateDB(t)
	if dsn1 == dsn2 {
		t.Fatalf("CreateDB returned %s twice", dsn1)
	}
	c1, c2 := mustConnect(t, dsn1), mustConnect(t, dsn2)
	mustExec(t, c1, `CREATE TABLE only_in_one (v int)`)
	var n int
	err := c2.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_one'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("table of one database visible in another")
	}
	var fsync string
	if err := c1.QueryRow(context.Background(), `SHOW fsync`).Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("fsync = %s on the Fast shared server, want off", fsync)
	}
}
