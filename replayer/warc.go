package replayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nlnwa/gowarc/v2"

	"github.com/loupe-dev/loupe/store"
)

// getWARC exports the session's archived assets as a WARC 1.1 file
// (https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/)
// that web-archiving tools (pywb, warcio, OpenWayback) read:
//
//   - one warcinfo record naming the software and the session;
//   - one response record per asset the session references and the
//     archive holds, the capture closest to the session's start:
//     WARC-Target-URI is the asset's normalized URL, WARC-Date its capture
//     time, the block an HTTP/1.1 200 response whose header gives the
//     recorded Content-Type and the body's Content-Length, then the body.
//     WARC-Payload-Digest is the body's SHA-256 (hex, as Loupe names
//     blobs); WARC-Block-Digest the SHA-256 of the whole block.
//
// Bodies are stored decoded, so the block has no Content-Encoding. Records
// are not compressed; one asset's body is in memory at a time.
func (s *Server) getWARC(w http.ResponseWriter, r *http.Request) error {
	as, err := s.assets()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	sess, err := s.cfg.Store.Session(r.Context(), id)
	if err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	list, err := as.SessionAssets(r.Context(), id)
	if err != nil {
		return fmt.Errorf("session assets: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/warc")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", attachment("session-"+id+".warc"))
	if err := writeWARC(r.Context(), w, as, sess, list, s.now()); err != nil {
		// Headers are gone: cut the body short so that the client sees a
		// truncated file rather than a complete-looking one.
		s.log.Error("export warc", "session", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// bodies is what the WARC export reads bodies from.
type bodies interface {
	Body(ctx context.Context, hash string) ([]byte, string, error)
}

// writeWARC writes the warcinfo record, then one response record per asset.
// An asset whose body has been pruned since the listing is left out.
func writeWARC(ctx context.Context, w io.Writer, b bodies, sess *store.Session, list []*store.Asset, now time.Time) error {
	m := gowarc.NewMarshaler()
	info := gowarc.NewRecordBuilder(gowarc.Warcinfo, warcOptions...)
	info.AddWarcHeaderTime(gowarc.WarcDate, now)
	info.AddWarcHeader(gowarc.WarcFilename, "session-"+sess.ID+".warc")
	info.AddWarcHeader(gowarc.ContentType, gowarc.ApplicationWarcFields)
	fmt.Fprintf(info, "software: Loupe\r\nformat: WARC File Format 1.1\r\n"+
		"conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n"+
		"description: archived assets of Loupe session %s, started %s\r\n",
		sess.ID, sess.StartedAt.UTC().Format(time.RFC3339))
	if err := marshal(m, w, info); err != nil {
		return fmt.Errorf("warcinfo record: %w", err)
	}
	for _, a := range list {
		body, ct, err := b.Body(ctx, a.Hash)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("body %s: %w", a.Hash, err)
		}
		if a.ContentType != "" {
			ct = a.ContentType
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		rb := gowarc.NewRecordBuilder(gowarc.Response, warcOptions...)
		rb.AddWarcHeader(gowarc.WarcTargetURI, a.URL)
		rb.AddWarcHeaderTime(gowarc.WarcDate, a.CapturedAt)
		rb.AddWarcHeader(gowarc.ContentType, "application/http;msgtype=response")
		rb.AddWarcHeader(gowarc.WarcPayloadDigest, "sha256:"+a.Hash)
		// Header values come from the origin; a line break would forge
		// header lines.
		ct = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, ct)
		fmt.Fprintf(rb, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %s\r\n\r\n", ct, strconv.Itoa(len(body)))
		rb.Write(body)
		if err := marshal(m, w, rb); err != nil {
			return fmt.Errorf("response record %s: %w", a.URL, err)
		}
	}
	return nil
}

// warcOptions make records with SHA-256 block digests and fail on a record
// Loupe itself would make malformed.
var warcOptions = []gowarc.WarcRecordOption{
	gowarc.WithDefaultDigestAlgorithm("sha256"),
	gowarc.WithDefaultDigestEncoding(gowarc.Base16),
	gowarc.WithSpecViolationPolicy(gowarc.ErrFail),
	gowarc.WithSyntaxErrorPolicy(gowarc.ErrFail),
}

func marshal(m gowarc.Marshaler, w io.Writer, rb gowarc.WarcRecordBuilder) error {
	rec, _, err := rb.Build()
	if err != nil {
		rb.Close()
		return fmt.Errorf("build: %w", err)
	}
	defer rec.Close()
	_, _, err = m.Marshal(w, rec, 0)
	return err
}

// attachment is a Content-Disposition that saves the answer as name.
func attachment(name string) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": name})
}
