package archive

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPolicySkip(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		method string
		url    string
		status int
		length int64
		header []string // response headers, name then value
		reqHdr []string // request headers
		want   string   // "" when archived
	}{
		{name: "css", header: []string{"Content-Type", "text/css; charset=utf-8"}},
		{name: "woff2", header: []string{"Content-Type", "font/woff2"}},
		{name: "old font type", header: []string{"Content-Type", "application/font-woff"}},
		{name: "eot", header: []string{"Content-Type", "application/vnd.ms-fontobject"}},
		{name: "png", header: []string{"Content-Type", "image/png"}},
		{name: "svg", header: []string{"Content-Type", "IMAGE/SVG+XML"}},
		{name: "html", header: []string{"Content-Type", "text/html"}, want: "content type"},
		{name: "javascript", header: []string{"Content-Type", "text/javascript"}, want: "content type"},
		{name: "no type", want: "content type"},
		{name: "extra type", policy: Policy{ExtraTypes: []string{"text/javascript"}}, header: []string{"Content-Type", "text/javascript"}},
		{name: "extra wildcard", policy: Policy{ExtraTypes: []string{"video/*"}}, header: []string{"Content-Type", "video/mp4"}},

		{name: "HEAD", method: http.MethodHead, header: []string{"Content-Type", "text/css"}, want: "method HEAD"},
		{name: "POST", method: http.MethodPost, header: []string{"Content-Type", "text/css"}, want: "method POST"},
		{name: "206", status: http.StatusPartialContent, header: []string{"Content-Type", "image/png"}, want: "status 206"},
		{name: "304", status: http.StatusNotModified, header: []string{"Content-Type", "image/png"}, want: "status 304"},
		{name: "404", status: http.StatusNotFound, header: []string{"Content-Type", "image/png"}, want: "status 404"},

		{name: "length at bound", policy: Policy{MaxBytes: 100}, length: 100, header: []string{"Content-Type", "text/css"}},
		{name: "length over bound", policy: Policy{MaxBytes: 100}, length: 101, header: []string{"Content-Type", "text/css"}, want: "too large"},
		{name: "default bound", length: 8<<20 + 1, header: []string{"Content-Type", "text/css"}, want: "too large"},
		{name: "disabled", policy: Policy{MaxBytes: -1}, header: []string{"Content-Type", "text/css"}, want: "archiving disabled"},

		{name: "gzip", header: []string{"Content-Type", "text/css", "Content-Encoding", "gzip"}},
		{name: "br", header: []string{"Content-Type", "text/css", "Content-Encoding", "br"}},
		{name: "zstd", header: []string{"Content-Type", "text/css", "Content-Encoding", "zstd"}},
		{name: "deflate", header: []string{"Content-Type", "text/css", "Content-Encoding", "deflate"}},
		{name: "identity", header: []string{"Content-Type", "text/css", "Content-Encoding", "identity"}},
		{name: "compress", header: []string{"Content-Type", "text/css", "Content-Encoding", "compress"}, want: "content encoding"},
		{name: "unknown in list", header: []string{"Content-Type", "text/css", "Content-Encoding", "gzip, xpress"}, want: "content encoding"},

		{name: "no-store", header: []string{"Content-Type", "text/css", "Cache-Control", "max-age=60, No-Store"}, want: "no-store"},
		{name: "private", header: []string{"Content-Type", "text/css", "Cache-Control", "private"}, want: "private"},
		{name: "private with fields", header: []string{"Content-Type", "text/css", "Cache-Control", `private="Set-Cookie"`}, want: "private"},
		{name: "no-cache kept", header: []string{"Content-Type", "text/css", "Cache-Control", "no-cache"}},
		{name: "sets cookie", header: []string{"Content-Type", "text/css", "Set-Cookie", "a=b"}, want: "sets cookie"},
		{name: "vary star", header: []string{"Content-Type", "text/css", "Vary", "*"}, want: "vary *"},
		{name: "vary cookie", header: []string{"Content-Type", "text/css", "Vary", "Accept-Encoding, Cookie"}, want: "vary Cookie"},
		{name: "vary authorization", header: []string{"Content-Type", "text/css", "Vary", "authorization"}, want: "vary authorization"},
		{name: "vary accept-encoding kept", header: []string{"Content-Type", "text/css", "Vary", "Accept-Encoding"}},

		{name: "request cookie", header: []string{"Content-Type", "text/css"}, reqHdr: []string{"Cookie", "sid=1"}, want: "request credentials"},
		{name: "request authorization", header: []string{"Content-Type", "text/css"}, reqHdr: []string{"Authorization", "Bearer x"}, want: "request credentials"},
		{name: "request cookie, public", header: []string{"Content-Type", "text/css", "Cache-Control", "public, max-age=60"}, reqHdr: []string{"Cookie", "sid=1"}},
		{name: "request cookie, s-maxage", header: []string{"Content-Type", "text/css", "Cache-Control", "s-maxage=60"}, reqHdr: []string{"Cookie", "sid=1"}},
		{name: "public does not override no-store", header: []string{"Content-Type", "text/css", "Cache-Control", "public, no-store"}, want: "no-store"},

		{name: "pattern overrides private", policy: Policy{PublicPatterns: []string{"/static/*"}}, url: "https://example.com/static/a.css",
			header: []string{"Content-Type", "text/css", "Cache-Control", "private, no-store", "Set-Cookie", "a=b", "Vary", "Cookie"}, reqHdr: []string{"Cookie", "sid=1"}},
		{name: "pattern does not cross slash", policy: Policy{PublicPatterns: []string{"/static/*"}}, url: "https://example.com/static/x/a.css",
			header: []string{"Content-Type", "text/css", "Cache-Control", "private"}, want: "private"},
		{name: "pattern does not override type", policy: Policy{PublicPatterns: []string{"/*"}},
			header: []string{"Content-Type", "text/html"}, want: "content type"},
		{name: "pattern does not override status", policy: Policy{PublicPatterns: []string{"/*"}}, status: http.StatusNotModified,
			header: []string{"Content-Type", "text/css"}, want: "status 304"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			u := tt.url
			if u == "" {
				u = "https://example.com/a"
			}
			req := httptest.NewRequest(method, u, nil)
			for i := 0; i+1 < len(tt.reqHdr); i += 2 {
				req.Header.Add(tt.reqHdr[i], tt.reqHdr[i+1])
			}
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Request: req, ContentLength: tt.length}
			if resp.StatusCode == 0 {
				resp.StatusCode = http.StatusOK
			}
			if tt.length == 0 {
				resp.ContentLength = -1
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				resp.Header.Add(tt.header[i], tt.header[i+1])
			}
			if got := tt.policy.policySkip(resp); got != tt.want {
				t.Errorf("got skip %q, want %q", got, tt.want)
			}
		})
	}
}
