package main

import (
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// roles is a set of the parts of Loupe one process runs.
type roles uint8

const (
	roleProxy     roles = 1 << iota // the site-facing proxy
	roleCollector                   // the ingest endpoint
	roleReplayer                    // the replay server
	allRoles      = roleProxy | roleCollector | roleReplayer
)

func (r roles) has(x roles) bool { return r&x != 0 }

// Config is everything a loupe subcommand is told. Which fields apply
// depends on the roles the process runs; flags registers only those.
type Config struct {
	// Upstream is the origin URL; required with the proxy role.
	Upstream string
	// Listen is the site-facing proxy's address or, for `loupe collector`,
	// the collector's.
	Listen string
	// Admin is the replay server's address.
	Admin string
	// Data is the folder for the SQLite database and the secret file.
	Data string
	// Database selects the store: "" is SQLite in Data; a postgres:// or
	// postgresql:// URL is PostgreSQL.
	Database string
	// Collector is the base URL of a `loupe collector` that `loupe proxy`
	// forwards ingest to. If empty, the proxy runs the collector in process
	// against Database.
	Collector string

	// TrustedProxies are comma-separated CIDRs (or addresses) whose
	// X-Forwarded-For the collector believes. If empty, the client is the
	// TCP peer.
	TrustedProxies string
	// KeepIP keeps visitors' addresses; if false only a keyed hash is kept.
	KeepIP bool
	// GeoIP is the path of a MaxMind-format country database; if empty no
	// country is derived.
	GeoIP string

	// Secret keys session cookies and tokens; every node of one deployment
	// needs the same. If empty, one is made and kept in Data.
	Secret string
}

// Default addresses.
const (
	defaultListen          = "127.0.0.1:8080"
	defaultAdmin           = "127.0.0.1:8081"
	defaultCollectorListen = "127.0.0.1:8082"
)

// flags binds the fields that apply to a process running r to fs, with
// defaults taken from LOUPE_* variables. The secret is read from
// LOUPE_SECRET only, never from the command line, where ps would show it.
func (c *Config) flags(fs *flag.FlagSet, r roles) {
	if r.has(roleProxy) {
		fs.StringVar(&c.Upstream, "upstream", env("LOUPE_UPSTREAM", ""), "origin to put Loupe in front of, e.g. http://127.0.0.1:3000 (env LOUPE_UPSTREAM)")
		fs.StringVar(&c.Listen, "listen", env("LOUPE_LISTEN", defaultListen), "address visitors reach the site on (env LOUPE_LISTEN)")
	} else if r.has(roleCollector) {
		fs.StringVar(&c.Listen, "listen", env("LOUPE_LISTEN", defaultCollectorListen), "address of the ingest endpoint, POST /__loupe/ingest (env LOUPE_LISTEN)")
	}
	if r.has(roleReplayer) {
		fs.StringVar(&c.Admin, "admin", env("LOUPE_ADMIN", defaultAdmin), "address of the replay UI and API (env LOUPE_ADMIN)")
	}
	fs.StringVar(&c.Data, "data", env("LOUPE_DATA", "./loupe-data"), "data folder: the SQLite database and the secret file (env LOUPE_DATA)")
	fs.StringVar(&c.Database, "database", env("LOUPE_DATABASE", ""), "postgres://… URL of a PostgreSQL database; empty for SQLite in --data (env LOUPE_DATABASE)")
	collectorNote := ""
	if r == roleProxy {
		fs.StringVar(&c.Collector, "collector", env("LOUPE_COLLECTOR", ""), "base URL of a `loupe collector` to forward ingest to, e.g. http://10.0.0.5:8082; empty runs the collector in this process (env LOUPE_COLLECTOR)")
		collectorNote = "; without --collector only"
	}
	if r.has(roleCollector) || r == roleProxy {
		fs.StringVar(&c.TrustedProxies, "trusted-proxies", env("LOUPE_TRUSTED_PROXIES", ""), "comma-separated CIDRs of proxies whose X-Forwarded-For names the visitor, e.g. 10.0.0.0/8 (env LOUPE_TRUSTED_PROXIES"+collectorNote+")")
		fs.BoolVar(&c.KeepIP, "keep-ip", envBool("LOUPE_KEEP_IP"), "store visitors' IP addresses; by default only a keyed hash is kept (env LOUPE_KEEP_IP"+collectorNote+")")
		fs.StringVar(&c.GeoIP, "geoip", env("LOUPE_GEOIP", ""), "MaxMind-format country database (.mmdb) to derive visitors' country from (env LOUPE_GEOIP"+collectorNote+")")
	}
	c.Secret = env("LOUPE_SECRET", "")
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envBool reads a boolean variable; anything strconv.ParseBool does not
// take as true is false.
func envBool(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}

// upstreamURL validates the upstream.
func (c *Config) upstreamURL() (*url.URL, error) {
	if c.Upstream == "" {
		return nil, usageError{"--upstream is required (the site to put Loupe in front of, e.g. http://127.0.0.1:3000)"}
	}
	return httpURL("--upstream", c.Upstream)
}

// collectorURL validates --collector; nil means ingest is served in process.
func (c *Config) collectorURL() (*url.URL, error) {
	if c.Collector == "" {
		return nil, nil
	}
	return httpURL("--collector", c.Collector)
}

func httpURL(flag, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Sprintf("%s %q is not an http:// or https:// URL", flag, s)}
	}
	return u, nil
}

// trustedProxies parses --trusted-proxies. A bare address is one host.
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(c.TrustedProxies, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, usageError{fmt.Sprintf("--trusted-proxies: %q is not a CIDR or an IP address", f)}
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// isPostgres reports whether Database names PostgreSQL.
func (c *Config) isPostgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}
