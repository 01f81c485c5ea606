// Package archive keeps copies of the stylesheets, fonts and images a
// site served, so that a replay shows what the visitor saw long after the
// site changed. It has two sides.
//
// Capture: the proxy hands every response to (*Archiver).Tee, which lets
// the body stream to the visitor unchanged while buffering an archivable
// one (see Policy) up to a bound; a background worker decodes it, hashes
// it (SHA-256 of the decoded body) and stores it with store.AssetStore,
// skipping what it stored recently. (*Archiver).Want fetches, in the
// background, assets recordings reference that the proxy never served.
//
// Replay: AssetURLs, RewriteEvents and RewriteCSS are pure functions that
// find and rewrite asset URLs in rrweb events and CSS. Every URL the
// archive indexes is in the form NormalizeURL returns.
package archive

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/loupe-dev/loupe/store"
)

// Defaults of Config's zero values.
const (
	defaultQueueSize    = 256
	defaultWorkers      = 2
	defaultDrainTimeout = 5 * time.Second
	defaultStoreTimeout = 30 * time.Second
	// recentTTL bounds how long the cache of stored (URL, hash) pairs
	// trusts itself, so that a capture pruned from the store is stored
	// again by a later visit.
	recentTTL = time.Hour
)

// Config configures an Archiver.
type Config struct {
	// Store keeps the bodies and captures. Required.
	Store store.AssetStore

	// Policy decides what is archived; its zero value is documented there.
	Policy Policy

	// Fetch configures the background fetcher behind Want.
	Fetch FetchConfig

	// URL returns the public absolute URL a proxied response answers,
	// the one recordings reference, and false to skip the response. If
	// nil, resp.Request.URL is used with its host replaced by
	// resp.Request.Host when that is set; a proxy that rewrites the
	// outbound request to its upstream must set URL.
	URL func(resp *http.Response) (string, bool)

	// Logger receives failures to store. If nil, nothing is logged.
	Logger *slog.Logger

	// Now is the clock. If nil, time.Now.
	Now func() time.Time

	// QueueSize bounds the captured bodies waiting for a worker; a body
	// arriving at a full queue is dropped (Stats.Dropped). If zero, 256.
	QueueSize int

	// Workers is the number of goroutines storing captures. If zero, 2.
	Workers int

	// DrainTimeout bounds how long Close keeps storing queued captures
	// before dropping the rest. If zero, 5 s.
	DrainTimeout time.Duration
}

// Stats counts what an Archiver did since New.
type Stats struct {
	Captured  int64 // captures handed to Store.PutAsset successfully (tee and fetch)
	NewBodies int64 // of those, captures whose body was new to the store
	Deduped   int64 // captures skipped because the cache had just stored the same URL and hash
	Dropped   int64 // tee'd bodies dropped at a full queue or at Close
	Failed    int64 // captures that could not be decoded or stored

	Fetched      int64 // URLs fetched and stored (also counted in Captured)
	FetchFailed  int64 // URLs whose fetch failed terminally (then cooled down)
	FetchSkipped int64 // URLs Want skipped: invalid, known, cooling down, queued or over MaxQueue
}

// Archiver captures and fetches assets into a store.AssetStore. Its
// methods are safe for concurrent use.
type Archiver struct {
	cfg    Config
	store  store.AssetStore
	policy Policy
	log    *slog.Logger
	now    func() time.Time

	// recent maps a normalized URL to what was last stored for it.
	recent *ristretto.Cache[string, recentEntry]

	bufs  sync.Pool // *bytes.Buffer for tee'd bodies
	queue chan *capture
	quit  chan struct{}
	// storeCtx is cancelled DrainTimeout after Close begins, ending any
	// store call still running.
	storeCtx    context.Context
	storeCancel context.CancelFunc
	closed      atomic.Bool
	wg          sync.WaitGroup
	once        sync.Once

	fetch *fetcher

	captured, newBodies, deduped, dropped, failed atomic.Int64
	fetched, fetchFailed, fetchSkipped            atomic.Int64
}

// recentEntry is what the cache remembers of a stored capture: the
// SHA-256 of the decoded body, and an xxhash of the body as received
// with its codings, so that a repeat visit is recognized without
// decoding or SHA-256 (a 64-bit collision between two versions of one
// URL would at worst keep the older version until the entry expires).
type recentEntry struct {
	hash string
	raw  uint64
}

// rawSum fingerprints a body as received with its content codings.
func rawSum(body []byte, codings []string) uint64 {
	d := xxhash.New()
	d.WriteString(strings.Join(codings, ","))
	d.WriteString("\x00")
	d.Write(body)
	return d.Sum64()
}

// capture is one body waiting to be stored.
type capture struct {
	url         string
	contentType string
	encodings   []string // content codings in the order they were applied
	body        []byte   // as received, or decoded if encodings is empty
	buf         *bytes.Buffer
	at          time.Time
}

// New returns a running Archiver; Close stops it.
func New(cfg Config) (*Archiver, error) {
	if cfg.Store == nil {
		return nil, errors.New("new archiver: no store")
	}
	if err := cfg.Policy.validate(); err != nil {
		return nil, fmt.Errorf("new archiver: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultWorkers
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = defaultDrainTimeout
	}
	if cfg.URL == nil {
		cfg.URL = defaultURL
	}
	recent, err := ristretto.NewCache(&ristretto.Config[string, recentEntry]{
		NumCounters: 1e5,     // about ten times the entries expected
		MaxCost:     8 << 20, // bytes of URL and hash kept
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("new archiver: %w", err)
	}
	a := &Archiver{
		cfg:    cfg,
		store:  cfg.Store,
		policy: cfg.Policy,
		log:    cfg.Logger,
		now:    cfg.Now,
		recent: recent,
		queue:  make(chan *capture, cfg.QueueSize),
		quit:   make(chan struct{}),
	}
	a.storeCtx, a.storeCancel = context.WithCancel(context.Background())
	a.fetch, err = newFetcher(a, cfg.Fetch)
	if err != nil {
		recent.Close()
		a.storeCancel()
		return nil, fmt.Errorf("new archiver: %w", err)
	}
	for range cfg.Workers {
		a.wg.Add(1)
		go a.work()
	}
	return a, nil
}

// defaultURL is Config.URL's default.
func defaultURL(resp *http.Response) (string, bool) {
	req := resp.Request
	if req == nil || req.URL == nil {
		return "", false
	}
	u := *req.URL
	if req.Host != "" {
		u.Host = req.Host
	}
	return u.String(), true
}

// Stats returns the counters so far.
func (a *Archiver) Stats() Stats {
	return Stats{
		Captured:     a.captured.Load(),
		NewBodies:    a.newBodies.Load(),
		Deduped:      a.deduped.Load(),
		Dropped:      a.dropped.Load(),
		Failed:       a.failed.Load(),
		Fetched:      a.fetched.Load(),
		FetchFailed:  a.fetchFailed.Load(),
		FetchSkipped: a.fetchSkipped.Load(),
	}
}

// Close stops fetching, stores what is queued for up to
// Config.DrainTimeout, drops the rest and waits for every goroutine.
// Responses tee'd after Close pass through without being archived.
func (a *Archiver) Close() error {
	a.once.Do(func() {
		a.closed.Store(true)
		a.fetch.close()
		close(a.quit)
		stop := time.AfterFunc(a.cfg.DrainTimeout, a.storeCancel)
		a.wg.Wait()
		stop.Stop()
		a.storeCancel()
		// Whatever a worker did not take, including bodies that reached
		// EOF during Close.
		for {
			select {
			case c := <-a.queue:
				a.dropped.Add(1)
				a.release(c)
				continue
			default:
			}
			break
		}
		a.recent.Close()
	})
	return nil
}

// work stores queued captures until Close, then drains the queue until
// it is empty or DrainTimeout has passed.
func (a *Archiver) work() {
	defer a.wg.Done()
	for {
		select {
		case c := <-a.queue:
			a.storeCapture(a.storeCtx, c)
			a.release(c)
		case <-a.quit:
			for a.storeCtx.Err() == nil {
				select {
				case c := <-a.queue:
					a.storeCapture(a.storeCtx, c)
					a.release(c)
				default:
					return
				}
			}
			return
		}
	}
}

// release returns a capture's buffer to the pool.
func (a *Archiver) release(c *capture) {
	if c.buf != nil {
		c.buf.Reset()
		a.bufs.Put(c.buf)
		c.buf, c.body = nil, nil
	}
}

// storeCapture decodes, hashes and stores one capture, counting the
// outcome. It reports whether the body is in the store.
func (a *Archiver) storeCapture(ctx context.Context, c *capture) bool {
	raw := rawSum(c.body, c.encodings)
	if e, ok := a.recent.Get(c.url); ok && e.raw == raw {
		a.deduped.Add(1)
		return true
	}
	body := c.body
	if len(c.encodings) > 0 {
		var err error
		body, err = decodeBody(c.body, c.encodings, a.policy.maxBytes())
		if err != nil {
			a.failed.Add(1)
			a.log.Debug("archive: decode", "url", c.url, "err", err)
			return false
		}
	} else if c.buf != nil {
		// The pooled buffer is reused once this returns; the store may
		// keep what it is given.
		body = bytes.Clone(body)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if e, ok := a.recent.Get(c.url); ok && e.hash == hash {
		a.deduped.Add(1)
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, defaultStoreTimeout)
	defer cancel()
	newBody, err := a.store.PutAsset(ctx, &store.Asset{
		URL:         c.url,
		Hash:        hash,
		ContentType: c.contentType,
		Size:        int64(len(body)),
		CapturedAt:  c.at,
	}, body)
	if err != nil {
		a.failed.Add(1)
		a.log.Warn("archive: store asset", "url", c.url, "err", err)
		return false
	}
	a.captured.Add(1)
	if newBody {
		a.newBodies.Add(1)
	}
	a.recent.SetWithTTL(c.url, recentEntry{hash: hash, raw: raw}, int64(len(c.url)+len(hash)+8), recentTTL)
	a.recent.Wait() // so the next capture of this URL sees it
	return true
}

// decodable returns the content codings of Content-Encoding header values
// in the order they were applied, without "identity", and whether the
// archive can decode all of them.
func decodable(values []string) ([]string, bool) {
	var codings []string
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
			case "gzip", "x-gzip", "deflate", "br", "zstd":
				codings = append(codings, c)
			default:
				return nil, false
			}
		}
	}
	return codings, true
}

// errTooLarge is returned when a body exceeds the policy's bound.
var errTooLarge = errors.New("body too large")

// decodeBody undoes codings (in the order they were applied) and returns
// the identity body, or errTooLarge if it would exceed max bytes.
func decodeBody(body []byte, codings []string, max int64) ([]byte, error) {
	for i := len(codings) - 1; i >= 0; i-- {
		var r io.Reader
		var closeFn func()
		switch codings[i] {
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			r = zr
		case "deflate":
			// RFC 9110 says zlib; some servers send raw deflate.
			if zr, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
				r = zr
			} else {
				r = flate.NewReader(bytes.NewReader(body))
			}
		case "br":
			r = brotli.NewReader(bytes.NewReader(body))
		case "zstd":
			zr, err := zstd.NewReader(bytes.NewReader(body),
				zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max)+1))
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			r, closeFn = zr, zr.Close
		default:
			return nil, fmt.Errorf("content coding %q", codings[i])
		}
		out, err := io.ReadAll(io.LimitReader(r, max+1))
		if closeFn != nil {
			closeFn()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", codings[i], err)
		}
		if int64(len(out)) > max {
			return nil, errTooLarge
		}
		body = out
	}
	return body, nil
}
