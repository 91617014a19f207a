package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// blockingUpstream is a read that never answers: it returns only when its
// context ends, and counts the reads still running.
type blockingUpstream struct {
	running atomic.Int32
	started chan struct{}
}

func (b *blockingUpstream) fetch(ctx context.Context) (Result, error) {
	b.running.Add(1)
	defer b.running.Add(-1)
	b.started <- struct{}{}
	<-ctx.Done()
	return Result{}, ctx.Err()
}

// TestRunEndsTheCacheGoroutines: a refresh-ahead and a detached read (its
// caller gave up) are both stuck upstream when Run's context ends. Run
// returns only after both have returned, and nothing the cache started is
// left running (no janitor either). The test runs in a synctest bubble: the
// cache reads the bubble's clock, so sleeping to the refresh point is
// exact, and a goroutine that never starts or never ends fails at once
// instead of after a real timeout.
func TestRunEndsTheCacheGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, testRunEndsTheCacheGoroutines)
}

func testRunEndsTheCacheGoroutines(t *testing.T) {
	const ttl = 200 * time.Millisecond                                                // the sweep ticks every 10ms
	c := NewCache(CacheOptions{TTL: ttl, FetchTimeout: time.Hour, RefreshJitter: -1}) // RefreshAt exactly
	up := &fakeUpstream{value: "v", version: "1"}
	blocked := &blockingUpstream{started: make(chan struct{}, 2)}
	refreshed := Key{Identity: "id", Region: "cn-hangzhou", Endpoint: "e", Type: TypeKMS, Name: "refreshed"}
	detached := Key{Identity: "id", Region: "cn-hangzhou", Endpoint: "e", Type: TypeKMS, Name: "detached"}

	// An entry read recently; its next fetch (the refresh) blocks.
	if _, o, err := c.Get(context.Background(), refreshed, up.fetch); err != nil || o != OutcomeMiss {
		t.Fatalf("first read: %s %v", o, err)
	}
	if _, o, _ := c.Get(context.Background(), refreshed, blocked.fetch); o != OutcomeHit {
		t.Fatalf("second read: %s", o)
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		c.Run(runCtx)
	}()

	// A caller that gives up: its fetch goes on, detached from it.
	gctx, giveUp := context.WithCancel(context.Background())
	getDone := make(chan error, 1)
	go func() {
		_, _, err := c.Get(gctx, detached, blocked.fetch)
		getDone <- err
	}()
	waitStarted(t, blocked.started, "the detached read")
	giveUp()
	if err := <-getDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v", err)
	}

	// Before RefreshAt (0.9 TTL) nothing is refreshed; past it, the sweep
	// starts the refresh-ahead.
	time.Sleep(ttl * 85 / 100)
	synctest.Wait()
	if n := blocked.running.Load(); n != 1 {
		t.Fatalf("%d blocked reads running before RefreshAt, want only the detached read", n)
	}
	time.Sleep(ttl * 10 / 100)
	waitStarted(t, blocked.started, "the refresh-ahead")
	if n := blocked.running.Load(); n != 2 {
		t.Fatalf("%d blocked reads running, want the refresh and the detached read", n)
	}

	stopRun()
	select {
	case <-runDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := blocked.running.Load(); n != 0 {
		t.Fatalf("Run returned with %d upstream reads still running", n)
	}

	// After Run the cache still answers, in line and under the caller's
	// context: no goroutine is started any more.
	other := Key{Identity: "id", Region: "cn-hangzhou", Endpoint: "e", Type: TypeKMS, Name: "after"}
	if e, o, err := c.Get(context.Background(), other, up.fetch); err != nil || o != OutcomeMiss || string(e.Data) != "v" {
		t.Fatalf("a read after Run: %s %v", o, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	slow := &blockingUpstream{started: make(chan struct{}, 1)}
	last := Key{Identity: "id", Region: "cn-hangzhou", Endpoint: "e", Type: TypeKMS, Name: "last"}
	if _, _, err := c.Get(ctx, last, slow.fetch); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a blocked read after Run: %v", err)
	}
	if n := slow.running.Load(); n != 0 {
		t.Fatalf("a read after Run outlived its caller (%d running)", n)
	}
}

// waitStarted waits for a blocked read to start. In a bubble the timeout
// is the bubble's: it fires as soon as nothing else can run.
func waitStarted(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not start", what)
	}
}

// TestCacheEvictsIdleEntries: the sweep drops what nobody read for
// IdleEvict, and never a pinned entry.
func TestCacheEvictsIdleEntries(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := NewCache(CacheOptions{TTL: time.Minute, IdleEvict: 3 * time.Minute, Now: clk.Now})
	up := &fakeUpstream{value: "v", version: "1"}
	pinned := Key{Identity: "id", Region: "cn-hangzhou", Endpoint: "e", Type: TypeKMS, Name: "pinned"}
	if _, _, err := c.Get(context.Background(), testKey, up.fetch); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(context.Background(), pinned, up.fetch); err != nil {
		t.Fatal(err)
	}
	unpin := c.Pin(pinned, up.fetch)
	clk.Add(2 * time.Minute)
	c.RefreshNow()
	if c.Len() != 2 {
		t.Fatalf("%d entries before IdleEvict, want 2", c.Len())
	}
	clk.Add(2 * time.Minute)
	c.RefreshNow()
	if _, ok := c.Peek(testKey); ok {
		t.Fatal("an entry idle past IdleEvict is still cached")
	}
	if _, ok := c.Peek(pinned); !ok {
		t.Fatal("a pinned entry was evicted")
	}
	unpin()
	clk.Add(4 * time.Minute)
	c.RefreshNow()
	if c.Len() != 0 {
		t.Fatalf("%d entries after the unpinned one went idle, want 0", c.Len())
	}
}

// TestKMSReadEndsWithItsContext: the KMS client has no context-aware call;
// the source still stops the HTTP request when the caller's context ends,
// instead of leaving it running aside until the read timeout.
func TestKMSReadEndsWithItsContext(t *testing.T) {
	entered, left := make(chan struct{}, 1), make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
		left <- struct{}{}
	}))
	defer ts.Close()
	src, err := NewSDKSource(SDKOptions{ConnectTimeout: time.Second, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	id, err := auth.StaticAccessKey(auth.ModeStatic, "LTAIx", "secret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, err = src.Get(ctx, id, Target{Type: TypeKMS, Name: "n", Region: "cn-hangzhou", Endpoint: ts.URL})
	if KindOf(err) != KindCanceled {
		t.Fatalf("err %v, want canceled", err)
	}
	select {
	case <-left:
	case <-time.After(5 * time.Second):
		t.Fatal("the KMS request was still running 5s after its context ended")
	}
}
