package injector

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// benchPage builds a page of about size bytes: a typical head, then
// repeated product cards and checkout-like forms with many fields.
func benchPage(size int) []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop</title><link rel="stylesheet" href="/assets/site.css?v=42"><script>window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}</script>
<style>.card{display:flex;gap:1rem}.card img{width:120px}</style></head><body class="page">`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `
<div class="card" id="p%d"><img src="/img/p%d.jpg" alt="Product %d" loading="lazy"><div class="body"><h2><a href="/p/%d">Product %d</a></h2>
<p>Freshly roasted beans from a small farm. <strong>€%d.90</strong> &ndash; ships in 2 days.</p></div></div>
<form class="payment" method="post" action="/cart/%d"><fieldset><legend>Buy</legend>
<input type="hidden" name="csrf" value="tok%d"><label>Qty <input type="number" name="qty" value="1" min="1"></label>
<label>Email <input type="email" name="email" autocomplete="email" class="field"></label>
<label>Card <input name="cc" autocomplete="cc-number" inputmode="numeric"></label>
<label>CVC <input name="cvc" maxlength="4"></label><textarea name="note" rows="2"></textarea>
<select name="size"><option>250g</option><option>1kg</option></select><button type="submit">Add</button></fieldset></form>`, i, i, i, i, i, i, i, i)
	}
	b.WriteString("\n</body></html>\n")
	return []byte(b.String())
}

// BenchmarkRewrite rewrites a ~100 KB page with many form fields.
func BenchmarkRewrite(b *testing.B) {
	in := mustNew(b, Config{})
	page := benchPage(100 << 10)
	p := Page{PageViewID: "pv", Token: "token"}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if err := in.Rewrite(io.Discard, bytes.NewReader(page), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenizeOnly copies the same page token by token with no
// rewriting: the floor BenchmarkRewrite is measured against.
func BenchmarkTokenizeOnly(b *testing.B) {
	page := benchPage(100 << 10)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		z := html.NewTokenizer(bytes.NewReader(page))
		for z.Next() != html.ErrorToken {
			io.Discard.Write(z.Raw())
		}
	}
}

// formPage returns bench/gen-content.sh's 50 KB form page, the page
// bench/run.sh measures.
func formPage(b *testing.B) []byte {
	b.Helper()
	dir := b.TempDir()
	if out, err := exec.Command("bash", filepath.Join("..", "bench", "gen-content.sh"), dir).CombinedOutput(); err != nil {
		b.Skipf("gen-content.sh: %v\n%s", err, out)
	}
	page, err := os.ReadFile(filepath.Join(dir, "form.html"))
	if err != nil {
		b.Fatal(err)
	}
	return page
}

func benchInject(b *testing.B, page []byte, skip bool) {
	in := mustNew(b, Config{})
	in.skip = skip
	p := Page{PageViewID: "pv", Token: "token"}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if err := in.Rewrite(io.Discard, bytes.NewReader(page), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInjectForm rewrites bench/run.sh's 50 KB form page (160
// fields).
func BenchmarkInjectForm(b *testing.B) { benchInject(b, formPage(b), true) }

// BenchmarkInjectFormNoSkip is BenchmarkInjectForm with the tokenizer
// reading every byte (as before the skip feed).
func BenchmarkInjectFormNoSkip(b *testing.B) { benchInject(b, formPage(b), false) }
