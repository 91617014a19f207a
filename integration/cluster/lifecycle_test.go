package cluster

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

const providerSelector = "app.kubernetes.io/name=csi-secrets-store-provider-alibabacloud"

// providerPod returns the running provider pod of the node.
func (s *suite) providerPod(ctx context.Context) (*corev1.Pod, error) {
	l, err := s.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: providerSelector})
	if err != nil {
		return nil, err
	}
	for i := range l.Items {
		p := &l.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return p, nil
			}
		}
	}
	return nil, errors.New("no ready provider pod")
}

// testProviderRestart deletes the provider pod while pods mount: the
// DaemonSet brings a new one up, the new one takes over the socket, and the
// waiting mounts succeed as soon as it serves (kubelet retries them).
func testProviderRestart(t *testing.T) {
	ns := s.namespace(t)
	param := "restart-param"
	if _, err := s.emu.PutParameter(param, "during-restart"); err != nil {
		t.Fatal(err)
	}
	s.applyYAML(t, ns, classWith("restart", "", param))
	ctx := context.Background()
	old, err := s.providerPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := s.kube.CoreV1().Pods(releaseNS).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := []string{"during-restart-0", "during-restart-1", "during-restart-2"}
	for _, p := range pods {
		s.pod(t, ns, podSpec{name: p, class: "restart"})
	}
	var ready time.Time
	err = poll(3*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := s.providerPod(ctx)
		if err != nil || p.UID == old.UID {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		ready = time.Now()
		return true, nil
	})
	if err != nil {
		s.dumpNamespace(t, releaseNS)
		t.Fatalf("no new provider pod became ready: %v", err)
	}
	t.Logf("provider pod replaced and ready %s after the delete", ready.Sub(deleted).Round(time.Second))
	for _, p := range pods {
		s.waitRunning(t, ns, p, 3*time.Minute)
		running := time.Now()
		// kubelet retries a failed mount with a backoff that doubles from
		// 0.5 s; a mount that failed only while no provider served is
		// retried within about the time it had been failing.
		if lag := running.Sub(ready); lag > ready.Sub(deleted)+30*time.Second {
			t.Errorf("pod %s ran %s after the new provider was ready: its mount kept failing after the restart", p, lag.Round(time.Second))
		}
		if got := s.readFile(t, ns, p, "/mnt/secrets-store/"+param); got != "during-restart" {
			t.Errorf("%s: %s = %q", p, param, got)
		}
	}

	// Exactly one socket, and it is the new provider's.
	entries, err := os.ReadDir(providerDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "alibabacloud.sock" {
		t.Errorf("%s holds %v, want only alibabacloud.sock", providerDir, names)
	}
	if v, err := providerVersion(filepath.Join(providerDir, "alibabacloud.sock")); err != nil {
		t.Errorf("the socket after the restart: %v", err)
	} else {
		t.Logf("socket answers Version: %s %s", v.RuntimeName, v.RuntimeVersion)
	}
}

func providerVersion(sock string) (*v1alpha1.VersionResponse, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return v1alpha1.NewCSIDriverProviderClient(conn).Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

// testFUSEAndUninstall turns the FUSE view on through the chart
// (examples/values-fuse.yaml): the guide's class appears on the host at the
// mountpoint, read-only, through the provider's Bidirectional mount. Then
// `helm uninstall` leaves no mount and no socket behind.
func testFUSEAndUninstall(t *testing.T) {
	const mountpoint = "/var/run/csi-secrets-store-provider-alibabacloud/fuse"
	s.install(t, s.repoFile("examples/values-worker-role.yaml"), s.repoFile("examples/values-fuse.yaml"))
	file := filepath.Join(mountpoint, "test-secrets", guideParameter)
	var got []byte
	err := poll(time.Minute, func(context.Context) (bool, error) {
		var err error
		got, err = os.ReadFile(file)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("%s is not readable on the host: mounts there: %v", file, mountsUnder(mountpoint))
	}
	if string(got) != guideValue {
		t.Errorf("%s = %q, want %q", file, got, guideValue)
	}
	if err := os.WriteFile(file, []byte("x"), 0o600); err == nil {
		t.Errorf("writing %s succeeded: the view must be read-only", file)
	}
	if err := os.WriteFile(filepath.Join(mountpoint, "test-secrets", "new"), []byte("x"), 0o600); err == nil {
		t.Errorf("creating a file in the view succeeded: the view must be read-only")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if out, err := s.helm(ctx, "uninstall", release, "--namespace", releaseNS, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	err = poll(2*time.Minute, func(ctx context.Context) (bool, error) {
		l, err := s.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: providerSelector})
		return err == nil && len(l.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("provider pods still there after helm uninstall: %v", err)
	}
	// The container is gone; its mount namespace and shutdown are done.
	err = poll(time.Minute, func(context.Context) (bool, error) {
		return len(mountsUnder(mountpoint)) == 0, nil
	})
	if err != nil {
		t.Errorf("still mounted after helm uninstall: %v", mountsUnder(mountpoint))
	}
	if _, err := os.Lstat(filepath.Join(providerDir, "alibabacloud.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the provider socket is still there after helm uninstall (%v)", err)
	}
}
