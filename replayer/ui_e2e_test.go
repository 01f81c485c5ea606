package replayer_test

// Browser tests of the replay UI alone, against the API's contract: the
// pages come from the real replay server (its shell, bundle and CSP), and
// every /api/ route from a fake that records what the UI asked. They prove
// what the UI does with the API's answers; cmd/loupe's TestSignalsInUI
// proves the whole path from a visit to the screen.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/replayer/replayertest"
	"github.com/loupe-dev/loupe/replayer/ui"
	"github.com/loupe-dev/loupe/store"
)

// uiBrowser starts headless Chromium, or skips where it or the bundle is
// truly absent (under CI it fails instead, as cmd/loupe's tests do).
func uiBrowser(t *testing.T) context.Context {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") != "" {
		fail = t.Fatalf
	}
	if !ui.Built() {
		fail("UI bundle not built; run make build")
	}
	path := ""
	for _, p := range []string{os.Getenv("LOUPE_CHROMIUM"), "/usr/bin/chromium", "chromium"} {
		if p == "" {
			continue
		}
		if found, err := exec.LookPath(p); err == nil {
			path = found
			break
		}
	}
	if path == "" {
		fail("chromium not found; make test installs Debian's chromium")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// pageStore is the part of the store the replay server's pages read: the
// player page checks that its session exists. The embedded Reader is nil:
// the API is faked, so nothing else is called.
type pageStore struct {
	replayer.Reader
	ids []string
}

func (p pageStore) Session(_ context.Context, id string) (*store.Session, error) {
	if slices.Contains(p.ids, id) {
		return &store.Session{ID: id}, nil
	}
	return nil, store.ErrNotFound
}

// fakeAPI answers /api/ as the contract says and records what it was asked.
type fakeAPI struct {
	mu      sync.Mutex
	queries []url.Values // of GET /api/sessions
	tags    []string
	notes   []map[string]any
	nextID  int
}

const t0 = int64(1_790_000_000_000) // the fake session's first event, Unix ms

func fakeSession(id string) map[string]any {
	return map[string]any{
		"id": id, "started_at": time.UnixMilli(t0).UTC().Format(time.RFC3339Nano),
		"ended_at": time.UnixMilli(t0 + 20_000).UTC().Format(time.RFC3339Nano), "duration_ms": 20_000,
		"page_count": 2, "click_count": 9, "event_count": 12, "entry_url": "https://shop.test/", "exit_url": "https://shop.test/cart",
		"user_agent": "Mozilla/5.0 Chrome/120", "browser": "Chrome", "browser_version": "120.0", "os": "macOS", "device": "desktop",
		"country": "FR", "viewport_width": 1280, "viewport_height": 720, "user_id": "ada@example.test",
		"signals":  map[string]int{"rage_click": 1, "dead_click": 2, "error_click": 1, "js_error": 1, "server_error": 1, "form_abandon": 0},
		"friction": 11, "tags": []string{},
	}
}

// trickyStack, in the JS error's stack, is what splitting a streamed JSON
// array must not cut at: brackets, a comma, an escaped quote and a
// backslash inside a string.
const trickyStack = `[{"k":"],\\"}]`

// fakeEvents is a 20-second recording: one page, a snapshot, a JS error.
func fakeEvents() []map[string]any {
	el := func(id int, tag string, kids ...map[string]any) map[string]any {
		if kids == nil {
			kids = []map[string]any{}
		}
		return map[string]any{"type": 2, "id": id, "tagName": tag, "attributes": map[string]any{}, "childNodes": kids}
	}
	body := el(4, "body", map[string]any{"type": 3, "id": 5, "textContent": "Fake shop"})
	return []map[string]any{
		{"type": 4, "timestamp": t0, "data": map[string]any{"href": "https://shop.test/", "width": 1280, "height": 720}},
		{"type": 2, "timestamp": t0 + 1, "data": map[string]any{
			"node":          map[string]any{"type": 0, "id": 1, "childNodes": []any{el(2, "html", el(3, "head"), body)}},
			"initialOffset": map[string]any{"left": 0, "top": 0}}},
		{"type": 5, "timestamp": t0 + 6_000, "data": map[string]any{"tag": "loupe.error", "payload": map[string]any{
			"message": "Uncaught TypeError: x is undefined", "stack": "TypeError: x is undefined\n    at buy (app.js:3:7) " + trickyStack, "source": "https://shop.test/app.js", "line": 3, "kind": "error"}}},
		{"type": 5, "timestamp": t0 + 20_000, "data": map[string]any{"tag": "loupe.idle", "payload": map[string]any{}}},
	}
}

var fakeTimeline = []map[string]any{
	{"kind": "page", "at_ms": 0, "page": "https://shop.test/"},
	{"kind": "click", "at_ms": 2_000, "page": "https://shop.test/", "target": `button "Nothing"`},
	{"kind": "dead_click", "at_ms": 2_000, "page": "https://shop.test/", "target": `button "Nothing"`},
	{"kind": "rage_click", "at_ms": 4_000, "page": "https://shop.test/", "target": `div#rage`, "message": "4 clicks"},
	{"kind": "error_click", "at_ms": 6_000, "page": "https://shop.test/", "target": `button "Buy"`},
	{"kind": "js_error", "at_ms": 6_000, "page": "https://shop.test/", "message": "Uncaught TypeError: x is undefined"},
	{"kind": "request", "at_ms": 8_000, "method": "GET", "url": "/api/ok", "status": 200, "duration_ms": 12},
	{"kind": "server_error", "at_ms": 9_000, "method": "GET", "url": "/api/prices", "status": 500, "duration_ms": 30},
	{"kind": "page", "at_ms": 12_000, "page": "https://shop.test/cart"},
}

func (f *fakeAPI) routes(id string) *http.ServeMux {
	mux := http.NewServeMux()
	j := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/sessions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f.mu.Lock()
		f.queries = append(f.queries, q)
		f.mu.Unlock()
		if q.Get("min_pages") == "many" {
			w.WriteHeader(http.StatusBadRequest)
			j(w, map[string]string{"error": "min_pages: want an integer"})
			return
		}
		out := map[string]any{"sessions": []any{}}
		// The fake's only filter: the session is a Chrome one.
		if b := q.Get("browser"); b == "" || b == "Chrome" {
			out["sessions"] = []any{fakeSession(id)}
		}
		if q.Get("cursor") == "" {
			out["next"] = "page-2"
		}
		j(w, out)
	})
	mux.HandleFunc("GET /api/sessions/{id}", func(w http.ResponseWriter, r *http.Request) { j(w, fakeSession(id)) })
	mux.HandleFunc("GET /api/sessions/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		// In pieces of 7 bytes, each flushed: the player reads events as
		// they stream in.
		body, _ := json.Marshal(fakeEvents())
		w.Header().Set("Content-Type", "application/json")
		for len(body) > 0 {
			n := min(7, len(body))
			w.Write(body[:n])
			w.(http.Flusher).Flush()
			body = body[n:]
			time.Sleep(time.Millisecond)
		}
	})
	mux.HandleFunc("GET /api/sessions/{id}/timeline", func(w http.ResponseWriter, r *http.Request) { j(w, fakeTimeline) })
	mux.HandleFunc("GET /api/sessions/{id}/requests", func(w http.ResponseWriter, r *http.Request) {
		j(w, []map[string]any{
			{"at": t0 + 8_000, "method": "GET", "url": "/api/ok", "status": 200, "duration_ms": 12, "bytes": 120},
			{"at": t0 + 9_000, "method": "GET", "url": "/api/prices", "status": 500, "duration_ms": 30, "bytes": 16},
			{"at": t0 + 10_000, "method": "POST", "url": "/api/never", "status": 0, "duration_ms": 30_000, "bytes": 0},
		})
	})
	mux.HandleFunc("GET /api/sessions/{id}/tags", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j(w, f.tags)
	})
	mux.HandleFunc("PUT /api/sessions/{id}/tags", func(w http.ResponseWriter, r *http.Request) {
		var tags []string
		if err := json.NewDecoder(r.Body).Decode(&tags); err != nil {
			http.Error(w, `{"error":"bad tags"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.tags = tags
		f.mu.Unlock()
		j(w, tags)
	})
	mux.HandleFunc("GET /api/sessions/{id}/notes", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j(w, append([]map[string]any{}, f.notes...))
	})
	mux.HandleFunc("POST /api/sessions/{id}/notes", func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, `{"error":"bad note"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.nextID++
		n["id"] = f.nextID
		n["created_at"] = time.Now().UTC().Format(time.RFC3339)
		f.notes = append(f.notes, n)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		j(w, n)
	})
	mux.HandleFunc("DELETE /api/sessions/{id}/notes/{note}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.notes = slices.DeleteFunc(f.notes, func(n map[string]any) bool { return fmt.Sprint(n["id"]) == r.PathValue("note") })
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// startUI serves the real pages and the fake API for one session id, and
// signs the browser in through the login page as a user of role.
func startUI(t *testing.T, ctx context.Context, id string, role store.Role) (*httptest.Server, *fakeAPI) {
	t.Helper()
	users := replayertest.NewUsers()
	srv, err := replayer.New(replayer.Config{
		Store:  pageStore{ids: []string{id}},
		Users:  users,
		UI:     ui.FS(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPI{}
	apiMux := api.routes(id)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiMux.ServeHTTP(w, r)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	name, password := replayertest.AddUser(t, users, role)
	uiSignIn(t, ctx, hs.URL, name, password)
	return hs, api
}

// uiSignIn signs the browser in through the login page.
func uiSignIn(t *testing.T, ctx context.Context, base, name, password string) {
	t.Helper()
	run(t, ctx, "sign in", replayertest.SignInSteps(base, name, password))
}

// run runs a, retrying while a navigation replaces the page under it
// (a poll does not survive one), and fails the test with the page's text.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		v, err := chromedp.Run(tctx, a)
		if err == nil {
			return v
		}
		if tctx.Err() == nil && navigated(err) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// A page whose script never yields answers nothing: bounded.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		page, _ := chromedp.Run(pctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 1500)`))
		cancel()
		t.Fatalf("%s: %v\npage: %s", what, err, page)
	}
}

// TestUIFiltersInURL: a URL with filters shows them in the form, asks the
// API for exactly them, and paging, a new filter and Back keep the URL and
// the results in step.
func TestUIFiltersInURL(t *testing.T) {
	ctx := uiBrowser(t)
	const id = "s1"
	hs, api := startUI(t, ctx, id, store.RoleAdmin)
	lastQuery := func() url.Values {
		api.mu.Lock()
		defer api.mu.Unlock()
		if len(api.queries) == 0 {
			return nil
		}
		return api.queries[len(api.queries)-1]
	}
	rows := `(() => { const r = document.querySelector('.results');
		if (!r || r.querySelector('.notice--loading')) return false;
		return [...r.querySelectorAll('tr[data-session]')].map(e => e.dataset.session).join(',') || 'none'; })()`

	want := url.Values{
		"browser": {"Chrome"}, "signal": {"rage_click", "dead_click"}, "sort": {"friction"}, "min_duration": {"30"},
		"tag": {"checked"}, "device": {"desktop"}, "url": {"/checkout"}, "from": {"2026-01-02T03:04:00Z"},
	}
	run(t, ctx, "open the filtered list", chromedp.Navigate(hs.URL+"/?"+want.Encode()+"&bogus=1"))
	if got := run(t, ctx, "rows", chromedp.Poll[string](rows)); got != id {
		t.Fatalf("list shows rows %q, want %q", got, id)
	}
	if got := lastQuery(); !equalValues(got, want) {
		t.Errorf("the UI asked the API for %v, want exactly the URL's filters %v", got, want)
	}
	// The score is explained with the store's own terms (data-friction):
	// the fake session's signals sum to its friction, 11.
	explained := run(t, ctx, "friction", chromedp.Evaluate[string](`document.querySelector('tr[data-session] .friction').title`))
	if want := "3 × 1 rage clicks + 3 × 1 error clicks + 2 × 1 server errors + 1 × 2 dead clicks + 1 × 1 JS errors"; explained != want {
		t.Errorf("friction explained as %q, want %q", explained, want)
	}
	form := run(t, ctx, "read the form", chromedp.Evaluate[string](`JSON.stringify({
		browser: document.querySelector('input[name=browser]').value,
		url: document.querySelector('input[name=url]').value,
		tag: document.querySelector('input[name=tag]').value,
		min_duration: document.querySelector('input[name=min_duration]').value,
		device: document.querySelector('select[name=device]').value,
		from: document.querySelector('input[name=from]').value,
		signals: [...document.querySelectorAll('input[name=signal]:checked')].map(e => e.value).sort().join(','),
		sort: document.querySelector('.tab--current').dataset.sort,
		legend: !!document.querySelector('.legend'),
		friction: document.querySelector('tr[data-session] .friction').textContent,
		badges: [...document.querySelectorAll('tr[data-session] .badge')].map(e => e.dataset.kind).join(','),
	})`))
	var f map[string]any
	json.Unmarshal([]byte(form), &f)
	fromLocal := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC) // shown in the browser's zone; the test's is the same machine's
	wantForm := map[string]any{
		"browser": "Chrome", "url": "/checkout", "tag": "checked", "min_duration": "30", "device": "desktop",
		"from": fromLocal.Local().Format("2006-01-02T15:04"), "signals": "dead_click,rage_click", "sort": "friction", "legend": true,
		"friction": "11", "badges": "rage_click,dead_click,error_click,js_error,server_error",
	}
	for k, v := range wantForm {
		if f[k] != v {
			t.Errorf("form %s: got %v, want %v", k, f[k], v)
		}
	}

	// Next page: the cursor joins the filters in the URL and the API call.
	run(t, ctx, "next page", chromedp.Click(chromedp.CSS(`.pager a[rel=next]`)))
	run(t, ctx, "rows", chromedp.Poll[string](`location.search.includes('cursor=page-2') && `+rows))
	next := url.Values{}
	for k, v := range want {
		next[k] = v
	}
	next.Set("cursor", "page-2")
	if got := lastQuery(); !equalValues(got, next) {
		t.Errorf("next page asked for %v, want %v", got, next)
	}

	// A new filter through the form: a new URL, no cursor, other results.
	run(t, ctx, "filter on Firefox", chromedp.SetValue(chromedp.CSS("input[name=browser]"), "Firefox"))
	run(t, ctx, "submit", chromedp.Click(chromedp.CSS(".filters button[type=submit]")))
	if got := run(t, ctx, "rows", chromedp.Poll[string](`location.search.includes('browser=Firefox') && `+rows)); got != "none" {
		t.Errorf("with browser=Firefox the list shows %q, want none", got)
	}
	search := run(t, ctx, "location", chromedp.Evaluate[string](`location.search`))
	sq, _ := url.ParseQuery(strings.TrimPrefix(search, "?"))
	if sq.Has("cursor") || sq.Get("sort") != "friction" || len(sq["signal"]) != 2 || sq.Get("from") == "" {
		t.Errorf("after submitting, the URL is %s; want the filters kept, the cursor dropped", search)
	}
	// Back restores the previous page of results, form included.
	// history.back, not chromedp.NavigateBack: a page restored from the
	// back/forward cache fires no load event to wait for.
	run(t, ctx, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	waitTrue(t, ctx, "Back restores the filter and its results",
		`location.search.includes('cursor=page-2') && document.querySelector('input[name=browser]')?.value === 'Chrome' && !!document.querySelector('tr[data-session]')`)

	// A bad filter's 400 message reaches the page, beside the form.
	run(t, ctx, "bad filter", chromedp.Navigate(hs.URL+"/?min_pages=many"))
	msg := run(t, ctx, "error shown", chromedp.Poll[string](`document.querySelector('.results .notice--error')?.innerText || false`))
	if !strings.Contains(msg, "min_pages: want an integer") {
		t.Errorf("error notice reads %q, want the API's message", msg)
	}
	if v := run(t, ctx, "form kept", chromedp.Evaluate[string](`document.querySelector('input[name=min_pages]').value`)); v != "" {
		// A number input cannot hold "many": it shows empty, and the
		// notice says why.
		t.Errorf("min_pages input holds %q", v)
	}
	run(t, ctx, "sort tabs", chromedp.Navigate(hs.URL+"/?sort=duration"))
	if got := run(t, ctx, "current tab", chromedp.Poll[string](`document.querySelector('.tab--current')?.dataset.sort || false`)); got != "duration" {
		t.Errorf("current tab %q, want duration", got)
	}
}

// navigated reports whether err means that a navigation replaced the page
// while an action ran on it.
func navigated(err error) bool {
	for _, s := range []string{"Cannot find context", "Inspected target navigated", "Execution context was destroyed"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// waitTrue evaluates expr until it is true. Unlike chromedp.Poll it also
// works on a page restored from the back/forward cache, where a poll
// started before the restore never answers.
func waitTrue(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			// A page whose script never yields answers nothing: bounded.
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			page, _ := chromedp.Run(pctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 1500)`))
			cancel()
			t.Fatalf("%s: still false after 10 s (%v)\npage: %s", what, err, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := slices.Clone(b[k])
		v = slices.Clone(v)
		slices.Sort(v)
		slices.Sort(w)
		if !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestUIPlayer: the player draws the timeline's markers where the API puts
// them, lists them, seeks on a click, shows console errors with their
// stack and the network log with failures highlighted, and edits tags and
// notes through the API.
func TestUIPlayer(t *testing.T) {
	ctx := uiBrowser(t)
	const id = "s1"
	hs, api := startUI(t, ctx, id, store.RoleAdmin)
	run(t, ctx, "open the player", chromedp.Navigate(hs.URL+"/sessions/"+id+"?t=1000"))
	run(t, ctx, "markers", chromedp.Poll[bool](`!!window.loupePlayer && document.querySelectorAll('.timeline .marker').length > 0`))

	// Markers: each timeline kind but plain requests, at its time.
	got := run(t, ctx, "markers", chromedp.Evaluate[string](`[...document.querySelectorAll('.timeline .marker')].map(m => m.dataset.kind + '@' + m.dataset.at).join(' ')`))
	if want := "page@0 click@2000 dead_click@2000 rage_click@4000 error_click@6000 js_error@6000 server_error@9000 page@12000"; got != want {
		t.Errorf("markers:\n got %s\nwant %s", got, want)
	}
	// Position on the bar: 4 s of 20 s is 20 %.
	left := run(t, ctx, "rage marker position", chromedp.Evaluate[string](`document.querySelector('.marker--rage_click').style.left`))
	if left != "20%" {
		t.Errorf("rage click marker at left %q, want 20%%", left)
	}
	listed := run(t, ctx, "events", chromedp.Evaluate[string](`[...document.querySelectorAll('.panel--events .ev')].map(e => e.dataset.kind).join(' ')`))
	if want := "page click dead_click rage_click error_click js_error request server_error page"; listed != want {
		t.Errorf("events panel:\n got %s\nwant %s", listed, want)
	}
	detail := run(t, ctx, "rage detail", chromedp.Evaluate[string](`document.querySelector('.ev[data-kind=rage_click]').innerText`))
	if !strings.Contains(detail, "00:04") || !strings.Contains(detail, "div#rage") {
		t.Errorf("rage click entry reads %q, want its time and target", detail)
	}
	now := `window.loupePlayer.getReplayer().getCurrentTime()`
	for _, c := range []struct{ sel, at string }{
		{".panel--events .ev[data-kind=error_click]", "6000"},
		{".timeline .marker--server_error", "9000"},
	} {
		run(t, ctx, "click "+c.sel, chromedp.Click(chromedp.CSS(c.sel)))
		run(t, ctx, "seek to "+c.at, chromedp.Poll[bool](fmt.Sprintf(`Math.abs(%s - %s) < 100`, now, c.at), chromedp.WithPollingTimeout(5*time.Second)))
	}

	// The panel marks where the player is: the last entry at or before it.
	if cur := run(t, ctx, "current entry", chromedp.Evaluate[string](`[...document.querySelectorAll('.panel--events li.current .ev')].map(e => e.dataset.kind).join(' ') + ' past=' + document.querySelectorAll('.panel--events li.past').length`)); cur != "server_error past=8" {
		t.Errorf("current entry at 9 s: %q, want server_error past=8", cur)
	}
	run(t, ctx, "console tab", chromedp.Click(chromedp.CSS(".side__tab[data-tab=console]")))
	con := run(t, ctx, "console", chromedp.Evaluate[string](`document.querySelector('.panel--console').innerText`))
	if !strings.Contains(con, "x is undefined") || !strings.Contains(con, "app.js:3") || strings.Count(con, "x is undefined") != 1 {
		t.Errorf("console panel reads %q; want the error once, with its source", con)
	}
	// The stack (folded) came through the streamed events whole.
	if stack := run(t, ctx, "stack", chromedp.Evaluate[string](`document.querySelector('.panel--console').textContent`)); !strings.Contains(stack, trickyStack) {
		t.Errorf("console panel holds %q; want the whole stack, with %s", stack, trickyStack)
	}
	run(t, ctx, "network tab", chromedp.Click(chromedp.CSS(".side__tab[data-tab=network]")))
	failed := run(t, ctx, "network", chromedp.Evaluate[string](`[...document.querySelectorAll('.panel--network .req--failed')].map(r => r.innerText.replace(/\s+/g, ' ')).join(' | ')`))
	if !strings.Contains(failed, "/api/prices") || !strings.Contains(failed, "500") || !strings.Contains(failed, "/api/never") || strings.Contains(failed, "/api/ok") {
		t.Errorf("highlighted requests: %q; want the 500 and the failed one only", failed)
	}
	run(t, ctx, "click the 500", chromedp.Click(chromedp.CSS(".panel--network .req--failed")))
	run(t, ctx, "seek to the 500", chromedp.Poll[bool](fmt.Sprintf(`Math.abs(%s - 9000) < 100`, now), chromedp.WithPollingTimeout(5*time.Second)))

	// Tags: add two, remove one; the API holds what the page shows.
	for _, tag := range []string{"checkout", "bug"} {
		run(t, ctx, "type a tag", chromedp.SendKeys(chromedp.CSS(".tags__add input"), tag))
		run(t, ctx, "add it", chromedp.Click(chromedp.CSS(".tags__add button")))
		run(t, ctx, "tag shown", chromedp.Poll[bool](fmt.Sprintf(`!!document.querySelector('.tag[data-tag=%q]')`, tag)))
	}
	run(t, ctx, "remove a tag", chromedp.Click(chromedp.CSS(`.tag[data-tag="checkout"] .tag__rm`)))
	run(t, ctx, "tag gone", chromedp.Poll[bool](`!document.querySelector('.tag[data-tag="checkout"]')`))
	api.mu.Lock()
	tags := slices.Clone(api.tags)
	api.mu.Unlock()
	if !slices.Equal(tags, []string{"bug"}) {
		t.Errorf("API holds tags %v, want [bug]", tags)
	}

	// Notes: added at the player's moment, listed, deleted.
	run(t, ctx, "notes tab", chromedp.Click(chromedp.CSS(".side__tab[data-tab=notes]")))
	run(t, ctx, "write", chromedp.SendKeys(chromedp.CSS(".notes__add textarea"), "price list 500"))
	run(t, ctx, "add note", chromedp.Click(chromedp.CSS(".notes__add button[type=submit]")))
	note := run(t, ctx, "note", chromedp.Poll[string](`document.querySelector('.note')?.innerText || false`))
	if !strings.Contains(note, "price list 500") || !strings.Contains(note, "00:09") {
		t.Errorf("note reads %q, want its text at 00:09", note)
	}
	api.mu.Lock()
	at := api.notes[0]["at_ms"]
	api.mu.Unlock()
	if at != float64(9000) {
		t.Errorf("note posted with at_ms %v, want 9000 (the player's moment)", at)
	}
	run(t, ctx, "delete note", chromedp.Click(chromedp.CSS(".note__rm")))
	run(t, ctx, "note gone", chromedp.Poll[bool](`!document.querySelector('.note')`))

	// Shortcuts: n steps to the next event, P back to the previous signal,
	// 4 sets 8×, ? opens the help.
	run(t, ctx, "n", chromedp.KeyEvent("n"))
	run(t, ctx, "next event", chromedp.Poll[bool](fmt.Sprintf(`Math.abs(%s - 12000) < 100`, now), chromedp.WithPollingTimeout(5*time.Second)))
	run(t, ctx, "P", chromedp.KeyEvent("P"))
	run(t, ctx, "previous signal", chromedp.Poll[bool](fmt.Sprintf(`Math.abs(%s - 9000) < 100`, now), chromedp.WithPollingTimeout(5*time.Second)))
	run(t, ctx, "4", chromedp.KeyEvent("4"))
	if sp := run(t, ctx, "speed", chromedp.Evaluate[float64](`window.loupePlayer.getReplayer().config.speed`)); sp != 8 {
		t.Errorf("speed after 4: %v, want 8", sp)
	}
	skip := `window.loupePlayer.getReplayer().config.skipInactive`
	before := run(t, ctx, "skip inactive", chromedp.Evaluate[bool](skip))
	run(t, ctx, "s", chromedp.KeyEvent("s"))
	if after := run(t, ctx, "skip inactive", chromedp.Evaluate[bool](skip)); after == before {
		t.Errorf("s leaves skip inactive at %v", after)
	}
	run(t, ctx, "?", chromedp.KeyEvent("?"))
	run(t, ctx, "help shown", chromedp.Poll[bool](`!document.querySelector('.help').hidden`))

	// The share link names this moment.
	run(t, ctx, "close help", chromedp.Click(chromedp.CSS(".help__close")))
	run(t, ctx, "share", chromedp.Click(chromedp.CSS(".share .btn")))
	link := run(t, ctx, "share link", chromedp.Evaluate[string](`document.querySelector('.share__url').value`))
	if link != hs.URL+"/sessions/"+id+"?t=9000" {
		t.Errorf("share link %q, want this session at 9000 ms", link)
	}
}

// TestUIViewer: a viewer sees who is signed in, and a session's tags and
// notes (with their authors) but no control to change them.
func TestUIViewer(t *testing.T) {
	ctx := uiBrowser(t)
	const id = "s1"
	hs, api := startUI(t, ctx, id, store.RoleViewer)
	api.mu.Lock()
	api.notes = []map[string]any{{"id": 1, "at_ms": nil, "text": "seen it", "author": "ed", "created_at": "2026-11-27T10:00:00Z"}}
	api.mu.Unlock()
	run(t, ctx, "open the player", chromedp.Navigate(hs.URL+"/sessions/"+id))
	raw := run(t, ctx, "annotations", chromedp.Poll[string](`(() => {
		const note = document.querySelector('li.note[data-note]');
		if (!note || !document.querySelector('.tags')) return false;
		return JSON.stringify({
			tagForm: !!document.querySelector('.tags__add'), noteForm: !!document.querySelector('.notes__add'),
			noteDelete: !!document.querySelector('.note__rm'),
			author: note.querySelector('.note__author')?.textContent ?? '',
			account: document.querySelector('.account')?.textContent.replace(/\s+/g, ' ').trim() ?? ''});
	})()`))
	var got struct {
		TagForm, NoteForm, NoteDelete bool
		Author, Account               string
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if got.TagForm || got.NoteForm || got.NoteDelete {
		t.Errorf("a viewer is offered changes: %+v", got)
	}
	if got.Author != "ed" {
		t.Errorf("note author shown %q, want ed", got.Author)
	}
	if want := "Signed in as test-viewer (viewer) Sign out"; got.Account != want {
		t.Errorf("account bar %q, want %q", got.Account, want)
	}
}

// TestUIAccount: an admin adds a user, changes its role and its own
// password on the account page, and the store holds what the page did.
func TestUIAccount(t *testing.T) {
	ctx := uiBrowser(t)
	users := replayertest.NewUsers()
	srv, err := replayer.New(replayer.Config{Store: pageStore{}, Users: users, UI: ui.FS(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	name, password := replayertest.AddUser(t, users, store.RoleAdmin)
	uiSignIn(t, ctx, hs.URL, name, password)

	user := func(n string) *store.User {
		u, _ := users.User(context.Background(), n)
		return u
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 1500)`))
				t.Fatalf("%s: not after 10 s\npage: %s", what, page)
			}
		}
	}

	run(t, ctx, "open the account page", chromedp.Steps(chromedp.Navigate(hs.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-user="test-admin"]`))))
	run(t, ctx, "add a user", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS(`.users__add input[name="name"]`), "vic"),
		chromedp.SetValue(chromedp.CSS(`.users__add select[name="role"]`), "editor"),
		chromedp.SendKeys(chromedp.CSS(`.users__add input[name="password"]`), "vic's long password"),
		chromedp.Click(chromedp.CSS(`.users__add button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-user="vic"]`))))
	if u := user("vic"); u == nil || u.Role != store.RoleEditor || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("vic's long password")) != nil {
		t.Fatalf("vic as stored: %+v; want an editor with the password typed", u)
	}
	run(t, ctx, "make vic a viewer", chromedp.Evaluate[bool](`(() => {
		const s = document.querySelector('tr[data-user="vic"] select');
		s.value = 'viewer';
		return s.dispatchEvent(new Event('change'));
	})()`))
	waitFor("vic a viewer", func() bool { u := user("vic"); return u != nil && u.Role == store.RoleViewer })

	run(t, ctx, "change my password", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS(`input[name="old"]`), password),
		chromedp.SendKeys(chromedp.CSS(`input[name="new"]`), "the admin's new password"),
		chromedp.SendKeys(chromedp.CSS(`input[name="again"]`), "the admin's new password"),
		chromedp.Click(chromedp.CSS(`.account__form button[type="submit"]`))))
	waitFor("the admin's new password stored", func() bool {
		return bcrypt.CompareHashAndPassword([]byte(user(name).PasswordHash), []byte("the admin's new password")) == nil
	})
	// Still signed in, under the renewed cookie.
	run(t, ctx, "reload", chromedp.Steps(chromedp.Navigate(hs.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`#app[data-page="account"]`))))
}
