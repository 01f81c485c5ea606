package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/archive"
	"github.com/loupe-dev/loupe/proxy"
	"github.com/loupe-dev/loupe/store"
)

// pruneEvery is how often asset retention runs.
const pruneEvery = time.Hour

// notBool is a boolean flag stored inverted, so that a Config's zero value
// means "on" (--archive defaults to true).
type notBool struct{ off *bool }

func (b notBool) String() string {
	if b.off == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.off)
}

func (b notBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.off = !v
	return nil
}

func (b notBool) IsBoolFlag() bool { return true }

// archiveFlags binds the archive's flags of a process running r.
func (c *Config) archiveFlags(fs *flag.FlagSet, r roles) {
	if r.has(roleProxy | roleCollector) {
		fs.Var(notBool{&c.NoArchive}, "archive", "archive the site's stylesheets, fonts and images so that replays show what visitors saw; false turns capture and fetching off")
		fs.Int64Var(&c.ArchiveMaxBytes, "archive-max-bytes", 0, "largest asset body archived, in bytes; 0 for 8 MiB")
		fs.StringVar(&c.SiteHosts, "site-host", "", "comma-separated `hosts` visitors reach the site under (e.g. shop.example,www.shop.example); if set, only requests naming them are archived")
		fs.StringVar(&c.ArchivePublic, "archive-public", "", "comma-separated path `globs` archived even when their headers say private or set cookies, e.g. /static/*,/img/*/*")
	}
	fs.DurationVar(&c.AssetRetention, "asset-retention", 0, "remove archived assets no session of this `duration` references, checked hourly; 0 keeps them forever; set it on one node of a deployment")
}

// archivePolicy parses the archive's flags.
func (c *Config) archivePolicy() (archive.Policy, error) {
	p := archive.Policy{MaxBytes: c.ArchiveMaxBytes}
	if c.ArchiveMaxBytes < 0 {
		return p, usageError{"--archive-max-bytes must not be negative; use --archive=false to archive nothing"}
	}
	for _, g := range strings.Split(c.ArchivePublic, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if _, err := path.Match(g, "/"); err != nil || !strings.HasPrefix(g, "/") {
			return p, usageError{fmt.Sprintf("--archive-public: %q is not a path glob such as /static/*", g)}
		}
		p.PublicPatterns = append(p.PublicPatterns, g)
	}
	if c.AssetRetention < 0 {
		return p, usageError{"--asset-retention must not be negative; 0 keeps assets forever"}
	}
	return p, nil
}

// archiver returns the process's one Archiver, made on first use over the
// store, or nil when archiving is off. origins map the sites' host names
// to their upstreams (see siteOrigins): the site's own URLs are fetched
// from there, and the upstreams are the only private addresses the
// fetcher may reach; nil in a collector-only process.
func (m *Main) archiver(ctx context.Context, origins map[string]*url.URL) (*archive.Archiver, error) {
	if m.Config.NoArchive {
		return nil, nil
	}
	if m.arch != nil {
		return m.arch, nil
	}
	policy, err := m.Config.archivePolicy()
	if err != nil {
		return nil, err
	}
	if err := m.openStore(ctx); err != nil {
		return nil, err
	}
	as, ok := m.db.(store.AssetStore)
	if !ok {
		return nil, fmt.Errorf("the store (%T) cannot hold the asset archive; run with --archive=false", m.db)
	}
	cfg := archive.Config{
		Store:  as,
		Policy: policy,
		URL:    proxy.PublicURL,
		Logger: m.Logger.With("part", "archive"),
	}
	if origins != nil {
		// The sites' own URLs are fetched from their upstreams, not through
		// their public names (which may be this proxy, or private).
		cfg.Fetch.Origins = origins
		seen := map[string]bool{}
		for _, up := range origins {
			if hp := hostPort(up); !seen[hp] {
				seen[hp] = true
				cfg.Fetch.AllowPrivate = append(cfg.Fetch.AllowPrivate, hp)
			}
		}
	}
	a, err := archive.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	m.arch = a
	return a, nil
}

// hostPort is u's host with its port, the scheme's default if u has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// startRetention prunes the archive once now and then every pruneEvery,
// keeping what sessions of the last --asset-retention reference, until
// Close. It does nothing when retention is 0 or the store has no archive.
func (m *Main) startRetention() error {
	keep := m.Config.AssetRetention
	if keep < 0 {
		return usageError{"--asset-retention must not be negative; 0 keeps assets forever"}
	}
	if keep == 0 || m.db == nil {
		return nil
	}
	as, ok := m.db.(store.AssetStore)
	if !ok {
		return fmt.Errorf("--asset-retention: the store (%T) has no asset archive", m.db)
	}
	now := m.clock()
	m.loop(pruneEvery, func(ctx context.Context) {
		cutoff := now().Add(-keep)
		n, err := as.PruneAssets(ctx, cutoff)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			m.Logger.Warn("asset retention", "err", err)
		case n > 0:
			m.Logger.Info("asset retention", "removed_bodies", n, "cutoff", cutoff.UTC().Format(time.RFC3339))
		}
	})
	return nil
}
