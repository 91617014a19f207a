package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
)

// opsServer serves /metrics on --metrics-addr and /healthz, /readyz on
// --health-addr. Both listeners are bound before the provider socket is
// created, so a port clash is a startup error and not a silent half-start.
type opsServer struct {
	metricsLis, healthLis net.Listener // nil when disabled (or shared)
	servers               []*http.Server
	// MetricsAddr and HealthAddr are the bound addresses ("" when disabled).
	MetricsAddr, HealthAddr string
}

// listenOps binds the metrics and health listeners. An empty address
// disables that endpoint; equal addresses (but two ":0") share one listener.
func listenOps(metricsAddr, healthAddr string) (*opsServer, error) {
	bind := func(flag, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w (is another process using the port? choose another with --%s, or \"\" to disable)", flag, addr, err, flag)
		}
		return l, nil
	}
	o := &opsServer{}
	var err error
	if metricsAddr != "" {
		if o.metricsLis, err = bind("metrics-addr", metricsAddr); err != nil {
			return nil, err
		}
		o.MetricsAddr = o.metricsLis.Addr().String()
	}
	switch {
	case healthAddr == "":
	case healthAddr == metricsAddr && !strings.HasSuffix(healthAddr, ":0"):
		o.HealthAddr = o.MetricsAddr
	default:
		if o.healthLis, err = bind("health-addr", healthAddr); err != nil {
			o.close()
			return nil, err
		}
		o.HealthAddr = o.healthLis.Addr().String()
	}
	return o, nil
}

func (o *opsServer) close() {
	for _, l := range []net.Listener{o.metricsLis, o.healthLis} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// probes answers /healthz and /readyz: serve's socket health, or another
// command's (mount's view).
type probes interface {
	healthz(w http.ResponseWriter, r *http.Request)
	readyz(w http.ResponseWriter, r *http.Request)
}

// serve starts the HTTP servers. A server that stops on its own (not by
// shutdown) reports on the returned channel.
func (o *opsServer) serve(metrics http.Handler, h probes) <-chan error {
	errc := make(chan error, 2)
	mm := http.NewServeMux()
	hm := mm
	if o.healthLis != nil {
		hm = http.NewServeMux()
	}
	if o.metricsLis != nil {
		mm.Handle("/metrics", metrics)
	}
	if o.HealthAddr != "" {
		hm.HandleFunc("/healthz", h.healthz)
		hm.HandleFunc("/readyz", h.readyz)
	}
	start := func(l net.Listener, mux *http.ServeMux) {
		if l == nil {
			return
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		o.servers = append(o.servers, srv)
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP server on %s stopped: %w", l.Addr(), err)
			}
		}()
	}
	start(o.metricsLis, mm)
	start(o.healthLis, hm)
	return errc
}

func (o *opsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range o.servers {
		_ = s.Shutdown(ctx)
	}
	o.close()
}

// baseResolver is the part of auth.Resolver readiness needs.
type baseResolver interface {
	Base(ctx context.Context) (*auth.Identity, error)
}

// health answers /healthz (the process is alive and its socket exists) and
// /readyz (the socket answers Version and the provider's own credentials
// resolve). A passing /readyz is cached for cacheFor; failures are not. The
// credentials are not checked by the probe: it reads cred's last result.
type health struct {
	sock string
	cred *credCheck
	// ownIdentity is false when the provider must not use an identity of
	// its own (--deny-provider-identity): credentials are then not checked.
	ownIdentity bool
	// view is serve's own FUSE view (--fuse-mountpoint), checked too.
	view     *fs.Server
	timeout  time.Duration // per check; the checks run side by side
	cacheFor time.Duration
	now      func() time.Time

	mu      sync.Mutex // one check at a time: probes are rare, checks cheap
	okUntil time.Time
	okBody  string
}

func newHealth(sock string, cred *credCheck, ownIdentity bool) *health {
	return &health{sock: sock, cred: cred, ownIdentity: ownIdentity, timeout: 3 * time.Second, cacheFor: 5 * time.Second, now: time.Now}
}

func (h *health) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := socketExists(h.sock); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "socket: FAIL: %v\n", err)
		return
	}
	if h.view != nil {
		if err := h.view.Check(); err != nil {
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

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	body, ok := h.ready(r.Context())
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, body)
}

// ready runs the checks (or returns a recent success) and a report naming
// each check.
func (h *health) ready(ctx context.Context) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.now().Before(h.okUntil) {
		return h.okBody, true
	}
	type check struct {
		detail string
		err    error
	}
	var sock, cred check
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sock.detail, sock.err = h.checkSocket(ctx)
	}()
	if h.ownIdentity {
		cctx, cancel := context.WithTimeout(ctx, h.timeout)
		cred.detail, cred.err = h.cred.result(cctx)
		cancel()
	} else {
		cred.detail = "not checked: --deny-provider-identity, every volume brings its own identity"
	}
	wg.Wait()
	checks := []struct {
		name string
		check
	}{{"socket", sock}, {"credentials", cred}}
	if h.view != nil {
		v := check{detail: h.view.Mountpoint(), err: h.view.Check()}
		checks = append(checks, struct {
			name string
			check
		}{"view", v})
	}
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
	if ok {
		h.okUntil, h.okBody = h.now().Add(h.cacheFor), b.String()
	}
	return b.String(), ok
}

// checkSocket dials the provider's own socket as the driver does and calls
// Version. A fresh connection each time: a connection opened earlier would
// survive the socket file being removed, which the driver would not.
func (h *health) checkSocket(ctx context.Context) (string, error) {
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

// howToConfigure names every way to give the provider credentials.
const howToConfigure = "configure one: ACCESS_KEY_ID and SECRET_ACCESS_KEY; or RRSA, ALICLOUD_ROLE_ARN and ALICLOUD_OIDC_PROVIDER_ARN (chart: rrsa.enable=true); " +
	"or run on an ECS node whose worker RAM role may read the secrets; or give each volume its own identity, " +
	"usePodServiceAccountToken: \"true\" in the SecretProviderClass (per-pod RRSA) or a nodePublishSecretRef; " +
	"or run with --deny-provider-identity if every volume must bring its own"

// errNoSource is checkCredentials' error when no credential source is
// configured and the fallback, the worker RAM role, cannot be read.
type errNoSource struct{ err error }

func (e errNoSource) Error() string {
	return fmt.Sprintf("no credentials: no AccessKey or RRSA is configured, and the worker RAM role could not be read from ECS metadata (%v); %s", e.err, howToConfigure)
}

func (e errNoSource) Unwrap() error { return e.err }

// checkCredentials resolves the provider's own identity and asks its
// credential for a key, within timeout. It calls ECS metadata or STS when
// the credential needs it: run it from a credCheck, never from a probe.
func checkCredentials(ctx context.Context, r baseResolver, timeout time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id, err := r.Base(cctx)
	if err != nil {
		return "", err
	}
	if err := credentialYields(cctx, id); err != nil {
		if id.Mode == auth.ModeECSRAMRole {
			// The identity nothing configured falls back to.
			return "", errNoSource{err}
		}
		return "", fmt.Errorf("%s: %w", id, err)
	}
	return id.String(), nil
}

// credCheck checks the provider's own credentials in the background, as
// the cache refreshes its entries: once at start, then every okEvery, or
// every failEvery while they fail. /readyz reads the last result, so no
// probe calls ECS metadata or STS, and a slow one never holds a probe.
type credCheck struct {
	check              func(context.Context) (string, error)
	okEvery, failEvery time.Duration
	// first is called with the first result (the start line).
	first func(detail string, err error)

	checked chan struct{} // closed after the first check
	mu      sync.Mutex
	detail  string
	err     error
}

func newCredCheck(r baseResolver, log *slog.Logger) *credCheck {
	return &credCheck{
		check:     func(ctx context.Context) (string, error) { return checkCredentials(ctx, r, 3*time.Second) },
		okEvery:   30 * time.Second,
		failEvery: 5 * time.Second,
		first: func(_ string, err error) {
			var ns errNoSource
			if errors.As(err, &ns) {
				log.Warn("no credentials: no AccessKey or RRSA is configured and the worker RAM role cannot be read from ECS metadata, so volumes without an identity of their own fail to mount and /readyz fails; "+howToConfigure,
					"error", ns.err.Error())
			}
		},
		checked: make(chan struct{}),
	}
}

// start runs the checks until the returned stop is called; stop waits for
// the check in flight (each is bounded by its own timeout).
func (c *credCheck) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (c *credCheck) run(ctx context.Context) {
	for first := true; ; first = false {
		detail, err := c.check(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.detail, c.err = detail, err
		c.mu.Unlock()
		wait := c.okEvery
		if err != nil {
			wait = c.failEvery
		}
		if first {
			// The start line comes before any probe's answer.
			if c.first != nil {
				c.first(detail, err)
			}
			close(c.checked)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// result is the last check's, waiting for the first one until ctx ends.
func (c *credCheck) result(ctx context.Context) (string, error) {
	select {
	case <-c.checked:
	case <-ctx.Done():
		return "", errors.New("not checked yet: the first check of the credentials is still running")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.detail, c.err
}

// credentialYields asks the identity's credential for a usable key (for STS
// based modes this is where a session is fetched or refreshed), bounded by
// ctx. credentials-go takes no context, so the call runs aside and is
// abandoned (it ends at its own HTTP timeouts) when ctx ends first. Nothing
// of the credential is returned or printed.
func credentialYields(ctx context.Context, id *auth.Identity) error {
	if id == nil || id.Credential == nil {
		return errors.New("the identity has no credential")
	}
	done := make(chan error, 1)
	go func() {
		cm, err := id.Credential.GetCredential()
		if err == nil && (cm == nil || cm.AccessKeyId == nil || *cm.AccessKeyId == "") {
			err = errors.New("the credential yields no AccessKey id")
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no credential within the check's deadline: %w", ctx.Err())
	}
}
