package driver

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

const (
	// driverName is the CSIDriver name the upstream chart installs; the sync
	// controller only looks at pod volumes of this driver.
	driverName   = "secrets-store.csi.k8s.io"
	providerName = "alibabacloud"
	nodeID       = "node-1"
	volumeName   = "secrets-store-inline"
)

var (
	providerBin string
	repoRoot    string
)

func TestMain(m *testing.M) {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"} {
		_ = os.Unsetenv(k)
	}
	// The driver logs through klog (and controller-runtime through klog's
	// logr): quiet unless DRIVER_KLOG_V is set, e.g. DRIVER_KLOG_V=5 shows
	// every CSI request the driver serves.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if v := os.Getenv("DRIVER_KLOG_V"); v != "" {
		_ = fs.Set("v", v)
	} else {
		_ = fs.Set("logtostderr", "false")
		_ = fs.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	}
	ctrllog.SetLogger(klog.NewKlogr())

	var err error
	if repoRoot, err = testbin.Root(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if providerBin, err = testbin.Provider(testbin.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stopEnvtest()
	testbin.Cleanup()
	os.Exit(code)
}

// inCI is true in the CI run (.ci/run sets CI=true): there a missing
// prerequisite is a failure, not a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg + " (skipped outside CI; with CI=true this fails)")
}

// needRoot: the driver mounts tmpfs with mount(2).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "the driver's node server mounts tmpfs: run as root")
	}
}

func scheme() *apiruntime.Scheme {
	s := apiruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := secretsstorev1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// ---- emulator and provider ----

func startEmulator(t testing.TB) *emulator.Emulator {
	t.Helper()
	e, err := emulator.New(emulator.DemoSeed(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// provider is one `serve` process; dir holds alibabacloud.sock, the
// driver's --provider-volume.
type provider struct {
	dir  string
	logs *syncBuffer
}

// mounts counts the Mount calls the provider answered (its "mount" or
// "mount failed" log line, one per call): the witness for whether the
// driver called it.
func (p *provider) mounts() int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "msg=mount ") || strings.Contains(l, `msg="mount failed"`) {
			n++
		}
	}
	return n
}

// startProvider runs `serve` against e with the demo AccessKey, as the
// chart runs it next to the driver, plus extra flags, and waits for its
// socket to answer.
func startProvider(t testing.TB, e *emulator.Emulator, cacheTTL time.Duration, extra ...string) *provider {
	t.Helper()
	p := &provider{dir: shortTempDir(t), logs: &syncBuffer{}}
	cmd := exec.Command(providerBin, append([]string{"serve", "--provider-volume", p.dir, "--region", "cn-hangzhou",
		"--kms-endpoint", e.URL(), "--oos-endpoint", e.URL(), "--cache-ttl", cacheTTL.String(),
		"--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"}, extra...)...)
	cmd.Env = []string{
		"ACCESS_KEY_ID=" + emulator.DemoAccessKeyID,
		"SECRET_ACCESS_KEY=" + emulator.DemoAccessKeySecret,
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
		"PATH=" + os.Getenv("PATH"),
	}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("provider logs:\n%s", p.logs.String())
		}
	})

	sock := filepath.Join(p.dir, providerName+".sock")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("provider exited before serving: %v\n%s", err, p.logs.String())
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = v1alpha1.NewCSIDriverProviderClient(conn).Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
			cancel()
			if err == nil {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider socket %s never answered\n%s", sock, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shortTempDir: unix socket paths are limited to 108 bytes and t.TempDir
// can be long.
func shortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "drv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// ---- the driver's node server ----

type driverConfig struct {
	client   client.Client
	reader   client.Reader
	rotation bool
	interval time.Duration // --rotation-poll-interval
}

// startDriver runs the driver's CSI server in-process exactly as its main
// does (NewSecretsStoreDriver(...).Run on a unix endpoint), looking for
// providers in providerDir, and returns a CSI node client for it.
func startDriver(t testing.TB, providerDir string, cfg driverConfig) csi.NodeClient {
	t.Helper()
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "csi.sock")
	if cfg.reader == nil {
		cfg.reader = cfg.client
	}
	builder := secretsstore.NewPluginClientBuilder([]string{providerDir})
	d := secretsstore.NewSecretsStoreDriver(driverName, nodeID, "unix://"+sock, builder,
		cfg.client, cfg.reader, cfg.rotation, cfg.interval)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		d.Run(ctx)
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Error("the driver's gRPC server did not stop")
		}
		builder.Cleanup()
	})
	ids := csi.NewIdentityClient(conn)
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if _, err := ids.Probe(wctx, &csi.ProbeRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("driver Probe: %v", err)
	}
	return csi.NewNodeClient(conn)
}

// podRef is what kubelet knows of the pod it publishes a volume for.
type podRef struct {
	name, namespace, uid, serviceAccount string
}

// kubeletDir makes a fake kubelet root; targetPath lays out the pod volume
// path as kubelet does (the sync controller parses the pod UID and the
// volume name out of it). Every mount under it is undone at cleanup.
func kubeletDir(t testing.TB) string {
	t.Helper()
	root := shortTempDir(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	return root
}

func targetPath(t testing.TB, kubeletRoot string, pod podRef) string {
	t.Helper()
	p := filepath.Join(kubeletRoot, "pods", pod.uid, "volumes", "kubernetes.io~csi", volumeName, "mount")
	// kubelet creates the volume directory; the driver creates mount/.
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	return p
}

// publishRequest is the NodePublishVolume kubelet sends for an inline CSI
// volume of this pod (podInfoOnMount: true, no tokenRequests).
func publishRequest(target, spcName string, pod podRef) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + pod.uid + "-" + volumeName,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly: true,
		VolumeContext: map[string]string{
			"secretProviderClass":                    spcName,
			"csi.storage.k8s.io/pod.name":            pod.name,
			"csi.storage.k8s.io/pod.namespace":       pod.namespace,
			"csi.storage.k8s.io/pod.uid":             pod.uid,
			"csi.storage.k8s.io/serviceAccount.name": pod.serviceAccount,
			"csi.storage.k8s.io/ephemeral":           "true",
		},
	}
}

func publish(t testing.TB, node csi.NodeClient, req *csi.NodePublishVolumeRequest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := node.NodePublishVolume(ctx, req); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
}

func unpublish(t testing.TB, node csi.NodeClient, volumeID, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: target}); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v", err)
	}
}

// ---- objects ----

func newSPC(name, namespace, objects string, secretObjects ...*secretsstorev1.SecretObject) *secretsstorev1.SecretProviderClass {
	return &secretsstorev1.SecretProviderClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: "secrets-store.csi.x-k8s.io/v1", Kind: "SecretProviderClass"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: secretsstorev1.SecretProviderClassSpec{
			Provider:      providerName,
			Parameters:    map[string]string{"objects": objects},
			SecretObjects: secretObjects,
		},
	}
}

// newPod is a pod on nodeID with the class mounted as an inline CSI volume.
func newPod(name, namespace, uid, spcName string) *corev1.Pod {
	ro := true
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(uid)},
		Spec: corev1.PodSpec{
			NodeName: nodeID,
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1",
				VolumeMounts: []corev1.VolumeMount{{Name: volumeName, MountPath: "/mnt/secrets-store", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{
				Name: volumeName,
				VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver: driverName, ReadOnly: &ro,
					VolumeAttributes: map[string]string{"secretProviderClass": spcName},
				}},
			}},
		},
	}
}

// spcpsName is the SecretProviderClassPodStatus the node server writes.
func spcpsName(pod, namespace, spc string) string { return pod + "-" + namespace + "-" + spc }

func objectVersions(s *secretsstorev1.SecretProviderClassPodStatus) []string {
	var out []string
	for _, o := range s.Status.Objects {
		out = append(out, o.ID+"="+o.Version)
	}
	return out
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
