package chunk

import (
	"bytes"
	"testing"
)

func TestTextual(t *testing.T) {
	tests := []struct {
		contentType string
		want        bool
	}{
		{"text/css", true},
		{"text/css; charset=utf-8", true},
		{"TEXT/HTML", true},
		{"image/svg+xml", true},
		{"application/javascript", true},
		{"application/json", true},
		{"application/ld+json", true},
		{"image/png", false},
		{"font/woff2", false},
		{"application/font-woff", false},
		{"application/octet-stream", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Textual(tt.contentType); got != tt.want {
			t.Errorf("Textual(%q): got %v, want %v", tt.contentType, got, tt.want)
		}
	}
}

func TestAssetRoundTrip(t *testing.T) {
	css := bytes.Repeat([]byte(".card { margin: 0 auto; padding: 1rem; }\n"), 50)
	tests := []struct {
		name        string
		body        []byte
		contentType string
		wantCodec   string
	}{
		{"css", css, "text/css", Zstd},
		{"binary", css, "image/png", Identity},
		{"incompressible text", []byte("a"), "text/plain", Identity},
		{"empty", nil, "text/css", Identity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, codec := EncodeAsset(tt.body, tt.contentType)
			if codec != tt.wantCodec {
				t.Errorf("codec: got %q, want %q", codec, tt.wantCodec)
			}
			got, err := DecodeAsset(data, codec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got, tt.body) {
				t.Errorf("round trip: got %d bytes, want %d", len(got), len(tt.body))
			}
		})
	}
	if _, err := DecodeAsset([]byte("x"), "brotli"); err == nil {
		t.Error("unknown codec: got nil error")
	}
}
