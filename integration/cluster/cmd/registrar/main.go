// Command registrar stands in for kubernetes-csi/node-driver-registrar in the
// e2e cluster's image localhost/node-driver-registrar:e2e: the Go module
// proxy this project can reach serves no version of it, and no image registry
// is reachable. It does what the upstream sidecar does for the Secrets Store
// CSI Driver's DaemonSet:
//
//   - waits for the driver's socket (--csi-address) and asks it, with CSI
//     GetPluginInfo, for the driver's name;
//   - serves kubelet's plugin registration API
//     (k8s.io/kubelet/pkg/apis/pluginregistration/v1) on
//     <--plugin-registration-path>/<driver>-reg.sock, removing a stale socket
//     first; GetInfo answers type CSIPlugin, the driver's name, the socket
//     path as kubelet sees it (--kubelet-registration-path) and version 1.0.0;
//   - exits non-zero when kubelet reports that registration failed, and
//     removes its socket on SIGTERM/SIGINT (kubelet then deregisters the
//     driver);
//   - with --http-endpoint (or --health-port), serves /healthz: 200 when its
//     own registration socket answers GetInfo with the driver's name.
//
// Flags are upstream's names. The secrets-store-csi-driver chart v1.6.0
// passes --v, --csi-address and --kubelet-registration-path. klog's flags
// (-v, --logtostderr, ...) are registered, so any of them is accepted.
// --connection-timeout, --mode and --enable-pprof are accepted and ignored,
// deliberately: upstream deprecated the first two, and profiling is not
// needed here.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	klog.InitFlags(nil)
	csiAddress := flag.String("csi-address", "/run/csi/socket", "path of the CSI driver's socket in this container")
	kubeletPath := flag.String("kubelet-registration-path", "", "path of the CSI driver's socket on the node, as kubelet opens it (required)")
	regDir := flag.String("plugin-registration-path", "/registration", "directory (kubelet's plugins_registry) for the registration socket")
	httpEndpoint := flag.String("http-endpoint", "", "host:port for /healthz; empty: none")
	healthPort := flag.Int("health-port", 0, "deprecated upstream: same as --http-endpoint=:PORT; 0: none")
	timeout := flag.Duration("timeout", time.Second, "timeout of each GetPluginInfo call")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Duration("connection-timeout", 0, "ignored (deprecated upstream)")
	flag.String("mode", "", "ignored (deprecated upstream)")
	flag.Bool("enable-pprof", false, "ignored")
	flag.Parse()
	if *showVersion {
		fmt.Println("registrar (node-driver-registrar stand-in for the e2e cluster)")
		return
	}
	if !filepath.IsAbs(*kubeletPath) {
		klog.Fatalf("--kubelet-registration-path must be an absolute path, got %q", *kubeletPath)
	}
	if *httpEndpoint == "" && *healthPort > 0 {
		*httpEndpoint = fmt.Sprintf(":%d", *healthPort)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	name, err := driverName(ctx, *csiAddress, *timeout)
	if err != nil {
		klog.Fatalf("no driver name from %s: %v", *csiAddress, err)
	}
	klog.InfoS("CSI driver found", "name", name, "csiAddress", *csiAddress)

	sock := filepath.Join(*regDir, name+"-reg.sock")
	srv, err := serve(sock, &registrar{name: name, endpoint: *kubeletPath, exit: os.Exit})
	if err != nil {
		klog.Fatalf("registration socket: %v", err)
	}
	klog.InfoS("serving kubelet plugin registration", "socket", sock, "endpoint", *kubeletPath)
	if *httpEndpoint != "" {
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
				if err := checkSocket(r.Context(), sock, name); err != nil {
					klog.ErrorS(err, "healthz")
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				fmt.Fprintln(w, "ok")
			})
			klog.ErrorS(http.ListenAndServe(*httpEndpoint, mux), "healthz server stopped")
			os.Exit(1)
		}()
	}
	<-ctx.Done()
	klog.InfoS("stopping: removing the registration socket", "socket", sock)
	srv.Stop()
	_ = os.Remove(sock)
}

// dial returns a client connection to a unix socket path, with or without a
// unix:// prefix. The connection is made lazily, on the first call, and
// retried every second at most (gRPC's default backoff grows to 2 min), so a
// driver that starts late is found soon after.
func dial(path string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix:"+strings.TrimPrefix(path, "unix://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}))
}

// driverName calls CSI GetPluginInfo until it answers (the socket may not
// exist yet), each call bounded by timeout, as upstream does.
func driverName(ctx context.Context, csiAddress string, timeout time.Duration) (string, error) {
	conn, err := dial(csiAddress)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	for {
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		info, err := csi.NewIdentityClient(conn).GetPluginInfo(callCtx, &csi.GetPluginInfoRequest{}, grpc.WaitForReady(true))
		cancel()
		switch {
		case err == nil && info.GetName() != "":
			return info.GetName(), nil
		case err == nil:
			return "", fmt.Errorf("GetPluginInfo returned an empty name")
		case ctx.Err() != nil:
			return "", ctx.Err()
		}
		klog.InfoS("waiting for the CSI driver", "csiAddress", csiAddress, "err", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// registrar implements kubelet's plugin registration service.
type registrar struct {
	name, endpoint string
	exit           func(int)
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	klog.V(4).InfoS("GetInfo from kubelet")
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	klog.InfoS("registration status from kubelet", "registered", s.PluginRegistered, "error", s.Error)
	if !s.PluginRegistered {
		klog.ErrorS(nil, "kubelet did not register the driver: restarting", "error", s.Error)
		r.exit(1)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// serve removes a stale socket at path, listens there and serves r.
func serve(path string, r *registrar) (*grpc.Server, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, r)
	go func() {
		if err := srv.Serve(lis); err != nil {
			klog.ErrorS(err, "registration server stopped")
		}
	}()
	return srv, nil
}

// checkSocket calls GetInfo on the registration socket, as kubelet would,
// and wants the driver's name back.
func checkSocket(ctx context.Context, path, name string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	conn, err := dial(path)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := registerapi.NewRegistrationClient(conn).GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		return err
	}
	if info.Name != name {
		return fmt.Errorf("registration socket answers name %q, want %q", info.Name, name)
	}
	return nil
}
