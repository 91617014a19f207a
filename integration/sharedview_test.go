package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

const sharedClass = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: shared
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - objectName: demo-db
        jmesPath:
          - {path: username, objectAlias: db-username}
`

// serve --fuse-mountpoint mounts the FUSE view in the provider's own
// process: the CSI side and the view read ONE cache, so a secret the driver
// mounted costs the view no upstream call, and a rotation reaches both.
func TestServeFUSEViewSharesTheCache(t *testing.T) {
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
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s", "--fuse-mountpoint", mnt, "--fuse-class", class}})
	p.mountOK(t, objects("- objectName: demo-db", "  jmesPath:", "    - {path: username, objectAlias: db-username}"), nil)
	if n := e.Calls("kms"); n != 1 {
		t.Fatalf("%d KMS calls for the CSI Mount, want 1", n)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "shared", "db-username"))
	if err != nil || string(got) != "testuser" {
		t.Fatalf("view read: %q %v", got, err)
	}
	if n := e.Calls("kms"); n != 1 {
		t.Fatalf("the view made its own upstream call (%d KMS calls): the cache is not shared", n)
	}
	if _, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(`{"username":"rotated-user","password":"p"}`), false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Second)
	for {
		got, _ := os.ReadFile(filepath.Join(mnt, "shared", "db-username"))
		if string(got) == "rotated-user" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotation never reached the view (still %q)", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	entries, err := os.ReadDir(mnt)
	if err != nil || len(entries) != 0 {
		t.Fatalf("after SIGTERM the mountpoint is not an empty directory: %v %v", entries, err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), mnt) {
		t.Fatal("the view is still mounted after SIGTERM")
	}
}
