package injector

import (
	"regexp"
	"strings"
)

// Most block selectors are a tag name and attribute tests
// ("input[name*=cvc i]"). cascadia matches each separately, lowering the
// attribute's value again for every selector; for those, the fast form
// does the same tests with cascadia's own semantics (strings.ToLower and
// strings.EqualFold for the " i" flag, blank values never matching a
// prefix, suffix or substring), lowering each value once per field, over
// the raw bytes of its tag or its decoded attributes alike (rawmark.go).
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
func pairs(v []byte) uint64 {
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
