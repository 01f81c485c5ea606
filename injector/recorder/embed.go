// Package recorder embeds the browser recorder that the proxy serves at
// /__loupe/recorder.js: rrweb's record() plus Loupe's batching, delivery and
// privacy defaults. The TypeScript source is in src/; `make` (npm run
// build:recorder) bundles it into dist/recorder.js before `go build`.
package recorder

import (
	"embed"
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
