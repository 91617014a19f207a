package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// --emit-events without a way to the API server (outside a pod, no
// --kubeconfig) or with a kubeconfig that cannot be read fails the start,
// saying what to pass, and leaves no socket behind.
func TestServeEmitEventsNeedsAnAPIServer(t *testing.T) {
	t.Setenv("ACCESS_KEY_ID", emulator.DemoAccessKeyID)
	t.Setenv("SECRET_ACCESS_KEY", emulator.DemoAccessKeySecret)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	missing := filepath.Join(t.TempDir(), "no-such-kubeconfig")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--kubeconfig"},
		{[]string{"--kubeconfig", missing}, missing},
	} {
		dir, err := os.MkdirTemp("", "serve-test-")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		args := append([]string{"--emit-events", "--provider-volume", dir, "--region", emulator.DemoRegion,
			"--kms-endpoint", "127.0.0.1:1", "--oos-endpoint", "127.0.0.1:1", "--metrics-addr", "", "--health-addr", ""}, c.args...)
		err = runServe(context.Background(), args)
		if err == nil || !strings.Contains(err.Error(), "--emit-events") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %q: %v, want an --emit-events error naming %s", c.args, err, c.want)
		}
		if _, err := os.Stat(csi.SocketPath(dir)); err == nil {
			t.Errorf("serve %q left its socket behind", c.args)
		}
	}
}
