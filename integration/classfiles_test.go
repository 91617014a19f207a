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

// appManifests is a class file as an application's manifests hold it: a
// comment, another kind of object, and two SecretProviderClasses, as
// several YAML documents in one file.
const appManifests = `# the app's manifests, as kubectl applies them
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-db
spec:
  provider: alibabacloud
  parameters:
    region: cn-hangzhou
    objects: |
      - objectName: demo-db
        jmesPath:
          - {path: username, objectAlias: db-username}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-config
spec:
  provider: alibabacloud
  parameters:
    region: cn-hangzhou
    objects: |
      - objectName: test
        objectType: oos
`

// doctor and mount read class files with one loader: the same
// multi-document file, from a path and from stdin, is accepted by both
// (doctor checks both classes; mount shows both as directories).
func TestDoctorAndMountAcceptTheSameClassFiles(t *testing.T) {
	e := startEmulator(t, nil)
	path := writeClass(t, appManifests)
	for _, in := range []struct{ name, class, stdin string }{{"file", path, ""}, {"stdin", "-", appManifests}} {
		t.Run("doctor/"+in.name, func(t *testing.T) {
			out, code := runDoctorStdin(t, e, nil, in.stdin, "--region", "cn-hangzhou", "--class", in.class)
			if code != 0 {
				t.Fatalf("doctor --class %s: exit %d:\n%s", in.class, code, out)
			}
			for _, want := range []string{"Class app-db", "Class app-config", "All 2 objects readable"} {
				if !strings.Contains(out, want) {
					t.Errorf("doctor --class %s: output lacks %q:\n%s", in.class, want, out)
				}
			}
		})
		t.Run("mount/"+in.name, func(t *testing.T) {
			mountClassFile(t, e, in.class, in.stdin)
		})
	}
}

// mountClassFile runs `mount --class class` (stdin fed to it) against e.
// With FUSE usable here it waits for both classes of appManifests in the
// view and stops mount with SIGTERM; without, it checks that mount got past
// the class file (it fails for want of FUSE, not with a class error).
func mountClassFile(t *testing.T, e *emulator.Emulator, class, stdin string) {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "view")
	cmd := exec.Command(providerBin, "mount", "--mountpoint", mnt, "--class", class, "--region", "cn-hangzhou",
		"--kms-endpoint", e.URL(), "--oos-endpoint", e.URL(), "--metrics-addr", "", "--health-addr", "")
	cmd.Env = []string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true", "ACCESS_KEY_ID=" + emulator.DemoAccessKeyID,
		"SECRET_ACCESS_KEY=" + emulator.DemoAccessKeySecret, "SSL_CERT_FILE=" + e.CAFile(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	if ok, why := fs.Usable(); !ok {
		out, err, timedOut := runBounded(cmd, 30*time.Second)
		if timedOut || exitOf(t, err) != 1 || !strings.Contains(out, "cannot be mounted here") {
			t.Fatalf("mount --class %s without FUSE (%s): want exit 1 for want of FUSE, got %v (timed out: %v):\n%s", class, why, err, timedOut, out)
		}
		t.Logf("FUSE is not usable here (%s): mount accepted the class file and stopped at the mount", why)
		return
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done //nolint:errcheck // killed on purpose
		}
	})
	want := map[string]bool{filepath.Join(mnt, "app-db", "db-username"): false, filepath.Join(mnt, "app-config", "test"): false}
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := true
		for p := range want {
			if b, err := os.ReadFile(p); err != nil || len(b) == 0 {
				all = false
			}
		}
		if all {
			break
		}
		select {
		case err := <-done:
			exited = true
			t.Fatalf("mount --class %s exited: %v\n%s", class, err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount --class %s: the view never showed %v\n%s", class, keys(want), logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "app-db", "db-username")); string(got) != "testuser" {
		t.Errorf("app-db/db-username = %q, want testuser", got)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("mount after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("mount did not exit after SIGTERM\n%s", logs.String())
	}
}
