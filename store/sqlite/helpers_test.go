package sqlite_test

import (
	"database/sql"
	"net/url"
	"testing"
)

// rawDB opens path directly, bypassing the package, for checks on the file.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	u := url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		tb.Fatalf("open raw: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func rawQuery(tb testing.TB, path, q string, dest ...any) error {
	tb.Helper()
	return rawDB(tb, path).QueryRow(q).Scan(dest...)
}

func rawExec(tb testing.TB, path, q string) {
	tb.Helper()
	if _, err := rawDB(tb, path).Exec(q); err != nil {
		tb.Fatalf("exec %q: %v", q, err)
	}
}

func rawRows(tb testing.TB, path, q string) []string {
	tb.Helper()
	rows, err := rawDB(tb, path).Query(q)
	if err != nil {
		tb.Fatalf("query %q: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatalf("scan: %v", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("rows: %v", err)
	}
	return out
}
