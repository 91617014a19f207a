package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"
	"google.golang.org/grpc"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
)

// /readyz reads the credential check's last result: probes never run the
// check (which may call ECS metadata or STS); the background loop does, at
// its own pace, and stops when told.
func TestCredentialsCheckedOffTheProbePath(t *testing.T) {
	var calls atomic.Int32
	fail := atomic.Bool{}
	fail.Store(true)
	c := &Credentials{
		check: func(context.Context) (string, error) {
			calls.Add(1)
			if fail.Load() {
				return "", errors.New("metadata unreachable")
			}
			return "worker RAM role", nil
		},
		okEvery: time.Hour, failEvery: 50 * time.Millisecond,
		checked: make(chan struct{}),
	}
	var firstErr error
	c.first = func(_ string, err error) { firstErr = err }

	// Before the first check, a probe waits for it only until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if _, err := c.Result(ctx); err == nil {
		t.Fatal("a result before any check")
	}
	cancel()

	stop := c.Start()
	for range 100 {
		if _, err := c.Result(context.Background()); err == nil {
			t.Fatal("ready while the check fails")
		}
	}
	if firstErr == nil {
		t.Error("the first result was not reported")
	}
	if n := calls.Load(); n > 3 {
		t.Errorf("100 probes ran the check %d times", n)
	}
	fail.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d, err := c.Result(context.Background()); err == nil && d == "worker RAM role" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the check never saw the credentials recover")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	n := calls.Load()
	time.Sleep(120 * time.Millisecond)
	if calls.Load() != n {
		t.Error("checks went on after stop")
	}
}

type baseResolver struct {
	id  *auth.Identity
	err error
}

func (b baseResolver) Base(context.Context) (*auth.Identity, error) { return b.id, b.err }

type failingProvider struct{}

func (failingProvider) GetCredentials() (*providers.Credentials, error) {
	return nil, errors.New("metadata: connection refused")
}
func (failingProvider) GetProviderName() string { return "ecs_ram_role" }

// CheckCredentials: a usable key is described without its secret; the
// worker RAM role nothing configured falls back to, unreadable, is "no
// credentials" with every way to configure them; another failure names the
// identity.
func TestCheckCredentials(t *testing.T) {
	static, err := auth.StaticAccessKey(auth.ModeEnvAccessKey, "LTAI5tTestKeyId", "the-secret", "", "env")
	if err != nil {
		t.Fatal(err)
	}
	d, err := CheckCredentials(context.Background(), baseResolver{id: static}, time.Second)
	if err != nil || !strings.Contains(d, "env-access-key") || strings.Contains(d, "the-secret") {
		t.Fatalf("static key: %q %v", d, err)
	}
	fallback := &auth.Identity{Mode: auth.ModeECSRAMRole, Credential: credentials.FromCredentialsProvider("ecs_ram_role", failingProvider{})}
	_, err = CheckCredentials(context.Background(), baseResolver{id: fallback}, time.Second)
	var nc NoCredentialsError
	if !errors.As(err, &nc) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), HowToConfigure) {
		t.Fatalf("worker RAM role unreadable: %v", err)
	}
	role := &auth.Identity{Mode: auth.ModeRRSA, Principal: "acs:ram::1:role/r", Credential: credentials.FromCredentialsProvider("oidc", failingProvider{})}
	_, err = CheckCredentials(context.Background(), baseResolver{id: role}, time.Second)
	if err == nil || errors.As(err, &nc) || !strings.HasPrefix(err.Error(), "rrsa acs:ram::1:role/r: ") {
		t.Fatalf("RRSA failing: %v", err)
	}
	want := errors.New("denied")
	if _, err := CheckCredentials(context.Background(), baseResolver{err: want}, time.Second); !errors.Is(err, want) {
		t.Fatalf("Base failing: %v", err)
	}
}

// checkedCredentials is a Credentials whose first check is done.
func checkedCredentials(detail string, err error) *Credentials {
	c := &Credentials{checked: make(chan struct{}), detail: detail, err: err}
	close(c.checked)
	return c
}

type fakeView struct{ err error }

func (v *fakeView) Check() error       { return v.err }
func (v *fakeView) Mountpoint() string { return "/mnt/view" }

func probe(t *testing.T, h http.HandlerFunc) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h(w, httptest.NewRequest(http.MethodGet, "/", nil))
	return w.Code, w.Body.String()
}

// serveVersion serves Version on a unix socket, as serve's provider socket.
func serveVersion(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "health-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(g, &csi.Server{RuntimeVersion: "1.2.3"})
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return sock
}

// serve's probes: liveness is the socket file and the view; readiness
// also calls Version on the socket and reads the credentials (not checked
// with --deny-provider-identity); a pass is kept for cacheFor, a failure
// is not.
func TestSocketProbes(t *testing.T) {
	missing := NewSocket(filepath.Join(t.TempDir(), "none.sock"), nil, false)
	if code, body := probe(t, missing.Healthz); code != 503 || !strings.Contains(body, "socket: FAIL") || !strings.Contains(body, "none.sock is missing") {
		t.Errorf("no socket: healthz %d %q", code, body)
	}
	if code, body := probe(t, missing.Readyz); code != 503 || !strings.Contains(body, "socket: FAIL") {
		t.Errorf("no socket: readyz %d %q", code, body)
	}

	sock := serveVersion(t)
	denied := NewSocket(sock, nil, false)
	code, body := probe(t, denied.Readyz)
	if code != 200 || !strings.Contains(body, "socket: ok ("+sock+" answers Version 1.2.3") ||
		!strings.Contains(body, "credentials: ok (not checked: --deny-provider-identity") {
		t.Errorf("deny-provider-identity: readyz %d %q", code, body)
	}

	cred := checkedCredentials("", errors.New("no key"))
	h := NewSocket(sock, cred, true)
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	if code, body := probe(t, h.Readyz); code != 503 || !strings.Contains(body, "credentials: FAIL: no key") {
		t.Errorf("failing credentials: readyz %d %q", code, body)
	}
	cred.detail, cred.err = "env-access-key LTAI****yId", nil
	view := &fakeView{}
	h.View = view
	if code, body := probe(t, h.Readyz); code != 200 || !strings.Contains(body, "credentials: ok (env-access-key") || !strings.Contains(body, "view: ok (/mnt/view)") {
		t.Errorf("ready: readyz %d %q", code, body)
	}
	view.err = errors.New("not mounted")
	if code, _ := probe(t, h.Readyz); code != 200 {
		t.Errorf("within cacheFor a pass is kept: readyz %d", code)
	}
	now = now.Add(h.cacheFor)
	if code, body := probe(t, h.Readyz); code != 503 || !strings.Contains(body, "view: FAIL: not mounted") {
		t.Errorf("after cacheFor: readyz %d %q", code, body)
	}
	if code, body := probe(t, h.Healthz); code != 503 || !strings.Contains(body, "view: FAIL: not mounted") {
		t.Errorf("view gone: healthz %d %q", code, body)
	}
	view.err = nil
	if code, body := probe(t, h.Healthz); code != 200 || body != "ok\n" {
		t.Errorf("healthz %d %q", code, body)
	}
}

// mount's probes: the view, and for readiness the credentials too.
func TestViewProbes(t *testing.T) {
	view := &fakeView{}
	h := &View{View: view, Cred: checkedCredentials("env-access-key LTAI****yId", nil)}
	if code, body := probe(t, h.Readyz); code != 200 || body != "view: ok (/mnt/view)\ncredentials: ok (env-access-key LTAI****yId)\n" {
		t.Errorf("readyz %d %q", code, body)
	}
	h.Cred = checkedCredentials("", errors.New("no key"))
	if code, body := probe(t, h.Readyz); code != 503 || !strings.Contains(body, "credentials: FAIL: no key") {
		t.Errorf("failing credentials: readyz %d %q", code, body)
	}
	view.err = errors.New("not mounted")
	if code, body := probe(t, h.Healthz); code != 503 || body != "view: FAIL: not mounted\n" {
		t.Errorf("healthz %d %q", code, body)
	}
}

// Listen binds both listeners before anything serves: a clash names the
// flag; an empty address disables an endpoint; one address serves both.
func TestEndpoints(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	if _, err := Listen("127.0.0.1:0", busy.Addr().String()); err == nil || !strings.Contains(err.Error(), "--health-addr "+busy.Addr().String()) {
		t.Fatalf("clash: %v", err)
	}
	if _, err := Listen(busy.Addr().String(), ""); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("clash: %v", err)
	}

	off, err := Listen("", "")
	if err != nil || off.MetricsAddr != "" || off.HealthAddr != "" {
		t.Fatalf("disabled: %+v %v", off, err)
	}
	off.Shutdown()

	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	_ = free.Close()
	e, err := Listen(addr, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	if e.MetricsAddr != addr || e.HealthAddr != addr {
		t.Fatalf("shared: %+v", e)
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metric 1\n") })
	e.Serve(metrics, &View{View: &fakeView{}, Cred: checkedCredentials("k", nil)})
	for path, want := range map[string]string{"/metrics": "metric 1\n", "/healthz": "ok\n"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: %q, want %q", path, b, want)
		}
	}
}
