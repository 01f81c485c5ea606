package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/loupe-dev/loupe/collector"
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
	// Upstream is the origin URL; required with the proxy role unless
	// SitesFile is set.
	Upstream string
	// SitesFile is the YAML file of the sites the proxy serves by host
	// name (--config, see sites.go). If empty, the proxy serves one site,
	// Upstream, under any host.
	SitesFile string
	// IgnorePrivacySignals records visitors who send Do-Not-Track or
	// Global Privacy Control (--honor-privacy-signals=false). If false,
	// their pages pass through untouched, with no recorder. It is the
	// default of the sites of SitesFile that do not say.
	IgnorePrivacySignals bool
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
	// X-Forwarded-For the collector believes, and whose X-Forwarded-* and
	// Forwarded headers the proxy passes on to the upstream. If empty, the
	// client is the TCP peer.
	TrustedProxies string
	// UserIDRules say where the proxy finds a visitor's user id or email
	// (collector.ParseUserRules: cookie:NAME, header:NAME,
	// jwt:COOKIE:CLAIM, dom:SELECTOR), each element one or more
	// comma-separated rules; --user-id may be repeated, and LOUPE_USER_ID
	// adds to it. If empty, users are not identified.
	UserIDRules []string

	// PreserveHost sends visitors' Host header to the upstream; if false
	// the upstream's own host is sent and redirects and cookie domains
	// naming it are mapped back.
	PreserveHost bool
	// KeepIP keeps visitors' addresses; if false only a keyed hash is kept.
	KeepIP bool
	// ConversionURL is a glob of page URLs that mark a session converted
	// (collector.ConvertedURL); "" for none.
	ConversionURL string
	// GeoIP is the path of a MaxMind-format country database; if empty no
	// country is derived.
	GeoIP string
	// Limits bounds what the collector accepts; each zero field means the
	// collector's default, and a negative rate means no rate limit.
	// Limits.MaxSessionLength also bounds sessions at the proxy.
	Limits collector.Limits

	// NoArchive turns the asset archive off (--archive=false): the proxy
	// captures nothing and the collector fetches nothing. Replays then load
	// assets from the live site, as do those of uncaptured assets anyway.
	NoArchive bool
	// ArchiveMaxBytes bounds an archived body; 0 means the archive's
	// default (8 MiB).
	ArchiveMaxBytes int64
	// ArchivePublic are comma-separated path globs (path.Match, "/static/*")
	// archived even when their headers forbid a shared cache to keep them.
	ArchivePublic string
	// SiteHosts are comma-separated host names the site is served under;
	// if set, the proxy archives only responses to requests naming one of
	// them (a forged Host cannot file the origin's bytes under another
	// site's URLs).
	SiteHosts string
	// AssetRetention is how long archived assets no recent session
	// references are kept; 0 keeps them forever.
	AssetRetention time.Duration

	// TLS configures the proxy's TLS listener (tls.go); its zero value
	// serves plain HTTP only.
	TLS TLSConfig

	// Secret keys session cookies and tokens; every node of one deployment
	// needs the same. If empty, one is made and kept in Data.
	Secret string
}

// siteHostList is --site-host as a list.
func (c *Config) siteHostList() []string { return commaList(c.SiteHosts) }

// commaList splits a comma-separated flag value, dropping blank items.
func commaList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// siteHosts are the hosts the site's URLs may name: --site-host, and the
// proxy's own listen address when it is a concrete one (a visitor who
// browses 127.0.0.1:8080 records URLs on that host).
func (c *Config) siteHosts() []string {
	hosts := c.siteHostList()
	if host, port, err := net.SplitHostPort(c.Listen); err == nil && port != "0" && host != "" {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsUnspecified() {
			hosts = append(hosts, c.Listen)
		}
	}
	return hosts
}

// Default addresses.
const (
	defaultListen          = "127.0.0.1:8080"
	defaultAdmin           = "127.0.0.1:8081"
	defaultCollectorListen = "127.0.0.1:8082"
)

// flags binds the fields that apply to a process running r to fs. Every
// flag defaults to its LOUPE_* variable (--trusted-proxies: LOUPE_TRUSTED_PROXIES),
// so each node of a deployment can be configured from its environment. The
// secret is read from LOUPE_SECRET only, never from the command line, where
// ps would show it. It fails on an environment value its flag does not take.
func (c *Config) flags(fs *flag.FlagSet, r roles) error {
	if r.has(roleProxy) {
		fs.StringVar(&c.Upstream, "upstream", "", "origin `URL` to put Loupe in front of, e.g. http://127.0.0.1:3000")
		fs.StringVar(&c.SitesFile, "config", "", "YAML `file` of several sites served by host name, each with its upstream and recording rules (see deploy/examples/sites.yaml); replaces --upstream")
		fs.Var(notBool{&c.IgnorePrivacySignals}, "honor-privacy-signals", "send no recorder to visitors whose browser sends Do-Not-Track (DNT: 1) or Global Privacy Control (Sec-GPC: 1); their pages pass through untouched")
		fs.StringVar(&c.Listen, "listen", defaultListen, "address visitors reach the site on")
		c.tlsFlags(fs)
		fs.BoolVar(&c.PreserveHost, "preserve-host", false, "send visitors' Host header to the upstream instead of the upstream's own host")
		fs.Var((*stringList)(&c.UserIDRules), "user-id", "`rules` finding a visitor's user id: cookie:NAME, header:NAME, jwt:COOKIE:CLAIM (decoded, not verified) or dom:SELECTOR; comma-separated or repeated")
	} else if r.has(roleCollector) {
		fs.StringVar(&c.Listen, "listen", defaultCollectorListen, "address of the ingest endpoint, POST /__loupe/ingest")
	}
	if r.has(roleReplayer) {
		fs.StringVar(&c.Admin, "admin", defaultAdmin, "address of the replay UI and API")
	}
	fs.StringVar(&c.Data, "data", "./loupe-data", "data `folder`: the SQLite database and the secret file")
	fs.StringVar(&c.Database, "database", "", "postgres://… `URL` of a PostgreSQL database; empty for SQLite in --data")
	only := ""
	if r == roleProxy {
		fs.StringVar(&c.Collector, "collector", "", "base `URL` of a loupe collector to forward ingest to, e.g. http://10.0.0.5:8082; empty runs the collector in this process")
		only = "; without --collector only"
	}
	if r.has(roleCollector|roleReplayer) || r == roleProxy {
		trustedUse := ""
		if r.has(roleProxy) {
			trustedUse += "; their X-Forwarded-* and Forwarded headers are passed on to the upstream"
		}
		if r.has(roleReplayer) {
			trustedUse += "; the replay server limits sign-ins by the address they name and makes the login cookie Secure on their X-Forwarded-Proto: https"
		}
		fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated `CIDRs` of proxies whose X-Forwarded-For names the client, e.g. 10.0.0.0/8"+trustedUse)
	}
	if r.has(roleCollector) || r == roleProxy {
		fs.BoolVar(&c.KeepIP, "keep-ip", false, "store visitors' IP addresses; by default only a keyed hash is kept"+only)
		fs.StringVar(&c.ConversionURL, "conversion-url", "", "`glob` of page URLs that mark a session converted, halving its friction score: /path* matches path and query, any other pattern the whole URL; * is any run of characters"+only)
		fs.StringVar(&c.GeoIP, "geoip", "", "`PATH` of a MaxMind-format country database (.mmdb) to derive visitors' country from"+only)
		l := &c.Limits
		fs.Int64Var(&l.MaxBodyBytes, "max-body-bytes", 0, fmt.Sprintf("largest ingest request body as sent, in bytes; 0 for %d", collector.DefaultMaxBodyBytes)+only)
		fs.Int64Var(&l.MaxBatchBytes, "max-batch-bytes", 0, fmt.Sprintf("largest batch after decompression, in bytes; 0 for %d", collector.DefaultMaxBatchBytes)+only)
		fs.Int64Var(&l.MaxEventBytes, "max-event-bytes", 0, fmt.Sprintf("largest event, in bytes; 0 for %d", collector.DefaultMaxEventBytes)+only)
		fs.Float64Var((*float64)(&l.SessionRate), "session-rate", 0, fmt.Sprintf("batches per second one session may send; 0 for %d, negative for no limit", collector.DefaultSessionRate)+only)
		fs.IntVar(&l.SessionBurst, "session-burst", 0, fmt.Sprintf("batches one session may send at once above --session-rate; 0 for %d", collector.DefaultSessionBurst)+only)
		fs.Float64Var((*float64)(&l.ClientRate), "client-rate", 0, fmt.Sprintf("requests per second one client address may send; 0 for %d, negative for no limit", collector.DefaultClientRate)+only)
		fs.IntVar(&l.ClientBurst, "client-burst", 0, fmt.Sprintf("requests one client address may send at once above --client-rate; 0 for %d", collector.DefaultClientBurst)+only)
	}
	if r.has(roleProxy | roleCollector) {
		fs.DurationVar(&c.Limits.MaxSessionLength, "max-session-length", 0, fmt.Sprintf("how long a session may last; later page loads start a new one and later batches are refused; 0 for %v", collector.DefaultMaxSessionLength))
	}
	c.archiveFlags(fs, r)
	c.Secret = os.Getenv("LOUPE_SECRET")
	return bindEnv(fs)
}

// envName is the variable of a flag: --trusted-proxies is
// LOUPE_TRUSTED_PROXIES.
func envName(flagName string) string {
	return "LOUPE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// bindEnv sets every flag of fs from its variable, when set, and names the
// variable in the flag's help. Flags given on the command line later win.
func bindEnv(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " (env " + name + ")"
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, usageError{fmt.Sprintf("%s=%q: %v", name, v, err)})
			}
		}
	})
	return errors.Join(errs...)
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
		return nil, usageError{"--upstream is required (the site to put Loupe in front of, e.g. http://127.0.0.1:3000), or --config"}
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

// limits returns the collector's limits, a negative rate meaning none.
func (c *Config) limits() collector.Limits {
	l := c.Limits
	if l.SessionRate < 0 {
		l.SessionRate = rate.Inf
	}
	if l.ClientRate < 0 {
		l.ClientRate = rate.Inf
	}
	return l
}

// isPostgres reports whether Database names PostgreSQL.
func (c *Config) isPostgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// stringList is a flag.Value each use of which adds to the list.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// userRules parses --user-id.
func (c *Config) userRules() (collector.UserRules, error) {
	rules, err := collector.ParseUserRules(c.UserIDRules...)
	if err != nil {
		return nil, usageError{"--user-id: " + err.Error()}
	}
	return rules, nil
}
