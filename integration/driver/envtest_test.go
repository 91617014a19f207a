package driver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const driverModule = "sigs.k8s.io/secrets-store-csi-driver"

var (
	envOnce sync.Once
	testEnv *envtest.Environment
	envCfg  *rest.Config
	envErr  error
	envTook time.Duration
)

// assetsDir is where envtest finds kube-apiserver and etcd:
// KUBEBUILDER_ASSETS, else <repo>/.tools/k8s-assets (hack/k8s/setup-envtest.sh).
func assetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, ".tools", "k8s-assets")
}

// driverModuleDir is the driver module in the module cache: its CRDs and
// its chart are read from there (never copied into the repository).
func driverModuleDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", driverModule).CombinedOutput()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("go list -m %s: %v %s", driverModule, err, out)
	}
	return dir
}

// apiServer starts (once per test binary) a real kube-apiserver and etcd
// with envtest, with the driver's CRDs installed, and returns an admin
// config. Without the binaries it skips, or fails in CI.
func apiServer(t testing.TB) *rest.Config {
	t.Helper()
	dir := assetsDir()
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			skipOrFail(t, "envtest needs %s in %s (KUBEBUILDER_ASSETS): run hack/k8s/setup-envtest.sh", b, dir)
		}
	}
	crds := filepath.Join(driverModuleDir(t), "config", "crd", "bases")
	envOnce.Do(func() {
		start := time.Now()
		testEnv = &envtest.Environment{
			BinaryAssetsDirectory: dir,
			CRDDirectoryPaths:     []string{crds},
			ErrorIfCRDPathMissing: true,
			// Two cores shared with a compiler: give the first start room.
			ControlPlaneStartTimeout: 2 * time.Minute,
			ControlPlaneStopTimeout:  time.Minute,
		}
		envCfg, envErr = testEnv.Start()
		envTook = time.Since(start)
	})
	if envErr != nil {
		t.Fatalf("envtest start (assets %s): %v", dir, envErr)
	}
	t.Logf("kube-apiserver + etcd from %s (started in %v)", dir, envTook.Round(time.Millisecond))
	return rest.CopyConfig(envCfg)
}

func stopEnvtest() {
	if testEnv != nil && envErr == nil {
		_ = testEnv.Stop()
	}
}
