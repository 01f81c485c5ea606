package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// cspCase is a site with a Content-Security-Policy that Loupe records.
type cspCase struct {
	name       string
	header     string // Content-Security-Policy header; "" for none
	reportOnly string // Content-Security-Policy-Report-Only header; "" for none
	meta       string // <meta http-equiv="Content-Security-Policy">; "" for none
	// metaCharset: the meta also declares the charset, so the recorder's
	// tag follows it and its policy governs the tag.
	metaCharset bool
	// inline: the site's scripts carry no nonce (its policy allows
	// 'unsafe-inline'), and it loads no external script of its own.
	inline bool
	// tt: the policy requires Trusted Types; the page checks that an
	// HTML sink still throws.
	tt bool
	// noConnect: the policy allows no connections but the recorder's.
	noConnect bool
}

// The strict policy: nonces and 'strict-dynamic'.
const strictCSP = "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'; connect-src 'self'"

var cspCases = []cspCase{
	{name: "header nonce and strict-dynamic", header: strictCSP},
	// A <meta> policy governs what is fetched after it: the recorder's
	// uploads, not its tag, which comes first.
	{name: "meta nonce and strict-dynamic", noConnect: true,
		meta: "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'; connect-src 'none'"},
	{name: "meta with charset before the tag", meta: strictCSP, metaCharset: true},
	{name: "unsafe-inline only", header: "default-src 'self'; script-src 'unsafe-inline'; connect-src 'none'", inline: true, noConnect: true},
	{name: "trusted types", tt: true,
		header: "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'"},
	{name: "report-only", reportOnly: strictCSP + "; report-uri /csp-report"},
}

// page returns the site's page: its scripts record each CSP violation the
// page sees, show which of its own scripts ran, and try what its policy
// must still forbid: a script without the nonce (inline and external), a
// connection the policy does not allow, an HTML sink under Trusted Types.
func (c cspCase) page() string {
	n := ` nonce="abc"`
	if c.inline {
		n = ""
	}
	var b strings.Builder
	b.WriteString("<!doctype html><html><head>")
	if c.meta != "" {
		charset := ""
		if c.metaCharset {
			charset = `charset="utf-8" `
		}
		b.WriteString(`<meta ` + charset + `http-equiv="Content-Security-Policy" content="` + c.meta + `">`)
	}
	b.WriteString(`<script` + n + `>
window.__v = [];
document.addEventListener('securitypolicyviolation', (e) => {
  __v.push({directive: e.effectiveDirective, uri: e.blockedURI, disposition: e.disposition, sample: e.sample});
});
window.siteInline = true;
window.noDynamic = ` + strconv.FormatBool(c.tt) + `;
</script>`)
	if !c.inline {
		b.WriteString(`<script` + n + ` src="/site.js"></script>`)
		b.WriteString(`<script>window.evilInline = true;</script>`)
	}
	b.WriteString(`<script src="/evil.js"></script>`)
	b.WriteString(`<title>CSP</title></head><body><h1>Hello</h1><p id="x">text</p>`)
	b.WriteString(`<script` + n + `>
fetch('/not-allowed').then(() => { window.fetched = true; }, () => { window.fetchBlocked = true; });
try {
  document.getElementById('x').innerHTML = '<i>DELIBERATE</i>';
  window.sinkOpen = true;
} catch (e) {
  window.sinkBlocked = e instanceof TypeError;
}
</script></body></html>`)
	return b.String()
}

func (c cspCase) origin(reports *[]string, mu *sync.Mutex) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/":
			if c.header != "" {
				h.Set("Content-Security-Policy", c.header)
			}
			if c.reportOnly != "" {
				h.Set("Content-Security-Policy-Report-Only", c.reportOnly)
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, c.page())
		case "/site.js":
			// A nonce'd script adds another; 'strict-dynamic' trusts it.
			h.Set("Content-Type", "text/javascript")
			io.WriteString(w, `window.siteExternal = true;
if (!window.noDynamic) { const s = document.createElement('script'); s.src = '/dynamic.js'; document.head.appendChild(s); }`)
		case "/dynamic.js":
			h.Set("Content-Type", "text/javascript")
			io.WriteString(w, `window.siteDynamic = true;`)
		case "/evil.js":
			h.Set("Content-Type", "text/javascript")
			io.WriteString(w, `window.evil = true;`)
		case "/csp-report":
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			*reports = append(*reports, string(body))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		case "/not-allowed":
			io.WriteString(w, "ok")
		default:
			http.NotFound(w, r)
		}
	})
}

// TestCSP: on sites with strict, meta, 'unsafe-inline', Trusted Types and
// Report-Only policies, Chromium runs the recorder and stores a session with
// its events, the site's own scripts still run, Chromium reports no CSP
// violation beyond the ones the page provokes on purpose, and what the
// site's policy forbids is still forbidden.
func TestCSP(t *testing.T) {
	chromium := requireBrowser(t)
	for _, c := range cspCases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var reports []string
			origin := httptest.NewServer(c.origin(&reports, &mu))
			defer origin.Close()
			m := startLoupe(t, origin.URL)
			ctx := newBrowser(t, chromium)

			// Chromium's console, where it logs every violation, also
			// those before any page script runs (a blocked recorder).
			cctx, stop := context.WithCancel(ctx)
			var console []string
			var wg sync.WaitGroup
			msgs := chromedp.Console(cctx)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for msg, err := range msgs {
					if err != nil {
						return
					}
					mu.Lock()
					console = append(console, string(msg.Type)+": "+msg.Text)
					mu.Unlock()
				}
			}()

			do(t, ctx, "open the page", chromedp.Navigate(m.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
			recording, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second)))
			if err != nil || !recording {
				t.Errorf("recorder did not start: %v", err)
			}
			// A DOM change through safe APIs while recording: rrweb records
			// it as a mutation, and its observers too must stay clear of
			// Trusted Types sinks.
			do(t, ctx, "change the page", chromedp.Evaluate[chromedp.Void](
				`document.body.appendChild(document.createElement('div')).textContent = 'added later'`))
			// Let the page's fetch settle and the recorder's first upload go.
			ready, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.fetched || window.fetchBlocked)", chromedp.WithPollingTimeout(10*time.Second)))
			if err != nil || !ready {
				t.Errorf("the page's fetch did not settle: %v", err)
			}

			type state struct {
				SiteInline, SiteExternal, SiteDynamic bool
				Evil, EvilInline                      bool
				Fetched, FetchBlocked                 bool
				SinkOpen, SinkBlocked                 bool
				Violations                            []struct{ Directive, URI, Disposition, Sample string }
			}
			js, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
				siteInline: !!window.siteInline, siteExternal: !!window.siteExternal, siteDynamic: !!window.siteDynamic,
				evil: !!window.evil, evilInline: !!window.evilInline,
				fetched: !!window.fetched, fetchBlocked: !!window.fetchBlocked,
				sinkOpen: !!window.sinkOpen, sinkBlocked: !!window.sinkBlocked,
				violations: window.__v || []})`))
			if err != nil {
				t.Fatalf("read page state: %v", err)
			}
			var s state
			if err := json.Unmarshal([]byte(js), &s); err != nil {
				t.Fatalf("page state %s: %v", js, err)
			}
			t.Logf("page state: %s", js)

			// The site's own scripts ran.
			if !s.SiteInline {
				t.Error("the site's inline script did not run")
			}
			if !c.inline && !s.SiteExternal {
				t.Error("the site's nonce'd external script did not run")
			}
			if !c.inline && !c.tt && !s.SiteDynamic {
				t.Error("the script the site's script added ('strict-dynamic') did not run")
			}

			// What the policy forbids, it still forbids (a Report-Only
			// policy only reports: there everything runs, and is reported).
			enforced := c.reportOnly == ""
			if s.Evil == enforced || (!c.inline && s.EvilInline == enforced) {
				t.Errorf("script without the nonce: ran %v (inline %v), want %v", s.Evil, s.EvilInline, !enforced)
			}
			if c.noConnect && enforced && !s.FetchBlocked {
				t.Error("fetch of a URL outside connect-src was allowed")
			}
			if c.tt && !s.SinkBlocked {
				t.Errorf("innerHTML with a string under require-trusted-types-for: open %v, want a TypeError", s.SinkOpen)
			}
			if !c.tt && !s.SinkOpen {
				t.Error("innerHTML failed without Trusted Types")
			}

			// Every violation the page saw is one it provoked.
			want := map[string]int{"evil.js": 1}
			if !c.inline {
				want["inline"] = 1
			}
			if c.noConnect && enforced {
				want["not-allowed"] = 1
			}
			if c.tt {
				want["trusted-types"] = 1
			}
			got := map[string]int{}
			for _, v := range s.Violations {
				switch {
				case strings.HasSuffix(v.URI, "/evil.js"):
					got["evil.js"]++
				case v.URI == "inline" && v.Directive == "script-src-elem":
					got["inline"]++
				case strings.HasSuffix(v.URI, "/not-allowed") && v.Directive == "connect-src":
					got["not-allowed"]++
				case v.Directive == "require-trusted-types-for":
					got["trusted-types"]++
				default:
					t.Errorf("unexpected CSP violation: %+v", v)
				}
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("got %d %s violations, want %d (all: %+v)", got[k], k, n, s.Violations)
				}
			}

			// Chromium's console: every CSP message is about what the page
			// provoked.
			do(t, ctx, "leave", chromedp.Navigate("about:blank"))
			// Reports go out on their own schedule; the provoked ones show
			// that the policy was in force.
			for end := time.Now().Add(5 * time.Second); c.reportOnly != "" && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				mu.Lock()
				n := len(reports)
				mu.Unlock()
				if n >= 2 {
					break
				}
			}
			stop()
			wg.Wait()
			mu.Lock()
			for _, line := range console {
				l := strings.ToLower(line)
				if !strings.Contains(l, "content security policy") && !strings.Contains(l, "trusted") {
					continue
				}
				switch {
				case strings.Contains(l, "/evil.js"),
					strings.Contains(l, "inline script") && !c.inline,
					strings.Contains(l, "/not-allowed") && c.noConnect,
					strings.Contains(l, "trustedhtml") && c.tt:
				default:
					t.Errorf("console: %s", line)
				}
			}
			// A Report-Only policy reports to its report-uri: nothing about
			// the recorder or its uploads.
			for _, r := range reports {
				if strings.Contains(r, "__loupe") {
					t.Errorf("report about the recorder: %s", r)
				}
			}
			if c.reportOnly != "" && len(reports) == 0 {
				t.Error("the Report-Only policy sent no report (want the provoked ones)")
			}
			mu.Unlock()

			// The session is stored with the page's events: its snapshot,
			// and the change, which the pagehide beacon carries.
			var full, mutations, n int
			var list struct{ Sessions []apiSession }
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				getJSON(t, m.AdminURL+"/api/sessions", &list)
				if len(list.Sessions) == 1 {
					var events []struct {
						Type int `json:"type"`
						Data struct {
							Source *int `json:"source"`
						} `json:"data"`
					}
					getJSON(t, m.AdminURL+"/api/sessions/"+list.Sessions[0].ID+"/events", &events)
					full, mutations, n = 0, 0, len(events)
					for _, e := range events {
						switch {
						case e.Type == 2:
							full++
						case e.Type == 3 && e.Data.Source != nil && *e.Data.Source == 0:
							mutations++
						}
					}
					if full >= 1 && mutations >= 1 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 15 s: sessions %+v; %d events, %d full snapshots, %d mutations; want one session with at least one of each",
						list.Sessions, n, full, mutations)
				}
			}
		})
	}
}
