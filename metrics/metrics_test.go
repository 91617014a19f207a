package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics/metricstest"
)

var _ csi.Observer = (*metrics.Metrics)(nil)

const p = metrics.Namespace + "_"

func scrape(t *testing.T, m *metrics.Metrics) *metricstest.Samples {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	s, err := metricstest.Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func want(t *testing.T, s *metricstest.Samples, v float64, name string, kv ...string) {
	t.Helper()
	if got := s.Sum(name, kv...); got != v {
		t.Errorf("%s%v = %v, want %v", name, kv, got, v)
	}
}

func TestEveryFamilyMoves(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "1.2.3", Commit: "abc"})
	m.Mount("success", 20*time.Millisecond)
	m.Mount("success", 30*time.Millisecond)
	m.Mount("fetch", time.Second)
	m.Panic("/v1alpha1.CSIDriverProvider/Mount")
	m.CacheLookup(fetch.TypeKMS, "db-pass", fetch.OutcomeMiss)
	m.CacheLookup(fetch.TypeKMS, "db-pass", fetch.OutcomeHit)
	m.CacheLookup(fetch.TypeOOS, "p", fetch.OutcomeCoalesced)
	m.CacheLookup(fetch.TypeOOS, "p", fetch.OutcomeStale)
	m.CacheRefresh(fetch.TypeKMS, false, nil)
	m.CacheRefresh(fetch.TypeKMS, true, nil)
	m.CacheRefresh(fetch.TypeOOS, false, errors.New("x"))
	m.CacheEvicted()
	m.CacheEvicted()
	m.CacheEntries(7)
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "db-pass", "", 40*time.Millisecond)
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "db-pass", "Forbidden.NoPermission", 10*time.Millisecond)
	m.UpstreamCall(fetch.TypeOOS, "GetSecretParameter", "p", "Throttling.User", 10*time.Millisecond)
	m.Retry(fetch.TypeOOS, fetch.KindThrottled)
	m.RateLimitWait(fetch.TypeKMS, 300*time.Millisecond)
	m.CredentialRefresh("rrsa", nil)
	m.CredentialRefresh("rrsa", errors.New("sts down"))
	m.FUSEOp("lookup", nil)
	m.FUSEOp("lookup", syscall.Errno(0))
	m.FUSEOp("lookup", syscall.ENOENT)
	m.FUSEOp("read", syscall.Errno(200))
	m.FUSEOp("open", &fetch.Error{Kind: fetch.KindPermission})

	s := scrape(t, m)
	want(t, s, 2, p+"mount_requests_total", "outcome", "success")
	want(t, s, 1, p+"mount_requests_total", "outcome", "fetch")
	want(t, s, 0, p+"mount_requests_total", "outcome", "identity")
	if !s.Has(p+"mount_requests_total", "outcome", "identity") {
		t.Error("mount outcomes are not exported at 0 before they happen")
	}
	want(t, s, 2, p+"mount_duration_seconds_count", "outcome", "success")
	want(t, s, 0.05, p+"mount_duration_seconds_sum", "outcome", "success")
	want(t, s, 1, p+"mount_duration_seconds_bucket", "outcome", "fetch", "le", "1")
	want(t, s, 0, p+"mount_duration_seconds_bucket", "outcome", "fetch", "le", "0.5")
	want(t, s, 1, p+"panics_total", "where", "/v1alpha1.CSIDriverProvider/Mount")
	want(t, s, 1, p+"cache_requests_total", "type", "kms", "outcome", "miss")
	want(t, s, 1, p+"cache_requests_total", "type", "kms", "outcome", "hit")
	want(t, s, 1, p+"cache_requests_total", "type", "oos", "outcome", "coalesced")
	want(t, s, 1, p+"cache_requests_total", "type", "oos", "outcome", "stale")
	want(t, s, 1, p+"cache_refreshes_total", "type", "kms", "result", "unchanged")
	want(t, s, 1, p+"cache_refreshes_total", "type", "kms", "result", "changed")
	want(t, s, 1, p+"cache_refreshes_total", "type", "oos", "result", "error")
	want(t, s, 2, p+"cache_evictions_total")
	want(t, s, 7, p+"cache_entries")
	want(t, s, 1, p+"upstream_requests_total", "service", "kms", "action", "GetSecretValue", "code", "OK")
	want(t, s, 1, p+"upstream_requests_total", "service", "kms", "action", "GetSecretValue", "code", "Forbidden.NoPermission")
	want(t, s, 1, p+"upstream_requests_total", "service", "oos", "action", "GetSecretParameter", "code", "Throttling.User")
	want(t, s, 2, p+"upstream_request_duration_seconds_count", "service", "kms", "action", "GetSecretValue")
	want(t, s, 1, p+"retries_total", "service", "oos", "reason", "throttled")
	want(t, s, 1, p+"rate_limit_wait_seconds_count", "service", "kms")
	want(t, s, 0.3, p+"rate_limit_wait_seconds_sum", "service", "kms")
	want(t, s, 1, p+"credential_refreshes_total", "mode", "rrsa", "result", "ok")
	want(t, s, 1, p+"credential_refreshes_total", "mode", "rrsa", "result", "error")
	want(t, s, 2, p+"fuse_operations_total", "op", "lookup", "result", "ok")
	want(t, s, 1, p+"fuse_operations_total", "op", "lookup", "result", "ENOENT")
	want(t, s, 1, p+"fuse_operations_total", "op", "read", "result", "errno_200")
	want(t, s, 1, p+"fuse_operations_total", "op", "open", "result", "permission-denied")
	want(t, s, 1, p+"build_info", "version", "1.2.3", "commit", "abc")
	if !s.Has("go_goroutines") || !s.Has("process_cpu_seconds_total") {
		t.Error("Go and process collectors are missing")
	}
	if strings.Contains(s.Text, "db-pass") || s.Has(p+"cache_requests_total", "object", "db-pass") {
		t.Error("object names are labels although ObjectLabels is off")
	}
}

func TestObjectLabelsOnlyWhenAsked(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true})
	m.CacheLookup(fetch.TypeKMS, "db-pass", fetch.OutcomeHit)
	m.UpstreamCall(fetch.TypeOOS, "GetSecretParameter", "app/param", "", time.Millisecond)
	s := scrape(t, m)
	want(t, s, 1, p+"cache_requests_total", "type", "kms", "outcome", "hit", "object", "db-pass")
	want(t, s, 1, p+"upstream_requests_total", "service", "oos", "code", "OK", "object", "app/param")
	// Latency histograms never carry the object: it would multiply buckets.
	for _, v := range s.LabelValues(p+"upstream_request_duration_seconds_count", "object") {
		t.Errorf("duration histogram has object label %q", v)
	}
}

// Label values from outside (upstream codes, object names) must never make
// the client panic, and stay bounded.
func TestHostileLabelValues(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true})
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "bad\xffname", "Code\xfe"+strings.Repeat("x", 500), time.Millisecond)
	m.CacheLookup(fetch.ObjectType("weird"), strings.Repeat("é", 300), fetch.OutcomeHit)
	s := scrape(t, m)
	for _, c := range s.LabelValues(p+"upstream_requests_total", "code") {
		if len(c) > 128 {
			t.Errorf("code label of %d bytes", len(c))
		}
	}
	want(t, s, 1, p+"cache_requests_total", "type", "unknown", "outcome", "hit")
}

// Two instances (tests build several) must not share or clash.
func TestRegistriesArePrivate(t *testing.T) {
	a, b := metrics.New(metrics.Options{}), metrics.New(metrics.Options{})
	a.CacheEvicted()
	want(t, scrape(t, b), 0, p+"cache_evictions_total")
	want(t, scrape(t, a), 1, p+"cache_evictions_total")
}

func TestPromLint(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true})
	m.Mount("success", time.Millisecond)
	m.CacheLookup(fetch.TypeKMS, "x", fetch.OutcomeHit)
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "x", "", time.Millisecond)
	m.Retry(fetch.TypeKMS, fetch.KindUnavailable)
	m.RateLimitWait(fetch.TypeKMS, time.Second)
	m.CredentialRefresh("rrsa", nil)
	m.FUSEOp("read", nil)
	m.Panic("x")
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		if strings.HasPrefix(pr.Metric, metrics.Namespace) {
			t.Errorf("%s: %s", pr.Metric, pr.Text)
		}
	}
}

// The csi panic guard reports through Observer.Panic.
func TestPanicCountedThroughRecoverInterceptor(t *testing.T) {
	m := metrics.New(metrics.Options{})
	ic := csi.RecoverInterceptor(slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/v1alpha1.CSIDriverProvider/Mount"},
		func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("err = %v", err)
	}
	want(t, scrape(t, m), 1, p+"panics_total", "where", "/v1alpha1.CSIDriverProvider/Mount")
}
