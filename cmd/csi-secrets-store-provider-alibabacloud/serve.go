package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/events"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/health"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

const defaultProviderVolume = "/var/run/secrets-store-csi-providers"

type serveOptions struct {
	options
	providerVolume string
	grace          time.Duration
	maxResponse    int

	// Operations endpoints (registerOps): serve and doctor only.
	metricsAddr         string
	healthAddr          string
	metricsObjectLabels bool
	metricsObjectsMax   int
	emitEvents          bool

	// The FUSE view in this process (--fuse-*): it shares serve's cache.
	view viewFlags
}

func (s *serveOptions) register(flags *flag.FlagSet) {
	s.options.register(flags)
	flags.StringVar(&s.providerVolume, "provider-volume", defaultProviderVolume, "directory of the provider socket (alibabacloud.sock); the driver's --provider-volume")
	flags.DurationVar(&s.grace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long in-flight Mounts may take to finish")
	flags.IntVar(&s.maxResponse, "max-response-bytes", csi.DefaultMaxResponseBytes, "largest Mount response served, in bytes; a larger one is refused naming its largest files. Set it to the driver's --max-call-recv-msg-size (chart: secrets-store-csi-driver.maxCallRecvMsgSize)")
}

// registerOps adds the metrics and health flags (not registered by dev,
// which embeds serveOptions but serves no HTTP endpoints).
func (s *serveOptions) registerOps(flags *flag.FlagSet) {
	flags.StringVar(&s.metricsAddr, "metrics-addr", ":8080", "listen address of the Prometheus endpoint /metrics; empty disables it")
	flags.StringVar(&s.healthAddr, "health-addr", ":8081", "listen address of /healthz (liveness) and /readyz (readiness); empty disables them")
	flags.BoolVar(&s.metricsObjectLabels, "metrics-object-labels", false, "add an object label to the cache and upstream request metrics: the object's name once it has been served successfully, \""+metrics.OtherObject+"\" for names never served (they do not exist or may not be read) and for objects past --metrics-object-labels-max. Names become visible to whoever scrapes")
	flags.IntVar(&s.metricsObjectsMax, "metrics-object-labels-max", metrics.DefaultObjectLabelsMax, "with --metrics-object-labels, how many objects keep their own series; past it the least recently used object's series are deleted")
	flags.BoolVar(&s.emitEvents, "emit-events", false, "when a refresh brings a new upstream version of a value pods have mounted, post one Kubernetes Event (reason "+events.Reason+") on each of those pods, naming the object and its old and new versions, never a value. Needs create on events (chart value events.enable)")
	flags.StringVar(&s.kubeconfig, "kubeconfig", "", "kubeconfig file of the API server that --emit-events and per-pod RRSA's ServiceAccount reads use (tests, development); empty: the pod's own service account")
}

func runServe(ctx context.Context, args []string) error {
	var so serveOptions
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	so.register(flags)
	so.registerOps(flags)
	so.view.registerAs(flags, "fuse-")
	if err := flags.Parse(args); err != nil {
		return usageError{err}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Errorf("serve takes no arguments, got %q", flags.Args())}
	}
	if so.metricsObjectsMax <= 0 {
		return usageError{fmt.Errorf("--metrics-object-labels-max %d: give at least 1", so.metricsObjectsMax)}
	}
	if so.maxResponse <= 0 {
		return usageError{fmt.Errorf("--max-response-bytes %d: give the driver's --max-call-recv-msg-size (%d by default)", so.maxResponse, csi.DefaultMaxResponseBytes)}
	}
	var classes []*spc.Class
	if so.view.mountpoint != "" || len(so.view.classes) > 0 {
		if so.denyProviderIdentity {
			return usageError{errors.New("--fuse-mountpoint: the FUSE view reads with the provider's own identity, which --deny-provider-identity forbids; use only one")}
		}
		if err := so.view.validate(); err != nil {
			return usageError{fmt.Errorf("the FUSE view: %w (as --fuse-mountpoint and --fuse-class)", err)}
		}
		var err error
		if classes, err = loadViewClasses(so.view.classes); err != nil {
			return usageError{err}
		}
		if ok, why := fs.Usable(); !ok {
			return fmt.Errorf("--fuse-mountpoint: the FUSE view cannot be mounted here: %s", why)
		}
	}
	log := so.logger(os.Stderr)
	mx := metrics.New(metrics.Options{ObjectLabels: so.metricsObjectLabels, ObjectLabelsMax: so.metricsObjectsMax,
		RotationEvents: so.emitEvents, Version: version, Commit: commit})
	st, err := so.build(ctx, log, mx)
	if err != nil {
		return err
	}
	defer st.cache.Subscribe(mx.CacheChanged)()
	var rec *events.Recorder
	if so.emitEvents {
		if rec, err = newRecorder(so.kubeconfig, so.cacheTTL, so.maxListed, log, mx); err != nil {
			return err
		}
	}
	// Bind the HTTP listeners before the socket exists: a port clash fails
	// the start (exit 1) instead of leaving a provider without probes.
	ops, err := health.Listen(so.metricsAddr, so.healthAddr)
	if err != nil {
		return err
	}
	defer ops.Shutdown()
	srv := &csi.Server{Fetcher: st.fetcher, Identity: st.identities, Policy: st.policy, Log: log, Observer: mx, RuntimeVersion: version, MaxResponseBytes: so.maxResponse}
	if rec != nil {
		srv.Mounts = rec
		// The poster ends with ctx; its stop, deferred before the cache's,
		// runs after the cache's goroutines (its callers) have ended.
		defer startRecorder(ctx, rec, st)()
	}
	g, err := csi.NewGRPCServer(csi.SocketPath(so.providerVolume), srv)
	if err != nil {
		return err
	}
	cred := health.NewCredentials(st.identities, log)
	if !so.denyProviderIdentity {
		stopCheck := cred.Start()
		defer stopCheck()
	}
	h := health.NewSocket(g.Path(), cred, !so.denyProviderIdentity)

	// Deferred before the view's Close, so it runs after it, and after
	// Serve has drained the Mounts in flight: the cache ends its goroutines
	// once nothing reads through it any more, and serve returns after them.
	stopCache := st.runCache()
	defer stopCache()
	if classes != nil {
		view, err := mountView(ctx, st, log, classes, &so.view, mx)
		if err != nil {
			// No socket may outlive a provider that did not start.
			_ = g.Close()
			return err
		}
		defer func() { _ = view.Close(so.view.grace) }()
		h.View = view
	}
	opsErr := ops.Serve(mx.Handler(), h)
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
	log.Info("serving", "socket", g.Path(), "version", version, "cacheTTL", so.cacheTTL, "maxStale", so.maxStale,
		"metricsAddr", ops.MetricsAddr, "healthAddr", ops.HealthAddr, "metricsObjectLabels", so.metricsObjectLabels, "emitEvents", so.emitEvents)
	err = g.Serve(sctx, so.grace)
	log.Info("stopped")
	if err == nil {
		if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
			return cause
		}
	}
	return err
}
