package fetch

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeUpstream struct {
	calls   atomic.Int32
	mu      sync.Mutex
	value   string
	version string
	err     error
	delay   time.Duration
}

func (f *fakeUpstream) fetch(ctx context.Context) (Result, error) {
	f.calls.Add(1)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Result{}, f.err
	}
	return Result{Data: Bytes(f.value), Version: f.version}, nil
}

func (f *fakeUpstream) set(value, version string, err error) {
	f.mu.Lock()
	f.value, f.version, f.err = value, version, err
	f.mu.Unlock()
}

var testKey = Key{Identity: "id", Region: "cn-hangzhou", Endpoint: "e", Type: TypeKMS, Name: "n"}

// TestCacheCoalescesMisses: 50 concurrent misses of one key make one
// upstream call. In the bubble the upstream's delay ends only once every
// caller is blocked, so all 50 have joined the one fetch by then.
func TestCacheCoalescesMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstream{value: "v", version: "1", delay: 50 * time.Millisecond}
		c := NewCache(CacheOptions{TTL: time.Minute})
		var wg sync.WaitGroup
		outcomes := make(chan Outcome, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, o, err := c.Get(context.Background(), testKey, up.fetch)
				if err != nil || string(e.Data) != "v" {
					t.Errorf("get: %v", err)
				}
				outcomes <- o
			}()
		}
		wg.Wait()
		close(outcomes)
		if n := up.calls.Load(); n != 1 {
			t.Fatalf("%d upstream calls for 50 concurrent misses, want 1", n)
		}
		count := map[Outcome]int{}
		for o := range outcomes {
			count[o]++
		}
		if count[OutcomeMiss] != 1 || count[OutcomeCoalesced] != 49 {
			t.Fatalf("outcomes %v", count)
		}
	})
}

func TestCacheStaleIfErrorAndMaxStale(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	up := &fakeUpstream{value: "good", version: "1"}
	c := NewCache(CacheOptions{TTL: time.Minute, MaxStale: 10 * time.Minute, Now: clk.Now, RetryFailedAfter: time.Second})
	if _, o, _ := c.Get(context.Background(), testKey, up.fetch); o != OutcomeMiss {
		t.Fatalf("first get: %s", o)
	}
	clk.Add(30 * time.Second)
	if _, o, _ := c.Get(context.Background(), testKey, up.fetch); o != OutcomeHit {
		t.Fatalf("inside TTL: %s", o)
	}
	up.set("", "", &Error{Kind: KindUnavailable, Code: "InternalFailure"})
	clk.Add(time.Minute)
	e, o, err := c.Get(context.Background(), testKey, up.fetch)
	if err != nil || o != OutcomeStale || string(e.Data) != "good" || e.Version != "1" {
		t.Fatalf("past TTL with upstream failing: %v %s %+v", err, o, e)
	}
	st, _ := c.Status(testKey)
	if st.LastError == "" || !st.Stale || st.Version != "1" {
		t.Fatalf("status %+v", st)
	}
	calls := up.calls.Load()
	if _, o, _ := c.Get(context.Background(), testKey, up.fetch); o != OutcomeStale || up.calls.Load() != calls {
		t.Fatalf("a read right after a failure must not wait on upstream again (%s, %d calls)", o, up.calls.Load()-calls)
	}
	clk.Add(10 * time.Minute)
	_, _, err = c.Get(context.Background(), testKey, up.fetch)
	var se *StaleError
	if !errors.As(err, &se) || KindOf(err) != KindUnavailable {
		t.Fatalf("past max-stale: %v", err)
	}
	up.set("new", "2", nil)
	clk.Add(2 * time.Second)
	e, o, err = c.Get(context.Background(), testKey, up.fetch)
	if err != nil || o != OutcomeRefreshed || e.Version != "2" {
		t.Fatalf("recovery: %v %s %+v", err, o, e)
	}
}

// TestCacheEventsOnChangeOnly: Run refreshes a pinned entry ahead of its
// TTL; a refresh that brings the same version tells nobody, one that brings
// a new version is one event. The bubble's clock moves only when every
// goroutine (Run's sweep, its refreshes) is blocked, so each sleep below is
// exactly that many refresh periods.
func TestCacheEventsOnChangeOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 50 * time.Millisecond // refreshed at 0.9 TTL, swept every 10ms
		up := &fakeUpstream{value: "a", version: "1"}
		c := NewCache(CacheOptions{TTL: ttl})
		var mu sync.Mutex
		var events []Event
		cancel := c.Subscribe(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
		defer cancel()
		unpin := c.Pin(testKey, up.fetch)
		defer unpin()
		ctx, stop := context.WithCancel(context.Background())
		runDone := make(chan struct{})
		go func() {
			defer close(runDone)
			c.Run(ctx)
		}()
		defer func() { stop(); <-runDone }()

		time.Sleep(3 * ttl)
		synctest.Wait()
		if n := up.calls.Load(); n < 3 {
			t.Fatalf("%d upstream calls in 3 TTLs of a pinned entry, want at least 3", n)
		}
		mu.Lock()
		if len(events) != 1 || events[0].Old != nil || events[0].New.Version != "1" {
			t.Fatalf("events after refreshes of an unchanged value: %+v", events)
		}
		mu.Unlock()

		up.set("b", "2", nil)
		time.Sleep(ttl)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(events) != 2 || events[1].Old.Version != "1" || events[1].New.Version != "2" {
			t.Fatalf("no change event for the new version within a TTL: %+v", events)
		}
		if e, ok := c.Peek(testKey); !ok || string(e.Data) != "b" {
			t.Fatal("Peek does not see the refreshed value")
		}
	})
}

func TestCacheFailedMissIsNotKept(t *testing.T) {
	up := &fakeUpstream{err: &Error{Kind: KindNotFound}}
	c := NewCache(CacheOptions{TTL: time.Minute})
	if _, _, err := c.Get(context.Background(), testKey, up.fetch); KindOf(err) != KindNotFound {
		t.Fatalf("err %v", err)
	}
	if c.Len() != 0 {
		t.Fatalf("a failed name is kept (%d entries)", c.Len())
	}
}

// TestCacheCallerDeadlineKeepsTheFetch: a caller whose deadline passes
// during a miss gets its deadline error; the fetch goes on and fills the
// cache, so the next caller hits without a second upstream call.
func TestCacheCallerDeadlineKeepsTheFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstream{value: "v", version: "1", delay: 200 * time.Millisecond}
		c := NewCache(CacheOptions{TTL: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, _, err := c.Get(ctx, testKey, up.fetch); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		// Past the upstream's delay: the abandoned fetch has returned.
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if _, o, err := c.Get(context.Background(), testKey, up.fetch); err != nil || o != OutcomeHit {
			t.Fatalf("the abandoned fetch did not fill the cache: %s %v", o, err)
		}
		if n := up.calls.Load(); n != 1 {
			t.Fatalf("%d calls", n)
		}
	})
}

func TestBackoffHonoursHintAndCap(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 4, Base: 100 * time.Millisecond, Max: time.Second}
	for i := 0; i < 100; i++ {
		if d := backoff(p, 3, errors.New("x")); d < 0 || d > 400*time.Millisecond {
			t.Fatalf("attempt 3 backoff %v outside full jitter [0, 400ms]", d)
		}
	}
	if d := backoff(p, 1, &Error{Kind: KindThrottled, RetryAfter: 700 * time.Millisecond}); d != 700*time.Millisecond {
		t.Fatalf("hint ignored: %v", d)
	}
	if d := backoff(p, 1, &Error{Kind: KindThrottled, RetryAfter: time.Hour}); d != 2*time.Second {
		t.Fatalf("hint not capped: %v", d)
	}
}

func TestCacheRevocationIsNotRiddenOut(t *testing.T) {
	for _, k := range []Kind{KindPermission, KindNotFound, KindUnauthenticated} {
		clk := &clock{t: time.Unix(1000, 0)}
		up := &fakeUpstream{value: "good", version: "1"}
		c := NewCache(CacheOptions{TTL: time.Minute, MaxStale: time.Hour, Now: clk.Now})
		var events []Event
		c.Subscribe(func(e Event) { events = append(events, e) })
		if _, _, err := c.Get(context.Background(), testKey, up.fetch); err != nil {
			t.Fatal(err)
		}
		up.set("", "", &Error{Kind: k})
		clk.Add(2 * time.Minute)
		if _, _, err := c.Get(context.Background(), testKey, up.fetch); KindOf(err) != k {
			t.Fatalf("%s: past TTL the value was still served (err %v)", k, err)
		}
		if _, ok := c.Peek(testKey); ok {
			t.Fatalf("%s: the refused value is still cached", k)
		}
		if n := len(events); n != 2 || events[1].New != nil {
			t.Fatalf("%s: no revocation event: %+v", k, events)
		}
	}
}

func TestSDKClientsAreBounded(t *testing.T) {
	src, err := NewSDKSource(SDKOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.StaticAccessKey(auth.ModeStatic, "LTAIx", "secret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxClients+50; i++ {
		tg := Target{Type: TypeKMS, Name: "n", Region: "cn-hangzhou", Endpoint: "kst-" + strconv.Itoa(i) + "x.cryptoservice.kms.aliyuncs.com", Instance: true}
		if _, err := src.client(id, tg); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.Clients(); n > maxClients {
		t.Fatalf("%d SDK clients kept, want at most %d", n, maxClients)
	}
}

func TestRecordKeyRoundTrip(t *testing.T) {
	for _, k := range []Key{
		{},
		{Identity: "fp", Region: "cn-hangzhou", Endpoint: "http://127.0.0.1:1", Type: TypeOOSParameter, Name: "a/b", Selector: "history=3", Failover: "cn-shanghai"},
		{Identity: "fp", Type: TypeKMS, Name: "db"},
	} {
		r := &record{id: string(k.appendID(nil))}
		if got := r.key(); got != k {
			t.Fatalf("key() = %+v, want %+v", got, k)
		}
	}
}

func TestFreshKeepsTheFetchOfTheSameOwner(t *testing.T) {
	c := NewCache(CacheOptions{TTL: time.Minute})
	k := Key{Identity: "fp", Type: TypeKMS, Name: "db"}
	if _, _, err := c.Get(context.Background(), k, func(context.Context) (Result, error) { return Result{Data: Bytes("v"), Version: "1"}, nil }); err != nil {
		t.Fatal(err)
	}
	built := 0
	mk := func() FetchFunc { built++; return func(context.Context) (Result, error) { return Result{}, nil } }
	owner, other := new(int), new(int)
	for range 3 {
		if _, ok := c.Fresh(k, owner, mk); !ok {
			t.Fatal("no hit")
		}
	}
	if built != 1 {
		t.Fatalf("built %d fetch functions for one owner, want 1 (the first replaces Get's, which has none)", built)
	}
	c.Fresh(k, other, mk)
	if built != 2 {
		t.Fatal("a new owner's fetch function was not stored")
	}
	c.Fresh(k, []int{1}, mk) // not comparable: treated as new
	if built != 3 {
		t.Fatal("an owner that cannot be compared kept the old function")
	}
}

func TestRefreshJitter(t *testing.T) {
	c := NewCache(CacheOptions{TTL: 100 * time.Second})
	lo, hi := 100*time.Second, time.Duration(0)
	for i := 0; i < 200; i++ {
		r := &record{id: "k" + strconv.Itoa(i)}
		d := c.refreshAfter(r)
		if d > 90*time.Second || d <= 80*time.Second {
			t.Fatalf("refresh after %v, outside (80s, 90s]", d)
		}
		if d != c.refreshAfter(r) {
			t.Fatal("the offset of one entry moved")
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < 5*time.Second {
		t.Fatalf("200 entries spread over only %v of the 10s window", hi-lo)
	}
	// Members of one batch group are due together.
	g := batchGroup{identity: "fp", typ: TypeOOS, endpoint: "e", region: "r"}
	a, b := &record{id: "a"}, &record{id: "b"}
	a.member.Store(&batchMember{group: g})
	b.member.Store(&batchMember{group: g})
	if c.refreshAfter(a) != c.refreshAfter(b) {
		t.Fatal("one batch group got two refresh points")
	}
	if d := NewCache(CacheOptions{TTL: 100 * time.Second, RefreshJitter: -1}).refreshAfter(a); d != 90*time.Second {
		t.Fatalf("without jitter: %v", d)
	}
}
