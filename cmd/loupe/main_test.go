package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()

	tests := []struct {
		name      string
		args      []string
		wantUsage bool
		want      string
		env       string // NAME=value set for the case
	}{
		{name: "no command", args: nil, wantUsage: true, want: "missing command"},
		{name: "unknown command", args: []string{"frobnicate"}, wantUsage: true, want: `unknown command "frobnicate"`},
		{name: "missing upstream", args: []string{"serve"}, wantUsage: true, want: "--upstream is required"},
		{name: "malformed upstream", args: []string{"serve", "--upstream", "localhost:3000"}, wantUsage: true, want: "is not an http:// or https:// URL"},
		{name: "ftp upstream", args: []string{"serve", "--upstream", "ftp://x"}, wantUsage: true, want: "is not an http:// or https:// URL"},
		{name: "unreachable upstream", args: []string{"serve", "--upstream", "http://" + dead}, want: "is unreachable"},
		{name: "stray argument", args: []string{"serve", "--upstream", origin.URL, "extra"}, wantUsage: true, want: `unexpected argument "extra"`},
		{name: "listen address in use", args: []string{"serve", "--upstream", origin.URL, "--listen", busy.Addr().String(), "--admin", "127.0.0.1:0"}, want: "proxy listener"},
		{name: "mysql database", args: []string{"serve", "--upstream", origin.URL, "--database", "mysql://u:pw@x/db"}, wantUsage: true, want: "is neither empty"},
		{name: "database password not shown", args: []string{"collector", "--database", "mysql://u:hunter2@x/db"}, wantUsage: true, want: "u:xxxxx@x"},
		{name: "unreachable postgres", args: []string{"collector", "--listen", "127.0.0.1:0", "--database", "postgres://u:pw@" + dead + "/db?connect_timeout=3"}, want: "is unreachable"},
		{name: "malformed postgres", args: []string{"replayer", "--admin", "127.0.0.1:0", "--database", "postgres://u@[::1/db"}, want: "database postgres://"},
		{name: "proxy with malformed collector", args: []string{"proxy", "--upstream", origin.URL, "--collector", "10.0.0.5:8082"}, wantUsage: true, want: `--collector "10.0.0.5:8082" is not an http://`},
		{name: "bad trusted proxies", args: []string{"collector", "--trusted-proxies", "10.0.0.0/8,nope"}, wantUsage: true, want: `"nope" is not a CIDR`},
		{name: "collector listen address in use", args: []string{"collector", "--listen", busy.Addr().String()}, want: "collector listener"},
		{name: "bad environment value", args: []string{"collector"}, env: "LOUPE_KEEP_IP=maybe", wantUsage: true, want: `LOUPE_KEEP_IP="maybe"`},
		{name: "proxy without upstream", args: []string{"proxy", "--collector", "http://127.0.0.1:1"}, wantUsage: true, want: "--upstream is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if name, v, ok := strings.Cut(tt.env, "="); ok {
				t.Setenv(name, v)
			}
			var stdout, stderr bytes.Buffer
			args := tt.args
			if len(args) > 0 && args[0] != "frobnicate" {
				args = append(args, "--data", t.TempDir())
			}
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			if got := err.Error(); !strings.Contains(got, tt.want) || strings.Contains(got, "\n") {
				t.Errorf("got error %q, want one line containing %q", got, tt.want)
			}
			if isUsage := errors.As(err, new(usageError)); isUsage != tt.wantUsage {
				t.Errorf("got usage error %v, want %v", isUsage, tt.wantUsage)
			}
		})
	}
}

// TestHelpListsRoleFlags checks that each subcommand offers the flags of
// its roles and no others.
func TestHelpListsRoleFlags(t *testing.T) {
	tests := []struct {
		cmd       string
		want, not []string
	}{
		{"serve", []string{"-upstream", "-listen", "-admin", "-data", "-database", "-trusted-proxies", "-keep-ip", "-geoip", "LOUPE_DATABASE",
			"-archive", "-archive-max-bytes", "-archive-public", "-asset-retention", "LOUPE_ARCHIVE"}, []string{"-collector"}},
		{"proxy", []string{"-upstream", "-listen", "-collector", "-data", "-database", "-trusted-proxies", "LOUPE_COLLECTOR", "-archive", "-archive-public"}, []string{"-admin"}},
		{"collector", []string{"-listen", "-data", "-database", "-trusted-proxies", "-keep-ip", "-geoip", "LOUPE_TRUSTED_PROXIES", "LOUPE_KEEP_IP", "LOUPE_GEOIP", "-archive", "-asset-retention"}, []string{"-upstream", "-admin", "-collector"}},
		{"replayer", []string{"-admin", "-data", "-database", "-asset-retention", "-trusted-proxies"}, []string{"-upstream", "-listen", "-collector", "-keep-ip", "-geoip", "-archive", "-archive-public"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{tt.cmd, "-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("got %v, want flag.ErrHelp", err)
			}
			help := stderr.String()
			for _, w := range tt.want {
				if !strings.Contains(help, w) {
					t.Errorf("loupe %s -h does not mention %s:\n%s", tt.cmd, w, help)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(help, "  "+n+" ") || strings.Contains(help, "  "+n+"\n") {
					t.Errorf("loupe %s -h offers %s, which does not apply:\n%s", tt.cmd, n, help)
				}
			}
		})
	}
}

func TestServeStartsAndStops(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("origin"))
	}))
	defer origin.Close()
	data := t.TempDir()
	t.Setenv("LOUPE_UPSTREAM", origin.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", data}, outW, &stderr)
		outW.Close()
		done <- err
	}()
	// It says where the replay UI is once both listeners are up.
	sc := bufio.NewScanner(outR)
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "the replay UI") {
			break
		}
	}
	if !strings.Contains(out.String(), "the replay UI") {
		t.Fatalf("serve did not say where the replay UI is; stdout %q, err %v", out.String(), <-done)
	}
	go io.Copy(io.Discard, outR)
	secret, err := os.ReadFile(filepath.Join(data, "secret"))
	if err != nil || len(bytes.TrimSpace(secret)) < 32 {
		t.Fatalf("secret file: %q, %v; want at least 32 characters", secret, err)
	}
	if fi, _ := os.Stat(filepath.Join(data, "secret")); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func TestSecretReusedAcrossStarts(t *testing.T) {
	data := t.TempDir()
	m1 := &Main{Config: Config{Data: data}}
	s1, err := m1.secret()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := (&Main{Config: Config{Data: data}}).secret()
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("second start got secret %q (%v), want the first one %q", s2, err, s1)
	}
	if _, err := (&Main{Config: Config{Secret: "short"}}).secret(); err == nil {
		t.Error("short LOUPE_SECRET accepted")
	}
}
