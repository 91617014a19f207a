package driver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

const (
	chartName   = "csi-secrets-store-provider-alibabacloud"
	releaseName = "csi-secrets-store-provider-alibabacloud"
	chartNS     = "kube-system" // the install guide's namespace
	driverChart = "secrets-store-csi-driver"
	// The server envtest runs is v1.35; render for it.
	renderKubeVersion = "v1.35.0"
)

// helmBinary: $HELM, then <repo>/.tools/bin/helm (hack/chart/install-helm.sh),
// then PATH.
func helmBinary(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		if _, err := os.Stat(h); err != nil {
			t.Fatalf("HELM=%s: %v", h, err)
		}
		return h
	}
	local := filepath.Join(repoRoot, ".tools", "bin", "helm")
	if _, err := os.Stat(local); err == nil {
		return local
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	skipOrFail(t, "helm not found: run hack/chart/install-helm.sh (into .tools/bin/helm) or set HELM")
	return ""
}

// chartCopy is a temporary copy of our chart with the upstream driver chart
// (from the driver module in the module cache) in its charts/, as
// `helm dependency build` would leave it.
func chartCopy(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), chartName)
	if err := testbin.CopyTree(filepath.Join(repoRoot, "charts", chartName), dst); err != nil {
		t.Fatal(err)
	}
	if err := testbin.CopyTree(filepath.Join(driverModuleDir(t), "charts", driverChart), filepath.Join(dst, "charts", driverChart)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func runHelm(t testing.TB, helm string, args ...string) string {
	t.Helper()
	cmd := exec.Command(helm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// rendering is one way to install the chart.
type rendering struct {
	name   string
	values []string // files in examples/
	sets   []string
}

// optionValues are the examples' values files that add a feature to a
// credential mode rather than choose one; every other values-*.yaml is a
// credential mode.
var optionValues = map[string]bool{"values-rotation-sync.yaml": true, "values-fuse.yaml": true}

// renderings: the defaults, every values file of examples/ alone, every
// option with every credential mode, and the guide's --set style for
// rotation; each with the bundled driver chart on and off.
func renderings(t testing.TB) []rendering {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "values-*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/values-*.yaml: %v", err)
	}
	var creds, opts []string
	for _, f := range files {
		b := filepath.Base(f)
		if optionValues[b] {
			opts = append(opts, b)
		} else {
			creds = append(creds, b)
		}
	}
	base := []rendering{{name: "defaults"}}
	for _, f := range append(append([]string{}, creds...), opts...) {
		base = append(base, rendering{name: f, values: []string{f}})
	}
	for _, c := range creds {
		for _, o := range opts {
			base = append(base, rendering{name: c + "+" + o, values: []string{c, o}})
		}
	}
	base = append(base, rendering{name: "rotation-by-set", sets: []string{
		"secrets-store-csi-driver.enableSecretRotation=true",
		"secrets-store-csi-driver.rotationPollInterval=5m",
		"secrets-store-csi-driver.syncSecret.enabled=true",
	}})
	var out []rendering
	for _, r := range base {
		for _, on := range []bool{true, false} {
			out = append(out, rendering{
				name:   fmt.Sprintf("%s/driver=%v", r.name, on),
				values: r.values,
				sets:   append(append([]string{}, r.sets...), fmt.Sprintf("secrets-store-csi-driver.install=%v", on)),
			})
		}
	}
	return out
}

// splitYAML decodes a multi-document stream into objects, skipping
// documents that hold only comments.
func splitYAML(t testing.TB, name, stream string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: document %d is not YAML: %v", name, i, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// dryRunner applies objects with a server-side apply dry run and strict
// field validation: the API server runs defaulting, validation, admission
// and the CRD schemas, and persists nothing.
type dryRunner struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newDryRunner(t testing.TB, cfg *rest.Config) *dryRunner {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &dryRunner{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

func (d *dryRunner) apply(ctx context.Context, u *unstructured.Unstructured, defaultNS string) error {
	gvk := u.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk, u.GetName(), err)
	}
	var ri dynamic.ResourceInterface = d.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = defaultNS
		}
		ri = d.dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		DryRun:          []string{metav1.DryRunAll},
		Force:           &force,
		FieldManager:    "integration-driver-dry-run",
		FieldValidation: "Strict",
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	return nil
}

// embedded returns the Kubernetes manifests carried in ConfigMap data (the
// FUSE view's class files), so they are checked by the server too.
func embedded(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != "ConfigMap" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		for _, k := range sortedKeys(data) {
			if !strings.HasSuffix(k, ".yaml") && !strings.HasSuffix(k, ".yml") {
				continue
			}
			m := map[string]any{}
			if yaml.Unmarshal([]byte(data[k]), &m) != nil || m["apiVersion"] == nil || m["kind"] == nil {
				continue
			}
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestServerSideDryRun sends every chart rendering and every example
// manifest to a real kube-apiserver as a server-side apply dry run.
func TestServerSideDryRun(t *testing.T) {
	cfg := apiServer(t)
	helm := helmBinary(t)
	d := newDryRunner(t, cfg)
	ctx := context.Background()

	// The negative controls: the dry run must be able to fail.
	t.Run("controls", func(t *testing.T) {
		bad := splitYAML(t, "bad", `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: typo}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: c, image: i, volumeMounts: [{name: v, mountPathTypo: /x}]}]
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: wrong-type}
spec: {provider: 5}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: selector-mismatch}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: i}]}
`)
		// What each must be rejected for, so that an unrelated failure (a
		// missing namespace, a dead server) does not pass for a rejection.
		why := []string{"mountPathTypo", ".spec.provider", "`selector` does not match template `labels`"}
		if len(bad) != len(why) {
			t.Fatalf("%d control objects, %d reasons", len(bad), len(why))
		}
		for i, u := range bad {
			err := d.apply(ctx, u, "default")
			switch {
			case err == nil:
				t.Errorf("%s %s: the dry run accepted it", u.GetKind(), u.GetName())
			case !strings.Contains(err.Error(), why[i]):
				t.Errorf("%s %s: rejected for %v, want a message naming %q", u.GetKind(), u.GetName(), err, why[i])
			default:
				t.Logf("rejected as expected: %v", err)
			}
		}
	})

	t.Run("chart", func(t *testing.T) {
		chart := chartCopy(t)
		for _, r := range renderings(t) {
			t.Run(r.name, func(t *testing.T) {
				args := []string{"template", releaseName, chart, "--namespace", chartNS,
					"--kube-version", renderKubeVersion, "--include-crds"}
				for _, f := range r.values {
					args = append(args, "-f", filepath.Join(repoRoot, "examples", f))
				}
				for _, s := range r.sets {
					args = append(args, "--set", s)
				}
				objs := splitYAML(t, r.name, runHelm(t, helm, args...))
				if len(objs) == 0 {
					t.Fatal("the chart rendered nothing")
				}
				objs = append(objs, embedded(objs)...)
				kinds := map[string]int{}
				for _, u := range objs {
					kinds[u.GetKind()]++
					if err := d.apply(ctx, u, chartNS); err != nil {
						t.Error(err)
					}
				}
				t.Logf("%d objects accepted: %v", len(objs), kinds)
			})
		}
	})

	t.Run("examples", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range files {
			if strings.HasPrefix(filepath.Base(f), "values-") {
				continue // chart values, rendered above
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs := splitYAML(t, filepath.Base(f), string(b))
			if len(objs) == 0 {
				t.Errorf("%s holds no object", filepath.Base(f))
			}
			for _, u := range objs {
				// The examples apply to the current namespace ("default").
				if err := d.apply(ctx, u, "default"); err != nil {
					t.Errorf("%s: %v", filepath.Base(f), err)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatal("no example manifests found")
		}
		t.Logf("%d example objects accepted", n)
	})
}
