package injector

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/loupe-dev/loupe/injector/csp"
)

var cspPage = Page{PageViewID: "pv-1", Token: "tok.en", CSP: csp.Recorder{
	Nonce:   "N0nce",
	Script:  "https://shop.example/__loupe/recorder.js",
	Connect: "https://shop.example/__loupe/ingest",
	Scheme:  "https",
}}

func TestScriptTagNonce(t *testing.T) {
	in := mustNew(t, Config{})
	tag := string(in.ScriptTag(cspPage))
	if !strings.HasSuffix(tag, `" nonce="N0nce"></script>`) || !strings.HasPrefix(tag, `<script src="/__loupe/recorder.js" defer data-loupe="`) {
		t.Errorf("got tag %s, want a nonce attribute", tag)
	}
	if tag := string(in.ScriptTag(testPage)); strings.Contains(tag, "nonce") {
		t.Errorf("got tag %s without Page.CSP, want no nonce", tag)
	}
}

func TestRewriteMetaCSP(t *testing.T) {
	const integrity = `<script src="https://cdn.example/lib.js" integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC" crossorigin="anonymous" nonce="a"></script>` +
		`<link rel="stylesheet" href="/s.css" integrity="sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=">`
	tests := []struct {
		name string
		page Page
		in   string
		want string // TAG stands for the recorder's tag
	}{
		{
			name: "strict meta policy gains the nonce and the ingest URL",
			page: cspPage,
			in:   `<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="script-src 'nonce-a' 'strict-dynamic'; connect-src 'none'">` + integrity + `</head></html>`,
			want: `<!doctype html><html><head>TAG<meta http-equiv="Content-Security-Policy" content="script-src &#39;nonce-a&#39; &#39;strict-dynamic&#39; &#39;nonce-N0nce&#39;; connect-src https://shop.example/__loupe/ingest">` + integrity + `</head></html>`,
		},
		{
			name: "charset and policy in one meta: the tag comes after it",
			page: cspPage,
			in:   `<head><META charset=utf-8 HTTP-EQUIV=content-security-policy Content="default-src 'self' 'unsafe-inline'; script-src 'unsafe-inline'" /><title>x</title>`,
			want: `<head><meta charset="utf-8" http-equiv="content-security-policy" content="default-src &#39;self&#39; &#39;unsafe-inline&#39;; script-src &#39;unsafe-inline&#39; https://shop.example/__loupe/recorder.js">TAG<title>x</title>`,
		},
		{
			name: "a policy that already allows the recorder is copied byte for byte",
			page: cspPage,
			in:   `<head><meta http-equiv=Content-Security-Policy content="default-src 'self'" ><p>x`,
			want: `<head>TAG<meta http-equiv=Content-Security-Policy content="default-src 'self'" ><p>x`,
		},
		{
			name: "later metas in the body are adjusted too",
			page: cspPage,
			in:   `<head><title>t</title></head><body><meta http-equiv="content-security-policy" content="connect-src 'none'"></body>`,
			want: `<head>TAG<title>t</title></head><body><meta http-equiv="content-security-policy" content="connect-src https://shop.example/__loupe/ingest"></body>`,
		},
		{
			name: "report-only cannot be delivered by a meta: untouched",
			page: cspPage,
			in:   `<head><meta http-equiv="Content-Security-Policy-Report-Only" content="connect-src 'none'">`,
			want: `<head>TAG<meta http-equiv="Content-Security-Policy-Report-Only" content="connect-src 'none'">`,
		},
		{
			// <meta> breaks out of foreign content (WHATWG 13.2.6.5): it
			// is HTML's even inside <svg>.
			name: "a meta in SVG breaks out",
			page: cspPage,
			in:   `<head><title>t</title><body><svg><meta http-equiv="Content-Security-Policy" content="connect-src 'none'"/></svg>`,
			want: `<head>TAG<title>t</title><body><svg><meta http-equiv="Content-Security-Policy" content="connect-src https://shop.example/__loupe/ingest"></svg>`,
		},
		{
			name: "without Page.CSP nothing changes",
			page: testPage,
			in:   `<head><meta http-equiv="Content-Security-Policy" content="connect-src 'none'">` + integrity,
			want: `<head>TAG<meta http-equiv="Content-Security-Policy" content="connect-src 'none'">` + integrity,
		},
		{
			name: "repeated content: the first counts",
			page: cspPage,
			in:   `<head><meta http-equiv="Content-Security-Policy" content="connect-src 'none'" content="x">`,
			want: `<head>TAG<meta http-equiv="Content-Security-Policy" content="connect-src https://shop.example/__loupe/ingest">`,
		},
	}
	in := mustNew(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := in.Rewrite(&out, strings.NewReader(tt.in), tt.page); err != nil {
				t.Fatal(err)
			}
			want := strings.Replace(tt.want, "TAG", string(in.ScriptTag(tt.page)), 1)
			if got := out.String(); got != want {
				t.Errorf("Rewrite(%s)\n got %s\nwant %s", tt.in, got, want)
			}
		})
	}
}

// TestRewriteMetaCSPBeforeTag: a <meta> declaring both charset and policy
// precedes the tag and governs it; without a nonce from the caller, the tag
// gets one of its own where the policy needs it.
func TestRewriteMetaCSPBeforeTag(t *testing.T) {
	in := mustNew(t, Config{})
	page := cspPage
	page.CSP.Nonce = ""
	tests := []struct {
		name, in string
		nonce    bool
	}{
		{"strict-dynamic", `<head><meta charset=utf-8 http-equiv=Content-Security-Policy content="script-src 'nonce-a' 'strict-dynamic'"><title>x</title>`, true},
		{"unsafe-inline", `<head><meta charset=utf-8 http-equiv=Content-Security-Policy content="script-src 'unsafe-inline'"><title>x</title>`, false},
		{"after the tag", `<head><meta http-equiv=Content-Security-Policy content="script-src 'nonce-a' 'strict-dynamic'"><title>x</title>`, false},
	}
	nonce := regexp.MustCompile(` nonce="([A-Za-z0-9_-]{22})"></script>`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := in.Rewrite(&out, strings.NewReader(tt.in), page); err != nil {
				t.Fatal(err)
			}
			m := nonce.FindStringSubmatch(out.String())
			if (m != nil) != tt.nonce {
				t.Fatalf("tag nonce %q, want one: %v\n%s", m, tt.nonce, out.String())
			}
			if m != nil && !strings.Contains(out.String(), `content="script-src &#39;nonce-a&#39; &#39;strict-dynamic&#39; &#39;nonce-`+m[1]+`&#39;"`) {
				t.Errorf("meta lacks the tag's nonce %s:\n%s", m[1], out.String())
			}
			// The tag follows the charset meta, and is whole.
			if tt.nonce && !strings.Contains(out.String(), `&#39;"><script src="/__loupe/recorder.js" defer data-loupe="`) {
				t.Errorf("tag not right after the meta:\n%s", out.String())
			}
		})
	}
}

// FuzzMetaCSP: with Page.CSP set, Rewrite never fails on a document, its
// output is HTML the tokenizer reads to EOF, and it holds the same start
// tags, in order, plus the recorder's; a policy meta keeps its attributes
// and gains only what csp.Meta adds to its content.
func FuzzMetaCSP(f *testing.F) {
	for _, s := range []string{
		`<head><meta http-equiv="Content-Security-Policy" content="script-src 'nonce-a' 'strict-dynamic'; connect-src 'none'"><p>x`,
		`<meta charset=utf-8 http-equiv=content-security-policy content="default-src 'none'" content=x /><title>t`,
		`<body><svg><meta http-equiv=Content-Security-Policy content="connect-src 'none'"></svg><meta http-equiv="Content-Security-Policy" content='a&amp;"b'>`,
	} {
		f.Add(s)
	}
	in := mustNew(f, Config{})
	f.Fuzz(func(t *testing.T, doc string) {
		var out bytes.Buffer
		if err := in.Rewrite(&out, strings.NewReader(doc), cspPage); err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		type tag struct {
			name  string
			attrs []html.Attribute
		}
		tags := func(b []byte) ([]tag, error) {
			var ts []tag
			z := html.NewTokenizer(bytes.NewReader(b))
			for {
				tt := z.Next()
				if tt == html.ErrorToken {
					return ts, z.Err()
				}
				if tt == html.StartTagToken || tt == html.SelfClosingTagToken {
					tok := z.Token()
					ts = append(ts, tag{tok.Data, tok.Attr})
				}
			}
		}
		inTags, inErr := tags([]byte(doc))
		outTags, outErr := tags(out.Bytes())
		if inErr != io.EOF || outErr != io.EOF {
			return // cut-short input: the plain tokenizer is no reference
		}
		j := 0
		for _, o := range outTags {
			if o.name == "script" && len(o.attrs) == 4 && o.attrs[2].Key == "data-loupe" && o.attrs[3].Key == "nonce" {
				continue
			}
			if j >= len(inTags) {
				t.Fatalf("extra tag %+v\ninput  %q\noutput %q", o, doc, out.Bytes())
			}
			w := inTags[j]
			j++
			if o.name != w.name || len(o.attrs) != len(w.attrs) {
				t.Fatalf("tag %+v became %+v\ninput  %q\noutput %q", w, o, doc, out.Bytes())
			}
			for k, a := range w.attrs {
				b := o.attrs[k]
				if a.Key != b.Key || (a.Val != b.Val && (a.Key != "content" || b.Val != csp.Meta(a.Val, cspPage.CSP))) {
					t.Fatalf("attribute %+v became %+v\ninput  %q\noutput %q", a, b, doc, out.Bytes())
				}
			}
		}
		if j != len(inTags) {
			t.Fatalf("lost tags from %+v\ninput  %q\noutput %q", inTags[j:], doc, out.Bytes())
		}
	})
}
