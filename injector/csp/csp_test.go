package csp

import (
	"slices"
	"strings"
	"testing"
)

var testRecorder = Recorder{
	Nonce:   "N0nce",
	Script:  "https://shop.example/__loupe/recorder.js",
	Connect: "https://shop.example/__loupe/ingest",
	Scheme:  "https",
}

const (
	nonce   = "'nonce-N0nce'"
	script  = "https://shop.example/__loupe/recorder.js"
	connect = "https://shop.example/__loupe/ingest"
)

func TestHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means unchanged
	}{
		{
			name: "issue's strict nonce and strict-dynamic",
			in:   "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'; connect-src 'self'",
			want: "script-src 'nonce-abc' 'strict-dynamic' " + nonce + "; object-src 'none'; base-uri 'none'; connect-src 'self'",
		},
		{
			// Google's recommended strict CSP: 'unsafe-inline' and https:
			// are fallbacks for old browsers; 'strict-dynamic' turns both
			// off, so only a nonce lets the recorder in.
			name: "strict CSP with backward-compatible fallbacks",
			in:   "object-src 'none'; script-src 'nonce-r4nd0m' 'unsafe-inline' 'unsafe-eval' 'strict-dynamic' https: http:; base-uri 'none'; report-uri https://csp.example/report",
			want: "object-src 'none'; script-src 'nonce-r4nd0m' 'unsafe-inline' 'unsafe-eval' 'strict-dynamic' https: http: " + nonce + "; base-uri 'none'; report-uri https://csp.example/report",
		},
		{
			name: "unsafe-inline only: no nonce, which would switch it off",
			in:   "script-src 'unsafe-inline' https://cdn.example; style-src 'unsafe-inline'",
			want: "script-src 'unsafe-inline' https://cdn.example " + script + "; style-src 'unsafe-inline'",
		},
		{
			name: "unsafe-inline and self already allow the recorder",
			in:   "script-src 'self' 'unsafe-inline' 'unsafe-eval'; connect-src 'self' https://api.example",
		},
		{
			name: "default-src self",
			in:   "default-src 'self'; img-src * data:",
		},
		{
			name: "default-src none gets one directive per need, default-src untouched",
			in:   "default-src 'none'",
			want: "default-src 'none'; script-src " + nonce + "; connect-src " + connect,
		},
		{
			name: "default-src with hosts is copied, not loosened",
			in:   "default-src https://cdn.example 'unsafe-inline'; img-src 'self'",
			want: "default-src https://cdn.example 'unsafe-inline'; img-src 'self'; script-src https://cdn.example 'unsafe-inline' " + script +
				"; connect-src https://cdn.example 'unsafe-inline' " + connect,
		},
		{
			name: "default-src with inline styles and a strict script policy",
			in:   "default-src 'self' 'unsafe-inline' 'strict-dynamic' 'nonce-a'",
			want: "default-src 'self' 'unsafe-inline' 'strict-dynamic' 'nonce-a'; script-src 'self' 'unsafe-inline' 'strict-dynamic' 'nonce-a' " + nonce,
		},
		{
			name: "connect-src none is replaced",
			in:   "default-src 'none'; script-src 'self'; connect-src 'none'; img-src 'self'",
			want: "default-src 'none'; script-src 'self'; connect-src " + connect + "; img-src 'self'",
		},
		{
			name: "script-src none is replaced by a nonce",
			in:   "script-src 'none'",
			want: "script-src " + nonce,
		},
		{
			name: "none beside other sources is ignored by browsers and kept",
			in:   "script-src 'none' 'nonce-a'",
			want: "script-src 'none' 'nonce-a' " + nonce,
		},
		{
			name: "GitHub-shaped host allowlist",
			in:   "default-src 'none'; base-uri 'self'; connect-src 'self' uploads.github.com api.github.com; font-src github.githubassets.com; img-src 'self' data: github.githubassets.com; script-src github.githubassets.com; style-src 'unsafe-inline' github.githubassets.com; upgrade-insecure-requests",
			want: "default-src 'none'; base-uri 'self'; connect-src 'self' uploads.github.com api.github.com; font-src github.githubassets.com; img-src 'self' data: github.githubassets.com; script-src github.githubassets.com " + nonce + "; style-src 'unsafe-inline' github.githubassets.com; upgrade-insecure-requests",
		},
		{
			name: "hashes",
			in:   "script-src 'sha256-B2yPHKaXnvFWtRChIbabYmUBFZdVfKKXHbWtWidDVF8=' https://cdn.example",
			want: "script-src 'sha256-B2yPHKaXnvFWtRChIbabYmUBFZdVfKKXHbWtWidDVF8=' https://cdn.example " + nonce,
		},
		{
			name: "hashes with unsafe-inline (ignored) still take a nonce",
			in:   "script-src 'unsafe-inline' 'sha384-abc'",
			want: "script-src 'unsafe-inline' 'sha384-abc' " + nonce,
		},
		{
			name: "self with nonces but no strict-dynamic",
			in:   "script-src 'self' 'nonce-abc'",
		},
		{
			name: "self ignored under strict-dynamic",
			in:   "script-src 'self' 'strict-dynamic' 'nonce-abc'",
			want: "script-src 'self' 'strict-dynamic' 'nonce-abc' " + nonce,
		},
		{name: "wildcard", in: "script-src *; connect-src *"},
		{name: "scheme source", in: "script-src https:; connect-src https: wss:"},
		{name: "http: matches https pages too", in: "script-src http:; connect-src http:"},
		{
			name: "other scheme sources do not",
			in:   "script-src data: blob:; connect-src wss:",
			want: "script-src data: blob: " + nonce + "; connect-src wss: " + connect,
		},
		{
			name: "script-src-elem governs the tag; script-src (attributes) untouched",
			in:   "script-src 'unsafe-inline'; script-src-elem 'nonce-a'",
			want: "script-src 'unsafe-inline'; script-src-elem 'nonce-a' " + nonce,
		},
		{
			name: "script-src-elem with unsafe-inline",
			in:   "script-src 'nonce-a'; script-src-elem 'unsafe-inline'",
			want: "script-src 'nonce-a'; script-src-elem 'unsafe-inline' " + script,
		},
		{
			name: "a repeated directive is ignored",
			in:   "script-src 'self'; script-src 'none'; connect-src 'self'; connect-src 'none'",
		},
		{
			name: "several policies in one header line",
			in:   "script-src 'nonce-a' 'strict-dynamic', connect-src 'none',default-src 'self'",
			want: "script-src 'nonce-a' 'strict-dynamic' " + nonce + ", connect-src " + connect + ",default-src 'self'",
		},
		{
			name: "names and keywords are case-insensitive",
			in:   "SCRIPT-SRC 'NONCE-a' 'STRICT-DYNAMIC' 'SELF'; Connect-Src 'SELF'",
			want: "SCRIPT-SRC 'NONCE-a' 'STRICT-DYNAMIC' 'SELF' " + nonce + "; Connect-Src 'SELF'",
		},
		{
			name: "whitespace and empty directives kept",
			in:   "  script-src\t'nonce-a'\t;;  connect-src 'none' ;  ",
			want: "  script-src\t'nonce-a' " + nonce + "\t;;  connect-src " + connect + " ;  ",
		},
		{
			name: "a non-ASCII directive is skipped, as browsers do",
			in:   "script-src 'nonce-a' h\u00e9.example; default-src 'self'",
		},
		{
			name: "nothing about scripts or connections",
			in:   "frame-ancestors 'none'; upgrade-insecure-requests; block-all-mixed-content",
		},
		{
			name: "Trusted Types: the recorder creates no policy and uses no sink",
			in:   "require-trusted-types-for 'script'; trusted-types default dompurify",
		},
		{
			name: "Trusted Types with a strict script policy",
			in:   "require-trusted-types-for 'script'; trusted-types 'none'; script-src 'nonce-a' 'strict-dynamic'",
			want: "require-trusted-types-for 'script'; trusted-types 'none'; script-src 'nonce-a' 'strict-dynamic' " + nonce,
		},
		{
			name: "Facebook-shaped: 'self' everywhere, no spaces after ;",
			in:   "default-src * data: blob: 'self';script-src *.facebook.com *.fbcdn.net 'unsafe-inline' 'unsafe-eval' blob: data: 'self';connect-src *.facebook.com wss://*.facebook.com:* 'self';",
		},
		{
			name: "Shopify-shaped: no fetch directives",
			in:   "block-all-mixed-content; frame-ancestors 'none'; upgrade-insecure-requests;",
		},
		{
			name: "nonces beside 'self' without strict-dynamic",
			in:   "script-src 'self' 'unsafe-inline' https://*.twimg.com 'nonce-xyz'; connect-src 'self' https://api.example wss://stream.example",
		},
		{
			name: "report-sample kept",
			in:   "script-src 'report-sample' 'nonce-x' 'strict-dynamic'; report-to csp",
			want: "script-src 'report-sample' 'nonce-x' 'strict-dynamic' " + nonce + "; report-to csp",
		},
		{
			name: "trailing semicolon and only default-src hosts",
			in:   "default-src https://cdn.example;",
			want: "default-src https://cdn.example; script-src https://cdn.example " + nonce + "; connect-src https://cdn.example " + connect,
		},
		{name: "worker-src untouched", in: "worker-src 'none'; script-src 'self'"},
		{name: "empty", in: ""},
		{name: "only separators", in: " ; , ;"},
		{
			name: "already adjusted",
			in:   "script-src 'nonce-a' 'strict-dynamic' " + nonce + "; connect-src " + connect,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got := Header(tt.in, testRecorder)
			if got != want {
				t.Errorf("Header(%q)\n got %q\nwant %q", tt.in, got, want)
			}
			checkAdditions(t, tt.in, got, testRecorder, ",")
			if again := Header(got, testRecorder); again != got {
				t.Errorf("not idempotent: adjusting %q again gave %q", got, again)
			}
		})
	}
}

func TestNoNonce(t *testing.T) {
	r := Recorder{} // 'self' for both, no nonce, no scheme
	tests := []struct{ in, want string }{
		// Without a nonce a 'strict-dynamic' policy cannot admit the
		// recorder: it stays blocked rather than the policy loosened.
		{"script-src 'nonce-a' 'strict-dynamic'", "script-src 'nonce-a' 'strict-dynamic'"},
		{"script-src 'nonce-a'", "script-src 'nonce-a' 'self'"},
		{"script-src 'unsafe-inline'; connect-src 'none'", "script-src 'unsafe-inline' 'self'; connect-src 'self'"},
		// Unknown scheme: a scheme-source does not count.
		{"script-src https:", "script-src https: 'self'"},
	}
	for _, tt := range tests {
		if got := Header(tt.in, r); got != tt.want {
			t.Errorf("Header(%q, no nonce)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestMeta(t *testing.T) {
	// In a <meta> a comma separates nothing: it ends up inside a source.
	in := "script-src 'nonce-a' 'strict-dynamic', connect-src 'none'"
	want := in + " " + nonce
	if got := Meta(in, testRecorder); got != want {
		t.Errorf("Meta(%q)\n got %q\nwant %q", in, got, want)
	}
	in = "default-src 'self'; script-src 'unsafe-inline'"
	want = "default-src 'self'; script-src 'unsafe-inline' " + script
	if got := Meta(in, testRecorder); got != want {
		t.Errorf("Meta(%q)\n got %q\nwant %q", in, got, want)
	}
}

// checkAdditions fails t unless out is in with only the recorder's sources
// added: each policy keeps its directives with all their sources (a lone
// 'none' may be replaced), and a new directive is script-src or connect-src
// copying default-src plus one recorder source.
func checkAdditions(t *testing.T, in, out string, r Recorder, sep string) {
	t.Helper()
	ours := []string{"'nonce-" + r.Nonce + "'", r.Script, r.Connect, "'self'"}
	ins, outs := strings.Split(in, sep), strings.Split(out, sep)
	if sep == "" {
		ins, outs = []string{in}, []string{out}
	}
	if len(ins) != len(outs) {
		t.Fatalf("%q: %d policies became %d in %q", in, len(ins), len(outs), out)
	}
	for i := range ins {
		din, _ := parse(ins[i])
		dout, _ := parse(outs[i])
		for _, d := range din {
			j := find(dout, d.name)
			if j < 0 {
				t.Fatalf("%q: directive %s lost in %q", ins[i], d.name, outs[i])
			}
			got := dout[j].sources
			for _, s := range d.sources {
				if !slices.Contains(got, s) && !(isNone(d.sources)) {
					t.Errorf("%q: source %s of %s lost in %q", ins[i], s, d.name, outs[i])
				}
			}
			for _, s := range got {
				if !slices.Contains(d.sources, s) && !slices.Contains(ours, s) {
					t.Errorf("%q: %s gained %s, not one of the recorder's", ins[i], d.name, s)
				}
			}
		}
		for _, d := range dout {
			if find(din, d.name) >= 0 {
				continue
			}
			def := find(din, "default-src")
			if d.name != "script-src" && d.name != "connect-src" || def < 0 {
				t.Errorf("%q: new directive %s in %q", ins[i], d.name, outs[i])
				continue
			}
			want := din[def].sources
			if isNone(want) {
				want = nil
			}
			n := len(d.sources)
			if n != len(want)+1 || !slices.Equal(d.sources[:n-1], want) || !slices.Contains(ours, d.sources[n-1]) {
				t.Errorf("%q: new %s %q is not default-src %q plus one recorder source", ins[i], d.name, d.sources, want)
			}
		}
	}
}

// FuzzHeader: Header never panics, only adds the recorder's sources, and is
// idempotent; Meta likewise.
func FuzzHeader(f *testing.F) {
	for _, s := range []string{
		"script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'; connect-src 'self'",
		"default-src 'none', script-src 'unsafe-inline'",
		"default-src https: 'unsafe-inline'; script-src-elem 'sha256-x'",
		"SCRIPT-SRC 'none';;script-src *;\tconnect-src\f'none'",
		"script-src h\u00e9; default-src 'none'",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Header(in, testRecorder)
		checkAdditions(t, in, out, testRecorder, ",")
		if again := Header(out, testRecorder); again != out {
			t.Errorf("Header not idempotent: %q → %q → %q", in, out, again)
		}
		out = Meta(in, testRecorder)
		checkAdditions(t, in, out, testRecorder, "")
		if again := Meta(out, testRecorder); again != out {
			t.Errorf("Meta not idempotent: %q → %q → %q", in, out, again)
		}
	})
}
