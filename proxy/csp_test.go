package proxy

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var tagNonce = regexp.MustCompile(`<script src="/__loupe/recorder.js" defer data-loupe="[^"]*" nonce="([A-Za-z0-9_-]{22})"></script>`)

const cspSitePage = `<!doctype html><html><head><meta charset="utf-8">` +
	`<meta http-equiv="Content-Security-Policy" content="connect-src 'none'">` +
	`<script nonce="abc" src="https://cdn.example/lib.js" integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC" crossorigin="anonymous"></script>` +
	`</head><body><p>hi</p></body></html>`

func TestRecorderCSP(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Content-Security-Policy", "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'; connect-src 'self'")
		h.Add("Content-Security-Policy", "default-src 'self' 'unsafe-inline'; script-src 'unsafe-inline', connect-src 'none'")
		h.Set("Content-Security-Policy-Report-Only", "script-src 'nonce-abc'; report-uri /csp")
		if r.URL.Path == "/app.js" {
			h.Set("Content-Type", "text/javascript")
			w.Write([]byte("1"))
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(cspSitePage))
	})
	srv, _ := mustProxy(t, origin, nil)
	u, _ := url.Parse(srv.URL)
	self := "http://" + u.Host + "/__loupe/"

	resp, body := get(t, srv.URL+"/", nil)
	m := tagNonce.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no recorder tag with a nonce in %s", body)
	}
	n := "'nonce-" + string(m[1]) + "'"
	wantCSP := []string{
		"script-src 'nonce-abc' 'strict-dynamic' " + n + "; object-src 'none'; base-uri 'none'; connect-src 'self'",
		"default-src 'self' 'unsafe-inline'; script-src 'unsafe-inline' " + self + "recorder.js, connect-src " + self + "ingest",
	}
	if got := resp.Header.Values("Content-Security-Policy"); strings.Join(got, "\n") != strings.Join(wantCSP, "\n") {
		t.Errorf("Content-Security-Policy:\n got %q\nwant %q", got, wantCSP)
	}
	wantRO := "script-src 'nonce-abc' " + n + "; report-uri /csp"
	if got := resp.Header.Get("Content-Security-Policy-Report-Only"); got != wantRO {
		t.Errorf("Content-Security-Policy-Report-Only: got %q, want %q", got, wantRO)
	}
	// The meta policy comes after the tag; it gets the same additions.
	wantMeta := `<meta http-equiv="Content-Security-Policy" content="connect-src ` + self + `ingest">`
	if !strings.Contains(string(body), wantMeta) {
		t.Errorf("page lacks %s:\n%s", wantMeta, body)
	}
	// The site's own tags, integrity included, are untouched.
	i := strings.Index(cspSitePage, "<script nonce")
	j := strings.Index(cspSitePage, "</head>")
	if !strings.Contains(string(body), cspSitePage[i:j]) {
		t.Errorf("the site's script tag changed:\n%s", body)
	}

	// Each response has its own nonce.
	_, body2 := get(t, srv.URL+"/", nil)
	if m2 := tagNonce.FindSubmatch(body2); m2 == nil || string(m2[1]) == string(m[1]) {
		t.Errorf("second response's nonce: got %q, want a new one (first %q)", m2, m[1])
	}

	// A HEAD answer has the policies a GET has, but for the nonce.
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/", nil)
	head, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	anyNonce := regexp.MustCompile(`'nonce-[A-Za-z0-9_-]{22}'`)
	for _, h := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		got := anyNonce.ReplaceAllString(strings.Join(head.Header.Values(h), "\n"), "N")
		want := anyNonce.ReplaceAllString(strings.Join(resp.Header.Values(h), "\n"), "N")
		if got != want {
			t.Errorf("HEAD %s:\n got %q\nwant %q (the GET's)", h, got, want)
		}
	}

	// Responses that are not rewritten keep their policies as they are.
	resp, _ = get(t, srv.URL+"/app.js", nil)
	if got := resp.Header.Values("Content-Security-Policy"); len(got) != 2 || strings.Contains(strings.Join(got, ""), "nonce-"+string(m[1])) || strings.Contains(strings.Join(got, ""), "__loupe") {
		t.Errorf("script response's policy changed: %q", got)
	}
}

func TestRecorderCSPNoHeader(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(cspSitePage))
	})
	srv, _ := mustProxy(t, origin, nil)
	resp, body := get(t, srv.URL+"/", nil)
	if resp.Header.Get("Content-Security-Policy") != "" {
		t.Errorf("got a Content-Security-Policy header %q where the origin sent none", resp.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(string(body), `" nonce="`) && tagNonce.Match(body) {
		t.Errorf("recorder tag has a nonce though no header policy asks for one:\n%s", body)
	}
	if !strings.Contains(string(body), "connect-src http://") {
		t.Errorf("meta policy not adjusted:\n%s", body)
	}
}

func TestSourceSafe(t *testing.T) {
	for _, tt := range []struct {
		s    string
		path bool
		want bool
	}{
		{"shop.example", false, true},
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, false},
		{"", false, false},
		{"a;b", false, false},
		{"a,b", false, false},
		{"a b", false, false},
		{"/__loupe/", true, true},
		{"/x;y/", true, false},
		{"/a:b/", true, false},
	} {
		if got := sourceSafe(tt.s, tt.path); got != tt.want {
			t.Errorf("sourceSafe(%q, %v) = %v, want %v", tt.s, tt.path, got, tt.want)
		}
	}
}
