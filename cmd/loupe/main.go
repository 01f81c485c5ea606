// Command loupe is Loupe's one binary: a reverse proxy that records visitors'
// sessions on any site, its ingest endpoint and its replay server.
//
//	loupe serve --upstream http://127.0.0.1:3000   every role in one process
//	loupe proxy --upstream URL [--collector URL]  the site-facing proxy only
//	loupe collector --database postgres://…       the ingest endpoint only
//	loupe replayer --database postgres://…        the replay server only
//	loupe demo                                     the built-in demo shop with Loupe in front
//	loupe mitm --record-host shop.example          a forward proxy recording chosen hosts (lab studies)
//	loupe certs init|export                        the CA loupe mitm signs with
//	loupe users add NAME --role editor             who may sign in to the replay UI
//	loupe version
//
// Every subcommand parses its flags into one Config (config.go), and Main
// (serve.go) opens the store and the listeners of the roles it runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful shutdown; a second one kills.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "loupe: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "loupe: %v\n", err)
		os.Exit(1)
	}
}

const usage = `Loupe records what visitors do on a website, with no change to the site.

Usage:
  loupe serve --upstream URL [flags]       proxy, collector and replay server in one process
  loupe proxy --upstream URL [flags]       the site-facing proxy only; ingest goes to
                                           --collector, or to a collector in this process
  loupe collector [flags]                  the ingest endpoint only (POST /__loupe/ingest)
  loupe replayer [flags]                   the replay server only
  loupe demo [flags]                       the built-in demo shop with Loupe in front of it
  loupe mitm --record-host HOSTS [flags]   a forward proxy for lab studies: records those hosts
                                           in a test browser that trusts Loupe's CA
  loupe certs init|export [--data DIR]     make Loupe's CA for loupe mitm, or print it
  loupe users list|add|passwd|role|remove  who may sign in to the replay UI, and their roles
  loupe version

Every node of one deployment shares one store (--database postgres://…) and
one secret (LOUPE_SECRET, or the secret file in --data).
Run 'loupe <command> -h' for its flags; each has a LOUPE_* environment equivalent.
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// runRoles is every subcommand that runs roles: it parses the flags that
// apply to them, starts them and serves until ctx is done.
func runRoles(ctx context.Context, cmd string, r roles, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loupe "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	if err := cfg.flags(fs, r); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	m := &Main{Config: cfg, Roles: r, Logger: newLogger(stderr)}
	if err := m.Open(ctx); err != nil {
		m.Close()
		return err
	}
	m.describe(stdout)
	err := m.Wait(ctx)
	return errors.Join(err, m.Close())
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// roleCommands are the subcommands that run roles, and their roles.
var roleCommands = map[string]roles{"serve": allRoles, "proxy": roleProxy, "collector": roleCollector, "replayer": roleReplayer}

// run is the whole program; tests call it with their own arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"missing command"}
	}
	cmd, rest := args[0], args[1:]
	if r, ok := roleCommands[cmd]; ok {
		return runRoles(ctx, cmd, r, rest, stdout, stderr)
	}
	switch cmd {
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "mitm":
		return runMITM(ctx, rest, stdout, stderr)
	case "certs":
		return runCerts(ctx, rest, stdout, stderr)
	case "users":
		return runUsers(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "loupe", version)
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}
