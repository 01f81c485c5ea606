package injector

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// token is what FuzzInject compares between input and output.
type token struct {
	tt   html.TokenType
	raw  string // for text, comments and doctypes
	name string // for tags
	attr []html.Attribute
}

// tokenize returns the tokens of doc as Rewrite reads them (with its
// foreign-content handling), adjacent text merged, and the tokenizer's
// final error.
func tokenize(t *testing.T, doc []byte) ([]token, error) {
	t.Helper()
	in := mustNew(t, Config{})
	var toks []token
	var err error
	in.trace = func(tt html.TokenType, z *html.Tokenizer) {
		switch tt {
		case html.ErrorToken:
			err = z.Err()
		case html.TextToken:
			if n := len(toks); n > 0 && toks[n-1].tt == html.TextToken {
				toks[n-1].raw += string(z.Raw())
				return
			}
			toks = append(toks, token{tt: tt, raw: string(z.Raw())})
		case html.CommentToken, html.DoctypeToken:
			toks = append(toks, token{tt: tt, raw: string(z.Raw())})
		default:
			// Read the tag from a copy: calling z.Token here would use up
			// the name and attributes before Rewrite sees them.
			tz := html.NewTokenizer(bytes.NewReader(slices.Clone(z.Raw())))
			tz.Next()
			tok := tz.Token()
			toks = append(toks, token{tt: tt, name: tok.Data, attr: tok.Attr})
		}
	}
	if err := in.Rewrite(io.Discard, bytes.NewReader(doc), testPage); err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return toks, err
}

// classless returns attr without class, and the class value.
func classless(attr []html.Attribute) ([]html.Attribute, string, bool) {
	for i, a := range attr {
		if a.Key == "class" {
			return slices.Delete(slices.Clone(attr), i, i+1), a.Val, true
		}
	}
	return attr, "", false
}

// sameTag reports whether out is in with at most a mark added to its class.
func sameTag(in, out token) bool {
	if in.tt != out.tt || in.name != out.name {
		return false
	}
	inAttr, inClass, _ := classless(in.attr)
	outAttr, outClass, _ := classless(out.attr)
	if !slices.Equal(inAttr, outAttr) {
		return false
	}
	if inClass == outClass {
		return true
	}
	want := strings.Fields(inClass)
	for _, m := range []string{"rr-block", "rr-mask"} {
		if slices.Equal(strings.Fields(outClass), append(slices.Clone(want), m)) {
			return true
		}
	}
	return false
}

func addSeeds(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.input.html"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "<", "<head", "<head>", "\ufeff", "<html><head><meta charset=x>",
		"<svg><style></svg><input></style>", "<svg><![CDATA[<input>]]></svg>",
		"<input class=a\"b>", "<input class=>", "<input/class=a>", "<input =class>",
		"<select><textarea>", "<plaintext><input>", "<template><head></template>",
		"<math><mi><input></mi></math>", "<svg><title><input></title></svg>",
	} {
		f.Add([]byte(s))
	}
}

// FuzzInject checks, for any input, that Rewrite does not panic, inserts
// exactly one recorder tag, and keeps every token of the page: the output's
// tokens are the input's plus the tag, with at most a mark added to a class.
func FuzzInject(f *testing.F) {
	addSeeds(f)
	in := mustNew(f, Config{})
	tag := in.ScriptTag(testPage)
	f.Fuzz(func(t *testing.T, doc []byte) {
		var out bytes.Buffer
		if err := in.Rewrite(&out, bytes.NewReader(doc), testPage); err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		if got, want := bytes.Count(out.Bytes(), tag), bytes.Count(doc, tag)+1; got != want {
			t.Fatalf("got %d recorder tags, want %d\noutput %q", got, want, out.Bytes())
		}

		checkTokens(t, doc, out.Bytes())
	})
}

// checkTokens fails unless out, Rewrite's output for doc, is HTML the
// tokenizer reads to EOF and holds every token of doc, in order, plus the
// recorder tag, with at most a mark added to a class.
func checkTokens(t *testing.T, doc, out []byte) {
	t.Helper()
	// Plain tokenizer: the output is still HTML it reads to EOF.
	z := html.NewTokenizer(bytes.NewReader(out))
	for z.Next() != html.ErrorToken {
	}
	if err := z.Err(); err != io.EOF {
		t.Fatalf("tokenize output: got error %v, want EOF", err)
	}

	inToks, inErr := tokenize(t, doc)
	outToks, outErr := tokenize(t, out)
	if inErr != io.EOF || outErr != io.EOF {
		t.Fatalf("got errors %v, %v, want EOF", inErr, outErr)
	}
	// Drop the inserted tag (its start and end) from the output.
	inserted := func(j int) bool {
		o := outToks[j]
		return o.tt == html.StartTagToken && o.name == "script" && len(o.attr) == 3 && o.attr[2].Key == "data-loupe" &&
			j+1 < len(outToks) && outToks[j+1].tt == html.EndTagToken
	}
	i := 0
	for j := 0; j < len(outToks); j++ {
		o := outToks[j]
		if inserted(j) {
			if i < len(inToks) && sameTag(inToks[i], o) {
				// The page's own identical tag; keep matching.
			} else {
				j++
				continue
			}
		}
		if i >= len(inToks) {
			t.Fatalf("output token %d %+v is extra\ninput  %q\noutput %q", j, o, doc, out)
		}
		want := inToks[i]
		ok := false
		switch want.tt {
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			ok = sameTag(want, o)
		default:
			ok = o.tt == want.tt && o.raw == want.raw
			// The tag may go between two text tokens (" " and a "</"
			// ending the input: it goes before the first that is not
			// space), which the input's list holds joined: join them
			// back.
			if !ok && o.tt == html.TextToken && want.tt == html.TextToken && j+3 < len(outToks) && inserted(j+1) &&
				outToks[j+3].tt == html.TextToken && o.raw+outToks[j+3].raw == want.raw {
				ok = true
				j += 3
			}
		}
		if !ok {
			t.Fatalf("token %d: got %+v, want %+v\ninput  %q\noutput %q", i, o, want, doc, out)
		}
		i++
	}
	if i != len(inToks) {
		t.Fatalf("output lost input tokens from %d: %+v\ninput  %q\noutput %q", i, inToks[i:], doc, out)
	}
}
