package injector

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/net/html"
)

var testPage = Page{PageViewID: "pv-1", Token: "tok.en"}

func mustNew(tb testing.TB, cfg Config) *Injector {
	tb.Helper()
	in, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return in
}

func mustRewrite(tb testing.TB, in *Injector, src string) string {
	tb.Helper()
	var out bytes.Buffer
	if err := in.Rewrite(&out, strings.NewReader(src), testPage); err != nil {
		tb.Fatalf("Rewrite(%q): %v", src, err)
	}
	return out.String()
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error
	}{
		{"bad block selector", Config{BlockSelectors: []string{"input", "input[name"}}, `"input[name"`},
		{"empty selector", Config{BlockSelectors: []string{" "}}, `" "`},
		{"cascadia extension", Config{BlockSelectors: []string{`p:contains("x")`}}, `:contains`},
		{"not-equal extension", Config{BlockSelectors: []string{`[a!=b]`}}, `!=`},
		{"bad mask selector", Config{MaskTextSelectors: []string{".ok", "::"}}, `"::"`},
		{"relative prefix", Config{Prefix: "loupe/"}, `"loupe/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %s", err, tt.want)
			}
		})
	}
}

func TestMayNeedAncestors(t *testing.T) {
	tests := []struct {
		sel  string
		want bool
	}{
		{`input[type="password" i]`, false},
		{`[autocomplete*=" cc-" i]`, false},
		{`[data-x="a > b"]`, false},
		{`input.secret#x`, false},
		{`form input`, true},
		{`form>input`, true},
		{`label + input`, true},
		{`input:not([type="hidden"])`, true},
		{`:lang(fr) input`, true},
		{`[a="unterminated`, true},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			if got := mayNeedAncestors(tt.sel); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	for _, s := range DefaultBlockSelectors {
		g, _ := compile(s)
		if mayNeedAncestors(g.String()) {
			t.Errorf("default selector %q looks at ancestors; rewriting gets slower", s)
		}
	}
}

func TestDefaultBlockSelectorsCompile(t *testing.T) {
	for _, s := range DefaultBlockSelectors {
		if _, err := compile(s); err != nil {
			t.Errorf("compile(%q): %v", s, err)
		}
	}
}

// dataLoupe returns the decoded data-loupe attribute of the first tag in b.
func dataLoupe(t *testing.T, b []byte) recorderConfig {
	t.Helper()
	z := html.NewTokenizer(bytes.NewReader(b))
	if tt := z.Next(); tt != html.StartTagToken {
		t.Fatalf("got token %v, want a start tag", tt)
	}
	tok := z.Token()
	if tok.Data != "script" {
		t.Fatalf("got <%s>, want <script>", tok.Data)
	}
	var src, cfg string
	deferred := false
	for _, a := range tok.Attr {
		switch a.Key {
		case "src":
			src = a.Val
		case "defer":
			deferred = true
		case "data-loupe":
			cfg = a.Val
		}
	}
	if !deferred {
		t.Errorf("script is not deferred")
	}
	if !strings.HasSuffix(src, "recorder.js") {
		t.Errorf("got src %q, want …recorder.js", src)
	}
	var c recorderConfig
	dec := json.NewDecoder(strings.NewReader(cfg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode data-loupe %q: %v", cfg, err)
	}
	return c
}

func TestScriptTag(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		page Page
		want recorderConfig
	}{
		{
			name: "defaults",
			page: testPage,
			want: recorderConfig{V: 1, PV: "pv-1", Token: "tok.en", Ingest: "/__loupe/ingest",
				Block: strings.Join(DefaultBlockSelectors, ", ")},
		},
		{
			name: "own prefix and selectors",
			cfg:  Config{Prefix: "/rec", BlockSelectors: []string{".secret", `[data-x="a b"]`}, MaskTextSelectors: []string{".pii", "address"}},
			page: Page{PageViewID: `"><script>`, Token: "a&b'c"},
			want: recorderConfig{V: 1, PV: `"><script>`, Token: "a&b'c", Ingest: "/rec/ingest",
				Block: `.secret, [data-x="a b"]`, MaskText: ".pii, address"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustNew(t, tt.cfg)
			tag := in.ScriptTag(tt.page)
			if !bytes.HasSuffix(tag, []byte("></script>")) {
				t.Errorf("got %s, want it to end in ></script>", tag)
			}
			if got := dataLoupe(t, tag); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// Keys in the documented order: the recorder's tests pin this string.
	in := mustNew(t, Config{BlockSelectors: []string{"b"}})
	want := `<script src="/__loupe/recorder.js" defer data-loupe="{&#34;v&#34;:1,&#34;pv&#34;:&#34;p&#34;,&#34;token&#34;:&#34;t&#34;,&#34;ingest&#34;:&#34;/__loupe/ingest&#34;,&#34;block&#34;:&#34;b&#34;,&#34;maskText&#34;:&#34;&#34;}"></script>`
	if got := string(in.ScriptTag(Page{PageViewID: "p", Token: "t"})); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// A versioned bundle URL, escaped for the attribute.
	in = mustNew(t, Config{RecorderVersion: "ab&c"})
	if got, want := string(in.ScriptTag(testPage)), `<script src="/__loupe/recorder.js?v=ab%26c" defer`; !strings.HasPrefix(got, want) {
		t.Errorf("got %s, want it to start with %s", got, want)
	}
}

// TestMarks checks which class each field gets with the default selectors.
func TestMarks(t *testing.T) {
	tests := []struct {
		name string
		tag  string
		want string // class added, "" for none
	}{
		{"password", `<input type="password">`, "rr-block"},
		{"password upper case", `<INPUT TYPE=PASSWORD>`, "rr-block"},
		{"cc-number", `<input autocomplete="cc-number">`, "rr-block"},
		{"cc-exp upper", `<input autocomplete="CC-EXP">`, "rr-block"},
		{"billing cc-csc", `<input autocomplete="billing cc-csc">`, "rr-block"},
		{"cc select", `<select autocomplete="cc-exp-month">`, "rr-block"},
		{"name cardnumber", `<input name="cardNumber">`, "rr-block"},
		{"name card-number", `<input name="billing[card-number]">`, "rr-block"},
		{"name card_number", `<input name="card_number">`, "rr-block"},
		{"name ccnum", `<input name="ccnum">`, "rr-block"},
		{"name cvc", `<input name="cvc">`, "rr-block"},
		{"id cvv", `<input id="CVV2">`, "rr-block"},
		{"name csc", `<input name="card-csc">`, "rr-block"},
		{"security code", `<input name="securityCode">`, "rr-block"},
		{"security-code id", `<input id="security-code">`, "rr-block"},
		{"iban", `<input name="iban">`, "rr-block"},
		{"ssn id", `<input id="ssn">`, "rr-block"},
		{"hidden password", `<input type=hidden name=cvc>`, "rr-block"},
		{"email", `<input name="email" type="email">`, "rr-mask"},
		{"fullname", `<input name="fullname">`, "rr-mask"},
		{"text", `<input type=text name=q>`, "rr-mask"},
		{"no type", `<input>`, "rr-mask"},
		{"textarea", `<textarea name=msg>`, "rr-mask"},
		{"select", `<select name=country>`, "rr-mask"},
		{"hidden", `<input type=hidden name=csrf>`, ""},
		{"hidden upper", `<input type=HIDDEN>`, ""},
		{"submit", `<input type=submit>`, ""},
		{"button", `<input type=button>`, ""},
		{"reset", `<input type=reset>`, ""},
		{"image", `<input type=image>`, ""},
		{"checkbox", `<input type=checkbox>`, ""},
		{"radio", `<input type=radio>`, ""},
		{"in svg", `<svg><input>`, ""},
		{"in foreignObject", `<svg><foreignObject><input>`, "rr-mask"},
		{"after svg", `<svg></svg><input>`, "rr-mask"},
		{"svg broken out", `<svg><div><input>`, "rr-mask"},
	}
	in := mustNew(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustRewrite(t, in, "<body>"+tt.tag)
			var got string
			for _, m := range []string{"rr-block", "rr-mask"} {
				if strings.Contains(out, m) {
					got = m
				}
			}
			if got != tt.want {
				t.Errorf("%s: got mark %q, want %q (output %s)", tt.tag, got, tt.want, out)
			}
		})
	}
}

// TestAncestorSelectors checks that selectors see the open elements.
func TestAncestorSelectors(t *testing.T) {
	in := mustNew(t, Config{BlockSelectors: []string{"form.payment input", "#private > textarea", "body > select"}})
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"inside form", `<form class="x payment"><div><input name=a></div></form>`, "rr-block"},
		{"after form closed", `<form class=payment></form><input name=a>`, "rr-mask"},
		{"implied p close", `<form class=payment><p>a<p><input></form>`, "rr-block"},
		{"child", `<div id=private><textarea></textarea></div>`, "rr-block"},
		{"grandchild", `<div id=private><p><textarea></textarea></div>`, "rr-mask"},
		{"li closes li", `<div id=private><ul><li>a<li><textarea>`, "rr-mask"},
		{"body child", `<html><head></head><body><select>`, "rr-block"},
		{"body child without head end", `<html><head><title>t</title><body><select>`, "rr-block"},
		{"void not pushed", `<body><br><img><select>`, "rr-block"},
		{"inside template", `<template><form class=payment><input>`, "rr-block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustRewrite(t, in, tt.doc)
			got := "rr-mask"
			if strings.Contains(out, "rr-block") {
				got = "rr-block"
			}
			if got != tt.want {
				t.Errorf("got %s, want %s (output %s)", got, tt.want, out)
			}
		})
	}
}

// TestDeepNesting checks the stack stays bounded and still closes elements.
func TestDeepNesting(t *testing.T) {
	in := mustNew(t, Config{BlockSelectors: []string{"form input"}})
	doc := "<form>" + strings.Repeat("<div>", 2*maxDepth) + strings.Repeat("</div>", 2*maxDepth) + "</form><input>"
	out := mustRewrite(t, in, doc)
	if !strings.Contains(out, `<input class="rr-mask">`) {
		t.Errorf("got %s, want the input after </form> masked, not blocked", out[len(out)-60:])
	}
}

func TestAddClass(t *testing.T) {
	tests := []struct {
		name, tag, want string
	}{
		{"no attributes", `<input>`, `<input class="rr-mask">`},
		{"self-closing", `<input/>`, `<input class="rr-mask"/>`},
		{"self-closing spaced", `<input name=a />`, `<input class="rr-mask" name=a />`},
		{"upper case", `<INPUT NAME=A>`, `<INPUT class="rr-mask" NAME=A>`},
		{"newline after name", "<input\nname=a>", "<input class=\"rr-mask\"\nname=a>"},
		{"double quoted", `<input class="a b" x>`, `<input class="a b rr-mask" x>`},
		{"single quoted", `<input class='a'>`, `<input class='a rr-mask'>`},
		{"empty quoted", `<input class="">`, `<input class="rr-mask">`},
		{"unquoted", `<input class=a>`, `<input class="a rr-mask">`},
		{"unquoted with quote", `<input class=a"b>`, `<input class="a&#34;b rr-mask">`},
		{"unquoted empty", `<input class=>`, `<input class="rr-mask">`},
		{"no value", `<input class disabled>`, `<input class="rr-mask" disabled>`},
		{"upper CLASS", `<input CLASS="a">`, `<input CLASS="a rr-mask">`},
		{"spaces around =", `<input class = "a" >`, `<input class = "a rr-mask" >`},
		{"first of two", `<input class="a" class="b">`, `<input class="a rr-mask" class="b">`},
		{"class in a value", `<input title="class=x" class=y>`, `<input title="class=x" class="y rr-mask">`},
		{"already marked", `<input class="rr-mask">`, `<input class="rr-mask">`},
		{"data-class is not class", `<input data-class=a>`, `<input class="rr-mask" data-class=a>`},
		{"leading equals", `<input =class=a>`, `<input class="rr-mask" =class=a>`},
		{"slash between", `<input/class=a>`, `<input/class="a rr-mask">`},
	}
	in := mustNew(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustRewrite(t, in, "<body>"+tt.tag); !strings.HasSuffix(got, tt.want) {
				t.Errorf("got %s, want suffix %s", got, tt.want)
			}
			// The rewritten tag keeps every attribute the tokenizer saw,
			// with class extended.
			out := mustRewrite(t, in, "<body>"+tt.tag)
			if wantAttrs, gotAttrs := attrsOf(t, tt.want), attrsOf(t, out[strings.LastIndex(out, "<"):]); !equalAttrs(gotAttrs, wantAttrs) {
				t.Errorf("got attributes %v, want %v", gotAttrs, wantAttrs)
			}
		})
	}
}

func attrsOf(t *testing.T, tag string) []html.Attribute {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(tag))
	z.Next()
	return z.Token().Attr
}

func equalAttrs(a, b []html.Attribute) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestInsertion checks where the recorder tag goes. {T} stands for it.
func TestInsertion(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty", ``, `{T}`},
		{"only doctype", `<!DOCTYPE html>`, `<!DOCTYPE html>{T}`},
		{"only comments", "<!-- a -->\n<!-- b -->\n", "<!-- a -->\n<!-- b -->\n{T}"},
		{"head", `<html><head><title>x</title>`, `<html><head>{T}<title>x</title>`},
		{"head with attributes", `<head profile="x">`, `<head profile="x">{T}`},
		{"head upper case", `<HTML><HEAD><TITLE>x</TITLE>`, `<HTML><HEAD>{T}<TITLE>x</TITLE>`},
		{"whitespace after head", "<head>\n  <title>", "<head>\n  {T}<title>"},
		{"meta charset first", `<head><meta charset="utf-8"><title>`, `<head><meta charset="utf-8">{T}<title>`},
		{"meta http-equiv", `<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><title>`, `<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">{T}<title>`},
		{"comment then meta charset", "<head>\n<!-- c -->\n<meta charset=utf-8>", "<head>\n<!-- c -->\n<meta charset=utf-8>{T}"},
		{"other meta first", `<head><meta name="viewport"><meta charset=utf-8>`, `<head>{T}<meta name="viewport"><meta charset=utf-8>`},
		{"meta charset without head", `<!doctype html><meta charset=utf-8><title>`, `<!doctype html><meta charset=utf-8>{T}<title>`},
		{"no head: title", `<!doctype html><html><title>x</title>`, `<!doctype html><html>{T}<title>x</title>`},
		{"no head: body", `<html><body><p>x`, `<html>{T}<body><p>x`},
		{"fragment", `<div>hi</div>`, `{T}<div>hi</div>`},
		{"text", `hello <b>world</b>`, `{T}hello <b>world</b>`},
		{"text after whitespace", "\n\n  hello", "{T}\n\n  hello"},
		{"end tag first", `</p>x`, `{T}</p>x`},
		{"head end only", `<head></head>`, `<head>{T}</head>`},
		{"template first", `<template><head></head></template>`, `{T}<template><head></head></template>`},
		{"head inside template later", `<head></head><body><template><head>`, `<head>{T}</head><body><template><head>`},
		{"svg first", `<svg><head></svg>`, `{T}<svg><head></svg>`},
		{"script first", `<script>var s = "<head>";</script>`, `{T}<script>var s = "<head>";</script>`},
		{"script in head", `<head><script>document.write("<head>")</script>`, `<head>{T}<script>document.write("<head>")</script>`},
		{"byte order mark", "\ufeff<!doctype html><p>", "\ufeff<!doctype html>{T}<p>"},
		{"unfinished tag", `<html><hea`, `<html>{T}<hea`},
		{"unfinished head", `<head`, `{T}<head`},
		{"unfinished comment", "<!-- a -->\n<!-- b", "<!-- a -->\n{T}<!-- b"},
		{"unfinished doctype", "<!doctype", "{T}<!doctype"},
		{"unfinished after head", `<head><met`, `<head>{T}<met`},
		{"once only", `<head></head><head></head>`, `<head>{T}</head><head></head>`},
	}
	in := mustNew(t, Config{})
	tag := string(in.ScriptTag(testPage))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := strings.ReplaceAll(tt.want, "{T}", tag)
			if got := mustRewrite(t, in, tt.doc); got != want {
				t.Errorf("got  %s\nwant %s", strings.ReplaceAll(got, tag, "{T}"), tt.want)
			}
		})
	}
}

// TestBufferExceeded checks that a token over the limit makes the rest of
// the document pass through unchanged.
func TestBufferExceeded(t *testing.T) {
	in := mustNew(t, Config{})
	in.maxBuf = 64
	long := strings.Repeat("x", 200)
	tests := []struct {
		name, doc, want string
	}{
		{"after insertion", `<head><script>` + long + `</script><input>`, `<head>{T}<script>` + long + `</script><input>`},
		{"before insertion", `<!--` + long + `--><head><input>`, `<!--` + long + `--><head><input>`},
		{"long comment after head", `<head><!--` + long + `--><input>`, `<head>{T}<!--` + long + `--><input>`},
		{"long tag", `<head><input title="` + long + `">`, `<head>{T}<input title="` + long + `">`},
	}
	tag := string(in.ScriptTag(testPage))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := strings.ReplaceAll(tt.want, "{T}", tag)
			// One byte at a time, so the tokenizer's buffer is refilled
			// mid-token.
			var out bytes.Buffer
			if err := in.Rewrite(&out, iotest.OneByteReader(strings.NewReader(tt.doc)), testPage); err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if got := out.String(); got != want {
				t.Errorf("got  %s\nwant %s", strings.ReplaceAll(got, tag, "{T}"), tt.want)
			}
		})
	}
}

// TestReadError checks that a failing source is reported and what was read
// is passed on.
func TestReadError(t *testing.T) {
	in := mustNew(t, Config{})
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("<head><title>x"), iotest.ErrReader(boom))
	var out bytes.Buffer
	err := in.Rewrite(&out, src, testPage)
	if !errors.Is(err, boom) {
		t.Errorf("got error %v, want %v", err, boom)
	}
	if want := "<head>" + string(in.ScriptTag(testPage)) + "<title>x"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestWriteError(t *testing.T) {
	in := mustNew(t, Config{})
	err := in.Rewrite(failWriter{}, strings.NewReader("<p>"), testPage)
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("got error %v, want the writer's", err)
	}
}

// TestScriptTagFastPath: the tag built from the precomputed JSON is the
// one escaping the whole JSON gives, for safe and unsafe ids and tokens.
func TestScriptTagFastPath(t *testing.T) {
	in, err := New(Config{UserSelector: "#user", MaskTextSelectors: []string{".secret"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "pv", "01HZX-abc_9.z:~+/=", `a"b`, "a<b>&'", "é", "a\u2028b", "a\\b", "a\nb"} {
		for _, p := range []Page{{PageViewID: s, Token: "tok"}, {PageViewID: "pv", Token: s}} {
			want := string(in.tagStart) + html.EscapeString(string(in.configJSON(p))) + `"></script>`
			if got := string(in.ScriptTag(p)); got != want {
				t.Errorf("%q:\n got %s\nwant %s", s, got, want)
			}
		}
	}
}
