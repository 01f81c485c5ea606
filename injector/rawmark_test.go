package injector

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// TestRawMarks: fields marked from their raw tags (rawmark.go) get the
// marks the tokenizer's path gives them, for selectors of every fast form,
// with repeated and differently cased attributes, blank and non-ASCII
// values, and marks already present.
func TestRawMarks(t *testing.T) {
	sels := []string{
		"input[type=password i]", "[name=cvc]", "select[id$=Pin i]", "[data-private]",
		"input[type=text][name^=card i]", `[autocomplete*=" cc-" i]`, "[name^='' i]",
		"textarea[name*=ß i]", "[name*=K i]", "[name=ǅ i]", "input[name^=x][id$=y]",
		"[id*='']", "[autocomplete$=exp]",
	}
	if !mustNew(t, Config{BlockSelectors: sels}).rawMarks {
		t.Fatal("all selectors are fast, yet fields are not marked raw")
	}
	if mustNew(t, Config{BlockSelectors: []string{"input.secret"}}).rawMarks {
		t.Fatal("a selector cascadia must match, yet fields are marked raw")
	}

	keys := []string{"name", "NAME", "id", "type", "Type", "autocomplete", "data-private", "class", "Class", "value"}
	vals := []string{"", " ", "\t", "cvc", "CVC", "card", "CARD_no", "email cc-exp", "cc-exp", "pin", "myPIN",
		"ß", "SS", "ẞ", "K", "k", "K", "ǅ", "ǆ", "xy", "x", "y", "password", "PassWord", "text", "TEXT",
		"hidden", "HIDDEN", "chec\u212Abox", "rr-mask", "a rr-mask", "rr-block", "x\u00a0rr-mask", "\xff"}
	tags := []string{"input", "INPUT", "select", "textarea"}
	rng := rand.New(rand.NewSource(1))
	var doc strings.Builder
	doc.WriteString("<html><head></head><body>")
	for i := 0; i < 3000; i++ {
		tag := tags[rng.Intn(len(tags))]
		fmt.Fprintf(&doc, "<%s", tag)
		for range rng.Intn(5) {
			k, v := keys[rng.Intn(len(keys))], vals[rng.Intn(len(vals))]
			switch rng.Intn(4) {
			case 0:
				fmt.Fprintf(&doc, " %s", k)
			case 1:
				fmt.Fprintf(&doc, " %s='%s'", k, v)
			default:
				fmt.Fprintf(&doc, " %s=\"%s\"", k, v)
			}
		}
		doc.WriteString(">")
		if strings.EqualFold(tag, "input") {
			continue
		}
		fmt.Fprintf(&doc, "x</%s>", tag)
	}
	out := rewriteBoth(t, Config{BlockSelectors: sels}, 0, []byte(doc.String()), nil)
	for _, mark := range []string{"rr-block", "rr-mask"} {
		if !strings.Contains(string(out), mark) {
			t.Errorf("no field got %s: the test checks too little", mark)
		}
	}
	// With selectors only cascadia matches, the skip feed reads fields
	// into an html.Node: the same marks again, and those selectors' too.
	withSlow := append([]string{"select:not([id])", "textarea.x"}, sels...)
	out2 := rewriteBoth(t, Config{BlockSelectors: withSlow}, 0, []byte(doc.String()), nil)
	if strings.Count(string(out2), "rr-block") <= strings.Count(string(out), "rr-block") {
		t.Error("the selectors cascadia matches blocked no more fields: the test checks too little")
	}
}
