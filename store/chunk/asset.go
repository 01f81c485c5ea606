package chunk

import (
	"fmt"
	"strings"
)

// Identity is the codec of an archived asset body stored as it is: binary
// formats (images, fonts, archives) are compressed already, and zstd would
// only cost time.
const Identity = "identity"

// EncodeAsset returns an archived asset body as stored: textual bodies
// (stylesheets, scripts, SVG, JSON…) compressed alone with zstd (codec
// Zstd), anything else, or a textual body zstd does not shrink, as is
// (codec Identity). The result never aliases body.
func EncodeAsset(body []byte, contentType string) (data []byte, codec string) {
	if Textual(contentType) {
		data := encodeAlone.EncodeAll(body, make([]byte, 0, len(body)/3+64))
		if len(data) < len(body) {
			return data, Zstd
		}
	}
	return append([]byte{}, body...), Identity // never nil: a NULL is not a body
}

// DecodeAsset returns the body EncodeAsset stored as data with codec.
func DecodeAsset(data []byte, codec string) ([]byte, error) {
	switch codec {
	case Identity:
		return data, nil
	case Zstd:
		out, err := decodeAlone.DecodeAll(data, nil)
		if err != nil {
			return nil, fmt.Errorf("decode asset: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("decode asset: unknown codec %q", codec)
	}
}

// Textual reports whether a body of this media type (a Content-Type value,
// parameters allowed) is text that compresses well: text/*, SVG and other
// XML, JavaScript, JSON. Fonts are binary: WOFF and WOFF2 are compressed
// already.
func Textual(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+xml"), // image/svg+xml, application/xhtml+xml…
		strings.HasSuffix(mt, "+json"),
		mt == "application/javascript", mt == "application/x-javascript",
		mt == "application/ecmascript", mt == "application/json",
		mt == "application/xml":
		return true
	}
	return false
}
