// Package ingest measures the collector end to end: real HTTP requests
// carrying gzipped batches of a real Chromium recording, through the
// collector's validation and derivation, into SQLite or PostgreSQL.
//
//	go test ./bench/ingest -run '^$' -bench . -benchtime 2000x
//
// Reported per run: raw event MB/s (the JSON the recorder produced, before
// transport compression), events/s, p50/p99 request latency, CPU per raw MB
// of the Loupe process (collector, store driver, HTTP on both ends) and of
// the PostgreSQL server processes, and the store's stored bytes per raw byte.
package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "loupe.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db, nil)
	})
	b.Run("postgres", func(b *testing.B) {
		srv := pgtest.Start(b) // durable: fsync on, as in production
		db, err := postgres.Open(context.Background(), srv.DSN())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db, srv)
	})
}

func run(b *testing.B, st store.Store, pg *pgtest.Server) {
	tk, err := collector.NewTokens([]byte(strings.Repeat("b", 32)))
	if err != nil {
		b.Fatal(err)
	}
	// Archiving is on by default, so batches are scanned for asset URLs;
	// the fetcher they would go to is left out.
	c := &collector.Collector{Store: st, Tokens: tk, Logger: slog.New(slog.DiscardHandler),
		Limits: collector.Limits{SessionRate: rate.Inf, ClientRate: rate.Inf}, Assets: noFetch{}}
	srv := httptest.NewServer(c)
	defer srv.Close()

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

	cpu0, pg0 := processCPU(), serverCPU(pg)
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
					resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(reqs[i].body))
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
	cpu, pgCPU := processCPU()-cpu0, serverCPU(pg)-pg0
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, len(reqs))
	}

	slices.Sort(lat)
	mb := float64(rawBytes) / 1e6
	b.ReportMetric(mb/elapsed.Seconds(), "rawMB/s")
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(mb/cpu.Seconds(), "rawMB/cpu-s(loupe)")
	if pg != nil {
		b.ReportMetric(mb/(cpu+pgCPU).Seconds(), "rawMB/cpu-s(loupe+pg)")
	}
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

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	var ticks int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, ppid 4, utime 14, stime 15 (proc(5)).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ppid, _ := strconv.Atoi(f[1])
		if pid != root && ppid != root {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + stt
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}
