package events

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// upstream is a value whose version and bytes a test sets.
type upstream struct {
	mu             sync.Mutex
	value, version string
}

func (u *upstream) set(value, version string) {
	u.mu.Lock()
	u.value, u.version = value, version
	u.mu.Unlock()
}

func (u *upstream) fetch(context.Context) (fetch.Result, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return fetch.Result{Data: fetch.Bytes(u.value), Version: u.version}, nil
}

// Against the real cache: its first value, and refreshes that bring the
// same value, publish nothing that posts; a refresh with a new version
// makes one Rotation for the pod that mounted the old one, with both
// versions and no value.
func TestCacheChangesOnlyOnNewVersions(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c := fetch.NewCache(fetch.CacheOptions{TTL: time.Minute, Now: clk.now})
	r := New(&fakeSink{}, Options{Now: clk.now})
	var changes []fetch.Event
	var mu sync.Mutex
	defer c.Subscribe(func(ev fetch.Event) { mu.Lock(); changes = append(changes, ev); mu.Unlock() })()
	defer c.Subscribe(r.OnChange)()

	up := &upstream{value: "s3cr3t-one", version: "v1"}
	k := key("db")
	e, _, err := c.Get(context.Background(), k, up.fetch)
	if err != nil {
		t.Fatal(err)
	}
	r.Mounted("app", "a", "u", []fetch.ObjectResult{{Object: &fetch.Object{Name: "db", Type: fetch.TypeKMS, File: "db"}, Key: k, Entry: e}})

	refresh := func() {
		t.Helper()
		clk.add(55 * time.Second) // past 0.9 TTL: due
		if _, _, err := c.Get(context.Background(), k, up.fetch); err != nil {
			t.Fatal(err)
		}
		c.RefreshNow()
	}
	refresh()
	refresh()
	if got := queued(r); len(got) != 0 {
		t.Fatalf("rotations %q after refreshes that changed nothing", names(got))
	}
	mu.Lock()
	if len(changes) != 1 || changes[0].Old != nil {
		t.Fatalf("the cache published %d changes, want only the first value's", len(changes))
	}
	mu.Unlock()

	up.set("s3cr3t-two", "v2")
	refresh()
	got := queued(r)
	if names(got) != "app/a kms/db v1->v2" {
		t.Fatalf("rotations %q, want one for app/a", names(got))
	}
	for _, s := range []string{Message(got[0]), EventName(got[0])} {
		if strings.Contains(s, "s3cr3t") {
			t.Fatalf("%q holds a value", s)
		}
	}
	refresh()
	if got := queued(r); len(got) != 0 {
		t.Fatalf("rotations %q after an unchanged refresh", names(got))
	}
}
