package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// loupeBin is the loupe binary the process tests run, built once by
// TestMain.
var loupeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loupe-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	loupeBin = filepath.Join(dir, "loupe")
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	// Built as deploy/docker/Dockerfile builds it: static, without cgo.
	build := exec.Command(goTool, "build", "-trimpath", "-o", loupeBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build loupe: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testSecret is the LOUPE_SECRET every process of one test shares.
const testSecret = "loupe-test-secret-0123456789abcdef0123456789"

// proc is one running loupe process.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	urls map[string]string // from its start-up lines: "the site through Loupe", "ingest", "the replay UI"
	log  *syncBuffer       // its stderr
	done chan struct{}     // closed when it has exited
	err  error             // its exit status, once done
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var urlLine = regexp.MustCompile(`^\s*([a-zA-Z ]+):\s+(http://\S+)$`)

// startProc runs `loupe args…` with LOUPE_SECRET set and no other LOUPE_*
// variable of the test's own environment, and waits until it has printed
// the URLs named in want. The process is killed when the test ends if it
// is still running.
func startProc(t testing.TB, want []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(loupeBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOUPE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LOUPE_SECRET="+testSecret)
	p := &proc{t: t, cmd: cmd, urls: map[string]string{}, log: new(syncBuffer), done: make(chan struct{})}
	cmd.Stderr = p.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start loupe %s: %v", args[0], err)
	}
	t.Cleanup(func() { p.kill() })

	// Buffered: lines arriving while nobody waits are kept, and once the
	// channel is full (long after start-up) dropped.
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody is waiting any more
			}
		}
		close(lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	timeout := time.After(30 * time.Second)
	for missing := len(want); missing > 0; {
		select {
		case line, ok := <-lines:
			if !ok {
				<-p.done
				t.Fatalf("loupe %s exited before it was up: %v\n%s", strings.Join(args, " "), p.err, p.log)
			}
			if m := urlLine.FindStringSubmatch(line); m != nil {
				name := strings.TrimSpace(m[1])
				if _, seen := p.urls[name]; !seen {
					p.urls[name] = m[2]
					for _, w := range want {
						if w == name {
							missing--
						}
					}
				}
			}
		case <-timeout:
			t.Fatalf("loupe %s did not say it was up within 30 s\n%s", args[0], p.log)
		}
	}
	return p
}

// url returns the URL the process printed under name.
func (p *proc) url(name string) string { return p.urls[name] }

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit error.
func (p *proc) wait(d time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("loupe did not exit within %v\n%s", d, p.log)
		return nil
	}
}

// stop ends the process gracefully and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if err := p.wait(25 * time.Second); err != nil {
		p.t.Errorf("loupe exited with %v after SIGTERM\n%s", err, p.log)
	}
}

// kill ends the process at once if it still runs.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// openStore opens the store a process was given, the way loupe does.
func openStore(t testing.TB, database, data string) *Main {
	t.Helper()
	m := &Main{Config: Config{Database: database, Data: data}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.openStore(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.db.Close() })
	return m
}

var _ io.Writer = (*syncBuffer)(nil)
