package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// postRenderEnv makes the test binary act as helm's post-renderer (see
// postRender) instead of running tests.
const postRenderEnv = "CSSPA_E2E_POSTRENDER"

// suite is what every test shares: one cluster, one emulator, one release.
type suite struct {
	kube       kubernetes.Interface
	kubeconfig string
	state      string // hack/cluster/up.sh's state dir
	node       string
	apiServer  string
	repo       string
	bin        string // <repo>/.tools/bin: helm, kubectl
	images     map[string]string
	emu        *emulator.Emulator
	chart      string // our chart with the upstream driver chart in charts/
	tmp        string
	net        *netWatch
}

var s *suite

// skipReason is why the suite cannot run; with CI=true that is a failure.
var skipReason string

func TestMain(m *testing.M) {
	if os.Getenv(postRenderEnv) == "1" {
		if err := postRender(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "post-render:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster suite setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (code int, err error) {
	state := os.Getenv("CLUSTER_STATE")
	if state == "" {
		state = "/var/lib/csspa-e2e"
	}
	kubeconfig := filepath.Join(state, "admin.kubeconfig")
	if _, statErr := os.Stat(kubeconfig); statErr != nil {
		skipReason = fmt.Sprintf("no cluster: %s is missing (start one with hack/cluster/up.sh, or run make cluster-test)", kubeconfig)
		return m.Run(), nil
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		return 1, err
	}
	s = &suite{kubeconfig: kubeconfig, state: state, repo: repo, bin: filepath.Join(repo, ".tools", "bin")}
	s.node = envOr("CLUSTER_NODE", "csspa-e2e")
	s.apiServer = envOr("CLUSTER_APISERVER", "https://127.0.0.1:6443")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return 1, err
	}
	if s.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return 1, err
	}
	if s.images, err = readImagesEnv(filepath.Join(repo, ".tools", "cluster", "images", "images.env")); err != nil {
		return 1, err
	}
	if s.tmp, err = os.MkdirTemp("", "csspa-cluster-test-"); err != nil {
		return 1, err
	}
	defer os.RemoveAll(s.tmp)

	// Every connection of the cluster and the product must stay on this
	// machine; watched from before the emulator starts until the end.
	s.net = startNetWatch()

	if s.emu, err = startEmulator(state); err != nil {
		return 1, err
	}
	defer s.emu.Close()
	if s.chart, err = chartCopy(repo, s.tmp); err != nil {
		return 1, err
	}
	code = m.Run()
	if bad := s.net.stop(); len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: connections to addresses outside this machine:\n  %s\n", strings.Join(bad, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	return code, nil
}

// needCluster skips (or, with CI=true, fails) a test when no cluster is up.
func needCluster(t *testing.T) {
	t.Helper()
	if skipReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(skipReason)
	}
	t.Skip(skipReason)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// readImagesEnv reads NAME=ref lines (hack/cluster/build-images.sh).
func readImagesEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (run hack/cluster/build-images.sh)", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		out[k] = strings.Trim(v, `"'`)
	}
	return out, nil
}

// image returns the reference of one of the node's images.
func (s *suite) image(t testing.TB, key string) (repo, tag string) {
	t.Helper()
	ref, ok := s.images[key]
	if !ok {
		t.Fatalf("images.env has no %s", key)
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}

// postRender is the one change the suite makes to the rendered chart: the
// upstream driver DaemonSet runs in the host network namespace, because this
// node has no kube-proxy and pods reach the API server on 127.0.0.1 only.
// Everything else is set through chart values.
func postRender(in io.Reader, out io.Writer) error {
	b, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	docs := splitYAML(string(b))
	patched := 0
	for i, d := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(d), &obj); err != nil || obj == nil {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		if obj["kind"] != "DaemonSet" || meta == nil || meta["name"] != "secrets-store-csi-driver" {
			continue
		}
		spec := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		spec["hostNetwork"] = true
		spec["dnsPolicy"] = "ClusterFirstWithHostNet"
		nb, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		docs[i] = string(nb)
		patched++
	}
	if patched != 1 {
		return fmt.Errorf("found %d secrets-store-csi-driver DaemonSets, want 1", patched)
	}
	_, err = io.WriteString(out, strings.Join(docs, "\n---\n"))
	return err
}

func splitYAML(s string) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimRight(line, "\r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

// run runs a command and returns its stdout; the error carries stderr.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}
