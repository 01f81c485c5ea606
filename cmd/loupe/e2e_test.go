package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/demo"
	"github.com/loupe-dev/loupe/injector/recorder"
	"github.com/loupe-dev/loupe/replayer/ui"
)

// requireBrowser returns Chromium's path, or skips the test where it is
// truly absent. Under CI a missing browser or bundle is a failure: there the
// end-to-end test must always run.
func requireBrowser(t *testing.T) string {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") != "" {
		fail = t.Fatalf
	}
	if recorder.JS() == nil || !ui.Built() {
		fail("browser bundles not built; run make build")
	}
	for _, p := range []string{os.Getenv("LOUPE_CHROMIUM"), "/usr/bin/chromium", "chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	fail("chromium not found; make test installs Debian's chromium")
	return ""
}

// startLoupe runs the whole program in front of origin on free ports.
func startLoupe(t *testing.T, origin string) *Main {
	t.Helper()
	m := &Main{
		Config: Config{Upstream: origin, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: t.TempDir()},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	signIn(t, m)
	return m
}

// newBrowser starts a headless Chromium with a fresh profile.
func newBrowser(t testing.TB, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := adminGet(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type apiSession struct {
	ID         string `json:"id"`
	StartedAt  string `json:"started_at"`
	DurationMS int64  `json:"duration_ms"`
	PageCount  int    `json:"page_count"`
	ClickCount int    `json:"click_count"`
	EntryURL   string `json:"entry_url"`
	UserAgent  string `json:"user_agent"`
	InputCount int    `json:"input_count"`
	Browser    string `json:"browser"`
	OS         string `json:"os"`
	Device     string `json:"device"`
	Language   string `json:"language"`
	ViewportW  int    `json:"viewport_width"`
}

// TestRecordAndReplay is the foundation's end to end: a visitor browses the
// demo shop through Loupe in real Chromium and types into the checkout; the
// session is stored with every page load, clicks and inputs, nothing typed
// into a masked or blocked field is stored, and the player replays the page.
func TestRecordAndReplay(t *testing.T) {
	chromium := requireBrowser(t)
	// The browser is signed in to the replay UI first: its login cookie,
	// on the same host name, must not reach the origin through the proxy.
	var leaked atomic.Int64
	shop := demo.Handler()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("loupe_login"); err == nil {
			leaked.Add(1)
		}
		shop.ServeHTTP(w, r)
	}))
	defer origin.Close()
	m := startLoupe(t, origin.URL)
	ctx := newBrowser(t, chromium)
	browserSignIn(t, ctx, m)
	defer func() {
		if n := leaked.Load(); n > 0 {
			t.Errorf("%d requests brought the replay UI's login cookie to the origin", n)
		}
	}()

	// What the visitor types. None of it may reach the store.
	secrets := map[string]string{
		"#fullname":   "Ada Lovelace Quux",
		"#email":      "ada.secret@example.test",
		"#password":   "hunter2-S3CRET",
		"#cardnumber": "4242424242424242",
		"#cc-exp":     "12/29",
		"#cvc":        "987",
		"#notes":      "leave with Zebulon",
	}

	do(t, ctx, "home page",
		chromedp.Navigate(m.ProxyURL+"/"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	)
	heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || heading != demo.HomeHeading {
		t.Fatalf("home heading through Loupe: got %q (%v), want %q", heading, err, demo.HomeHeading)
	}
	recording, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || !recording {
		t.Fatalf("recorder did not start on the home page: %v", err)
	}
	do(t, ctx, "open a product",
		chromedp.Click(chromedp.CSS(`a[href^="/product/"]`)),
		chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
		chromedp.Click(chromedp.CSS("#add-to-cart")),
		chromedp.Sleep(500*time.Millisecond),
	)
	do(t, ctx, "checkout", chromedp.Navigate(m.ProxyURL+"/checkout"), chromedp.WaitVisible(chromedp.CSS("#cardnumber")))
	for _, sel := range []string{"#fullname", "#email", "#password", "#cardnumber", "#cc-exp", "#cvc", "#notes"} {
		do(t, ctx, "type into "+sel, chromedp.Click(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), secrets[sel]))
	}
	do(t, ctx, "place order",
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Click(chromedp.CSS("#place-order")),
		chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.Sleep(500*time.Millisecond),
		// Leaving the last page flushes its events with sendBeacon.
		chromedp.Navigate("about:blank"),
	)

	// The beacon is asynchronous: wait for the session to hold every page.
	var sess apiSession
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct{ Sessions []apiSession }
		getJSON(t, m.AdminURL+"/api/sessions", &list)
		if len(list.Sessions) > 1 {
			t.Fatalf("got %d sessions, want the visit as one session: %+v", len(list.Sessions), list.Sessions)
		}
		if len(list.Sessions) == 1 {
			sess = list.Sessions[0]
			if sess.PageCount >= 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("session after 20 s: %+v; want 4 page loads (home, product, checkout, thank you)", sess)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if sess.ClickCount < 2 {
		t.Errorf("got click_count %d, want at least 2", sess.ClickCount)
	}
	if !strings.HasPrefix(sess.EntryURL, m.ProxyURL+"/") {
		t.Errorf("got entry_url %q, want the home page through Loupe", sess.EntryURL)
	}
	if !strings.Contains(sess.UserAgent, "Chrome") || sess.DurationMS <= 0 {
		t.Errorf("got user_agent %q, duration %d ms; want Chromium's and a positive duration", sess.UserAgent, sess.DurationMS)
	}
	// Enrichment at ingest: from the User-Agent, the Meta events and the
	// recorder's page info. HeadlessChrome's User-Agent says what it is,
	// and the parser files it as a bot.
	if sess.Browser != "Chrome" || sess.OS != "Linux" || sess.Device != "bot" || sess.Language == "" || sess.ViewportW <= 0 || sess.InputCount < 1 {
		t.Errorf("got browser %q, os %q, device %q, language %q, viewport width %d, inputs %d; want Chrome, Linux, bot and the rest known",
			sess.Browser, sess.OS, sess.Device, sess.Language, sess.ViewportW, sess.InputCount)
	}
	var one apiSession
	getJSON(t, m.AdminURL+"/api/sessions/"+sess.ID, &one)
	if one.ID != sess.ID || one.PageCount != sess.PageCount {
		t.Errorf("GET /api/sessions/{id}: got %+v, want %+v", one, sess)
	}

	// The events: in time order, with snapshots, clicks and inputs, and no
	// typed secret anywhere.
	resp, err := adminGet(m.AdminURL + "/api/sessions/" + sess.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var events []struct {
		Type      int             `json:"type"`
		Timestamp int64           `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatalf("events are not a JSON array: %v", err)
	}
	var full, clicks, inputs, metas int
	for i, ev := range events {
		if i > 0 && ev.Timestamp < events[i-1].Timestamp {
			t.Fatalf("event %d at %d comes after one at %d: not in time order", i, ev.Timestamp, events[i-1].Timestamp)
		}
		var d struct {
			Source, Type *int
			Text         *string
		}
		json.Unmarshal(ev.Data, &d)
		switch {
		case ev.Type == 2:
			full++
		case ev.Type == 4:
			metas++
		case ev.Type == 3 && d.Source != nil && *d.Source == 2 && d.Type != nil && *d.Type == 2:
			clicks++
		case ev.Type == 3 && d.Source != nil && *d.Source == 5:
			inputs++
			// Masked, not merely absent: rrweb replaces each character.
			if d.Text == nil || strings.Trim(*d.Text, "*") != "" {
				t.Errorf("input event %d carries %v, want a masked value", i, d.Text)
			}
		}
	}
	t.Logf("session %s: %d events, %d bytes; %d full snapshots, %d metas, %d clicks, %d inputs",
		sess.ID, len(events), len(raw), full, metas, clicks, inputs)
	if full < 3 || metas < 3 || clicks < 2 || inputs < 1 {
		t.Errorf("got %d full snapshots, %d metas, %d clicks, %d input events; want ≥3, ≥3, ≥2, ≥1", full, metas, clicks, inputs)
	}
	// Only strings can carry what was typed; numbers (timestamps, node
	// ids, coordinates) would match a short value such as the CVC by chance.
	texts := jsonStrings(t, raw)
	for sel, v := range secrets {
		if strings.Contains(texts, v) {
			t.Errorf("the value typed into %s (%q) is in the stored events", sel, v)
		}
	}
	// The recorder removes its own tag before the snapshot: no token in
	// the recording.
	if strings.Contains(string(raw), "data-loupe") {
		t.Error("the recorder's tag (and its token) is in the stored events")
	}

	// The player replays the session: the recorded page's text appears in
	// the replay iframe, and recorded scripts do not run there.
	do(t, ctx, "open the player", chromedp.Navigate(fmt.Sprintf("%s/sessions/%s?t=0", m.AdminURL, sess.ID)))
	text, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const f = document.querySelector('.replayer-wrapper iframe');
		return f && f.contentDocument && f.contentDocument.body && f.contentDocument.body.innerText.includes(`+jsString(demo.HomeHeading)+`)
			? f.contentDocument.body.innerText : false;
	})()`, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			const f = document.querySelector('iframe');
			return document.body.innerHTML.slice(0, 1500) + '\n--- iframe: ' +
				(f && f.contentDocument ? f.contentDocument.documentElement.outerHTML.slice(0, 1500) : 'none');
		})()`))
		t.Fatalf("player did not render %q in its replay iframe: %v\n%s", demo.HomeHeading, err, page)
	}
	if !strings.Contains(text, demo.ShopName) {
		t.Errorf("replayed page text %q lacks %q", text, demo.ShopName)
	}
	sandbox, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.replayer-wrapper iframe').getAttribute('sandbox') || ''`))
	if err != nil || strings.Contains(sandbox, "allow-scripts") {
		t.Errorf("replay iframe sandbox %q (%v): recorded scripts could run", sandbox, err)
	}
}

// jsonStrings returns every string (keys and values) in the JSON document
// raw, joined by NULs.
func jsonStrings(t *testing.T, raw []byte) string {
	t.Helper()
	var b strings.Builder
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatalf("stored events are not JSON: %v", err)
		}
		if s, ok := tok.(string); ok {
			b.WriteString(s)
			b.WriteByte(0)
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
