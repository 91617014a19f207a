package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// SocketPath is DIR/alibabacloud.sock.
func SocketPath(dir string) string { return filepath.Join(dir, ProviderName+".sock") }

// Listen creates the provider socket with mode 0600. A stale socket left by
// a crash is removed; a socket another live provider answers on is not.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("provider volume %s: %w", filepath.Dir(path), err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it", path)
		}
		c, derr := net.DialTimeout("unix", path, 500*time.Millisecond)
		if derr == nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s: another provider is already serving on this socket", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// GRPCServer wraps the provider service, the gRPC health service and the
// panic guard on one socket.
type GRPCServer struct {
	GRPC   *grpc.Server
	Health *health.Server
	path   string
	lis    net.Listener
	log    *slog.Logger
}

// NewGRPCServer listens on path and registers srv.
func NewGRPCServer(path string, srv *Server) (*GRPCServer, error) {
	lis, err := Listen(path)
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(RecoverInterceptor(srv.log(), srv.obs())),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.MaxSendMsgSize(64<<20),
	)
	v1alpha1.RegisterCSIDriverProviderServer(g, srv)
	h := health.NewServer()
	healthpb.RegisterHealthServer(g, h)
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus("v1alpha1.CSIDriverProvider", healthpb.HealthCheckResponse_SERVING)
	return &GRPCServer{GRPC: g, Health: h, path: path, lis: lis, log: srv.log()}, nil
}

// Path is the socket path.
func (g *GRPCServer) Path() string { return g.path }

// Serve serves until ctx ends, then stops gracefully: in-flight Mounts
// finish (up to grace), new ones are refused, and the socket is removed.
func (g *GRPCServer) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- g.GRPC.Serve(g.lis) }()
	select {
	case err := <-errc:
		_ = os.Remove(g.path)
		return err
	case <-ctx.Done():
	}
	g.Health.Shutdown()
	done := make(chan struct{})
	go func() { g.GRPC.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		g.log.Warn("in-flight mounts did not finish within the grace period; stopping", "grace", grace)
		g.GRPC.Stop()
	}
	<-errc //nolint:errcheck // Serve has returned; its error after a stop is expected
	_ = os.Remove(g.path)
	return nil
}
