package replayer

import "testing"

func TestPageShownAt(t *testing.T) {
	shown := []pageAt{{100, "/a"}, {200, "/b"}, {300, "/c"}}
	for _, tc := range []struct {
		ms   int64
		want string
	}{
		{50, "/a"}, // before every page view: the first
		{100, "/a"},
		{150, "/a"},
		{200, "/b"},
		{299, "/b"},
		{1000, "/c"},
	} {
		if got := pageShownAt(shown, tc.ms); got != tc.want {
			t.Errorf("pageShownAt(%d) = %q, want %q", tc.ms, got, tc.want)
		}
	}
	if got := pageShownAt(nil, 5); got != "" {
		t.Errorf("no page views: %q", got)
	}
}
