// Package metrics is the provider's Prometheus instrumentation: one private
// registry per process (plus the Go and process collectors), implementing
// fetch.Observer and csi.Observer, and the counters auth (credential
// refreshes) and fs (FUSE operations) report through the small interfaces
// below. Every family is named alibabacloud_provider_*.
//
// Secret names are labels only when Options.ObjectLabels is set
// (--metrics-object-labels): they cost cardinality and may be confidential.
// Even then only names served successfully are labels, at most
// Options.ObjectLabelsMax of them (see objectLabels).
// No label ever holds a secret value, a token or a credential.
package metrics

import (
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// Namespace prefixes every metric name.
const Namespace = "alibabacloud_provider"

// CodeOK is the code label of a successful upstream call.
const CodeOK = "OK"

// CredentialObserver is told about every credential fetch or refresh (an STS
// AssumeRole, an RRSA exchange, an ECS metadata read). auth cannot import
// this package (metrics imports fetch, fetch imports auth), so auth declares
// a func or an interface of the same shape and serve wires *Metrics into it.
type CredentialObserver interface {
	CredentialRefresh(mode string, err error)
}

// FUSEObserver is told about every FUSE operation the view answers. err is
// nil, a syscall.Errno (0 means success) or any other error.
type FUSEObserver interface {
	FUSEOp(op string, err error)
}

// Options configure a Metrics.
type Options struct {
	// ObjectLabels adds an object label to the cache and upstream request
	// counters: the object's name once it has been served successfully,
	// OtherObject before (names that do not exist never become labels).
	ObjectLabels bool
	// ObjectLabelsMax caps the objects labelled by name; past it the least
	// recently used one's series are deleted. 0 is DefaultObjectLabelsMax.
	ObjectLabelsMax int
	// RotationEvents exports rotation_events_total at 0 for every result
	// from the start (serve --emit-events).
	RotationEvents bool
	// Version and Commit label alibabacloud_provider_build_info.
	Version, Commit string
}

// Metrics holds every family on its own registry. Its methods are cheap and
// never block; a nil *Metrics is not valid, use fetch.NopObserver instead.
type Metrics struct {
	reg     *prometheus.Registry
	objects *objectLabels // nil without Options.ObjectLabels

	mountRequests       *prometheus.CounterVec
	mountDuration       *prometheus.HistogramVec
	upstreamRequests    *prometheus.CounterVec
	upstreamDuration    *prometheus.HistogramVec
	cacheRequests       *prometheus.CounterVec
	cacheRefreshes      *prometheus.CounterVec
	cacheEvictions      prometheus.Counter
	cacheEntries        prometheus.Gauge
	credentialRefreshes *prometheus.CounterVec
	retries             *prometheus.CounterVec
	failovers           *prometheus.CounterVec
	rateLimitWait       *prometheus.HistogramVec
	fuseOps             *prometheus.CounterVec
	panics              *prometheus.CounterVec
	secretLastChange    *prometheus.GaugeVec
	rotationEvents      *prometheus.CounterVec
}

var (
	_ fetch.Observer     = (*Metrics)(nil)
	_ CredentialObserver = (*Metrics)(nil)
	_ FUSEObserver       = (*Metrics)(nil)
)

// mountOutcomes are the outcomes csi.Server reports; they are exported at 0
// from the start so rate() and ratios work before the first failure.
var mountOutcomes = []string{"success", "invalid", "denied", "identity", "fetch", "too-large", "error"}

// New builds the families on a fresh registry.
func New(o Options) *Metrics {
	name := func(s string) string { return Namespace + "_" + s }
	objectLabel := func(ls ...string) []string {
		if o.ObjectLabels {
			return append(ls, "object")
		}
		return ls
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		mountRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("mount_requests_total"),
			Help: "Mount requests from the Secrets Store CSI Driver, by outcome: success, invalid (bad parameters), denied (namespace policy), identity (credentials), fetch (an object failed), too-large (the response would exceed --max-response-bytes, the driver's limit), error (anything else).",
		}, []string{"outcome"}),
		mountDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    name("mount_duration_seconds"),
			Help:    "Duration of Mount requests, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"outcome"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("upstream_requests_total"),
			Help: "Calls to KMS and OOS (each retry counts), by service, action and upstream error code (OK on success; the error kind when the call had no upstream code, e.g. unavailable).",
		}, objectLabel("service", "action", "code")),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    name("upstream_request_duration_seconds"),
			Help:    "Latency of one call to KMS or OOS (rate-limit waits excluded), by service and action.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "action"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("cache_requests_total"),
			Help: "Cache lookups, by object type and outcome: hit, miss, coalesced (waited for an upstream call another caller started), refreshed (expired, refetched in line), stale (upstream failing, last good value served), error.",
		}, objectLabel("type", "outcome")),
		cacheRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("cache_refreshes_total"),
			Help: "Upstream fetches the cache published, by object type and result: changed (a new version or new bytes replaced a cached value: a rotation), unchanged (first loads included), error.",
		}, []string{"type", "result"}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("cache_evictions_total"),
			Help: "Cache entries dropped: idle past the eviction time, or a first fetch that failed.",
		}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: name("cache_entries"),
			Help: "Entries in the node-wide cache (updated by the refresher, every TTL/10 at most 5s).",
		}),
		credentialRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("credential_refreshes_total"),
			Help: "Credential fetches and refreshes (STS AssumeRole, RRSA, ECS metadata), by identity mode and result (ok, error).",
		}, []string{"mode", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("retries_total"),
			Help: "Retried upstream calls, by service and the reason of the failure retried (throttled, unavailable).",
		}, []string{"service", "reason"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("failovers_total"),
			Help: "Reads sent to an object's failoverRegion after every retry in its primary region failed for availability, by service and result (ok, error).",
		}, []string{"service", "result"}),
		rateLimitWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    name("rate_limit_wait_seconds"),
			Help:    "Time a call waited for the node-wide rate limit (--kms-qps, --oos-qps) and fetch slots (--max-concurrent-fetches); waits under 1ms are not observed.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service"}),
		fuseOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("fuse_operations_total"),
			Help: "Operations answered by the FUSE view, by operation and result (ok, or the errno such as ENOENT).",
		}, []string{"op", "result"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("panics_total"),
			Help: "Panics recovered, by where they happened (the gRPC method).",
		}, []string{"where"}),
		secretLastChange: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name("secret_last_change_timestamp_seconds"),
			Help: "Unix time of the last refresh that published a new version (or new bytes) of a value already cached: a rotation reaching this node. By object type; by object too with --metrics-object-labels.",
		}, objectLabel("type")),
		rotationEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("rotation_events_total"),
			Help: "SecretRotated Events (--emit-events), by result: posted, duplicate (the API server already had it), dropped (queue full, or shutdown), failed (refused by the API server, or no answer).",
		}, []string{"result"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: name("build_info"),
		Help: "Always 1; labels say which build runs.",
	}, []string{"version", "commit", "goversion"})
	buildInfo.WithLabelValues(label(o.Version), label(o.Commit), runtime.Version()).Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.mountRequests, m.mountDuration,
		m.upstreamRequests, m.upstreamDuration,
		m.cacheRequests, m.cacheRefreshes, m.cacheEvictions, m.cacheEntries,
		m.credentialRefreshes, m.retries, m.failovers, m.rateLimitWait,
		m.fuseOps, m.panics,
		m.secretLastChange, m.rotationEvents,
	)
	if o.ObjectLabels {
		m.objects = newObjectLabels(o.ObjectLabelsMax, m.cacheRequests, m.upstreamRequests, m.secretLastChange)
	}
	if o.RotationEvents {
		for _, r := range rotationResults {
			m.rotationEvents.WithLabelValues(r)
		}
	}
	for _, oc := range mountOutcomes {
		m.mountRequests.WithLabelValues(oc)
	}
	if !o.ObjectLabels {
		for _, t := range []fetch.ObjectType{fetch.TypeKMS, fetch.TypeOOS} {
			for _, oc := range []fetch.Outcome{fetch.OutcomeHit, fetch.OutcomeMiss, fetch.OutcomeCoalesced, fetch.OutcomeRefreshed, fetch.OutcomeStale, fetch.OutcomeError} {
				m.cacheRequests.WithLabelValues(string(t), string(oc))
			}
			for _, r := range []string{"changed", "unchanged", "error"} {
				m.cacheRefreshes.WithLabelValues(string(t), r)
			}
		}
	}
	return m
}

// Registry is the private registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// --- csi.Observer ---

// Mount counts one Mount and its duration.
func (m *Metrics) Mount(outcome string, d time.Duration) {
	outcome = label(outcome)
	m.mountRequests.WithLabelValues(outcome).Inc()
	m.mountDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

// Panic counts a recovered panic.
func (m *Metrics) Panic(where string) { m.panics.WithLabelValues(label(where)).Inc() }

// --- fetch.Observer ---

// CacheLookup counts how the cache answered one object.
func (m *Metrics) CacheLookup(t fetch.ObjectType, name string, o fetch.Outcome) {
	if m.objects != nil {
		served := o != fetch.OutcomeError
		m.objects.inc(m.cacheRequests, service(t), label(name), served, service(t), label(string(o)))
		return
	}
	m.cacheRequests.WithLabelValues(service(t), label(string(o))).Inc()
}

// CacheRefresh counts one published upstream fetch.
func (m *Metrics) CacheRefresh(t fetch.ObjectType, changed bool, err error) {
	r := "unchanged"
	switch {
	case err != nil:
		r = "error"
	case changed:
		r = "changed"
	}
	m.cacheRefreshes.WithLabelValues(service(t), r).Inc()
}

// CacheEvicted counts one dropped entry.
func (m *Metrics) CacheEvicted() { m.cacheEvictions.Inc() }

// CacheEntries sets the number of entries.
func (m *Metrics) CacheEntries(n int) { m.cacheEntries.Set(float64(n)) }

// UpstreamCall counts one call to KMS or OOS; code "" is a success.
func (m *Metrics) UpstreamCall(t fetch.ObjectType, action, name, code string, d time.Duration) {
	if code == "" {
		code = CodeOK
	}
	svc, act := service(t), label(action)
	if m.objects != nil {
		m.objects.inc(m.upstreamRequests, svc, label(name), code == CodeOK, svc, act, label(code))
	} else {
		m.upstreamRequests.WithLabelValues(svc, act, label(code)).Inc()
	}
	m.upstreamDuration.WithLabelValues(svc, act).Observe(d.Seconds())
}

// Failover counts one read sent to a failover region and its result.
func (m *Metrics) Failover(t fetch.ObjectType, ok bool) {
	r := "ok"
	if !ok {
		r = "error"
	}
	m.failovers.WithLabelValues(service(t), r).Inc()
}

// Retry counts one retried call and why.
func (m *Metrics) Retry(t fetch.ObjectType, k fetch.Kind) {
	m.retries.WithLabelValues(service(t), k.String()).Inc()
}

// RateLimitWait observes how long one call waited for the node-wide limits.
func (m *Metrics) RateLimitWait(t fetch.ObjectType, d time.Duration) {
	m.rateLimitWait.WithLabelValues(service(t)).Observe(d.Seconds())
}

// CacheChanged is a subscriber of the cache's changes (fetch.Cache.Subscribe):
// it sets the last change time of a value replaced by a new version or new
// bytes. A first value (Old nil) and a value refused upstream (New nil) are
// not changes of a served value.
func (m *Metrics) CacheChanged(ev fetch.Event) {
	if ev.Old == nil || ev.New == nil || ev.Key.IsListing() {
		return // a listing's names are not a value
	}
	t := float64(ev.New.FetchedAt.UnixNano()) / 1e9
	svc := service(ev.Key.Type)
	if m.objects != nil {
		m.objects.set(m.secretLastChange, svc, label(ev.Key.Name), true, t, svc)
		return
	}
	m.secretLastChange.WithLabelValues(svc).Set(t)
}

// rotationResults are events.Results (a test keeps them equal), exported at
// 0 with Options.RotationEvents: metrics observes packages, it does not
// depend on the one that posts Events.
var rotationResults = []string{"posted", "duplicate", "dropped", "failed"}

// RotationEvent counts one rotation event by result (events.Observer).
func (m *Metrics) RotationEvent(result string) {
	m.rotationEvents.WithLabelValues(label(result)).Inc()
}

// --- auth and fs ---

// CredentialRefresh counts one credential fetch or refresh of an identity
// mode (auth.Mode as a string).
func (m *Metrics) CredentialRefresh(mode string, err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.credentialRefreshes.WithLabelValues(label(mode), r).Inc()
}

// FUSEOp counts one FUSE operation.
func (m *Metrics) FUSEOp(op string, err error) {
	m.fuseOps.WithLabelValues(label(op), fuseResult(err)).Inc()
}

// service is the metrics label of t's service: kms or oos.
func service(t fetch.ObjectType) string {
	switch t {
	case fetch.TypeKMS, fetch.TypeOOS, fetch.TypeOOSParameter:
		return string(t.Service())
	}
	return "unknown"
}

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT: "ENOENT", syscall.EACCES: "EACCES", syscall.EPERM: "EPERM", syscall.EIO: "EIO",
	syscall.EAGAIN: "EAGAIN", syscall.ETIMEDOUT: "ETIMEDOUT", syscall.EINTR: "EINTR", syscall.EINVAL: "EINVAL",
	syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.EROFS: "EROFS", syscall.ENOSYS: "ENOSYS",
	syscall.EBADF: "EBADF", syscall.ENODATA: "ENODATA", syscall.ENOTSUP: "ENOTSUP", syscall.EFBIG: "EFBIG",
	syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.ECANCELED: "ECANCELED", syscall.EBUSY: "EBUSY",
}

func fuseResult(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if e == 0 {
			return "ok"
		}
		if n, ok := errnoNames[e]; ok {
			return n
		}
		return "errno_" + strconv.Itoa(int(e))
	}
	return fetch.KindOf(err).String()
}

// maxLabelBytes bounds a label value that comes from outside (an upstream
// code, an object name).
const maxLabelBytes = 128

// label makes s a safe label value: valid UTF-8 (the client panics
// otherwise) and bounded.
func label(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > maxLabelBytes {
		cut := maxLabelBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
