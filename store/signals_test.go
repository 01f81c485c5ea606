package store

import (
	"strings"
	"testing"
)

func TestFriction(t *testing.T) {
	for _, tt := range []struct {
		c         SignalCounts
		converted bool
		want      float64
	}{
		{SignalCounts{}, false, 0},
		{SignalCounts{RageClick: 1}, false, 3},
		{SignalCounts{RageClick: 1, DeadClick: 2, ErrorClick: 1, JSError: 1, ServerError: 1, FormAbandon: 1}, false, 3 + 2 + 3 + 1 + 2 + 2},
		{SignalCounts{JSError: 100}, false, 5},                // capped at 5
		{SignalCounts{FormAbandon: 9}, false, 6},              // capped at 3
		{SignalCounts{RageClick: 1, DeadClick: 2}, true, 2.5}, // halved
		{SignalCounts{RageClick: 9, DeadClick: 9, ErrorClick: 9, JSError: 9, ServerError: 9, FormAbandon: 9}, false, 56},
	} {
		if got := Friction(tt.c, tt.converted); got != tt.want {
			t.Errorf("Friction(%+v, %v) = %v, want %v", tt.c, tt.converted, got, tt.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tt := range []struct {
		g, s string
		want bool
	}{
		{"", "", true},
		{"*", "", true},
		{"*", "a/b/c", true},
		{"/a*", "/abc?x=1", true},
		{"/a?c", "/abc", true},
		{"/a?c", "/ac", false},
		{"*/cart", "https://x/cart", true},
		{"*/cart", "https://x/cart/2", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"é?", "éé", true},
	} {
		if got := GlobMatch(tt.g, tt.s); got != tt.want {
			t.Errorf("GlobMatch(%q, %q) = %v", tt.g, tt.s, got)
		}
	}
	if got := globToLike(`50%_off\*`); got != `50\%\_off\\%` {
		t.Errorf("globToLike: %s", got)
	}
}

func TestBuildSessionQuery(t *testing.T) {
	f := SessionFilter{Signals: []string{SignalRageClick, SignalConsoleError}, Browser: "Chrome", URL: "/a*", Sort: SortFriction}
	lite := BuildSessionQuery(&f, false)
	pg := BuildSessionQuery(&f, true)
	for _, want := range []string{"rage_click_count >= 1", "+browser = ?", "v.url GLOB ?", "g.kind = ?"} {
		if !strings.Contains(lite.Where, want) {
			t.Errorf("sqlite where %q lacks %q", lite.Where, want)
		}
	}
	for _, want := range []string{"rage_click_count > 0", "browser = $3", `v.url LIKE $2 ESCAPE '\'`, "g.kind = $1"} {
		if !strings.Contains(pg.Where, want) {
			t.Errorf("postgres where %q lacks %q", pg.Where, want)
		}
	}
	if len(lite.Args) != 3 || lite.Args[1] != "/a*" || pg.Args[1] != "/a%" {
		t.Errorf("args %v %v", lite.Args, pg.Args)
	}
	if !strings.HasPrefix(pg.OrderBy, "friction DESC, started_at DESC NULLS LAST") {
		t.Errorf("order %q", pg.OrderBy)
	}
}

func TestCheckTags(t *testing.T) {
	got, err := CheckTags([]string{"b", " a ", "b"})
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Errorf("CheckTags: %v %v", got, err)
	}
	if got, err := CheckTags(nil); err != nil || got == nil {
		t.Errorf("CheckTags(nil): %#v %v", got, err)
	}
	for _, bad := range [][]string{{" "}, {strings.Repeat("x", MaxTagLen+1)}, {"a\tb"}} {
		if _, err := CheckTags(bad); err == nil {
			t.Errorf("CheckTags(%q): no error", bad)
		}
	}
}
