package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/health"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// mountOptions are the flags of `mount`: the shared endpoint, credential and
// cache flags, the operations endpoints, plus the view's own.
type mountOptions struct {
	options
	view        viewFlags
	metricsAddr string
	healthAddr  string
}

func (m *mountOptions) registerOps(flags *flag.FlagSet) {
	flags.StringVar(&m.metricsAddr, "metrics-addr", "", "listen address of the Prometheus endpoint /metrics (cache, upstream and FUSE operation metrics); empty disables it")
	flags.StringVar(&m.healthAddr, "health-addr", "", "listen address of /healthz (the view is mounted and served) and /readyz (also: the provider's own credentials resolve); empty disables them")
}

// viewFlags are the FUSE view's own flags (mount; dev reuses them).
type viewFlags struct {
	mountpoint    string
	classes       stringList
	uid, gid      int
	allowOther    bool
	noOpen        bool
	lookupTimeout time.Duration
	kernelTimeout time.Duration
	grace         time.Duration
	takeover      bool
	prefix        string // of the flag names: "" (mount) or "fuse-" (serve)
}

func (v *viewFlags) register(flags *flag.FlagSet) { v.registerAs(flags, "") }

// registerAs registers the view's flags with a name prefix: "" for mount,
// "fuse-" for serve, which can mount the view in its own process so the
// view and the CSI side share one cache.
func (v *viewFlags) registerAs(flags *flag.FlagSet, p string) {
	v.prefix = p
	flags.StringVar(&v.mountpoint, p+"mountpoint", "", "directory to mount the FUSE view on (created when missing); a dead view left there by a crash is detached first, a live one is refused (see --"+p+"takeover)")
	flags.Var(&v.classes, p+"class", "SecretProviderClass manifest file (apiVersion: secrets-store.csi.x-k8s.io/v1), - for stdin; each class in it is shown as <mountpoint>/<metadata.name>/, other documents are skipped; repeat for more files")
	flags.IntVar(&v.uid, p+"uid", os.Getuid(), "owner uid of every file and directory of the view; the owner reads (files 0400, directories 0500)")
	flags.IntVar(&v.gid, p+"gid", os.Getgid(), "group of every file and directory of the view; a gid other than 0 reads too (files 0440, directories 0550), 0 gets nothing. Users other than the mounting one need --"+p+"allow-other")
	flags.BoolVar(&v.allowOther, p+"allow-other", false, "let users other than the mounting one in (the kernel still checks the modes: only the owner, and the group when --"+p+"gid is not 0, read)")
	flags.BoolVar(&v.noOpen, p+"no-open", false, "answer OPEN with ENOSYS so warm reads never reach the daemon (close to tmpfs speed); loses every per-open hook, see docs/fuse.md")
	flags.DurationVar(&v.lookupTimeout, p+"lookup-timeout", fs.DefaultLookupTimeout, "how long a file's first lookup waits for its value; past it the lookup fails with EIO and the fetch goes on")
	flags.DurationVar(&v.kernelTimeout, p+"kernel-cache-timeout", fs.DefaultAttrTimeout, "how long the kernel caches names, sizes and pages; changed values are invalidated explicitly")
	flags.DurationVar(&v.grace, p+"shutdown-grace", 5*time.Second, "on SIGTERM, how long files still open in the lazily detached view are still served; after it they keep only the bytes they already read (the kernel's page cache), other reads fail with ENOTCONN")
	flags.BoolVar(&v.takeover, p+"takeover", false, "detach a live FUSE view that another process serves on the mountpoint and mount this one instead (files open in the old view keep reading until closed); without it a live view is refused. When this process exits, nothing is left mounted there")
}

func (v *viewFlags) validate() error {
	if v.mountpoint == "" {
		return usageError{errors.New("--mountpoint is required")}
	}
	if len(v.classes) == 0 {
		return usageError{errors.New("--class is required: pass a SecretProviderClass manifest file (- for stdin); repeat it for more files")}
	}
	if v.uid < 0 || v.gid < 0 {
		return usageError{errors.New("--uid and --gid must be 0 or more")}
	}
	if v.lookupTimeout <= 0 || v.kernelTimeout <= 0 {
		return usageError{errors.New("--lookup-timeout and --kernel-cache-timeout must be positive")}
	}
	return nil
}

// loadViewClasses reads the view's class files with the one loader (spc)
// and checks them against the view's own rules, before anything starts.
func loadViewClasses(paths []string) ([]*spc.Class, error) {
	cs, err := spc.Load(paths, os.Stdin)
	if err != nil {
		return nil, err
	}
	return cs, fs.CheckClasses(cs)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*s = append(*s, v)
	return nil
}

func runMount(ctx context.Context, args []string) error {
	var mo mountOptions
	flags := flag.NewFlagSet("mount", flag.ContinueOnError)
	mo.register(flags)
	mo.view.register(flags)
	mo.registerOps(flags)
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: csi-secrets-store-provider-alibabacloud mount --mountpoint DIR --class FILE [--class FILE ...] [flags]\n\n"+
			"Mounts a read-only FUSE view of the classes, served lazily from the node-wide cache with the provider's own identity.\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Errorf("mount takes no arguments, got %q (use --class FILE)", flags.Args())}
	}
	if err := mo.view.validate(); err != nil {
		return err
	}
	classes, err := loadViewClasses(mo.view.classes)
	if err != nil {
		return usageError{err}
	}
	if ok, why := fs.Usable(); !ok {
		return fmt.Errorf("mount: the FUSE view cannot be mounted here: %s", why)
	}
	log := mo.logger(os.Stderr)
	mx := metrics.New(metrics.Options{Version: version, Commit: commit})
	st, err := mo.build(ctx, log, mx)
	if err != nil {
		return err
	}
	defer st.cache.Subscribe(mx.CacheChanged)()
	// Bind the HTTP listeners before mounting: a port clash fails the start.
	ops, err := health.Listen(mo.metricsAddr, mo.healthAddr)
	if err != nil {
		return err
	}
	defer ops.Shutdown()
	stopCache := st.runCache() // after Serve has closed the view
	defer stopCache()

	srv, err := mountView(ctx, st, log, classes, &mo.view, mx)
	if err != nil {
		return err
	}
	cred := health.NewCredentials(st.identities, log)
	stopCheck := cred.Start()
	defer stopCheck()
	opsErr := ops.Serve(mx.Handler(), &health.View{View: srv, Cred: cred})
	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case err := <-opsErr:
			log.Error("stopping: an operations endpoint failed", "error", err.Error())
			stop(err)
		case <-sctx.Done():
		}
	}()
	if ops.MetricsAddr != "" || ops.HealthAddr != "" {
		log.Info("operations endpoints", "metricsAddr", ops.MetricsAddr, "healthAddr", ops.HealthAddr)
	}
	err = srv.Serve(sctx, mo.view.grace)
	log.Info("stopped")
	if err == nil {
		if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
			return cause
		}
	}
	return err
}

// mountView mounts the FUSE view of classes with the stack's cache and the
// provider's own identity. The caller runs the cache (st.runCache) and
// calls Close (or Serve) on the result; obs may be nil. dev calls it too.
func mountView(ctx context.Context, st *stack, log *slog.Logger, classes []*spc.Class, v *viewFlags, obs fs.Observer) (*fs.Server, error) {
	id, err := st.identities.Base(ctx)
	if err != nil {
		return nil, fmt.Errorf("mount: the view reads with the provider's own identity: %w", err)
	}
	srv, err := fs.Mount(fs.Config{
		Mountpoint:    v.mountpoint,
		Classes:       classes,
		Fetcher:       st.fetcher,
		Identity:      id,
		UID:           v.uid,
		GID:           v.gid,
		AllowOther:    v.allowOther,
		NoOpen:        v.noOpen,
		LookupTimeout: v.lookupTimeout,
		EntryTimeout:  v.kernelTimeout,
		AttrTimeout:   v.kernelTimeout,
		Logger:        log,
		Observer:      obs,
		Takeover:      v.takeover,
	})
	var live *fs.LiveViewError
	if errors.As(err, &live) {
		return nil, fmt.Errorf("%w. Stop that process first, or pass --%stakeover to detach its view and mount this one (its open files keep reading until closed; when this process exits, nothing is left mounted on %s)", err, v.prefix, live.Mountpoint)
	}
	return srv, err
}
