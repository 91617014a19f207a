// Command csi-secrets-store-provider-alibabacloud is the one binary of the
// project. It wires flags, environment and signals to the packages; it holds
// no logic of its own. Subcommands: serve (default), mount, dev, doctor,
// version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/gctune"
)

// Stamped at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `usage: csi-secrets-store-provider-alibabacloud <command> [flags]

commands:
  serve    serve the provider socket for the Secrets Store CSI Driver (default)
  mount    mount a read-only FUSE view of SecretProviderClass files on this node
  dev      run an Alibaba Cloud emulator with demo secrets, serve and mount a demo
  doctor   check a SecretProviderClass against the real services and explain failures
  version  print the version, commit and Go version

With no command (the first argument is a flag), serve runs.
Run "csi-secrets-store-provider-alibabacloud <command> -h" (or "help <command>")
for the flags of a command, with that command's defaults.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			// The program's help, not serve's: serve's is "serve -h".
			fmt.Print(usage)
			return 0
		case "help":
			if len(args) > 1 {
				return run([]string{args[1], "-h"})
			}
			fmt.Print(usage)
			return 0
		}
	}
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The collector's setting, unless the operator chose (GOGC, GOMEMLIMIT).
	gcCtx, gcStop := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() { defer close(gcDone); gctune.Run(gcCtx) }()
	defer func() { gcStop(); <-gcDone }()
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args)
	case "mount":
		err = runMount(ctx, args)
	case "dev":
		err = runDev(ctx, args)
	case "doctor":
		return runDoctor(ctx, args)
	case "version":
		if len(args) > 0 {
			if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
				fmt.Print("usage: csi-secrets-store-provider-alibabacloud version\n\nPrints the version, commit, Go version and platform. It takes no flags.\n")
				return 0
			}
			fmt.Fprintf(os.Stderr, "error: version takes no flags or arguments, got %q\n", args)
			return 2
		}
		printVersion(os.Stdout)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 2
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// exitCode ends the command with that exit code and no error line: the
// command has printed why (dev --doctor's report).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// usageError is a bad flag or argument (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
