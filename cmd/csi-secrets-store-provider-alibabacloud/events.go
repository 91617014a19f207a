package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/events"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/kube"
)

// newRecorder builds serve's rotation events (--emit-events) against the
// API server of --kubeconfig, else the pod's own service account.
func newRecorder(kubeconfig string, cacheTTL time.Duration, maxListed int, log *slog.Logger, obs events.Observer) (*events.Recorder, error) {
	cfg, err := kube.Config(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--emit-events: no Kubernetes API server: %w; run in a pod with its service account token (chart value events.enable), or pass --kubeconfig", err)
	}
	sink, err := events.NewAPISink(cfg)
	if err != nil {
		return nil, fmt.Errorf("--emit-events: %w", err)
	}
	// A pod's record holds every value one Mount can serve: its objects
	// and as many listed ones as --max-listed-objects lets in.
	keys := max(128, fetch.MaxObjects+maxListed)
	return events.New(sink, events.Options{CacheTTL: cacheTTL, MaxKeysPerPod: keys, Log: log, Observer: obs}), nil
}

// startRecorder subscribes rec to the cache's changes and posts until ctx
// ends; stop unsubscribes, ends the poster and waits for it.
func startRecorder(ctx context.Context, rec *events.Recorder, st *stack) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Run(ctx)
	}()
	unsubscribe := st.cache.Subscribe(rec.OnChange)
	return func() {
		unsubscribe()
		cancel()
		<-done
	}
}
