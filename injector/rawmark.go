package injector

import (
	"bytes"
	"slices"
	"unicode/utf8"
	"unsafe"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// A field's mark is decided from the values of the few attributes the
// block selectors' fast forms (match.go) and the type check read, kept as
// byte slices (rawVals): slices of the raw tag when the skip feed reads
// it, or of the tokenizer's decoded attributes (keepAttrs). When every
// block selector has a fast form, a field the skip feed meets is thus
// marked from its raw tag alone: nothing is copied into an html.Node, no
// attribute name is interned and no value is lowered twice. Selectors
// without a fast form are matched by cascadia against the html.Node, so
// with any of them the skip feed reads fields into one (skipField).
// TestFastSelectors checks the matching against cascadia, TestRawMarks
// and FuzzSkip the two paths against each other.

// rawKeys are the attribute names a field's mark may read: "type" and
// "class" (rawType, rawClass), then every name a block selector tests; and
// the tests, filed by field tag and name.
type rawKeys struct {
	names []string
	byTag [len(fieldTags)]tagTests
}

const (
	rawType  = 0
	rawClass = 1
	// maxRawKeys bounds the attribute names marks read (rawVals.seen is a
	// bit set); selectors testing more are left to cascadia.
	maxRawKeys = 64
)

// fieldTags are the form fields that get marks, in the order of
// rawKeys.byTag.
var fieldTags = [...]atom.Atom{atom.Input, atom.Select, atom.Textarea}

// tagTests are the block selectors that may match one field tag.
type tagTests struct {
	keys  []keyTests  // single-test selectors, by attribute name
	multi []multiTest // selectors with no test or more than one
}

// keyTests are the single-test selectors on one attribute name.
type keyTests struct {
	key   int        // index in rawKeys.names
	exact []attrTest // presence and = tests
	affix []attrTest // ^=, $= and *= tests
	fold  bool       // some affix test has " i"
}

// multiTest is a fast selector with no test or several, each with the
// index of its attribute name in rawKeys.names.
type multiTest struct {
	tests []attrTest
	keys  []int
}

// compileRawKeys files the fast forms of in's block selectors by field tag
// and attribute name, and returns the selectors cascadia must match: those
// without a fast form, and those whose names would take the names past
// maxRawKeys.
func (in *Injector) compileRawKeys() (*rawKeys, []cascadia.SelectorGroup) {
	rk := &rawKeys{names: []string{"type", "class"}}
	index := func(name string) int {
		if i := slices.Index(rk.names, name); i >= 0 {
			return i
		}
		rk.names = append(rk.names, name)
		return len(rk.names) - 1
	}
	var fast []*fastSel
	var slow []cascadia.SelectorGroup
	for i, fs := range in.fast {
		if fs == nil || len(rk.names)+len(fs.tests) > maxRawKeys {
			slow = append(slow, in.block[i])
			continue
		}
		for _, t := range fs.tests {
			index(t.key)
		}
		fast = append(fast, fs)
	}
	for ti, tag := range fieldTags {
		tt := &rk.byTag[ti]
		for _, fs := range fast {
			if fs.tag != "" && fs.tag != tag.String() {
				continue
			}
			if len(fs.tests) != 1 {
				// None ("input": every input) or several.
				mt := multiTest{tests: fs.tests}
				for _, t := range fs.tests {
					mt.keys = append(mt.keys, index(t.key))
				}
				tt.multi = append(tt.multi, mt)
				continue
			}
			t := fs.tests[0]
			i := index(t.key)
			k := slices.IndexFunc(tt.keys, func(kt keyTests) bool { return kt.key == i })
			if k < 0 {
				tt.keys = append(tt.keys, keyTests{key: i})
				k = len(tt.keys) - 1
			}
			kt := &tt.keys[k]
			if t.opc == 0 || t.opc == '=' {
				kt.exact = append(kt.exact, t)
			} else {
				kt.affix = append(kt.affix, t)
				kt.fold = kt.fold || t.fold
			}
		}
	}
	return rk, slow
}

// rawVals are the values scanTag kept of one raw tag's attributes, by
// index in rawKeys.names; a name's first occurrence wins, as in the
// tokenizer's attribute list.
type rawVals struct {
	seen uint64
	vals [maxRawKeys][]byte
	// low and lowDone cache the lower-case form of a value for the fold
	// tests; lowBuf holds them.
	low     [maxRawKeys][]byte
	lowDone uint64
	lowBuf  []byte
}

func (v *rawVals) reset() {
	v.seen, v.lowDone = 0, 0
	v.lowBuf = v.lowBuf[:0]
}

// keep records val for key (as the tag spells it) if marks read key and
// the tag had no earlier attribute of that name.
func (v *rawVals) keep(rk *rawKeys, key, val []byte) {
	for i, name := range rk.names {
		if v.seen&(1<<i) == 0 && asciiEqualFold(key, name) {
			v.seen |= 1 << i
			v.vals[i] = val
			return
		}
	}
}

// keepAttrs fills v with the values of the tokenizer's attributes attr
// (names in lower case, values decoded). The values are not copied: v
// only reads them, for as long as attr holds them.
func (v *rawVals) keepAttrs(rk *rawKeys, attr []html.Attribute) {
	v.reset()
	for _, a := range attr {
		v.keep(rk, unsafe.Slice(unsafe.StringData(a.Key), len(a.Key)), unsafe.Slice(unsafe.StringData(a.Val), len(a.Val)))
	}
}

// lower returns value i in lower case, as strings.ToLower would have it.
func (v *rawVals) lower(i int) []byte {
	if v.lowDone&(1<<i) != 0 {
		return v.low[i]
	}
	val := v.vals[i]
	var low []byte
	if isASCII(val) {
		start := len(v.lowBuf)
		for _, c := range val {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			v.lowBuf = append(v.lowBuf, c)
		}
		low = v.lowBuf[start:len(v.lowBuf):len(v.lowBuf)]
	} else {
		low = bytes.ToLower(val)
	}
	v.low[i], v.lowDone = low, v.lowDone|1<<i
	return low
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fieldIndex is the index in fieldTags of a field's atom.
func fieldIndex(a atom.Atom) int { return slices.Index(fieldTags[:], a) }

// mark returns the class of the field fieldTags[ti] whose kept values are
// v: rr-block when a block selector matches (blocked: when a selector
// cascadia matched did), rr-mask when its value is worth masking, else "".
func (rk *rawKeys) mark(ti int, v *rawVals, blocked bool) string {
	if blocked || rk.blocks(ti, v) {
		return "rr-block"
	}
	if fieldTags[ti] == atom.Input && v.seen&(1<<rawType) != 0 {
		// Buttons carry no typed value, hidden values were never shown,
		// and rrweb records only the checked state of boxes (WHATWG
		// 4.10.5.1 type keywords are ASCII case-insensitive; this
		// lowers them as cascadia's " i" does).
		switch string(v.lower(rawType)) {
		case "hidden", "submit", "button", "reset", "image", "checkbox", "radio":
			return ""
		}
	}
	return "rr-mask"
}

// blocks reports whether a fast selector matches the field fieldTags[ti]
// whose kept values are v.
func (rk *rawKeys) blocks(ti int, v *rawVals) bool {
	tt := &rk.byTag[ti]
	for k := range tt.keys {
		kt := &tt.keys[k]
		i := kt.key
		if v.seen&(1<<i) == 0 {
			continue
		}
		val := v.vals[i]
		for j := range kt.exact {
			if kt.exact[j].matches(val, v, i) {
				return true
			}
		}
		if len(kt.affix) == 0 || blank(val) {
			continue
		}
		// What attrTest.matches works out per test, once per attribute.
		var low []byte
		var lowPairs uint64
		if kt.fold {
			low = v.lower(i)
			lowPairs = pairs(low)
		}
		for j := range kt.affix {
			t := &kt.affix[j]
			w := val
			if t.fold {
				if lowPairs&t.pair != t.pair {
					continue
				}
				w = low
			}
			if t.affix(w) {
				return true
			}
		}
	}
	for _, mt := range tt.multi {
		ok := true
		for j := range mt.tests {
			i := mt.keys[j]
			if v.seen&(1<<i) == 0 || !mt.tests[j].matches(v.vals[i], v, i) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// matches is t's test of val, value i of v.
func (t *attrTest) matches(val []byte, v *rawVals, i int) bool {
	switch t.opc {
	case 0:
		return true
	case '=':
		if t.fold {
			return bytes.EqualFold([]byte(t.val), val)
		}
		return string(val) == t.val
	}
	if blank(val) {
		return false
	}
	if t.fold {
		val = v.lower(i)
	}
	return t.affix(val)
}

// affix is the ^=, $= or *= test of v, already lowered when t.fold.
func (t *attrTest) affix(v []byte) bool {
	switch t.opc {
	case '^':
		return bytes.HasPrefix(v, []byte(t.val))
	case '$':
		return bytes.HasSuffix(v, []byte(t.val))
	default:
		return bytes.Contains(v, []byte(t.val))
	}
}

// blank reports whether v is empty or all white space (strings.TrimSpace
// returns ""), looking at the first byte alone when it settles it.
func blank(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if c := v[0]; c < utf8.RuneSelf && c != ' ' && (c < '\t' || c > '\r') {
		return false
	}
	return len(bytes.TrimSpace(v)) == 0
}

// hasClassBytes is hasClass over the raw class list.
func hasClassBytes(list []byte, class string) bool {
	if !isASCII(list) {
		return hasClass(string(list), class)
	}
	for len(list) > 0 {
		i := 0
		for i < len(list) && asciiSpace(list[i]) {
			i++
		}
		j := i
		for j < len(list) && !asciiSpace(list[j]) {
			j++
		}
		if j > i && string(list[i:j]) == class {
			return true
		}
		list = list[j:]
	}
	return false
}

// asciiSpace reports whether strings.Fields (hasClass) splits at c, an
// ASCII byte.
func asciiSpace(c byte) bool {
	return c == ' ' || '\t' <= c && c <= '\r'
}
