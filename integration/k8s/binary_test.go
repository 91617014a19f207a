package k8s

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/testbin"
)

// providerBinary builds the provider from the repository once per test run:
// static and stamped like the Dockerfile, but without -trimpath so the build
// reuses the objects the root module's tests already compiled (the image
// test, hack/image/test.sh, builds with the Dockerfile's exact flags).
func providerBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot(t), testbin.Cmd)); err != nil {
		skipOrFail(t, "%s does not exist yet: the chart's DaemonSet cannot be checked against the binary", testbin.Cmd)
	}
	bin, err := testbin.Provider(testbin.Options{
		LDFlags: "-s -w -X main.version=v0.0.0-chart-test -X main.commit=chart-test",
		Static:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestMain removes the binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// TestBinaryRunsChartDaemonSet renders the chart for each credential mode with
// every provider option set, and runs the binary with the provider
// container's exact args and env. Only what Kubernetes would provide is
// replaced: host paths and volumes become temporary directories filled from
// the rendered objects, ports move to loopback, Secret keys get dummy values.
// It then checks what the driver and kubelet rely on: the socket and its
// mode, the gRPC Version call the driver makes, the probes, the metrics,
// a restart over a stale socket, and a clean SIGTERM.
//
// With fuse.enabled the same process also serves the FUSE view. The host's
// real /dev/fuse is used (as the chart's CharDevice hostPath would give it):
// when this process may mount (root with CAP_SYS_ADMIN and a usable
// /dev/fuse), the view must be mounted on the mountpoint, be reported by the
// probes, survive a SIGKILL (the restart detaches the dead mount) and be
// unmounted on SIGTERM. When it may not, serve must refuse to start, saying
// why, and the rest of that case is skipped, not passed.
func TestBinaryRunsChartDaemonSet(t *testing.T) {
	bin := providerBinary(t)
	chart := chartCopy(t)
	caFile := writeTestCA(t)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, policyFile, "rules:\n  - namespace: default\n    serviceAccount: \"*\"\n    oos: [\"test\"]\n    kms: [\"db-*\"]\n", 0o644)
	common := []string{
		"--set", "regionId=cn-hangzhou",
		"--set", "endpoints.kms=kms-vpc.cn-hangzhou.aliyuncs.com",
		"--set", "endpoints.oos=oos-vpc.cn-hangzhou.aliyuncs.com",
		"--set", "endpoints.sts=sts-vpc.cn-hangzhou.aliyuncs.com",
		"--set", "allowedKmsEndpoints={kst-*.cryptoservice.kms.aliyuncs.com}",
		"--set-file", "kmsCACert=" + caFile,
		"--set-file", "policy=" + policyFile,
		"--set", "cache.maxStale=30m",
		"--set", "throttle.maxConcurrentFetches=8",
		"--set", "throttle.kms.qps=10", "--set", "throttle.kms.burst=20",
		"--set", "throttle.oos.qps=5.5", "--set", "throttle.oos.burst=10",
		"--set", "logFormat=json", "--set", "logVerbosity=2",
		"--set", "secrets-store-csi-driver.install=false",
	}
	for _, mode := range []struct {
		name   string
		values []string
		files  []string // values files in testdata/, after values
		sets   []string
		// ready: /readyz must answer 200. It also checks the provider's own
		// credentials, which need ECS metadata or STS (not reachable
		// here), so only the mode without a provider identity can be ready;
		// the others must answer it (with 503).
		ready bool
		fuse  bool
	}{
		{name: "worker-role", values: []string{"values-worker-role.yaml"}},
		{name: "rrsa", values: []string{"values-rrsa.yaml"}},
		{name: "accesskey-role", values: []string{"values-accesskey-role.yaml"}},
		{name: "accesskey-role+pod-rrsa", values: []string{"values-accesskey-role.yaml", "values-pod-rrsa.yaml"}},
		// The incumbent chart's values file: RRSA with the OIDC provider
		// from rrsa.accountId/clusterId, health on its healthzPort (8989).
		{name: "incumbent-values", files: []string{"incumbent-values.yaml"}},
		{
			name: "pod-rrsa+deny", values: []string{"values-pod-rrsa.yaml"},
			sets: []string{"denyProviderIdentity=true"}, ready: true,
		},
		{
			name: "worker-role+fuse", values: []string{"values-worker-role.yaml", "values-fuse.yaml"},
			sets: []string{
				"fuse.uid=0", "fuse.gid=0", "fuse.allowOther=true", "fuse.noOpen=true",
				"fuse.lookupTimeout=2s", "fuse.kernelCacheTimeout=1m", "fuse.shutdownGrace=1s",
			},
			fuse: true,
		},
	} {
		t.Run(mode.name, func(t *testing.T) {
			args := append([]string{"template", releaseName, chart, "--namespace", namespace,
				"--kube-version", kubeVersions[len(kubeVersions)-1]}, valuesArgs(t, mode.values, nil)...)
			for _, f := range mode.files {
				args = append(args, "-f", filepath.Join("testdata", f))
			}
			args = append(args, valuesArgs(t, nil, mode.sets)...)
			out, err := runHelm(t, append(args, common...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs := decodeAll(t, mode.name, out)
			ds := find[*appsv1.DaemonSet](objs)[releaseName]
			if ds == nil {
				t.Fatal("no provider DaemonSet")
			}
			p := newPodSim(t, ds, find[*corev1.ConfigMap](objs))
			p.needReady = mode.ready
			if (p.fuseMountpoint != "") != mode.fuse {
				t.Fatalf("--fuse-mountpoint in the provider args: %v, want %v", p.fuseMountpoint != "", mode.fuse)
			}
			if mode.fuse {
				if ok, why := fuseUsable(); !ok {
					p.start(bin)
					code := p.wait(15 * time.Second)
					// docs/fuse.md: exit 1, saying which and how to fix it.
					if code != 1 || !regexp.MustCompile(`/dev/fuse|CAP_SYS_ADMIN`).Match(p.logs.Bytes()) {
						t.Fatalf("this process cannot mount (%s): serve with --fuse-mountpoint exited %d, want 1 and the reason:\n%s", why, code, p.logs.String())
					}
					t.Skipf("serve refused the view as it should (%s); mounting it needs root with CAP_SYS_ADMIN and /dev/fuse", why)
				}
			}
			p.start(bin)
			p.waitHealthy()
			p.checkSocket()
			p.checkMetrics()
			p.checkView()

			// A crash leaves the socket (and a dead FUSE mount) behind on the
			// hostPath; the restarted container must replace them.
			p.kill(syscall.SIGKILL)
			if _, err := os.Lstat(p.socket); err != nil {
				t.Logf("the socket was gone after SIGKILL (%v); restart is still checked", err)
			}
			p.start(bin)
			p.waitHealthy()
			p.checkSocket()
			p.checkView()

			if code := p.kill(syscall.SIGTERM); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p.logs.String())
			}
			if p.fuseMountpoint != "" {
				if n := len(fuseMounts(t, p.fuseMountpoint)); n != 0 {
					t.Errorf("%d FUSE mounts left on %s after SIGTERM, want 0\n%s", n, p.fuseMountpoint, p.logs.String())
				}
			}
		})
	}
}

// TestBinaryAcceptsChartFlags checks every flag any chart option can produce
// against the flags `serve` declares (its -h output), including the ones the
// run above cannot exercise without real files (--policy), and the --fuse-*
// flags of the view, which serve mounts in its own process.
func TestBinaryAcceptsChartFlags(t *testing.T) {
	bin := providerBinary(t)
	chart := chartCopy(t)
	out, err := runHelm(t, "template", releaseName, chart, "--namespace", namespace,
		"--kube-version", kubeVersions[len(kubeVersions)-1],
		"-f", filepath.Join(repoRoot(t), "examples", "values-fuse.yaml"),
		"--set", "secrets-store-csi-driver.install=false",
		"--set", "regionId=cn-hangzhou", "--set", "policy=x",
		"--set", "kmsCACert=x", "--set", "cache.ttl=1m", "--set", "cache.maxStale=1h",
		"--set", "endpoints.kms=a", "--set", "endpoints.oos=b", "--set", "endpoints.sts=c",
		"--set", "allowedKmsEndpoints={d}", "--set", "throttle.maxConcurrentFetches=1",
		"--set", "throttle.kms.qps=1", "--set", "throttle.kms.burst=1",
		"--set", "throttle.oos.qps=1", "--set", "throttle.oos.burst=1",
		"--set", "fuse.uid=1", "--set", "fuse.gid=1", "--set", "fuse.allowOther=true",
		"--set", "fuse.noOpen=true", "--set", "fuse.lookupTimeout=1s",
		"--set", "fuse.kernelCacheTimeout=1m", "--set", "fuse.shutdownGrace=1s",
		"--set", "events.enable=true",
		// denyProviderIdentity excludes the view; its flag is run for real
		// by the "pod-rrsa+deny" case above.
		"--set", "extraArgs={--metrics-object-labels}")
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeAll(t, "all options", out)
	dss := find[*appsv1.DaemonSet](objs)
	if len(dss) != 1 {
		t.Errorf("%d DaemonSets, want only the provider's (the view runs in it)", len(dss))
	}
	ds, ok := dss[releaseName]
	if !ok {
		t.Fatalf("no DaemonSet %s", releaseName)
	}
	c := container(t, ds.Spec.Template.Spec, "provider")
	sub := c.Args[0]
	help, _ := exec.Command(bin, sub, "-h").CombinedOutput()
	fuseFlags := 0
	for _, a := range c.Args[1:] {
		flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(flag, "fuse-") {
			fuseFlags++
		}
		// The flag's own help line: "  -name type" or "  -name" alone (a
		// boolean), so that -fuse-uid does not pass for -fuse-uid-map.
		if !regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(flag) + `(\s|$)`).Match(help) {
			t.Errorf("`%s %s` does not declare -%s (from %q); its help:\n%s", filepath.Base(bin), sub, flag, a, help)
		}
	}
	// mountpoint, one class, uid, gid, allow-other, no-open, three durations.
	if fuseFlags != 9 {
		t.Errorf("%d --fuse-* args, want 9 (every fuse option set): %q", fuseFlags, c.Args)
	}
}

// podSim runs the provider container of a DaemonSet as a local process.
type podSim struct {
	t        *testing.T
	c        corev1.Container
	dir      string            // stands in for the node and the pod's volumes
	paths    map[string]string // container mountPath -> local directory
	ports    map[string]string // container port name -> loopback host:port
	args     []string
	env      []string
	socket   string
	cmd      *exec.Cmd
	done     chan struct{}
	exitCode int
	logs     *bytes.Buffer
	// needReady: wait for /readyz 200, not just an answer.
	needReady bool
	// fuseMountpoint: the local stand-in of --fuse-mountpoint; "" without
	// the view. fuseClasses: metadata.name of each --fuse-class.
	fuseMountpoint string
	fuseClasses    []string
}

// Dummy values for the Secret keys the example values read.
var secretValues = map[string]string{
	"id":              "LTAI0000000000000000test",
	"secret":          "not-a-real-secret",
	"rolearn":         "acs:ram::123456789012:role/csi-secrets-store-provider",
	"oidcproviderarn": "acs:ram::123456789012:oidc-provider/ack-rrsa-c0123456789abcdef",
}

func newPodSim(t *testing.T, ds *appsv1.DaemonSet, configMaps map[string]*corev1.ConfigMap) *podSim {
	pod := ds.Spec.Template.Spec
	p := &podSim{t: t, c: container(t, pod, "provider"), paths: map[string]string{}, ports: map[string]string{}}
	// Short: the socket path must stay under the 108-byte unix limit.
	dir, err := os.MkdirTemp("", "csspa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.dir = dir

	for _, m := range p.c.VolumeMounts {
		v := volume(t, pod, m.Name)
		if v.HostPath != nil && v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathCharDev {
			// A device of the host (/dev/fuse): the process uses the real one.
			if m.MountPath != v.HostPath.Path {
				t.Fatalf("device %s is mounted at %s; the binary opens it at its host path", v.HostPath.Path, m.MountPath)
			}
			continue
		}
		local := filepath.Join(dir, m.Name)
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		if v.HostPath != nil && os.Geteuid() == 0 {
			// In a container every volume is a bind mount, a mount point of
			// its own: the binary must cope (e.g. never mount the FUSE view
			// on the volume itself). Found by the cluster suite.
			if err := syscall.Mount(local, local, "", syscall.MS_BIND, ""); err != nil {
				t.Fatalf("bind mount of volume %s: %v", m.Name, err)
			}
			// Private: in one mount namespace a shared bind mount would
			// show every mount under it twice (the host's / may be shared).
			if err := syscall.Mount("", local, "", syscall.MS_PRIVATE, ""); err != nil {
				t.Fatalf("make volume %s private: %v", m.Name, err)
			}
			t.Cleanup(func() { _ = syscall.Unmount(local, syscall.MNT_DETACH) })
		}
		p.paths[m.MountPath] = local
		switch {
		case v.ConfigMap != nil:
			cm := configMaps[v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
			}
			for k, val := range cm.Data {
				writeFile(t, filepath.Join(local, k), val, 0o644)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					writeFile(t, filepath.Join(local, src.ServiceAccountToken.Path), "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzdHMuYWxpeXVuY3MuY29tIn0.c2ln", 0o400)
				}
			}
		}
	}
	for _, port := range p.c.Ports {
		p.ports[port.Name] = freeAddr(t)
	}

	for _, a := range p.c.Args {
		k, v, hasValue := strings.Cut(a, "=")
		switch {
		case !hasValue:
		case k == "--metrics-addr" || k == "--health-addr":
			a = k + "=" + p.portFor(v)
		default:
			a = k + "=" + p.localPath(v)
		}
		p.args = append(p.args, a)
	}
	pv := flags(p.args)["--provider-volume"]
	if pv == "" {
		t.Fatal("no --provider-volume")
	}
	p.socket = filepath.Join(pv, socketName)
	for _, a := range p.args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "--fuse-mountpoint":
			if !strings.HasPrefix(v, dir+"/") {
				t.Fatalf("--fuse-mountpoint=%s is not a volume of the pod", v)
			}
			p.fuseMountpoint = v
		case "--fuse-class":
			raw, err := os.ReadFile(v)
			if err != nil {
				t.Fatalf("--fuse-class: %v", err)
			}
			var meta struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			if err := yaml.Unmarshal(raw, &meta); err != nil || meta.Metadata.Name == "" {
				t.Fatalf("--fuse-class=%s: no metadata.name (%v)", v, err)
			}
			p.fuseClasses = append(p.fuseClasses, meta.Metadata.Name)
		}
	}
	if p.fuseMountpoint != "" {
		// Whatever happens to the test, leave no mount behind in /tmp.
		mp := p.fuseMountpoint
		t.Cleanup(func() {
			for range fuseMounts(t, mp) {
				_ = syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		})
	}

	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// Only what the container would have: no credentials of the host leak in.
	p.env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "TMPDIR=" + p.localPath("/tmp")}
	for _, e := range p.c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			val, ok := secretValues[e.ValueFrom.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("env %s reads key %q, which the examples' Secrets do not have", e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			p.env = append(p.env, e.Name+"="+val)
		case e.ValueFrom == nil:
			p.env = append(p.env, e.Name+"="+p.localPath(e.Value))
		default:
			t.Fatalf("env %s: unsupported source", e.Name)
		}
	}
	return p
}

// localPath maps a path inside the container to the local stand-in.
func (p *podSim) localPath(v string) string {
	for mp, local := range p.paths {
		if v == mp || strings.HasPrefix(v, mp+"/") {
			return local + strings.TrimPrefix(v, mp)
		}
	}
	return v
}

// portFor maps ":<containerPort>" to the loopback address of that port.
func (p *podSim) portFor(addr string) string {
	for _, port := range p.c.Ports {
		if addr == fmt.Sprintf(":%d", port.ContainerPort) {
			return p.ports[port.Name]
		}
	}
	p.t.Fatalf("address %s is not a declared container port", addr)
	return ""
}

func (p *podSim) start(bin string) {
	p.t.Helper()
	p.logs = &bytes.Buffer{}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	cmd, done := p.cmd, p.done
	go func() {
		_ = cmd.Wait()
		p.exitCode = cmd.ProcessState.ExitCode()
		close(done)
	}()
	p.t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// wait waits for the process to exit by itself and returns its exit code.
func (p *podSim) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.exitCode
	case <-time.After(d):
		p.t.Fatalf("still running after %v\n%s", d, p.logs.String())
		return -1
	}
}

func (p *podSim) kill(sig syscall.Signal) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.exitCode
	case <-time.After(15 * time.Second):
		p.t.Fatalf("still running 15s after %v\n%s", sig, p.logs.String())
		return -1
	}
}

// waitHealthy waits until the socket accepts connections, the liveness probe
// as the chart declares it answers 200, and the readiness probe answers (200
// when needReady).
func (p *podSim) waitHealthy() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("provider exited with code %d before it was ready; args %q\n%s", p.exitCode, p.args, p.logs.String())
		default:
		}
		last = ""
		// Dial, not stat: a stale socket from a killed process exists too.
		if c, err := net.DialTimeout("unix", p.socket, time.Second); err != nil {
			last = err.Error()
		} else {
			c.Close()
		}
		if last == "" {
			last = p.get(p.c.LivenessProbe.HTTPGet.Port.String(), p.c.LivenessProbe.HTTPGet.Path)
		}
		if last == "" {
			rp := p.c.ReadinessProbe.HTTPGet
			last = p.get(rp.Port.String(), rp.Path)
			if !p.needReady && strings.Contains(last, "503") {
				last = "" // answered; not ready without cloud credentials
			}
		}
		if last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("not healthy after 20s: %s; args %q\n%s", last, p.args, p.logs.String())
}

// get returns "" when GET path on the named port answers 200.
func (p *podSim) get(port, path string) string {
	msg, _ := p.getBody(port, path)
	return msg
}

// getBody is get that also returns the body.
func (p *podSim) getBody(port, path string) (string, string) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + p.ports[port] + path)
	if err != nil {
		return err.Error(), ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("GET %s: %s", path, resp.Status), string(body)
	}
	return "", string(body)
}

// checkView checks the FUSE view serve mounted, as a process on the node
// would see it: one live mount of the view on the mountpoint, a directory per
// class, a .status that reads (it fetches nothing), and the view's line in
// /readyz. Nothing without the view.
func (p *podSim) checkView() {
	p.t.Helper()
	if p.fuseMountpoint == "" {
		return
	}
	if n := len(fuseMounts(p.t, p.fuseMountpoint)); n != 1 {
		p.t.Fatalf("%d FUSE mounts of the view on %s, want 1\n%s", n, p.fuseMountpoint, p.logs.String())
	}
	entries, err := os.ReadDir(p.fuseMountpoint)
	if err != nil {
		p.t.Fatalf("listing the view: %v\n%s", err, p.logs.String())
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, slices.Sorted(slices.Values(p.fuseClasses))) {
		p.t.Errorf("the view lists %q, want the classes %q", names, p.fuseClasses)
	}
	for _, class := range p.fuseClasses {
		raw, err := os.ReadFile(filepath.Join(p.fuseMountpoint, class, ".status"))
		if err != nil {
			p.t.Errorf("reading %s/.status: %v", class, err)
			continue
		}
		if !json.Valid(raw) {
			p.t.Errorf("%s/.status is not JSON: %q", class, raw)
		}
	}
	rp := p.c.ReadinessProbe.HTTPGet
	_, body := p.getBody(rp.Port.String(), rp.Path)
	if !regexp.MustCompile(`(?m)^view: ok\b`).MatchString(body) {
		p.t.Errorf("%s does not report the view as ok:\n%s", rp.Path, body)
	}
}

// fuseMounts returns the lines of /proc/self/mountinfo that mount the view
// (type fuse.alibabacloud-secrets) on dir.
func fuseMounts(t testing.TB, dir string) []string {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		if fields[4] == dir && fields[sep+1] == "fuse.alibabacloud-secrets" {
			out = append(out, line)
		}
	}
	return out
}

// fuseUsable reports whether this process could mount a FUSE file system:
// /dev/fuse opens read-write and CAP_SYS_ADMIN is effective (what the
// chart's privileged container and CharDevice hostPath give the provider).
func fuseUsable() (bool, string) {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return false, err.Error()
	}
	f.Close()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err.Error()
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			if err != nil {
				return false, err.Error()
			}
			if caps&(1<<21) == 0 {
				return false, "no CAP_SYS_ADMIN"
			}
			return true, ""
		}
	}
	return false, "no CapEff in /proc/self/status"
}

// checkSocket checks the socket the way the driver uses it.
func (p *podSim) checkSocket() {
	p.t.Helper()
	fi, err := os.Lstat(p.socket)
	if err != nil {
		p.t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		p.t.Errorf("%s: mode %v, want a socket with 0600", p.socket, fi.Mode())
	}
	conn, err := grpc.NewClient("unix://"+p.socket, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := v1alpha1.NewCSIDriverProviderClient(conn).Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		p.t.Fatalf("Version over %s: %v\n%s", p.socket, err, p.logs.String())
	}
	if resp.RuntimeName == "" || resp.Version != "v1alpha1" {
		p.t.Errorf("Version answered %+v", resp)
	}
}

func (p *podSim) checkMetrics() {
	p.t.Helper()
	if msg := p.get("metrics", "/metrics"); msg != "" {
		p.t.Errorf("metrics port: %s", msg)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// writeTestCA writes a self-signed CA certificate (PEM) for kmsCACert.
func writeTestCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chart-test KMS instance CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	return path
}
