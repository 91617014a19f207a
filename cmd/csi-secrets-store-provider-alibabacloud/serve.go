package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

const defaultProviderVolume = "/var/run/secrets-store-csi-providers"

type serveOptions struct {
	options
	providerVolume string
	grace          time.Duration
}

func (s *serveOptions) register(fs *flag.FlagSet) {
	s.options.register(fs)
	fs.StringVar(&s.providerVolume, "provider-volume", defaultProviderVolume, "directory of the provider socket (alibabacloud.sock); the driver's --provider-volume")
	fs.DurationVar(&s.grace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long in-flight Mounts may take to finish")
}

func runServe(ctx context.Context, args []string) error {
	var so serveOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	so.register(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{errorf("serve takes no arguments, got %q", fs.Args())}
	}
	log := so.logger(os.Stderr)
	st, err := so.build(ctx, log, fetch.NopObserver{})
	if err != nil {
		return err
	}
	srv := &csi.Server{Fetcher: st.fetcher, Identity: st.resolver, Log: log, RuntimeVersion: version}
	g, err := csi.NewGRPCServer(csi.SocketPath(so.providerVolume), srv)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.cache.Run(cctx)
	log.Info("serving", "socket", g.Path(), "version", version, "cacheTTL", so.cacheTTL, "maxStale", so.maxStale)
	err = g.Serve(ctx, so.grace)
	log.Info("stopped")
	return err
}
