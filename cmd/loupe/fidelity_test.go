package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	_ "modernc.org/sqlite" // read-only look at the archive's tables

	"github.com/loupe-dev/loupe/store"
)

// The judge of issue 4: a recorded visit replays from the archive exactly
// as the visitor saw it after the site changed its CSS, images and web font
// and deleted the old ones, without a single request to the origin.

// fontFamily is the web font of the fidelity site.
const fontFamily = "Fidelity Display"

// originFile is one response of the fidelity site.
type originFile struct {
	ctype string
	body  []byte
}

// fidelityOrigin is a site that can deploy a new version: Deploy replaces
// every file at once. It counts the requests it receives.
type fidelityOrigin struct {
	mu    sync.Mutex
	files map[string]originFile
	paths []string // requested paths since the last Reset

	requests atomic.Int64
}

func (o *fidelityOrigin) Deploy(files map[string]originFile) {
	o.mu.Lock()
	o.files = files
	o.mu.Unlock()
}

// Reset forgets the requests counted so far.
func (o *fidelityOrigin) Reset() {
	o.mu.Lock()
	o.paths = nil
	o.requests.Store(0)
	o.mu.Unlock()
}

// Requests returns the number of requests since the last Reset and their
// paths.
func (o *fidelityOrigin) Requests() (int64, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests.Load(), append([]string(nil), o.paths...)
}

// serves reports whether the current version has an asset at path p.
func (o *fidelityOrigin) serves(p string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, ok := o.files[p]
	return ok && !strings.HasPrefix(f.ctype, "text/html")
}

func (o *fidelityOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.requests.Add(1)
	o.paths = append(o.paths, r.Method+" "+r.URL.RequestURI())
	f, ok := o.files[r.URL.Path]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	if strings.HasPrefix(f.ctype, "text/html") {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=60")
	}
	body := f.body
	// Text is compressed for clients that accept it, so the archive must
	// store what it captures decoded to deduplicate.
	if (strings.HasPrefix(f.ctype, "text/css") || strings.HasPrefix(f.ctype, "image/svg")) &&
		strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(body)
		zw.Close()
		body = b.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Vary", "Accept-Encoding")
	}
	w.Write(body)
}

// repoFile reads a file at a path relative to the repository's root.
func repoFile(t testing.TB, rel string) []byte {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller: no file")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", filepath.FromSlash(rel)))
	if err != nil {
		fail := t.Skipf
		if os.Getenv("CI") != "" {
			fail = t.Fatalf
		}
		fail("%v; run make build (npm ci installs @fontsource/lobster)", err)
	}
	return b
}

// pattern draws a w×h PNG of stripes and blocks in two colours, so that a
// wrong image or a missing one changes many pixels.
func pattern(t testing.TB, w, h int, a, b color.RGBA, stripe int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := a
			if (x/stripe+y/(2*stripe))%2 == 1 {
				c = b
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{r, g, b, 255} }

const (
	htmlType = "text/html; charset=utf-8"
	cssType  = "text/css; charset=utf-8"
	pngType  = "image/png"
	svgType  = "image/svg+xml"
	woffType = "font/woff2"
)

// pageOne has every kind of asset reference: a stylesheet (with a
// background image and a web font inside), an <img>, an <img srcset>, an
// SVG image, and, added by a script after load, an element with an inline
// style's background image and another <img> (mutation events).
const pageOne = `<!doctype html>
<html><head><meta charset="utf-8"><title>Fidelity</title>
<link rel="stylesheet" href="%[1]s/s/site.css"></head>
<body>
<header class="hero"><img class="logo" src="%[1]s/img/logo.svg" width="96" height="96" alt="">
<h1 class="display">Archive fidelity</h1></header>
<main>
<img id="a" src="%[1]s/img/a.png" width="320" height="240" alt="">
<img id="b" src="%[1]s/img/b-1x.png" srcset="%[1]s/img/b-1x.png 1x, %[1]s/img/b-2x.png 2x" width="320" height="240" alt="">
<p class="display big">The quick brown fox jumps over the lazy dog</p>
<div id="late"></div>
<p><a href="/two">Second page</a></p>
</main>
<script>
setTimeout(function () {
  document.getElementById('late').innerHTML =
    '<div class="tile" style="background-image: url(%[1]s/img/tile.png)"></div>' +
    '<img id="l" src="%[1]s/img/late.png" width="200" height="100" alt="">';
}, 900);
</script>
</body></html>`

const pageTwo = `<!doctype html>
<html><head><meta charset="utf-8"><title>Fidelity two</title>
<link rel="stylesheet" href="%[1]s/s/site.css"></head>
<body class="two">
<header class="hero"><h1 class="display">Page the second</h1></header>
<main>
<img src="%[1]s/img/a.png" width="320" height="240" alt="">
<img src="%[1]s/img/c.png" width="400" height="200" alt="">
<p class="display big">Pack my box with five dozen liquor jugs</p>
<p id="ready"></p><p id="done"></p>
</main>
<script>
setTimeout(function () { document.getElementById('ready').textContent = 'Page two is ready'; }, 300);
setTimeout(function () { document.getElementById('done').textContent = 'Page two is done'; }, 1000);
</script>
</body></html>`

const siteCSS = `@font-face {
  font-family: "Fidelity Display";
  src: url(%[1]s/f/font.woff2) format("woff2");
  font-display: block;
}
body { margin: 0; color: %[2]s; background: %[3]s url(%[1]s/img/bg.png) repeat; font: 16px sans-serif; }
.hero { display: flex; align-items: center; gap: 24px; padding: 16px 24px; background: %[4]s; color: #fff; }
.display { font-family: "Fidelity Display", serif; font-weight: 400; }
h1.display { font-size: 56px; margin: 0; }
.big { font-size: 44px; margin: 8px 0; }
main { padding: 16px 24px; }
main img { margin: 0 12px 12px 0; vertical-align: top; }
.tile { display: inline-block; width: 300px; height: 150px; margin-right: 12px; border: 4px solid %[4]s; }
`

// fidelitySite returns the files of version "A" or "B" of the site. B
// changes the colours, the images and the web font, and drops A's URLs
// (except the stylesheet's and a.png's, which change in place).
func fidelitySite(t testing.TB, version string) map[string]originFile {
	t.Helper()
	svg := func(fill, stroke string) originFile {
		return originFile{svgType, fmt.Appendf(nil, `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96"><rect width="96" height="96" fill="%s"/><circle cx="48" cy="48" r="36" fill="%s"/></svg>`, fill, stroke)}
	}
	img := func(w, h int, a, b color.RGBA, stripe int) originFile {
		return originFile{pngType, pattern(t, w, h, a, b, stripe)}
	}
	html := func(tmpl, prefix string) originFile { return originFile{htmlType, fmt.Appendf(nil, tmpl, prefix)} }
	css := func(prefix, text, bg, hero string) originFile {
		return originFile{cssType, fmt.Appendf(nil, siteCSS, prefix, text, bg, hero)}
	}
	if version == "A" {
		return map[string]originFile{
			"/":             html(pageOne, ""),
			"/two":          html(pageTwo, ""),
			"/s/site.css":   css("", "#1d3557", "#f1faee", "#e63946"),
			"/f/font.woff2": {woffType, repoFile(t, "node_modules/@fontsource/lobster/files/lobster-latin-400-normal.woff2")},
			"/img/bg.png":   img(40, 40, rgb(241, 250, 238), rgb(168, 218, 220), 10),
			"/img/a.png":    img(320, 240, rgb(230, 57, 70), rgb(29, 53, 87), 20),
			"/img/b-1x.png": img(320, 240, rgb(42, 157, 143), rgb(233, 196, 106), 16),
			"/img/b-2x.png": img(640, 480, rgb(42, 157, 143), rgb(233, 196, 106), 32),
			"/img/c.png":    img(400, 200, rgb(38, 70, 83), rgb(244, 162, 97), 25),
			"/img/tile.png": img(30, 30, rgb(106, 76, 147), rgb(255, 202, 58), 5),
			"/img/late.png": img(200, 100, rgb(25, 130, 196), rgb(138, 201, 38), 10),
			"/img/logo.svg": svg("#ffb703", "#023047"),
		}
	}
	// Version B: new colours at the same stylesheet URL, a.png changed in
	// place, everything else moved to /v2/ with A's URLs deleted, and a
	// different font file (a subset without Latin letters, so text falls
	// back to another face).
	return map[string]originFile{
		"/":                html(pageOne, "/v2"),
		"/two":             html(pageTwo, "/v2"),
		"/s/site.css":      css("/v2", "#000000", "#fff0f5", "#2b2d42"),
		"/v2/s/site.css":   css("/v2", "#000000", "#fff0f5", "#2b2d42"),
		"/v2/f/font.woff2": {woffType, repoFile(t, "node_modules/@fontsource/lobster/files/lobster-latin-ext-400-normal.woff2")},
		"/v2/img/bg.png":   img(40, 40, rgb(20, 20, 20), rgb(90, 90, 90), 20),
		"/img/a.png":       img(320, 240, rgb(0, 200, 0), rgb(255, 255, 255), 40),
		"/v2/img/a.png":    img(320, 240, rgb(0, 200, 0), rgb(255, 255, 255), 40),
		"/v2/img/b-1x.png": img(320, 240, rgb(200, 0, 200), rgb(0, 0, 0), 8),
		"/v2/img/b-2x.png": img(640, 480, rgb(200, 0, 200), rgb(0, 0, 0), 16),
		"/v2/img/c.png":    img(400, 200, rgb(255, 255, 0), rgb(0, 0, 255), 50),
		"/v2/img/tile.png": img(30, 30, rgb(0, 0, 0), rgb(255, 255, 255), 15),
		"/v2/img/late.png": img(200, 100, rgb(255, 0, 0), rgb(0, 0, 0), 25),
		"/v2/img/logo.svg": svg("#000000", "#ffffff"),
	}
}

// assetPaths are the archivable files of a version of the site.
func assetPaths(files map[string]originFile) []string {
	var ps []string
	for p, f := range files {
		if !strings.HasPrefix(f.ctype, "text/html") {
			ps = append(ps, p)
		}
	}
	return ps
}

// assetStore is the running Loupe's archive storage.
func assetStore(t testing.TB, m *Main) store.AssetStore {
	t.Helper()
	as, ok := m.db.(store.AssetStore)
	if !ok {
		t.Fatalf("the store (%T) does not implement store.AssetStore", m.db)
	}
	return as
}

// waitArchived waits until the archive holds a capture of every asset the
// origin served, and the origin has been quiet for a moment (the archive's
// background fetcher done). It returns the captured URLs.
func waitArchived(t *testing.T, m *Main, o *fidelityOrigin) []string {
	t.Helper()
	as := assetStore(t, m)
	deadline := time.Now().Add(20 * time.Second)
	var (
		missing   []string
		lastCount int64 = -1
		quietFrom time.Time
	)
	for {
		n, paths := o.Requests()
		if n != lastCount {
			lastCount, quietFrom = n, time.Now()
		}
		missing = missing[:0]
		var have []string
		seen := map[string]bool{}
		for _, rp := range paths {
			p := strings.TrimPrefix(rp, "GET ")
			if seen[p] || !o.serves(p) {
				continue
			}
			seen[p] = true
			u := m.ProxyURL + p
			if _, err := as.Capture(context.Background(), u, time.Now()); err != nil {
				missing = append(missing, fmt.Sprintf("%s (%v)", u, err))
			} else {
				have = append(have, u)
			}
		}
		if len(missing) == 0 && len(have) > 0 && time.Since(quietFrom) > 1500*time.Millisecond {
			return have
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the archive lacks %d of the %d assets the origin served: %s", len(missing), len(missing)+len(have), strings.Join(missing, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// moment is a time to replay at, in ms from the session's first event, and
// text the replayed page shows then.
type moment struct {
	name string
	ms   int64
	text string
}

// moments picks three moments of the visit from its events: page one
// before the script adds elements, page one after, and page two.
func moments(t *testing.T, raw []byte) []moment {
	t.Helper()
	var evs []struct {
		Type      int             `json:"type"`
		Timestamp int64           `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &evs); err != nil || len(evs) == 0 {
		t.Fatalf("events: %v (%d events)", err, len(evs))
	}
	t0 := evs[0].Timestamp
	var full []int64
	var late, ready int64
	for _, e := range evs {
		if e.Type == 2 {
			full = append(full, e.Timestamp-t0)
		}
		if e.Type == 3 && late == 0 && bytes.Contains(e.Data, []byte("late.png")) {
			late = e.Timestamp - t0
		}
		if e.Type == 3 && ready == 0 && bytes.Contains(e.Data, []byte("Page two is ready")) {
			ready = e.Timestamp - t0
		}
	}
	if len(full) < 2 || late == 0 || late < full[0] || ready < full[1] {
		t.Fatalf("events: full snapshots at %v ms, the scripts' mutations at %d and %d ms; want two snapshots and a mutation on each page", full, late, ready)
	}
	last := evs[len(evs)-1].Timestamp - t0
	t.Logf("events: %d, full snapshots at %v ms, the scripts' mutations at %d and %d ms, the last at %d ms", len(evs), full, late, ready, last)
	return []moment{
		{"page one", full[0] + (late-full[0])/2, "Archive fidelity"},
		{"page one after the script", late + 200, "Archive fidelity"},
		{"page two", min(ready+100, last), "Page two is ready"},
	}
}

// frameReport is what the replay iframe holds once settled.
type frameReport struct {
	Images []struct {
		Src   string `json:"src"`
		Width int    `json:"naturalWidth"`
	} `json:"images"`
	Faces []struct {
		Family string `json:"family"`
		Status string `json:"status"`
	} `json:"faces"`
	FontCheck bool `json:"fontCheck"`
	Resources []struct {
		Name   string `json:"name"`
		Status int    `json:"status"`
	} `json:"resources"`
	HTML string `json:"html"`
}

// settled is true once the replay iframe shows the text and has finished
// loading its images and the web font (loaded or failed).
const settledJS = `((text, family) => {
	const f = document.querySelector('.replayer-wrapper iframe');
	const d = f && f.contentDocument;
	if (!d || !d.body || !d.body.innerText.includes(text)) return false;
	for (const i of d.images) if (!i.complete) return false;
	if (d.fonts.status !== 'loaded') return false;
	const faces = [...d.fonts].filter((x) => x.family.replace(/"/g, '') === family);
	if (!faces.length || faces.some((x) => x.status === 'loading' || x.status === 'unloaded')) return false;
	return 1 + f.contentWindow.performance.getEntriesByType('resource').length;
})`

const reportJS = `((family) => {
	const f = document.querySelector('.replayer-wrapper iframe');
	const d = f.contentDocument;
	return {
		images: [...d.images].map((i) => ({ src: i.currentSrc || i.src, naturalWidth: i.naturalWidth })),
		faces: [...d.fonts].map((x) => ({ family: x.family.replace(/"/g, ''), status: x.status })),
		fontCheck: d.fonts.check('40px "' + family + '"'),
		resources: f.contentWindow.performance.getEntriesByType('resource').map((r) => ({ name: r.name, status: r.responseStatus || 0 })),
		html: d.documentElement.outerHTML.slice(0, 3000),
	};
})`

// replayShot opens the player at mo and returns a PNG of the replay and what
// its iframe loaded.
func replayShot(t *testing.T, ctx context.Context, m *Main, id string, mo moment) ([]byte, frameReport) {
	t.Helper()
	do(t, ctx, "open the player at "+mo.name, chromedp.Navigate(fmt.Sprintf("%s/sessions/%s?t=%d", m.AdminURL, id, mo.ms)))
	args := jsString(mo.text) + ", " + jsString(fontFamily)
	n, err := chromedp.Run(ctx, chromedp.Poll[int](settledJS+"("+args+")", chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			const f = document.querySelector('iframe');
			return document.body.innerHTML.slice(0, 1500) + '\n--- iframe: ' +
				(f && f.contentDocument ? f.contentDocument.documentElement.outerHTML.slice(0, 3000) : 'none');
		})()`))
		t.Fatalf("the replay at %s (%d ms) did not settle with %q shown: %v\n%s", mo.name, mo.ms, mo.text, err, page)
	}
	n-- // settledJS counts one more, to be truthy
	// Background images load without a DOM trace: wait until the frame
	// stops adding resource entries, then for two frames to paint.
	for i := 0; i < 20; i++ {
		time.Sleep(250 * time.Millisecond)
		k, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('.replayer-wrapper iframe').contentWindow.performance.getEntriesByType('resource').length`))
		if err != nil {
			t.Fatalf("replay at %s: %v", mo.name, err)
		}
		if k == n {
			break
		}
		n = k
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("replay at %s: %v", mo.name, err)
	}
	rep, err := chromedp.Run(ctx, chromedp.Evaluate[frameReport](reportJS+"("+jsString(fontFamily)+")"))
	if err != nil {
		t.Fatalf("replay at %s: report: %v", mo.name, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(tctx, chromedp.Screenshot(chromedp.CSS(".rr-player__frame")))
	if err != nil {
		t.Fatalf("screenshot of the replay at %s: %v", mo.name, err)
	}
	return shot, rep
}

// checkArchived checks that everything the replay frame shows came from
// the archive and loaded: every image, the web font, every resource.
func checkArchived(t *testing.T, m *Main, when string, mo moment, r frameReport) {
	t.Helper()
	failed := false
	bad := func(format string, args ...any) {
		failed = true
		t.Errorf("%s, %s: "+format, append([]any{when, mo.name}, args...)...)
	}
	if len(r.Images) == 0 {
		bad("no <img> in the replay frame")
	}
	for _, i := range r.Images {
		if i.Width == 0 {
			bad("image %s did not load (naturalWidth 0)", i.Src)
		}
	}
	loaded := false
	for _, f := range r.Faces {
		if f.Family == fontFamily {
			loaded = loaded || f.Status == "loaded"
		}
	}
	if !loaded || !r.FontCheck {
		bad("web font %q: faces %+v, fonts.check %v; want a loaded face", fontFamily, r.Faces, r.FontCheck)
	}
	if len(r.Resources) == 0 {
		bad("the replay frame loaded no resource")
	}
	for _, res := range r.Resources {
		if !strings.HasPrefix(res.Name, m.AdminURL+"/archive/") || res.Status != http.StatusOK {
			bad("resource %s answered %d; want every resource from %s/archive/ with 200", res.Name, res.Status, m.AdminURL)
		}
	}
	if failed {
		t.Logf("%s, %s: replay frame:\n%s", when, mo.name, r.HTML)
	}
}

// keep writes a screenshot to the test's artifact directory (kept with
// go test -artifacts) for a look when a comparison fails.
func keep(t *testing.T, name string, shot []byte) {
	t.Helper()
	p := filepath.Join(t.ArtifactDir(), strings.ReplaceAll(name, " ", "-")+".png")
	if err := os.WriteFile(p, shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

// samePixels returns the fraction of pixels two PNGs have identical.
func samePixels(t *testing.T, a, b []byte) float64 {
	t.Helper()
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := ia.Bounds(), ib.Bounds()
	if ra.Dx() != rb.Dx() || ra.Dy() != rb.Dy() {
		t.Errorf("screenshots are %v and %v: different sizes", ra.Size(), rb.Size())
		return 0
	}
	same := 0
	for y := 0; y < ra.Dy(); y++ {
		for x := 0; x < ra.Dx(); x++ {
			if color.RGBAModel.Convert(ia.At(ra.Min.X+x, ra.Min.Y+y)) == color.RGBAModel.Convert(ib.At(rb.Min.X+x, rb.Min.Y+y)) {
				same++
			}
		}
	}
	return float64(same) / float64(ra.Dx()*ra.Dy())
}

// liveEventsJS makes the player page fetch the raw recording
// (?assets=live): what a stock replay loads.
const liveEventsJS = `(() => {
	const f = window.fetch;
	window.fetch = (u, o) => f(typeof u === 'string' && /\/api\/sessions\/[^/]+\/events$/.test(u) ? u + '?assets=live' : u, o);
})();`

// liveBrowser starts a fresh browser whose player replays the raw
// recording, with its images and font from the live site.
func liveBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	ctx := newBrowser(t, chromium)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: liveEventsJS}); err != nil {
		t.Fatalf("live replay browser: %v", err)
	}
	return ctx
}

// TestArchiveFidelity records a visit to a site, deploys a new version of
// the site that changes its CSS, images and web font and deletes the old
// ones, and replays the session: the replay must look as before the change,
// with every image and the font loaded from the archive, and the origin
// must not be asked for anything.
func TestArchiveFidelity(t *testing.T) {
	start := time.Now()
	chromium := requireBrowser(t)
	o := &fidelityOrigin{}
	o.Deploy(fidelitySite(t, "A"))
	origin := httptest.NewServer(o)
	defer origin.Close()
	m := startLoupe(t, origin.URL)

	// The visit, in its own browser.
	visitor := newBrowser(t, chromium)
	loaded := `(async () => { await document.fonts.ready; return [...document.images].every((i) => i.complete && i.naturalWidth > 0) && document.fonts.check('40px "` + fontFamily + `"'); })()`
	do(t, visitor, "page one", chromedp.Navigate(m.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("#l")))
	if ok, err := chromedp.Run(visitor, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second))); err != nil || !ok {
		t.Fatalf("recorder did not start on page one: %v", err)
	}
	if ok, err := chromedp.Run(visitor, chromedp.Evaluate[bool](loaded, chromedp.EvalAwaitPromise)); err != nil || !ok {
		t.Fatalf("page one through Loupe: images and font loaded %v (%v); want true", ok, err)
	}
	do(t, visitor, "page two",
		chromedp.Sleep(500*time.Millisecond),
		chromedp.Click(chromedp.CSS(`a[href="/two"]`)),
		chromedp.WaitVisible(chromedp.CSS("body.two")),
	)
	if ok, err := chromedp.Run(visitor, chromedp.Evaluate[bool](loaded, chromedp.EvalAwaitPromise)); err != nil || !ok {
		t.Fatalf("page two through Loupe: images and font loaded %v (%v); want true", ok, err)
	}
	// Wait for page two's last change (its text: the empty <p> counts as
	// visible from the start), then send what is buffered before leaving
	// (the pagehide beacon alone was seen to lose that mutation).
	if ok, err := chromedp.Run(visitor, chromedp.Poll[bool](`document.getElementById('done').textContent !== ''`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil || !ok {
		t.Fatalf("page two's last change did not happen: %v", err)
	}
	do(t, visitor, "leave", chromedp.Sleep(300*time.Millisecond),
		chromedp.Evaluate[chromedp.Void]("window.__loupe.flush()"), chromedp.Sleep(500*time.Millisecond), chromedp.Navigate("about:blank"))

	var sess apiSession
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct{ Sessions []apiSession }
		getJSON(t, m.AdminURL+"/api/sessions", &list)
		if len(list.Sessions) == 1 && list.Sessions[0].PageCount >= 2 {
			sess = list.Sessions[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions after 20 s: %+v; want one with both pages", list.Sessions)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Page two's last batch may land after the session lists both pages.
	var live []byte
	for {
		live = getBody(t, m.AdminURL+"/api/sessions/"+sess.ID+"/events?assets=live")
		if bytes.Contains(live, []byte("Page two is done")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the session's events lack page two's last mutation; their end:\n%s", live[max(0, len(live)-1500):])
		}
		time.Sleep(250 * time.Millisecond)
	}
	archived := waitArchived(t, m, o)
	t.Logf("session %s; the archive holds %d assets: %v", sess.ID, len(archived), archived)

	rewritten := getBody(t, m.AdminURL+"/api/sessions/"+sess.ID+"/events")
	for _, u := range archived {
		// rrweb inlines a stylesheet's text in place of its <link>.
		if !strings.HasSuffix(u, ".css") && !bytes.Contains(live, []byte(u)) {
			t.Errorf("the raw recording (?assets=live) does not reference %s", u)
		}
		// The archive's URLs carry the original URL escaped: u=http%3A%2F%2F…
		if bytes.Contains(rewritten, []byte(u)) {
			t.Errorf("the replay's events still reference %s, which the archive holds", u)
		}
	}
	mos := moments(t, live)

	// Before the change: the replay, from the archive, with everything the
	// visitor saw loaded. (A stock replay of the raw recording is no
	// reference even now: the replay frame's origin cannot load the site's
	// font without CORS headers.)
	before := newBrowser(t, chromium)
	browserSignIn(t, before, m)
	shots := make([][]byte, len(mos))
	for i, mo := range mos {
		var rep frameReport
		shots[i], rep = replayShot(t, before, m, sess.ID, mo)
		checkArchived(t, m, "before the change", mo, rep)
		keep(t, "before "+mo.name, shots[i])
	}

	// The site deploys version B; A's asset URLs are gone.
	o.Deploy(fidelitySite(t, "B"))
	for _, p := range []string{"/img/bg.png", "/f/font.woff2", "/img/c.png", "/img/logo.svg"} {
		resp, err := http.Get(origin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s after the deploy: %s; want 404", p, resp.Status)
		}
	}
	o.Reset()

	// After the change, in a fresh browser (no cached copy of anything).
	after := newBrowser(t, chromium)
	browserSignIn(t, after, m)
	for i, mo := range mos {
		shot, rep := replayShot(t, after, m, sess.ID, mo)
		checkArchived(t, m, "after the change", mo, rep)
		keep(t, "after "+mo.name, shot)
		same := samePixels(t, shots[i], shot)
		t.Logf("after the change, %s (%d ms): %.4f%% of pixels identical to before", mo.name, mo.ms, 100*same)
		if same < 0.999 {
			t.Errorf("after the change, %s: %.4f%% of pixels identical to before; want ≥ 99.9%%", mo.name, 100*same)
		}
	}
	n, paths := o.Requests()
	t.Logf("the origin received %d requests during the replays", n)
	if n != 0 {
		t.Errorf("the origin received %d requests during the replays, want 0: %v", n, paths)
	}

	// The control: the raw recording replayed now loads the changed site,
	// and must look different, so this test can fail.
	afterLive := liveBrowser(t, chromium)
	browserSignIn(t, afterLive, m)
	for i, mo := range mos {
		shot, _ := replayShot(t, afterLive, m, sess.ID, mo)
		keep(t, "control "+mo.name, shot)
		same := samePixels(t, shots[i], shot)
		t.Logf("control: live replay after the change, %s: %.4f%% of pixels identical to before", mo.name, 100*same)
		if same > 0.99 {
			t.Errorf("control: the live replay after the change at %s is %.4f%% identical to before; want < 99%% (it loads the changed site)", mo.name, 100*same)
		}
	}
	if n, _ := o.Requests(); n == 0 {
		t.Error("control: the live replay made no request to the origin")
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

func getBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := adminGet(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %.300s", url, resp.StatusCode, err, b)
	}
	return b
}

// assetBodies counts the archive's stored bodies in the SQLite file.
func assetBodies(t *testing.T, m *Main) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(m.Config.Data, "loupe.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM asset_bodies`).Scan(&n); err != nil {
		t.Fatalf("count asset bodies: %v", err)
	}
	return n
}

// TestArchiveNoNewBlobs: a thousand requests for a site's stylesheet and
// images through Loupe, half of them gzip-encoded by the origin, add no
// body to the archive after the first visit.
func TestArchiveNoNewBlobs(t *testing.T) {
	o := &fidelityOrigin{}
	files := fidelitySite(t, "A")
	o.Deploy(files)
	origin := httptest.NewServer(o)
	defer origin.Close()
	m := startLoupe(t, origin.URL)
	paths := assetPaths(files)

	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	get := func(i int) error {
		p := paths[i%len(paths)]
		req, _ := http.NewRequest(http.MethodGet, m.ProxyURL+p, nil)
		gz := i%2 == 1
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if r, err = gzip.NewReader(resp.Body); err != nil {
				return fmt.Errorf("GET %s: %v", p, err)
			}
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("GET %s: %v", p, err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, files[p].body) {
			return fmt.Errorf("GET %s (gzip %v): %s, %d bytes; want 200 and the origin's %d bytes", p, gz, resp.Status, len(b), len(files[p].body))
		}
		return nil
	}

	// The first visit: each asset twice, identity and gzip.
	for i := range 2 * len(paths) {
		if err := get(i); err != nil {
			t.Fatal(err)
		}
	}
	waitArchived(t, m, o)
	first := assetBodies(t, m)
	if first != len(paths) {
		t.Errorf("after the first visit the archive holds %d bodies, want %d (one per distinct asset)", first, len(paths))
	}

	const visits = 1000
	errs := make(chan error, visits)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= visits; i = int(next.Add(1)) {
				errs <- get(i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Give the background writer time to store anything it would.
	time.Sleep(1500 * time.Millisecond)
	if got := assetBodies(t, m); got != first {
		t.Errorf("after %d more GETs the archive holds %d bodies, want %d as after the first visit", visits, got, first)
	}
	t.Logf("%d GETs through Loupe; %d asset bodies stored", visits+2*len(paths), first)
}
