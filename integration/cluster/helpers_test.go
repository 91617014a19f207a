package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

const (
	release     = "csi-secrets-store-provider-alibabacloud"
	releaseNS   = "kube-system"
	chartName   = "csi-secrets-store-provider-alibabacloud"
	driverChart = "secrets-store-csi-driver"
	driverName  = "secrets-store.csi.k8s.io"
	providerDS  = "csi-secrets-store-provider-alibabacloud"
	driverDS    = "secrets-store-csi-driver"
	providerDir = "/var/run/secrets-store-csi-providers"
	// Where the emulator's CA is written on the host and seen in the provider.
	caHostDir      = "emulator"
	caPodDir       = "/etc/csspa-e2e"
	account        = "1234567890123456"
	oidcProvider   = "acs:ram::" + account + ":oidc-provider/ack-rrsa-e2e"
	workerRole     = "acs:ram::" + account + ":role/e2e-worker-role"
	akRole         = "acs:ram::" + account + ":role/e2e-reader"
	providerRRSA   = "acs:ram::" + account + ":role/e2e-provider-rrsa"
	podRole        = "acs:ram::" + account + ":role/e2e-pod-reader"
	akUserID       = "LTAIclusterE2EUser0001"
	akUserSecret   = "e2e-user-secret-0001"
	akUser         = "e2e-user"
	publishKeyID   = "LTAIclusterE2EPublish1"
	publishSecret  = "e2e-publish-secret-01"
	publishUser    = "e2e-publish"
	guideParameter = "test"
	guideValue     = "guide-parameter-v1"
	dbSecret       = "db-credentials"
	dbValue        = `{"username":"testuser","password":"testpassword"}`
)

// seed is the emulated account: one identity per credential mode the chart
// offers, each trusted only for its own way in.
var seed = `
accountId: "` + account + `"
region: cn-hangzhou
accessKeys:
  - {id: ` + akUserID + `, secret: ` + akUserSecret + `, principal: ` + akUser + `}
  - {id: ` + publishKeyID + `, secret: ` + publishSecret + `, principal: ` + publishUser + `}
secrets:
  - name: ` + dbSecret + `
    value: '` + dbValue + `'
parameters:
  - name: ` + guideParameter + `
    value: ` + guideValue + `
  - name: ` + dbSecret + ` # examples/spc-sync-secret.yaml reads it from OOS
    value: '` + dbValue + `'
roles:
  - arn: ` + akRole + `
    trustedPrincipals: [` + akUser + `]
  - arn: ` + providerRRSA + `
    oidcProviderArn: ` + oidcProvider + `
    oidcSubjects: ["system:serviceaccount:kube-system:csi-secrets-store-provider-alibabacloud"]
  - arn: ` + podRole + `
    oidcProviderArn: ` + oidcProvider + `
    oidcSubjects: ["system:serviceaccount:*:app-reader"]
imds:
  roleName: e2e-worker-role
  region: cn-hangzhou
`

// startEmulator serves the emulated account on 127.0.0.1 and writes its CA
// where the provider pods mount it from the host.
func startEmulator(state string) (*emulator.Emulator, error) {
	sd, err := emulator.ParseSeed([]byte(seed))
	if err != nil {
		return nil, err
	}
	caDir := filepath.Join(state, caHostDir)
	if err := os.MkdirAll(caDir, 0o755); err != nil {
		return nil, err
	}
	e, err := emulator.New(sd, emulator.Options{CAFile: filepath.Join(caDir, "ca.crt"), RequestLogSize: 2048})
	if err != nil {
		return nil, err
	}
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

// chartCopy makes a copy of our chart with the upstream driver chart of the
// pinned module in its charts/ directory, as `helm dependency build` leaves it.
func chartCopy(repo, tmp string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/secrets-store-csi-driver").Output()
	if err != nil {
		return "", fmt.Errorf("go list the driver module: %w", err)
	}
	upstream := filepath.Join(strings.TrimSpace(string(out)), "charts", driverChart)
	dst := filepath.Join(tmp, chartName)
	if err := testbin.CopyTree(filepath.Join(repo, "charts", chartName), dst); err != nil {
		return "", err
	}
	if err := testbin.CopyTree(upstream, filepath.Join(dst, "charts", driverChart)); err != nil {
		return "", err
	}
	return dst, nil
}

// baseValues are the values every install uses: the local images, the
// emulator's endpoints, the host network and the API server on 127.0.0.1.
// Credential modes add their own values files on top.
func (s *suite) baseValues(t testing.TB) map[string]any {
	pRepo, pTag := s.image(t, "PROVIDER_IMAGE")
	dRepo, dTag := s.image(t, "DRIVER_IMAGE")
	rRepo, rTag := s.image(t, "REGISTRAR_IMAGE")
	lRepo, lTag := s.image(t, "LIVENESSPROBE_IMAGE")
	apiHost, apiPort := "127.0.0.1", strings.TrimPrefix(s.apiServer, "https://127.0.0.1:")
	apiEnv := []any{
		map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": apiHost},
		map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": apiPort},
	}
	return map[string]any{
		"regionId": "cn-hangzhou",
		"endpoints": map[string]any{
			"kms": s.emu.URL(), "oos": s.emu.URL(), "sts": s.emu.TLSEndpoint(),
		},
		// ECS metadata (worker role, node region) through the emulator's proxy.
		"extraArgs": []any{"--metadata-proxy=" + s.emu.ProxyURL(), "-v=4"},
		"extraEnv": append([]any{
			map[string]any{"name": "SSL_CERT_FILE", "value": caPodDir + "/ca.crt"},
		}, apiEnv...),
		"linux": map[string]any{
			"image":       map[string]any{"repository": pRepo, "tag": pTag, "pullPolicy": "Never"},
			"hostNetwork": true,
			"volumes": []any{map[string]any{"name": "e2e-emulator-ca",
				"hostPath": map[string]any{"path": filepath.Join(s.state, caHostDir), "type": "Directory"}}},
			"volumeMounts": []any{map[string]any{"name": "e2e-emulator-ca", "mountPath": caPodDir, "readOnly": true}},
		},
		"secrets-store-csi-driver": map[string]any{
			"linux": map[string]any{
				"image":              map[string]any{"repository": dRepo, "tag": dTag, "pullPolicy": "Never"},
				"registrarImage":     map[string]any{"repository": rRepo, "tag": rTag, "pullPolicy": "Never"},
				"livenessProbeImage": map[string]any{"repository": lRepo, "tag": lTag, "pullPolicy": "Never"},
				// Helm installs the CRDs from the chart's crds/; the upgrade
				// hook's image (kubectl) has no way to the API server here.
				"crds": map[string]any{"enabled": false},
				"env":  apiEnv,
			},
			"enableSecretRotation": true,
			"rotationPollInterval": rotationInterval.String(),
			"syncSecret":           map[string]any{"enabled": true},
		},
	}
}

// rotationInterval is the driver's rotationPollInterval and so the
// provider's cache TTL in this suite.
const rotationInterval = 10 * time.Second

// writeValues writes v as a values file in the suite's temp dir.
func (s *suite) writeValues(t testing.TB, name string, v map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.tmp, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// helm runs the suite's helm with a private configuration.
func (s *suite) helm(ctx context.Context, args ...string) (string, error) {
	home := filepath.Join(s.tmp, "helm-home")
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	env := []string{
		"KUBECONFIG=" + s.kubeconfig,
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		postRenderEnv + "=1",
	}
	if args[0] == "upgrade" || args[0] == "install" {
		args = append(args, "--post-renderer", exe)
	}
	return run(ctx, env, s.tool("helm"), args...)
}

func (s *suite) tool(name string) string {
	if p := filepath.Join(s.bin, name); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// install runs `helm upgrade --install` of the release with the base values
// and the given values files (later files win), and waits until the provider
// and the driver run the new spec and kubelet has registered the driver.
func (s *suite) install(t testing.TB, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	args := []string{"upgrade", "--install", release, s.chart, "--namespace", releaseNS,
		"-f", s.writeValues(t, "base-values.yaml", s.baseValues(t))}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	args = append(args, "--wait", "--timeout", "5m")
	start := time.Now()
	if out, err := s.helm(ctx, args...); err != nil {
		s.dumpNamespace(t, releaseNS)
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	s.waitRollout(t, providerDS)
	s.waitRollout(t, driverDS)
	s.waitDriverRegistered(t)
	t.Logf("helm upgrade --install with %d values files: %s", len(files), time.Since(start).Round(time.Millisecond))
}

// waitRollout waits until every pod of a DaemonSet runs its current spec and is ready.
func (s *suite) waitRollout(t testing.TB, name string) {
	t.Helper()
	err := poll(3*time.Minute, func(ctx context.Context) (bool, error) {
		ds, err := s.kube.AppsV1().DaemonSets(releaseNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		return rolledOut(ds), nil
	})
	if err != nil {
		s.dumpNamespace(t, releaseNS)
		t.Fatalf("DaemonSet %s did not roll out: %v", name, err)
	}
}

func rolledOut(ds *appsv1.DaemonSet) bool {
	st := ds.Status
	return st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled > 0 &&
		st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
		st.NumberAvailable == st.DesiredNumberScheduled && st.NumberUnavailable == 0
}

// waitDriverRegistered waits for kubelet to list the CSI driver on the node
// (the registrar's work).
func (s *suite) waitDriverRegistered(t testing.TB) {
	t.Helper()
	err := poll(2*time.Minute, func(ctx context.Context) (bool, error) {
		n, err := s.kube.StorageV1().CSINodes().Get(ctx, s.node, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		for _, d := range n.Spec.Drivers {
			if d.Name == driverName {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("kubelet never registered %s: %v", driverName, err)
	}
}

func poll(timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, time.Second, true, cond)
}

// namespace creates a fresh namespace for one test and deletes it after.
func (s *suite) namespace(t *testing.T) string { return s.namespaceNamed(t, "") }

// namespaceNamed is namespace with a suffix, for a test's second namespace.
func (s *suite) namespaceNamed(t *testing.T, suffix string) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[len(name)-50:]
	}
	name = strings.Trim("e2e-"+strings.Trim(name, "-")+suffix, "-")
	ctx := context.Background()
	_, err := s.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Pods need the namespace's default ServiceAccount (controller manager).
	if err := poll(time.Minute, func(ctx context.Context) (bool, error) {
		_, err := s.kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpNamespace(t, name)
		}
		_ = s.kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// applyYAML creates the objects of a multi-document manifest in ns with
// kubectl, as a user would.
func (s *suite) applyYAML(t testing.TB, ns, manifest string) {
	t.Helper()
	p := filepath.Join(s.tmp, fmt.Sprintf("manifest-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.kubectl(context.Background(), "apply", "-n", ns, "-f", p); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func (s *suite) kubectl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, []string{"KUBECONFIG=" + s.kubeconfig}, s.tool("kubectl"), args...)
}

// podSpec is a test application pod: busybox on the host network, with one
// CSI inline volume of the class at /mnt/secrets-store.
type podSpec struct {
	name, class, serviceAccount string
	publishSecret               string // nodePublishSecretRef
	env                         []corev1.EnvVar
	labels                      map[string]string
}

func (s *suite) pod(t testing.TB, ns string, p podSpec) *corev1.Pod {
	t.Helper()
	appRepo, appTag := s.image(t, "APP_IMAGE")
	grace := int64(1)
	readOnly := true
	vol := corev1.Volume{Name: "secrets-store-inline", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: driverName, ReadOnly: &readOnly,
		VolumeAttributes: map[string]string{"secretProviderClass": p.class},
	}}}
	if p.publishSecret != "" {
		vol.CSI.NodePublishSecretRef = &corev1.LocalObjectReference{Name: p.publishSecret}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns, Labels: p.labels},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			ServiceAccountName:            p.serviceAccount,
			TerminationGracePeriodSeconds: &grace,
			Volumes:                       []corev1.Volume{vol},
			Containers: []corev1.Container{{
				Name: "app", Image: appRepo + ":" + appTag, ImagePullPolicy: corev1.PullNever,
				Command:      []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"},
				Env:          p.env,
				VolumeMounts: []corev1.VolumeMount{{Name: "secrets-store-inline", MountPath: "/mnt/secrets-store", ReadOnly: true}},
			}},
		},
	}
	created, err := s.kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// waitRunning waits until the pod's container runs and returns how long it took.
func (s *suite) waitRunning(t testing.TB, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := poll(timeout, func(ctx context.Context) (bool, error) {
		p, err := s.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Running != nil {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not running after %s:\n%s", ns, name, timeout, s.podReport(ns, name))
	}
	return time.Since(start)
}

// podReport is the pod's phase, container states and events, for failures.
func (s *suite) podReport(ns, name string) string {
	ctx := context.Background()
	var b strings.Builder
	if p, err := s.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		fmt.Fprintf(&b, "phase %s\n", p.Status.Phase)
		for _, c := range p.Status.ContainerStatuses {
			st, _ := json.Marshal(c.State)
			fmt.Fprintf(&b, "container %s: %s\n", c.Name, st)
		}
	}
	for _, e := range s.events(ns, name) {
		fmt.Fprintf(&b, "event %s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

func (s *suite) events(ns, name string) []corev1.Event {
	l, err := s.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name,
	})
	if err != nil {
		return nil
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].LastTimestamp.Before(&l.Items[j].LastTimestamp) })
	return l.Items
}

// readFile reads a file inside the pod's container (kubectl exec: API
// server, kubelet, containerd).
func (s *suite) readFile(t testing.TB, ns, pod, path string) string {
	t.Helper()
	out, err := s.exec(ns, pod, "cat", path)
	if err != nil {
		t.Fatalf("read %s in %s/%s: %v", path, ns, pod, err)
	}
	return out
}

func (s *suite) exec(ns, pod string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.kubectl(ctx, append([]string{"exec", "-n", ns, pod, "--"}, cmd...)...)
}

// waitFile waits until a file in the pod holds want.
func (s *suite) waitFile(t testing.TB, ns, pod, path, want string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	err := poll(timeout, func(context.Context) (bool, error) {
		out, err := s.exec(ns, pod, "cat", path)
		last = out
		if err != nil {
			last = err.Error()
		}
		return err == nil && out == want, nil
	})
	if err != nil {
		t.Fatalf("%s in %s/%s never became the expected value after %s (last: %d bytes, equal=%v)",
			path, ns, pod, timeout, len(last), last == want)
	}
	return time.Since(start)
}

// dumpNamespace logs pods, their events and, for the release namespace, the
// tail of each container's log.
func (s *suite) dumpNamespace(t testing.TB, ns string) {
	t.Helper()
	ctx := context.Background()
	pods, err := s.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods in %s: %v", ns, err)
		return
	}
	for _, p := range pods.Items {
		t.Logf("--- pod %s/%s\n%s", ns, p.Name, s.podReport(ns, p.Name))
		if ns != releaseNS {
			continue
		}
		for _, c := range p.Spec.Containers {
			tail := int64(40)
			r, err := s.kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: &tail}).Stream(ctx)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(r)
			r.Close()
			t.Logf("--- log %s/%s\n%s", p.Name, c.Name, b)
		}
	}
}

// ls lists a directory inside the pod's container, sorted, without the
// hidden entries (the driver's ..data and timestamped directories).
func (s *suite) ls(t testing.TB, ns, pod, dir string) []string {
	t.Helper()
	out, err := s.exec(ns, pod, "ls", dir)
	if err != nil {
		t.Fatalf("ls %s in %s/%s: %v", dir, ns, pod, err)
	}
	names := strings.Fields(out)
	sort.Strings(names)
	return names
}
