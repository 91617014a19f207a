package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// MountedView is the part of the FUSE view (*fs.Server) the probes check.
type MountedView interface {
	// Check says whether the view is still mounted and served.
	Check() error
	Mountpoint() string
}

// Socket answers serve's probes: /healthz (the process is alive, its
// socket exists and its view, if any, is mounted) and /readyz (the socket
// answers Version, the provider's own credentials resolve, the view is
// mounted). A passing /readyz is kept for 5s; failures are not.
type Socket struct {
	sock string
	cred *Credentials
	// ownIdentity is false when the provider must not use an identity of
	// its own (--deny-provider-identity): credentials are then not checked.
	ownIdentity bool
	// View is serve's own FUSE view (--fuse-mountpoint), checked too.
	View     MountedView
	timeout  time.Duration // per check; the checks run side by side
	cacheFor time.Duration
	now      func() time.Time

	mu      sync.Mutex // one check at a time: probes are rare, checks cheap
	okUntil time.Time
	okBody  string
}

// NewSocket checks the provider socket at sock and, when ownIdentity, the
// credentials cred checks (which may be nil otherwise).
func NewSocket(sock string, cred *Credentials, ownIdentity bool) *Socket {
	return &Socket{sock: sock, cred: cred, ownIdentity: ownIdentity, timeout: 3 * time.Second, cacheFor: 5 * time.Second, now: time.Now}
}

// Healthz is the liveness probe.
func (h *Socket) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := socketExists(h.sock); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "socket: FAIL: %v\n", err)
		return
	}
	if h.View != nil {
		if err := h.View.Check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "view: FAIL: %v\n", err)
			return
		}
	}
	fmt.Fprintf(w, "ok\n")
}

func socketExists(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s is missing (the driver cannot reach the provider): %w", path, errors.Unwrap(err))
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s is not a socket", path)
	}
	return nil
}

// Readyz is the readiness probe: one line per check.
func (h *Socket) Readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	body, ok := h.ready(r.Context())
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, body)
}

// check is the outcome of one readiness check.
type check struct {
	name, detail string
	err          error
}

// report writes one line per check and says whether all passed.
func report(checks []check) (string, bool) {
	var b strings.Builder
	ok := true
	for _, c := range checks {
		if c.err != nil {
			ok = false
			fmt.Fprintf(&b, "%s: FAIL: %v\n", c.name, c.err)
		} else {
			fmt.Fprintf(&b, "%s: ok (%s)\n", c.name, c.detail)
		}
	}
	return b.String(), ok
}

// ready runs the checks (or returns a recent success) and a report naming
// each check.
func (h *Socket) ready(ctx context.Context) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.now().Before(h.okUntil) {
		return h.okBody, true
	}
	sock, cred := check{name: "socket"}, check{name: "credentials"}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sock.detail, sock.err = h.checkSocket(ctx)
	}()
	if h.ownIdentity {
		cctx, cancel := context.WithTimeout(ctx, h.timeout)
		cred.detail, cred.err = h.cred.Result(cctx)
		cancel()
	} else {
		cred.detail = "not checked: --deny-provider-identity, every volume brings its own identity"
	}
	wg.Wait()
	checks := []check{sock, cred}
	if h.View != nil {
		checks = append(checks, check{name: "view", detail: h.View.Mountpoint(), err: h.View.Check()})
	}
	body, ok := report(checks)
	if ok {
		h.okUntil, h.okBody = h.now().Add(h.cacheFor), body
	}
	return body, ok
}

// checkSocket dials the provider's own socket as the driver does and calls
// Version. A fresh connection each time: a connection opened earlier would
// survive the socket file being removed, which the driver would not.
func (h *Socket) checkSocket(ctx context.Context) (string, error) {
	if err := socketExists(h.sock); err != nil {
		return "", err
	}
	conn, err := grpc.NewClient("unix://"+h.sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	cctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	start := time.Now()
	resp, err := v1alpha1.NewCSIDriverProviderClient(conn).Version(cctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		return "", fmt.Errorf("the Version call on %s: %w", h.sock, err)
	}
	return fmt.Sprintf("%s answers Version %s in %s", h.sock, resp.GetRuntimeVersion(), time.Since(start).Round(time.Millisecond)), nil
}

// View answers mount's probes: /healthz (the view is still mounted and
// served here) and /readyz (that, and the provider's own credentials
// resolve).
type View struct {
	View MountedView
	Cred *Credentials
}

// Healthz is the liveness probe.
func (h *View) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := h.View.Check(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "view: FAIL: %v\n", err)
		return
	}
	fmt.Fprintf(w, "ok\n")
}

// Readyz is the readiness probe: one line per check.
func (h *View) Readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	view := check{name: "view", detail: h.View.Mountpoint(), err: h.View.Check()}
	cred := check{name: "credentials"}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	cred.detail, cred.err = h.Cred.Result(ctx)
	cancel()
	body, ok := report([]check{view, cred})
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, body)
}
