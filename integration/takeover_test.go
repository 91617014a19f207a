package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// A second `serve --fuse-mountpoint` or `mount` on a directory where a live
// view is served refuses to start, naming the directory and the flag that
// takes over, and the live view goes on serving. Before, it detached the
// live view silently, and when it exited nothing was mounted there. With
// --fuse-takeover it takes over.
func TestSecondViewOnALiveMountpointRefused(t *testing.T) {
	if ok, why := fs.Usable(); !ok {
		t.Skip("FUSE is not usable here: " + why)
	}
	e := startEmulator(t, nil)
	dir := t.TempDir()
	class := filepath.Join(dir, "shared.yaml")
	if err := os.WriteFile(class, []byte(sharedClass), 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "view")
	// Runs after the providers' cleanup (SIGKILL leaves a dead view) and
	// before TempDir's.
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	file := filepath.Join(mnt, "shared", "db-username")
	first := startProvider(t, e, providerConfig{args: []string{"--fuse-mountpoint", mnt, "--fuse-class", class}})
	if got, err := os.ReadFile(file); err != nil || string(got) != "testuser" {
		t.Fatalf("first view: %q %v", got, err)
	}
	common := []string{"--region", "cn-hangzhou", "--kms-endpoint", e.URL(), "--oos-endpoint", e.URL(), "--metrics-addr", "", "--health-addr", ""}
	socketDir := shortTempDir(t)
	for _, c := range []struct {
		name string
		args []string
		flag string
	}{
		{"serve", append([]string{"serve", "--provider-volume", socketDir, "--fuse-mountpoint", mnt, "--fuse-class", class}, common...), "--fuse-takeover"},
		{"mount", append([]string{"mount", "--mountpoint", mnt, "--class", class}, common...), "--takeover"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(providerBin, c.args...)
			cmd.Env = []string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true", "ACCESS_KEY_ID=" + emulator.DemoAccessKeyID,
				"SECRET_ACCESS_KEY=" + emulator.DemoAccessKeySecret, "SSL_CERT_FILE=" + e.CAFile()}
			out, err, timedOut := runBounded(cmd, 15*time.Second)
			if timedOut || err == nil {
				t.Fatalf("a second %s on a live view did not refuse (timed out: %v, err: %v):\n%s", c.name, timedOut, err, out)
			}
			t.Logf("%s refused:\n%s", c.name, out)
			for _, want := range []string{mnt, "live FUSE view", c.flag} {
				if !strings.Contains(out, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, out)
				}
			}
			if got, err := os.ReadFile(file); err != nil || string(got) != "testuser" {
				t.Fatalf("the live view after the refusal: %q %v", got, err)
			}
			// A serve that could not start leaves no socket for the driver
			// to dial.
			if left, _ := os.ReadDir(socketDir); len(left) != 0 {
				t.Errorf("a refused %s left %d files in its provider volume (%s)", c.name, len(left), left[0].Name())
			}
		})
	}

	t.Run("takeover", func(t *testing.T) {
		second := startProvider(t, e, providerConfig{args: []string{"--fuse-mountpoint", mnt, "--fuse-class", class, "--fuse-takeover"}})
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(second.logs.String(), "took over the live FUSE view") {
			if time.Now().After(deadline) {
				t.Fatalf("the takeover is not logged:\n%s", second.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got, err := os.ReadFile(file); err != nil || string(got) != "testuser" {
			t.Fatalf("the view after the takeover: %q %v", got, err)
		}
		if err := first.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("the replaced provider: %v", err)
		}
		if got, err := os.ReadFile(file); err != nil || string(got) != "testuser" {
			t.Fatalf("the successor's view after the replaced provider stopped: %q %v", got, err)
		}
		if err := second.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("the successor: %v", err)
		}
	})
}
