package archive

import (
	"bytes"

	"github.com/go-json-experiment/json/jsontext"
)

// leanEvent reads one event for AssetURLs and does what event does with
// it. The node tree of a full snapshot, most of a recording's bytes, is
// walked as it is read (streamNode) rather than decoded into maps first;
// other events are decoded with decodeLean.
func (w *walker) leanEvent(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '{' {
		v, err := decodeLean(dec)
		if err == nil {
			w.value(v)
		}
		return err
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	ev := make(map[string]any, 2)
	streamed := false
	for dec.PeekKind() != '}' {
		name, keep, err := leanName(dec)
		if err != nil {
			return err
		}
		switch {
		case name == "data" && !streamed && num(ev["type"]) == eventFullSnapshot && dec.PeekKind() == '{':
			streamed = true
			err = w.streamSnapshot(dec)
		case keep:
			ev[name], err = decodeLean(dec)
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if !streamed {
		w.value(ev)
	}
	return nil
}

// streamSnapshot reads the data object of a full snapshot.
func (w *walker) streamSnapshot(dec *jsontext.Decoder) error {
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	// A full snapshot rebuilds the document: ids seen before are gone.
	clear(w.nodes)
	clear(w.links)
	for dec.PeekKind() != '}' {
		name, _, err := leanName(dec)
		if err != nil {
			return err
		}
		if name == "node" && dec.PeekKind() == '{' {
			err = w.streamNode(dec)
		} else {
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// streamNode reads a serialized node and its descendants, doing what node
// does. rrweb writes a node's type, tagName, attributes (or textContent
// and isStyle) before its childNodes, and its id last, so the node's own
// references are found before its children's, in node's order. A node
// whose members come otherwise is decoded whole and given to node.
func (w *walker) streamNode(dec *jsontext.Decoder) error {
	start := w.nextValue(dec)
	if _, err := dec.ReadToken(); err != nil { // '{'
		return err
	}
	var (
		typ, id, tag     string
		sawTag, sawAttrs bool
		attrs            map[string]any
		isStyle          bool
		text             jsontext.Value // raw textContent, aliasing w.src
		own              bool           // the node's own references are done
		kind             = kindOther
		link             *linkInfo
	)
	doOwn := func() {
		own = true
		switch typ {
		case nodeElement:
			kind, link = w.element(id, tag, attrs)
		case nodeText:
			if isStyle {
				kind = kindStyleText
				if text.Kind() == '"' {
					if u, err := jsontext.AppendUnquote(nil, text); err == nil {
						w.css(string(u), w.page)
					}
				}
			}
		}
	}
	for dec.PeekKind() != '}' {
		name, _, err := leanName(dec)
		if err != nil {
			return err
		}
		var v jsontext.Value
		switch name {
		case "type", "id", "tagName", "isStyle", "textContent":
			if v, err = dec.ReadValue(); err != nil {
				return err
			}
		}
		switch name {
		case "type":
			typ = ""
			if v.Kind() == '0' {
				typ = string(v)
			}
		case "id":
			id = ""
			if v.Kind() == '0' {
				id = string(v)
			}
		case "tagName":
			sawTag, tag = true, ""
			if v.Kind() == '"' {
				if u, err := jsontext.AppendUnquote(nil, v); err == nil {
					tag = string(u)
				}
			}
		case "isStyle":
			isStyle = v.Kind() == 't'
		case "textContent":
			text = v // w.src is read in place: v stays valid
		case "attributes":
			sawAttrs = true
			a, err := decodeLean(dec)
			if err != nil {
				return err
			}
			attrs, _ = a.(map[string]any)
		case "childNodes":
			if own || typ == "" || typ == nodeText || typ == nodeElement && !(sawTag && sawAttrs) {
				return w.wholeNode(dec, start)
			}
			doOwn()
			if dec.PeekKind() != '[' {
				err = dec.SkipValue()
				break
			}
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
			for dec.PeekKind() != ']' {
				if dec.PeekKind() == '{' {
					err = w.streamNode(dec)
				} else {
					err = dec.SkipValue()
				}
				if err != nil {
					return err
				}
			}
			_, err = dec.ReadToken()
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if !own {
		doOwn()
	}
	w.nodes[id] = kind
	if link != nil {
		w.links[id] = link
	}
	return nil
}

// element does node's work for an element's own attributes, returning its
// kind and, for a <link>, its state, which the caller files under id.
func (w *walker) element(id, tag string, attrs map[string]any) (nodeKind, *linkInfo) {
	kind, link := elementKind(tag, attrs)
	if attrs != nil {
		// attributes finds a <link>'s state by id; the id may not be read
		// yet, so it is filed for the call only.
		if link != nil {
			prev, had := w.links[id]
			w.links[id] = link
			defer func() {
				if had {
					w.links[id] = prev
				} else {
					delete(w.links, id)
				}
			}()
		}
		w.attributes(id, kind, true, attrs)
	}
	return kind, link
}

// wholeNode decodes the node that starts at w.src[start] whole, gives it
// to node, and skips the rest of it in dec, which is at a member's value.
func (w *walker) wholeNode(dec *jsontext.Decoder, start int) error {
	sub := jsontext.NewDecoder(bytes.NewBuffer(w.src[start:]), jsonOptions...)
	v, err := decodeLean(sub)
	if err != nil {
		return err
	}
	if n, ok := v.(map[string]any); ok {
		w.node(n)
	}
	if err := dec.SkipValue(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		if _, err := dec.ReadValue(); err != nil { // name
			return err
		}
		if err := dec.SkipValue(); err != nil {
			return err
		}
	}
	_, err = dec.ReadToken()
	return err
}

// nextValue returns the offset in w.src of the next value dec reads.
func (w *walker) nextValue(dec *jsontext.Decoder) int {
	i := int(dec.InputOffset())
	for i < len(w.src) {
		switch w.src[i] {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
			continue
		}
		break
	}
	return i
}
