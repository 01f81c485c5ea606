package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/loupe-dev/loupe/demo"
)

// runDemo starts the built-in demo shop and Loupe in front of it.
// demoFlags are loupe demo's flags: every role's, and --origin, the demo
// shop's own address.
func demoFlags(fs *flag.FlagSet, cfg *Config) (origin *string, err error) {
	if err := cfg.flags(fs, allRoles); err != nil {
		return nil, err
	}
	return fs.String("origin", env("LOUPE_DEMO_ORIGIN", "127.0.0.1:3000"), "address of the demo shop itself (env LOUPE_DEMO_ORIGIN)"), nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loupe demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	origin, err := demoFlags(fs, &cfg)
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *origin)
	if err != nil {
		return fmt.Errorf("demo shop listener: %w", err)
	}
	shop := &http.Server{Handler: demo.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go shop.Serve(ln)
	defer shop.Close()

	cfg.Upstream = "http://" + ln.Addr().String()
	m := &Main{Config: cfg, Logger: newLogger(stderr)}
	if err := m.Open(ctx); err != nil {
		m.Close()
		return err
	}
	defer m.Close()
	tls := ""
	if m.ProxyTLSURL != "" {
		tls = "\n  the site over TLS:      " + m.ProxyTLSURL
	}
	fmt.Fprintf(stdout, `
Loupe demo is running.
  the demo shop itself:   %s
  the site through Loupe: %s   <- browse here; you are recorded%s
  the replay UI:          %s   <- watch the sessions
`, cfg.Upstream, m.ProxyURL, tls, m.AdminURL)
	m.describeFirstUser(stdout, "  ")
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	err = m.Wait(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
