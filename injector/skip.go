package injector

import (
	"bytes"
	"io"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Once the recorder tag is written, most of a page needs no rewriting: text
// and ordinary tags are copied as they are. golang.org/x/net/html's
// Tokenizer reads every byte of them one at a time and copies every
// attribute name, which costs far more than the rewrite itself. So the
// tokenizer reads the document through a feed, which, at a token boundary
// where nothing is pending, copies such tokens straight to the output,
// marks form fields itself (<input>, <select>, and <textarea> with its
// text, reading attributes from the raw tag when no value needs decoding),
// and hands the tokenizer only the rest: <meta>, raw-text elements (script,
// style, …), <svg> and <math>, comments, doctypes and anything unusual.
//
// Skipped tags still open and close elements on the stack, exactly as
// startTag and the end-tag case of token would, so selectors, foreign
// content and everything after see the same state; the output is the same
// byte for byte (FuzzSkip and TestSkipSameOutput check that against the
// tokenizer alone, with arbitrary read boundaries and buffer limits).
//
// Skipping is off while any selector may look at ancestors' attributes
// (the stack then needs them), inside foreign content, before the tag is
// written, and while tracing.

// feedBufSize is the feed's read-ahead. A tag longer than that is handed to
// the tokenizer, which then reads the rest of the document.
const feedBufSize = 32 << 10

type feed struct {
	rw   *rewriter
	src  io.Reader
	buf  []byte // unread bytes are buf[r:w]
	r, w int
	err  error // src's error, once it returned one
	// aligned: the tokenizer has emitted, and the rewriter handled, every
	// byte it was given. boundary: aligned, and skipping is allowed.
	aligned, boundary bool
	small             int // reads cut at '>' since the last aligned one
	// raw: the tokenizer will read the raw text of this element next.
	raw string
	off bool // skipping given up for the rest of the document
}

func (f *feed) reset(rw *rewriter, src io.Reader) {
	if f.buf == nil {
		f.buf = make([]byte, feedBufSize)
	}
	f.rw, f.src, f.r, f.w, f.err = rw, src, 0, 0, nil
	f.aligned, f.boundary, f.raw, f.off, f.small = false, false, "", false, 0
}

// fill reads more of src into the buffer, compacting it first. It reports
// false when nothing more can come: src failed or ended, or the buffer is
// full.
func (f *feed) fill() bool {
	if f.err != nil {
		return false
	}
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	if f.w == len(f.buf) {
		return false
	}
	for i := 0; i < 100; i++ {
		n, err := f.src.Read(f.buf[f.w:])
		f.w += n
		if err != nil {
			f.err = err
		}
		if n > 0 || err != nil {
			return n > 0
		}
	}
	f.err = io.ErrNoProgress
	return false
}

// Read gives the tokenizer its next bytes: at a token boundary, after
// skipping what it can, the next token and no more, so that the following
// read comes at a boundary again. Within a token, up to the next '>', which
// likely ends it; after a few such reads, all there is, so that a long
// token does not cost the tokenizer a copy of itself per read.
func (f *feed) Read(p []byte) (int, error) {
	aligned, boundary := f.aligned, f.boundary
	f.aligned, f.boundary = false, false
	if boundary && !f.off {
		if err := f.skip(); err != nil {
			return 0, err
		}
	}
	if f.r == f.w && !f.fill() && f.r == f.w {
		return 0, f.err
	}
	n := f.w - f.r
	if aligned || f.raw != "" {
		f.small = 0
		if end := f.tokenEnd(); end > 0 {
			n = end
		}
	} else if f.small < 8 {
		f.small++
		if i := bytes.IndexByte(f.buf[f.r:f.w], '>'); i >= 0 {
			n = i + 1
		}
	}
	n = copy(p, f.buf[f.r:f.r+n])
	f.r += n
	return n, nil
}

// tokenEnd guesses where the token at the start of the unread bytes ends,
// so that the tokenizer gets that token and no more, and the next read
// comes at a boundary again; 0 means all. A wrong guess costs speed only:
// the tokenizer reads again for the rest of its token, and gets all.
func (f *feed) tokenEnd() int {
	b := f.buf[f.r:f.w]
	if raw := f.raw; raw != "" {
		f.raw = ""
		end := rawTextEnd(b, raw)
		if end < 0 {
			return 0
		}
		return end
	}
	if len(b) > 0 && b[0] != '<' {
		// Text: the tokenizer reads on to see what the next '<' starts.
		if i := bytes.IndexByte(b, '<'); i > 0 {
			return i
		}
		return 0
	}
	if len(b) < 2 {
		return 0
	}
	switch c := b[1]; {
	case isLetter(c):
		if end, ok := tagEnd(b, 1); ok {
			return end
		}
		return 0
	case c == '!' && bytes.HasPrefix(b, []byte("<!--")):
		if i := commentEnd(b); i > 0 {
			return i
		}
		return 0
	}
	if i := bytes.IndexByte(b, '>'); i >= 0 {
		return i + 1
	}
	return 0
}

// skip copies text and ordinary tags from the buffer to the output until
// the next token the tokenizer must see, or the end of the document.
func (f *feed) skip() error {
	rw := f.rw
	maxBuf := rw.in.maxBuf
	run := 0 // length of the text token being skipped
	for {
		if f.r == f.w && !f.fill() {
			return nil
		}
		b := f.buf[f.r:f.w]
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			i = len(b)
		}
		if run+i > 0 && run+i+2 >= maxBuf {
			// The tokenizer would give up on this text token; so does
			// Rewrite, copying the rest as it is.
			return f.copyRest()
		}
		if err := f.emit(i); err != nil {
			return err
		}
		run += i
		if i == len(b) {
			continue
		}
		// At '<': is a token starting here?
		b = f.buf[f.r:f.w]
		if len(b) < 3 {
			if f.fill() {
				continue
			}
			return nil // let the tokenizer see the end
		}
		end := false
		nameAt := 1
		switch c := b[1]; {
		case isLetter(c):
		case c == '/' && isLetter(b[2]):
			end, nameAt = true, 2
		case c == '/' || c == '!' || c == '?':
			return nil
		default:
			// Text: '<' not followed by a tag.
			if err := f.emit(1); err != nil {
				return err
			}
			run++
			continue
		}
		// A field's attributes are read as its end is found, when its
		// marks are raw (rawmark.go): one pass over the tag, not two.
		var n int
		ok, scanned := false, false
		if fa := rw.rawFieldAt(b, nameAt, end); fa != 0 {
			rw.beginField(fa)
			n, ok = scanTag(b, nameAt, rw)
			scanned = ok
		} else {
			n, ok = tagEnd(b, nameAt)
		}
		for !ok {
			// Read on until a '>' arrives that may end the tag, without
			// scanning it again for every small read.
			seen := f.w - f.r
			if !f.fill() {
				// EOF inside the tag, or a tag longer than the buffer.
				f.off = f.err == nil
				return nil
			}
			b = f.buf[f.r:f.w]
			if bytes.IndexByte(b[seen:], '>') >= 0 {
				n, ok = tagEnd(b, nameAt)
			}
		}
		if run > 0 && run+2 >= maxBuf {
			return f.copyRest()
		}
		name := tagNameAt(b, nameAt)
		a := atom.Lookup(name)
		if n >= maxBuf && rw.skippable(name, a, end) {
			return f.copyRest()
		}
		if a == atom.Textarea && !end {
			done, err := f.skipTextarea(n, maxBuf)
			if err != nil || !done {
				return err
			}
			run = 0
			continue
		}
		if out, ok := rw.skipField(b[:n], a, end, scanned); ok {
			f.r += n
			if err := rw.write(out); err != nil {
				return err
			}
		} else if rw.skipTag(name, a, end) {
			if err := f.emit(n); err != nil {
				return err
			}
		} else {
			return nil
		}
		run = 0
		if rw.stack.inForeign() {
			// An end tag closed an HTML integration point: what follows
			// is foreign content, where the tokenizer must know CDATA.
			rw.z.AllowCDATA(true)
			return nil
		}
	}
}

// skipTextarea handles a <textarea> whose start tag is the next n unread
// bytes, with its text and end tag, as the tokenizer and startTag would, if
// all of it is in the buffer (reading on as needed) and the tokenizer would
// not give up on any of its tokens. It reports false, having changed
// nothing, to leave the element to the tokenizer.
func (f *feed) skipTextarea(n, maxBuf int) (bool, error) {
	rw := f.rw
	j, end := -1, 0
	for seen := n; ; {
		b := f.buf[f.r:f.w]
		if bytes.IndexByte(b[seen:], '>') >= 0 {
			if j = rawEndTag(b[n:], "textarea"); j >= 0 {
				var ok bool
				if end, ok = tagEnd(b[n+j:], 2); ok {
					break
				}
			}
		}
		seen = len(b)
		if !f.fill() {
			return false, nil
		}
	}
	// The text token is read up to "</textarea" and one byte more.
	if n >= maxBuf || j+len("</textarea")+1 >= maxBuf || end >= maxBuf {
		return false, nil
	}
	out, ok := rw.skipField(f.buf[f.r:f.r+n], atom.Textarea, false, false)
	if !ok {
		return false, nil
	}
	f.r += n
	if err := rw.write(out); err != nil {
		return true, err
	}
	if err := f.emit(j); err != nil {
		return true, err
	}
	rw.stack.pop([]byte("textarea"))
	return true, f.emit(end)
}

// rawEndTag returns the offset in b of the first end tag of the raw-text
// element name ("</name" and a space, '/' or '>', any case), or -1.
func rawEndTag(b []byte, name string) int {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("</"))
		if j < 0 {
			return -1
		}
		i += j
		k := i + 2 + len(name)
		if k < len(b) && asciiEqualFold(b[i+2:k], name) {
			switch b[k] {
			case ' ', '\n', '\r', '\t', '\f', '/', '>':
				return i
			}
		}
		i += 2
	}
}

// emit writes the next n unread bytes to the output.
func (f *feed) emit(n int) error {
	if n == 0 {
		return nil
	}
	err := f.rw.write(f.buf[f.r : f.r+n])
	f.r += n
	return err
}

// copyRest copies the rest of the document to the output, as Rewrite does
// once a token is too big, and leaves the tokenizer at the end.
func (f *feed) copyRest() error {
	f.off = true
	for {
		if err := f.emit(f.w - f.r); err != nil {
			return err
		}
		if !f.fill() {
			if f.r < f.w {
				continue // the buffer was full
			}
			if f.err == io.EOF {
				return nil
			}
			return f.err
		}
	}
}

// skippable reports whether skip would handle a tag named name (atom a)
// itself.
func (r *rewriter) skippable(name []byte, a atom.Atom, end bool) bool {
	if bytes.IndexByte(name, 0) >= 0 {
		return false
	}
	if end {
		return true
	}
	switch a {
	case atom.Meta, atom.Svg, atom.Math, atom.Textarea,
		atom.Iframe, atom.Noembed, atom.Noframes, atom.Noscript, atom.Plaintext,
		atom.Script, atom.Style, atom.Title, atom.Xmp:
		return false
	}
	return true
}

// skipField handles an <input>, <select> or <textarea> start tag raw (atom
// a) as startTag would, and returns what to write. It reads the tag's
// attributes itself unless scanned (skip read them, with raw marks, while
// finding the tag's end). It reports false for any other tag, or one whose
// attribute values need decoding.
func (r *rewriter) skipField(raw []byte, a atom.Atom, end, scanned bool) ([]byte, bool) {
	if end {
		return nil, false
	}
	if a != atom.Input && a != atom.Select && a != atom.Textarea {
		return nil, false
	}
	if bytes.IndexByte(raw, '&') >= 0 || bytes.IndexByte(raw, '\r') >= 0 || bytes.IndexByte(raw, 0) >= 0 {
		return nil, false
	}
	if !scanned || !r.in.rawMarks {
		r.beginField(a)
		if _, ok := scanTag(raw, 1, r); !ok {
			return nil, false
		}
	}
	r.stack.beforeStart(&r.cur)
	var mark string
	if r.in.rawMarks {
		// rawmark.go: the mark from the values scanTag kept.
		mark = r.in.raw.mark(fieldIndex(a), &r.vals, false)
	} else {
		mark = r.mark()
	}
	if mark != "" && !r.hasMark(mark) {
		raw = r.spliceClass(raw, mark, r.nameEnd, r.class)
	}
	if a != atom.Input {
		r.stack.push(&r.cur)
	}
	return raw, true
}

// beginField readies the rewriter for scanTag to read the attributes of a
// field tag (atom a).
func (r *rewriter) beginField(a atom.Atom) {
	r.cur = html.Node{Type: html.ElementNode, DataAtom: a, Data: a.String(), Attr: r.cur.Attr[:0]}
	r.class = rawAttr{key: -1, eq: -1}
	if r.in.rawMarks {
		r.vals.reset()
	}
}

// rawFieldAt returns the atom of the tag whose name begins at b[i] if
// marks are raw and it is an input, select or textarea start tag whose
// name ends within b, or 0.
func (r *rewriter) rawFieldAt(b []byte, i int, endTag bool) atom.Atom {
	if endTag || !r.in.rawMarks {
		return 0
	}
	end := i
	for end < len(b) && tagBytes[b[end]]&(bWS|bSlash|bGT) == 0 {
		end++
	}
	if end == len(b) {
		return 0
	}
	switch name := b[i:end]; {
	case asciiEqualFold(name, "input"):
		return atom.Input
	case asciiEqualFold(name, "select"):
		return atom.Select
	case asciiEqualFold(name, "textarea"):
		return atom.Textarea
	}
	return 0
}

// skipTag reports whether a tag named name (lower case) can be copied
// without the tokenizer, and if so, applies it to the stack as startTag or
// token would.
func (r *rewriter) skipTag(name []byte, a atom.Atom, end bool) bool {
	if bytes.IndexByte(name, 0) >= 0 {
		return false
	}
	if end {
		r.stack.pop(name)
		return true
	}
	switch a {
	case atom.Input, atom.Textarea, atom.Select, atom.Meta, atom.Svg, atom.Math,
		atom.Iframe, atom.Noembed, atom.Noframes, atom.Noscript, atom.Plaintext,
		atom.Script, atom.Style, atom.Title, atom.Xmp:
		return false
	}
	r.cur = html.Node{Type: html.ElementNode, DataAtom: a, Attr: r.cur.Attr[:0]}
	if a != 0 {
		r.cur.Data = a.String()
	} else {
		r.cur.Data = string(name)
	}
	r.stack.beforeStart(&r.cur)
	if !isVoid(a) {
		r.stack.push(&r.cur)
	}
	return true
}

// rawElements are the start tags after which the tokenizer reads raw text
// (golang.org/x/net/html's readStartTag), unless told otherwise in foreign
// content.
var rawElements = map[atom.Atom]bool{
	atom.Iframe: true, atom.Noembed: true, atom.Noframes: true, atom.Noscript: true,
	atom.Plaintext: true, atom.Script: true, atom.Style: true, atom.Textarea: true,
	atom.Title: true, atom.Xmp: true,
}

// rawTextEnd guesses the end of the raw text of element name at the start
// of b and of the end tag after it; -1 if not in b. <plaintext> has none. In
// a script, "<!--" may hide an end tag (WHATWG 13.2.5.4 ff.), so a script
// with one is left to the tokenizer.
func rawTextEnd(b []byte, name string) int {
	if name == "plaintext" {
		return -1
	}
	i := rawEndTag(b, name)
	if i < 0 || name == "script" && bytes.Contains(b[:i], []byte("<!--")) {
		return -1
	}
	if n, ok := tagEnd(b[i:], 2); ok {
		return i + n
	}
	return -1
}

// commentEnd guesses the end of the "<!--" comment b starts with: after
// "<!-->", "<!--->", "-->" or "--!>", whichever comes first; 0 if none.
func commentEnd(b []byte) int {
	if len(b) > 4 && b[4] == '>' {
		return 5
	}
	if len(b) > 5 && b[4] == '-' && b[5] == '>' {
		return 6
	}
	end := 0
	if i := bytes.Index(b[4:], []byte("-->")); i >= 0 {
		end = 4 + i + 3
	}
	if i := bytes.Index(b[4:], []byte("--!>")); i >= 0 && (end == 0 || 4+i+4 < end) {
		end = 4 + i + 4
	}
	return end
}

func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// tagNameAt returns the lower-case name of the tag in b whose name starts
// at b[i]. It reuses a buffer of the rewriter's.
func tagNameAt(b []byte, i int) []byte {
	end := i
	for end < len(b) && tagBytes[b[end]]&(bWS|bSlash|bGT) == 0 {
		end++
	}
	return lowerName(b[i:end])
}

// lowerName returns name in lower case, in place when it already is.
func lowerName(name []byte) []byte {
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			out := make([]byte, len(name))
			copy(out, name[:i])
			for j := i; j < len(name); j++ {
				c := name[j]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				out[j] = c
			}
			return out
		}
	}
	return name
}

// tagEnd returns the offset in b just past the '>' that ends the tag at
// b[0] whose name starts at b[i] (a letter), reading it as
// golang.org/x/net/html's Tokenizer does (readTag, readTagName,
// readTagAttrKey, readTagAttrVal); ok is false if b ends first.
func tagEnd(b []byte, i int) (end int, ok bool) {
	return scanTag(b, i, nil)
}

// scanTag is tagEnd, also appending to r.cur.Attr, if r is not nil, the
// tag's attributes as the Tokenizer's TagAttr returns them (names in lower
// case, the first of repeated names kept, empty names dropped) when their
// values need no decoding: the caller checks that the tag has no '&', '\r'
// or NUL. It also sets r.nameEnd and r.class as scanClass finds them, once
// r.class.key was set to -1.
func scanTag(b []byte, i int, r *rewriter) (end int, ok bool) {
	i++ // the name's first byte
	// readTagName.
	for {
		if i >= len(b) {
			return 0, false
		}
		c := b[i]
		i++
		cl := tagBytes[c]
		if cl&(bWS|bSlash|bGT) == 0 {
			continue
		}
		if cl&bWS == 0 {
			i-- // '/' or '>' is not part of the name
		}
		if r != nil {
			r.nameEnd = i
			if cl&bWS != 0 {
				r.nameEnd = i - 1
			}
		}
		break
	}
	if i = skipWS(b, i); i >= len(b) {
		return 0, false
	}
	for {
		if i >= len(b) {
			return 0, false
		}
		if b[i] == '>' {
			return i + 1, true
		}
		// readTagAttrKey: a leading '=' belongs to the name.
		start := i
		for {
			if i >= len(b) {
				return 0, false
			}
			c := b[i]
			i++
			if tagBytes[c]&(bWS|bSlash|bGT|bEq) == 0 || c == '=' && i == start+1 {
				continue
			}
			i--
			break
		}
		key := b[start:i]
		a := rawAttr{key: start, keyEnd: i, eq: -1}
		var val []byte
		// readTagAttrVal.
		if i = skipWS(b, i); i >= len(b) {
			return 0, false
		}
		switch c := b[i]; c {
		case '/':
			i++
		case '=':
			a.eq = i
			if i = skipWS(b, i+1); i >= len(b) {
				return 0, false
			}
			switch q := b[i]; q {
			case '>':
				a.valStart, a.valEnd = i, i
			case '"', '\'':
				j := bytes.IndexByte(b[i+1:], q)
				if j < 0 {
					return 0, false
				}
				val = b[i+1 : i+1+j]
				a.quote, a.valStart, a.valEnd = q, i+1, i+1+j
				i += 1 + j + 1
			default:
				vs := i
				for {
					i++
					if i >= len(b) {
						return 0, false
					}
					if c := b[i]; isWS(c) {
						val = b[vs:i]
						i++
						break
					} else if c == '>' {
						val = b[vs:i]
						break
					}
				}
				a.valStart, a.valEnd = vs, vs+len(val)
			}
		}
		if r != nil && len(key) > 0 {
			if r.class.key < 0 && asciiEqualFold(key, "class") {
				r.class = a
			}
			if r.in.rawMarks {
				r.vals.keep(r.in.raw, key, val)
			} else {
				r.appendAttr(key, val)
			}
		}
		i = skipWS(b, i)
	}
}

// appendAttr appends key (lowered) and val to r.cur.Attr unless key is
// already there.
func (r *rewriter) appendAttr(key, val []byte) {
	k := lowerName(key)
	name := atom.Lookup(k).String()
	if name == "" {
		name = r.strs.string(k)
	}
	for _, a := range r.cur.Attr {
		if a.Key == name {
			return
		}
	}
	r.cur.Attr = append(r.cur.Attr, html.Attribute{Key: name, Val: r.strs.string(val)})
}

// strArenaChunk is the size of a strArena's chunks: small enough that the
// chunks an ancestor's attribute keeps alive stay small, large enough that a
// page's form fields cost a few allocations instead of one per attribute.
const strArenaChunk = 2 << 10

// strArena makes strings of byte slices, copying them into shared chunks
// rather than allocating one string each. A string it returned stays valid
// for good: a chunk is only ever appended to (strings.Builder never
// changes bytes it has written), and a full one is left to the garbage
// collector.
type strArena struct{ b strings.Builder }

func (a *strArena) string(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if len(p) > strArenaChunk/4 {
		return string(p)
	}
	if a.b.Cap()-a.b.Len() < len(p) {
		a.b = strings.Builder{}
		a.b.Grow(strArenaChunk)
	}
	n := a.b.Len()
	a.b.Write(p)
	return a.b.String()[n:]
}
