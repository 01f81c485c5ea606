// Command loupe is Loupe's one binary: a reverse proxy that records visitors'
// sessions on any site, its ingest endpoint and its replay server.
//
//	loupe serve --upstream http://127.0.0.1:3000   every role in one process
//	loupe demo                                     the built-in demo shop with Loupe in front
//	loupe version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
  loupe serve --upstream URL [flags]   proxy, collector and replay server in one process
  loupe demo [flags]                   the built-in demo shop with Loupe in front of it
  loupe version

Run 'loupe serve -h' for the flags; each has a LOUPE_* environment equivalent.
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program; tests call it with their own arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"missing command"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
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
