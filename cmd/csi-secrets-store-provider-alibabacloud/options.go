package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// options are the flags shared by serve, mount, dev and doctor: where the
// services are, how to cache, and how to log.
type options struct {
	region               string
	kmsEndpoint          string
	oosEndpoint          string
	stsEndpoint          string
	cacheTTL             time.Duration
	maxStale             time.Duration
	maxConcurrentFetches int
	kmsQPS, oosQPS       float64
	kmsBurst, oosBurst   int
	connectTimeout       time.Duration
	readTimeout          time.Duration
	allowedKMSEndpoints  string
	kmsCAFile            string
	logFormat            string
	verbosity            int
	getenv               func(string) string
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.region, "region", "", "default region of KMS and OOS (a class's region parameter wins); empty: the node's region from ECS metadata")
	fs.StringVar(&o.kmsEndpoint, "kms-endpoint", "", "KMS endpoint: host[:port] (HTTPS) or http://host:port; empty: kms-vpc.<region>.aliyuncs.com")
	fs.StringVar(&o.oosEndpoint, "oos-endpoint", "", "OOS endpoint: host[:port] (HTTPS) or http://host:port; empty: oos-vpc.<region>.aliyuncs.com")
	fs.StringVar(&o.stsEndpoint, "sts-endpoint", "", "STS endpoint host[:port] (HTTPS); empty: sts-vpc.<region>.aliyuncs.com")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", 2*time.Minute, "how long a fetched value is served before it is fetched again (set it to the driver's rotationPollInterval)")
	fs.DurationVar(&o.maxStale, "max-stale", time.Hour, "how long past --cache-ttl the last good value is still served while upstream fails")
	fs.IntVar(&o.maxConcurrentFetches, "max-concurrent-fetches", 16, "node-wide bound on upstream calls in flight")
	fs.Float64Var(&o.kmsQPS, "kms-qps", 20, "node-wide client-side rate limit for KMS calls per second")
	fs.IntVar(&o.kmsBurst, "kms-burst", 40, "burst of the KMS rate limit")
	fs.Float64Var(&o.oosQPS, "oos-qps", 20, "node-wide client-side rate limit for OOS calls per second")
	fs.IntVar(&o.oosBurst, "oos-burst", 40, "burst of the OOS rate limit")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 5*time.Second, "SDK connect timeout")
	fs.DurationVar(&o.readTimeout, "read-timeout", 10*time.Second, "SDK read timeout")
	fs.StringVar(&o.allowedKMSEndpoints, "allowed-kms-endpoints", "", "comma-separated host patterns (path.Match globs) a class's kmsEndpoint may name, besides Alibaba Cloud's own")
	fs.StringVar(&o.kmsCAFile, "kms-ca-file", "", "PEM CA bundle of KMS instance gateways (kst-*.cryptoservice.kms.aliyuncs.com)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&o.verbosity, "v", 0, "log verbosity: 0-3 info, 4 and up debug")
}

func (o *options) validate() error {
	for _, ep := range []struct{ flag, v string }{{"kms-endpoint", o.kmsEndpoint}, {"oos-endpoint", o.oosEndpoint}} {
		if ep.v != "" {
			if _, err := fetch.ParseEndpoint(ep.v); err != nil {
				return usageError{fmt.Errorf("--%s: %w", ep.flag, err)}
			}
		}
	}
	if o.region != "" && !fetch.ValidRegion(o.region) {
		return usageError{fmt.Errorf("--region %q is not a region id such as cn-hangzhou", o.region)}
	}
	if o.cacheTTL < time.Second {
		return usageError{fmt.Errorf("--cache-ttl %s is under 1s", o.cacheTTL)}
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
// one identity resolver.
type stack struct {
	cache    *fetch.Cache
	source   *fetch.SDKSource
	fetcher  *fetch.Fetcher
	resolver *auth.Resolver
	region   string
}

func (o *options) build(_ context.Context, log *slog.Logger, obs fetch.Observer) (*stack, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	resolver := auth.NewResolver(auth.Config{Getenv: o.getenv, STSEndpoint: o.stsEndpoint, Region: o.region})
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
		Region: o.region, KMSEndpoint: o.kmsEndpoint, OOSEndpoint: o.oosEndpoint,
		AllowedKMSEndpoints: allowed, MaxConcurrentFetches: o.maxConcurrentFetches,
		KMSQPS: o.kmsQPS, OOSQPS: o.oosQPS, KMSBurst: o.kmsBurst, OOSBurst: o.oosBurst,
		Observer: obs,
	})
	return &stack{cache: cache, source: src, fetcher: f, resolver: resolver, region: o.region}, nil
}
