package csi

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// sockDir is a short directory: unix socket paths are limited to 108 bytes.
func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "csi-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// versionOver dials path afresh, as the driver does, and calls Version.
func versionOver(t *testing.T, path string) error {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = v1alpha1.NewCSIDriverProviderClient(conn).Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"}, grpc.WaitForReady(false))
	return err
}

// A listener's Close removes the socket file only while the file is still
// the one it created: a successor's socket on the same path stays.
func TestListenerCloseRemovesOnlyItsOwnSocket(t *testing.T) {
	path := SocketPath(sockDir(t))
	a, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	// Someone replaced A's socket (a successor that found it unanswering).
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	bg := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(bg, &Server{})
	go func() { _ = bg.Serve(b) }()
	defer bg.Stop()

	_ = a.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing A removed B's socket: %v", err)
	}
	if err := versionOver(t, path); err != nil {
		t.Fatalf("B's socket does not answer after A closed: %v", err)
	}
	bg.Stop()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("closing B left its socket behind: %v", err)
	}
}

// blockingIdentity holds a Mount in flight until release is closed.
type blockingIdentity struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingIdentity) Resolve(ctx context.Context, _ auth.MountInfo) (*auth.Identity, error) {
	close(b.entered)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, errors.New("released")
}

// The overlap of a rolling update: A is draining an in-flight Mount after
// SIGTERM when B starts on the same provider volume. A finishing must not
// take B's socket with it; B stopping removes its own.
func TestStoppingServerLeavesTheNextServersSocket(t *testing.T) {
	path := SocketPath(sockDir(t))
	block := &blockingIdentity{entered: make(chan struct{}), release: make(chan struct{})}
	a, err := NewGRPCServer(path, &Server{Identity: block})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopA := context.WithCancel(context.Background())
	aDone := make(chan error, 1)
	go func() { aDone <- a.Serve(actx, time.Minute) }()

	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	inflight := make(chan error, 1)
	go func() {
		_, err := v1alpha1.NewCSIDriverProviderClient(conn).Mount(context.Background(), &v1alpha1.MountRequest{
			Attributes: `{"objects":"- objectName: db\n"}`, Secrets: "null", Permission: "420",
		})
		inflight <- err
	}()
	select {
	case <-block.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the Mount never reached A")
	}

	stopA() // A stops listening and drains the Mount.
	var b *GRPCServer
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err = NewGRPCServer(path, &Server{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B could not start while A drained: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	bDone := make(chan error, 1)
	go func() { bDone <- b.Serve(bctx, time.Minute) }()
	if err := versionOver(t, path); err != nil {
		t.Fatalf("B does not answer: %v", err)
	}
	select {
	case err := <-aDone:
		t.Fatalf("A finished (%v) before its in-flight Mount did", err)
	default:
	}

	close(block.release)
	if err := <-inflight; err != nil {
		t.Logf("the drained Mount: %v", err)
	}
	if err := <-aDone; err != nil {
		t.Fatalf("A: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("A's stop removed B's socket: %v", err)
	}
	if err := versionOver(t, path); err != nil {
		t.Fatalf("B's socket does not answer after A stopped: %v", err)
	}

	stopB()
	if err := <-bDone; err != nil {
		t.Fatalf("B: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("B's stop left its socket behind: %v", err)
	}
}

// The socket is 0600 from the moment the driver can see it, whatever the
// umask, and Listen leaves nothing else in the provider volume.
func TestListenModeUnderAnyUmask(t *testing.T) {
	for _, mask := range []int{0, 0o022, 0o077} {
		old := syscall.Umask(mask)
		dir := sockDir(t)
		l, err := Listen(SocketPath(dir))
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(SocketPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("umask %03o: socket mode %v, want a 0600 socket", mask, fi.Mode())
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("umask %03o: the provider volume holds %v, want only %s", mask, names, filepath.Base(SocketPath(dir)))
		}
		_ = l.Close()
	}
}

// Listen never changes the process umask, not even for a moment: the umask
// is process-wide, and another goroutine (the FUSE view, a log file)
// creating a file meanwhile would get the socket's mode instead of its own.
func TestListenLeavesTheProcessUmaskAlone(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status")
	}
	umaskNow := func() string {
		f, err := os.Open("/proc/self/status")
		if err != nil {
			return ""
		}
		defer func() { _ = f.Close() }()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "Umask:"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	want := umaskNow()
	if want == "" {
		t.Skip("/proc/self/status has no Umask line")
	}
	var seen atomic.Value
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if u := umaskNow(); u != "" && u != want {
				seen.Store(u)
			}
		}
	}()
	for i := 0; i < 300 && seen.Load() == nil; i++ {
		dir := sockDir(t)
		l, err := Listen(SocketPath(dir))
		if err != nil {
			close(stop)
			t.Fatal(err)
		}
		_ = l.Close()
	}
	close(stop)
	<-watched
	if u := seen.Load(); u != nil {
		t.Fatalf("the process umask was %v during Listen, want %s throughout", u, want)
	}
}
