package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// staticCacheControl lets browsers and Loupe's archiver reuse a static file
// for five minutes; after that the ETag makes revalidation cheap.
const staticCacheControl = "public, max-age=300"

// asset is one static file held in memory.
type asset struct {
	data        []byte
	contentType string
	etag        string // strong, quoted, from the SHA-256 of data
	modTime     time.Time
}

// contentType maps the extensions under static/ to their types. It is
// explicit rather than mime.TypeByExtension so that the answer does not
// depend on the host's /etc/mime.types; other files are sniffed.
func contentType(name string, data []byte) string {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".woff2":
		return "font/woff2"
	}
	return http.DetectContentType(data)
}

// loadAssets reads every embedded file under static/ and adds the logo drawn
// by drawLogo. Embedded files carry no modification time, so modTime (the
// moment the handler was built) stands in for Last-Modified; the ETag, a
// content hash, is the validator that survives restarts.
func loadAssets(modTime time.Time) map[string]asset {
	assets := make(map[string]asset)
	add := func(urlPath string, data []byte) {
		sum := sha256.Sum256(data)
		assets[urlPath] = asset{
			data:        data,
			contentType: contentType(urlPath, data),
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
			modTime:     modTime,
		}
	}
	err := fs.WalkDir(files, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		add("/"+name, data)
		return nil
	})
	if err != nil {
		// The files are embedded: failing to read them is a bug here.
		panic(err)
	}
	add("/static/img/logo.png", drawLogo())
	return assets
}

// static serves /static/{path...} from memory. http.ServeContent answers
// If-None-Match, If-Modified-Since and Range requests.
func (s *shop) static(w http.ResponseWriter, r *http.Request) {
	name := "/static/" + r.PathValue("path")
	a, ok := s.assets[name]
	if !ok {
		// Includes /static/fonts/shop.woff2 when the build did not copy
		// the font in: the stylesheet's fallback fonts then apply.
		s.notFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", staticCacheControl)
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, name, a.modTime, bytes.NewReader(a.data))
}
