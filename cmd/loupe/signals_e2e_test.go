package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// uiSignalsOrigin is a site with one control per behaviour signal. Only the
// error and fetch buttons have handlers: the others change nothing.
func uiSignalsOrigin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Signals</title>
<style>button,#rage{display:block;margin:24px;padding:12px 20px;font-size:16px}</style></head>
<body><h1>Signals</h1>
<button id="dead">Does nothing</button>
<div id="rage">Press me harder</div>
<button id="boom">Break</button>
<button id="fetch">Load prices</button>
<script>
document.getElementById('boom').addEventListener('click', function () { throw new Error('boom after click'); });
document.getElementById('fetch').addEventListener('click', function () { fetch('/api/prices').catch(function () {}); });
</script></body></html>`)
	})
	mux.HandleFunc("GET /api/prices", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "prices are down", http.StatusInternalServerError)
	})
	return mux
}

type uiSession struct {
	ID         string         `json:"id"`
	StartedAt  time.Time      `json:"started_at"`
	PageCount  int            `json:"page_count"`
	InputCount int            `json:"input_count"`
	Browser    string         `json:"browser"`
	Device     string         `json:"device"`
	Signals    map[string]int `json:"signals"`
}

// TestSignalsInUI is issue 6's judged test: a visit in real Chromium with a
// dead click, a rage click, a JS error right after a click and a 500 from
// an API call shows each signal in the session list's filters, on the
// player's timeline and in its events panel at the moment it happened, and
// a click in the events panel moves the player there.
func TestSignalsInUI(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(uiSignalsOrigin())
	defer origin.Close()
	m := startLoupe(t, origin.URL)
	ctx := newBrowser(t, chromium)
	browserSignIn(t, ctx, m)

	do(t, ctx, "open the page", chromedp.Navigate(m.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("#fetch")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("recorder did not start: %v", err)
	}
	// now is the browser's clock, the one the session's times come from.
	now := func() int64 {
		t.Helper()
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64]("Date.now()"))
		if err != nil {
			t.Fatalf("read the browser's clock: %v", err)
		}
		return int64(ms)
	}
	// Each action is well apart from the others (more than a signal's
	// window of about a second), so that each marker is attributable.
	pause := chromedp.Sleep(1500 * time.Millisecond)
	did := map[string]int64{} // signal kind → Unix ms when the test acted
	do(t, ctx, "settle", pause)
	did["dead_click"] = now()
	do(t, ctx, "dead click", chromedp.Click(chromedp.CSS("#dead")), pause)
	did["rage_click"] = now()
	do(t, ctx, "rage click",
		chromedp.Click(chromedp.CSS("#rage")), chromedp.Click(chromedp.CSS("#rage")),
		chromedp.Click(chromedp.CSS("#rage")), chromedp.Click(chromedp.CSS("#rage")), pause)
	did["error_click"] = now()
	did["js_error"] = did["error_click"]
	do(t, ctx, "error click", chromedp.Click(chromedp.CSS("#boom")), pause)
	did["server_error"] = now()
	do(t, ctx, "fetch a 500", chromedp.Click(chromedp.CSS("#fetch")), pause,
		// Leaving the page flushes its last events with sendBeacon.
		chromedp.Navigate("about:blank"))

	kinds := []string{"dead_click", "rage_click", "error_click", "js_error", "server_error"}
	sess := uiWaitSignals(t, m.AdminURL, kinds)
	start := sess.StartedAt.UnixMilli()
	want := map[string]int64{} // kind → ms from the session's start
	for k, at := range did {
		want[k] = at - start
	}
	t.Logf("session %s started at %d; actions at %v ms from its start; signals %v", sess.ID, start, want, sess.Signals)

	t.Run("list filters", func(t *testing.T) {
		for _, k := range kinds {
			ids, err := uiListed(ctx, m.AdminURL+"/?signal="+k)
			if err != nil {
				t.Errorf("list with signal=%s: %v", k, err)
				continue
			}
			if !uiHas(ids, sess.ID) {
				t.Errorf("list with signal=%s shows %v, want session %s", k, ids, sess.ID)
			}
			// The row shows the signal's badge, and the form the filter.
			got, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
				`!!document.querySelector('tr[data-session=%s] .badge[data-kind=%s]') && document.querySelector('input[name=signal][value=%s]').checked`,
				jsString(sess.ID), k, k)))
			if err != nil || !got {
				t.Errorf("list with signal=%s: no %s badge on the row or the box unchecked (%v)", k, k, err)
			}
		}
		// Filters that the session does not match hide it.
		for _, q := range []string{"tag=never-tagged", "signal=form_abandon", "min_pages=5"} {
			ids, err := uiListed(ctx, m.AdminURL+"/?"+q)
			if err != nil {
				t.Errorf("list with %s: %v", q, err)
			} else if uiHas(ids, sess.ID) {
				t.Errorf("list with %s shows session %s, want it hidden", q, sess.ID)
			}
		}
	})

	t.Run("timeline and events panel", func(t *testing.T) {
		do(t, ctx, "open the player", chromedp.Navigate(fmt.Sprintf("%s/sessions/%s?t=0", m.AdminURL, sess.ID)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('.timeline .marker').length > 0 && !!window.loupePlayer`,
			chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
			t.Fatalf("the player shows no timeline markers: %v\n%s", err, page)
		}
		type mark struct {
			Kind string `json:"kind"`
			At   int64  `json:"at"`
		}
		read := func(sel string) []mark {
			t.Helper()
			raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
				`JSON.stringify([...document.querySelectorAll(%s)].map(e => ({kind: e.dataset.kind, at: Number(e.dataset.at)})))`, jsString(sel))))
			if err != nil {
				t.Fatalf("read %s: %v", sel, err)
			}
			var out []mark
			if err := json.Unmarshal([]byte(raw), &out); err != nil {
				t.Fatalf("read %s: %v", sel, err)
			}
			return out
		}
		markers, listed := read(".timeline .marker"), read(".panel--events .ev")
		t.Logf("timeline markers: %v", markers)
		nearest := func(ms []mark, kind string, at int64) (int64, bool) {
			best, ok := int64(math.MaxInt64), false
			for _, m := range ms {
				if m.Kind == kind && uiAbs(m.At-at) < uiAbs(best-at) {
					best, ok = m.At, true
				}
			}
			return best, ok
		}
		// The page load opens the session.
		if at, ok := nearest(markers, "page", 0); !ok || at > 1000 {
			t.Errorf("page load marker at %d ms (found %v), want one near the start", at, ok)
		}
		for _, k := range kinds {
			for _, where := range []struct {
				name string
				ms   []mark
			}{{"timeline", markers}, {"events panel", listed}} {
				at, ok := nearest(where.ms, k, want[k])
				if !ok {
					t.Errorf("%s: no %s", where.name, k)
				} else if d := uiAbs(at - want[k]); d > 1000 {
					t.Errorf("%s: %s at %d ms, want %d ms ± 1 s (off by %d ms)", where.name, k, at, want[k], d)
				}
			}
		}
		// The events panel says what was clicked, the error and the request.
		for k, words := range map[string][]string{
			"dead_click": {"button#dead"}, "rage_click": {"div#rage"}, "error_click": {"button#boom"},
			"js_error": {"boom after click"}, "server_error": {"/api/prices", "500"},
		} {
			at, ok := nearest(listed, k, want[k])
			if !ok {
				continue // reported above
			}
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
				`document.querySelector(".panel--events .ev[data-kind=%s][data-at='%d']").innerText`, k, at)))
			for _, w := range words {
				if err != nil || !strings.Contains(text, w) {
					t.Errorf("events panel: %s entry reads %q (%v), want it to name %q", k, text, err, w)
				}
			}
		}
		// A click in the events panel moves the player to that moment.
		for _, k := range []string{"rage_click", "server_error"} {
			at, ok := nearest(listed, k, want[k])
			if !ok {
				continue // reported above
			}
			sel := fmt.Sprintf(".panel--events .ev[data-kind=%s][data-at='%d']", k, at)
			do(t, ctx, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
			got, err := chromedp.Run(ctx, chromedp.Poll[float64](fmt.Sprintf(
				`(() => { const t = window.loupePlayer.getReplayer().getCurrentTime(); return Math.abs(t - %d) < 250 ? t : false; })()`, at),
				chromedp.WithPollingTimeout(5*time.Second)))
			if err != nil {
				now, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loupePlayer.getReplayer().getCurrentTime()`))
				t.Errorf("after a click on the %s entry at %d ms the player is at %v ms (%v)", k, at, now, err)
			} else {
				t.Logf("%s entry at %d ms: player at %.0f ms", k, at, got)
			}
		}
		// The network panel highlights the failed request.
		do(t, ctx, "open the network panel", chromedp.Click(chromedp.CSS(".side__tab[data-tab=network]")))
		failed, err := chromedp.Run(ctx, chromedp.Poll[string](
			`(() => { const r = [...document.querySelectorAll('.panel--network .req--failed')].find(r => r.textContent.includes('/api/prices')); return r ? r.textContent : false; })()`,
			chromedp.WithPollingTimeout(5*time.Second)))
		if err != nil {
			panel, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('.panel--network') || document.body).innerText`))
			t.Errorf("network panel does not highlight GET /api/prices: %v\n%s", err, panel)
		} else if !strings.Contains(failed, "500") {
			t.Errorf("network panel row %q lacks the status 500", failed)
		}
	})

	t.Run("shortcuts and share link", func(t *testing.T) {
		do(t, ctx, "open the player", chromedp.Navigate(fmt.Sprintf("%s/sessions/%s?t=0", m.AdminURL, sess.ID)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!window.loupePlayer && document.querySelectorAll('.panel--events .ev').length > 0`,
			chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("player did not load: %v", err)
		}
		at := func() float64 {
			t.Helper()
			v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loupePlayer.getReplayer().getCurrentTime()`))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		key := func(k string) { do(t, ctx, "press "+k, chromedp.KeyEvent(k), chromedp.Sleep(150*time.Millisecond)) }
		key("?")
		if shown, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.querySelector('.help').hidden`)); !shown {
			t.Error("? does not show the help overlay")
		}
		key(kb.Escape)
		key("3")
		if speed, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loupePlayer.getReplayer().config.speed`)); speed != 4 {
			t.Errorf("after 3 the speed is %v, want 4", speed)
		}
		key(kb.ArrowRight)
		if got := at(); math.Abs(got-5000) > 250 {
			t.Errorf("→ from 0 moves to %.0f ms, want 5000", got)
		}
		key(kb.ArrowLeft)
		if got := at(); got > 250 {
			t.Errorf("← from 5 s moves to %.0f ms, want 0", got)
		}
		// N jumps to the next signal: the dead click comes first.
		key("N")
		if got := at(); math.Abs(got-float64(want["dead_click"])) > 1000 {
			t.Errorf("N from 0 moves to %.0f ms, want the dead click at %d ms", got, want["dead_click"])
		}
		do(t, ctx, "share", chromedp.Click(chromedp.CSS(".share .btn")))
		link, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.share__url').value`))
		u, perr := url.Parse(link)
		if err != nil || perr != nil || u.Path != "/sessions/"+sess.ID || u.Query().Get("t") != fmt.Sprint(int64(math.Round(at()))) {
			t.Errorf("share link %q (%v), want this session at %.0f ms", link, err, at())
		}
	})

	t.Run("tags and notes", func(t *testing.T) {
		do(t, ctx, "open the player", chromedp.Navigate(fmt.Sprintf("%s/sessions/%s?t=2000", m.AdminURL, sess.ID)),
			chromedp.WaitVisible(chromedp.CSS(".tags__add input")))
		do(t, ctx, "add a tag",
			chromedp.SendKeys(chromedp.CSS(".tags__add input"), "needs-fix"),
			chromedp.Click(chromedp.CSS(".tags__add button")))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector('.tag[data-tag="needs-fix"]') && !document.querySelector('.tags__status').textContent`,
			chromedp.WithPollingTimeout(5*time.Second))); err != nil {
			st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.tags').innerText`))
			t.Fatalf("tag not added: %v (%s)", err, st)
		}
		if ids, err := uiListed(ctx, m.AdminURL+"/?tag=needs-fix"); err != nil || !uiHas(ids, sess.ID) {
			t.Errorf("list with tag=needs-fix: %v (%v), want session %s", ids, err, sess.ID)
		}
		do(t, ctx, "back to the player", chromedp.Navigate(fmt.Sprintf("%s/sessions/%s?t=2000", m.AdminURL, sess.ID)),
			chromedp.WaitVisible(chromedp.CSS(`.tag[data-tag="needs-fix"] .tag__rm`)),
			chromedp.Click(chromedp.CSS(`.tag[data-tag="needs-fix"] .tag__rm`)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector('.tag[data-tag="needs-fix"]')`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
			t.Errorf("tag not removed: %v", err)
		}
		do(t, ctx, "add a note",
			chromedp.Click(chromedp.CSS(".side__tab[data-tab=notes]")),
			chromedp.SendKeys(chromedp.CSS(".notes__add textarea"), "the price list fails here"),
			chromedp.Click(chromedp.CSS(".notes__add button[type=submit]")))
		note, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const n = document.querySelector('.note'); return n ? n.innerText : false; })()`,
			chromedp.WithPollingTimeout(5*time.Second)))
		if err != nil {
			st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.panel--notes').innerText`))
			t.Fatalf("note not listed: %v (%s)", err, st)
		}
		if !strings.Contains(note, "the price list fails here") || !strings.Contains(note, "00:02") {
			t.Errorf("note shows %q, want its text at 00:02", note)
		}
		do(t, ctx, "delete the note", chromedp.Click(chromedp.CSS(".note .note__rm")))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector('.note')`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
			t.Errorf("note not deleted: %v", err)
		}
	})

	t.Run("filters live in the URL", func(t *testing.T) {
		from := sess.StartedAt.Add(-time.Minute).UTC().Format(time.RFC3339)
		q := url.Values{
			"signal": {"rage_click", "server_error"}, "browser": {sess.Browser}, "device": {sess.Device},
			"min_pages": {"1"}, "sort": {"friction"}, "from": {from},
		}
		ids, err := uiListed(ctx, m.AdminURL+"/?"+q.Encode())
		if err != nil || !uiHas(ids, sess.ID) {
			t.Fatalf("list at ?%s: %v (%v), want session %s", q.Encode(), ids, err, sess.ID)
		}
		form, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
			browser: document.querySelector('input[name=browser]').value,
			device: document.querySelector('select[name=device]').value,
			min_pages: document.querySelector('input[name=min_pages]').value,
			from: document.querySelector('input[name=from]').value,
			signals: [...document.querySelectorAll('input[name=signal]:checked')].map(e => e.value),
			sort: (document.querySelector('.tab--current') || {}).dataset?.sort || '',
		})`))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Browser  string   `json:"browser"`
			Device   string   `json:"device"`
			MinPages string   `json:"min_pages"`
			From     string   `json:"from"`
			Sort     string   `json:"sort"`
			Signals  []string `json:"signals"`
		}
		if err := json.Unmarshal([]byte(form), &got); err != nil {
			t.Fatal(err)
		}
		if got.Browser != sess.Browser || got.Device != sess.Device || got.MinPages != "1" || got.From == "" ||
			got.Sort != "friction" || strings.Join(got.Signals, ",") != "rage_click,server_error" {
			t.Errorf("form shows %s, want the URL's filters", form)
		}
		// Submitting the form changes the URL and the results; Back
		// restores both.
		do(t, ctx, "filter on another browser",
			chromedp.SetValue(chromedp.CSS("input[name=browser]"), "Firefox"),
			chromedp.Click(chromedp.CSS(".filters button[type=submit]")))
		if !uiWaitTrue(ctx, `location.search.includes('browser=Firefox') && !!document.querySelector('.results .notice--empty')`) {
			loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' ' + document.querySelector('.results').innerText`))
			t.Fatalf("after filtering on Firefox the list still shows the session; page %s", loc)
		}
		search, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
		sq, _ := url.ParseQuery(strings.TrimPrefix(search, "?"))
		if sq.Get("sort") != "friction" || len(sq["signal"]) != 2 || sq.Get("min_pages") != "1" {
			t.Errorf("after submitting, the URL is ?%s; want the other filters kept", search)
		}
		// history.back and a loop of evaluations, not NavigateBack and
		// Poll: a page restored from the back/forward cache fires no load
		// event, and a poll begun before the restore never answers.
		do(t, ctx, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
		restored := fmt.Sprintf(`!!document.querySelector('tr[data-session=%s]') && document.querySelector('input[name=browser]').value === %s && !location.search.includes('Firefox')`,
			jsString(sess.ID), jsString(sess.Browser))
		if !uiWaitTrue(ctx, restored) {
			t.Errorf("Back does not restore the previous filter and its results")
		}
		// Pages: with one session a page, the next page (the API's
		// cursor in the URL) is empty.
		if ids, err := uiListed(ctx, m.AdminURL+"/?limit=1&sort=friction"); err != nil || !uiHas(ids, sess.ID) {
			t.Errorf("list with limit=1: %v (%v), want session %s", ids, err, sess.ID)
		}
		do(t, ctx, "next page", chromedp.Click(chromedp.CSS(".pager a[rel=next]")))
		if !uiWaitTrue(ctx, `location.search.includes('cursor=') && location.search.includes('sort=friction') && !!document.querySelector('.results .notice--empty') && !document.querySelector('tr[data-session]')`) {
			loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' ' + document.querySelector('.results').innerText`))
			t.Errorf("the second page of one session a page: %s; want an empty page reached by the API's cursor", loc)
		}
		// A time range after the session hides it.
		later := url.Values{"from": {sess.StartedAt.Add(time.Hour).UTC().Format(time.RFC3339)}}
		if ids, err := uiListed(ctx, m.AdminURL+"/?"+later.Encode()); err != nil || uiHas(ids, sess.ID) {
			t.Errorf("list from an hour after the session: %v (%v), want it hidden", ids, err)
		}
	})
}

// uiWaitSignals waits for the session to count every kind of signal in
// kinds, and fails naming the missing ones.
func uiWaitSignals(t *testing.T, admin string, kinds []string) uiSession {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct{ Sessions []uiSession }
		getJSON(t, admin+"/api/sessions", &list)
		var missing []string
		if len(list.Sessions) == 1 {
			s := list.Sessions[0]
			for _, k := range kinds {
				if s.Signals[k] == 0 {
					missing = append(missing, k)
				}
			}
			if len(missing) == 0 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: sessions %+v; want one session with signals %v (missing %v)", list.Sessions, kinds, missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// uiListed opens the session list at u and returns the ids of the
// rows it shows once it has rendered, or the error it shows.
func uiListed(ctx context.Context, u string) ([]string, error) {
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(u)); err != nil {
		return nil, err
	}
	raw, err := chromedp.Run(tctx, chromedp.Poll[string](`(() => {
		const r = document.querySelector('.results');
		if (!r || r.querySelector('.notice--loading')) return false;
		const err = r.querySelector('.notice--error');
		return JSON.stringify({ids: [...r.querySelectorAll('tr[data-session]')].map(e => e.dataset.session), error: err ? err.innerText : ''});
	})()`, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		return nil, fmt.Errorf("list did not render: %w", err)
	}
	var out struct {
		IDs   []string `json:"ids"`
		Error string   `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, err
	}
	if out.Error != "" {
		return nil, fmt.Errorf("list shows an error: %s", out.Error)
	}
	return out.IDs, nil
}

// uiWaitTrue evaluates expr until it is true, for up to 10 s. Unlike
// chromedp.Poll it survives the navigation under way and a page restored
// from the back/forward cache (where a poll begun before never answers).
func uiWaitTrue(ctx context.Context, expr string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return true
		}
	}
	return false
}

func uiHas(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func uiAbs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
