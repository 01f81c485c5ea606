package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/loupe-dev/loupe/certs"
	"github.com/loupe-dev/loupe/injector"
	"github.com/loupe-dev/loupe/injector/recorder"
	"github.com/loupe-dev/loupe/proxy"
)

// defaultMITMListen is loupe mitm's forward-proxy address.
const defaultMITMListen = "127.0.0.1:8090"

var _ proxy.LeafMinter = (*certs.Minter)(nil)

// mitmOptions are loupe mitm's own settings.
type mitmOptions struct {
	// Record are the host globs to intercept and record (--record-host).
	Record []string
	// UpstreamCA is a PEM file of roots trusted for upstreams besides the
	// system's (--upstream-ca); "" for the system's alone.
	UpstreamCA string
	// dial replaces the upstream dialer; tests map names to local servers.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// runMITM is `loupe mitm`: the forward proxy for lab studies, with the
// collector and the replay server in process.
func runMITM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loupe mitm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var record string
	var opts mitmOptions
	fs.StringVar(&cfg.Listen, "listen", defaultMITMListen, "address of the forward proxy: the test browser's HTTP and HTTPS proxy")
	fs.StringVar(&record, "record-host", "", "comma-separated host `globs` to intercept and record, e.g. shop.example,*.shop.example; every other host is tunnelled untouched")
	fs.StringVar(&opts.UpstreamCA, "upstream-ca", "", "PEM `file` of extra roots to trust for upstreams (a lab's own test CA); the system's roots are always trusted")
	fs.Var(notBool{&cfg.NoArchive}, "archive", "archive the recorded sites' stylesheets, fonts and images; false turns it off")
	if err := cfg.flags(fs, roleReplayer); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	opts.Record = commaList(record)
	if len(opts.Record) == 0 {
		return usageError{"--record-host is required: the hosts to record (e.g. shop.example,*.shop.example)"}
	}
	// Every role runs here: the proxy (forward), the collector and the replayer.
	m := &Main{Config: cfg, Roles: allRoles, Logger: newLogger(stderr)}
	mitm, err := m.openMITM(ctx, opts)
	if err != nil {
		m.Close()
		return err
	}
	fmt.Fprintf(stdout, `Loupe is recording %s through a forward proxy
  the browser's HTTP and HTTPS proxy: %s
  the replay UI:                      %s
The test browser must trust the CA: loupe certs export --data %s
`, strings.Join(opts.Record, ", "), strings.TrimPrefix(m.ProxyURL, "http://"), m.AdminURL, cfg.Data)
	m.describeFirstUser(stdout, "  ")
	err = m.Wait(ctx)
	// Requests in intercepted connections finish before the store closes.
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	return errors.Join(err, mitm.Shutdown(sctx), m.Close())
}

// openMITM starts the forward proxy on Config.Listen (ProxyURL) and the
// replay server on Config.Admin (AdminURL), over one store. The caller
// closes the MITM (its intercepted connections) before m.
func (m *Main) openMITM(ctx context.Context, opts mitmOptions) (*proxy.MITM, error) {
	if m.Logger == nil {
		m.Logger = newLogger(os.Stderr)
	}
	ca, err := certs.LoadCA(m.Config.Data)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no CA in %s: run loupe certs init --data %s first, then install loupe certs export's output in the test browser", m.Config.Data, m.Config.Data)
	}
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if opts.UpstreamCA != "" {
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		b, err := os.ReadFile(opts.UpstreamCA)
		if err != nil {
			return nil, usageError{fmt.Sprintf("--upstream-ca: %v", err)}
		}
		if !roots.AppendCertsFromPEM(b) {
			return nil, usageError{fmt.Sprintf("--upstream-ca: %s holds no PEM certificate", opts.UpstreamCA)}
		}
	}
	minter, err := certs.NewMinter(ca, certs.MinterConfig{})
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, closerFunc(func() error { minter.Close(); return nil }))
	tokens, err := m.tokens()
	if err != nil {
		return nil, err
	}
	coll, err := m.collector(ctx)
	if err != nil {
		return nil, err
	}
	inj, err := injector.New(injector.Config{RecorderVersion: recorder.Version(recorder.JS())})
	if err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	site := proxy.Config{
		Injector:   inj,
		Tokens:     tokens,
		Ingest:     coll,
		RecorderJS: recorder.JS(),
		Logger:     m.Logger,
	}
	// The recorded hosts' requests, for the player's network panel.
	if site.Requests, err = m.requestLog(nil, tokens); err != nil {
		return nil, err
	}
	if arch, err := m.archiver(ctx, nil); err != nil {
		return nil, err
	} else if arch != nil {
		site.Archive = arch
		coll.Assets = arch
	}
	mitm, err := proxy.NewMITM(proxy.MITMConfig{
		Record:      opts.Record,
		Leaves:      minter,
		Site:        site,
		RootCAs:     roots,
		DialContext: opts.dial,
		Logger:      m.Logger,
	})
	if err != nil {
		return nil, err
	}
	rp, err := m.replayServer(ctx)
	if err == nil {
		err = m.startRetention()
	}
	if err == nil {
		m.startIdleEnder()
	}
	m.errc = make(chan error, 3)
	if err == nil {
		m.ProxyURL, err = m.serve(m.Config.Listen, "mitm", mitm)
	}
	if err == nil {
		m.AdminURL, err = m.serve(m.Config.Admin, "admin", rp)
	}
	if err != nil {
		mitm.Close()
		return nil, err
	}
	return mitm, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
