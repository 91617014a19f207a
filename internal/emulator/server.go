package emulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure the listeners and behaviour of an Emulator. The zero
// value is usable: both listeners on 127.0.0.1 with ephemeral ports.
type Options struct {
	// Addr is the plain HTTP API, proxy and control listener. Default 127.0.0.1:0.
	Addr string
	// TLSAddr is the HTTPS listener (STS, HTTPS API). Default 127.0.0.1:0.
	TLSAddr string
	// Region overrides the seed's region (default cn-hangzhou).
	Region string
	// Logf, when set, receives one line per request (never secret values).
	Logf func(format string, args ...any)
	// HardenedIMDS overrides the seed's imds.hardened (default true).
	HardenedIMDS *bool
	// SessionTTL overrides the seed's sts.sessionTTL (default 1h).
	SessionTTL time.Duration
	// CA signs the TLS certificate. Default: a fresh CA per emulator.
	CA *CA
	// CAFile is where the CA PEM is written. Default: a file in a temporary
	// directory removed by Close.
	CAFile string
	// RequestLogSize is the capacity of the recent-request ring. Default 256.
	RequestLogSize int
	// OOSDeniedCode is the error code for a denied OOS call. The real code
	// is unverified; default Forbidden.NoPermission.
	OOSDeniedCode string
	// DisableTimestampCheck turns off the 15 minute x-acs-date/Timestamp check.
	DisableTimestampCheck bool
	// DisableNonceCheck turns off SignatureNonceUsed detection.
	DisableNonceCheck bool
}

// Emulator is a local Alibaba Cloud KMS, OOS, STS and ECS metadata service.
// Create it with New, then Start it; all methods are safe for concurrent use.
type Emulator struct {
	opts    Options
	seed    *Seed
	region  string
	account string
	logf    func(string, ...any)

	// lifeMu serializes Start, AddRegion and Close.
	lifeMu sync.Mutex

	mu       sync.Mutex
	keys     map[string]*accessKeyState
	sessions map[string]*session
	// primary is the region served on the emulator's own ports; regions
	// are the others (AddRegion, Seed.Regions), by name.
	primary    *regionState
	regions    map[string]*regionState
	roles      map[string]*roleState // by lower-case ARN
	policies   map[string]Policy
	imds       imdsState
	sessionTTL time.Duration
	nonces     map[string]time.Time

	// oidcProviders are the registered OIDC providers, by lower-case ARN.
	oidcProviders map[string]*oidcProvider

	faults   faultSet
	counters counterSet
	reqlog   requestLog

	ca        *CA
	tlsCert   tls.Certificate
	caFile    string
	caTempDir string

	httpLn, tlsLn    net.Listener
	httpSrv, tlsSrv  *http.Server
	closing          chan struct{}
	closeOnce        sync.Once
	started          atomic.Bool
	serveWG          sync.WaitGroup
	tunnels          connSet
	forwardTransport *http.Transport
	ownHosts         map[string]bool
	ownHostsMu       sync.RWMutex
	clockSkewAllowed time.Duration
	nonceWindow      time.Duration
	oosDeniedCode    string
	control          controlHandler
	inflight         inflight
}

// New builds an emulator from a seed (nil means an empty seed). It does not
// listen yet; call Start.
func New(seed *Seed, opts Options) (*Emulator, error) {
	if seed == nil {
		seed = &Seed{}
	}
	if err := seed.Validate(); err != nil {
		return nil, err
	}
	e := &Emulator{
		opts:             opts,
		seed:             seed.clone(),
		logf:             opts.Logf,
		closing:          make(chan struct{}),
		clockSkewAllowed: 15 * time.Minute,
		nonceWindow:      15 * time.Minute,
		oosDeniedCode:    opts.OOSDeniedCode,
	}
	if e.oosDeniedCode == "" {
		e.oosDeniedCode = "Forbidden.NoPermission"
	}
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	e.region = firstNonEmpty(opts.Region, seed.Region, DemoRegion)
	e.account = firstNonEmpty(seed.AccountID, DemoAccountID)
	e.primary = newRegionState(e.region)
	e.regions = map[string]*regionState{}
	for name := range seed.Regions {
		if name == e.region {
			return nil, fmt.Errorf("emulator seed: regions[%q]: is the primary region; put its objects at the top level", name)
		}
		e.regions[name] = newRegionState(name)
	}
	e.reqlog.init(opts.RequestLogSize)
	e.forwardTransport = &http.Transport{Proxy: nil, DisableKeepAlives: true}
	e.loadSeed(e.seed)

	ca := opts.CA
	if ca == nil {
		var err error
		if ca, err = NewCA(); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
	}
	cert, err := ca.serverCert(e.region)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e.ca, e.tlsCert = ca, cert
	return e, nil
}

// Start opens both listeners, writes the CA file and serves in the background.
func (e *Emulator) Start() error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("emulator: already started")
	}
	if err := e.writeCAFile(); err != nil {
		return err
	}
	var err error
	if e.httpLn, err = net.Listen("tcp", firstNonEmpty(e.opts.Addr, "127.0.0.1:0")); err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	rawTLS, err := net.Listen("tcp", firstNonEmpty(e.opts.TLSAddr, "127.0.0.1:0"))
	if err != nil {
		e.httpLn.Close()
		e.httpLn = nil
		return fmt.Errorf("emulator: listen TLS: %w", err)
	}
	// http/1.1 only, so that connection faults can hijack the connection.
	e.tlsLn = tls.NewListener(rawTLS, &tls.Config{
		Certificates: []tls.Certificate{e.tlsCert},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	e.ownHostsMu.Lock()
	e.ownHosts = map[string]bool{}
	for _, a := range []string{e.httpLn.Addr().String(), rawTLS.Addr().String()} {
		_, port, _ := net.SplitHostPort(a)
		for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
			e.ownHosts[h+":"+port] = true
		}
	}
	e.ownHostsMu.Unlock()

	newServer := func() *http.Server {
		return &http.Server{
			Handler:           e,
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          log.New(logWriter{e.logf}, "emulator: http: ", 0),
		}
	}
	e.httpSrv, e.tlsSrv = newServer(), newServer()
	e.serveWG.Add(2)
	go func() { defer e.serveWG.Done(); _ = e.httpSrv.Serve(e.httpLn) }()
	go func() { defer e.serveWG.Done(); _ = e.tlsSrv.Serve(e.tlsLn) }()
	e.logf("emulator: API %s, TLS %s, CA %s, region %s", e.URL(), e.TLSEndpoint(), e.caFile, e.region)
	e.mu.Lock()
	extra := e.extraRegionsLocked()
	e.mu.Unlock()
	for _, rs := range extra {
		if err := e.startRegion(rs); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the listeners, aborts hanging requests and removes the CA
// file if the emulator created it.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		e.lifeMu.Lock()
		close(e.closing)
		if e.httpSrv != nil {
			_ = e.httpSrv.Close()
		}
		if e.tlsSrv != nil {
			_ = e.tlsSrv.Close()
		}
		e.mu.Lock()
		extra := e.extraRegionsLocked()
		e.mu.Unlock()
		for _, rs := range extra {
			if rs.httpSrv != nil {
				_ = rs.httpSrv.Close()
				_ = rs.tlsSrv.Close()
			}
		}
		e.lifeMu.Unlock()
		e.tunnels.closeAll()
		e.serveWG.Wait()
		e.inflight.closeAndWait()
		e.forwardTransport.CloseIdleConnections()
		if e.caTempDir != "" {
			_ = os.RemoveAll(e.caTempDir)
		}
	})
	return nil
}

func (e *Emulator) writeCAFile() error {
	path := e.opts.CAFile
	if path == "" {
		dir, err := os.MkdirTemp("", "alibabacloud-emulator-")
		if err != nil {
			return fmt.Errorf("emulator: %w", err)
		}
		e.caTempDir = dir
		path = filepath.Join(dir, "ca.pem")
	}
	if err := os.WriteFile(path, e.ca.CertPEM, 0o600); err != nil {
		return fmt.Errorf("emulator: write CA: %w", err)
	}
	e.caFile = path
	return nil
}

// Endpoint is the plain HTTP API as host:port, for openapi Config.Endpoint
// with Protocol "HTTP".
func (e *Emulator) Endpoint() string {
	if e.httpLn == nil {
		return ""
	}
	return e.httpLn.Addr().String()
}

// URL is http://Endpoint().
func (e *Emulator) URL() string { return "http://" + e.Endpoint() }

// ProxyURL is the HTTP forward proxy for 100.100.100.200 (same as URL).
func (e *Emulator) ProxyURL() string { return e.URL() }

// TLSEndpoint is the HTTPS listener as host:port (STS endpoint, or the API
// with Protocol "HTTPS" and Config.Ca = CAPEM()).
func (e *Emulator) TLSEndpoint() string {
	if e.tlsLn == nil {
		return ""
	}
	return e.tlsLn.Addr().String()
}

// CAFile is the path of the CA PEM (valid after Start).
func (e *Emulator) CAFile() string { return e.caFile }

// CAPEM is the CA certificate in PEM form.
func (e *Emulator) CAPEM() []byte { return append([]byte(nil), e.ca.CertPEM...) }

// CA returns the emulator's CA, to share it with another emulator.
func (e *Emulator) CA() *CA { return e.ca }

// Region is the primary region: the one served on Endpoint() and
// TLSEndpoint(). See AddRegion for the others.
func (e *Emulator) Region() string { return e.region }

// AccountID is the emulated account.
func (e *Emulator) AccountID() string { return e.account }

// SetDown makes every API, STS, metadata and credentials-URI request to
// the primary ports fail with a connection reset (true) or serve normally
// again (false). The ports stay the same and the control API keeps
// working. Other regions have their own switch: SetRegionDown.
func (e *Emulator) SetDown(down bool) { e.primary.down.Store(down) }

// Down reports the SetDown state.
func (e *Emulator) Down() bool { return e.primary.down.Load() }

// ServeHTTP dispatches one request: control API, metadata service, proxy
// forwarding or the cloud API.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !e.inflight.enter() {
		resetConn(w)
		return
	}
	defer e.inflight.leave()
	switch {
	case r.Method == http.MethodConnect:
		e.serveConnect(w, r)
	case isIMDSHost(r.Host) || (strings.HasPrefix(r.URL.Path, "/latest/") && !e.isForeignLoopback(r)):
		e.serveIMDS(w, r)
	case e.isForeignLoopback(r):
		e.forward(w, r)
	case r.URL.Path == controlPrefix+"credentials-uri":
		e.serveCredentialsURI(w, r)
	case strings.HasPrefix(r.URL.Path, controlPrefix) || r.URL.Path == strings.TrimSuffix(controlPrefix, "/"):
		e.serveControl(w, r)
	default:
		e.serveAPI(w, r)
	}
}

const imdsHost = "100.100.100.200"

func isIMDSHost(host string) bool {
	return host == imdsHost || host == imdsHost+":80"
}

// isForeignLoopback reports an absolute-form (proxy) request for a loopback
// address that is not this emulator: such requests are forwarded.
func (e *Emulator) isForeignLoopback(r *http.Request) bool {
	if !r.URL.IsAbs() {
		return false
	}
	host := r.URL.Host
	if !strings.Contains(host, ":") {
		host += ":80"
	}
	e.ownHostsMu.RLock()
	own := e.ownHosts[host]
	e.ownHostsMu.RUnlock()
	if own {
		return false
	}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// forward proxies an absolute-form request to another loopback server.
func (e *Emulator) forward(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	resp, err := e.forwardTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, "emulator proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// serveConnect tunnels CONNECT requests for *.aliyuncs.com (and this
// emulator's own TLS port) to the TLS listener, whose certificate covers
// those names, so HTTPS_PROXY-driven clients reach the emulator too.
//
// kms.<region>.aliyuncs.com and oos.<region>.aliyuncs.com of a region added
// with AddRegion (and that region's TLS address) go to that region's TLS
// listener instead.
func (e *Emulator) serveConnect(w http.ResponseWriter, r *http.Request) {
	endpoint, rs, ok := e.connectTarget(r.Host)
	if !ok {
		http.Error(w, "emulator proxy: CONNECT only to *.aliyuncs.com", http.StatusForbidden)
		return
	}
	if rs.down.Load() {
		resetConn(w)
		return
	}
	upstream, err := net.Dial("tcp", endpoint)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	_, _ = rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	_ = rw.Flush()
	e.tunnels.add(conn, upstream)
	go func() {
		defer e.tunnels.remove(conn, upstream)
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(upstream, rw); done <- struct{}{} }()
		go func() { _, _ = io.Copy(conn, upstream); done <- struct{}{} }()
		<-done
		conn.Close()
		upstream.Close()
		<-done
	}()
}

// connSet tracks tunnel connections so Close can end them.
type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]bool
}

func (s *connSet) add(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[net.Conn]bool{}
	}
	for _, c := range cs {
		s.m[c] = true
	}
}

func (s *connSet) remove(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		delete(s.m, c)
	}
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
	s.m = nil
}

// resetConn hijacks the connection and closes it with SO_LINGER 0, so the
// client sees "connection reset by peer".
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
		return
	}
	_ = conn.Close()
}

// closeConn hijacks the connection and closes it cleanly before any
// response byte, so the client sees EOF.
func closeConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn() // no close_notify: the peer sees a bare EOF
	}
	_ = raw.Close()
}

// newRequestID returns an upper-case UUIDv4, like Alibaba Cloud's RequestId.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := strings.ToUpper(hex.EncodeToString(b[:]))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomString returns n characters from [A-Za-z0-9].
func randomString(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// sleepCtx waits d, or until the client goes away or the emulator closes.
// It reports whether the full delay elapsed.
func (e *Emulator) sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-e.closing:
		return false
	}
}

func randomHex(nBytes int) string {
	b := make([]byte, nBytes)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logWriter sends the http.Server's own errors (TLS handshakes...) to Logf.
type logWriter struct{ logf func(string, ...any) }

func (l logWriter) Write(p []byte) (int, error) {
	l.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// inflight counts running handlers so that Close returns only after the
// last one (and its log line) is done.
type inflight struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n      int
	closed bool
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.cond != nil {
		f.cond.Broadcast()
	}
}

func (f *inflight) closeAndWait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.cond == nil {
		f.cond = sync.NewCond(&f.mu)
	}
	for f.n > 0 {
		f.cond.Wait()
	}
}
