package injector

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// TestFastSelectors: the fast form of a selector matches exactly the
// elements cascadia matches, Unicode case folding and blank values
// included, and selectors it cannot express are left to cascadia.
func TestFastSelectors(t *testing.T) {
	sels := append([]string{
		"input", "[name]", "input[name=cvc]", "input[name=CVC i]", "select[id$=Pin i]",
		"[data-private]", "input[type=text][name^=card i]", `[autocomplete*=" cc-" i]`,
		"[name^='' i]", "[name*=ß i]", "[name*=K i]", "[name=ǅ i]", "input[name^=x][id$=y]",
	}, DefaultBlockSelectors...)
	slow := []string{"form input", "input:not([type])", "#a", ".b", "[a~=b]", "[a|=b]", `[a="q\"x"]`, "a, b"}
	for _, s := range slow {
		g, err := cascadia.ParseGroup(s)
		if err != nil {
			t.Fatal(err)
		}
		if compileFast(g.String()) != nil {
			t.Errorf("%q: got a fast form, want cascadia", s)
		}
	}
	all, err := New(Config{BlockSelectors: append(slices.Clone(sels), slow...)})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"name", "id", "type", "autocomplete", "data-private", "class"}
	vals := []string{"", " ", "cvc", "CVC", "x-cvc-y", "card", "CARD_no", "cc-number", "email cc-exp", "pin", "myPIN",
		"ß", "SS", "ẞ", "K", "k", "K", "ǅ", "ǆ", "Ǆ", "İ", "i̇", "xy", "x", "y", "password", "PassWord", "text"}
	tags := []atom.Atom{atom.Input, atom.Select, atom.Textarea}
	rng := rand.New(rand.NewSource(1))
	// blocks is what mark decides of n: the fast forms over its values,
	// then cascadia for the selectors without one.
	blocks := func(in *Injector, n *html.Node) bool {
		var v rawVals
		v.keepAttrs(in.raw, n.Attr)
		if in.raw.blocks(fieldIndex(n.DataAtom), &v) {
			return true
		}
		for _, g := range in.slow {
			if g.Match(n) {
				return true
			}
		}
		return false
	}
	if len(all.slow) != len(slow) {
		t.Fatalf("%d selectors left to cascadia, want the %d slow ones", len(all.slow), len(slow))
	}
	for _, s := range sels {
		g, err := cascadia.ParseGroup(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		one := mustNew(t, Config{BlockSelectors: []string{s}})
		if len(one.slow) != 0 {
			t.Errorf("%q (%q): no fast form", s, g.String())
			continue
		}
		for i := 0; i < 3000; i++ {
			a := tags[rng.Intn(len(tags))]
			n := &html.Node{Type: html.ElementNode, DataAtom: a, Data: a.String()}
			for k := rng.Intn(4); k > 0; k-- {
				key := keys[rng.Intn(len(keys))]
				if slices.ContainsFunc(n.Attr, func(a html.Attribute) bool { return a.Key == key }) {
					continue // the tokenizer keeps the first of repeated names
				}
				n.Attr = append(n.Attr, html.Attribute{Key: key, Val: vals[rng.Intn(len(vals))] + vals[rng.Intn(len(vals))]})
			}
			if got, want := blocks(one, n), g.Match(n); got != want {
				t.Fatalf("%q on <%s %v>: fast %v, cascadia %v", s, n.Data, n.Attr, got, want)
			}
			want := false
			for _, g := range all.block {
				want = want || g.Match(n)
			}
			if got := blocks(all, n); got != want {
				t.Fatalf("all selectors on <%s %v>: filed %v, cascadia %v", n.Data, n.Attr, got, want)
			}
		}
	}
}
