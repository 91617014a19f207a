package metrics_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/events"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics"
)

func changeOf(t fetch.ObjectType, name string, old *fetch.Entry, at time.Time) fetch.Event {
	return fetch.Event{
		Key: fetch.Key{Type: t, Name: name}, Old: old,
		New: &fetch.Entry{Version: "v2", Data: fetch.Bytes("new secret value"), FetchedAt: at},
	}
}

// The last change time of a value: set by a change of a cached value, not
// by a first value nor a refusal; by type only, without object names.
func TestSecretLastChangeByType(t *testing.T) {
	m := metrics.New(metrics.Options{})
	old := &fetch.Entry{Version: "v1", Data: fetch.Bytes("old secret value")}
	m.CacheChanged(changeOf(fetch.TypeKMS, "db-pass", nil, time.Unix(100, 0))) // first value
	m.CacheChanged(fetch.Event{Key: fetch.Key{Type: fetch.TypeKMS, Name: "db-pass"}, Old: old})
	listing := changeOf(fetch.TypeKMS, `tags:[["team","pay"]]`, old, time.Unix(200, 0))
	listing.Key.Selector = "list"
	m.CacheChanged(listing) // a listing's names changed: not a value
	s := scrape(t, m)
	if s.Has(p + "secret_last_change_timestamp_seconds") {
		t.Fatal("a first value, a refusal or a listing set the last change time")
	}
	m.CacheChanged(changeOf(fetch.TypeKMS, "db-pass", old, time.Unix(1_700_000_000, 500_000_000)))
	m.CacheChanged(changeOf(fetch.TypeOOS, "p", old, time.Unix(1_700_000_100, 0)))
	s = scrape(t, m)
	want(t, s, 1_700_000_000.5, p+"secret_last_change_timestamp_seconds", "type", "kms")
	want(t, s, 1_700_000_100, p+"secret_last_change_timestamp_seconds", "type", "oos")
	if strings.Contains(s.Text, "db-pass") || strings.Contains(s.Text, "secret value") {
		t.Error("an object name or a value is in /metrics without --metrics-object-labels")
	}
}

// With --metrics-object-labels the gauge is per object too, and follows
// the same cap: an object evicted from the labels leaves this family too.
func TestSecretLastChangeByObject(t *testing.T) {
	m := metrics.New(metrics.Options{ObjectLabels: true, ObjectLabelsMax: 2})
	old := &fetch.Entry{Version: "v1"}
	m.CacheChanged(changeOf(fetch.TypeKMS, "a", old, time.Unix(10, 0)))
	m.CacheChanged(changeOf(fetch.TypeKMS, "b", old, time.Unix(20, 0)))
	s := scrape(t, m)
	want(t, s, 10, p+"secret_last_change_timestamp_seconds", "type", "kms", "object", "a")
	want(t, s, 20, p+"secret_last_change_timestamp_seconds", "type", "kms", "object", "b")
	m.CacheLookup(fetch.TypeKMS, "c", fetch.OutcomeMiss) // evicts a, the least recently used
	s = scrape(t, m)
	if s.Has(p+"secret_last_change_timestamp_seconds", "object", "a") {
		t.Error("the evicted object's last change series remains")
	}
	want(t, s, 20, p+"secret_last_change_timestamp_seconds", "type", "kms", "object", "b")
}

// Rotation events by result, exported at 0 when events are on, and the
// results are the ones events reports.
func TestRotationEvents(t *testing.T) {
	if !slices.Equal(events.Results, []string{"posted", "duplicate", "dropped", "failed"}) {
		t.Fatalf("events.Results %v: update metrics' rotationResults", events.Results)
	}
	off := scrape(t, metrics.New(metrics.Options{}))
	if off.Has(p + "rotation_events_total") {
		t.Error("rotation events exported without --emit-events")
	}
	m := metrics.New(metrics.Options{RotationEvents: true})
	m.RotationEvent(events.ResultPosted)
	m.RotationEvent(events.ResultPosted)
	m.RotationEvent(events.ResultDropped)
	s := scrape(t, m)
	want(t, s, 2, p+"rotation_events_total", "result", "posted")
	want(t, s, 1, p+"rotation_events_total", "result", "dropped")
	for _, r := range events.Results {
		if !s.Has(p+"rotation_events_total", "result", r) {
			t.Errorf("result %s is not exported at 0", r)
		}
	}
}
