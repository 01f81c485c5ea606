// Package pgtest starts private PostgreSQL servers for tests: one data folder
// in a temporary directory, one free loopback port, trust authentication,
// stopped and removed when the test (or the test binary) ends.
//
// A test that needs its own server, for instance to stop it under load:
//
//	srv := pgtest.Start(t)
//	dsn := srv.CreateDB(t)
//	...
//	srv.Stop(t)  // like a crash: pg_ctl stop -m immediate
//	srv.Start(t) // same data folder, same port
//
// Tests of one package that can share a server start one per test binary:
//
//	func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Fast()) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.Shared(t).CreateDB(t) // a fresh empty database
//		...
//	}
//
// The binaries are found in /usr/lib/postgresql/15/bin, then through
// pg_config --bindir, then on PATH. Where they are absent, the test is
// skipped with a message saying so, unless the environment variable CI is
// set: there it fails. PostgreSQL refuses to run as root; when the test runs
// as root (as CI does), the server runs as the postgres system user through
// runuser, and the temporary folder belongs to that user.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultBinDir is where Debian and Ubuntu install PostgreSQL 15.
const defaultBinDir = "/usr/lib/postgresql/15/bin"

// errAbsent reports that the PostgreSQL binaries could not be found.
var errAbsent = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in " +
	defaultBinDir + ", pg_config --bindir or PATH; install postgresql-15 to run these tests")

// Option changes how a server is set up.
type Option func(*config)

type config struct {
	fast bool
}

// Fast trades durability for speed: fsync, synchronous_commit and
// full_page_writes off. A server that is stopped with pg_ctl stop -m
// immediate still recovers everything committed (nothing but the OS crashing
// needs fsync), but tests about durability should not use it anyway; the
// default is durable.
func Fast() Option { return func(c *config) { c.fast = true } }

// Server is one private PostgreSQL server. Its methods are safe for
// concurrent use.
type Server struct {
	bin  string // folder of initdb, pg_ctl, postgres
	dir  string // temporary folder: data/, server.log, the Unix socket
	port int
	cfg  config
	// runAs is non-nil when the test runs as root: commands run as postgres.
	runAs *user.User

	mu      sync.Mutex
	running bool
	dbs     atomic.Int64 // databases created, for names
}

// Start starts a new server and registers a cleanup that stops it and
// removes its folder. It skips the test if PostgreSQL is not installed
// (fails instead when the environment variable CI is set).
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := start(opts...)
	if err != nil {
		failStart(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

func failStart(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errAbsent) && os.Getenv("CI") == "" {
		tb.Skipf("pgtest: %v", err)
	}
	tb.Fatalf("pgtest: %v", err)
}

// DSN returns the connection string of the server's postgres database, as
// the superuser postgres.
func (s *Server) DSN() string { return s.dsn("postgres") }

func (s *Server) dsn(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir returns the server's temporary folder (data/ and server.log in it).
func (s *Server) Dir() string { return s.dir }

// CreateDB creates a new empty database and returns its DSN. The database
// is dropped when the test ends, if the server is still up.
func (s *Server) CreateDB(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), s.dbs.Add(1))
	if err := s.exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		s.mu.Lock()
		running := s.running
		s.mu.Unlock()
		if !running {
			return
		}
		// FORCE: a test that failed may have left connections open.
		if err := s.exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.dsn(name)
}

func (s *Server) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server at once, without a checkpoint, as a crash would
// (pg_ctl stop -m immediate); connections are cut. The next Start recovers
// from the write-ahead log.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Start starts the stopped server again on the same data folder and port,
// and waits until it accepts connections.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.startServer(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// start finds the binaries, makes the folder, runs initdb and starts the
// server.
func start(opts ...Option) (*Server, error) {
	s := &Server{}
	for _, o := range opts {
		o(&s.cfg)
	}
	var err error
	if s.bin, err = binDir(); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("runuser"); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as another user, and runuser is missing: %w", err)
		}
		if s.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres user: %w", err)
		}
	}
	if s.dir, err = s.makeDir(); err != nil {
		return nil, err
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	// The port is chosen free but could be taken before the server binds
	// it; try a few.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.writePortConf(); err != nil {
			break
		}
		if err = s.startServer(); err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

func binDir() (string, error) {
	if isFile(filepath.Join(defaultBinDir, "initdb")) && isFile(filepath.Join(defaultBinDir, "pg_ctl")) {
		return defaultBinDir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isFile(filepath.Join(dir, "initdb")) && isFile(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if isFile(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", errAbsent
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// makeDir creates the temporary folder, owned by the postgres user when
// running as root.
func (s *Server) makeDir() (string, error) {
	parent := os.TempDir()
	if s.runAs != nil {
		// The postgres user must be able to reach the folder; a root-only
		// TMPDIR would not do.
		if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm()&0o001 == 0 {
			parent = "/tmp"
		}
	}
	dir, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		return "", fmt.Errorf("make folder: %w", err)
	}
	if s.runAs != nil {
		uid, _ := strconv.Atoi(s.runAs.Uid)
		gid, _ := strconv.Atoi(s.runAs.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("give folder to postgres: %w", err)
		}
	}
	return dir, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "server.log") }

// command runs a PostgreSQL program, as postgres when running as root.
func (s *Server) command(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.runAs != nil {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// The test's working folder may not be readable by postgres.
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	return cmd
}

func (s *Server) run(prog string, args ...string) error {
	cmd := s.command(prog, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

func (s *Server) initdb() error {
	err := s.run("initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err != nil {
		return err
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + s.dir + "'",
		"max_connections = 300",
		"shared_buffers = 64MB",
		"log_min_messages = warning",
		"log_statement = none",
		"timezone = 'UTC'",
		// A checkpoint after a burst of writes is not what tests wait for.
		"max_wal_size = 1GB",
	}
	if s.cfg.fast {
		conf = append(conf, "fsync = off", "synchronous_commit = off", "full_page_writes = off")
	} else {
		conf = append(conf, "fsync = on", "synchronous_commit = on")
	}
	return appendFile(filepath.Join(s.dataDir(), "postgresql.conf"), strings.Join(conf, "\n")+"\n")
}

// writePortConf records the port in postgresql.auto.conf, so that a restart
// uses it too.
func (s *Server) writePortConf() error {
	return os.WriteFile(filepath.Join(s.dataDir(), "postgresql.auto.conf"),
		[]byte(fmt.Sprintf("port = %d\n", s.port)), 0o600)
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n# pgtest\n" + text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs pg_ctl start and waits until the server accepts
// connections.
func (s *Server) startServer() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("start: server already running")
	}
	// postgresql.auto.conf was written by this process; when running as
	// root it must belong to postgres, which rewrites it on ALTER SYSTEM.
	if s.runAs != nil {
		uid, _ := strconv.Atoi(s.runAs.Uid)
		gid, _ := strconv.Atoi(s.runAs.Gid)
		os.Chown(filepath.Join(s.dataDir(), "postgresql.auto.conf"), uid, gid)
	}
	if err := s.run("pg_ctl", "start", "-D", s.dataDir(), "-l", s.logFile(), "-w", "-t", "60"); err != nil {
		return fmt.Errorf("%w\nserver log:\n%s", err, s.logTail())
	}
	s.running = true
	// pg_ctl -w waits for the postmaster; make sure TCP connections work.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server on port %d not accepting connections: %w\nserver log:\n%s", s.port, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	if err := s.run("pg_ctl", "stop", "-D", s.dataDir(), "-m", "immediate", "-w", "-t", "60"); err != nil {
		return err
	}
	s.running = false
	return nil
}

// close stops the server and removes its folder.
func (s *Server) close() error {
	err := s.stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logFile())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// The shared server of a test binary.
var shared struct {
	mu      sync.Mutex
	inMain  bool
	opts    []Option
	started bool
	srv     *Server
	err     error
}

// Main runs the tests of a package whose tests call Shared, then stops the
// shared server (if one was started) and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// opts apply to the shared server.
func Main(m *testing.M, opts ...Option) {
	shared.mu.Lock()
	shared.inMain = true
	shared.opts = opts
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	if shared.srv != nil {
		if err := shared.srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop shared server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.srv = nil
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// Shared returns the test binary's shared server, starting it on first use.
// The package's TestMain must call Main, which stops it when the tests end;
// Shared fails the test otherwise, rather than leave a server running. Tests
// should not stop the shared server; use Start for that.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		tb.Fatal("pgtest: Shared needs TestMain to call pgtest.Main(m), which stops the server")
	}
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = start(shared.opts...)
	}
	if shared.err != nil {
		failStart(tb, shared.err)
	}
	return shared.srv
}
