package injector

import (
	"bytes"
	"strings"
)

// addClass returns the raw start tag with class mark added. Rather than
// re-serialising the tag, it splices the mark into the original bytes, so
// attribute order, quoting, case and entities stay as the origin wrote them:
//
//	<input name=a>            → <input class="rr-mask" name=a>
//	<input class="x" name=a>  → <input class="x rr-mask" name=a>
//	<input class=x>           → <input class="x rr-mask">
//	<input class>             → <input class="rr-mask">
//
// The browser keeps the first of repeated attributes, so the first class
// attribute is the one changed. A tag that already has the mark (hasMark)
// is returned as it is. The result is built in r.out and valid until the
// next call.
func (r *rewriter) addClass(raw []byte, mark string) []byte {
	if r.hasMark(mark) {
		return raw
	}
	nameEnd, cls := scanClass(raw)
	return r.spliceClass(raw, mark, nameEnd, cls)
}

// hasMark reports whether the current field's class list, as mark read it
// (r.vals), holds mark already.
func (r *rewriter) hasMark(mark string) bool {
	return r.vals.seen&(1<<rawClass) != 0 && hasClassBytes(r.vals.vals[rawClass], mark)
}

// spliceClass is addClass for a tag known not to have the mark, whose
// name ends at nameEnd and whose first class attribute is cls (scanClass).
func (r *rewriter) spliceClass(raw []byte, mark string, nameEnd int, cls rawAttr) []byte {
	out := r.out[:0]
	switch {
	case cls.key < 0:
		// No class: add one right after the tag name, before whatever
		// followed it (space, "/" or ">"), all of which may follow a
		// quoted value.
		out = append(out, raw[:nameEnd]...)
		out = append(out, ` class="`...)
		out = append(out, mark...)
		out = append(out, '"')
		out = append(out, raw[nameEnd:]...)
	case cls.eq < 0:
		// class with no value.
		out = append(out, raw[:cls.keyEnd]...)
		out = append(out, `="`...)
		out = append(out, mark...)
		out = append(out, '"')
		out = append(out, raw[cls.keyEnd:]...)
	case cls.quote != 0:
		out = append(out, raw[:cls.valEnd]...)
		if strings.TrimSpace(string(raw[cls.valStart:cls.valEnd])) != "" {
			out = append(out, ' ')
		}
		out = append(out, mark...)
		out = append(out, raw[cls.valEnd:]...)
	default:
		// Unquoted (possibly empty, as in "class=>"): quote it. A '"' in
		// an unquoted value becomes a character reference, which decodes
		// to the same value.
		out = append(out, raw[:cls.valStart]...)
		out = append(out, '"')
		val := raw[cls.valStart:cls.valEnd]
		for _, c := range val {
			if c == '"' {
				out = append(out, "&#34;"...)
			} else {
				out = append(out, c)
			}
		}
		if len(val) > 0 {
			out = append(out, ' ')
		}
		out = append(out, mark...)
		out = append(out, '"')
		out = append(out, raw[cls.valEnd:]...)
	}
	r.out = out
	return out
}

func hasClass(list, class string) bool {
	for _, c := range strings.Fields(list) {
		if c == class {
			return true
		}
	}
	return false
}

// rawAttr locates one attribute in a raw tag. Offsets are into the tag;
// key < 0 means not found, eq < 0 means no "=" (no value).
type rawAttr struct {
	key, keyEnd      int
	eq               int
	valStart, valEnd int
	quote            byte // '"' or '\'', or 0 when unquoted
}

// scanClass finds the end of the tag name and the first class attribute of
// a complete raw start tag ("<…>"). It follows golang.org/x/net/html's
// Tokenizer (readTag, readTagName, readTagAttrKey, readTagAttrVal) step by
// step, so it finds the same attributes the tokenizer reported; the fuzz
// test checks that.
func scanClass(raw []byte) (nameEnd int, class rawAttr) {
	class = rawAttr{key: -1, eq: -1}
	i := 1 // past '<'
	// readTagName: the name runs to whitespace, '/' or '>'. Its first
	// byte is a letter, so it is never empty.
	i++
	for i < len(raw) && !isWS(raw[i]) && raw[i] != '/' && raw[i] != '>' {
		i++
	}
	nameEnd = i
	i = skipWS(raw, i)
	for i < len(raw) && raw[i] != '>' {
		// readTagAttrKey: a leading '=' belongs to the name.
		a := rawAttr{key: i, eq: -1}
		for j := i; ; j++ {
			if j >= len(raw) {
				i = j
				break
			}
			c := raw[j]
			if c == '=' && j == a.key {
				continue
			}
			if c == '=' || isWS(c) || c == '/' || c == '>' {
				i = j
				break
			}
		}
		a.keyEnd = i
		// readTagAttrVal.
		i = skipWS(raw, i)
		if i < len(raw) && raw[i] == '/' {
			i++
		} else if i < len(raw) && raw[i] == '=' {
			a.eq = i
			i = skipWS(raw, i+1)
			switch {
			case i >= len(raw):
				a.valStart, a.valEnd = i, i
			case raw[i] == '>':
				a.valStart, a.valEnd = i, i
			case raw[i] == '"' || raw[i] == '\'':
				a.quote = raw[i]
				a.valStart = i + 1
				end := bytes.IndexByte(raw[i+1:], a.quote)
				if end < 0 {
					a.valEnd, i = len(raw), len(raw)
				} else {
					a.valEnd, i = i+1+end, i+1+end+1
				}
			default:
				a.valStart = i
				for i < len(raw) && !isWS(raw[i]) && raw[i] != '>' {
					i++
				}
				a.valEnd = i
			}
		}
		if a.keyEnd > a.key && class.key < 0 && asciiEqualFold(raw[a.key:a.keyEnd], "class") {
			class = a
		}
		i = skipWS(raw, i)
	}
	return nameEnd, class
}

func isWS(c byte) bool { return tagBytes[c]&bWS != 0 }

// tagBytes classifies the bytes that end names and values in a tag, for
// scanning with one lookup per byte.
var tagBytes = func() (t [256]uint8) {
	for _, c := range []byte(" \n\r\t\f") {
		t[c] |= bWS
	}
	t['/'] |= bSlash
	t['>'] |= bGT
	t['='] |= bEq
	return t
}()

const (
	bWS    = 1 << iota // ' ', '\n', '\r', '\t', '\f'
	bSlash             // '/'
	bGT                // '>'
	bEq                // '='
)

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
