package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// TestServeShutsDownWithRefreshesInFlight runs serve in this process
// against the emulator, lets the cache start its refresh-ahead of every
// object, makes upstream hang so those refreshes are in flight, and stops
// serve: it returns, and no goroutine of its own is left (a goroutine-leak
// check with no exceptions).
func TestServeShutsDownWithRefreshesInFlight(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	e, err := emulator.New(emulator.DemoSeed(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	t.Setenv("ACCESS_KEY_ID", emulator.DemoAccessKeyID)
	t.Setenv("SECRET_ACCESS_KEY", emulator.DemoAccessKeySecret)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	dir, err := os.MkdirTemp("", "serve-test-") // short: a unix socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() {
		served <- runServe(ctx, []string{
			"--provider-volume", dir, "--region", emulator.DemoRegion,
			"--kms-endpoint", e.URL(), "--oos-endpoint", e.URL(),
			"--cache-ttl", "1s", "--metrics-addr", "", "--health-addr", "",
			"--shutdown-grace", "5s",
		})
	}()
	sock := csi.SocketPath(dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-served:
			t.Fatalf("serve ended before its socket existed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no provider socket after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	params := map[string]string{"region": emulator.DemoRegion, "objects": "- objectName: demo-db\n- objectName: test\n  objectType: oos\n"}
	if _, err := callMount(context.Background(), sock, params, filepath.Join(dir, "target")); err != nil {
		t.Fatalf("Mount: %v", err)
	}
	// From now on upstream never answers: the refresh-ahead (at 0.9 of the
	// 1s TTL, the entries having just been read) hangs.
	e.SetFault(emulator.Fault{Kind: emulator.FaultHang})
	for e.CallsWithOutcome("kms", "fault:hang") == 0 || e.CallsWithOutcome("oos", "fault:hang") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no refresh reached upstream")
		}
		time.Sleep(20 * time.Millisecond)
	}

	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}
