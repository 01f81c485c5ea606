// Package ingest measures the collector end to end: real HTTP requests
// carrying gzipped batches of a real Chromium recording, through the
// collector's validation and derivation, into SQLite or PostgreSQL.
//
//	go test ./bench/ingest -run '^$' -bench . -benchtime 2000x
//
// The collector runs in a process of its own (this test binary, started
// again as a server by TestMain), so that its CPU time is measured apart
// from the load generator's. Reported per run: raw event MB/s (the JSON the
// recorder produced, before transport compression), events/s, p50/p99
// request latency, raw MB per CPU-second of the collector process (HTTP
// server, collector, store driver, and SQLite's engine) and of it plus the
// PostgreSQL server processes, and the store's stored bytes per raw byte.
package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

// request is one prepared ingest request.
type request struct {
	body     []byte // gzipped wire batch
	rawBytes int    // the events' JSON, uncompressed
	events   int
}

// prepare builds the requests of sessions copies of the Chromium sample,
// each copy its own session with its own tokens.
func prepare(tb testing.TB, tk *collector.Tokens, sessions int) []request {
	tb.Helper()
	sample := storetest.ChromiumSession("sample")
	var out []request
	for i := 0; i < sessions; i++ {
		sess := tk.NewSession()
		pvs := map[string]string{}
		for _, b := range sample {
			pv, ok := pvs[b.PageViewID]
			if !ok {
				pv = collector.NewID()
				pvs[b.PageViewID] = pv
			}
			wire, err := json.Marshal(map[string]any{
				"v": 1, "token": tk.PageViewToken(sess, pv), "pv": pv, "seq": b.Seq,
				"events": json.RawMessage(b.Events),
			})
			if err != nil {
				tb.Fatal(err)
			}
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(wire)
			zw.Close()
			out = append(out, request{body: z.Bytes(), rawBytes: len(b.Events), events: b.EventCount})
		}
	}
	return out
}

func BenchmarkIngest(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "loupe.db")
		run(b, "sqlite:"+path, nil, func() (store.Store, error) { return sqlite.Open(context.Background(), path) })
	})
	b.Run("postgres", func(b *testing.B) {
		srv := pgtest.Start(b) // durable: fsync on, as in production
		run(b, "postgres:"+srv.DSN(), srv, func() (store.Store, error) { return postgres.Open(context.Background(), srv.DSN()) })
	})
}

// collectorEnv, set to "sqlite:PATH" or "postgres:DSN", makes this test
// binary the collector of one BenchmarkIngest run (TestMain).
const collectorEnv = "LOUPE_BENCH_COLLECTOR"

// benchSecret is the token key the collector and the load share.
var benchSecret = []byte(strings.Repeat("b", 32))

func TestMain(m *testing.M) {
	if spec := os.Getenv(collectorEnv); spec != "" {
		if err := serveCollector(spec); err != nil {
			fmt.Fprintln(os.Stderr, "collector:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveCollector opens the store spec names, serves a collector on it at a
// loopback address it prints on stdout, and stops when stdin closes.
func serveCollector(spec string) error {
	backend, where, _ := strings.Cut(spec, ":")
	var st store.Store
	var err error
	switch backend {
	case "sqlite":
		st, err = sqlite.Open(context.Background(), where)
	case "postgres":
		st, err = postgres.Open(context.Background(), where)
	default:
		err = fmt.Errorf("unknown backend %q", backend)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	tk, err := collector.NewTokens(benchSecret)
	if err != nil {
		return err
	}
	// Archiving is on by default, so batches are scanned for asset URLs;
	// the fetcher they would go to is left out.
	c := &collector.Collector{Store: st, Tokens: tk, Logger: slog.New(slog.DiscardHandler),
		Limits: collector.Limits{SessionRate: rate.Inf, ClientRate: rate.Inf}, Assets: noFetch{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: c}
	go srv.Serve(ln)
	fmt.Printf("http://%s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return srv.Shutdown(context.Background())
}

// startCollector runs the collector of spec in a process of its own and
// returns its URL, its pid and a function that stops it.
func startCollector(b *testing.B, spec string) (url string, pid int, stop func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), collectorEnv+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop = func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("collector: %v", err)
		}
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		b.Fatalf("collector did not start: %v", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, stop
}

func run(b *testing.B, spec string, pg *pgtest.Server, open func() (store.Store, error)) {
	tk, err := collector.NewTokens(benchSecret)
	if err != nil {
		b.Fatal(err)
	}
	url, pid, stop := startCollector(b, spec)

	// Requests are grouped by session and each worker sends whole
	// sessions, one request at a time, as a browser tab does: a session's
	// batches never race each other (its first one becomes the keyframe
	// the later ones are compressed against).
	perSession := len(storetest.ChromiumSession("x"))
	reqs := prepare(b, tk, b.N/perSession+1)[:b.N]
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const workers = 8
	lat := make([]time.Duration, b.N)
	var nextSession atomic.Int64
	var failed atomic.Int64
	var rawBytes, events int64
	for _, r := range reqs {
		rawBytes += int64(r.rawBytes)
		events += int64(r.events)
	}

	cpu0, pg0 := processCPU(b, pid), serverCPU(pg)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(nextSession.Add(1)-1) * perSession
				if first >= len(reqs) {
					return
				}
				for i := first; i < min(first+perSession, len(reqs)); i++ {
					t0 := time.Now()
					resp, err := client.Post(url, "application/json", bytes.NewReader(reqs[i].body))
					if err != nil {
						failed.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						failed.Add(1)
					}
					lat[i] = time.Since(t0)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, pgCPU := processCPU(b, pid)-cpu0, serverCPU(pg)-pg0
	client.CloseIdleConnections()
	stop()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, len(reqs))
	}

	slices.Sort(lat)
	mb := float64(rawBytes) / 1e6
	b.ReportMetric(mb/elapsed.Seconds(), "rawMB/s")
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(mb/cpu.Seconds(), "rawMB/cpu-s(collector)")
	if pg != nil {
		b.ReportMetric(mb/(cpu+pgCPU).Seconds(), "rawMB/cpu-s(collector+pg)")
	}
	st, err := open()
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.ReportMetric(storedRatio(b, st), "stored/raw")
}

// noFetch is an archive that wants nothing fetched.
type noFetch struct{}

func (noFetch) Want([]string) {}

// storedRatio is the store's stored bytes over the raw event bytes, over
// every session it holds.
func storedRatio(b *testing.B, st store.Store) float64 {
	var raw, stored int64
	for off := 0; ; off += 1000 {
		list, err := st.Sessions(context.Background(), store.SessionFilter{Limit: 1000, Offset: off})
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range list {
			raw += s.Bytes
			stored += s.StoredBytes
		}
		if len(list) < 1000 {
			break
		}
	}
	return float64(stored) / float64(raw)
}

// processCPU is the user+system CPU time of process pid, from /proc.
func processCPU(b *testing.B, pid int) time.Duration {
	cpu, _, err := procStat(pid)
	if err != nil {
		b.Fatalf("the collector's CPU time: %v", err)
	}
	return cpu
}

// procStat returns the user+system CPU time and the parent of process pid.
func procStat(pid int) (time.Duration, int, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name (which may hold spaces): state is
	// field 3, ppid 4, utime 14, stime 15 (proc(5)).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("unreadable stat")
	}
	f := strings.Fields(string(stat[i+2:]))
	if len(f) < 13 {
		return 0, 0, errors.New("unreadable stat")
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, ppid, nil // USER_HZ is 100 on Linux
}

// serverCPU sums the user+system CPU time of the PostgreSQL postmaster and
// its children, from /proc; 0 without a server.
func serverCPU(pg *pgtest.Server) time.Duration {
	if pg == nil {
		return 0
	}
	pidFile, err := os.ReadFile(filepath.Join(pg.Dir(), "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	root, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	entries, _ := os.ReadDir("/proc")
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cpu, ppid, err := procStat(pid)
		if err == nil && (pid == root || ppid == root) {
			total += cpu
		}
	}
	return total
}
