package injector

import (
	"bytes"
	"slices"
	"unicode/utf8"

	"golang.org/x/net/html/atom"
)

// When every block selector has a fast form (match.go), a field the skip
// feed meets is marked from its raw tag alone: scanTag keeps the values of
// the few attributes the selectors and mark read, as byte slices into the
// tag, and fieldMark runs the same tests over them. Nothing is copied into
// an html.Node, no attribute name is interned and no value is lowered
// twice: marking a field costs about what reading its tag does. It decides
// exactly as mark and blocks do (FuzzSkip and TestSkipSameOutput compare it
// with the tokenizer's path, which goes through mark).

// rawKeys are the attribute names a raw field's mark may read: "type" and
// "class" (rawType, rawClass), then every name a block selector tests; and
// the tests, filed by field tag and name.
type rawKeys struct {
	names []string
	byTag [len(fieldTags)]tagTests
}

const (
	rawType  = 0
	rawClass = 1
	// maxRawKeys bounds the attribute names marks are read from raw tags;
	// selectors testing more names than that leave fields to mark.
	maxRawKeys = 64
)

// fieldTags are the tags skipField marks, in the order of rawKeys.byTag.
var fieldTags = [...]atom.Atom{atom.Input, atom.Select, atom.Textarea}

// tagTests are the block selectors that may match one field tag.
type tagTests struct {
	keys  []keyTests  // single-test selectors, by attribute name
	multi []multiTest // selectors with more than one test
}

// keyTests are the single-test selectors on one attribute name.
type keyTests struct {
	key   int        // index in rawKeys.names
	exact []attrTest // presence and = tests
	affix []attrTest // ^=, $= and *= tests
	fold  bool       // some affix test has " i"
}

// multiTest is a fast selector with several tests, each with the index of
// its attribute name in rawKeys.names.
type multiTest struct {
	tests []attrTest
	keys  []int
}

// compileRawKeys returns the raw keys of in's block selectors, or nil when
// some selector has no fast form (cascadia must match it, against an
// html.Node).
func (in *Injector) compileRawKeys() *rawKeys {
	rk := &rawKeys{names: []string{"type", "class"}}
	index := func(name string) int {
		for i, n := range rk.names {
			if n == name {
				return i
			}
		}
		rk.names = append(rk.names, name)
		return len(rk.names) - 1
	}
	for _, fs := range in.fast {
		if fs == nil {
			return nil
		}
		for _, t := range fs.tests {
			index(t.key)
		}
	}
	if len(rk.names) > maxRawKeys {
		return nil
	}
	for ti, tag := range fieldTags {
		tt := &rk.byTag[ti]
		for _, fs := range in.fast {
			if fs.tag != "" && fs.tag != tag.String() {
				continue
			}
			if len(fs.tests) > 1 {
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
	return rk
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

// fieldMark returns the class mark for the field tag fieldTags[ti] whose
// kept values are v: mark's decision, made from raw bytes.
func (rk *rawKeys) fieldMark(ti int, v *rawVals) string {
	if rk.blocks(ti, v) {
		return "rr-block"
	}
	if fieldTags[ti] == atom.Input && v.seen&(1<<rawType) != 0 {
		switch string(v.lower(rawType)) {
		case "hidden", "submit", "button", "reset", "image", "checkbox", "radio":
			return ""
		}
	}
	return "rr-mask"
}

// blocks is Injector.blocks over raw values.
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
			if kt.exact[j].matchesRaw(val, v, i) {
				return true
			}
		}
		if len(kt.affix) == 0 || blankBytes(val) {
			continue
		}
		// What attrTest.matches works out per test, once per attribute.
		var low []byte
		var lowPairs uint64
		if kt.fold {
			low = v.lower(i)
			lowPairs = pairsBytes(low)
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
			if t.affixRaw(w) {
				return true
			}
		}
	}
	for _, mt := range tt.multi {
		ok := true
		for j := range mt.tests {
			i := mt.keys[j]
			if v.seen&(1<<i) == 0 || !mt.tests[j].matchesRaw(v.vals[i], v, i) {
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

// matchesRaw is attrTest.matches over value i of v.
func (t *attrTest) matchesRaw(val []byte, v *rawVals, i int) bool {
	switch t.opc {
	case 0:
		return true
	case '=':
		if t.fold {
			return bytes.EqualFold([]byte(t.val), val)
		}
		return string(val) == t.val
	}
	if blankBytes(val) {
		return false
	}
	if t.fold {
		val = v.lower(i)
	}
	return t.affixRaw(val)
}

// affixRaw is attrTest.affix over bytes.
func (t *attrTest) affixRaw(v []byte) bool {
	switch t.opc {
	case '^':
		return bytes.HasPrefix(v, []byte(t.val))
	case '$':
		return bytes.HasSuffix(v, []byte(t.val))
	default:
		return bytes.Contains(v, []byte(t.val))
	}
}

// blankBytes is blank over bytes.
func blankBytes(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if c := v[0]; c < utf8.RuneSelf && c != ' ' && (c < '\t' || c > '\r') {
		return false
	}
	return len(bytes.TrimSpace(v)) == 0
}

// pairsBytes is pairs over bytes.
func pairsBytes(v []byte) uint64 {
	var m uint64
	for i := 1; i < len(v); i++ {
		m |= pairBit(v[i-1], v[i])
	}
	return m
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
