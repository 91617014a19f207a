package emulator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// regionState is what one region owns: its KMS secrets, its OOS encrypted
// and plain parameters, and its down switch. Identities (AccessKeys, STS
// sessions, roles, policies, OIDC providers) belong to the Emulator and are
// shared by every region. The maps are guarded by Emulator.mu.
//
// The primary region (Options.Region, Seed.Region, default cn-hangzhou) is
// served on the emulator's own ports; every other region added with
// AddRegion (or Seed.Regions) has an HTTP and a TLS port of its own that
// serve KMS and OOS only.
type regionState struct {
	name    string
	secrets map[string]*kmsSecret
	params  map[string]*oosParam // encrypted (Secret) parameters
	plain   map[string]*oosParam // plain parameters (String, StringList)
	down    atomic.Bool

	// Listeners of a region other than the primary, set by startRegion
	// under Emulator.mu.
	httpLn, tlsLn   net.Listener
	httpSrv, tlsSrv *http.Server
}

func newRegionState(name string) *regionState {
	rs := &regionState{name: name}
	rs.clear()
	return rs
}

func (rs *regionState) clear() {
	rs.secrets = map[string]*kmsSecret{}
	rs.params = map[string]*oosParam{}
	rs.plain = map[string]*oosParam{}
}

// regionNamePattern is what the emulator accepts as a region id: the shape
// of Alibaba Cloud's (cn-hangzhou, ap-southeast-1, cn-north-2-gov-1).
var regionNamePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)+$`)

func validRegionName(name string) error {
	if !regionNamePattern.MatchString(name) {
		return fmt.Errorf("region %q must look like cn-shanghai or ap-southeast-1", name)
	}
	return nil
}

// regionLocked returns the region called name ("" is the primary), or nil.
// e.mu must be held.
func (e *Emulator) regionLocked(name string) *regionState {
	if name == "" || name == e.primary.name {
		return e.primary
	}
	return e.regions[name]
}

// lookupRegion is regionLocked for callers that do not hold e.mu.
func (e *Emulator) lookupRegion(name string) (*regionState, error) {
	e.mu.Lock()
	rs := e.regionLocked(name)
	e.mu.Unlock()
	if rs == nil {
		return nil, fmt.Errorf("emulator: unknown region %q (add it with AddRegion)", name)
	}
	return rs, nil
}

// AddRegion serves KMS and OOS for another region on an HTTP port and a TLS
// port of its own (RegionURL, RegionEndpoint, RegionTLSEndpoint). The region
// has its own secrets and parameters, taken from Seed.Regions[region] when
// the seed has them and empty otherwise, its own down state
// (SetRegionDown) and is matched by faults whose Region names it; the
// AccessKeys, STS sessions, roles, policies and OIDC providers are the
// emulator's and work in every region. STS, the metadata service and the
// control API stay on the primary ports.
//
// AddRegion may be called before or after Start: before, the ports open at
// Start; after, at once. Adding a region that is already served (a region of
// Seed.Regions, or a second call) does nothing; adding the primary region is
// an error.
func (e *Emulator) AddRegion(region string) error {
	if err := validRegionName(region); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	select {
	case <-e.closing:
		return errors.New("emulator: AddRegion after Close")
	default:
	}
	e.mu.Lock()
	if region == e.primary.name {
		e.mu.Unlock()
		return fmt.Errorf("emulator: %s is the primary region, served on URL()", region)
	}
	if _, ok := e.regions[region]; ok {
		e.mu.Unlock()
		return nil
	}
	rs := newRegionState(region)
	e.loadRegionSeed(rs, e.seed.Regions[region], time.Now())
	e.regions[region] = rs
	e.mu.Unlock()
	if e.started.Load() {
		return e.startRegion(rs)
	}
	return nil
}

// startRegion opens and serves the listeners of an extra region. The caller
// holds e.lifeMu.
func (e *Emulator) startRegion(rs *regionState) error {
	cert, err := e.ca.serverCert(rs.name)
	if err != nil {
		return fmt.Errorf("emulator: region %s: %w", rs.name, err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("emulator: region %s: listen: %w", rs.name, err)
	}
	rawTLS, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		httpLn.Close()
		return fmt.Errorf("emulator: region %s: listen TLS: %w", rs.name, err)
	}
	tlsLn := tls.NewListener(rawTLS, &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	h := regionHandler{e: e, rs: rs}
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          log.New(logWriter{e.logf}, "emulator: http "+rs.name+": ", 0),
		}
	}
	httpSrv, tlsSrv := newServer(), newServer()
	e.mu.Lock()
	rs.httpLn, rs.tlsLn, rs.httpSrv, rs.tlsSrv = httpLn, tlsLn, httpSrv, tlsSrv
	e.mu.Unlock()
	e.serveWG.Add(2)
	go func() { defer e.serveWG.Done(); _ = httpSrv.Serve(httpLn) }()
	go func() { defer e.serveWG.Done(); _ = tlsSrv.Serve(tlsLn) }()
	e.logf("emulator: region %s: API http://%s, TLS %s", rs.name, httpLn.Addr(), rawTLS.Addr())
	return nil
}

// regionHandler serves the KMS and OOS API of one extra region.
type regionHandler struct {
	e  *Emulator
	rs *regionState
}

func (h regionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.e.inflight.enter() {
		resetConn(w)
		return
	}
	defer h.e.inflight.leave()
	h.e.serveAPIIn(w, r, h.rs)
}

// Regions lists the regions served: the primary first, then the others
// sorted.
func (e *Emulator) Regions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.regions)+1)
	for name := range e.regions {
		out = append(out, name)
	}
	sort.Strings(out)
	return append([]string{e.primary.name}, out...)
}

// RegionEndpoint is the plain HTTP API of a region as host:port, for the
// openapi Config.Endpoint with Protocol "HTTP" (Endpoint() for the
// primary region). It is "" for an unknown region or before Start.
func (e *Emulator) RegionEndpoint(region string) string {
	e.mu.Lock()
	rs := e.regionLocked(region)
	var ln net.Listener
	if rs != nil && rs != e.primary {
		ln = rs.httpLn
	}
	primary := rs == e.primary
	e.mu.Unlock()
	if primary {
		return e.Endpoint()
	}
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// RegionURL is http://RegionEndpoint(region), or "" (see RegionEndpoint).
func (e *Emulator) RegionURL(region string) string {
	ep := e.RegionEndpoint(region)
	if ep == "" {
		return ""
	}
	return "http://" + ep
}

// RegionTLSEndpoint is the HTTPS API of a region as host:port (TLSEndpoint()
// for the primary), with a certificate from CA() that also covers
// *.<region>.aliyuncs.com. It is "" for an unknown region or before Start.
func (e *Emulator) RegionTLSEndpoint(region string) string {
	e.mu.Lock()
	rs := e.regionLocked(region)
	var ln net.Listener
	if rs != nil && rs != e.primary {
		ln = rs.tlsLn
	}
	primary := rs == e.primary
	e.mu.Unlock()
	if primary {
		return e.TLSEndpoint()
	}
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// SetRegionDown makes every KMS and OOS request to one region fail with a
// connection reset (true), or serve again (false). For the primary region
// it is SetDown. An unknown region is logged and ignored.
func (e *Emulator) SetRegionDown(region string, down bool) {
	rs, err := e.lookupRegion(region)
	if err != nil {
		e.logf("emulator: SetRegionDown: %v", err)
		return
	}
	rs.down.Store(down)
}

// RegionDown reports the SetRegionDown state of a region (false when unknown).
func (e *Emulator) RegionDown(region string) bool {
	rs, err := e.lookupRegion(region)
	return err == nil && rs.down.Load()
}

// extraRegionsLocked returns the regions other than the primary, sorted. e.mu must be held.
func (e *Emulator) extraRegionsLocked() []*regionState {
	out := make([]*regionState, 0, len(e.regions))
	for _, rs := range e.regions {
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// connectTarget picks the TLS listener a CONNECT request is tunnelled to:
// an extra region's for kms.<region>.aliyuncs.com, oos.<region>.aliyuncs.com
// or that region's own TLS address, the primary's otherwise. ok is false
// when the host is not one the emulator answers for.
func (e *Emulator) connectTarget(hostport string) (endpoint string, rs *regionState, ok bool) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	e.mu.Lock()
	for _, x := range e.regions {
		if x.tlsLn == nil {
			continue
		}
		addr := x.tlsLn.Addr().String()
		_, port, _ := net.SplitHostPort(addr)
		if hostport == addr || hostport == "localhost:"+port || hostport == "[::1]:"+port ||
			host == "kms."+x.name+".aliyuncs.com" || host == "oos."+x.name+".aliyuncs.com" {
			e.mu.Unlock()
			return addr, x, true
		}
	}
	e.mu.Unlock()
	e.ownHostsMu.RLock()
	own := e.ownHosts[hostport]
	e.ownHostsMu.RUnlock()
	if own || strings.HasSuffix(host, ".aliyuncs.com") {
		return e.TLSEndpoint(), e.primary, true
	}
	return "", nil, false
}
