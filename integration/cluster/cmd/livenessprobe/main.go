// Command livenessprobe stands in for kubernetes-csi/livenessprobe in the e2e
// cluster's image localhost/livenessprobe:e2e: the Go module proxy this
// project can reach does not serve it, and no image registry is reachable.
// Like upstream, it serves HTTP /healthz, which calls CSI Identity Probe on
// the driver's socket and answers 200 only when the driver says it is ready
// (an unset ready field means ready, per the CSI spec); any error or
// "not ready" is a 500, so kubelet restarts the driver's container.
//
// Flags are upstream's names. The secrets-store-csi-driver chart v1.6.0
// passes --csi-address=/csi/csi.sock, --probe-timeout=3s,
// --http-endpoint=0.0.0.0:9808 and -v=2. --health-port (upstream's older
// form) is used when --http-endpoint is empty; klog's flags are registered;
// --metrics-address and --metrics-path are accepted and ignored (no metrics
// here).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
)

func main() {
	klog.InitFlags(nil)
	csiAddress := flag.String("csi-address", "/run/csi/socket", "path of the CSI driver's socket")
	probeTimeout := flag.Duration("probe-timeout", time.Second, "timeout of each Probe call")
	httpEndpoint := flag.String("http-endpoint", "", "host:port for /healthz; overrides --health-port")
	healthPort := flag.Int("health-port", 9808, "port for /healthz when --http-endpoint is empty")
	flag.String("metrics-address", "", "ignored")
	flag.String("metrics-path", "/metrics", "ignored")
	flag.Parse()
	if *httpEndpoint == "" {
		*httpEndpoint = fmt.Sprintf(":%d", *healthPort)
	}
	id, err := identity(*csiAddress)
	if err != nil {
		klog.Fatalf("%s: %v", *csiAddress, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", healthz(id, *probeTimeout))
	klog.InfoS("serving /healthz", "endpoint", *httpEndpoint, "csiAddress", *csiAddress)
	klog.Fatal(http.ListenAndServe(*httpEndpoint, mux))
}

// identity returns a CSI Identity client of the socket at path (with or
// without unix://). It connects lazily and does not wait for the socket: a
// missing driver fails the probe at once. Reconnects back off 1 s at most
// (gRPC's default grows to 2 min), so a driver that comes up after this
// process is seen by the next probe.
func identity(path string) (csi.IdentityClient, error) {
	conn, err := grpc.NewClient("unix:"+strings.TrimPrefix(path, "unix://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return nil, err
	}
	return csi.NewIdentityClient(conn), nil
}

// healthz answers 200 when id's Probe says ready within timeout, else 500.
func healthz(id csi.IdentityClient, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		resp, err := id.Probe(ctx, &csi.ProbeRequest{})
		switch {
		case err != nil:
			klog.ErrorS(err, "health check failed")
			http.Error(w, err.Error(), http.StatusInternalServerError)
		case resp.GetReady() != nil && !resp.GetReady().GetValue():
			klog.ErrorS(nil, "driver responded but is not ready")
			http.Error(w, "driver responded but is not ready", http.StatusInternalServerError)
		default:
			klog.V(5).InfoS("health check succeeded")
			fmt.Fprintln(w, "ok")
		}
	})
}
