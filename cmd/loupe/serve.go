package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/injector"
	"github.com/loupe-dev/loupe/injector/recorder"
	"github.com/loupe-dev/loupe/proxy"
	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/replayer/ui"
	"github.com/loupe-dev/loupe/store/sqlite"
)

// Config is everything `loupe serve` is told.
type Config struct {
	Upstream string // origin URL; required
	Listen   string // the site-facing proxy's address
	Admin    string // the replay server's address
	Data     string // folder for the database and the secret
	// Secret keys session cookies and tokens; every node of one deployment
	// needs the same. If empty, one is made and kept in Data.
	Secret string
}

// flags binds c to fs, with defaults taken from LOUPE_* variables.
func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Upstream, "upstream", env("LOUPE_UPSTREAM", ""), "origin to put Loupe in front of, e.g. http://127.0.0.1:3000 (env LOUPE_UPSTREAM)")
	fs.StringVar(&c.Listen, "listen", env("LOUPE_LISTEN", "127.0.0.1:8080"), "address visitors reach the site on (env LOUPE_LISTEN)")
	fs.StringVar(&c.Admin, "admin", env("LOUPE_ADMIN", "127.0.0.1:8081"), "address of the replay UI and API (env LOUPE_ADMIN)")
	fs.StringVar(&c.Data, "data", env("LOUPE_DATA", "./loupe-data"), "data folder (env LOUPE_DATA)")
	c.Secret = env("LOUPE_SECRET", "")
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// upstreamURL validates the upstream.
func (c *Config) upstreamURL() (*url.URL, error) {
	if c.Upstream == "" {
		return nil, usageError{"--upstream is required (the site to put Loupe in front of, e.g. http://127.0.0.1:3000)"}
	}
	u, err := url.Parse(c.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Sprintf("--upstream %q is not an http:// or https:// URL", c.Upstream)}
	}
	return u, nil
}

// Main is a running Loupe: the proxy and the replay server over one store.
type Main struct {
	Config Config
	Logger *slog.Logger

	// ProxyURL and AdminURL are where the listeners are, once Open returns.
	ProxyURL, AdminURL string

	db      *sqlite.DB
	servers []*http.Server
	errc    chan error
}

// Open validates the config, opens the store and starts both listeners.
func (m *Main) Open(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	up, err := m.Config.upstreamURL()
	if err != nil {
		return err
	}
	if err := checkReachable(ctx, up); err != nil {
		return err
	}
	secret, err := m.secret()
	if err != nil {
		return err
	}
	tokens, err := collector.NewTokens(secret)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	m.db, err = sqlite.Open(ctx, filepath.Join(m.Config.Data, "loupe.db"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	inj, err := injector.New(injector.Config{RecorderVersion: recorder.Version(recorder.JS())})
	if err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	px, err := proxy.New(proxy.Config{
		Upstream:   up,
		Injector:   inj,
		Tokens:     tokens,
		Ingest:     &collector.Collector{Store: m.db, Tokens: tokens, Logger: m.Logger},
		RecorderJS: recorder.JS(),
		Logger:     m.Logger,
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	rp, err := replayer.New(replayer.Config{Store: m.db, UI: ui.FS(), Logger: m.Logger})
	if err != nil {
		return fmt.Errorf("replayer: %w", err)
	}
	if recorder.JS() == nil || !ui.Built() {
		m.Logger.Warn("browser bundles are not built; run make build")
	}

	m.errc = make(chan error, 2)
	if m.ProxyURL, err = m.serve(m.Config.Listen, "proxy", px); err != nil {
		return err
	}
	if m.AdminURL, err = m.serve(m.Config.Admin, "admin", rp); err != nil {
		return err
	}
	return nil
}

// serve starts an HTTP server for h on addr and returns its URL.
func (m *Main) serve(addr, name string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s listener: %w", name, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.servers = append(m.servers, srv)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.errc <- fmt.Errorf("%s server: %w", name, err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Wait blocks until ctx is done or a server fails.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.errc:
		return err
	}
}

// Close drains in-flight requests for up to 10 seconds, then closes the
// store.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range m.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	return errors.Join(errs...)
}

// secret returns the configured secret, or the one kept in the data folder,
// making it on first start.
func (m *Main) secret() ([]byte, error) {
	if m.Config.Secret != "" {
		if len(m.Config.Secret) < 32 {
			return nil, usageError{"LOUPE_SECRET must be at least 32 characters"}
		}
		return []byte(m.Config.Secret), nil
	}
	path := filepath.Join(m.Config.Data, "secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("secret file %s is shorter than 32 characters", path)
		}
		return []byte(s), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if err := os.MkdirAll(m.Config.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	var b [32]byte
	rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	// O_EXCL: two processes starting at once agree on one secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return m.secret()
	}
	if err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	if _, err := io.WriteString(f, s+"\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret: %w", err)
	}
	return []byte(s), f.Close()
}

// checkReachable dials the upstream once so that a wrong address is a
// clear error at start rather than a 502 for every visitor.
func checkReachable(ctx context.Context, u *url.URL) error {
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("upstream %s is unreachable: %w", u.Redacted(), err)
	}
	return conn.Close()
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loupe serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	m := &Main{Config: cfg, Logger: newLogger(stderr)}
	if err := m.Open(ctx); err != nil {
		m.Close()
		return err
	}
	defer m.Close()
	fmt.Fprintf(stdout, "Loupe is recording %s\n  the site through Loupe: %s\n  the replay UI:          %s\n", cfg.Upstream, m.ProxyURL, m.AdminURL)
	return m.Wait(ctx)
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
