package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// rrweb's event and node numbering (@rrweb/types 2.1: EventType,
// IncrementalSource, NodeType), compared as JSON numbers.
const (
	eventFullSnapshot = "2"
	eventIncremental  = "3"
	eventMeta         = "4"

	sourceMutation          = "0"
	sourceStyleSheetRule    = "8"
	sourceFont              = "10"
	sourceStyleDeclaration  = "13"
	sourceAdoptedStyleSheet = "15"

	nodeElement = "2"
	nodeText    = "3"
)

// nodeKind is what the rewriter remembers of a node between events: enough
// to decide whether a later attribute change names an asset.
type nodeKind uint8

const (
	kindOther     nodeKind = iota + 1 // any other element or node
	kindLink                          // <link>; see walker.links
	kindSVGRef                        // SVG <image>, <use>, <feImage>: href is an asset
	kindNoAsset                       // <script>, <iframe>, <frame>: src is never an asset
	kindAnchor                        // <a>, <area>: href is a navigation
	kindStyleText                     // text node of a <style>: its text is CSS
)

// linkInfo is the state of a <link> element that decides whether its href
// is an asset, and the href itself, the base of its stylesheet's rules.
type linkInfo struct {
	rel, as string
	href    *url.URL
}

// assetExts are the extensions by which an href of an element the rewriter
// has not seen (an attribute change of a node added before the events it
// was given) is taken for an asset.
var assetExts = map[string]bool{
	".css": true, ".woff2": true, ".woff": true, ".ttf": true, ".otf": true,
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true,
	".avif": true, ".svg": true, ".ico": true,
}

// AssetURLs returns the absolute, normalized URLs of the stylesheets,
// fonts and images that events, an rrweb event array as JSON, reference —
// the places RewriteEvents rewrites — without duplicates, in order of
// first appearance. Scripts, frames and links (<a href>) are not assets.
//
// It is on the collector's path for every batch, so it reads events once,
// in place, skipping the members the walker never reads and walking a full
// snapshot's node tree as it reads it (lean.go). RewriteEvents skips each
// event none of whose bytes spell "http", "url" or the like (mayReference);
// AssetURLs skips only a whole batch of them, so it may also find, say, an
// attribute change to a relative href that RewriteEvents leaves alone.
func AssetURLs(events []byte) ([]string, error) {
	var urls []string
	seen := make(map[string]bool)
	collect := func(abs string) (string, bool) {
		if !seen[abs] {
			seen[abs] = true
			urls = append(urls, abs)
		}
		return "", false
	}
	if !mayReference(events) { // none of its events can: most small batches
		return nil, validArray(events)
	}
	w := newWalker(collect)
	w.lean, w.src = true, events // collect maps nothing, so no event is re-encoded
	if err := w.walk(bytes.NewBuffer(events), func(json.RawMessage, any) error { return nil }); err != nil {
		return nil, err
	}
	return urls, nil
}

// validArray returns the error walk would return for events, which holds
// no reference: nil if it is one JSON array.
func validArray(events []byte) error {
	v := jsontext.Value(events)
	if !v.IsValid(jsonOptions...) {
		return errors.New("read events: invalid JSON")
	}
	if v.Kind() != '[' {
		return errors.New("read events: not a JSON array")
	}
	return nil
}

// RewriteEvents copies src, an rrweb event array as JSON, to dst with
// every asset URL that m maps replaced by m's URL:
//
//   - element attributes src (not of <script>, <iframe>, <frame>),
//     srcset (each candidate), poster and background;
//   - href and xlink:href of <link rel=stylesheet|icon|preload…> and of
//     SVG <image>, <use> and <feImage> (never of <a>);
//   - the CSS of style attributes, of rrweb's inlined stylesheets
//     (_cssText), of <style> text, of stylesheet rule insertions,
//     style declarations and adopted stylesheets, and FontFace sources.
//
// The same places are read in full snapshots, mutation additions,
// attribute and text changes. Relative references are resolved against
// the page (the latest Meta event's href) or, for a <link>'s rules, its
// stylesheet. Unmapped references stay exactly as recorded.
//
// Events are decoded and written one at a time; an event with nothing
// rewritten is copied byte for byte, a rewritten one is re-encoded (its
// numbers exactly, its keys possibly reordered). On malformed JSON it
// returns an error, having written part of the array.
func RewriteEvents(dst io.Writer, src io.Reader, m Mapper) error {
	var (
		buf   bytes.Buffer
		first = true
	)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	emit := func(raw json.RawMessage, ev any) error {
		buf.Reset()
		if first {
			buf.WriteByte('[')
			first = false
		} else {
			buf.WriteByte(',')
		}
		if ev == nil {
			buf.Write(raw)
		} else {
			if err := enc.Encode(ev); err != nil {
				return fmt.Errorf("encode event: %w", err)
			}
			buf.Truncate(buf.Len() - 1) // Encode's newline
		}
		_, err := dst.Write(buf.Bytes())
		return err
	}
	if err := walkEvents(src, m, emit); err != nil {
		return err
	}
	if first {
		_, err := io.WriteString(dst, "[]")
		return err
	}
	_, err := io.WriteString(dst, "]")
	return err
}

// walkEvents decodes the event array from src one event at a time, offers
// each asset reference to m and calls emit with the raw event and, when m
// mapped something in it, the rewritten event (nil otherwise).
func walkEvents(src io.Reader, m Mapper, emit func(raw json.RawMessage, ev any) error) error {
	return newWalker(m).walk(src, emit)
}

func newWalker(m Mapper) *walker {
	return &walker{m: m, nodes: make(map[string]nodeKind), links: make(map[string]*linkInfo)}
}

func (w *walker) walk(src io.Reader, emit func(raw json.RawMessage, ev any) error) error {
	dec := jsontext.NewDecoder(src, jsonOptions...)
	tok, err := dec.ReadToken()
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	if tok.Kind() != '[' {
		return errors.New("read events: not a JSON array")
	}
	for dec.PeekKind() != ']' {
		if w.lean {
			// One pass: the event is decoded where it lies, its members
			// the walker never reads skipped, and emit is not called.
			if err := w.leanEvent(dec); err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			continue
		}
		raw, err := dec.ReadValue() // valid until the next read
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		ev, err := w.event(json.RawMessage(raw))
		if err != nil {
			return err
		}
		if err := emit(json.RawMessage(raw), ev); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errors.New("read events: data after the array")
	}
	return nil
}

// jsonOptions accept what encoding/json accepts: rrweb records whatever
// strings the page holds.
var jsonOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// decodeValue decodes the next value of dec as encoding/json does into an
// any with UseNumber — maps, slices, strings, json.Number, bools, nil —
// without its reflection, which costs three times as much.
func decodeValue(dec *jsontext.Decoder) (any, error) { return decodeAny(dec, false) }

// decodeLean is decodeValue keeping only the members named in leanNames,
// except under "style", whose members are CSS properties (an attribute
// change may record the style attribute as {property: value}) and are all
// kept.
func decodeLean(dec *jsontext.Decoder) (any, error) { return decodeAny(dec, true) }

func decodeAny(dec *jsontext.Decoder, lean bool) (any, error) {
	switch dec.PeekKind() {
	case '0':
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		return json.Number(v), nil
	case '{':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		obj := make(map[string]any)
		for dec.PeekKind() != '}' {
			name, keep, err := memberName(dec, lean)
			if err != nil {
				return nil, err
			}
			if !keep {
				if err := dec.SkipValue(); err != nil {
					return nil, err
				}
				continue
			}
			v, err := decodeAny(dec, lean && name != "style")
			if err != nil {
				return nil, err
			}
			obj[name] = v
		}
		_, err := dec.ReadToken()
		return obj, err
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		arr := []any{}
		for dec.PeekKind() != ']' {
			v, err := decodeAny(dec, lean)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.ReadToken()
		return arr, err
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '"':
		return tok.String(), nil
	case 't', 'f':
		return tok.Bool(), nil
	}
	return nil, nil
}

// memberName reads an object member's name; with lean, whether it is one
// of leanNames (the others are to be skipped).
func memberName(dec *jsontext.Decoder, lean bool) (string, bool, error) {
	if lean {
		return leanName(dec)
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return "", false, err
	}
	return tok.String(), true, nil // before the next read voids tok
}

// leanNames are all the member names the walker reads, at any depth.
// Members under other names cannot change what it finds, so a walk whose
// events are never re-encoded (AssetURLs) skips their values rather than
// decode them. Keys map to themselves: looking a name up yields its string
// without allocating one.
var leanNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range [...]string{
		"type", "data", "href", "node", "source", "adds", "texts", "attributes", "id",
		"rule", "replace", "replaceSync", "set", "value", "styles", "rules", "buffer", "fontSource",
		"tagName", "isStyle", "textContent", "childNodes", "rel", "as",
	} {
		m[k] = k
	}
	for _, k := range assetAttrs {
		m[k] = k
	}
	return m
}()

// leanName reads an object member name: the name as a string of
// leanNames, and whether it is one.
func leanName(dec *jsontext.Decoder) (string, bool, error) {
	raw, err := dec.ReadValue() // valid until the next read
	if err != nil {
		return "", false, err
	}
	var name string
	var keep bool
	if bytes.IndexByte(raw, '\\') < 0 {
		name, keep = leanNames[string(raw[1:len(raw)-1])]
	} else if u, err := jsontext.AppendUnquote(nil, raw); err == nil {
		name, keep = leanNames[string(u)]
	}
	return name, keep, nil
}

// walker carries what one pass over an event array knows: the page's URL
// and the kinds of the nodes it has seen, by rrweb node id.
type walker struct {
	m       Mapper
	page    *url.URL
	nodes   map[string]nodeKind
	links   map[string]*linkInfo
	changed bool
	lean    bool             // decode with decodeLean, in place: events are not emitted
	src     []byte           // with lean, the event array, which dec reads in place
	dec     jsontext.Decoder // reused for each event
}

// mayReference reports whether an event's raw JSON can hold an asset
// reference or a node the walker must remember. Most events (mouse moves,
// scrolls, inputs) cannot, and are copied without being decoded.
func mayReference(raw []byte) bool {
	// A JSON escape could spell any of the words below.
	if bytes.Contains(raw, []byte(`\u`)) {
		return true
	}
	for _, word := range [...]string{"http", "url", "tagName", "poster", "@import", "image-set", `"source":10`} {
		if containsFold(raw, word) {
			return true
		}
	}
	return false
}

// containsFold reports whether b contains the ASCII word, ignoring case.
func containsFold(b []byte, word string) bool {
	first, upper := word[0], word[0]
	if first >= 'a' && first <= 'z' {
		upper = first - 'a' + 'A'
	}
	for i := 0; i+len(word) <= len(b); i++ {
		if c := b[i]; c != first && c != upper {
			j := bytes.IndexByte(b[i+1:], first)
			k := -1
			if upper != first {
				k = bytes.IndexByte(b[i+1:], upper)
			}
			switch {
			case j < 0 && k < 0:
				return false
			case j < 0 || k >= 0 && k < j:
				i += k
			default:
				i += j
			}
			continue
		}
		if bytes.EqualFold(b[i:i+len(word)], []byte(word)) {
			return true
		}
	}
	return false
}

// event rewrites one event. It returns the rewritten event, or nil when
// nothing in it was mapped.
func (w *walker) event(raw json.RawMessage) (any, error) {
	if !mayReference(raw) {
		return nil, nil
	}
	w.dec.Reset(bytes.NewReader(raw), jsonOptions...)
	v, err := decodeValue(&w.dec)
	if err != nil {
		return nil, fmt.Errorf("read event: %w", err)
	}
	return w.value(v), nil
}

// value rewrites one decoded event. It returns the rewritten event, or nil
// when nothing in it was mapped.
func (w *walker) value(v any) any {
	ev, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	data, _ := ev["data"].(map[string]any)
	if data == nil {
		return nil
	}
	w.changed = false
	switch num(ev["type"]) {
	case eventMeta:
		if href, ok := data["href"].(string); ok {
			if u, err := url.Parse(href); err == nil && u.IsAbs() {
				w.page = u
			}
		}
	case eventFullSnapshot:
		// A full snapshot rebuilds the document: ids seen before are gone.
		clear(w.nodes)
		clear(w.links)
		if node, ok := data["node"].(map[string]any); ok {
			w.node(node)
		}
	case eventIncremental:
		w.incremental(data)
	}
	if !w.changed {
		return nil
	}
	return ev
}

// incremental rewrites the data of an IncrementalSnapshot event.
func (w *walker) incremental(data map[string]any) {
	switch num(data["source"]) {
	case sourceMutation:
		// rrweb's replayer applies adds before texts and attributes, so
		// an attribute change may name a node added in the same event.
		for _, a := range list(data["adds"]) {
			if add, ok := a.(map[string]any); ok {
				if node, ok := add["node"].(map[string]any); ok {
					w.node(node)
				}
			}
		}
		for _, t := range list(data["texts"]) {
			text, ok := t.(map[string]any)
			if !ok || w.nodes[num(text["id"])] != kindStyleText {
				continue
			}
			w.cssField(text, "value", w.page)
		}
		for _, a := range list(data["attributes"]) {
			change, ok := a.(map[string]any)
			if !ok {
				continue
			}
			attrs, ok := change["attributes"].(map[string]any)
			if !ok {
				continue
			}
			id := num(change["id"])
			kind, known := w.nodes[id]
			if kind == kindLink {
				link := w.links[id]
				if rel, ok := attrs["rel"].(string); ok {
					link.rel = rel
				}
				if as, ok := attrs["as"].(string); ok {
					link.as = as
				}
			}
			w.attributes(id, kind, known, attrs)
		}
	case sourceStyleSheetRule:
		base := w.page
		if link := w.links[num(data["id"])]; link != nil && link.href != nil {
			base = link.href
		}
		for _, a := range list(data["adds"]) {
			if add, ok := a.(map[string]any); ok {
				w.cssField(add, "rule", base)
			}
		}
		w.cssField(data, "replace", base)
		w.cssField(data, "replaceSync", base)
	case sourceStyleDeclaration:
		base := w.page
		if link := w.links[num(data["id"])]; link != nil && link.href != nil {
			base = link.href
		}
		if set, ok := data["set"].(map[string]any); ok {
			w.cssField(set, "value", base)
		}
	case sourceAdoptedStyleSheet:
		for _, s := range list(data["styles"]) {
			style, ok := s.(map[string]any)
			if !ok {
				continue
			}
			for _, r := range list(style["rules"]) {
				if rule, ok := r.(map[string]any); ok {
					w.cssField(rule, "rule", w.page)
				}
			}
		}
	case sourceFont:
		// fontSource is the FontFace source as given ("url(…) format(…)")
		// when buffer is false; rrweb does not absolutize it.
		if buffer, _ := data["buffer"].(bool); !buffer {
			w.cssField(data, "fontSource", w.page)
		}
	}
}

// node records and rewrites a serialized node and its descendants.
// elementKind is what an element of tag (any case) is to the walker and,
// for a <link>, its state from attrs.
func elementKind(tag string, attrs map[string]any) (nodeKind, *linkInfo) {
	switch strings.ToLower(tag) {
	case "link":
		link := &linkInfo{}
		link.rel, _ = attrs["rel"].(string)
		link.as, _ = attrs["as"].(string)
		return kindLink, link
	case "image", "use", "feimage":
		return kindSVGRef, nil
	case "script", "iframe", "frame":
		return kindNoAsset, nil
	case "a", "area":
		return kindAnchor, nil
	}
	return kindOther, nil
}

func (w *walker) node(n map[string]any) {
	id := num(n["id"])
	switch num(n["type"]) {
	case nodeElement:
		tag, _ := n["tagName"].(string)
		attrs, _ := n["attributes"].(map[string]any)
		kind, link := elementKind(tag, attrs)
		if link != nil {
			w.links[id] = link
		}
		w.nodes[id] = kind
		if attrs != nil {
			w.attributes(id, kind, true, attrs)
		}
	case nodeText:
		if isStyle, _ := n["isStyle"].(bool); isStyle {
			w.nodes[id] = kindStyleText
			w.cssField(n, "textContent", w.page)
		} else {
			w.nodes[id] = kindOther
		}
	default:
		w.nodes[id] = kindOther
	}
	for _, c := range list(n["childNodes"]) {
		if child, ok := c.(map[string]any); ok {
			w.node(child)
		}
	}
}

// attributes rewrites the asset references among an element's attributes
// (in a snapshot or an attribute change). known is false when the element
// was never seen, so its tag, and kind, are not known.
func (w *walker) attributes(id string, kind nodeKind, known bool, attrs map[string]any) {
	// A fixed order, not the map's, keeps AssetURLs' order stable.
	for _, name := range assetAttrs {
		v, ok := attrs[name]
		if !ok {
			continue
		}
		switch name {
		case "src":
			if kind != kindNoAsset {
				w.urlAttr(attrs, name, nil)
			}
		case "poster", "background":
			w.urlAttr(attrs, name, nil)
		case "srcset":
			if s, ok := v.(string); ok {
				if out, ok := w.srcset(s); ok {
					attrs[name] = out
					w.changed = true
				}
			}
		case "style":
			if style, ok := v.(map[string]any); ok {
				// An attribute change of a style attribute may be recorded
				// as the changed properties: {prop: value | [value,
				// priority] | false}.
				for _, prop := range slices.Sorted(maps.Keys(style)) {
					switch pv := style[prop].(type) {
					case string:
						w.cssField(style, prop, w.page)
					case []any:
						if len(pv) > 0 {
							if s, ok := pv[0].(string); ok {
								if out, ok := w.css(s, w.page); ok {
									pv[0] = out
								}
							}
						}
					}
				}
				continue
			}
			w.cssField(attrs, name, w.page)
		case "_cssText":
			w.cssField(attrs, name, w.page)
		case "href", "xlink:href":
			switch {
			case kind == kindLink:
				if link := w.links[id]; link != nil {
					if s, ok := v.(string); ok {
						link.href = resolveRef(s, w.page)
					}
					if linkIsAsset(link.rel, link.as) {
						w.urlAttr(attrs, name, nil)
					}
				}
			case kind == kindSVGRef:
				w.urlAttr(attrs, name, nil)
			case !known:
				w.urlAttr(attrs, name, func(u *url.URL) bool {
					return assetExts[strings.ToLower(path.Ext(u.Path))]
				})
			}
		}
	}
}

// assetAttrs are the attributes that can name an asset, as rrweb records
// them (HTML attribute names lowercased).
var assetAttrs = [...]string{"src", "srcset", "poster", "background", "style", "_cssText", "href", "xlink:href"}

// linkIsAsset reports whether a <link> with these rel and as attributes
// loads a stylesheet, an icon, or a preloaded style, font or image.
func linkIsAsset(rel, as string) bool {
	for _, r := range strings.Fields(strings.ToLower(rel)) {
		switch {
		case r == "stylesheet", strings.Contains(r, "icon"):
			return true
		case r == "preload" || r == "prefetch":
			switch strings.ToLower(strings.TrimSpace(as)) {
			case "style", "font", "image":
				return true
			}
		}
	}
	return false
}

// urlAttr rewrites the URL in field name of obj, if it is a string that m
// maps (and, if filter is not nil, that filter accepts).
func (w *walker) urlAttr(obj map[string]any, name string, filter func(*url.URL) bool) {
	s, ok := obj[name].(string)
	if !ok {
		return
	}
	m := w.m
	if filter != nil {
		m = func(abs string) (string, bool) {
			u, err := url.Parse(abs)
			if err != nil || !filter(u) {
				return "", false
			}
			return w.m(abs)
		}
	}
	if out, ok := mapRef(s, w.page, m); ok {
		obj[name] = out
		w.changed = true
	}
}

// cssField rewrites the CSS text in field name of obj, if it is a string.
func (w *walker) cssField(obj map[string]any, name string, base *url.URL) {
	if s, ok := obj[name].(string); ok {
		if out, ok := w.css(s, base); ok {
			obj[name] = out
		}
	}
}

// css rewrites CSS text, reporting whether anything changed.
func (w *walker) css(s string, base *url.URL) (string, bool) {
	if !mayHaveCSSRef(s) {
		return s, false
	}
	changed := false
	out := RewriteCSS([]byte(s), base, func(abs string) (string, bool) {
		mapped, ok := w.m(abs)
		changed = changed || ok
		return mapped, ok
	})
	if !changed {
		return s, false
	}
	w.changed = true
	return string(out), true
}

// mayHaveCSSRef reports whether CSS text can hold a reference scanCSS
// finds: one needs a url( function, an image-set( or an @import, whose
// names, without a backslash escape, appear as written. Most style
// attributes have none and are neither copied nor tokenized.
func mayHaveCSSRef(s string) bool {
	return strings.IndexByte(s, '\\') >= 0 || containsFoldString(s, "url") ||
		containsFoldString(s, "image-set") || containsFoldString(s, "import")
}

// containsFoldString reports whether s contains the lowercase ASCII word,
// ignoring case.
func containsFoldString(s, word string) bool {
	upper := word[0] - 'a' + 'A'
	for len(s) >= len(word) {
		i := strings.IndexByte(s, word[0])
		if j := strings.IndexByte(s, upper); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 || len(s)-i < len(word) {
			return false
		}
		if strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
		s = s[i+1:]
	}
	return false
}

// srcset rewrites each candidate URL of a srcset attribute that m maps,
// keeping descriptors, commas and spacing (HTML §4.8.4.3.10, "parse a
// srcset attribute": a URL runs to the next whitespace, minus trailing
// commas).
func (w *walker) srcset(s string) (string, bool) {
	var b strings.Builder
	last, i := 0, 0
	for i < len(s) {
		for i < len(s) && (isASCIISpace(s[i]) || s[i] == ',') {
			i++
		}
		start := i
		for i < len(s) && !isASCIISpace(s[i]) {
			i++
		}
		end := i
		for end > start && s[end-1] == ',' {
			end--
		}
		if end > start {
			if out, ok := mapRef(s[start:end], w.page, w.m); ok {
				b.WriteString(s[last:start])
				b.WriteString(out)
				last = end
			}
		}
		if end < i { // the URL ended in commas: no descriptors follow
			continue
		}
		// Descriptors run to the next comma outside parentheses.
		depth := 0
		for i < len(s) {
			c := s[i]
			if c == '(' {
				depth++
			} else if c == ')' && depth > 0 {
				depth--
			} else if c == ',' && depth == 0 {
				break
			}
			i++
		}
	}
	if last == 0 {
		return s, false
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// num returns a JSON number as written ("" for anything else), so that
// ids and types compare without conversion.
func num(v any) string {
	n, _ := v.(json.Number)
	return string(n)
}

// list returns v as a JSON array, or nil.
func list(v any) []any {
	l, _ := v.([]any)
	return l
}
