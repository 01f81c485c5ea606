package archive

import "testing"

func TestNormalizeURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "plain", in: "https://example.com/a.css", want: "https://example.com/a.css"},
		{name: "case", in: "HTTPS://Example.COM/A.css", want: "https://example.com/A.css"},
		{name: "default https port", in: "https://example.com:443/a.css", want: "https://example.com/a.css"},
		{name: "default http port", in: "http://example.com:80/a.css", want: "http://example.com/a.css"},
		{name: "other port kept", in: "http://example.com:8080/a.css", want: "http://example.com:8080/a.css"},
		{name: "https on 80 kept", in: "https://example.com:80/a.css", want: "https://example.com:80/a.css"},
		{name: "fragment", in: "https://example.com/i.svg#icon", want: "https://example.com/i.svg"},
		{name: "userinfo", in: "https://u:p@example.com/a.png", want: "https://example.com/a.png"},
		{name: "query kept", in: "https://example.com/a.css?v=2&b=1", want: "https://example.com/a.css?v=2&b=1"},
		{name: "escapes kept", in: "https://example.com/a%2Fb.png?q=%20", want: "https://example.com/a%2Fb.png?q=%20"},
		{name: "empty path", in: "https://example.com", want: "https://example.com/"},
		{name: "empty query", in: "https://example.com/a.css?", want: "https://example.com/a.css"},
		{name: "ipv6", in: "http://[::1]:80/a.css", want: "http://[::1]/a.css"},
		{name: "ipv6 port", in: "http://[FE80::1]:8080/a.css", want: "http://[fe80::1]:8080/a.css"},
		{name: "spaces trimmed", in: "  https://example.com/a.css\n", want: "https://example.com/a.css"},
		{name: "empty port", in: "https://example.com:/a.css", want: "https://example.com/a.css"},
		{name: "relative", in: "/a.css", wantErr: true},
		{name: "protocol relative", in: "//example.com/a.css", wantErr: true},
		{name: "data", in: "data:image/png;base64,AAAA", wantErr: true},
		{name: "ftp", in: "ftp://example.com/a.css", wantErr: true},
		{name: "no host", in: "https:///a.css", wantErr: true},
		{name: "opaque", in: "https:example.com/a.css", wantErr: true},
		{name: "bad escape", in: "https://example.com/%zz", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeURL(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NormalizeURL(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeURL(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzNormalizeURL checks that normalizing never panics and is idempotent.
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{"https://Example.com:443/a.css#x", "http://u@[::1]:80", "https://a/%2F?", "http://a:b@c:80/d?e#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		once, err := NormalizeURL(in)
		if err != nil {
			return
		}
		twice, err := NormalizeURL(once)
		if err != nil {
			t.Fatalf("NormalizeURL(%q) = %q, which does not normalize: %v", in, once, err)
		}
		if twice != once {
			t.Fatalf("NormalizeURL(%q) = %q, then %q: not idempotent", in, once, twice)
		}
	})
}
