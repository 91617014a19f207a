package metrics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics"
)

// Names nobody could read (they do not exist, or the identity may not read
// them) are chosen by whoever writes a SecretProviderClass: they must never
// become label values, or any class can grow /metrics without bound.
func TestObjectLabelsOnlyForServedObjects(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true})
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("no-such-secret-%d", i)
		m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", name, "Forbidden.ResourceNotFound", time.Millisecond)
		m.CacheLookup(fetch.TypeKMS, name, fetch.OutcomeError)
	}
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "db-pass", "", time.Millisecond)
	m.CacheLookup(fetch.TypeKMS, "db-pass", fetch.OutcomeMiss)
	// A name served once keeps its label when it fails later.
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "db-pass", "Forbidden.NoPermission", time.Millisecond)
	m.CacheLookup(fetch.TypeKMS, "db-pass", fetch.OutcomeError)

	s := scrape(t, m)
	if strings.Contains(s.Text, "no-such-secret") {
		t.Errorf("names never served are label values:\n%s", grep(s.Text, "no-such-secret"))
	}
	// They are still counted, under the one placeholder object.
	want(t, s, 50, p+"upstream_requests_total", "code", "Forbidden.ResourceNotFound", "object", metrics.OtherObject)
	want(t, s, 50, p+"cache_requests_total", "outcome", "error", "object", metrics.OtherObject)
	want(t, s, 1, p+"upstream_requests_total", "code", "OK", "object", "db-pass")
	want(t, s, 1, p+"upstream_requests_total", "code", "Forbidden.NoPermission", "object", "db-pass")
	want(t, s, 1, p+"cache_requests_total", "outcome", "miss", "object", "db-pass")
	want(t, s, 1, p+"cache_requests_total", "outcome", "error", "object", "db-pass")
}

// Served objects are labelled up to a cap of distinct objects; past it the
// least recently used object's series leave /metrics.
func TestObjectLabelsCapped(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true})
	const n = 2000
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("obj-%d", i)
		m.UpstreamCall(fetch.TypeOOS, "GetSecretParameter", name, "", time.Millisecond)
		m.CacheLookup(fetch.TypeOOS, name, fetch.OutcomeMiss)
	}
	s := scrape(t, m)
	for _, fam := range []string{"upstream_requests_total", "cache_requests_total"} {
		if got := len(s.LabelValues(p+fam, "object")); got > 1000 || got == 0 {
			t.Errorf("%s has %d distinct objects after %d served, want 1..1000", fam, got, n)
		}
	}
	last := fmt.Sprintf("obj-%d", n-1)
	want(t, s, 1, p+"cache_requests_total", "outcome", "miss", "object", last)
	if s.Has(p+"cache_requests_total", "object", "obj-0") || s.Has(p+"upstream_requests_total", "object", "obj-0") {
		t.Error("the oldest object is still labelled")
	}
}

func TestObjectLabelsMaxEvictsLeastRecentlyUsed(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true, ObjectLabelsMax: 2})
	serve := func(name string) {
		m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", name, "", time.Millisecond)
		m.CacheLookup(fetch.TypeKMS, name, fetch.OutcomeMiss)
	}
	serve("a")
	serve("b")
	m.CacheLookup(fetch.TypeKMS, "a", fetch.OutcomeHit) // a is used again: b is now the oldest
	serve("c")
	s := scrape(t, m)
	got := s.LabelValues(p+"cache_requests_total", "object")
	if len(got) != 2 || !s.Has(p+"cache_requests_total", "object", "a") || !s.Has(p+"cache_requests_total", "object", "c") {
		t.Errorf("objects %v, want a and c", got)
	}
	if s.Has(p+"upstream_requests_total", "object", "b") {
		t.Error("the evicted object's upstream series remain")
	}
	want(t, s, 2, p+"cache_requests_total", "object", "a")
	// The same name in KMS and OOS is two objects: the OOS a evicts the
	// KMS a (used before c), and only its series.
	m.UpstreamCall(fetch.TypeOOS, "GetSecretParameter", "a", "", time.Millisecond)
	s = scrape(t, m)
	want(t, s, 1, p+"upstream_requests_total", "service", "oos", "object", "a")
	if s.Has(p+"upstream_requests_total", "service", "kms", "object", "a") || s.Has(p+"cache_requests_total", "type", "kms", "object", "a") {
		t.Error("the KMS object a was not evicted")
	}
	want(t, s, 1, p+"upstream_requests_total", "service", "kms", "object", "c")
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
