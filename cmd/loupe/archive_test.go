package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

func TestArchiveFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantOff    bool
		wantPublic []string
		wantMax    int64
		wantKeep   time.Duration
		wantErr    string
	}{
		{name: "default on", args: nil},
		{name: "off", args: []string{"--archive=false"}, wantOff: true},
		{name: "off from env", env: map[string]string{"LOUPE_ARCHIVE": "false"}, wantOff: true},
		{name: "flag beats env", args: []string{"--archive"}, env: map[string]string{"LOUPE_ARCHIVE": "false"}},
		{name: "policy", args: []string{"--archive-public", "/static/*, /img/*/*", "--archive-max-bytes", "1048576", "--asset-retention", "720h"},
			wantPublic: []string{"/static/*", "/img/*/*"}, wantMax: 1 << 20, wantKeep: 720 * time.Hour},
		{name: "bad glob", args: []string{"--archive-public", "/static/[a"}, wantErr: "not a path glob"},
		{name: "relative glob", args: []string{"--archive-public", "static/*"}, wantErr: "not a path glob"},
		{name: "negative size", args: []string{"--archive-max-bytes", "-1"}, wantErr: "must not be negative"},
		{name: "negative retention", args: []string{"--asset-retention", "-1h"}, wantErr: "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c := parseServeFlags(t, tt.args)
			p, err := c.archivePolicy()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, new(usageError)) {
					t.Fatalf("got error %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.NoArchive != tt.wantOff {
				t.Errorf("NoArchive: got %v, want %v", c.NoArchive, tt.wantOff)
			}
			if !reflect.DeepEqual(p.PublicPatterns, tt.wantPublic) {
				t.Errorf("PublicPatterns: got %q, want %q", p.PublicPatterns, tt.wantPublic)
			}
			if p.MaxBytes != tt.wantMax || c.AssetRetention != tt.wantKeep {
				t.Errorf("MaxBytes, AssetRetention: got %d, %v, want %d, %v", p.MaxBytes, c.AssetRetention, tt.wantMax, tt.wantKeep)
			}
		})
	}
}

// pruneStore records PruneAssets calls; every other method panics.
type pruneStore struct {
	store.Store
	store.AssetStore
	mu      sync.Mutex
	cutoffs []time.Time
	called  chan struct{}
}

func (p *pruneStore) PruneAssets(_ context.Context, cutoff time.Time) (int, error) {
	p.mu.Lock()
	p.cutoffs = append(p.cutoffs, cutoff)
	p.mu.Unlock()
	p.called <- struct{}{}
	return 0, nil
}

func TestRetentionPrunesAtStart(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ps := &pruneStore{called: make(chan struct{}, 1)}
	m := &Main{Config: Config{AssetRetention: 30 * 24 * time.Hour}, Logger: slog.New(slog.DiscardHandler),
		db: ps, now: func() time.Time { return now }}
	if err := m.startRetention(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ps.called:
	case <-time.After(5 * time.Second):
		t.Fatal("no prune at start")
	}
	m.stopLoops[0]()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if want := []time.Time{now.Add(-30 * 24 * time.Hour)}; !reflect.DeepEqual(ps.cutoffs, want) {
		t.Errorf("cutoffs: got %v, want %v", ps.cutoffs, want)
	}
}

// idleStore records EndIdlePageViews calls; every other method panics.
type idleStore struct {
	store.Store
	called chan time.Time
}

func (s *idleStore) EndIdlePageViews(_ context.Context, idleBefore time.Time, limit int) (int, error) {
	s.called <- idleBefore
	return 0, nil
}

// TestIdleEnderAtStart: the collector ends idle page views at start (and
// then every idleEvery), with the cutoff store.PageViewIdle ago.
func TestIdleEnderAtStart(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	is := &idleStore{called: make(chan time.Time, 1)}
	m := &Main{Logger: slog.New(slog.DiscardHandler), db: is, now: func() time.Time { return now }}
	m.startIdleEnder()
	defer m.stopLoops[0]()
	select {
	case got := <-is.called:
		if want := now.Add(-store.PageViewIdle); !got.Equal(want) {
			t.Errorf("cutoff: got %v, want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no idle page views ended at start")
	}
}

func TestRetentionOff(t *testing.T) {
	m := &Main{Config: Config{}, db: &pruneStore{}}
	if err := m.startRetention(); err != nil || len(m.stopLoops) != 0 {
		t.Errorf("retention 0: got err %v, %d loops running; want none", err, len(m.stopLoops))
	}
}

// TestArchiveEndToEnd serves a stylesheet and an image through the proxy,
// then finds them in the archive and served by the replay server.
func TestArchiveEndToEnd(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/shop.css":
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, "body{background:url(bg.png)}")
		case "/bg.png":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, "\x89PNG bg")
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()
	m := startLoupe(t, origin.URL)
	as, ok := m.db.(store.AssetStore)
	if !ok {
		t.Fatalf("the store (%T) has no asset archive", m.db)
	}
	for _, p := range []string{"/shop.css", "/bg.png"} {
		resp, err := http.Get(m.ProxyURL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	css := m.ProxyURL + "/shop.css"
	var a *store.Asset
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if a, err = as.Capture(context.Background(), css, time.Now()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive has no capture of %s after 10 s: %v", css, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	bg := m.ProxyURL + "/bg.png"
	for time.Now().Before(deadline) {
		if _, err := as.Capture(context.Background(), bg, time.Now()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := adminGet(m.AdminURL + "/archive/" + a.Hash + "?u=" + url.QueryEscape(css) + "&t=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Fatalf("archived CSS: got %d, CSP %q, want 200 sandboxed", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if !strings.Contains(string(body), "/archive/") {
		t.Errorf("archived CSS: got %q, want its bg.png pointing into the archive", body)
	}
}

func TestSiteHosts(t *testing.T) {
	tests := []struct {
		listen, siteHost string
		want             []string
	}{
		{"127.0.0.1:8080", "", []string{"127.0.0.1:8080"}},
		{"127.0.0.1:0", "", nil},
		{"0.0.0.0:8080", "shop.example, www.shop.example", []string{"shop.example", "www.shop.example"}},
		{":8080", "shop.example", []string{"shop.example"}},
		{"10.0.0.5:80", "Shop.Example", []string{"Shop.Example", "10.0.0.5:80"}},
	}
	for _, tt := range tests {
		c := Config{Listen: tt.listen, SiteHosts: tt.siteHost}
		if got := c.siteHosts(); !slices.Equal(got, tt.want) {
			t.Errorf("listen %q, --site-host %q: got %q, want %q", tt.listen, tt.siteHost, got, tt.want)
		}
	}
}

// parseServeFlags is the Config `loupe serve` makes of args (and of the
// environment's LOUPE_* variables).
func parseServeFlags(t *testing.T, args []string) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := c.flags(fs, allRoles); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}
