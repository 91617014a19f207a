package metrics_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics"
)

// docs/operations.md has a table row for every family, naming each label.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "| `"+metrics.Namespace) {
			name := strings.SplitN(strings.TrimPrefix(l, "| `"), "`", 2)[0]
			rows[name] = l
		}
	}
	m := metrics.New(metrics.Options{ObjectLabels: true})
	m.Mount("success", time.Millisecond)
	m.Panic("x")
	m.CacheLookup(fetch.TypeKMS, "x", fetch.OutcomeHit)
	m.CacheRefresh(fetch.TypeKMS, true, nil)
	m.CacheEvicted()
	m.CacheEntries(1)
	m.UpstreamCall(fetch.TypeKMS, "GetSecretValue", "x", "", time.Millisecond)
	m.Retry(fetch.TypeKMS, fetch.KindThrottled)
	m.RateLimitWait(fetch.TypeKMS, time.Second)
	m.CredentialRefresh("rrsa", nil)
	m.FUSEOp("read", nil)
	m.CacheChanged(fetch.Event{Key: fetch.Key{Type: fetch.TypeKMS, Name: "x"}, Old: &fetch.Entry{}, New: &fetch.Entry{Version: "2"}})
	m.RotationEvent("posted")
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, metrics.Namespace) {
			continue
		}
		n++
		row, ok := rows[name]
		if !ok {
			t.Errorf("docs/operations.md has no row for %s", name)
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if !strings.Contains(row, "`"+lp.GetName()+"`") {
					t.Errorf("the row of %s does not name its label %s", name, lp.GetName())
				}
			}
		}
	}
	if n < 14 {
		t.Errorf("only %d families gathered", n)
	}
}
