package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/doctor"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// Exit codes of doctor.
const (
	doctorOK       = 0 // every object of every class was read
	doctorFailed   = 1 // the identity or some object failed; the fixes are printed
	doctorBadUsage = 2 // bad flags or a class file that is not a valid class
)

const doctorUsage = `usage: csi-secrets-store-provider-alibabacloud doctor --class FILE [--class FILE ...] [flags]

Checks SecretProviderClass manifests against KMS and OOS with the provider's
own identity (the same flags and environment as serve): resolves the identity,
reads every object once (no cache), and prints one row per object and, for
each failure, the fix. Secret values are never printed: only their size and
version. Exit code: 0 all objects readable, 1 some failed, 2 bad usage or class.

flags:
`

const doctorUsageTail = `
serve's other flags (socket, cache, namespace policy, metrics, health, FUSE view)
are accepted and ignored, so that serve's command line can be reused as is.
`

func runDoctor(ctx context.Context, args []string) int {
	return doctorCommand(ctx, args, os.Stdout, os.Stderr)
}

func doctorCommand(ctx context.Context, args []string, out, errw io.Writer) int {
	o := options{command: "doctor"}
	o.setDefaults()
	var classes stringList
	flags := flag.NewFlagSet("doctor", flag.ContinueOnError)
	flags.SetOutput(errw)
	// doctor's own flags: where the services are, whose identity, the
	// upstream limits, logging. The cache, the policy and serve's socket,
	// operations and FUSE flags play no part in a check.
	o.registerServices(flags)
	o.registerIdentity(flags)
	o.registerLimits(flags)
	o.registerLog(flags)
	flags.Var(&classes, "class", "SecretProviderClass manifest (YAML) to check, - for stdin; repeat for more files. Every class in a file is checked, other documents are skipped")
	timeout := flags.Duration("timeout", 30*time.Second, "how long to try each object, retries included")
	own := map[string]bool{}
	flags.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	acceptServeFlags(flags)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), doctorUsage)
		printFlags(flags.Output(), flags, func(name string) bool { return own[name] })
		fmt.Fprint(flags.Output(), doctorUsageTail)
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return doctorOK
		}
		return doctorBadUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(errw, "error: doctor takes no arguments, got %q; pass class files with --class\n", flags.Args())
		return doctorBadUsage
	}
	if len(classes) == 0 {
		fmt.Fprintln(errw, "error: no class: pass --class FILE (a SecretProviderClass manifest); repeat it for more")
		return doctorBadUsage
	}
	cls, err := spc.Load(classes, os.Stdin)
	if err != nil {
		fmt.Fprintln(errw, "error:", err)
		return doctorBadUsage
	}
	return doctorCheck(ctx, &o, cls, *timeout, out, errw)
}

// acceptServeFlags adds to flags every flag of serve it lacks, bound to
// values nothing reads: doctor accepts serve's command line unchanged, and
// its -h lists only its own flags.
func acceptServeFlags(flags *flag.FlagSet) {
	var so serveOptions
	serve := flag.NewFlagSet("serve", flag.ContinueOnError)
	so.register(serve)
	so.registerOps(serve)
	so.view.registerAs(serve, "fuse-")
	serve.VisitAll(func(f *flag.Flag) {
		if flags.Lookup(f.Name) == nil {
			flags.Var(f.Value, f.Name, f.Usage)
		}
	})
}

// doctorCheck builds the provider's stack from o and checks every class;
// it returns doctor's exit code. dev --doctor calls it too.
func doctorCheck(ctx context.Context, o *options, cls []*spc.Class, timeout time.Duration, out, errw io.Writer) int {
	log := o.logger(errw)
	st, err := o.build(ctx, log, fetch.NopObserver{})
	if err != nil {
		fmt.Fprintln(errw, "error:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return doctorBadUsage
		}
		return doctorFailed
	}
	c := &doctor.Checker{Identities: st.identities, Fetcher: st.fetcher, Region: st.region, Timeout: timeout, Out: out}
	if !c.Check(ctx, cls).OK() {
		return doctorFailed
	}
	return doctorOK
}
