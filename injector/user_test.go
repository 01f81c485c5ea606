package injector

import (
	"encoding/json"
	"html"
	"regexp"
	"testing"
)

// TestUserSelector: a dom: user rule's selector travels to the recorder in
// its config, and only when set.
func TestUserSelector(t *testing.T) {
	attr := regexp.MustCompile(`data-loupe="([^"]*)"`)
	config := func(in *Injector) map[string]any {
		t.Helper()
		m := attr.FindSubmatch(in.ScriptTag(Page{PageViewID: "pv", Token: "tok"}))
		if m == nil {
			t.Fatal("no data-loupe attribute")
		}
		var cfg map[string]any
		if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	in, err := New(Config{UserSelector: `#account .email, [data-user="me"]`})
	if err != nil {
		t.Fatal(err)
	}
	if got := config(in)["user"]; got != `#account .email, [data-user="me"]` {
		t.Errorf("got user %q, want the selector", got)
	}
	in, err = New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := config(in)["user"]; ok {
		t.Errorf("got user %q without a selector, want none", got)
	}
	for _, bad := range []string{"#a[", "p:contains(x)"} {
		if _, err := New(Config{UserSelector: bad}); err == nil {
			t.Errorf("selector %q: got nil error", bad)
		}
	}
}
