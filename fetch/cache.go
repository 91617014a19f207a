package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

// Key identifies one cached upstream value. Identity is the credential's
// fingerprint, so two identities never share an entry.
type Key struct {
	Identity string
	Region   string
	Endpoint string
	Type     ObjectType
	Name     string
	Selector string // version selector (Object.Selector)
}

func (k Key) id() string {
	return strings.Join([]string{k.Identity, k.Region, k.Endpoint, string(k.Type), k.Name, k.Selector}, "\x00")
}

// Entry is an immutable snapshot of a value. A refresh publishes a new
// Entry; readers holding an old one keep consistent bytes.
type Entry struct {
	Data      Bytes
	Version   string
	FetchedAt time.Time
}

// FetchFunc reads a value upstream (with retries and limits already applied).
type FetchFunc func(ctx context.Context) (Result, error)

// Outcome says how a Get was answered.
type Outcome string

const (
	OutcomeHit       Outcome = "hit"       // fresh entry in memory
	OutcomeMiss      Outcome = "miss"      // fetched upstream for this caller
	OutcomeCoalesced Outcome = "coalesced" // waited for another caller's fetch
	OutcomeRefreshed Outcome = "refreshed" // expired entry refetched in line
	OutcomeStale     Outcome = "stale"     // upstream failing; last good value served
	OutcomeError     Outcome = "error"
)

// Event reports a refresh that published a new upstream version (or new
// bytes). Old is nil for the first value; New is nil when upstream refused
// the value for good (deleted, access revoked) and it is no longer served.
type Event struct {
	Key      Key
	Old, New *Entry
}

// Observer receives cache and upstream measurements (metrics). Methods must
// be cheap and must not block.
type Observer interface {
	CacheLookup(t ObjectType, name string, o Outcome)
	CacheRefresh(t ObjectType, changed bool, err error)
	CacheEvicted()
	CacheEntries(n int)
	UpstreamCall(t ObjectType, name, code string, d time.Duration)
	Retry(t ObjectType, k Kind)
	RateLimitWait(t ObjectType, d time.Duration)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) CacheLookup(ObjectType, string, Outcome)                {}
func (NopObserver) CacheRefresh(ObjectType, bool, error)                   {}
func (NopObserver) CacheEvicted()                                          {}
func (NopObserver) CacheEntries(int)                                       {}
func (NopObserver) UpstreamCall(ObjectType, string, string, time.Duration) {}
func (NopObserver) Retry(ObjectType, Kind)                                 {}
func (NopObserver) RateLimitWait(ObjectType, time.Duration)                {}

// CacheOptions tune the cache; zero values take the documented defaults.
type CacheOptions struct {
	// TTL is how long a value is served without asking upstream (2m).
	TTL time.Duration
	// MaxStale is how long past TTL the last good value is still served
	// while upstream fails (1h). Past it, reads fail.
	MaxStale time.Duration
	// RefreshAt is the fraction of TTL after which a recently read entry
	// is refreshed in the background (0.9: about one upstream call per
	// TTL; a refresh still in flight at expiry is waited out by serving the
	// current value, see revalidateGrace).
	RefreshAt float64
	// IdleEvict drops entries not read (nor pinned) for this long (3*TTL).
	IdleEvict time.Duration
	// FetchTimeout bounds one upstream fetch, retries included (30s).
	// Callers stop waiting at their own deadline; the fetch goes on and
	// fills the cache for the next caller.
	FetchTimeout time.Duration
	// RetryFailedAfter is how soon after a failed refresh another is tried
	// (min(TTL/4, 30s)); meanwhile reads of an expired entry get the stale
	// value at once instead of waiting on a failing upstream.
	RetryFailedAfter time.Duration
	Logger           *slog.Logger
	Observer         Observer
	Now              func() time.Time
}

func (o *CacheOptions) defaults() {
	if o.TTL <= 0 {
		o.TTL = 2 * time.Minute
	}
	if o.MaxStale < 0 {
		o.MaxStale = 0
	} else if o.MaxStale == 0 {
		o.MaxStale = time.Hour
	}
	if o.RefreshAt <= 0 || o.RefreshAt >= 1 {
		o.RefreshAt = 0.9
	}
	if o.IdleEvict <= 0 {
		o.IdleEvict = 3 * o.TTL
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 30 * time.Second
	}
	if o.RetryFailedAfter <= 0 {
		o.RetryFailedAfter = min(o.TTL/4, 30*time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Cache is the ONE node-wide cache. Misses for the same key coalesce into
// one upstream call; entries read recently are refreshed before they expire;
// a failing upstream is ridden out with the last good value up to MaxStale.
type Cache struct {
	opts  CacheOptions
	items *gocache.Cache // key id -> *record, sliding idle expiry
	sf    singleflight.Group

	subMu sync.Mutex
	subs  map[int]func(Event)
	subN  int

	refreshing sync.WaitGroup
}

type record struct {
	key      Key
	entry    atomic.Pointer[Entry]
	lastRead atomic.Int64 // unix nanos
	pins     atomic.Int32
	busy     atomic.Bool // a background refresh is running

	mu        sync.Mutex
	fetch     FetchFunc // latest caller's, so refreshes use fresh credentials
	lastErr   error
	lastErrAt time.Time
	failing   bool
}

func (r *record) fetchFn() FetchFunc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch
}

// NewCache returns a cache; call Run to start its refresher.
func NewCache(opts CacheOptions) *Cache {
	opts.defaults()
	c := &Cache{opts: opts, subs: map[int]func(Event){}}
	c.items = gocache.New(opts.IdleEvict, max(opts.IdleEvict/4, 50*time.Millisecond))
	c.items.OnEvicted(func(string, any) { c.opts.Observer.CacheEvicted() })
	return c
}

// TTL is the configured time to live.
func (c *Cache) TTL() time.Duration { return c.opts.TTL }

// Len is the number of entries.
func (c *Cache) Len() int { return c.items.ItemCount() }

func (c *Cache) lookup(k Key) *record {
	if v, ok := c.items.Get(k.id()); ok {
		return v.(*record)
	}
	return nil
}

// record returns the record for k, creating it; fetch replaces the stored
// fetch function so background refreshes use the newest credential.
func (c *Cache) record(k Key, fetch FetchFunc) *record {
	id := k.id()
	if v, ok := c.items.Get(id); ok {
		r := v.(*record)
		if fetch != nil {
			r.mu.Lock()
			r.fetch = fetch
			r.mu.Unlock()
		}
		return r
	}
	r := &record{key: k, fetch: fetch}
	if err := c.items.Add(id, r, gocache.DefaultExpiration); err != nil {
		// Lost a race: use the winner's record.
		if v, ok := c.items.Get(id); ok {
			return c.record(v.(*record).key, fetch)
		}
		c.items.Set(id, r, gocache.DefaultExpiration)
	}
	return r
}

func (c *Cache) touch(r *record) {
	r.lastRead.Store(c.opts.Now().UnixNano())
	// Slide the idle expiry.
	c.items.Set(r.key.id(), r, gocache.DefaultExpiration)
}

// Get returns the value for k, fetching it with fetch when it is missing or
// expired. It never waits past ctx; a fetch it started goes on and fills the
// cache.
func (c *Cache) Get(ctx context.Context, k Key, fetch FetchFunc) (*Entry, Outcome, error) {
	r := c.record(k, fetch)
	c.touch(r)
	now := c.opts.Now()
	e := r.entry.Load()
	if e != nil {
		age := now.Sub(e.FetchedAt)
		if age < c.opts.TTL {
			c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeHit)
			return e, OutcomeHit, nil
		}
		if err, recent := c.recentFailure(r, now); recent {
			if !servesStale(err) {
				c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeError)
				return nil, OutcomeError, err
			}
			return c.staleOr(k, e, age, err)
		}
		// A background refresh is already on its way: a hot entry does not
		// make a Mount wait on the network for the last moments of it.
		if r.busy.Load() && age < c.opts.TTL+c.revalidateGrace() {
			c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeHit)
			return e, OutcomeHit, nil
		}
		ne, _, err := c.load(ctx, r)
		if err == nil {
			c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeRefreshed)
			return ne, OutcomeRefreshed, nil
		}
		if ctx.Err() != nil || !servesStale(err) {
			c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeError)
			return nil, OutcomeError, err
		}
		return c.staleOr(k, e, age, err)
	}
	ne, shared, err := c.load(ctx, r)
	if err != nil {
		// A caller that gave up leaves the record: its fetch goes on and
		// fills the cache. A fetch that failed drops it (publish), so names
		// that fail are never kept.
		c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeError)
		return nil, OutcomeError, err
	}
	o := OutcomeMiss
	if shared {
		o = OutcomeCoalesced
	}
	c.opts.Observer.CacheLookup(k.Type, k.Name, o)
	return ne, o, nil
}

// servesStale reports whether a failed fetch may be ridden out with the
// last good value: throttling, outages, timeouts and the unknown. A secret
// deleted upstream, an access revoked or a credential rejected is an
// owner's decision and takes effect at once: the value is no longer served.
func servesStale(err error) bool {
	switch KindOf(err) {
	case KindNotFound, KindPermission, KindUnauthenticated, KindInvalid:
		return false
	}
	return true
}

// revalidateGrace is how long past TTL an entry whose background refresh is
// in flight is still served without waiting for it.
func (c *Cache) revalidateGrace() time.Duration {
	return min(c.opts.TTL/2, 30*time.Second)
}

// StaleError is returned once the last good value is older than TTL+MaxStale.
type StaleError struct {
	Age, MaxStale time.Duration
	Err           error
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("upstream has failed for longer than --max-stale (%s): the last good value is %s old; last error: %v",
		e.MaxStale, e.Age.Round(time.Second), e.Err)
}

func (e *StaleError) Unwrap() error { return e.Err }

func (c *Cache) staleOr(k Key, e *Entry, age time.Duration, err error) (*Entry, Outcome, error) {
	if age < c.opts.TTL+c.opts.MaxStale {
		c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeStale)
		return e, OutcomeStale, nil
	}
	c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeError)
	return nil, OutcomeError, &StaleError{Age: age, MaxStale: c.opts.MaxStale, Err: err}
}

func (c *Cache) recentFailure(r *record, now time.Time) (error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing && now.Sub(r.lastErrAt) < c.opts.RetryFailedAfter {
		return r.lastErr, true
	}
	return nil, false
}

// load runs one coalesced upstream fetch for r and waits for it or for ctx.
// shared reports that another caller's fetch answered this one.
func (c *Cache) load(ctx context.Context, r *record) (*Entry, bool, error) {
	launched := false // set only by this caller's own fetch, read after it returns
	ch := c.sf.DoChan(r.key.id(), func() (any, error) {
		launched = true
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FetchTimeout)
		defer cancel()
		fn := r.fetchFn()
		if fn == nil {
			return nil, errors.New("no fetch function for this entry")
		}
		res, err := fn(fctx)
		return c.publish(r, res, err)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, !launched, res.Err
		}
		return res.Val.(*Entry), !launched, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// publish stores a fetch result and, after the store and with no lock held,
// tells subscribers when the version or the bytes changed.
func (c *Cache) publish(r *record, res Result, err error) (*Entry, error) {
	now := c.opts.Now()
	if err != nil {
		r.mu.Lock()
		first := !r.failing
		r.failing, r.lastErr, r.lastErrAt = true, err, now
		r.mu.Unlock()
		var revoked *Entry
		if !servesStale(err) {
			revoked = r.entry.Swap(nil)
		}
		if r.entry.Load() == nil && r.pins.Load() == 0 {
			c.items.Delete(r.key.id())
		}
		switch {
		case revoked != nil:
			c.opts.Logger.Warn("refresh refused upstream (deleted, access revoked or credential rejected): the value is no longer served",
				"type", r.key.Type, "object", r.key.Name, "code", errCode(err), "kind", KindOf(err).String(), "error", err.Error())
		case first && r.entry.Load() != nil:
			c.opts.Logger.Warn("refresh failed; serving the last good value until it recovers or --max-stale passes",
				"type", r.key.Type, "object", r.key.Name, "code", errCode(err), "kind", KindOf(err).String(), "error", err.Error())
		}
		c.opts.Observer.CacheRefresh(r.key.Type, false, err)
		if revoked != nil {
			c.emit(Event{Key: r.key, Old: revoked, New: nil})
		}
		return nil, err
	}
	ne := &Entry{Data: res.Data, Version: res.Version, FetchedAt: now}
	old := r.entry.Swap(ne)
	r.mu.Lock()
	recovered := r.failing && old != nil
	r.failing, r.lastErr = false, nil
	r.mu.Unlock()
	if recovered {
		c.opts.Logger.Info("refresh recovered", "type", r.key.Type, "object", r.key.Name, "version", ne.Version)
	}
	changed := old == nil || old.Version != ne.Version || !bytes.Equal(old.Data, ne.Data)
	c.opts.Observer.CacheRefresh(r.key.Type, changed && old != nil, nil)
	if changed {
		c.emit(Event{Key: r.key, Old: old, New: ne})
	}
	return ne, nil
}

func errCode(err error) string {
	if c := CodeOf(err); c != "" {
		return c
	}
	return KindOf(err).String()
}

// Subscribe calls fn after every published change, from the fetching
// goroutine with no cache lock held. fn must not block for long.
func (c *Cache) Subscribe(fn func(Event)) (cancel func()) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.subN++
	n := c.subN
	c.subs[n] = fn
	return func() {
		c.subMu.Lock()
		defer c.subMu.Unlock()
		delete(c.subs, n)
	}
}

func (c *Cache) emit(ev Event) {
	c.subMu.Lock()
	fns := make([]func(Event), 0, len(c.subs))
	for _, fn := range c.subs {
		fns = append(fns, fn)
	}
	c.subMu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// Peek returns the current entry without fetching (FUSE reads).
func (c *Cache) Peek(k Key) (*Entry, bool) {
	if r := c.lookup(k); r != nil {
		if e := r.entry.Load(); e != nil {
			return e, true
		}
	}
	return nil, false
}

// Pin keeps k refreshed and never evicted until the returned func is called
// (the FUSE view pins what it shows, since kernel-cached reads never reach
// the cache). fetch is used for refreshes until a Get brings a newer one.
func (c *Cache) Pin(k Key, fetch FetchFunc) (unpin func()) {
	r := c.record(k, fetch)
	r.pins.Add(1)
	var once sync.Once
	return func() { once.Do(func() { r.pins.Add(-1) }) }
}

// Status is the non-secret state of an entry (the FUSE .status file, doctor).
type Status struct {
	Version   string    `json:"version,omitempty"`
	FetchedAt time.Time `json:"fetchedAt,omitzero"`
	Size      int       `json:"size"`
	LastError string    `json:"lastError,omitempty"`
	ErrorAt   time.Time `json:"lastErrorAt,omitzero"`
	Stale     bool      `json:"stale"`
}

// Status reports k's state; ok is false when k is not cached.
func (c *Cache) Status(k Key) (Status, bool) {
	r := c.lookup(k)
	if r == nil {
		return Status{}, false
	}
	var s Status
	if e := r.entry.Load(); e != nil {
		s.Version, s.FetchedAt, s.Size = e.Version, e.FetchedAt, len(e.Data)
		s.Stale = c.opts.Now().Sub(e.FetchedAt) >= c.opts.TTL
	}
	r.mu.Lock()
	if r.failing && r.lastErr != nil {
		s.LastError, s.ErrorAt = r.lastErr.Error(), r.lastErrAt
	}
	r.mu.Unlock()
	return s, true
}

// Run refreshes recently read and pinned entries shortly before they expire,
// until ctx ends; then it waits for refreshes in flight.
func (c *Cache) Run(ctx context.Context) {
	tick := min(max(c.opts.TTL/20, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	defer c.refreshing.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sweep(ctx)
		}
	}
}

// sweep starts the refreshes that are due; exported for tests via RefreshNow.
func (c *Cache) sweep(ctx context.Context) {
	now := c.opts.Now()
	items := c.items.Items()
	c.opts.Observer.CacheEntries(len(items))
	for id, it := range items {
		r := it.Object.(*record)
		pinned := r.pins.Load() > 0
		if pinned {
			c.items.Set(id, r, gocache.DefaultExpiration) // pinned entries never idle out
		}
		e := r.entry.Load()
		recent := now.Sub(time.Unix(0, r.lastRead.Load())) < c.opts.IdleEvict
		due := e == nil || now.Sub(e.FetchedAt) >= time.Duration(float64(c.opts.TTL)*c.opts.RefreshAt)
		if !due || (!recent && !pinned) {
			continue
		}
		if _, recentFail := c.recentFailure(r, now); recentFail {
			continue
		}
		if !r.busy.CompareAndSwap(false, true) {
			continue
		}
		c.refreshing.Add(1)
		go func() {
			defer c.refreshing.Done()
			defer r.busy.Store(false)
			_, _, _ = c.load(ctx, r)
		}()
	}
}

// RefreshNow runs one refresher pass at once (tests, dev).
func (c *Cache) RefreshNow(ctx context.Context) {
	c.sweep(ctx)
	c.refreshing.Wait()
}
