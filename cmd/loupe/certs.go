package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/loupe-dev/loupe/certs"
)

const certsUsage = `Usage:
  loupe certs init [--data DIR]     make the CA that loupe mitm signs its certificates with
  loupe certs export [--data DIR]   print the CA certificate (PEM) to install in a test browser
`

// runCerts is `loupe certs init|export`.
func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, certsUsage)
		return usageError{"loupe certs: missing init or export"}
	}
	sub := args[0]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, certsUsage)
		return nil
	}
	if sub != "init" && sub != "export" {
		fmt.Fprint(stderr, certsUsage)
		return usageError{fmt.Sprintf("loupe certs: unknown command %q", sub)}
	}
	fs := flag.NewFlagSet("loupe certs "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./loupe-data", "data `folder` the CA is kept in")
	if err := bindEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	switch sub {
	case "init":
		ca, err := certs.InitCA(*data, nil)
		if errors.Is(err, certs.ErrCAExists) {
			return fmt.Errorf("%w; loupe certs export prints it, and removing %s and %s makes way for a new one", err,
				filepath.Join(*data, certs.CACertFile), filepath.Join(*data, certs.CAKeyFile))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, `Made the CA %q for loupe mitm:
  certificate: %s
  key:         %s (only you can read it; never share it)
Install the certificate in a test browser profile only, e.g.:
  loupe certs export --data %s > loupe-ca.crt
`, ca.Cert.Subject.CommonName, filepath.Join(*data, certs.CACertFile), filepath.Join(*data, certs.CAKeyFile), *data)
		return nil
	default:
		ca, err := certs.LoadCA(*data)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no CA in %s: run loupe certs init --data %s first", *data, *data)
		}
		if err != nil {
			return err
		}
		_, err = stdout.Write(ca.PEM)
		return err
	}
}
