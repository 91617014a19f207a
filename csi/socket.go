package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// SocketPath is DIR/alibabacloud.sock.
func SocketPath(dir string) string { return filepath.Join(dir, spc.ProviderName+".sock") }

// Listen creates the provider socket with mode 0600. A stale socket left by
// a crash is removed; a socket another live provider answers on is not.
//
// The socket is bound inside a private 0700 directory next to path, set to
// 0600 there, and only then linked to path: nobody else can reach it before
// its mode is final, and the process umask (process-wide, so flipping it
// races every other goroutine creating files) is never touched. chmod after
// binding in place would leave a window in which the socket is at path with
// the umask's mode, and a connection made then outlives the chmod. Linking
// (not renaming) fails instead of replacing a socket another provider
// created meanwhile.
//
// The listener's Close removes path only while it is still this socket
// (same device and inode), so a provider stopping never deletes the socket
// of the one that replaced it.
func Listen(path string) (*Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("provider volume %s: %w", dir, err)
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
		if err := removeIfSame(path, fi); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	}
	private, err := os.MkdirTemp(dir, ".sock-")
	if err != nil {
		return nil, fmt.Errorf("provider volume %s: %w", dir, err)
	}
	defer func() { _ = os.RemoveAll(private) }()
	tmp := filepath.Join(private, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ul.SetUnlinkOnClose(false) // Close removes path, and only if it is ours
	fail := func(err error) (*Listener, error) {
		_ = ul.Close()
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fail(fmt.Errorf("%s: another provider created this socket while this one was starting", path))
		}
		// A filesystem without hard links: rename, which still never
		// shows the socket at path with another mode.
		if err := os.Rename(tmp, path); err != nil {
			return fail(err)
		}
	}
	return &Listener{UnixListener: ul, path: path, created: fi}, nil
}

// Listener is the provider socket's listener. Its Close removes the socket
// file only while the file at the path is still the one it created.
type Listener struct {
	*net.UnixListener
	path    string
	created os.FileInfo
	once    sync.Once
}

// Addr is the socket path (the listener was bound under a temporary name).
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close removes the socket file if it is still this listener's, then closes
// the listener. The file goes first, while the socket still answers: a
// provider starting meanwhile sees a live socket and leaves it, so the file
// cannot be replaced between the check and the removal.
func (l *Listener) Close() error {
	l.removeFile()
	return l.UnixListener.Close()
}

func (l *Listener) removeFile() {
	l.once.Do(func() { _ = removeIfSame(l.path, l.created) })
}

// removeIfSame removes path if it is the file fi describes (same device and
// inode); a missing file is not an error.
func removeIfSame(path string, fi os.FileInfo) error {
	now, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !os.SameFile(fi, now) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// GRPCServer wraps the provider service, the gRPC health service and the
// panic guard on one socket.
type GRPCServer struct {
	GRPC   *grpc.Server
	Health *health.Server
	path   string
	lis    *Listener
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
		// Reused handler goroutines keep the stack a Mount grew, instead of
		// a fresh goroutine growing (copying) it again on every call.
		grpc.NumStreamWorkers(uint32(max(runtime.NumCPU(), 2))), //nolint:gosec // a CPU count
		grpc.MaxSendMsgSize(max(64<<20, srv.maxResponseBytes())),
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

// Close stops a server that is not serving (its start failed after the
// socket was created) and removes its socket, unless another provider has
// replaced it.
func (g *GRPCServer) Close() error {
	g.GRPC.Stop()
	return g.lis.Close()
}

// Serve serves until ctx ends, then stops gracefully: in-flight Mounts
// finish (up to grace), new ones are refused, and the socket is removed
// unless another provider has replaced it.
func (g *GRPCServer) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- g.GRPC.Serve(g.lis) }()
	select {
	case err := <-errc:
		_ = g.lis.Close()
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
	// gRPC closed the listener, which removed the socket if it was still
	// ours; a successor's socket at the same path stays.
	_ = g.lis.Close()
	return nil
}
