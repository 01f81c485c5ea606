package injector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/loupe-dev/loupe/injector/csp"
)

// Where Rewrite stands with the recorder tag.
const (
	// tagPending: only doctypes, comments, whitespace and <html> so far.
	tagPending = iota
	// tagAfterHead: <head> was copied; the tag goes after a leading
	// charset <meta>, or else before the next element.
	tagAfterHead
	// tagDone: the tag was written.
	tagDone
)

// rewriter is the state of one Rewrite call. Rewriters are pooled because the
// open-element stack is a fixed array of nodes.
type rewriter struct {
	in    *Injector
	z     *html.Tokenizer
	dst   io.Writer
	tag   []byte
	csp   csp.Recorder // Page.CSP; zero: meta policies untouched
	state int
	first bool // no token read yet (a leading BOM is not content)
	// unclosed: a comment cut short was written before the tag; anything
	// written after it would be inside it.
	unclosed bool
	stack    stack
	feed     feed      // what the tokenizer reads; see skip.go
	rawNext  string    // the start tag just handled makes the next token raw text
	cur      html.Node // the start tag being looked at
	out      []byte    // scratch for rewritten start tags
	name     []byte    // scratch for tag names
	strs     strArena  // attribute names and values skipField reads
	vals     rawVals   // the values of cur's attributes that mark reads (rawmark.go)
	// nameEnd and class: where scanTag found the end of the tag name and
	// the first class attribute (see scanClass).
	nameEnd int
	class   rawAttr
}

var rewriters = sync.Pool{New: func() any { return new(rewriter) }}

// Rewrite copies the HTML document from src to dst, inserting the recorder
// tag once and marking form fields. It streams: apart from a fixed stack of
// open elements and a 32 KiB read-ahead it holds one token at a time, at
// most maxBuf bytes.
//
// Where a token is too big, or src fails with an error other than io.EOF,
// the rest of the input is copied verbatim (the page is served as the origin
// sent it, perhaps without the tag). Rewrite returns an error only when
// reading src or writing dst fails. It writes dst token by token; callers
// that want fewer, larger writes wrap dst in a bufio.Writer.
func (in *Injector) Rewrite(dst io.Writer, src io.Reader, p Page) error {
	r := rewriters.Get().(*rewriter)
	defer func() {
		r.reset()
		rewriters.Put(r)
	}()
	r.in, r.dst, r.tag, r.csp = in, dst, in.ScriptTag(p), p.CSP
	r.state, r.first, r.unclosed = tagPending, true, false
	r.stack.reset()
	r.rawNext = ""
	r.feed.reset(r, src)
	r.z = html.NewTokenizer(&r.feed)
	r.z.SetMaxBuf(in.maxBuf)
	return r.run()
}

// reset drops what the last Rewrite referenced, keeping buffers.
func (r *rewriter) reset() {
	r.stack.reset()
	clear(r.cur.Attr)
	r.cur = html.Node{Attr: r.cur.Attr[:0]}
	r.in, r.z, r.dst, r.tag = nil, nil, nil, nil
	r.feed.reset(nil, nil)
	r.out = r.out[:0]
	r.strs = strArena{}
}

func (r *rewriter) run() error {
	z := r.z
	skip := r.in.skip && r.in.trace == nil
	for {
		tt := z.Next()
		if r.in.trace != nil {
			r.in.trace(tt, z)
		}
		if tt == html.ErrorToken {
			return r.finish()
		}
		if err := r.token(tt); err != nil {
			return err
		}
		r.first = false
		// The tokenizer only knows HTML's raw-text and CDATA rules; in
		// <svg> and <math> the tree builder decides (WHATWG 13.2.6.5), so
		// mirror what html.Parse tells its tokenizer.
		z.AllowCDATA(r.stack.inForeign())
		if r.rawNext != "" {
			r.feed.raw, r.rawNext = r.rawNext, ""
		} else if len(z.Buffered()) == 0 {
			r.feed.aligned = true
			r.feed.boundary = skip && r.state == tagDone && !r.stack.inForeign()
		}
	}
}

// finish handles the tokenizer's error: at io.EOF the document is complete;
// otherwise the rest of src is copied as it is.
func (r *rewriter) finish() error {
	z := r.z
	err := z.Err()
	// At EOF the tag goes before an unfinished tag ("<hea"), not into it.
	// After <head> it goes before whatever comes next, even a token too
	// big to read. Otherwise, before <head>, it could land ahead of a
	// doctype (quirks mode), so the page goes without it.
	if r.state != tagDone && !r.unclosed && (err == io.EOF || r.state == tagAfterHead) {
		if err := r.insert(); err != nil {
			return err
		}
	}
	// Raw holds the bytes of a token cut short (by EOF inside a tag, or by
	// the buffer limit); they go out unchanged.
	if err := r.write(z.Raw()); err != nil {
		return err
	}
	if err == io.EOF {
		return nil
	}
	if err := r.write(z.Buffered()); err != nil {
		return err
	}
	if !errors.Is(err, html.ErrBufferExceeded) {
		return fmt.Errorf("read html: %w", err)
	}
	// The feed holds what the tokenizer has not read yet; it must not
	// write to dst itself while io.Copy does.
	r.feed.aligned, r.feed.boundary, r.feed.off = false, false, true
	if _, err := io.Copy(r.dst, &r.feed); err != nil {
		return fmt.Errorf("copy html: %w", err)
	}
	return nil
}

func (r *rewriter) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := r.dst.Write(b); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

// insert writes the recorder tag.
func (r *rewriter) insert() error {
	r.state = tagDone
	return r.write(r.tag)
}

// token copies or rewrites one token, inserting the recorder tag before it
// when it is the first content of the document.
func (r *rewriter) token(tt html.TokenType) error {
	z := r.z
	switch tt {
	case html.DoctypeToken, html.CommentToken:
		// One cut short by EOF or the buffer limit has no '>', and a tag
		// written after it would become part of it. Cut by EOF (shorter
		// than the limit), the tag goes before it; cut by the limit, it
		// goes where finish would put it. The tokenizer reports neither
		// error until the next token.
		raw := z.Raw()
		if r.state != tagDone && cutShort(raw) {
			if len(raw) < r.in.maxBuf || r.state == tagAfterHead {
				if err := r.insert(); err != nil {
					return err
				}
			} else {
				r.unclosed = true
			}
		}
		return r.write(raw)
	case html.TextToken:
		if r.state != tagDone && !isSpace(z.Raw(), r.first) {
			if err := r.insert(); err != nil {
				return err
			}
		}
		return r.write(z.Raw())
	case html.EndTagToken:
		if r.state != tagDone {
			if err := r.insert(); err != nil {
				return err
			}
		}
		r.stack.pop(r.tagName(2))
		return r.write(z.Raw())
	}
	return r.startTag(tt == html.SelfClosingTagToken)
}

// cutShort reports whether a doctype or comment token lacks its end, so
// that anything written after it would become part of it. A "<!--" comment
// ends only at "-->", "--!>" or the abrupt "<!-->" and "<!--->" (HTML's
// comment states): "<!--0>" runs to the end of the input. Doctypes and
// bogus comments ("<!x>", "<?x>") end at the first '>'.
func cutShort(raw []byte) bool {
	if bytes.HasPrefix(raw, []byte("<!--")) {
		switch {
		case bytes.Equal(raw, []byte("<!-->")), bytes.Equal(raw, []byte("<!--->")),
			len(raw) >= 7 && bytes.HasSuffix(raw, []byte("-->")), bytes.HasSuffix(raw, []byte("--!>")):
			return false
		}
		return true
	}
	return !bytes.HasSuffix(raw, []byte(">"))
}

// startTag handles a start tag: placing the recorder tag around it, keeping
// the open-element stack and marking form fields.
func (r *rewriter) startTag(selfClosing bool) error {
	z := r.z
	name := r.tagName(1)
	a := atom.Lookup(name)
	insertAfter := false
	switch r.state {
	case tagPending:
		switch a {
		case atom.Html:
		case atom.Head:
			r.state = tagAfterHead
		case atom.Meta:
			// Without a <head> tag, a leading charset <meta> still stays
			// first: the encoding prescan only looks at the first 1024
			// bytes (WHATWG 13.2.3.2) and the tag can be longer than that.
			insertAfter = true
		default:
			if err := r.insert(); err != nil {
				return err
			}
		}
	case tagAfterHead:
		if a == atom.Meta {
			insertAfter = true
		} else if err := r.insert(); err != nil {
			return err
		}
	}

	// Build the element as cascadia will see it. Attributes are only
	// needed for elements that stay on the stack, fields to mark and the
	// charset check.
	field := a == atom.Input || a == atom.Textarea || a == atom.Select
	void := isVoid(a)
	r.cur = html.Node{Type: html.ElementNode, DataAtom: a, Attr: r.cur.Attr[:0]}
	if a != 0 {
		r.cur.Data = a.String()
	} else {
		r.cur.Data = string(name)
	}
	metaCSP := a == atom.Meta && r.csp != (csp.Recorder{})
	if field || insertAfter || (!void && r.in.ancestorAttrs) || metaCSP {
		r.cur.Attr = readAttrs(z, r.cur.Attr)
	}
	if insertAfter && !isCharsetMeta(r.cur.Attr) {
		insertAfter = false
		if err := r.insert(); err != nil {
			return err
		}
	}

	r.stack.beforeStart(&r.cur)
	// An element opened in foreign content, or <svg> or <math> itself, is
	// not HTML: an <input> there is no field, and its <title> or <style>
	// holds markup rather than raw text.
	foreign := r.stack.inForeign() || a == atom.Svg || a == atom.Math
	raw := z.Raw()
	if field && !foreign {
		if mark := r.mark(); mark != "" {
			raw = r.addClass(raw, mark)
		}
	}
	if metaCSP && !foreign {
		raw = r.adjustMetaCSP(raw)
	}
	if foreign {
		z.NextIsNotRawText()
	} else if rawElements[a] {
		r.rawNext = a.String()
	}
	if !void && !(foreign && selfClosing) {
		r.stack.push(&r.cur)
	}
	if err := r.write(raw); err != nil {
		return err
	}
	if insertAfter {
		return r.insert()
	}
	return nil
}

// mark returns the class that r.cur, a form field, gets (rawKeys.mark).
func (r *rewriter) mark() string {
	n := &r.cur
	r.vals.keepAttrs(r.in.raw, n.Attr)
	return r.in.raw.mark(fieldIndex(n.DataAtom), &r.vals, r.slowBlocks())
}

// slowBlocks reports whether a block selector without a fast form matches
// r.cur, with the open elements as its ancestors.
func (r *rewriter) slowBlocks() bool {
	if len(r.in.slow) == 0 {
		return false
	}
	n := &r.cur
	n.Parent = r.stack.top()
	defer func() { n.Parent = nil }()
	for _, g := range r.in.slow {
		if g.Match(n) {
			return true
		}
	}
	return false
}

// tagName returns the lower-case name of the current tag, which starts at
// Raw()[off]. It reads Raw rather than calling TagName, which allocates; a
// name holding NUL (replaced by U+FFFD, WHATWG 13.2.5.8) is left to TagName.
func (r *rewriter) tagName(off int) []byte {
	raw := r.z.Raw()
	end := off
	for end < len(raw) && !isWS(raw[end]) && raw[end] != '/' && raw[end] != '>' {
		end++
	}
	if bytes.IndexByte(raw[off:end], 0) >= 0 {
		name, _ := r.z.TagName()
		return name
	}
	r.name = r.name[:0]
	for _, c := range raw[off:end] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		r.name = append(r.name, c)
	}
	return r.name
}

// readAttrs appends the tag's attributes to attr[:0]. The tokenizer already
// drops repeated names, keeping the first as browsers do.
func readAttrs(z *html.Tokenizer, attr []html.Attribute) []html.Attribute {
	attr = attr[:0]
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		if k == nil {
			break
		}
		key := atom.Lookup(k).String()
		if key == "" {
			key = string(k)
		}
		attr = append(attr, html.Attribute{Key: key, Val: string(v)})
	}
	return attr
}

func attrVal(attr []html.Attribute, key string) (string, bool) {
	for _, a := range attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// isCharsetMeta reports whether a <meta> declares the encoding.
func isCharsetMeta(attr []html.Attribute) bool {
	if _, ok := attrVal(attr, "charset"); ok {
		return true
	}
	v, _ := attrVal(attr, "http-equiv")
	return strings.EqualFold(v, "content-type")
}

// isSpace reports whether text is only HTML whitespace, which does not end
// the document's preamble. At the very start a byte order mark counts as
// space: moving it would lose the encoding it declares.
func isSpace(b []byte, first bool) bool {
	if first {
		b = bytes.TrimPrefix(b, []byte("\ufeff"))
	}
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\f', '\r':
		default:
			return false
		}
	}
	return true
}

// isVoid reports whether elements a never have an end tag, so they never
// go on the stack. (A switch: it runs for every start tag.)
func isVoid(a atom.Atom) bool {
	switch a {
	case atom.Area, atom.Base, atom.Basefont, atom.Bgsound,
		atom.Br, atom.Col, atom.Embed, atom.Frame,
		atom.Hr, atom.Image, atom.Img, atom.Input,
		atom.Keygen, atom.Link, atom.Meta, atom.Param,
		atom.Source, atom.Track, atom.Wbr:
		return true
	}
	return false
}
