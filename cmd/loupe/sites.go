package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loupe-dev/loupe/archive"
	"github.com/loupe-dev/loupe/certs"
	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/injector"
	"github.com/loupe-dev/loupe/injector/recorder"
	"github.com/loupe-dev/loupe/proxy"
)

// sitesFile is the YAML of --config: the sites one Loupe serves by host
// name, and the archive settings of the process (see
// deploy/examples/sites.yaml).
type sitesFile struct {
	Sites []siteYAML `yaml:"sites"`
	// ArchivePublic and AssetRetention are --archive-public and
	// --asset-retention: the archive is one per process.
	ArchivePublic  []string `yaml:"archive_public"`
	AssetRetention string   `yaml:"asset_retention"`
}

// siteYAML is one site as written; a nil pointer is a field left out.
type siteYAML struct {
	Name                string   `yaml:"name"`
	Hosts               []string `yaml:"hosts"`
	Upstream            string   `yaml:"upstream"`
	PreserveHost        onOff    `yaml:"preserve_host"`
	Recording           *onOff   `yaml:"recording"`
	Sampling            *float64 `yaml:"sampling"`
	Include             []string `yaml:"include"`
	Exclude             []string `yaml:"exclude"`
	Block               []string `yaml:"block"`
	MaskText            []string `yaml:"mask_text"`
	UserID              []string `yaml:"user_id"`
	HonorPrivacySignals *onOff   `yaml:"honor_privacy_signals"`
	Archive             *onOff   `yaml:"archive"`
	TLS                 *tlsYAML `yaml:"tls"`
}

// tlsYAML is a site's certificate: files, self-signed or ACME (whose
// account email and CA are --acme-email and --acme-directory).
type tlsYAML struct {
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	SelfSigned onOff  `yaml:"self_signed"`
	ACME       onOff  `yaml:"acme"`
}

// onOff is a YAML boolean that also takes on/off and yes/no, which YAML
// 1.2 reads as strings.
type onOff bool

func (b *onOff) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true", "on", "yes":
			*b = true
			return nil
		case "false", "off", "no":
			*b = false
			return nil
		}
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not on or off (true or false)", n.Line, n.Value)}}
}

// site is one site Loupe serves, validated.
type site struct {
	// Name names the site in messages; "" for the one site of the flags.
	Name string
	// Hosts are the host names the site answers to, lowercased: exact
	// or "*.example.com". Empty for the site of the flags, which answers
	// to every host.
	Hosts    []string
	Upstream *url.URL
	// PreserveHost sends the visitor's Host to the upstream.
	PreserveHost bool
	// Rules decide which pages are recorded; record is their function.
	Rules  proxy.RecordRules
	record func(*http.Request) bool
	// privacySet is whether honor_privacy_signals was given; if not,
	// --honor-privacy-signals decides.
	privacySet bool
	// Block and MaskText are the site's selectors, added to the
	// injector's default block selectors and to no mask selectors.
	Block, MaskText []string
	// UserRules find the visitor's user id (collector.ParseUserRules);
	// nil means --user-id's.
	UserRules collector.UserRules
	// Archive captures the site's assets (when the process archives).
	Archive bool
	// TLS is where the site's certificate comes from; nil for none.
	TLS *SiteTLS
	// flags marks the one implicit site of --upstream.
	flags bool
}

// sitesConfig is a validated sites file.
type sitesConfig struct {
	Sites          []*site
	ArchivePublic  []string
	AssetRetention time.Duration
	// HasRetention is whether asset_retention was given.
	HasRetention bool
}

// loadSites reads and validates the sites file at file.
func loadSites(file string) (*sitesConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--config: %v", err)}
	}
	return parseSites(file, data)
}

// siteNode is a site's YAML mapping with its fields' value nodes, for the
// line numbers of messages.
type siteNode struct {
	node   *yaml.Node
	name   string
	fields map[string]*yaml.Node
}

// yamlLine finds "line N: " at the start of yaml's messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// typeNames names the Go types in yaml's messages as the file's reader
// knows them.
var typeNames = strings.NewReplacer("[]main.siteYAML", "a list of sites", "main.siteYAML", "a site (a mapping)",
	"*main.tlsYAML", "a tls mapping", "main.tlsYAML", "a tls mapping", "main.onOff", "on/off", "[]string", "a list")

// unknownField rewrites yaml's "field x not found in type main.siteYAML".
var unknownField = regexp.MustCompile(`^field (\S+) not found in type main\.(\w+)$`)

// parseSites validates a sites file; file names it in messages, each
// "file:line: site "name": problem", one a line.
func parseSites(file string, data []byte) (*sitesConfig, error) {
	var errs []string
	report := func(line int, sn *siteNode, idx int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if sn != nil {
			who := fmt.Sprintf("site %d", idx+1)
			if sn.name != "" {
				who = fmt.Sprintf("site %q", sn.name)
			}
			msg = who + ": " + msg
		}
		errs = append(errs, fmt.Sprintf("%s:%d: %s", file, line, msg))
	}
	fail := func() error { return usageError{strings.Join(errs, "\n")} }

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			report(n, nil, 0, "%s", m[2])
		} else {
			errs = append(errs, fmt.Sprintf("%s: %v", file, err))
		}
		return nil, fail()
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		report(max(doc.Line, 1), nil, 0, "want a mapping with a list of sites (sites:)")
		return nil, fail()
	}
	root := doc.Content[0]
	top := mappingFields(root)
	sitesNode := top["sites"]
	var nodes []*siteNode
	if sitesNode != nil && sitesNode.Kind == yaml.SequenceNode {
		for _, n := range sitesNode.Content {
			sn := &siteNode{node: n, fields: mappingFields(n)}
			if v := sn.fields["name"]; v != nil && v.Kind == yaml.ScalarNode {
				sn.name = v.Value
			}
			nodes = append(nodes, sn)
		}
	}
	// sitesEnd is the line of the first top-level key after sites, if any.
	sitesEnd := math.MaxInt
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; sitesNode != nil && k.Line > sitesNode.Line && k.Line < sitesEnd {
			sitesEnd = k.Line
		}
	}
	// siteAt is the site whose mapping holds line, or -1.
	siteAt := func(line int) int {
		at := -1
		if line >= sitesEnd {
			return at
		}
		for i, sn := range nodes {
			if sn.node.Line <= line {
				at = i
			}
		}
		return at
	}

	var f sitesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		lines := []string{err.Error()}
		if errors.As(err, &te) {
			lines = te.Errors
		}
		for _, l := range lines {
			m := yamlLine.FindStringSubmatch(l)
			if m == nil {
				errs = append(errs, fmt.Sprintf("%s: %s", file, l))
				continue
			}
			n, _ := strconv.Atoi(m[1])
			msg := m[2]
			where := ""
			if u := unknownField.FindStringSubmatch(msg); u != nil {
				switch u[2] {
				case "tlsYAML":
					where = " in tls"
				}
				msg = fmt.Sprintf("unknown field %q%s", u[1], where)
			}
			msg = typeNames.Replace(msg)
			if i := siteAt(n); i >= 0 {
				report(n, nodes[i], i, "%s", msg)
			} else {
				report(n, nil, 0, "%s", msg)
			}
		}
		return nil, fail()
	}
	if len(f.Sites) == 0 {
		line := root.Line
		if sitesNode != nil {
			line = sitesNode.Line
		}
		report(line, nil, 0, "no sites: list at least one under sites:")
		return nil, fail()
	}

	sc := &sitesConfig{}
	for i, g := range f.ArchivePublic {
		if _, err := path.Match(g, "/"); err != nil || !strings.HasPrefix(g, "/") {
			report(itemLine(top["archive_public"], i, root.Line), nil, 0, "archive_public: %q is not a path glob such as /static/*", g)
		}
	}
	sc.ArchivePublic = f.ArchivePublic
	if f.AssetRetention != "" {
		d, err := time.ParseDuration(f.AssetRetention)
		if err != nil || d < 0 {
			report(top["asset_retention"].Line, nil, 0, "asset_retention %q is not a duration such as 720h (0 keeps assets forever)", f.AssetRetention)
		}
		sc.AssetRetention, sc.HasRetention = d, true
	}

	dir := filepath.Dir(file)
	names := map[string]int{}     // name → line
	owners := map[string]string{} // host → site
	for i, sy := range f.Sites {
		sn := nodes[i]
		line := func(field string) int {
			if v := sn.fields[field]; v != nil {
				return v.Line
			}
			return sn.node.Line
		}
		bad := func(field string, format string, args ...any) {
			report(line(field), sn, i, format, args...)
		}
		s := &site{Name: sy.Name, PreserveHost: bool(sy.PreserveHost), Archive: true}
		switch prev, dup := names[sy.Name]; {
		case sy.Name == "":
			bad("name", "name is required")
		case dup:
			bad("name", "the name is already used by the site at line %d", prev)
		default:
			names[sy.Name] = line("name")
		}

		if len(sy.Hosts) == 0 {
			bad("hosts", "hosts is required: the host names the site is served under")
		}
		for j, h := range sy.Hosts {
			hl := itemLine(sn.fields["hosts"], j, sn.node.Line)
			n, err := proxy.NormalizeHost(h)
			if err != nil {
				report(hl, sn, i, "hosts: %v", err)
				continue
			}
			if other, dup := owners[n]; dup {
				report(hl, sn, i, "host %s is already site %q's", n, other)
				continue
			}
			owners[n] = sy.Name
			s.Hosts = append(s.Hosts, n)
		}

		if sy.Upstream == "" {
			bad("upstream", "upstream is required: the origin URL, e.g. http://127.0.0.1:3000")
		} else if u, err := httpURL("upstream", sy.Upstream); err != nil {
			bad("upstream", "%v", err)
		} else {
			s.Upstream = u
		}

		rules := proxy.RecordRules{Sampling: 1, Include: sy.Include, Exclude: sy.Exclude}
		if sy.Sampling != nil {
			rules.Sampling = *sy.Sampling
			if !(rules.Sampling >= 0 && rules.Sampling <= 1) {
				bad("sampling", "sampling %v is not between 0 and 1", *sy.Sampling)
			}
		}
		if sy.Recording != nil && !*sy.Recording {
			rules.Sampling = 0
		}
		if sy.HonorPrivacySignals != nil {
			rules.IgnorePrivacySignals = !bool(*sy.HonorPrivacySignals)
			s.privacySet = true
		}
		for _, field := range []string{"include", "exclude"} {
			globs := sy.Include
			if field == "exclude" {
				globs = sy.Exclude
			}
			for j, g := range globs {
				if err := proxy.CheckPathGlob(g); err != nil {
					report(itemLine(sn.fields[field], j, sn.node.Line), sn, i, "%s: %v", field, err)
				}
			}
		}
		s.Rules = rules
		if rec, err := rules.Func(); err == nil {
			s.record = rec
		}

		for j, sel := range sy.Block {
			if _, err := injector.New(injector.Config{BlockSelectors: []string{sel}}); err != nil {
				report(itemLine(sn.fields["block"], j, sn.node.Line), sn, i, "block: %v", err)
			}
		}
		for j, sel := range sy.MaskText {
			if _, err := injector.New(injector.Config{MaskTextSelectors: []string{sel}}); err != nil {
				report(itemLine(sn.fields["mask_text"], j, sn.node.Line), sn, i, "mask_text: %v", err)
			}
		}
		s.Block, s.MaskText = sy.Block, sy.MaskText
		for j, spec := range sy.UserID {
			r, err := collector.ParseUserRules(spec)
			if err != nil {
				report(itemLine(sn.fields["user_id"], j, sn.node.Line), sn, i, "user_id: %v", err)
				continue
			}
			s.UserRules = append(s.UserRules, r...)
		}
		if sy.Archive != nil {
			s.Archive = bool(*sy.Archive)
		}

		if sy.TLS != nil {
			t, msgs := validateTLS(sy.TLS, s.Hosts, dir)
			for _, m := range msgs {
				bad("tls", "tls: %s", m)
			}
			s.TLS = t
		}
		sc.Sites = append(sc.Sites, s)
	}
	if len(errs) > 0 {
		return nil, fail()
	}
	return sc, nil
}

// validateTLS checks a site's tls block; relative file names are taken
// from dir, the config file's folder.
func validateTLS(y *tlsYAML, hosts []string, dir string) (*SiteTLS, []string) {
	var msgs []string
	modes := 0
	for _, on := range []bool{y.Cert != "" || y.Key != "", bool(y.SelfSigned), bool(y.ACME)} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return nil, []string{"give exactly one of cert and key, self_signed: true or acme: true"}
	}
	t := &SiteTLS{SelfSigned: bool(y.SelfSigned), ACME: bool(y.ACME)}
	switch {
	case y.Cert != "" || y.Key != "":
		if y.Cert == "" || y.Key == "" {
			return nil, []string{"cert and key go together: give both files"}
		}
		abs := func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(dir, p)
		}
		t.CertFile, t.KeyFile = abs(y.Cert), abs(y.Key)
		if _, err := certs.LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
			msgs = append(msgs, err.Error())
		}
	case bool(y.ACME):
		for _, h := range hosts {
			if strings.HasPrefix(h, "*.") {
				msgs = append(msgs, fmt.Sprintf("acme cannot certify the wildcard %s (HTTP-01 and TLS-ALPN-01 prove one name); list each name, or give cert and key", h))
			} else if _, err := netip.ParseAddr(h); err == nil {
				msgs = append(msgs, fmt.Sprintf("acme cannot certify the address %s; give cert and key", h))
			}
		}
	}
	return t, msgs
}

// mappingFields maps the keys of a YAML mapping to their value nodes.
func mappingFields(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1]
	}
	return out
}

// itemLine is the line of item j of the sequence n, or def.
func itemLine(n *yaml.Node, j, def int) int {
	if n != nil && n.Kind == yaml.SequenceNode && j < len(n.Content) {
		return n.Content[j].Line
	}
	if n != nil {
		return n.Line
	}
	return def
}

// sites returns the sites the proxy serves: those of --config, or the one
// site of --upstream. With --config it also takes the file's archive
// settings into the Config.
func (m *Main) sites() ([]*site, error) {
	c := &m.Config
	if c.SitesFile == "" {
		up, err := c.upstreamURL()
		if err != nil {
			return nil, err
		}
		s := &site{Upstream: up, Archive: true, flags: true,
			Rules: proxy.RecordRules{Sampling: 1, IgnorePrivacySignals: c.IgnorePrivacySignals}}
		if s.record, err = s.Rules.Func(); err != nil {
			return nil, err
		}
		return []*site{s}, nil
	}
	switch {
	case c.Upstream != "":
		return nil, usageError{"--upstream and --config exclude each other: each site in the config names its upstream"}
	case c.SiteHosts != "":
		return nil, usageError{"--site-host and --config exclude each other: each site in the config lists its hosts"}
	}
	sc, err := loadSites(c.SitesFile)
	if err != nil {
		return nil, err
	}
	if len(sc.ArchivePublic) > 0 {
		if c.ArchivePublic != "" {
			return nil, usageError{"archive_public is set both in --config and by --archive-public; keep one"}
		}
		c.ArchivePublic = strings.Join(sc.ArchivePublic, ",")
	}
	if sc.HasRetention {
		if c.AssetRetention != 0 {
			return nil, usageError{"asset_retention is set both in --config and by --asset-retention; keep one"}
		}
		c.AssetRetention = sc.AssetRetention
	}
	for _, s := range sc.Sites {
		if !s.privacySet && c.IgnorePrivacySignals {
			s.Rules.IgnorePrivacySignals = true
			if s.record, err = s.Rules.Func(); err != nil {
				return nil, err
			}
		}
		if s.TLS == nil {
			continue
		}
		if err := m.AddSiteTLS(s.Hosts, *s.TLS); err != nil {
			return nil, fmt.Errorf("site %q: %w", s.Name, err)
		}
	}
	m.siteList = sc.Sites
	return sc.Sites, nil
}

// checkUpstreams dials each site's upstream. The one upstream of the
// flags must answer; with a config, an upstream down at start is logged,
// so that one site's outage does not keep the others from being served.
func (m *Main) checkUpstreams(ctx context.Context, sites []*site) error {
	for _, s := range sites {
		err := checkReachable(ctx, s.Upstream)
		if err != nil && s.flags {
			return err
		}
		if err != nil {
			m.Logger.Warn("site upstream unreachable at start", "site", s.Name, "err", err)
		}
	}
	return nil
}

// siteHandler returns the proxy of each site, made from base (what all
// sites share), behind a Router by host name; the one site of the flags
// answers every host itself. arch is the process's archiver, or nil.
func (m *Main) siteHandler(sites []*site, base proxy.Config, arch *archive.Archiver) (http.Handler, error) {
	var routes []proxy.Route
	for _, s := range sites {
		users := base.UserRules
		if s.UserRules != nil {
			users = s.UserRules
		}
		inj, err := injector.New(injector.Config{
			BlockSelectors:    append(slices.Clone(injector.DefaultBlockSelectors), s.Block...),
			MaskTextSelectors: s.MaskText,
			RecorderVersion:   recorder.Version(recorder.JS()),
			UserSelector:      users.DOMSelector(),
		})
		if err != nil {
			return nil, fmt.Errorf("site %q: injector: %w", s.Name, err)
		}
		pc := base
		pc.Upstream, pc.Injector, pc.Record, pc.UserRules = s.Upstream, inj, s.record, users
		pc.PreserveHost = pc.PreserveHost || s.PreserveHost
		if arch != nil && s.Archive {
			pc.Archive = arch
		}
		if s.flags {
			if pc.Archive != nil {
				pc.SiteHosts = m.Config.siteHostList()
			}
			px, err := proxy.New(pc)
			if err != nil {
				return nil, fmt.Errorf("proxy: %w", err)
			}
			return px, nil
		}
		// The router lets through only the site's hosts: every Host
		// its proxy sees is the site's own.
		px, err := proxy.New(pc)
		if err != nil {
			return nil, fmt.Errorf("site %q: proxy: %w", s.Name, err)
		}
		routes = append(routes, proxy.Route{Name: s.Name, Hosts: s.Hosts, Handler: px})
	}
	rt, err := proxy.NewRouter(base.Prefix, routes)
	if err != nil {
		return nil, fmt.Errorf("sites: %w", err)
	}
	return rt, nil
}

// siteOrigins maps the host names of sites' URLs to their upstreams, for
// the archive's fetcher: the flags' site under --site-host and the listen
// address, a config's sites under their exact hosts, bare and with the
// listen port. Wildcard hosts cannot be listed.
func (m *Main) siteOrigins(sites []*site) map[string]*url.URL {
	out := map[string]*url.URL{}
	_, port, _ := net.SplitHostPort(m.Config.Listen)
	for _, s := range sites {
		if s.flags {
			for _, h := range m.Config.siteHosts() {
				out[strings.ToLower(h)] = s.Upstream
			}
			continue
		}
		for _, h := range s.Hosts {
			if strings.HasPrefix(h, "*.") {
				continue
			}
			out[h] = s.Upstream
			if port != "" && port != "0" {
				out[net.JoinHostPort(h, port)] = s.Upstream
			}
		}
	}
	return out
}

// skipHosts is the archive's AssetWanter for the collector when some
// sites do not archive: it drops the URLs on those sites' own hosts, so
// that the collector does not fetch what their proxies do not capture.
// (Assets such a site's pages load from other hosts, a CDN say, are still
// fetched: a batch does not say which site recorded it.)
type skipHosts struct {
	next collector.AssetWanter
	off  *proxy.Router // answers for the sites that do not archive
}

func (s skipHosts) Want(urls []string) {
	keep := urls[:0:0]
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil && s.off.Match(u.Host) != nil {
			continue
		}
		keep = append(keep, raw)
	}
	if len(keep) > 0 {
		s.next.Want(keep)
	}
}

// assetWanter returns what the collector tells the asset URLs of stored
// batches: arch (the archiver) itself, or arch behind skipHosts when some sites do not
// archive.
func assetWanter(sites []*site, arch collector.AssetWanter) collector.AssetWanter {
	var off []proxy.Route
	for _, s := range sites {
		if !s.Archive && !s.flags {
			off = append(off, proxy.Route{Name: s.Name, Hosts: s.Hosts, Handler: http.NotFoundHandler()})
		}
	}
	if len(off) == 0 {
		return arch
	}
	rt, err := proxy.NewRouter("", off)
	if err != nil { // the hosts were validated with the sites
		return arch
	}
	return skipHosts{next: arch, off: rt}
}

// describeSites tells the operator the sites of --config.
func (m *Main) describeSites(w io.Writer) {
	fmt.Fprintf(w, "Loupe is recording %d sites through %s\n", len(m.siteList), m.ProxyURL)
	if m.ProxyTLSURL != "" {
		fmt.Fprintf(w, "  over TLS: %s\n", m.ProxyTLSURL)
	}
	for _, s := range m.siteList {
		rec := "recording"
		switch {
		case s.Rules.Sampling == 0:
			rec = "not recording"
		case s.Rules.Sampling < 1:
			rec = fmt.Sprintf("recording %g%% of sessions", s.Rules.Sampling*100)
		}
		fmt.Fprintf(w, "  %s: %s → %s, %s\n", s.Name, strings.Join(s.Hosts, ", "), s.Upstream.Redacted(), rec)
	}
}
