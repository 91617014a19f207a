package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

const (
	chartName   = "csi-secrets-store-provider-alibabacloud"
	releaseName = "csi-secrets-store-provider-alibabacloud" // the guide's release name
	namespace   = "kube-system"                             // the guide's namespace
	driverChart = "secrets-store-csi-driver"
	driverMod   = "sigs.k8s.io/secrets-store-csi-driver"
)

// repoRoot is the provider's repository: this module lives in integration/k8s.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "charts", chartName, "Chart.yaml")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// inCI is true in the CI run (.ci/run sets CI=true), where a missing tool is
// a failure rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg + " (skipped outside CI; CI=true makes this a failure)")
}

// helmBinary finds helm: $HELM, then <repo>/.tools/bin/helm
// (hack/chart/install-helm.sh), then PATH.
func helmBinary(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		if _, err := os.Stat(h); err != nil {
			t.Fatalf("HELM=%s: %v", h, err)
		}
		return h
	}
	local := filepath.Join(repoRoot(t), ".tools", "bin", "helm")
	if _, err := os.Stat(local); err == nil {
		return local
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	skipOrFail(t, "helm not found: run hack/chart/install-helm.sh (helm v3.22.0 into .tools/bin) or set HELM")
	return ""
}

var (
	driverDirOnce sync.Once
	driverDir     string
	driverDirErr  error
)

// upstreamDriverChart is the secrets-store-csi-driver chart shipped inside
// the driver's Go module, which the provider already depends on. It is read
// from the module cache and only ever copied into temporary directories.
func upstreamDriverChart(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	driverDirOnce.Do(func() {
		list := func() (string, error) {
			cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", driverMod)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		dir, err := list()
		if err == nil && dir == "" { // required but not downloaded yet
			dl := exec.Command("go", "mod", "download", driverMod)
			dl.Dir = root
			if out, derr := dl.CombinedOutput(); derr != nil {
				driverDirErr = fmt.Errorf("go mod download %s: %v\n%s", driverMod, derr, out)
				return
			}
			dir, err = list()
		}
		if err != nil {
			driverDirErr = fmt.Errorf("go list -m %s in %s: %v\n%s", driverMod, root, err, dir)
			return
		}
		driverDir = filepath.Join(dir, "charts", driverChart)
		if _, err := os.Stat(filepath.Join(driverDir, "Chart.yaml")); err != nil {
			driverDirErr = fmt.Errorf("the driver module has no chart at %s: %v", driverDir, err)
		}
	})
	if driverDirErr != nil {
		t.Fatal(driverDirErr)
	}
	return driverDir
}

// chartCopy makes a temporary copy of our chart with the upstream driver
// chart in its charts/ directory, as `helm dependency build` would leave it.
func chartCopy(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), chartName)
	if err := testbin.CopyTree(filepath.Join(repoRoot(t), "charts", chartName), dst); err != nil {
		t.Fatal(err)
	}
	if err := testbin.CopyTree(upstreamDriverChart(t), filepath.Join(dst, "charts", driverChart)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runHelm runs helm and returns stdout; on failure the error holds stderr.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A user's helm configuration must not change what is tested.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// valuesArgs turns example values files and --set pairs into helm flags.
func valuesArgs(t testing.TB, files []string, sets []string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", filepath.Join(repoRoot(t), "examples", f))
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

// scheme knows every kind the chart (with the driver) and the examples may
// produce; an unknown kind or field fails the strict decode.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, storagev1.AddToScheme,
		batchv1.AddToScheme, policyv1.AddToScheme, secretsstorev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

var strictDecoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// decodeAll splits a multi-document YAML stream and decodes every object
// strictly into its typed Go struct. Documents with only comments are skipped.
func decodeAll(t testing.TB, name, stream string) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: reading document %d: %v", name, i, err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			t.Fatalf("%s: document %d is not YAML: %v", name, i, err)
		}
		if len(probe) == 0 {
			continue
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d (%v): %v\n%s", name, i, gvk, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

// find returns the objects of type T, by name.
func find[T runtime.Object](objs []runtime.Object) map[string]T {
	out := map[string]T{}
	for _, o := range objs {
		if v, ok := o.(T); ok {
			name := any(v).(interface{ GetName() string }).GetName()
			out[name] = v
		}
	}
	return out
}

// flags maps "--name" to its value for args written as --name=value.
func flags(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		k, v, _ := strings.Cut(a, "=")
		out[k] = v
	}
	return out
}

func container(t testing.TB, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func volume(t testing.TB, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// mountOf returns the container's mount of the volume named name.
func mountOf(c corev1.Container, name string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}
