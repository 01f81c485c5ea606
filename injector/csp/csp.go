// Package csp adjusts a site's Content-Security-Policy so that Loupe's
// recorder script and its uploads are allowed, and nothing else is: it only
// adds sources (or a directive that copies default-src for one resource
// type), never removes one, and never adds a nonce where that would switch
// off the site's own 'unsafe-inline'.
//
// Parsing follows CSP Level 3 §2.2 ("parse a serialized CSP"): directives
// are split on ';', a token holding non-ASCII bytes is skipped, names are
// ASCII case-insensitive and only the first of a repeated directive counts.
// A header value may hold several policies separated by ','; a <meta> holds
// one. Everything the package does not change is copied byte for byte.
//
// The recorder needs two things from a policy:
//   - its <script src=… defer> element, governed by script-src-elem, else
//     script-src, else default-src;
//   - fetch and sendBeacon to the same-origin ingest path, governed by
//     connect-src, else default-src.
//
// It needs nothing else: the bundle (injector/recorder, with rrweb's record
// and recordCanvas off) evaluates no strings as code and writes no HTML or
// script URL sinks, so `require-trusted-types-for 'script'` and a
// `trusted-types` list need no change; cmd/loupe's CSP end-to-end test
// checks that in Chromium.
package csp

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// Recorder says what the recorder's tag and uploads look like on one
// response.
type Recorder struct {
	// Nonce is a fresh, unguessable base64 value the recorder's <script>
	// carries for this response as nonce="…". Policies whose script
	// directive uses nonces, hashes or 'strict-dynamic' get 'nonce-Nonce'.
	// If empty, no nonce is added and a policy with 'strict-dynamic' keeps
	// blocking the recorder.
	Nonce string

	// Script is the source expression allowing the recorder's script URL
	// where a nonce cannot be used (a directive with 'unsafe-inline' and no
	// nonce or hash: a nonce would switch that off), such as
	// "https://shop.example/__loupe/recorder.js". It must hold no
	// whitespace, ';' or ','. If empty, 'self' is used.
	Script string

	// Connect is the source expression allowing the ingest URL, such as
	// "https://shop.example/__loupe/ingest". Same rules as Script; if
	// empty, 'self' is used.
	Connect string

	// Scheme is the page's URL scheme, "http" or "https". It lets a
	// scheme-source (https:) count as already allowing the recorder. If
	// empty, only 'self', * and the exact Script or Connect source do.
	Scheme string
}

// NewNonce returns a fresh nonce for Recorder.Nonce: 128 random bits in
// base64url, a CSP base64-value (CSP3 §2.3.1) that needs no escaping in an
// HTML attribute.
func NewNonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Header returns the value of a Content-Security-Policy or
// Content-Security-Policy-Report-Only header line with every policy in it
// adjusted for r. Report-Only policies get the same changes, so that they do
// not report the recorder. Each header line is adjusted on its own.
func Header(value string, r Recorder) string {
	if !strings.Contains(value, ",") {
		return adjust(value, r)
	}
	parts := strings.Split(value, ",")
	for i, p := range parts {
		parts[i] = adjust(p, r)
	}
	return strings.Join(parts, ",")
}

// Meta returns the content of a <meta http-equiv="Content-Security-Policy">
// adjusted for r. A meta's content is one policy: a ',' there is part of a
// source, not a separator.
func Meta(content string, r Recorder) string {
	return adjust(content, r)
}

// directive is one effective directive of a policy.
type directive struct {
	seg     int      // index of its ;-separated segment
	name    string   // lower case
	sources []string // as written
}

// parse returns the effective directives of one serialized policy, in
// order, and its ;-separated segments.
func parse(policy string) ([]directive, []string) {
	segs := strings.Split(policy, ";")
	var dirs []directive
	for i, seg := range segs {
		tok := trimSpace(seg)
		if tok == "" || !isASCII(tok) {
			continue
		}
		fields := strings.FieldsFunc(tok, isSpace)
		name := strings.ToLower(fields[0])
		if find(dirs, name) >= 0 {
			continue // a repeated directive is ignored (CSP3 §2.2.1 step 2.5)
		}
		dirs = append(dirs, directive{seg: i, name: name, sources: fields[1:]})
	}
	return dirs, segs
}

// find returns the index in dirs of the first directive named one of names,
// in the order given (a fallback list), or -1.
func find(dirs []directive, names ...string) int {
	for _, n := range names {
		for i, d := range dirs {
			if d.name == n {
				return i
			}
		}
	}
	return -1
}

func adjust(policy string, r Recorder) string {
	dirs, segs := parse(policy)
	if len(dirs) == 0 {
		return policy
	}
	script := r.Script
	if script == "" {
		script = "'self'"
	}
	connect := r.Connect
	if connect == "" {
		connect = "'self'"
	}

	changes := map[int][]string{} // directive index → sources to add
	var newDirs []string          // directives appended to the policy
	// plan finds the directive that governs a resource type (names is its
	// fallback list, ending in default-src) and what it must gain; newName
	// is the directive to add in place of changing default-src.
	plan := func(newName string, names []string, need func(sources []string) string) {
		i := find(dirs, names...)
		if i < 0 {
			return // nothing restricts this resource type
		}
		add := need(dirs[i].sources)
		if add == "" {
			return
		}
		if dirs[i].name != "default-src" {
			changes[i] = append(changes[i], add)
			return
		}
		// default-src also governs images, styles, frames, fonts…: adding
		// to it would loosen those. A new directive for the one type,
		// copying default-src's sources, changes nothing else.
		src := dirs[i].sources
		if isNone(src) {
			src = nil
		}
		newDirs = append(newDirs, newName+" "+strings.Join(append(append([]string(nil), src...), add), " "))
	}
	plan("script-src", []string{"script-src-elem", "script-src", "default-src"}, func(src []string) string {
		return scriptNeed(src, r, script)
	})
	plan("connect-src", []string{"connect-src", "default-src"}, func(src []string) string {
		if allows(src, r.Scheme, connect) {
			return ""
		}
		return connect
	})
	if len(changes) == 0 && len(newDirs) == 0 {
		return policy
	}
	for i, add := range changes {
		segs[dirs[i].seg] = addSources(segs[dirs[i].seg], dirs[i].sources, add)
	}
	out := strings.Join(segs, ";")
	for _, d := range newDirs {
		if trimSpace(out) != "" && !strings.HasSuffix(strings.TrimRight(out, " \t\n\f\r"), ";") {
			out += ";"
		}
		out += " " + d
	}
	return out
}

// scriptNeed returns the source the recorder's <script> needs added to a
// script directive's sources, or "" if it is already allowed (or cannot be
// without a nonce).
func scriptNeed(src []string, r Recorder, script string) string {
	var strict, nonceOrHash, inline bool
	for _, s := range src {
		ls := strings.ToLower(s)
		switch {
		case ls == "'strict-dynamic'":
			strict = true
		case ls == "'unsafe-inline'":
			inline = true
		case strings.HasPrefix(ls, "'nonce-"), strings.HasPrefix(ls, "'sha256-"),
			strings.HasPrefix(ls, "'sha384-"), strings.HasPrefix(ls, "'sha512-"):
			nonceOrHash = true
		}
		if r.Nonce != "" && s == "'nonce-"+r.Nonce+"'" {
			return ""
		}
	}
	// With 'strict-dynamic' browsers ignore host sources, 'self' and *.
	if !strict && allows(src, r.Scheme, script) {
		return ""
	}
	switch {
	case r.Nonce != "" && (strict || nonceOrHash || !inline):
		// A nonce allows exactly the tag that carries it. Where the list
		// has no 'unsafe-inline', or has nonces, hashes or 'strict-dynamic'
		// (which already switch 'unsafe-inline' off for scripts), adding
		// one changes nothing else.
		return "'nonce-" + r.Nonce + "'"
	case strict:
		return "" // only a nonce would do
	default:
		return script
	}
}

// allows reports whether a source list already allows a same-origin URL
// whose own source expression is self: through 'self', *, a scheme-source
// for the page's scheme, or self itself. Host-sources naming the site are
// not matched: where they would allow the URL, self is added redundantly,
// which loosens nothing.
func allows(src []string, scheme, self string) bool {
	for _, s := range src {
		ls := strings.ToLower(s)
		switch {
		case ls == "'self'", ls == "*", strings.EqualFold(s, self):
			return true
		case scheme != "" && (ls == scheme+":" || scheme == "https" && ls == "http:"):
			// CSP3 §6.7.2.8: http: also matches https URLs.
			return true
		}
	}
	return false
}

// isNone reports whether a source list is the lone 'none', which allows
// nothing; next to other sources, 'none' is ignored.
func isNone(src []string) bool {
	return len(src) == 1 && strings.EqualFold(src[0], "'none'")
}

// addSources returns seg, a directive segment with the given sources, with
// add appended; a lone 'none' is replaced. Whitespace around it is kept.
func addSources(seg string, src, add []string) string {
	tok := trimSpace(seg)
	start := strings.Index(seg, tok)
	lead, trail := seg[:start], seg[start+len(tok):]
	if isNone(src) {
		name := strings.FieldsFunc(tok, isSpace)[0]
		return lead + name + " " + strings.Join(add, " ") + trail
	}
	return lead + tok + " " + strings.Join(add, " ") + trail
}

// isSpace reports ASCII whitespace as HTML and CSP define it.
func isSpace(c rune) bool {
	switch c {
	case ' ', '\t', '\n', '\f', '\r':
		return true
	}
	return false
}

func trimSpace(s string) string {
	return strings.TrimFunc(s, isSpace)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
