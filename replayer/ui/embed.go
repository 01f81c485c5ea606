// Package ui embeds the replay server's web UI: the sessions list and the
// player page, built on rrweb-player. The TypeScript and CSS source is in
// src/; `make` (npm run build:ui) bundles it into dist/app.js and
// dist/app.css before `go build`.
package ui

import (
	"embed"
	"io/fs"
)

// dist always holds README, so the pattern matches even when the bundle has
// not been built.
//
//go:embed dist
var dist embed.FS

// FS returns the built UI files rooted at dist: app.js, app.css and README.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// Only possible for an invalid path, and "dist" is valid.
		panic(err)
	}
	return sub
}

// Built reports whether the bundle was built before this binary was
// compiled; without it the UI cannot work.
func Built() bool {
	_, err := fs.Stat(dist, "dist/app.js")
	return err == nil
}
