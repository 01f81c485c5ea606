// Package recorder embeds the browser recorder that the proxy serves at
// /__loupe/recorder.js: rrweb's record() plus Loupe's batching, delivery and
// privacy defaults. The TypeScript source is in src/; `make` (npm run
// build:recorder) bundles it into dist/recorder.js before `go build`.
package recorder

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
)

// dist always holds README, so the pattern matches even when the bundle has
// not been built.
//
//go:embed dist
var dist embed.FS

// JS returns the minified recorder bundle, or nil if it was not built before
// this binary was compiled.
func JS() []byte {
	b, err := fs.ReadFile(dist, "dist/recorder.js")
	if err != nil {
		return nil
	}
	return b
}

// Version names a bundle by its content: the first 16 hex digits of its
// SHA-256, or "" for no bundle. The injector puts it in the recorder's URL,
// so browsers can cache the bundle for good and still fetch a new one the
// moment Loupe is upgraded.
func Version(js []byte) string {
	if len(js) == 0 {
		return ""
	}
	sum := sha256.Sum256(js)
	return hex.EncodeToString(sum[:8])
}
