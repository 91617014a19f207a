package emulator

import (
	"sort"
	"sync"
	"time"
)

// Routes, as used by counters, faults and the request log.
const (
	RouteKMS     = "kms"     // KMS 2016-01-20
	RouteOOS     = "oos"     // OOS 2019-06-01
	RouteSTS     = "sts"     // STS 2015-04-01
	RouteIMDS    = "imds"    // ECS metadata service (100.100.100.200)
	RouteURI     = "uri"     // credentials URI (/_emulator/credentials-uri)
	RouteUnknown = "unknown" // anything else sent to the API port
)

// Outcome values besides error codes.
const (
	OutcomeOK      = "ok"      // 2xx
	OutcomeAborted = "aborted" // the client went away before a response
)

// Counter is one row of the call counters: how many requests had this
// (region, route, action, principal, resource, outcome). Region is the
// region whose port the request reached (the primary region for STS, the
// metadata service and the credentials URI); Principal is the AccessKey
// principal name or, for STS sessions, the role ARN; Outcome is "ok", the
// error Code, "fault:<kind>" for a connection-level fault, or "aborted".
type Counter struct {
	Region    string `json:"region,omitempty"`
	Route     string `json:"route"`
	Action    string `json:"action"`
	Principal string `json:"principal,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Outcome   string `json:"outcome"`
	Count     int    `json:"count"`
}

type counterKey struct{ region, route, action, principal, resource, outcome string }

type counterSet struct {
	mu sync.Mutex
	m  map[counterKey]int
}

func (s *counterSet) add(k counterKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[counterKey]int{}
	}
	s.m[k]++
}

func (s *counterSet) sum(match func(counterKey) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.m {
		if match(k) {
			n += v
		}
	}
	return n
}

func (s *counterSet) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = nil
}

func (s *counterSet) snapshot() []Counter {
	s.mu.Lock()
	out := make([]Counter, 0, len(s.m))
	for k, v := range s.m {
		out = append(out, Counter{Region: k.region, Route: k.route, Action: k.action, Principal: k.principal, Resource: k.resource, Outcome: k.outcome, Count: v})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		for _, p := range [][2]string{{a.Region, b.Region}, {a.Route, b.Route}, {a.Action, b.Action}, {a.Resource, b.Resource}, {a.Principal, b.Principal}, {a.Outcome, b.Outcome}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	return out
}

// Calls counts every request that reached a route ("kms", "oos", "sts",
// "imds", "uri") in any region, whatever its outcome. "" counts all
// routes. CallsIn counts one region.
func (e *Emulator) Calls(route string) int {
	return e.counters.sum(func(k counterKey) bool { return route == "" || k.route == route })
}

// CallsFor counts requests on a route for one resource, in any region:
// the secret name (kms), parameter name (oos; the path for the ByPath
// actions, the comma-joined names for GetParameters and
// GetSecretParameters), role ARN (sts), role name or metadata path (imds).
func (e *Emulator) CallsFor(route, resource string) int {
	return e.counters.sum(func(k counterKey) bool { return k.route == route && k.resource == resource })
}

// CallsBy counts requests on a route made by one principal: the AccessKey's
// principal name, or the role ARN for STS sessions.
func (e *Emulator) CallsBy(route, principal string) int {
	return e.counters.sum(func(k counterKey) bool { return k.route == route && k.principal == principal })
}

// CallsIn counts the requests that reached one region's ports on a route
// ("" counts all routes), whatever their outcome.
func (e *Emulator) CallsIn(region, route string) int {
	return e.counters.sum(func(k counterKey) bool { return k.region == region && (route == "" || k.route == route) })
}

// CallsAction counts the requests for one action of a route
// (CallsAction("oos", "GetSecretParametersByPath")) in any region.
func (e *Emulator) CallsAction(route, action string) int {
	return e.counters.sum(func(k counterKey) bool { return k.route == route && k.action == action })
}

// CallsWithOutcome counts requests on a route with an outcome ("ok", an
// error code such as "Throttling.User", "fault:reset", "aborted").
func (e *Emulator) CallsWithOutcome(route, outcome string) int {
	return e.counters.sum(func(k counterKey) bool { return k.route == route && k.outcome == outcome })
}

// Counters returns every counter row, sorted.
func (e *Emulator) Counters() []Counter { return e.counters.snapshot() }

// ResetCounters zeroes the counters (the request log is kept; see
// ResetRequests).
func (e *Emulator) ResetCounters() { e.counters.reset() }

// RequestRecord describes one request in the recent-request log. It never
// holds secret values, AccessKey secrets, security tokens, OIDC tokens or
// signatures: such parameters appear as "<redacted>".
type RequestRecord struct {
	Time                time.Time         `json:"time"`
	RequestID           string            `json:"requestId"`
	Method              string            `json:"method"`
	Host                string            `json:"host"`
	Path                string            `json:"path"`
	Region              string            `json:"region,omitempty"`
	Route               string            `json:"route"`
	Action              string            `json:"action,omitempty"`
	Resource            string            `json:"resource,omitempty"`
	Params              map[string]string `json:"params,omitempty"`
	AccessKeyID         string            `json:"accessKeyId,omitempty"`
	Principal           string            `json:"principal,omitempty"`
	SecurityToken       bool              `json:"securityTokenPresent"`
	CredentialsProvider string            `json:"credentialsProvider,omitempty"`
	UserAgent           string            `json:"userAgent,omitempty"`
	Nonce               string            `json:"nonce,omitempty"`
	// Auth is the scheme seen: "acs3", "v1", "none" or "imds-token".
	Auth           string        `json:"auth,omitempty"`
	SignatureValid bool          `json:"signatureValid"`
	Fault          string        `json:"fault,omitempty"`
	Status         int           `json:"status"`
	Code           string        `json:"code,omitempty"`
	Outcome        string        `json:"outcome"`
	Duration       time.Duration `json:"durationNs"`
}

type requestLog struct {
	mu   sync.Mutex
	buf  []RequestRecord
	next int
	full bool
}

func (l *requestLog) init(size int) {
	if size <= 0 {
		size = 256
	}
	l.buf = make([]RequestRecord, size)
}

func (l *requestLog) add(r RequestRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = r
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
}

func (l *requestLog) list() []RequestRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []RequestRecord{}
	if l.full {
		out = append(out, l.buf[l.next:]...)
	}
	out = append(out, l.buf[:l.next]...)
	for i := range out {
		out[i].Params = cloneMap(out[i].Params)
	}
	return out
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.buf)
	l.next, l.full = 0, false
}

// Requests returns the recent requests, oldest first.
func (e *Emulator) Requests() []RequestRecord { return e.reqlog.list() }

// ResetRequests empties the recent-request log.
func (e *Emulator) ResetRequests() { e.reqlog.reset() }

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
