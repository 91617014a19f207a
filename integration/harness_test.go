// Package integration holds the end-to-end tests: the real provider binary
// (`serve`) on a unix socket, spoken to exactly as the Secrets Store CSI
// Driver does (provider/v1alpha1 client with authority localhost, files
// written by the driver's fileutil.WritePayloads), against the Alibaba Cloud
// emulator with the real SDK clients. The emulator's counters are the witness
// for every caching claim.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

var providerBin string

func TestMain(m *testing.M) {
	if sock := os.Getenv(floorEnv); sock != "" {
		os.Exit(runFloor(sock, os.Getenv(floorRespEnv)))
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"} {
		_ = os.Unsetenv(k)
	}
	bin, err := testbin.Provider(testbin.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	providerBin = bin
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	code := m.Run()
	testbin.Cleanup()
	// Goroutine-leak check over the whole end-to-end suite: every
	// emulator, client connection and watcher a test started must be gone.
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak after the end-to-end tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startEmulator starts an emulator with the demo seed (plus extra keys) and
// stops it with the test.
func startEmulator(t testing.TB, seed *emulator.Seed) *emulator.Emulator {
	t.Helper()
	if seed == nil {
		seed = emulator.DemoSeed()
	}
	e, err := emulator.New(seed, emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	for _, k := range seed.AccessKeys {
		noteSensitive(k.Secret)
	}
	for _, s := range seed.Secrets {
		noteSensitive(s.Value)
		for _, v := range s.Versions {
			noteSensitive(v.Data)
		}
	}
	for _, p := range seed.Parameters {
		noteSensitive(p.Value)
		for _, v := range p.Versions {
			noteSensitive(v)
		}
	}
	return e
}

// sensitive holds every secret value, AccessKey secret and token the tests
// use. Provider logs and Mount errors are checked against it: with -v 4
// (debug) on, nothing sensitive may appear in them.
var sensitive struct {
	sync.Mutex
	values map[string]bool
}

// noteSensitive registers values that must never be logged (short values
// are skipped: they would match by chance).
func noteSensitive(vs ...string) {
	sensitive.Lock()
	defer sensitive.Unlock()
	if sensitive.values == nil {
		sensitive.values = map[string]bool{}
	}
	for _, v := range vs {
		if len(v) >= 8 {
			sensitive.values[v] = true
		}
	}
}

// leaks returns the sensitive values found in s.
func leaks(s string) []string {
	sensitive.Lock()
	defer sensitive.Unlock()
	var out []string
	for v := range sensitive.values {
		if strings.Contains(s, v) {
			out = append(out, v[:4]+"…")
		}
	}
	return out
}

// provider is one `serve` process on its own socket.
type provider struct {
	t      testing.TB
	cmd    *exec.Cmd
	dir    string
	sock   string
	logs   *syncBuffer
	conn   *grpc.ClientConn
	client v1alpha1.CSIDriverProviderClient
	done   chan error
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

type providerConfig struct {
	args []string
	env  map[string]string
	dir  string // reuse a socket directory (restart tests)
}

// startProvider runs `serve` against e with the demo AccessKey unless env
// says otherwise, and waits until the socket answers Version.
func startProvider(t testing.TB, e *emulator.Emulator, cfg providerConfig) *provider {
	t.Helper()
	dir := cfg.dir
	if dir == "" {
		dir = shortTempDir(t)
	}
	args := []string{"serve", "--provider-volume", dir, "--region", "cn-hangzhou",
		"--kms-endpoint", e.URL(), "--oos-endpoint", e.URL(), "--sts-endpoint", e.TLSEndpoint(), "-v", "4",
		// Many providers run at once: no fixed ports (tests that need them override).
		"--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"}
	args = append(args, cfg.args...)
	env := map[string]string{
		"ACCESS_KEY_ID":                       emulator.DemoAccessKeyID,
		"SECRET_ACCESS_KEY":                   emulator.DemoAccessKeySecret,
		"SSL_CERT_FILE":                       e.CAFile(),
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
		"PATH":                                os.Getenv("PATH"),
	}
	for k, v := range cfg.env {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	p := &provider{t: t, dir: dir, sock: filepath.Join(dir, "alibabacloud.sock"), logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(providerBin, args...)
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.stop(syscall.SIGKILL)
		if l := leaks(p.logs.String()); len(l) > 0 {
			t.Errorf("provider logs leak %d sensitive values (%v)", len(l), l)
		}
		if t.Failed() {
			t.Logf("provider logs:\n%s", p.logs.String())
		}
	})
	p.connect()
	return p
}

func shortTempDir(t testing.TB) string {
	// unix socket paths are limited to 108 bytes; t.TempDir can be long.
	d, err := os.MkdirTemp("", "prov-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func (p *provider) connect() {
	t := p.t
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(p.sock); err == nil {
			break
		}
		select {
		case err := <-p.done:
			t.Fatalf("provider exited before serving: %v\n%s", err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s never appeared\n%s", p.sock, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+p.sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	p.conn = conn
	p.client = v1alpha1.NewCSIDriverProviderClient(conn)
	t.Cleanup(func() { _ = conn.Close() })
	// The socket file may be a stale one the provider has yet to replace:
	// wait until Version answers.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Version: %v\n%s", err, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop signals the process and waits for it; it returns the exit error.
func (p *provider) stop(sig syscall.Signal) error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("provider did not exit after %v", sig)
	}
}

// pod describes the volume context kubelet adds.
type pod struct {
	name, namespace, serviceAccount, uid string
}

var defaultPod = pod{name: "nginx-1", namespace: "default", serviceAccount: "default", uid: "11111111-2222-3333-4444-555555555555"}

// mountReq builds a MountRequest as the driver does: class parameters
// overlaid with the pod's volume context.
func mountReq(params map[string]string, secrets map[string]string, pd pod) *v1alpha1.MountRequest {
	a := map[string]string{
		"secretProviderClass":                    "test-secrets",
		"csi.storage.k8s.io/pod.name":            pd.name,
		"csi.storage.k8s.io/pod.namespace":       pd.namespace,
		"csi.storage.k8s.io/pod.uid":             pd.uid,
		"csi.storage.k8s.io/serviceAccount.name": pd.serviceAccount,
		"csi.storage.k8s.io/ephemeral":           "true",
	}
	for k, v := range params {
		a[k] = v
	}
	ab, _ := json.Marshal(a)
	sb := []byte("null")
	if secrets != nil {
		sb, _ = json.Marshal(secrets)
	}
	return &v1alpha1.MountRequest{Attributes: string(ab), Secrets: string(sb), TargetPath: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount", Permission: "420"}
}

func (p *provider) mount(ctx context.Context, params, secrets map[string]string) (*v1alpha1.MountResponse, error) {
	return p.mountAs(ctx, defaultPod, params, secrets)
}

// mountAs calls Mount for a pod and checks that an error leaks nothing.
func (p *provider) mountAs(ctx context.Context, pd pod, params, secrets map[string]string) (*v1alpha1.MountResponse, error) {
	resp, err := p.client.Mount(ctx, mountReq(params, secrets, pd))
	if err != nil {
		if l := leaks(err.Error()); len(l) > 0 {
			p.t.Errorf("Mount error leaks %d sensitive values (%v)", len(l), l)
		}
	}
	return resp, err
}

func (p *provider) mountOK(t testing.TB, params, secrets map[string]string) *v1alpha1.MountResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := p.mount(ctx, params, secrets)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	return resp
}

// written is a file as the driver's writer left it.
type written struct {
	data []byte
	mode fs.FileMode
}

// writeLikeDriver writes resp with the driver's WritePayloads into a fresh
// directory and reads back every user-visible file.
func writeLikeDriver(t testing.TB, resp *v1alpha1.MountResponse) map[string]written {
	t.Helper()
	dir := t.TempDir()
	return writeInto(t, dir, resp)
}

func writeInto(t testing.TB, dir string, resp *v1alpha1.MountResponse) map[string]written {
	t.Helper()
	if err := fileutil.WritePayloads(dir, resp.GetFiles()); err != nil {
		t.Fatalf("the driver's writer refused the response: %v", err)
	}
	files, err := fileutil.GetMountedFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]written{}
	for rel, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = written{b, fi.Mode().Perm()}
	}
	return out
}

func versions(resp *v1alpha1.MountResponse) map[string]string {
	m := map[string]string{}
	for _, v := range resp.GetObjectVersion() {
		m[v.Id] = v.Version
	}
	return m
}

func objects(lines ...string) map[string]string {
	return map[string]string{"objects": strings.Join(lines, "\n") + "\n"}
}
