package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/kube"
)

// options are the flags shared by serve, mount, dev and doctor: where the
// services are, how to cache, and how to log.
type options struct {
	region               string
	kmsEndpoint          fetch.EndpointFlag
	oosEndpoint          fetch.EndpointFlag
	stsEndpoint          string
	cacheTTL             time.Duration
	maxStale             time.Duration
	maxConcurrentFetches int
	maxListed            int
	kmsQPS, oosQPS       float64
	kmsBurst, oosBurst   int
	connectTimeout       time.Duration
	readTimeout          time.Duration
	allowedKMSEndpoints  string
	kmsCAFile            string
	logFormat            string
	verbosity            int
	getenv               func(string) string

	// Credentials, region and policy (auth).
	metadataProxy        string
	policyFile           string
	policyReload         time.Duration
	denyProviderIdentity bool
	// kubeconfig is serve's --kubeconfig: the API server of per-pod RRSA's
	// ServiceAccount reads (and of rotation events); empty: in-cluster.
	kubeconfig string
	// command is the flag set's name: doctor may run without a region (it
	// reports one missing per class); the commands that serve mounts may not.
	command string
}

// register adds every shared flag with serve's defaults: serve and mount
// use them all. dev and doctor register only the groups they use (see
// registerServices and below), so that each command's -h shows its own
// flags with its own defaults.
func (o *options) register(flags *flag.FlagSet) {
	o.command = flags.Name()
	o.registerServices(flags)
	o.registerIdentity(flags)
	o.registerLimits(flags)
	o.registerCache(flags, 2*time.Minute)
	o.registerPolicy(flags)
	o.registerLog(flags)
}

// setDefaults gives every shared option serve's default, so that a command
// registering only some groups still validates and builds.
func (o *options) setDefaults() {
	command := o.command
	o.register(flag.NewFlagSet(command, flag.ContinueOnError))
	o.command = command
}

// registerServices: where KMS, OOS and STS are, and which region.
func (o *options) registerServices(flags *flag.FlagSet) {
	flags.StringVar(&o.region, "region", "", "default region of KMS and OOS (a class's region parameter wins); empty: the node's region from ECS metadata")
	flags.Var(&o.kmsEndpoint, "kms-endpoint", "KMS endpoint: host[:port] (HTTPS) or http://host:port, for every region, or <region>=<endpoint> for one (repeat the flag); unset: kms-vpc.<region>.aliyuncs.com")
	flags.Var(&o.oosEndpoint, "oos-endpoint", "OOS endpoint: host[:port] (HTTPS) or http://host:port, for every region, or <region>=<endpoint> for one (repeat the flag); unset: oos-vpc.<region>.aliyuncs.com")
	flags.StringVar(&o.stsEndpoint, "sts-endpoint", "", "STS endpoint host[:port] (HTTPS); empty: sts-vpc.<region>.aliyuncs.com")
	flags.StringVar(&o.allowedKMSEndpoints, "allowed-kms-endpoints", "", "comma-separated host patterns (path.Match globs) a class's kmsEndpoint may name, besides Alibaba Cloud's own")
	flags.StringVar(&o.kmsCAFile, "kms-ca-file", "", "PEM CA bundle of KMS instance gateways (kst-*.cryptoservice.kms.aliyuncs.com)")
}

// registerIdentity: how the provider's own identity is found and whether
// it may be used.
func (o *options) registerIdentity(flags *flag.FlagSet) {
	flags.StringVar(&o.metadataProxy, "metadata-proxy", "", "HTTP proxy URL through which ECS instance metadata (100.100.100.200: worker RAM role, node region) is reached; for tests against an emulator. Empty: direct")
	flags.BoolVar(&o.denyProviderIdentity, "deny-provider-identity", false, "refuse Mounts that would use the provider's own identity: every volume must use per-pod RRSA (usePodServiceAccountToken) or a nodePublishSecretRef")
}

// registerLimits: node-wide bounds on upstream calls, and SDK timeouts.
func (o *options) registerLimits(flags *flag.FlagSet) {
	flags.IntVar(&o.maxConcurrentFetches, "max-concurrent-fetches", 16, "node-wide bound on upstream calls in flight")
	flags.IntVar(&o.maxListed, "max-listed-objects", fetch.DefaultMaxListed, "most objects a Mount's directory objects (objectPath, objectTags) may list, together; a larger listing fails the Mount naming the flag")
	flags.Float64Var(&o.kmsQPS, "kms-qps", 20, "node-wide client-side rate limit for KMS calls per second")
	flags.IntVar(&o.kmsBurst, "kms-burst", 40, "burst of the KMS rate limit")
	flags.Float64Var(&o.oosQPS, "oos-qps", 20, "node-wide client-side rate limit for OOS calls per second")
	flags.IntVar(&o.oosBurst, "oos-burst", 40, "burst of the OOS rate limit")
	flags.DurationVar(&o.connectTimeout, "connect-timeout", 5*time.Second, "SDK connect timeout")
	flags.DurationVar(&o.readTimeout, "read-timeout", 10*time.Second, "SDK read timeout")
}

// registerCache: the node-wide cache, with the command's default TTL.
func (o *options) registerCache(flags *flag.FlagSet, ttl time.Duration) {
	flags.DurationVar(&o.cacheTTL, "cache-ttl", ttl, "how long a fetched value is served before it is fetched again (set it to the driver's rotationPollInterval)")
	flags.DurationVar(&o.maxStale, "max-stale", time.Hour, "how long past --cache-ttl the last good value is still served while upstream fails")
}

// registerPolicy: the namespace policy asked before every Mount.
func (o *options) registerPolicy(flags *flag.FlagSet) {
	flags.StringVar(&o.policyFile, "policy", "", "namespace policy file (YAML): which namespaces and service accounts may mount which object names; anything else is refused before any upstream call. Reloaded on change. Empty: no policy")
	flags.DurationVar(&o.policyReload, "policy-reload-interval", 5*time.Second, "how often the --policy file is checked for changes")
}

func (o *options) registerLog(flags *flag.FlagSet) {
	flags.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	flags.IntVar(&o.verbosity, "v", 0, "log verbosity: 0-3 info, 4 and up debug")
}

// printFlags prints the flags of fs that keep selects, as PrintDefaults
// does (with their registered defaults): a command lists what it uses and
// may accept more without showing it.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(name string) bool) {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if keep(f.Name) {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	shown.SetOutput(w)
	shown.PrintDefaults()
}

func (o *options) validate() error {
	if o.region != "" && !aliyun.ValidRegion(o.region) {
		return usageError{fmt.Errorf("--region %q is not a region id such as cn-hangzhou", o.region)}
	}
	if o.cacheTTL < time.Second {
		return usageError{fmt.Errorf("--cache-ttl %s is under 1s", o.cacheTTL)}
	}
	if o.metadataProxy != "" {
		if u, err := url.Parse(o.metadataProxy); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageError{fmt.Errorf("--metadata-proxy %q is not an http:// URL", o.metadataProxy)}
		}
	}
	if o.policyReload < 100*time.Millisecond {
		return usageError{fmt.Errorf("--policy-reload-interval %s is under 100ms", o.policyReload)}
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return usageError{fmt.Errorf("--log-format %q: use text or json", o.logFormat)}
	}
	return nil
}

func (o *options) logger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if o.verbosity >= 4 {
		level = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// stack is what serve, mount, dev and doctor share: one cache, one fetcher,
// one identity resolver, and the namespace policy of --policy.
type stack struct {
	cache      *fetch.Cache
	source     *fetch.SDKSource
	fetcher    *fetch.Fetcher
	identities fetch.Identities
	// policy is --policy's, nil without one (csi.Server.Policy).
	policy csi.Policy
	region string
}

func (o *options) build(ctx context.Context, log *slog.Logger, obs fetch.Observer) (*stack, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	region, err := o.resolveRegion(ctx, log)
	if err != nil {
		return nil, err
	}
	var onRefresh func(auth.Mode, error)
	if co, ok := obs.(interface{ CredentialRefresh(string, error) }); ok {
		onRefresh = func(m auth.Mode, err error) { co.CredentialRefresh(string(m), err) }
	}
	ids := fetch.Identities{Resolver: auth.NewResolver(auth.Config{
		Getenv: o.getenv, STSEndpoint: o.stsEndpoint, Region: region, MetadataProxy: o.metadataProxy,
		ServiceAccounts: o.serviceAccounts(log), DenyProviderIdentity: o.denyProviderIdentity, Log: log,
		OnRefresh: onRefresh,
	})}
	var policy csi.Policy
	if o.policyFile != "" {
		p, err := auth.LoadPolicy(o.policyFile, log)
		if err != nil {
			return nil, err
		}
		policy = p
		go p.Watch(ctx, o.policyReload)
		log.Info("namespace policy loaded", "path", o.policyFile, "rules", len(p.Rules()), "reloadEvery", o.policyReload)
	}
	if base, err := ids.Base(ctx); err != nil {
		if o.denyProviderIdentity {
			// Expected: every volume brings its own identity.
			log.Info("the provider has no identity of its own (and --deny-provider-identity forbids using one): volumes mount with per-pod RRSA or a nodePublishSecretRef", "error", err.Error())
		} else {
			log.Warn("the provider has no identity of its own; only volumes with per-pod RRSA or a nodePublishSecretRef can mount", "error", err.Error())
		}
	} else {
		log.Info("provider identity", "mode", string(base.Mode), "principal", base.Principal, "reason", base.Reason, "denied", o.denyProviderIdentity)
	}
	src, err := fetch.NewSDKSource(fetch.SDKOptions{ConnectTimeout: o.connectTimeout, ReadTimeout: o.readTimeout, KMSCAFile: o.kmsCAFile})
	if err != nil {
		return nil, usageError{err}
	}
	cache := fetch.NewCache(fetch.CacheOptions{TTL: o.cacheTTL, MaxStale: o.maxStale, Logger: log, Observer: obs})
	var allowed []string
	for _, p := range strings.Split(o.allowedKMSEndpoints, ",") {
		if p = strings.TrimSpace(p); p != "" {
			allowed = append(allowed, p)
		}
	}
	f := fetch.NewFetcher(cache, src, fetch.FetcherOptions{
		Region: region, KMSEndpoint: o.kmsEndpoint.Default, OOSEndpoint: o.oosEndpoint.Default,
		KMSEndpoints: o.kmsEndpoint.PerRegion, OOSEndpoints: o.oosEndpoint.PerRegion, Roles: ids,
		AllowedKMSEndpoints: allowed, MaxConcurrentFetches: o.maxConcurrentFetches, MaxListed: o.maxListed,
		KMSQPS: o.kmsQPS, OOSQPS: o.oosQPS, KMSBurst: o.kmsBurst, OOSBurst: o.oosBurst,
		Observer: obs,
	})
	return &stack{cache: cache, source: src, fetcher: f, identities: ids, policy: policy, region: region}, nil
}

// runCache starts the cache's refresher. The returned stop ends every
// goroutine the cache started (refreshes and fetches in flight are
// canceled), waits for them, then closes the SDK clients' idle connections.
// Call it after whatever reads through the cache (the gRPC server, the FUSE
// view) has drained.
func (st *stack) runCache() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.cache.Run(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			st.source.Close()
		})
	}
}

func (o *options) env(k string) string {
	if o.getenv != nil {
		return o.getenv(k)
	}
	return os.Getenv(k)
}

// resolveRegion is --region, else the node's region from ECS metadata, read
// once at startup.
func (o *options) resolveRegion(ctx context.Context, log *slog.Logger) (string, error) {
	if o.region != "" {
		return o.region, nil
	}
	var err error
	if strings.EqualFold(o.env("ALIBABA_CLOUD_ECS_METADATA_DISABLED"), "true") {
		err = errors.New("no region: --region is not set and ECS metadata is disabled (ALIBABA_CLOUD_ECS_METADATA_DISABLED=true); set --region, e.g. cn-hangzhou (chart value regionId)")
	} else {
		var region string
		region, err = auth.Metadata{Proxy: o.metadataProxy, Timeout: 3 * time.Second}.Region(ctx)
		if err == nil {
			log.Info("region from ECS metadata", "region", region)
			return region, nil
		}
		err = fmt.Errorf("no region: --region is not set and the node's region could not be read from ECS metadata (%w); set --region, e.g. cn-hangzhou (chart value regionId)", err)
	}
	if o.command == "doctor" {
		log.Debug("no default region; classes without a region parameter cannot be checked", "error", err.Error())
		return "", nil
	}
	return "", err
}

// serviceAccounts reads pods' service-account annotations (per-pod RRSA
// without a roleArn parameter) when running in a cluster, or from the API
// server of --kubeconfig.
func (o *options) serviceAccounts(log *slog.Logger) auth.ServiceAccountRoles {
	if o.kubeconfig == "" && o.env("KUBERNETES_SERVICE_HOST") == "" {
		return nil
	}
	cfg, err := kube.Config(o.kubeconfig)
	if err == nil {
		var sa *auth.KubeServiceAccounts
		if sa, err = auth.NewKubeServiceAccounts(cfg); err == nil {
			return sa
		}
	}
	log.Warn("no Kubernetes client: per-pod RRSA needs the roleArn parameter", "error", err.Error())
	return nil
}
