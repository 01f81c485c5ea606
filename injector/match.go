package injector

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// Most block selectors are a tag name and attribute tests
// ("input[name*=cvc i]"). cascadia matches each separately, lowering the
// attribute's value again for every selector; for those, fastSel does the
// same tests with cascadia's own semantics (strings.ToLower and
// strings.EqualFold for the " i" flag, blank values never matching a
// prefix, suffix or substring), lowering each value once per element.
// TestFastSelectors checks it against cascadia.

// attrTest is one [key op "val" i] of a selector.
type attrTest struct {
	key  string
	op   string // "" (present), "=", "^=", "$=" or "*="
	val  string // lower case when fold
	fold bool
	opc  byte // op's first byte: 0 (present), '=', '^', '$' or '*'
	// pair is the bigram bit (see pairs) of val's first two bytes for a
	// *= test with " i"; 0 when there is none.
	pair uint64
}

// pairBit files the byte pair a, b under one of 64 bits.
func pairBit(a, b byte) uint64 { return 1 << ((uint(a)*31 + uint(b)) & 63) }

// pairs returns the bits of every pair of adjacent bytes in v: a *= test
// whose pair bit is not among them cannot match v.
func pairs(v string) uint64 {
	var m uint64
	for i := 1; i < len(v); i++ {
		m |= pairBit(v[i-1], v[i])
	}
	return m
}

type fastSel struct {
	tag   string // "" for any
	tests []attrTest
}

// fastForm is a compound selector as cascadia serialises it: an optional
// tag, then attribute tests with values quoted and no quote or backslash
// inside (cascadia does not escape them).
var (
	fastForm = regexp.MustCompile(`^([a-z][a-z0-9-]*)?((?:\[[a-z_][a-z0-9_-]*(?:(?:=|\^=|\$=|\*=)"[^"\\]*"(?: i)?)?\])*)$`)
	fastTest = regexp.MustCompile(`\[([a-z_][a-z0-9_-]*)(?:(=|\^=|\$=|\*=)"([^"\\]*)"( i)?)?\]`)
)

// compileFast returns the fast form of a serialised selector group, or nil
// when cascadia must match it.
func compileFast(sel string) *fastSel {
	m := fastForm.FindStringSubmatch(sel)
	if m == nil || m[0] == "" {
		return nil
	}
	fs := &fastSel{tag: m[1]}
	for _, t := range fastTest.FindAllStringSubmatch(m[2], -1) {
		at := attrTest{key: t[1], op: t[2], val: t[3], fold: t[4] != ""}
		if at.op != "" {
			at.opc = at.op[0]
		}
		if at.fold && at.op != "=" {
			at.val = strings.ToLower(at.val)
			if at.opc == '*' && len(at.val) >= 2 {
				at.pair = pairBit(at.val[0], at.val[1])
			}
		}
		fs.tests = append(fs.tests, at)
	}
	return fs
}

// lowered caches the lower-case values of an element's attributes.
type lowered struct {
	vals []string
	done []bool
}

func (l *lowered) reset(n int) {
	l.vals = append(l.vals[:0], make([]string, n)...)
	l.done = append(l.done[:0], make([]bool, n)...)
}

func (l *lowered) get(i int, v string) string {
	if !l.done[i] {
		l.vals[i], l.done[i] = strings.ToLower(v), true
	}
	return l.vals[i]
}

func (fs *fastSel) match(n *html.Node, low *lowered) bool {
	if fs.tag != "" && n.Data != fs.tag {
		return false
	}
	for _, t := range fs.tests {
		ok := false
		for i, a := range n.Attr {
			if a.Key != t.key {
				continue
			}
			if ok = t.matches(a.Val, i, low); ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (t *attrTest) matches(v string, i int, low *lowered) bool {
	switch t.opc {
	case 0:
		return true
	case '=':
		if t.fold {
			return strings.EqualFold(t.val, v)
		}
		return v == t.val
	}
	if blank(v) {
		return false
	}
	if t.fold {
		v = low.get(i, v)
	}
	return t.affix(v)
}

// affix is the ^=, $= or *= test of v, already lowered when t.fold.
func (t *attrTest) affix(v string) bool {
	switch t.opc {
	case '^':
		return strings.HasPrefix(v, t.val)
	case '$':
		return strings.HasSuffix(v, t.val)
	default:
		return strings.Contains(v, t.val)
	}
}

// blank reports whether v is empty or all white space (strings.TrimSpace
// returns ""), looking at the first byte alone when it settles it.
func blank(v string) bool {
	if v == "" {
		return true
	}
	if c := v[0]; c < utf8.RuneSelf && c != ' ' && (c < '\t' || c > '\r') {
		return false
	}
	return strings.TrimSpace(v) == ""
}

// keyedTest is a fast selector with a single attribute test, filed under
// the attribute's name.
type keyedTest struct {
	tag  string
	test attrTest
}

// indexSelectors files the single-test fast selectors by attribute name
// and returns the indices of the others.
func (in *Injector) indexSelectors() {
	in.byKey = map[string][]keyedTest{}
	in.rest = in.rest[:0]
	for i, fs := range in.fast {
		if fs != nil && len(fs.tests) == 1 {
			k := fs.tests[0].key
			in.byKey[k] = append(in.byKey[k], keyedTest{tag: fs.tag, test: fs.tests[0]})
			continue
		}
		in.rest = append(in.rest, i)
	}
}

// blocks reports whether a block selector matches n: the single-test ones
// through n's attributes, the others one by one.
func (in *Injector) blocks(n *html.Node, low *lowered) bool {
	low.reset(len(n.Attr))
	for i, a := range n.Attr {
		kts := in.byKey[a.Key]
		if len(kts) == 0 {
			continue
		}
		// What attrTest.matches works out per test, once per attribute.
		isBlank, checked, lv, lvPairs := false, false, "", uint64(0)
		for k := range kts {
			kt := &kts[k]
			if kt.tag != "" && kt.tag != n.Data {
				continue
			}
			t := &kt.test
			if t.opc == 0 || t.opc == '=' {
				if t.matches(a.Val, i, low) {
					return true
				}
				continue
			}
			if !checked {
				isBlank, checked = blank(a.Val), true
			}
			if isBlank {
				continue
			}
			v := a.Val
			if t.fold {
				if lv == "" {
					lv = low.get(i, v)
					lvPairs = pairs(lv)
				}
				if lvPairs&t.pair != t.pair {
					continue
				}
				v = lv
			}
			if t.affix(v) {
				return true
			}
		}
	}
	for _, i := range in.rest {
		if fs := in.fast[i]; fs != nil {
			if fs.match(n, low) {
				return true
			}
		} else if in.block[i].Match(n) {
			return true
		}
	}
	return false
}
