package replayer_test

// BenchmarkList measures GET /api/sessions (server time: the handler, the
// store's query and the JSON, without the network) over 100,000 synthetic
// sessions on SQLite and on a private PostgreSQL, for the list's common
// filters and sorts. The rows are bulk-inserted, not ingested.
//
//	go test -run '^$' -bench BenchmarkList -benchtime 20x ./replayer/

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/sqlite"
)

// benchSessions is the number of synthetic sessions.
const benchSessions = 100_000

// listCases are the list queries measured.
var listCases = []struct{ name, query string }{
	{"recent", ""},
	{"sort=friction", "sort=friction"},
	{"sort=duration", "sort=duration"},
	{"page 10", "offset=450"},
	{"signal=rage_click", "signal=rage_click"},
	{"signal=dead_click+sort=friction", "signal=dead_click&sort=friction"},
	{"signal=console_error", "signal=console_error"},
	{"browser+device", "browser=Safari&device=mobile"},
	{"country+sort=friction", "country=DE&sort=friction"},
	{"user", "user=user4242"},
	{"url visited", "url=/checkout/done"},
	{"entry+exit", "entry=/pricing&exit=/signup"},
	{"min_duration+sort=duration", "min_duration=600&sort=duration"},
	{"min_pages", "min_pages=4"},
	{"one day", "from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z"},
	{"tag", "tag=bug"},
	{"combined", "browser=Chrome&signal=js_error&min_duration=60&sort=friction"},
}

func BenchmarkList(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "loupe.db")
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		start := time.Now()
		if err := loadSQLite(path); err != nil {
			b.Fatal(err)
		}
		b.Logf("sqlite: loaded %d sessions in %v", benchSessions, time.Since(start).Round(time.Millisecond))
		runListCases(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := pgtest.Start(b, pgtest.Fast()).CreateDB(b)
		db, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		start := time.Now()
		if err := loadPostgres(dsn); err != nil {
			b.Fatal(err)
		}
		b.Logf("postgres: loaded %d sessions in %v", benchSessions, time.Since(start).Round(time.Millisecond))
		runListCases(b, db)
	})
}

func runListCases(b *testing.B, st replayer.Reader) {
	srv, err := replayer.New(replayer.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range listCases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/sessions?"+c.query, nil)
			n := 0
			for b.Loop() {
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", c.query, w.Code, w.Body)
				}
				n = strings.Count(w.Body.String(), `"id":`)
			}
			b.ReportMetric(float64(n), "rows")
		})
	}
}

// synthetic sessions, deterministic.
type listSession struct {
	id                                   string
	start, end                           int64
	pages, clicks, events                int
	entry, exit                          string
	browser, os, device, country         string
	referrer, utm, user                  string
	rage, dead, errClick, js, srv, aband int
	converted                            bool
	friction                             float64
	urls                                 []string
	tagged, console                      bool
}

var (
	benchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	benchPaths = []string{"/", "/pricing", "/features", "/blog/post-1", "/blog/post-2", "/docs", "/docs/api",
		"/signup", "/login", "/cart", "/checkout", "/checkout/done", "/account", "/search?q=shoes", "/product/42",
		"/product/7", "/about", "/contact", "/careers", "/help"}
)

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func chance(r *rand.Rand, p float64, n int) int {
	if r.Float64() < p {
		return 1 + r.IntN(n)
	}
	return 0
}

func benchData() []listSession {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]listSession, benchSessions)
	for i := range out {
		s := &out[i]
		s.id = fmt.Sprintf("%032x", i)
		s.start = benchStart + int64(i)*30_000 + r.Int64N(30_000) // about 35 days
		s.end = s.start + 5_000 + r.Int64N(1_800_000)
		s.pages = 1 + r.IntN(5)
		for range s.pages {
			s.urls = append(s.urls, "https://shop.example"+pick(r, benchPaths...))
		}
		s.entry, s.exit = s.urls[0], s.urls[len(s.urls)-1]
		s.clicks, s.events = r.IntN(40), 50+r.IntN(2000)
		s.browser = pick(r, "Chrome", "Chrome", "Chrome", "Safari", "Safari", "Firefox", "Edge")
		s.os = pick(r, "Windows", "macOS", "iOS", "Android", "Linux")
		s.device = pick(r, "desktop", "desktop", "mobile", "mobile", "tablet")
		s.country = pick(r, "US", "GB", "FR", "DE", "ES", "IT", "NL", "BR", "IN", "JP")
		s.referrer = pick(r, "", "", "https://www.google.com/", "https://news.example/")
		s.utm = pick(r, "", "", "", "newsletter", "ads")
		if r.IntN(3) == 0 {
			s.user = fmt.Sprint("user", r.IntN(10_000))
		}
		s.rage, s.dead, s.errClick = chance(r, 0.03, 3), chance(r, 0.10, 4), chance(r, 0.02, 2)
		s.js, s.srv, s.aband = chance(r, 0.08, 5), chance(r, 0.03, 3), chance(r, 0.04, 1)
		s.converted = r.IntN(10) == 0
		s.friction = store.Friction(store.SignalCounts{RageClick: s.rage, DeadClick: s.dead, ErrorClick: s.errClick,
			JSError: s.js, ServerError: s.srv, FormAbandon: s.aband}, s.converted)
		s.tagged = r.IntN(100) == 0
		s.console = r.IntN(20) == 0
	}
	return out
}

const listSessionCols = `id, started_at, ended_at, page_count, click_count, event_count, entry_url, exit_url,
	browser, os, device, country, referrer, utm_source, user_id,
	rage_click_count, dead_click_count, error_click_count, js_error_count, server_error_count, form_abandon_count,
	friction, converted`

func (s *listSession) row() []any {
	return []any{s.id, s.start, s.end, s.pages, s.clicks, s.events, s.entry, s.exit,
		s.browser, s.os, s.device, s.country, s.referrer, s.utm, s.user,
		s.rage, s.dead, s.errClick, s.js, s.srv, s.aband, s.friction, s.converted}
}

// loadSQLite bulk-inserts the sessions, their page views, tags and
// console-error signals into the SQLite file at path.
func loadSQLite(path string) error {
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer raw.Close()
	tx, err := raw.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ncols := len(strings.Split(listSessionCols, ","))
	insS, err := tx.Prepare(`INSERT INTO sessions (` + listSessionCols + `) VALUES (` + strings.TrimSuffix(strings.Repeat("?,", ncols), ",") + `)`)
	if err != nil {
		return err
	}
	insP, err := tx.Prepare(`INSERT INTO page_views (id, session_id, url, url_seq, started_at, ended_at, event_count) VALUES (?, ?, ?, 0, ?, ?, 1)`)
	if err != nil {
		return err
	}
	insT, err := tx.Prepare(`INSERT INTO session_tags (session_id, tag) VALUES (?, 'bug')`)
	if err != nil {
		return err
	}
	insG, err := tx.Prepare(`INSERT INTO signals (session_id, at, kind, detail) VALUES (?, ?, 'console_error', 'x')`)
	if err != nil {
		return err
	}
	for _, s := range benchData() {
		if _, err := insS.Exec(s.row()...); err != nil {
			return err
		}
		step := (s.end - s.start) / int64(s.pages)
		for j, u := range s.urls {
			at := s.start + int64(j)*step
			if _, err := insP.Exec(fmt.Sprintf("%s%02d", s.id, j), s.id, u, at, at+step); err != nil {
				return err
			}
		}
		if s.tagged {
			if _, err := insT.Exec(s.id); err != nil {
				return err
			}
		}
		if s.console {
			if _, err := insG.Exec(s.id, s.start+1000); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = raw.Exec(`ANALYZE`)
	return err
}

// loadPostgres is loadSQLite with COPY.
func loadPostgres(dsn string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	data := benchData()
	var sess, pvs, tags, sigs [][]any
	for _, s := range data {
		sess = append(sess, s.row())
		step := (s.end - s.start) / int64(s.pages)
		for j, u := range s.urls {
			at := s.start + int64(j)*step
			pvs = append(pvs, []any{fmt.Sprintf("%s%02d", s.id, j), s.id, u, 0, at, at + step, 1})
		}
		if s.tagged {
			tags = append(tags, []any{s.id, "bug"})
		}
		if s.console {
			sigs = append(sigs, []any{s.id, s.start + 1000, "console_error", "x"})
		}
	}
	cols := strings.Fields(strings.ReplaceAll(listSessionCols, ",", " "))
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"sessions", cols, sess},
		{"page_views", []string{"id", "session_id", "url", "url_seq", "started_at", "ended_at", "event_count"}, pvs},
		{"session_tags", []string{"session_id", "tag"}, tags},
		{"signals", []string{"session_id", "at", "kind", "detail"}, sigs},
	} {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return fmt.Errorf("copy %s: %w", c.table, err)
		}
	}
	_, err = conn.Exec(ctx, `ANALYZE`)
	return err
}
