package integration

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func merge(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func netListenUnix(path string) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}

// runBinary runs the provider binary to completion (bounded) and returns its
// combined output.
func runBinary(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(providerBin, args...)
	cmd.Env = []string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true", "ACCESS_KEY_ID=LTAIx", "SECRET_ACCESS_KEY=y"}
	out, err, _ := runBounded(cmd, 30*time.Second)
	return out, err
}

// runBounded runs cmd to completion, killing it past limit; timedOut says
// whether it had to be killed.
func runBounded(cmd *exec.Cmd, limit time.Duration) (out string, err error, timedOut bool) {
	done := make(chan struct{})
	var b []byte
	go func() { b, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		timedOut = true
	}
	return string(b), err, timedOut
}

// The leak detector itself must be able to fail.
func TestLeakDetectorFindsValues(t *testing.T) {
	noteSensitive("canary-secret-value-123")
	if len(leaks(`level=INFO msg=x value="canary-secret-value-123"`)) != 1 {
		t.Fatal("leak detector missed a registered value")
	}
	if len(leaks("nothing here")) != 0 {
		t.Fatal("leak detector reports a clean string")
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// scrapeGauge reads one unlabelled sample from a Prometheus text endpoint.
func scrapeGauge(t testing.TB, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found at %s", name, addr)
	return 0
}

// The README's first command, as a newcomer runs it (one demo Mount, then exit).
func TestDevDemoMount(t *testing.T) {
	out, err := runBinary(t, "dev", "--once", "--no-fuse")
	if err != nil {
		t.Fatalf("dev --once: %v\n%s", err, out)
	}
	for _, want := range []string{"Demo Mount wrote 5 files", "db-username", "db-password", "tls_key.der", "test ", "version 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "testpassword") {
		t.Error("dev printed a secret value")
	}
}

// dev keeps serving and re-Mounting: a rotation made through the emulator's
// control API (as dev's "Try next" list shows) reaches the demo volume.
func TestDevPicksUpARotation(t *testing.T) {
	cmd := exec.Command(providerBin, "dev", "--remount-every", "300ms", "--cache-ttl", "1s", "--no-fuse")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	var url string
	deadline := time.Now().Add(20 * time.Second)
	for url == "" {
		if m := regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+`).FindString(out.String()); m != "" && strings.Contains(out.String(), "Serving until Ctrl-C") {
			url = m
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev never came up:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Post(url+"/_emulator/oos/parameters", "application/json", strings.NewReader(`{"name":"test","value":"rotated-by-test"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	for !strings.Contains(out.String(), "oos/test: version 1 -> 2") {
		if time.Now().After(deadline) {
			t.Fatalf("dev did not report the rotation:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
