package archive

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// testMapper maps the URLs of table to archive paths, as the replay
// server would.
func testMapper(table ...string) Mapper {
	set := make(map[string]bool)
	for _, u := range table {
		set[u] = true
	}
	return func(abs string) (string, bool) {
		if !set[abs] {
			return "", false
		}
		return "/archive/h?u=" + url.QueryEscape(abs), true
	}
}

// mapNothing offers every URL and maps none.
func mapNothing(string) (string, bool) { return "", false }

func mustParseURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestRewriteCSS(t *testing.T) {
	const (
		img  = "https://shop.example/static/img.png"
		font = "https://shop.example/static/font.woff2"
		cdn  = "https://cdn.example/a.css"
	)
	m := testMapper(img, font, cdn)
	base := "https://shop.example/static/site.css"
	arch := func(u string) string { return "/archive/h?u=" + url.QueryEscape(u) }
	tests := []struct {
		name string
		base string // "" for nil
		in   string
		want string
	}{
		{"unquoted relative", base, `a{background:url(img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"double quoted", base, `a{background:url("img.png")}`, `a{background:url("` + arch(img) + `")}`},
		{"single quoted with spaces", base, `a{background:url(  'img.png'  ) no-repeat}`, `a{background:url("` + arch(img) + `") no-repeat}`},
		{"unquoted with spaces", base, "a{background:url(\n img.png\t)}", `a{background:url("` + arch(img) + `")}`},
		{"upper case function", base, `a{background:URL(img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"escaped function name", base, `a{background:u\72l(img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"escape in unquoted url", base, `a{background:url(im\67 .png)}`, `a{background:url("` + arch(img) + `")}`},
		{"escape in quoted url", base, `a{background:url("im\".png")}`, `a{background:url("im\".png")}`},
		{"absolute", "", `a{background:url(https://shop.example/static/img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"normalized before lookup", "", `a{background:url(HTTPS://Shop.Example:443/static/img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"fragment kept", base, `a{filter:url(img.png#f)}`, `a{filter:url("` + arch(img) + `#f")}`},
		{"relative without base", "", `a{background:url(img.png)}`, `a{background:url(img.png)}`},
		{"root relative", base, `a{background:url(/static/img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"parent relative", "https://shop.example/static/css/x.css", `a{background:url(../img.png)}`, `a{background:url("` + arch(img) + `")}`},
		{"unmapped kept byte for byte", base, `a{background:url( 'other.png' )}`, `a{background:url( 'other.png' )}`},
		{"data url", base, `a{background:url(data:image/png;base64,AAAA)}`, `a{background:url(data:image/png;base64,AAAA)}`},
		{"fragment only", base, `a{filter:url(#f)}`, `a{filter:url(#f)}`},
		{"blob and about", base, `a{b:url(blob:https://shop.example/x);c:url(about:blank)}`, `a{b:url(blob:https://shop.example/x);c:url(about:blank)}`},
		{"comment", base, `/* url(img.png) */a{}`, `/* url(img.png) */a{}`},
		{"string", base, `a::after{content:"url(img.png)"}`, `a::after{content:"url(img.png)"}`},
		{"not a url function", base, `a{b:myurl(img.png);c:10url(img.png)}`, `a{b:myurl(img.png);c:10url(img.png)}`},
		{"bad url", base, `a{b:url(img .png)}`, `a{b:url(img .png)}`},
		{"unterminated", base, `a{b:url(img.png`, `a{b:url(img.png`},
		{"font face", base, `@font-face{font-family:F;src:url(font.woff2) format("woff2"),url(font.woff) format("woff")}`, `@font-face{font-family:F;src:url("` + arch(font) + `") format("woff2"),url(font.woff) format("woff")}`},
		{"import string", base, `@import "https://cdn.example/a.css";`, `@import "` + arch(cdn) + `";`},
		{"import string after comment", base, `@import /* x */ 'https://cdn.example/a.css' screen;`, `@import /* x */ "` + arch(cdn) + `" screen;`},
		{"import url", base, `@IMPORT url(https://cdn.example/a.css) layer(x);`, `@IMPORT url("` + arch(cdn) + `") layer(x);`},
		{"string after a rule is not an import", base, `@import url(x.css); a{content:"https://cdn.example/a.css"}`, `@import url(x.css); a{content:"https://cdn.example/a.css"}`},
		{"image-set", base, `a{b:image-set("img.png" 1x, url(img.png) 2x, "x.png" type("image/png"))}`, `a{b:image-set("` + arch(img) + `" 1x, url("` + arch(img) + `") 2x, "x.png" type("image/png"))}`},
		{"quote in mapped url escaped", base, `a{b:url(https://cdn.example/a.css)}`, `a{b:url("` + arch(cdn) + `")}`},
		{"empty", base, ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *url.URL
			if tt.base != "" {
				b = mustParseURL(t, tt.base)
			}
			if got := string(RewriteCSS([]byte(tt.in), b, m)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRewriteCSSEscapesMappedURL(t *testing.T) {
	m := func(string) (string, bool) { return "/a\"b\\c\nd", true }
	got := string(RewriteCSS([]byte(`a{b:url(https://x.example/i.png)}`), nil, m))
	want := `a{b:url("/a\"b\\c\a d")}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestCSSURLs(t *testing.T) {
	tests := []struct {
		name string
		base string
		in   string
		want []string
	}{
		{"resolved deduplicated in order", "https://shop.example/css/site.css",
			`@import "print.css"; a{b:url(../img/a.png)} c{d:url('/img/a.png')} @font-face{src:url(https://CDN.example:443/f.woff2#x)}`,
			[]string{"https://shop.example/css/print.css", "https://shop.example/img/a.png", "https://cdn.example/f.woff2"}},
		{"nil base keeps absolute only", "",
			`a{b:url(a.png);c:url(http://shop.example/b.png)}`,
			[]string{"http://shop.example/b.png"}},
		{"no urls from comments, strings, data", "https://shop.example/",
			`/* url(a.png) @import "b.css"; */ a{content:"url(c.png)";b:url(data:image/gif;base64,R0lG);c:url(#f)}`,
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *url.URL
			if tt.base != "" {
				b = mustParseURL(t, tt.base)
			}
			if got := CSSURLs([]byte(tt.in), b); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzRewriteCSS(f *testing.F) {
	for _, s := range []string{
		`a{background:url(img.png)}`,
		`@import "a.css"; @import url('b.css');`,
		`a{b:url(  "x\"y.png"  )}`,
		`a{b:image-set("a.png" 1x, url(b.png) 2x)}`,
		`/* url(x) */ a{content:"url(y)"}`,
		`a{b:url(im\67 .png) u\72l(x) url(\`,
		`a{b:url(data:x,y) url(#f) url(blob:x)}`,
	} {
		f.Add(s)
	}
	base, _ := url.Parse("https://shop.example/css/site.css")
	f.Fuzz(func(t *testing.T, css string) {
		if got := string(RewriteCSS([]byte(css), base, mapNothing)); got != css {
			t.Fatalf("unmapped rewrite changed the input: got %q, want %q", got, css)
		}
		all := func(abs string) (string, bool) { return "/archive/x", true }
		out := string(RewriteCSS([]byte(css), base, all))
		// Every reference found is rewritten; scanning the output finds
		// only archive URLs.
		for _, u := range CSSURLs([]byte(out), base) {
			if !strings.HasPrefix(u, "https://shop.example/archive/x") {
				t.Fatalf("rewritten %q still references %q: %q", css, u, out)
			}
		}
	})
}
