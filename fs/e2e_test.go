package fs

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

const e2eClass = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: demo
spec:
  provider: alibabacloud
  parameters:
    region: cn-hangzhou
    objects: |
      - objectName: test
        objectType: oos
      - objectName: demo-db
        jmesPath:
          - path: username
            objectAlias: db-username
          - path: password
            objectAlias: db-password
      - objectName: demo-tls-key
        objectAlias: tls/key.der
`

// buildBinary builds the provider binary (once per test process) and
// removes it with the test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Provider(testbin.Options{})
	if errors.Is(err, testbin.ErrNoGo) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testbin.Cleanup)
	return bin
}

// The mount subcommand end to end: the real binary against the Alibaba Cloud
// emulator through the SDKs. Listing makes no upstream call, one object is
// fetched once for all its files, an upstream rotation reaches the files
// through the cache's refresh with the new size, and SIGTERM unmounts and
// exits 0.
func TestMountCommandEndToEnd(t *testing.T) {
	requireFUSE(t)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)

	// Usage errors exit 2 before anything is mounted.
	if out, err := exec.Command(bin, "mount", "--class", "x.yaml").CombinedOutput(); exitCode(err) != 2 || !strings.Contains(string(out), "--mountpoint is required") {
		t.Fatalf("missing --mountpoint: %v\n%s", err, out)
	}

	emu, err := emulator.New(emulator.DemoSeed(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })

	work := t.TempDir()
	classFile := filepath.Join(work, "demo.yaml")
	if err := os.WriteFile(classFile, []byte(e2eClass), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(work, "view")
	cmd := exec.Command(bin, "mount", "--mountpoint", mp, "--class", classFile,
		"--region", emulator.DemoRegion, "--kms-endpoint", emu.URL(), "--oos-endpoint", emu.URL(),
		"--cache-ttl", "1s", "--shutdown-grace", "2s", "-v", "4",
		"--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"),
		"ACCESS_KEY_ID=" + emulator.DemoAccessKeyID, "SECRET_ACCESS_KEY=" + emulator.DemoAccessKeySecret}
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var gone atomic.Bool
	go func() {
		err := cmd.Wait()
		gone.Store(true)
		exited <- err
	}()
	t.Cleanup(func() {
		if !gone.Load() {
			_ = cmd.Process.Kill()
			<-exited //nolint:errcheck // killed on purpose
		}
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	})
	eventually(t, 30*time.Second, "mounted", func() (bool, string) {
		if gone.Load() {
			t.Fatalf("mount exited early:\n%s", stderr.String())
		}
		types, _ := mountsAt(mp)
		return len(types) == 1 && types[0] == FSType, stderr.String()
	})

	dir := filepath.Join(mp, "demo")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != ".status,db-password,db-username,demo-db,test,tls_key.der" {
		t.Fatalf("listing: %v", got)
	}
	if n := emu.Calls("kms") + emu.Calls("oos"); n != 0 {
		t.Fatalf("listing made %d upstream calls", n)
	}

	want := map[string]string{
		"test": emulator.DemoParameterValue, "demo-db": emulator.DemoSecretJSONValue,
		"db-username": "testuser", "db-password": "testpassword", "tls_key.der": string(emulator.DemoSecretBinaryValue),
	}
	for name, w := range want {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != w {
			t.Fatalf("%s: %q %v, want %q", name, b, err, w)
		}
		st, err := os.Stat(p)
		if err != nil || st.Size() != int64(len(w)) || st.Mode() != 0o400 {
			t.Fatalf("%s: %v size %d mode %v", name, err, st.Size(), st.Mode())
		}
	}
	if n := emu.CallsFor("kms", emulator.DemoSecretJSON); n != 1 {
		t.Fatalf("demo-db fetched %d times for its three files, want 1", n)
	}

	rotated := `{"username":"rotated-user-with-a-longer-name","password":"testpassword"}`
	version, err := emu.PutSecretValue(emulator.DemoSecretJSON, []byte(rotated), false)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "rotated username", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dir, "db-username"))
		return err == nil && string(b) == "rotated-user-with-a-longer-name", string(b)
	})
	if st, err := os.Stat(filepath.Join(dir, "db-username")); err != nil || st.Size() != int64(len("rotated-user-with-a-longer-name")) {
		t.Fatalf("size after rotation: %v %d", err, st.Size())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "demo-db")); string(b) != rotated {
		t.Fatalf("demo-db after rotation: %q", b)
	}
	raw, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	var s ClassStatus
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if s.Objects[1].Version != version || !s.Objects[1].Fetched || s.Objects[1].LastError != "" {
		t.Fatalf("status of demo-db: %+v, want version %s", s.Objects[1], version)
	}

	// Operations endpoints: the view's liveness and readiness, and its
	// FUSE operations in /metrics.
	m := regexp.MustCompile(`msg="operations endpoints" metricsAddr=(\S+) healthAddr=(\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no operations endpoints logged:\n%s", stderr.String())
	}
	for _, u := range []string{"http://" + m[2] + "/healthz", "http://" + m[2] + "/readyz", "http://" + m[1] + "/metrics"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", u, resp.StatusCode, body)
		}
		if strings.HasSuffix(u, "/metrics") && !strings.Contains(string(body), `alibabacloud_provider_fuse_operations_total{op="lookup",result="ok"}`) {
			t.Fatalf("/metrics lacks the FUSE operations:\n%s", body)
		}
		if strings.HasSuffix(u, "/readyz") && !strings.Contains(string(body), "view: ok") {
			t.Fatalf("/readyz: %s", body)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mount exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("mount did not exit on SIGTERM\n%s", stderr.String())
	}
	plainEmptyDir(t, mp)

	logs := stderr.String()
	for _, secret := range []string{"testpassword", "testuser", "rotated-user", emulator.DemoAccessKeySecret} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log leaks %q:\n%s", secret, logs)
		}
	}
	for _, line := range []string{"FUSE view mounted", "kernel cache invalidated", "FUSE view unmounted"} {
		if !strings.Contains(logs, line) {
			t.Fatalf("log lacks %q:\n%s", line, logs)
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}
