package events

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// fakeSink records what is posted; with block set, Post waits for it.
type fakeSink struct {
	mu     sync.Mutex
	posted []Rotation
	at     []time.Time
	block  chan struct{}
	err    error
}

func (s *fakeSink) Post(ctx context.Context, r Rotation) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posted = append(s.posted, r)
	s.at = append(s.at, time.Now())
	return s.err
}

func (s *fakeSink) got() []Rotation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rotation(nil), s.posted...)
}

// counts is an Observer.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) RotationEvent(r string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r]++
}

func (c *counts) get(r string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[r]
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func key(name string) fetch.Key {
	return fetch.Key{Identity: "fp", Region: "cn-hangzhou", Type: fetch.TypeKMS, Name: name}
}

// result is a successful object of a Mount: name mounted as file, at version.
func result(name, file, version string) fetch.ObjectResult {
	return fetch.ObjectResult{
		Object: &fetch.Object{Name: name, Type: fetch.TypeKMS, File: file},
		Key:    key(name), Outcome: fetch.OutcomeHit,
		Entry: &fetch.Entry{Data: fetch.Bytes("secret value of " + name), Version: version},
	}
}

func change(name, from, to string) fetch.Event {
	return fetch.Event{Key: key(name), Old: &fetch.Entry{Version: from, Data: fetch.Bytes("old value")}, New: &fetch.Entry{Version: to, Data: fetch.Bytes("new value")}}
}

// queued empties the queue without posting (the tests that do not Run).
func queued(r *Recorder) []Rotation {
	var out []Rotation
	for {
		select {
		case rot := <-r.queue:
			out = append(out, rot)
		default:
			return out
		}
	}
}

func names(rs []Rotation) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%s %s %s->%s", r.Namespace, r.Pod, r.Object, r.OldVersion, r.NewVersion))
	}
	return strings.Join(out, "; ")
}

// One Rotation per pod that mounted the changed value, with the pod, its
// UID, the object, its file and both versions; pods that did not mount it
// get none.
func TestOneRotationPerAffectedPod(t *testing.T) {
	r := New(&fakeSink{}, Options{})
	r.Mounted("app", "a", "uid-a", []fetch.ObjectResult{result("db", "db-pass", "v1"), result("api", "api", "v7")})
	r.Mounted("app", "b", "uid-b", []fetch.ObjectResult{result("db", "db-pass", "v1")})
	r.Mounted("other", "c", "uid-c", []fetch.ObjectResult{result("api", "api", "v7")})

	r.OnChange(change("db", "v1", "v2"))
	got := queued(r)
	if names(got) != "app/a kms/db v1->v2; app/b kms/db v1->v2" && names(got) != "app/b kms/db v1->v2; app/a kms/db v1->v2" {
		t.Fatalf("rotations %q, want one for app/a and one for app/b", names(got))
	}
	for _, rot := range got {
		if rot.UID != "uid-"+rot.Pod || rot.File != "db-pass" {
			t.Errorf("rotation %+v: want the pod's UID and the file db-pass", rot)
		}
	}
}

// Nothing is posted for a first value, a value refused upstream, a change
// without a new version, or a pod already on the new version; and at most
// one Rotation per (pod, object, new version), however often the change is
// reported or under however many keys the pod mounted the object.
func TestNoRotationWithoutANewVersionAndNoDuplicates(t *testing.T) {
	r := New(&fakeSink{}, Options{})
	r.Mounted("app", "a", "uid-a", []fetch.ObjectResult{result("db", "db", "v1")})
	// The same object read with another selector (a history): another key.
	hist := result("db", "db-history", "v1")
	hist.Key.Selector = "history=2"
	r.Mounted("app", "a", "uid-a", []fetch.ObjectResult{hist})
	r.Mounted("app", "fresh", "uid-f", []fetch.ObjectResult{result("db", "db", "v2")})

	r.OnChange(fetch.Event{Key: key("db"), New: &fetch.Entry{Version: "v1"}})                       // first value
	r.OnChange(fetch.Event{Key: key("db"), Old: &fetch.Entry{Version: "v1"}, Err: fmt.Errorf("x")}) // refused
	r.OnChange(fetch.Event{Key: key("db"), Old: &fetch.Entry{Version: "v1", Data: fetch.Bytes("a")}, New: &fetch.Entry{Version: "v1", Data: fetch.Bytes("b")}})
	// A read in the failover region and back is the same version.
	r.OnChange(change("db", "v1", "v1@cn-shanghai"))
	r.OnChange(change("db", "v1@cn-shanghai", "v1"))
	if got := queued(r); len(got) != 0 {
		t.Fatalf("rotations %q for changes without a new version", names(got))
	}

	r.OnChange(change("db", "v1", "v2"))
	r.OnChange(change("db", "v1", "v2")) // reported again
	hev := change("db", "v1", "v2")
	hev.Key = hist.Key
	r.OnChange(hev) // the other key of the same object
	if got := queued(r); names(got) != "app/a kms/db v1->v2" {
		t.Fatalf("rotations %q, want exactly one for app/a (app/fresh mounted v2 already)", names(got))
	}

	// A later version is a new Event; the pod's Mount of it ends them.
	r.OnChange(change("db", "v2", "v3"))
	r.Mounted("app", "a", "uid-a", []fetch.ObjectResult{result("db", "db", "v3")})
	r.OnChange(change("db", "v2", "v3"))
	if got := queued(r); names(got) != "app/a kms/db v2->v3; app/fresh kms/db v2->v3" && names(got) != "app/fresh kms/db v2->v3; app/a kms/db v2->v3" {
		t.Fatalf("rotations %q, want one per pod for v3", names(got))
	}
}

// Failed objects of a Mount (none reach Mounted today, but the results
// may carry them) and requests without a pod are not recorded.
func TestMountedSkipsFailuresAndAnonymousMounts(t *testing.T) {
	r := New(&fakeSink{}, Options{})
	failed := result("gone", "gone", "")
	failed.Entry, failed.Err = nil, fmt.Errorf("not found")
	r.Mounted("app", "a", "", []fetch.ObjectResult{failed, result("db", "db", "v1")})
	r.Mounted("", "b", "uid-b", []fetch.ObjectResult{result("db", "db", "v1")})
	r.Mounted("app", "", "uid-c", []fetch.ObjectResult{result("db", "db", "v1")})
	if n, k := r.Pods(), r.Keys("app", "a", ""); n != 1 || k != 1 {
		t.Fatalf("%d pods, %d keys for app/a; want 1 pod (no UID: keyed by name) with 1 key", n, k)
	}
	r.OnChange(change("db", "v1", "v2"))
	if got := queued(r); names(got) != "app/a kms/db v1->v2" || got[0].UID != "" {
		t.Fatalf("rotations %q", names(got))
	}
}

// The record is bounded: MaxPods pods (the least recently mounted go
// first), MaxKeysPerPod values per pod (the one mounted longest ago goes
// first), and a pod not mounted again for PodExpiry is forgotten, as is a
// value of a pod that has not mounted it for that long.
func TestRecordBounds(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	r := New(&fakeSink{}, Options{MaxPods: 3, MaxKeysPerPod: 2, PodExpiry: 10 * time.Minute, Now: clk.now})

	for i := range 4 {
		clk.add(time.Second)
		r.Mounted("app", fmt.Sprint("p", i), fmt.Sprint("u", i), []fetch.ObjectResult{result("db", "db", "v1")})
	}
	if n := r.Pods(); n != 3 {
		t.Fatalf("%d pods remembered, want the cap 3", n)
	}
	if r.Keys("app", "p0", "u0") != 0 || r.Keys("app", "p3", "u3") != 1 {
		t.Fatal("the cap dropped the wrong pod: want the least recently mounted (p0) gone")
	}
	// p1 mounts again: p2 is now the least recent and goes next.
	clk.add(time.Second)
	r.Mounted("app", "p1", "u1", []fetch.ObjectResult{result("db", "db", "v1")})
	r.Mounted("app", "p4", "u4", nil)
	if r.Keys("app", "p2", "u2") != 0 || r.Keys("app", "p1", "u1") != 1 {
		t.Fatal("re-mounting did not keep p1 over p2")
	}

	// Keys per pod: the oldest value goes first.
	for i, n := range []string{"a", "b", "c"} {
		clk.add(time.Second)
		r.Mounted("app", "p1", "u1", []fetch.ObjectResult{result(n, n, fmt.Sprint("v", i))})
	}
	if k := r.Keys("app", "p1", "u1"); k != 2 {
		t.Fatalf("%d keys for p1, want the cap 2", k)
	}
	r.OnChange(change("db", "v1", "v2")) // p1's db was the oldest: dropped
	r.OnChange(change("a", "v0", "v9"))  // then a
	r.OnChange(change("c", "v2", "v9"))
	if got := queued(r); names(got) != "app/p3 kms/db v1->v2; app/p1 kms/c v2->v9" {
		t.Fatalf("rotations %q: want db for p3 only (p1 dropped it, p0 and p2 are gone), c for p1", names(got))
	}

	// Expiry: nobody mounts for PodExpiry; every pod is forgotten, and a
	// change posts nothing.
	clk.add(10 * time.Minute)
	r.OnChange(change("c", "v9", "v10"))
	if n := r.Pods(); n != 0 {
		t.Fatalf("%d pods remembered after PodExpiry without a Mount", n)
	}
	if got := queued(r); len(got) != 0 {
		t.Fatalf("rotations %q for forgotten pods", names(got))
	}

	// A value the pod stopped mounting (another volume, gone) expires too,
	// while the pod's other values stay.
	r.Mounted("app", "p", "u", []fetch.ObjectResult{result("old", "old", "v1"), result("kept", "kept", "v1")})
	for range 3 {
		clk.add(5 * time.Minute)
		r.Mounted("app", "p", "u", []fetch.ObjectResult{result("kept", "kept", "v1")})
	}
	if k := r.Keys("app", "p", "u"); k != 1 {
		t.Fatalf("%d keys, want only the value the pod still mounts", k)
	}
}

// The default expiry follows the cache TTL: five TTLs, at least 10 minutes.
func TestPodExpiryDefault(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{0, 10 * time.Minute}, {2 * time.Minute, 10 * time.Minute}, {5 * time.Minute, 25 * time.Minute},
	} {
		r := New(&fakeSink{}, Options{CacheTTL: c.ttl})
		if r.opts.PodExpiry != c.want {
			t.Errorf("CacheTTL %v: PodExpiry %v, want %v", c.ttl, r.opts.PodExpiry, c.want)
		}
	}
}

// A full queue drops and counts, and OnChange returns at once even while
// the API server does not answer: it is the cache's callback.
func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &fakeSink{block: make(chan struct{})}
	obs := &counts{}
	r := New(sink, Options{QueueSize: 2, Observer: obs})
	for i := range 6 {
		r.Mounted("app", fmt.Sprint("p", i), fmt.Sprint("u", i), []fetch.ObjectResult{result("db", "db", "v1")})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()

	returned := make(chan struct{})
	go func() { r.OnChange(change("db", "v1", "v2")); close(returned) }()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("OnChange blocked on a full queue")
	}
	// Run holds at most one (blocked in Post); the queue two; the rest dropped.
	if d := obs.get(ResultDropped); d < 3 || d > 4 {
		t.Fatalf("%d dropped, want 3 or 4 of 6 (queue 2, one maybe in Post)", d)
	}
	cancel()
	<-done
	// What was queued when Run stopped is dropped too; nothing is lost
	// uncounted.
	if d, p := obs.get(ResultDropped), obs.get(ResultPosted)+obs.get(ResultFailed); d+p != 6 {
		t.Fatalf("dropped %d + posted or failed %d, want 6", d, p)
	}
	close(sink.block)
}

// Posts go through a token bucket: Burst at once, then QPS a second. The
// bubble's clock makes the spacing exact.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{}
		obs := &counts{}
		r := New(sink, Options{QPS: 2, Burst: 3, Observer: obs})
		for i := range 7 {
			r.Mounted("app", fmt.Sprint("p", i), fmt.Sprint("u", i), []fetch.ObjectResult{result("db", "db", "v1")})
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		start := time.Now()
		r.OnChange(change("db", "v1", "v2"))
		synctest.Wait()
		if n := len(sink.got()); n != 3 {
			t.Fatalf("%d posted at once, want the burst 3", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(sink.got()); n != 7 {
			t.Fatalf("%d posted after 2s, want 3 + 2/s*2s = 7", n)
		}
		sink.mu.Lock()
		for i, at := range sink.at {
			want := time.Duration(max(0, i-2)) * 500 * time.Millisecond
			if d := at.Sub(start); d < want-time.Millisecond || d > want+time.Millisecond {
				t.Errorf("post %d at +%v, want +%v", i, d, want)
			}
		}
		sink.mu.Unlock()
		if obs.get(ResultPosted) != 7 {
			t.Errorf("posted counted %d, want 7", obs.get(ResultPosted))
		}
		cancel()
		<-done
	})
}

// A post the API server refuses is counted as failed, one it already has
// as a duplicate; neither is retried, and Run goes on.
func TestPostResults(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ResultPosted}, {ErrExists, ResultDuplicate}, {fmt.Errorf("post event: HTTP 403"), ResultFailed},
		{fmt.Errorf("wrapped: %w", ErrExists), ResultDuplicate},
	} {
		sink := &fakeSink{err: c.err}
		obs := &counts{}
		r := New(sink, Options{Observer: obs})
		r.Mounted("app", "a", "u", []fetch.ObjectResult{result("db", "db", "v1")})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		r.OnChange(change("db", "v1", "v2"))
		deadline := time.Now().Add(10 * time.Second)
		for obs.get(c.want) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("error %v: never counted as %s (%v)", c.err, c.want, obs.n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		if len(sink.got()) != 1 {
			t.Errorf("error %v: %d posts, want 1 (no retry)", c.err, len(sink.got()))
		}
	}
}

// Mounts and changes race freely (run with -race): the record stays
// within its bounds and every rotation has a pod that mounted the value.
func TestConcurrentMountsAndChanges(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &fakeSink{}
	r := New(sink, Options{MaxPods: 50, MaxKeysPerPod: 4, QPS: 1e6, Burst: 1e6, QueueSize: 1 << 16})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 500 {
				n := fmt.Sprint("o", i%6)
				r.Mounted("app", fmt.Sprint("p", g, "-", i%20), "", []fetch.ObjectResult{result(n, n, "v0")})
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 200 {
				r.OnChange(change(fmt.Sprint("o", i%6), "v0", fmt.Sprint("v", g*1000+i+1)))
			}
		}()
	}
	wg.Wait()
	if n := r.Pods(); n > 50 {
		t.Errorf("%d pods remembered, over the cap 50", n)
	}
	r.mu.Lock()
	for _, p := range r.pods {
		if len(p.keys) > 4 || len(p.posted) > 8 {
			t.Errorf("pod %s: %d keys, %d posted pairs, over the caps 4 and 8", p.id, len(p.keys), len(p.posted))
		}
	}
	r.mu.Unlock()
	cancel()
	<-done
}

// A directory object's listing is not a value the pod mounted (its
// members are): a new listing posts nothing. An optional object created or
// deleted upstream posts, with a message that says so.
func TestListingsSkippedAbsentObjectsPosted(t *testing.T) {
	r := New(&fakeSink{}, Options{})
	listing := result("tags:[]", "secrets", "list-2-abc")
	listing.Object.Dir = &fetch.Dir{}
	absent := result("later", "later", fetch.AbsentVersion)
	absent.Entry = &fetch.Entry{Absent: true, Version: fetch.AbsentVersion}
	r.Mounted("app", "a", "u", []fetch.ObjectResult{listing, absent, result("db", "db", "v1")})
	if k := r.Keys("app", "a", "u"); k != 2 {
		t.Fatalf("%d keys, want the absent object and db, not the listing", k)
	}
	r.OnChange(change("tags:[]", "list-2-abc", "list-3-def"))
	r.OnChange(change("later", fetch.AbsentVersion, "v1"))
	r.OnChange(change("db", "v1", fetch.AbsentVersion))
	got := queued(r)
	if names(got) != "app/a kms/later absent->v1; app/a kms/db v1->absent" {
		t.Fatalf("rotations %q", names(got))
	}
	if m := Message(got[0]); !strings.Contains(m, "was created upstream") {
		t.Errorf("message %q", m)
	}
	if m := Message(got[1]); !strings.Contains(m, "was deleted upstream") {
		t.Errorf("message %q", m)
	}
}
