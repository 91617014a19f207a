package driver

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// demoObjects asks for every kind of object the demo seed has: a JSON KMS
// secret with two keys extracted by jmesPath, a binary KMS secret, and the
// OOS parameter under an alias.
const demoObjects = `- objectName: demo-db
  jmesPath:
    - path: username
      objectAlias: db-user
    - path: password
      objectAlias: db-pass
- objectName: demo-tls-key
- objectName: test
  objectType: oos
  objectAlias: app-config.json
`

func demoFiles() map[string]string {
	return map[string]string{
		"demo-db":         emulator.DemoSecretJSONValue,
		"db-user":         "testuser",
		"db-pass":         "testpassword",
		"demo-tls-key":    string(emulator.DemoSecretBinaryValue),
		"app-config.json": emulator.DemoParameterValue,
	}
}

var demoVersions = []string{
	"kms/db-pass=v1", "kms/db-user=v1", "kms/demo-db=v1", "kms/demo-tls-key=v1", "oos/app-config.json=1",
}

// layout is what the driver left in a target path.
type layout struct {
	data    string                 // where ..data points
	tsDirs  []string               // the ..<timestamp> directories
	files   map[string]string      // user-visible name -> contents
	modes   map[string]fs.FileMode // user-visible name -> mode of the file it resolves to
	rootDir fs.FileMode            // mode of the target (the tmpfs root)
}

// readLayout reads a target path as a container would, and checks the
// projected-volume layout the driver's atomic writer promises: every
// top-level name is a symlink to ..data/<name>, ..data is a symlink to the
// one ..<timestamp> directory.
func readLayout(t testing.TB, target string) layout {
	t.Helper()
	l := layout{files: map[string]string{}, modes: map[string]fs.FileMode{}}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	l.rootDir = fi.Mode()
	entries, err := os.ReadDir(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(target, name)
		switch {
		case name == "..data":
			if e.Type()&fs.ModeSymlink == 0 {
				t.Fatalf("..data is %v, want a symlink", e.Type())
			}
			if l.data, err = os.Readlink(p); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(name, ".."):
			if !e.IsDir() {
				t.Errorf("%s is %v, want the timestamped payload directory", name, e.Type())
			}
			l.tsDirs = append(l.tsDirs, name)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s mode %v, want 0755", name, fi.Mode().Perm())
			}
		default:
			if e.Type()&fs.ModeSymlink == 0 {
				t.Errorf("%s is %v, want a symlink into ..data", name, e.Type())
				continue
			}
			link, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			if link != filepath.Join("..data", name) {
				t.Errorf("%s -> %s, want ..data/%s", name, link, name)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() {
				t.Errorf("%s resolves to %v, want a regular file", name, fi.Mode())
			}
			l.files[name] = string(b)
			l.modes[name] = fi.Mode()
		}
	}
	if l.data == "" || len(l.tsDirs) != 1 || l.data != l.tsDirs[0] {
		t.Errorf("..data -> %q with payload directories %v: want exactly one, the one ..data names", l.data, l.tsDirs)
	}
	return l
}

func checkFiles(t testing.TB, l layout, want map[string]string) {
	t.Helper()
	for name, w := range want {
		got, ok := l.files[name]
		if !ok {
			t.Errorf("missing file %s (have %v)", name, keys(l.files))
			continue
		}
		if got != w {
			t.Errorf("%s: %d bytes %q, want %d bytes %q", name, len(got), trunc(got), len(w), trunc(w))
		}
		// The driver asks for 0644 (MountRequest.permission "420") and
		// chmods every file to the mode the provider returns.
		if l.modes[name] != 0o644 {
			t.Errorf("%s: mode %v, want -rw-r--r--", name, l.modes[name])
		}
	}
	for name := range l.files {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected file %s", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func getSPCPS(t testing.TB, c client.Reader, pod podRef, spc string) *secretsstorev1.SecretProviderClassPodStatus {
	t.Helper()
	s := &secretsstorev1.SecretProviderClassPodStatus{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: pod.namespace, Name: spcpsName(pod.name, pod.namespace, spc)}, s); err != nil {
		t.Fatalf("SecretProviderClassPodStatus: %v", err)
	}
	return s
}

var defaultPod = podRef{name: "app-0", namespace: "default", uid: "3b0c1a52-6f7e-4a51-9d1e-2f0b6f1a7c01", serviceAccount: "default"}

// TestPublishAndUnpublish: one pod's volume from NodePublishVolume to
// NodeUnpublishVolume with rotation off (the driver's default).
func TestPublishAndUnpublish(t *testing.T) {
	needRoot(t)
	e := startEmulator(t)
	p := startProvider(t, e, time.Second)
	pod := defaultPod
	spc := newSPC("alibaba-secrets", pod.namespace, demoObjects)
	fc := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(spc, newPod(pod.name, pod.namespace, pod.uid, spc.Name)).Build()
	node := startDriver(t, p.dir, driverConfig{client: fc, interval: 2 * time.Minute})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)

	publish(t, node, req)

	if n := tmpfsMounts(t, target); n != 1 {
		t.Fatalf("%d tmpfs mounts on the target, want 1", n)
	}
	l := readLayout(t, target)
	checkFiles(t, l, demoFiles())
	// The driver mounts tmpfs without a mode option: the volume root is the
	// tmpfs default, world-writable and sticky, although the volume is
	// read-only for the pod (kubelet bind-mounts it read-only).
	if l.rootDir != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("target mode %v, want the tmpfs default drwxrwxrwt", l.rootDir)
	}
	// What the secretObjects sync reads: the same names, ..* skipped.
	mounted, err := fileutil.GetMountedFiles(target)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(mounted), keys(demoFiles()); !slices.Equal(got, want) {
		t.Errorf("GetMountedFiles = %v, want %v", got, want)
	}

	s := getSPCPS(t, fc, pod, spc.Name)
	if s.Labels[secretsstorev1.InternalNodeLabel] != nodeID {
		t.Errorf("SPCPS labels %v: want %s=%s", s.Labels, secretsstorev1.InternalNodeLabel, nodeID)
	}
	if !s.Status.Mounted || s.Status.PodName != pod.name || s.Status.TargetPath != target || s.Status.SecretProviderClassName != spc.Name {
		t.Errorf("SPCPS status %+v", s.Status)
	}
	if got := objectVersions(s); !slices.Equal(got, demoVersions) {
		t.Errorf("SPCPS objects %v, want %v", got, demoVersions)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Pod" || s.OwnerReferences[0].UID != types.UID(pod.uid) {
		t.Errorf("SPCPS owners %+v, want the pod", s.OwnerReferences)
	}
	if n := p.mounts(); n != 1 {
		t.Errorf("provider answered %d Mounts, want 1", n)
	}

	// Rotation off: a republish (kubelet sends them when the CSIDriver has
	// requiresRepublish) is skipped for a mounted path, even when upstream
	// changed; the provider is not asked.
	if _, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(`{"username":"u2","password":"p2"}`), false); err != nil {
		t.Fatal(err)
	}
	publish(t, node, req)
	if n := p.mounts(); n != 1 {
		t.Errorf("after a republish with rotation off the provider answered %d Mounts, want 1", n)
	}
	if l2 := readLayout(t, target); l2.data != l.data || l2.files["db-pass"] != "testpassword" {
		t.Errorf("rotation off: the files changed (..data %s -> %s)", l.data, l2.data)
	}
	if n := tmpfsMounts(t, target); n != 1 {
		t.Errorf("%d tmpfs mounts on the target after republish, want 1", n)
	}

	unpublish(t, node, req.VolumeId, target)
	if n := len(mountsUnder(t, target)); n != 0 {
		t.Errorf("%d mounts left on the target after NodeUnpublishVolume", n)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target after NodeUnpublishVolume: %v, want it removed", err)
	}
	// kubelet retries unpublish after a crash: a second one must succeed.
	unpublish(t, node, req.VolumeId, target)
}

// TestPublishFailure: a class naming a secret that does not exist fails the
// first publish with the provider's error, leaves no mount and no SPCPS,
// and the next publish (kubelet retries) succeeds once the secret exists.
func TestPublishFailure(t *testing.T) {
	needRoot(t)
	e := startEmulator(t)
	p := startProvider(t, e, time.Second)
	pod := defaultPod
	spc := newSPC("missing", pod.namespace, "- objectName: not-created-yet\n")
	fc := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(spc, newPod(pod.name, pod.namespace, pod.uid, spc.Name)).Build()
	node := startDriver(t, p.dir, driverConfig{client: fc, interval: 2 * time.Minute})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := node.NodePublishVolume(ctx, req)
	if err == nil {
		t.Fatal("NodePublishVolume succeeded for a missing secret")
	}
	// The driver wraps the provider's gRPC error; its message is what
	// `kubectl describe pod` shows in the FailedMount event.
	if !strings.Contains(err.Error(), "not-created-yet") || !strings.Contains(err.Error(), "failed to mount secrets store objects") {
		t.Errorf("error %q: want the driver's wrapping and the object's name", err)
	}
	if n := len(mountsUnder(t, target)); n != 0 {
		t.Errorf("%d mounts left on the target after a failed publish", n)
	}
	s := &secretsstorev1.SecretProviderClassPodStatus{}
	if err := fc.Get(ctx, client.ObjectKey{Namespace: pod.namespace, Name: spcpsName(pod.name, pod.namespace, spc.Name)}, s); !apierrors.IsNotFound(err) {
		t.Errorf("SPCPS after a failed publish: %v, want NotFound", err)
	}

	if _, err := e.PutSecretValue("not-created-yet", []byte("now-it-exists"), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the provider's --cache-ttl 1s
	publish(t, node, req)
	checkFiles(t, readLayout(t, target), map[string]string{"not-created-yet": "now-it-exists"})
	unpublish(t, node, req.VolumeId, target)
}

// TestRotation: with rotation on, a republish after the poll interval
// reaches the provider; new upstream versions reach the files (a new
// ..<timestamp> directory, ..data swapped) and the SPCPS, on the same tmpfs.
func TestRotation(t *testing.T) {
	needRoot(t)
	e := startEmulator(t)
	p := startProvider(t, e, time.Second)
	pod := defaultPod
	spc := newSPC("alibaba-secrets", pod.namespace, demoObjects)
	fc := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(spc, newPod(pod.name, pod.namespace, pod.uid, spc.Name)).Build()
	const interval = time.Second
	node := startDriver(t, p.dir, driverConfig{client: fc, rotation: true, interval: interval})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)

	publish(t, node, req)
	first := readLayout(t, target)
	checkFiles(t, first, demoFiles())

	// Within the interval (measured from the target's mtime) the driver
	// skips the call. On a machine too slow to send the republish within
	// the interval the check says nothing, so it is left out.
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	publish(t, node, req)
	if sent.Before(fi.ModTime().Add(interval)) {
		if n := p.mounts(); n != 1 {
			t.Errorf("republish within the interval: provider answered %d Mounts, want 1", n)
		}
	} else {
		t.Logf("republish sent %v after the mount: past the interval, skip check left out", sent.Sub(fi.ModTime()))
	}
	calls := p.mounts()

	rotatedDB := `{"username":"testuser","password":"rotated-password"}`
	if v, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(rotatedDB), false); err != nil || v != "v2" {
		t.Fatalf("PutSecretValue: %q, %v", v, err)
	}
	rotatedParam := `{"feature":"on"}`
	if v, err := e.PutParameter(emulator.DemoParameter, rotatedParam); err != nil || v != 2 {
		t.Fatalf("PutParameter: %d, %v", v, err)
	}
	// Past both the driver's interval and the provider's cache TTL.
	time.Sleep(interval + 200*time.Millisecond)
	publish(t, node, req)
	if n := p.mounts(); n != calls+1 {
		t.Errorf("republish after the interval: provider answered %d Mounts, want %d", n, calls+1)
	}

	second := readLayout(t, target)
	want := demoFiles()
	want["demo-db"] = rotatedDB
	want["db-pass"] = "rotated-password"
	want["app-config.json"] = rotatedParam
	checkFiles(t, second, want)
	if second.data == first.data {
		t.Errorf("..data still names %s after the rotation", first.data)
	}
	if _, err := os.Stat(filepath.Join(target, first.data)); !os.IsNotExist(err) {
		t.Errorf("the old payload directory %s: %v, want it removed", first.data, err)
	}
	if n := tmpfsMounts(t, target); n != 1 {
		t.Errorf("%d tmpfs mounts on the target after the rotation, want 1 (no stacking)", n)
	}
	wantVersions := []string{
		"kms/db-pass=v2", "kms/db-user=v2", "kms/demo-db=v2", "kms/demo-tls-key=v1", "oos/app-config.json=2",
	}
	if got := objectVersions(getSPCPS(t, fc, pod, spc.Name)); !slices.Equal(got, wantVersions) {
		t.Errorf("SPCPS objects after rotation %v, want %v", got, wantVersions)
	}

	unpublish(t, node, req.VolumeId, target)
	if n := len(mountsUnder(t, target)); n != 0 {
		t.Errorf("%d mounts left after NodeUnpublishVolume", n)
	}
}

// TestRepublishStablePayload pins a cost the driver v1.6 imposes: its atomic
// writer does not touch an unchanged payload, so the target's mtime (the
// clock of the rotation interval) stops moving, and once one interval has
// passed every kubelet republish reaches the provider. The provider's cache
// is what keeps those calls off KMS and OOS.
func TestRepublishStablePayload(t *testing.T) {
	needRoot(t)
	e := startEmulator(t)
	p := startProvider(t, e, time.Minute)
	pod := defaultPod
	spc := newSPC("alibaba-secrets", pod.namespace, demoObjects)
	fc := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(spc, newPod(pod.name, pod.namespace, pod.uid, spc.Name)).Build()
	const interval = 500 * time.Millisecond
	node := startDriver(t, p.dir, driverConfig{client: fc, rotation: true, interval: interval})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)

	publish(t, node, req)
	first := readLayout(t, target)
	kms, oos := e.Calls(emulator.RouteKMS), e.Calls(emulator.RouteOOS)
	if kms == 0 || oos == 0 {
		t.Fatalf("upstream calls after the first publish: kms=%d oos=%d", kms, oos)
	}

	time.Sleep(interval + 100*time.Millisecond)
	for range 3 {
		publish(t, node, req)
	}
	if n := p.mounts(); n != 4 {
		t.Errorf("provider answered %d Mounts, want 4: every republish after the interval reaches it", n)
	}
	if l := readLayout(t, target); l.data != first.data {
		t.Errorf("an unchanged payload was rewritten (..data %s -> %s)", first.data, l.data)
	}
	if k, o := e.Calls(emulator.RouteKMS), e.Calls(emulator.RouteOOS); k != kms || o != oos {
		t.Errorf("upstream calls grew from kms=%d oos=%d to kms=%d oos=%d within the provider's cache TTL", kms, oos, k, o)
	}
	unpublish(t, node, req.VolumeId, target)
}

// TestRemountErrorIsMasked: when a rotation remount fails, the driver v1.6
// answers kubelet with success and leaves the last good files in place
// (it masks the error until kubernetes/kubernetes#121271); the pod keeps
// running on the old content and nothing in the pod's events shows it.
func TestRemountErrorIsMasked(t *testing.T) {
	needRoot(t)
	e := startEmulator(t)
	p := startProvider(t, e, time.Second)
	pod := defaultPod
	spc := newSPC("alibaba-secrets", pod.namespace, demoObjects)
	fc := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(spc, newPod(pod.name, pod.namespace, pod.uid, spc.Name)).Build()
	const interval = 500 * time.Millisecond
	node := startDriver(t, p.dir, driverConfig{client: fc, rotation: true, interval: interval})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)

	publish(t, node, req)
	first := readLayout(t, target)

	// The class now names an object that does not exist: every Mount fails.
	cur := &secretsstorev1.SecretProviderClass{}
	if err := fc.Get(context.Background(), client.ObjectKeyFromObject(spc), cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Parameters["objects"] = demoObjects + "- objectName: no-such-secret\n"
	if err := fc.Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	time.Sleep(interval + 100*time.Millisecond)
	publish(t, node, req) // succeeds: the error is masked
	if n := p.mounts(); n != 2 {
		t.Errorf("provider answered %d Mounts, want 2 (the failing remount reached it)", n)
	}
	if !strings.Contains(p.logs.String(), "no-such-secret") {
		t.Error("the provider did not log the failing object")
	}
	l := readLayout(t, target)
	checkFiles(t, l, demoFiles())
	if l.data != first.data {
		t.Errorf("files rewritten after a failed remount (..data %s -> %s)", first.data, l.data)
	}
	if n := tmpfsMounts(t, target); n != 1 {
		t.Errorf("%d tmpfs mounts after a failed remount, want 1 (a remount failure must not unmount)", n)
	}
	unpublish(t, node, req.VolumeId, target)
}
