package injector

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.html")

// goldenInputs returns the testdata/*.input.html files.
func goldenInputs(t *testing.T) []string {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.input.html"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.input.html")
	}
	return inputs
}

// TestGolden rewrites each testdata/NAME.input.html and compares it with
// testdata/NAME.golden.html. Run with -update to rewrite the golden files.
func TestGolden(t *testing.T) {
	in := mustNew(t, Config{})
	for _, path := range goldenInputs(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".input.html")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := mustRewrite(t, in, string(src))
			golden := filepath.Join("testdata", name+".golden.html")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s: got\n%s\nwant\n%s", golden, got, want)
			}
		})
	}
}

// unmark removes what Rewrite inserts: the recorder tag and the marks.
func unmark(s, tag string) string {
	return strings.NewReplacer(
		tag, "",
		` class="rr-block"`, "",
		` class="rr-mask"`, "",
		` rr-block`, "",
		` rr-mask`, "",
	).Replace(s)
}

// TestOnlyInsertions checks that Rewrite changes nothing but what it
// inserts: without the tag and the marks, the output is the input.
func TestOnlyInsertions(t *testing.T) {
	in := mustNew(t, Config{})
	tag := string(in.ScriptTag(testPage))
	for _, path := range goldenInputs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out := mustRewrite(t, in, string(src))
			if n := strings.Count(out, tag); n != 1 {
				t.Errorf("got %d recorder tags, want 1", n)
			}
			if got := unmark(out, tag); got != string(src) {
				t.Errorf("got\n%s\nwant\n%s", got, src)
			}
		})
	}
}
