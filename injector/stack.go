package injector

import (
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

const (
	// maxDepth bounds the open-element stack. Deeper start tags are
	// counted, not kept: selectors then see their nearest 256 ancestors.
	maxDepth = 256
	// maxStackAttrBytes bounds the attribute bytes kept for ancestors.
	// Past it an element keeps only a short id and class.
	maxStackAttrBytes = 32 << 10
	// maxKeptAttr is the longest id or class kept past the budget.
	maxKeptAttr = 256
)

// stack approximates the HTML tree builder's stack of open elements so that
// cascadia can match ancestor selectors ("form.payment input") against a
// field. It pushes start tags, pops to the matching end tag, and applies the
// few implied end tags that keep real pages shallow (<p>, <li>, <td>, …).
// It does not reparent misnested tags; a selector may then see an ancestor
// the browser would have closed, which errs towards blocking.
//
// nodes[0] is the document; nodes[i].Parent is &nodes[i-1]. The array is
// fixed so those pointers stay valid.
type stack struct {
	nodes   [maxDepth + 1]html.Node
	foreign [maxDepth + 1]bool // element is in the SVG or MathML namespace
	size    [maxDepth + 1]int  // attribute bytes kept for the element
	n       int                // open elements, nodes[1..n]
	dropped int                // start tags not kept because the stack was full
	bytes   int                // attribute bytes kept, all elements
}

func (s *stack) reset() {
	for i := 1; i <= s.n; i++ {
		clear(s.nodes[i].Attr)
	}
	s.n, s.dropped, s.bytes = 0, 0, 0
	s.nodes[0] = html.Node{Type: html.DocumentNode}
}

// top returns the current node: the innermost open element, or the document.
func (s *stack) top() *html.Node {
	return &s.nodes[s.n]
}

// inForeign reports whether the current node is SVG or MathML content that
// is not an HTML integration point (WHATWG 13.2.6.5): there <![CDATA[ is
// recognised and <style> or <title> hold markup.
func (s *stack) inForeign() bool {
	if s.n == 0 || !s.foreign[s.n] {
		return false
	}
	switch s.nodes[s.n].DataAtom {
	case atom.Foreignobject, atom.Desc, atom.Title,
		atom.Mi, atom.Mo, atom.Mn, atom.Ms, atom.Mtext, atom.AnnotationXml:
		return false
	}
	return true
}

func (s *stack) topIs(as ...atom.Atom) bool {
	if s.n == 0 {
		return false
	}
	for _, a := range as {
		if s.nodes[s.n].DataAtom == a {
			return true
		}
	}
	return false
}

func (s *stack) popTop() {
	if s.n > 0 {
		clear(s.nodes[s.n].Attr)
		s.bytes -= s.size[s.n]
		s.n--
	}
}

// truncate pops elements until n remain.
func (s *stack) truncate(n int) {
	for s.n > n {
		s.popTop()
	}
}

// beforeStart applies the end tags the start tag cur implies.
func (s *stack) beforeStart(cur *html.Node) {
	if s.inForeign() {
		if breaksOut(cur) {
			for s.inForeign() {
				s.popTop()
			}
		}
		return
	}
	switch cur.DataAtom {
	case atom.Body:
		for i := s.n; i > 0; i-- {
			if s.nodes[i].DataAtom == atom.Head {
				s.truncate(i - 1)
				break
			}
		}
	case atom.Li:
		if s.topIs(atom.Li) {
			s.popTop()
		}
	case atom.Dd, atom.Dt:
		if s.topIs(atom.Dd, atom.Dt) {
			s.popTop()
		}
	case atom.Option:
		if s.topIs(atom.Option) {
			s.popTop()
		}
	case atom.Optgroup:
		if s.topIs(atom.Option) {
			s.popTop()
		}
		if s.topIs(atom.Optgroup) {
			s.popTop()
		}
	case atom.Tr:
		if s.topIs(atom.Td, atom.Th) {
			s.popTop()
		}
		if s.topIs(atom.Tr) {
			s.popTop()
		}
	case atom.Td, atom.Th:
		if s.topIs(atom.Td, atom.Th) {
			s.popTop()
		}
	default:
		if s.topIs(atom.P) && closesP[cur.DataAtom] {
			s.popTop()
		}
	}
}

// push opens cur, copying it: cur is reused for the next tag.
func (s *stack) push(cur *html.Node) {
	if s.n == maxDepth {
		s.dropped++
		return
	}
	foreign := cur.DataAtom == atom.Svg || cur.DataAtom == atom.Math || s.inForeign()
	s.n++
	e := &s.nodes[s.n]
	attr := e.Attr[:0]
	size := 0
	for _, a := range cur.Attr {
		size += len(a.Key) + len(a.Val)
	}
	if s.bytes+size <= maxStackAttrBytes {
		attr = append(attr, cur.Attr...)
	} else {
		size = 0
		for _, a := range cur.Attr {
			if (a.Key == "id" || a.Key == "class") && len(a.Val) <= maxKeptAttr {
				attr = append(attr, a)
				size += len(a.Key) + len(a.Val)
			}
		}
	}
	*e = html.Node{
		Parent:   &s.nodes[s.n-1],
		Type:     html.ElementNode,
		DataAtom: cur.DataAtom,
		Data:     cur.Data,
		Attr:     attr,
	}
	s.foreign[s.n] = foreign
	s.size[s.n] = size
	s.bytes += size
}

// pop closes the innermost open element named name, and all inside it. An
// end tag with no open element of its name is ignored, as browsers mostly do.
func (s *stack) pop(name []byte) {
	if s.dropped > 0 {
		s.dropped--
		return
	}
	for i := s.n; i > 0; i-- {
		if s.nodes[i].Data == string(name) {
			s.truncate(i - 1)
			return
		}
	}
}

// breaksOut reports whether a start tag ends foreign content (WHATWG
// 13.2.6.5, "A start tag whose tag name is one of …").
func breaksOut(n *html.Node) bool {
	if n.DataAtom == atom.Font {
		for _, a := range n.Attr {
			if a.Key == "color" || a.Key == "face" || a.Key == "size" {
				return true
			}
		}
		return false
	}
	return breakout[n.DataAtom]
}

var breakout = map[atom.Atom]bool{
	atom.B: true, atom.Big: true, atom.Blockquote: true, atom.Body: true,
	atom.Br: true, atom.Center: true, atom.Code: true, atom.Dd: true,
	atom.Div: true, atom.Dl: true, atom.Dt: true, atom.Em: true,
	atom.Embed: true, atom.H1: true, atom.H2: true, atom.H3: true,
	atom.H4: true, atom.H5: true, atom.H6: true, atom.Head: true,
	atom.Hr: true, atom.I: true, atom.Img: true, atom.Li: true,
	atom.Listing: true, atom.Menu: true, atom.Meta: true, atom.Nobr: true,
	atom.Ol: true, atom.P: true, atom.Pre: true, atom.Ruby: true,
	atom.S: true, atom.Small: true, atom.Span: true, atom.Strong: true,
	atom.Strike: true, atom.Sub: true, atom.Sup: true, atom.Table: true,
	atom.Tt: true, atom.U: true, atom.Ul: true, atom.Var: true,
}

// closesP lists start tags that close an open <p> (WHATWG 13.2.6.4.7).
var closesP = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true,
	atom.Blockquote: true, atom.Center: true, atom.Details: true,
	atom.Dialog: true, atom.Dir: true, atom.Div: true, atom.Dl: true,
	atom.Fieldset: true, atom.Figcaption: true, atom.Figure: true,
	atom.Footer: true, atom.Form: true, atom.H1: true, atom.H2: true,
	atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true,
	atom.Header: true, atom.Hgroup: true, atom.Hr: true, atom.Main: true,
	atom.Menu: true, atom.Nav: true, atom.Ol: true, atom.P: true,
	atom.Pre: true, atom.Section: true, atom.Summary: true, atom.Table: true,
	atom.Ul: true,
}
