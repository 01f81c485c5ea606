package archive

import (
	"bytes"
	"net/url"
	"strings"
	"unicode/utf8"
)

// A Mapper maps the normalized absolute URL of an asset (see NormalizeURL)
// to the URL a replay should load instead. It returns false when it has
// no copy of the asset; the reference is then left exactly as recorded.
type Mapper func(absURL string) (string, bool)

// cssRef is one URL reference found in a stylesheet.
type cssRef struct {
	start, end int    // byte span of the token to replace: url(...) or a string
	value      string // the URL as written, escapes decoded
	fn         bool   // the span is a url() function; otherwise a quoted string
}

// RewriteCSS returns css with every url() and @import reference that m
// maps replaced by m's URL (and the reference's fragment, if it had one).
// Relative references are resolved against base, the URL the stylesheet
// came from; with a nil base only absolute references are considered.
// data:, blob:, about:, fragment-only and non-http(s) references are never
// offered to m. References m does not map, and every other byte, are kept
// exactly; when nothing is mapped, css itself is returned.
func RewriteCSS(css []byte, base *url.URL, m Mapper) []byte {
	var out []byte
	last := 0
	scanCSS(css, func(r cssRef) {
		mapped, ok := mapRef(r.value, base, m)
		if !ok {
			return
		}
		if out == nil {
			out = make([]byte, 0, len(css)+len(mapped)+16)
		}
		out = append(out, css[last:r.start]...)
		if r.fn {
			out = append(out, `url(`...)
			out = appendCSSString(out, mapped)
			out = append(out, ')')
		} else {
			out = appendCSSString(out, mapped)
		}
		last = r.end
	})
	if out == nil {
		return css
	}
	return append(out, css[last:]...)
}

// CSSURLs returns the absolute, normalized URLs that css references with
// url() and @import, without duplicates, in order of first appearance.
// base is as for RewriteCSS.
func CSSURLs(css []byte, base *url.URL) []string {
	var urls []string
	seen := make(map[string]bool)
	scanCSS(css, func(r cssRef) {
		mapRef(r.value, base, func(abs string) (string, bool) {
			if !seen[abs] {
				seen[abs] = true
				urls = append(urls, abs)
			}
			return "", false
		})
	})
	return urls
}

// mapRef resolves ref against base and, when it is an archivable http(s)
// URL, asks m for its replacement. The reference's fragment (an SVG
// sprite's "#icon", a filter's "#f") is kept on the replacement, since
// the archive indexes URLs without fragments.
func mapRef(ref string, base *url.URL, m Mapper) (string, bool) {
	u := resolveRef(ref, base)
	if u == nil {
		return "", false
	}
	abs, err := rewriteNormalize(u)
	if err != nil {
		return "", false
	}
	mapped, ok := m(abs)
	if !ok {
		return "", false
	}
	if u.Fragment != "" {
		mapped += "#" + u.EscapedFragment()
	}
	return mapped, true
}

// resolveRef returns ref as an absolute http(s) URL, or nil when it is
// empty, fragment-only, of another scheme (data:, blob:, about:,
// javascript:…), unparsable, or relative with no base to resolve against.
func resolveRef(ref string, base *url.URL) *url.URL {
	// Browsers strip leading and trailing C0 controls and spaces, and
	// remove tabs and newlines anywhere (URL Standard, basic URL parser).
	ref = strings.TrimFunc(ref, func(r rune) bool { return r <= ' ' })
	if strings.ContainsAny(ref, "\t\n\r") {
		ref = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(ref)
	}
	if ref == "" || ref[0] == '#' {
		return nil
	}
	u, err := url.Parse(ref)
	if err != nil {
		return nil
	}
	if !u.IsAbs() {
		if base == nil || u.Scheme != "" {
			return nil
		}
		u = base.ResolveReference(u)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u
	}
	return nil
}

// rewriteNormalize normalizes an absolute URL as NormalizeURL does.
func rewriteNormalize(u *url.URL) (string, error) {
	return NormalizeURL(u.String())
}

// appendCSSString appends s as a double-quoted CSS string
// (CSS Syntax §2.1: escape the quote, backslash and line breaks).
func appendCSSString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\a `...)
		case '\r':
			b = append(b, `\d `...)
		case '\f':
			b = append(b, `\c `...)
		case 0:
			b = append(b, `\fffd `...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// scanCSS calls fn for every URL reference in css, in order: url()
// functions, the string after @import, and the strings of image-set().
// It follows CSS Syntax Level 3 tokenization closely enough that comments
// and ordinary strings never yield references, and never fails: malformed
// input just yields fewer references.
func scanCSS(css []byte, fn func(cssRef)) {
	var (
		depth        int  // open parentheses and functions
		imageSet     = -1 // depth inside image-set(), or -1
		importString bool // the previous token was @import
	)
	for i := 0; i < len(css); {
		c := css[i]
		switch {
		case c == '/' && i+1 < len(css) && css[i+1] == '*':
			end := bytes.Index(css[i+2:], []byte("*/"))
			if end < 0 {
				return
			}
			i += 2 + end + 2
			continue // comments are not tokens: @import /**/ "x" still imports
		case isASCIISpace(c):
			i++
			continue
		case c == '"' || c == '\'':
			value, end, ok := scanCSSString(css, i)
			if ok && (importString || depth == imageSet) {
				fn(cssRef{start: i, end: end, value: value})
			}
			i = end
		case c == '@':
			name, end := scanCSSName(css, i+1)
			i = end
			importString = bytes.EqualFold(name, []byte("import"))
			continue
		case c == '#':
			_, i = scanCSSName(css, i+1)
		case c >= '0' && c <= '9' || c == '.':
			// A number and its unit ("10url(" is a dimension, not url()).
			i++
			for i < len(css) && (css[i] >= '0' && css[i] <= '9' || css[i] == '.') {
				i++
			}
			_, i = scanCSSName(css, i)
		case isCSSNameStart(css, i):
			start := i
			name, end := scanCSSName(css, i)
			i = end
			if i >= len(css) || css[i] != '(' {
				break
			}
			i++
			switch {
			case bytes.EqualFold(name, []byte("url")):
				ref, end, ok := scanCSSURL(css, start, i)
				i = end
				if ok {
					fn(ref)
				}
			case bytes.EqualFold(name, []byte("image-set")), bytes.EqualFold(name, []byte("-webkit-image-set")):
				depth++
				imageSet = depth
			default:
				depth++
			}
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth == imageSet {
				imageSet = -1
			}
			if depth > 0 {
				depth--
			}
			i++
		default:
			i++
		}
		importString = false
	}
}

// scanCSSURL scans the rest of a url( function whose name starts at start
// and whose argument starts at i. It returns the reference, the index
// after the closing parenthesis, and whether the function is well formed.
func scanCSSURL(css []byte, start, i int) (cssRef, int, bool) {
	for i < len(css) && isASCIISpace(css[i]) {
		i++
	}
	if i < len(css) && (css[i] == '"' || css[i] == '\'') {
		value, end, ok := scanCSSString(css, i)
		i = end
		for i < len(css) && isASCIISpace(css[i]) {
			i++
		}
		if !ok || i >= len(css) || css[i] != ')' {
			// Not a url(): leave it to the caller's scan.
			return cssRef{}, i, false
		}
		return cssRef{start: start, end: i + 1, value: value, fn: true}, i + 1, true
	}
	var b strings.Builder
	for i < len(css) {
		c := css[i]
		switch {
		case c == ')':
			return cssRef{start: start, end: i + 1, value: b.String(), fn: true}, i + 1, true
		case isASCIISpace(c):
			for i < len(css) && isASCIISpace(css[i]) {
				i++
			}
			if i < len(css) && css[i] == ')' {
				continue
			}
			return cssRef{}, skipBadURL(css, i), false
		case c == '"' || c == '\'' || c == '(' || c < 0x20 && c != '\t' || c == 0x7f:
			return cssRef{}, skipBadURL(css, i), false
		case c == '\\':
			if i+1 >= len(css) || css[i+1] == '\n' || css[i+1] == '\r' || css[i+1] == '\f' {
				return cssRef{}, skipBadURL(css, i), false
			}
			r, n := decodeCSSEscape(css, i)
			b.WriteRune(r)
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return cssRef{}, i, false // unterminated at end of input: left alone
}

// skipBadURL consumes the remnants of a bad url token (CSS Syntax §4.3.14).
func skipBadURL(css []byte, i int) int {
	for i < len(css) {
		switch css[i] {
		case ')':
			return i + 1
		case '\\':
			if i+1 < len(css) {
				i++
			}
		}
		i++
	}
	return i
}

// scanCSSString scans the string starting with the quote at css[i]. It
// returns its decoded value, the index after it, and false for a string
// cut short by a newline or the end of input.
func scanCSSString(css []byte, i int) (string, int, bool) {
	quote := css[i]
	i++
	var b strings.Builder
	for i < len(css) {
		c := css[i]
		switch {
		case c == quote:
			return b.String(), i + 1, true
		case c == '\n' || c == '\r' || c == '\f':
			return "", i, false // bad string; the newline is not consumed
		case c == '\\':
			if i+1 >= len(css) {
				i++
				continue
			}
			if n := css[i+1]; n == '\n' || n == '\f' {
				i += 2
				continue
			} else if n == '\r' {
				i += 2
				if i < len(css) && css[i] == '\n' {
					i++
				}
				continue
			}
			r, n := decodeCSSEscape(css, i)
			b.WriteRune(r)
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", i, false
}

// decodeCSSEscape decodes the escape starting with the backslash at
// css[i] (which is not followed by a newline or the end of input) and
// returns the rune and the escape's length.
func decodeCSSEscape(css []byte, i int) (rune, int) {
	j := i + 1
	if !isHex(css[j]) {
		r, n := utf8.DecodeRune(css[j:])
		return r, 1 + n
	}
	var r rune
	for k := 0; k < 6 && j < len(css) && isHex(css[j]); k++ {
		r = r<<4 | rune(unhex(css[j]))
		j++
	}
	if j < len(css) && isASCIISpace(css[j]) {
		if css[j] == '\r' && j+1 < len(css) && css[j+1] == '\n' {
			j++
		}
		j++
	}
	if r == 0 || r > utf8.MaxRune || r >= 0xd800 && r <= 0xdfff {
		r = utf8.RuneError
	}
	return r, j - i
}

// scanCSSName scans a run of name code points and escapes from css[i],
// returning it decoded (possibly a subslice of css) and the index after it.
func scanCSSName(css []byte, i int) ([]byte, int) {
	start := i
	var b []byte
	for i < len(css) {
		c := css[i]
		switch {
		case c == '\\':
			if i+1 >= len(css) || css[i+1] == '\n' || css[i+1] == '\r' || css[i+1] == '\f' {
				return b, i
			}
			if b == nil {
				b = append([]byte{}, css[start:i]...)
			}
			r, n := decodeCSSEscape(css, i)
			b = utf8.AppendRune(b, r)
			i += n
		case isCSSNameByte(c):
			if b != nil {
				b = append(b, c)
			}
			i++
		default:
			if b == nil {
				return css[start:i], i
			}
			return b, i
		}
	}
	if b == nil {
		return css[start:i], i
	}
	return b, i
}

// isCSSNameStart reports whether an identifier starts at css[i].
func isCSSNameStart(css []byte, i int) bool {
	c := css[i]
	if c == '-' {
		return i+1 < len(css) && (isCSSNameByte(css[i+1]) && !(css[i+1] >= '0' && css[i+1] <= '9') || css[i+1] == '\\')
	}
	if c == '\\' {
		return i+1 < len(css) && css[i+1] != '\n' && css[i+1] != '\r' && css[i+1] != '\f'
	}
	return isCSSNameByte(c) && !(c >= '0' && c <= '9')
}

func isCSSNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c >= 0x80
}

// isASCIISpace reports ASCII whitespace, as both CSS and HTML define it.
func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
