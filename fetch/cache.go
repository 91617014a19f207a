package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// Failover is the region read when Region is unavailable: an object
	// with one never shares an entry with one without.
	Failover string
}

// Entry is an immutable snapshot of a value. A refresh publishes a new
// Entry; readers holding an old one keep consistent bytes.
type Entry struct {
	Data    Bytes
	Version string
	// Binary marks a KMS binary secret, whose Data is already decoded.
	Binary bool
	// History is the current version first and then older ones, for an
	// objectVersionHistory read; Data and Version are History[0]'s.
	History   []Version
	FetchedAt time.Time
	// Absent marks an optional object that does not exist upstream.
	Absent bool
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
	// OutcomeAbsent: a listed object deleted since its listing, left out.
	OutcomeAbsent Outcome = "absent"
)

// Event reports a refresh that published a new upstream version (or new
// bytes). Old is nil for the first value; New is nil when upstream refused
// the value for good (deleted, access revoked) and it is no longer served,
// and Err is then that refusal.
type Event struct {
	Key      Key
	Old, New *Entry
	Err      error
}

// Observer receives cache and upstream measurements (metrics). Methods must
// be cheap and must not block.
type Observer interface {
	CacheLookup(t ObjectType, name string, o Outcome)
	CacheRefresh(t ObjectType, changed bool, err error)
	CacheEvicted()
	CacheEntries(n int)
	// UpstreamCall counts one call of an API action (ReadAction, or a
	// batch action) for the object name (a batch: how many names).
	UpstreamCall(t ObjectType, action, name, code string, d time.Duration)
	Retry(t ObjectType, k Kind)
	RateLimitWait(t ObjectType, d time.Duration)
	// Failover counts a read sent to a failover region, and whether it
	// succeeded there.
	Failover(t ObjectType, ok bool)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) CacheLookup(ObjectType, string, Outcome)                        {}
func (NopObserver) CacheRefresh(ObjectType, bool, error)                           {}
func (NopObserver) CacheEvicted()                                                  {}
func (NopObserver) CacheEntries(int)                                               {}
func (NopObserver) UpstreamCall(ObjectType, string, string, string, time.Duration) {}
func (NopObserver) Retry(ObjectType, Kind)                                         {}
func (NopObserver) RateLimitWait(ObjectType, time.Duration)                        {}
func (NopObserver) Failover(ObjectType, bool)                                      {}

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
	// RefreshJitter spreads refreshes over the RefreshJitter*TTL before
	// RefreshAt (0.1; negative: none), so a fleet of nodes that cached
	// their values at once (a rollout) does not refresh at once either.
	// The offset is fixed per node and per entry, or per batch group, so
	// values read together in a batch stay due together.
	RefreshJitter float64
	// IdleEvict drops entries not read (nor pinned) for this long (3*TTL).
	IdleEvict time.Duration
	// FetchTimeout bounds one upstream fetch, retries included (30s).
	// Callers stop waiting at their own deadline; the fetch goes on and
	// fills the cache for the next caller, unless Run's context ends first.
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
	switch {
	case o.RefreshJitter < 0:
		o.RefreshJitter = 0
	case o.RefreshJitter == 0:
		o.RefreshJitter = 0.1
	}
	o.RefreshJitter = min(o.RefreshJitter, o.RefreshAt)
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
//
// The cache owns every goroutine it starts (detached fetches, refresh-ahead):
// each runs under the cache's lifetime, which Run ends, and Run returns only
// after the last of them has.
type Cache struct {
	opts CacheOptions

	mu    sync.RWMutex       // a hit takes only the read lock
	items map[string]*record // by Key.appendID; a lookup allocates nothing

	flMu    sync.Mutex
	flights map[string]*flight // the one upstream fetch in progress, by record id

	subMu sync.Mutex
	subs  map[int]func(Event)
	subN  int

	life  context.Context // ends when Run's context does
	end   context.CancelFunc
	goMu  sync.Mutex
	ended bool           // Run has returned: start no more goroutines
	wg    sync.WaitGroup // every goroutine the cache started

	refreshing sync.WaitGroup // refresh-ahead goroutines (RefreshNow)
	seed       maphash.Seed   // this node's refresh jitter
}

type record struct {
	// id is the key's map id (Key.appendID), and the only copy of the key
	// a record keeps: key() reads it back for the rare log line or event.
	id       string
	entry    atomic.Pointer[Entry]
	fetch    atomic.Pointer[fetchRef] // latest caller's, so refreshes use fresh credentials
	lastRead atomic.Int64             // unix nanos of opts.Now
	pins     atomic.Int32
	busy     atomic.Bool // a background refresh is running
	// fail is the last fetch's failure while the record is failing, nil
	// once a fetch succeeds.
	fail atomic.Pointer[failure]
	// member, when set, lets the refresher read this record in a batch
	// with others of its group.
	member atomic.Pointer[batchMember]
}

type failure struct {
	err error
	at  time.Time
}

// fetchRef is a record's fetch function and the credential it reads with
// (owner, compared by Fresh; nil when the caller gave none).
type fetchRef struct {
	fn    FetchFunc
	owner any
}

func (r *record) fetchFn() FetchFunc {
	if p := r.fetch.Load(); p != nil {
		return p.fn
	}
	return nil
}

// sameOwner compares two owners, treating values that cannot be compared
// as different.
func sameOwner(a, b any) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a != nil && a == b
}

// NewCache returns a cache; call Run to start its refresher and to end its
// goroutines.
func NewCache(opts CacheOptions) *Cache {
	opts.defaults()
	c := &Cache{opts: opts, items: map[string]*record{}, flights: map[string]*flight{}, subs: map[int]func(Event){}, seed: maphash.MakeSeed()}
	c.life, c.end = context.WithCancel(context.Background())
	return c
}

// spawn runs fn on a goroutine the cache owns, which Run waits for. Once Run
// has returned it starts nothing and reports false.
func (c *Cache) spawn(fn func()) bool {
	c.goMu.Lock()
	defer c.goMu.Unlock()
	if c.ended {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// TTL is the configured time to live.
func (c *Cache) TTL() time.Duration { return c.opts.TTL }

// Len is the number of entries.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}

// appendID appends k's map id: its fields joined by NUL, which no field
// holds. A lookup indexes the map with string(id) of a stack buffer, which
// the compiler does without allocating; only a new record keeps a copy.
func (k *Key) appendID(b []byte) []byte {
	for i, f := range [...]string{k.Identity, k.Region, k.Endpoint, string(k.Type), k.Name, k.Selector, k.Failover} {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, f...)
	}
	return b
}

// key reads the record's Key back from its id.
func (r *record) key() Key {
	var f [7]string
	rest := r.id
	for i := range f {
		f[i], rest, _ = strings.Cut(rest, "\x00")
	}
	return Key{Identity: f[0], Region: f[1], Endpoint: f[2], Type: ObjectType(f[3]), Name: f[4], Selector: f[5], Failover: f[6]}
}

func (c *Cache) lookup(k Key) *record {
	var buf [256]byte
	id := k.appendID(buf[:0])
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.items[string(id)]
}

// record returns the record for k, creating it; a non-nil fetch replaces the
// stored fetch function so background refreshes use the newest credential.
func (c *Cache) record(k Key, fetch FetchFunc) *record {
	var buf [256]byte
	id := k.appendID(buf[:0])
	c.mu.RLock()
	r := c.items[string(id)]
	c.mu.RUnlock()
	if r == nil {
		c.mu.Lock()
		if r = c.items[string(id)]; r == nil {
			r = &record{id: string(id)}
			// Born read: the sweep does not take a new record for idle.
			r.lastRead.Store(c.opts.Now().UnixNano())
			c.items[r.id] = r
		}
		c.mu.Unlock()
	}
	if fetch != nil {
		r.fetch.Store(&fetchRef{fn: fetch})
	}
	return r
}

// drop removes r, unless another record has taken its key since.
func (c *Cache) drop(r *record) {
	id := r.id
	c.mu.Lock()
	gone := c.items[id] == r
	if gone {
		delete(c.items, id)
	}
	c.mu.Unlock()
	if gone {
		c.opts.Observer.CacheEvicted()
	}
}

// Get returns the value for k, fetching it with fetch when it is missing or
// expired. It never waits past ctx; a fetch it started goes on and fills the
// cache.
func (c *Cache) Get(ctx context.Context, k Key, fetch FetchFunc) (*Entry, Outcome, error) {
	r := c.record(k, fetch)
	now := c.opts.Now()
	r.lastRead.Store(now.UnixNano())
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
		ne, _, err := c.load(ctx, r, e)
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
	ne, shared, err := c.load(ctx, r, nil)
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

// Fresh is Get's answer when it can be given without waiting: k's entry if
// it is cached and within its TTL (a hit, counted as one). Otherwise it
// reports false and does nothing; call Get. A warm Mount answers from here
// on its own goroutine instead of starting one per object. owner is what
// the fetch function reads with (the credential): only when it differs from
// the stored one is mk called and its function stored, so a warm hit
// allocates nothing.
func (c *Cache) Fresh(k Key, owner any, mk func() FetchFunc) (*Entry, bool) {
	r := c.lookup(k)
	if r == nil {
		return nil, false
	}
	e := r.entry.Load()
	now := c.opts.Now()
	if e == nil || now.Sub(e.FetchedAt) >= c.opts.TTL {
		return nil, false
	}
	r.lastRead.Store(now.UnixNano())
	if ref := r.fetch.Load(); mk != nil && (ref == nil || !sameOwner(ref.owner, owner)) {
		r.fetch.Store(&fetchRef{fn: mk(), owner: owner})
	}
	c.opts.Observer.CacheLookup(k.Type, k.Name, OutcomeHit)
	return e, true
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
	if f := r.fail.Load(); f != nil && now.Sub(f.at) < c.opts.RetryFailedAfter {
		return f.err, true
	}
	return nil, false
}

// flight is one upstream fetch of a key; every caller that needs the key
// meanwhile waits for it instead of fetching again. e and err are set
// before done is closed.
type flight struct {
	done chan struct{}
	e    *Entry
	err  error
}

// load waits for r's one upstream fetch, starting it if none is in flight,
// or for ctx. seen is the entry the caller found (nil for none). shared
// reports that another caller's fetch answered this one. The fetch runs on a
// goroutine of the cache, under the cache's lifetime rather than ctx: a
// caller that gives up leaves it to fill the cache for the next one. Once
// Run has returned, the fetch runs in line under ctx instead.
func (c *Cache) load(ctx context.Context, r *record, seen *Entry) (*Entry, bool, error) {
	f, leader := c.begin(r, seen)
	if leader && !c.spawn(func() { c.fly(c.life, r, f) }) {
		c.fly(ctx, r, f)
	}
	select {
	case <-f.done:
		if f.err != nil {
			return nil, !leader, f.err
		}
		return f.e, !leader, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// begin joins r's fetch in flight, or registers a new one that the caller
// must run (leader). When a fetch has published a new entry since the caller
// read seen, it returns that entry as a finished flight instead of fetching
// again. The check is under the same lock that ends a flight, after its
// result is published, so a caller never fetches again what it just missed.
func (c *Cache) begin(r *record, seen *Entry) (f *flight, leader bool) {
	c.flMu.Lock()
	defer c.flMu.Unlock()
	return c.beginLocked(r, seen)
}

// beginLocked is begin with flMu held.
func (c *Cache) beginLocked(r *record, seen *Entry) (f *flight, leader bool) {
	id := r.id
	if f = c.flights[id]; f != nil {
		return f, false
	}
	if e := r.entry.Load(); e != nil && e != seen {
		f = &flight{done: make(chan struct{}), e: e}
		close(f.done)
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	c.flights[id] = f
	return f, true
}

// fly runs the leader's fetch of r under base and FetchTimeout, publishes
// the result, and ends the flight.
func (c *Cache) fly(base context.Context, r *record, f *flight) {
	defer func() {
		c.flMu.Lock()
		delete(c.flights, r.id)
		c.flMu.Unlock()
		close(f.done)
	}()
	fctx, cancel := context.WithTimeout(base, c.opts.FetchTimeout)
	defer cancel()
	fn := r.fetchFn()
	if fn == nil {
		f.err = errors.New("no fetch function for this entry")
		return
	}
	res, err := fn(fctx)
	f.e, f.err = c.publish(r, res, err)
}

// publish stores a fetch result and, after the store and with no lock held,
// tells subscribers when the version or the bytes changed.
func (c *Cache) publish(r *record, res Result, err error) (*Entry, error) {
	now := c.opts.Now()
	if err != nil {
		first := r.fail.Swap(&failure{err: err, at: now}) == nil
		var revoked *Entry
		if !servesStale(err) {
			revoked = r.entry.Swap(nil)
		}
		if r.entry.Load() == nil && r.pins.Load() == 0 {
			c.drop(r)
		}
		switch {
		case revoked != nil:
			c.opts.Logger.Warn("refresh refused upstream (deleted, access revoked or credential rejected): the value is no longer served",
				"type", r.key().Type, "object", r.key().Name, "code", errCode(err), "kind", KindOf(err).String(), "error", err.Error())
		case first && r.entry.Load() != nil:
			c.opts.Logger.Warn("refresh failed; serving the last good value until it recovers or --max-stale passes",
				"type", r.key().Type, "object", r.key().Name, "code", errCode(err), "kind", KindOf(err).String(), "error", err.Error())
		}
		c.opts.Observer.CacheRefresh(r.key().Type, false, err)
		if revoked != nil {
			c.emit(Event{Key: r.key(), Old: revoked, New: nil, Err: err})
		}
		return nil, err
	}
	ne := &Entry{Data: res.Data, Version: res.Version, Binary: res.Binary, History: res.History, FetchedAt: now, Absent: res.Absent}
	old := r.entry.Swap(ne)
	recovered := r.fail.Swap(nil) != nil && old != nil
	if recovered {
		c.opts.Logger.Info("refresh recovered", "type", r.key().Type, "object", r.key().Name, "version", ne.Version)
	}
	changed := old == nil || old.Version != ne.Version || !bytes.Equal(old.Data, ne.Data) || !sameHistory(old.History, ne.History)
	c.opts.Observer.CacheRefresh(r.key().Type, changed && old != nil, nil)
	if changed {
		c.emit(Event{Key: r.key(), Old: old, New: ne})
	}
	return ne, nil
}

func sameHistory(a, b []Version) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Version != b[i].Version || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
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
	for {
		r := c.record(k, fetch)
		r.pins.Add(1)
		// The sweep evicts only unpinned records, under the write lock: a
		// record still in the map now stays there while pinned.
		if c.lookup(k) == r {
			var once sync.Once
			return func() { once.Do(func() { r.pins.Add(-1) }) }
		}
		r.pins.Add(-1)
	}
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
	if f := r.fail.Load(); f != nil && f.err != nil {
		s.LastError, s.ErrorAt = f.err.Error(), f.at
	}
	return s, true
}

// Run refreshes recently read and pinned entries shortly before they
// expire, and evicts entries idle for IdleEvict, until ctx ends. Then it
// ends every goroutine the cache started (refreshes and fetches in flight are
// canceled) and returns once they have all returned. Call it once; after it
// returns, the cache still answers, fetching in line under each caller's
// context.
func (c *Cache) Run(ctx context.Context) {
	defer c.stop()
	tick := min(max(c.opts.TTL/20, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// stop ends the cache's lifetime and waits for its goroutines.
func (c *Cache) stop() {
	c.goMu.Lock()
	c.ended = true
	c.goMu.Unlock()
	c.end()
	c.wg.Wait()
}

// sweep evicts idle entries and starts the refreshes that are due.
func (c *Cache) sweep() {
	now := c.opts.Now()
	c.mu.RLock()
	recs := make([]*record, 0, len(c.items))
	for _, r := range c.items {
		recs = append(recs, r)
	}
	c.mu.RUnlock()
	c.opts.Observer.CacheEntries(len(recs))
	var due []*record
	var dueSeen []*Entry
	for _, r := range recs {
		pinned := r.pins.Load() > 0
		recent := now.Sub(time.Unix(0, r.lastRead.Load())) < c.opts.IdleEvict
		if !recent && !pinned {
			c.evictIdle(r)
			continue
		}
		e := r.entry.Load()
		if e != nil && now.Sub(e.FetchedAt) < c.refreshAfter(r) {
			continue
		}
		if _, recentFail := c.recentFailure(r, now); recentFail {
			continue
		}
		due, dueSeen = append(due, r), append(dueSeen, e)
	}
	// Records that were read in a batch and are due together are read in
	// a batch again; the rest one by one.
	due, dueSeen = c.refreshBatches(due, dueSeen)
	for i, r := range due {
		if !r.busy.CompareAndSwap(false, true) {
			continue
		}
		seen := dueSeen[i]
		c.refreshing.Add(1)
		started := c.spawn(func() {
			defer c.refreshing.Done()
			defer r.busy.Store(false)
			if f, leader := c.begin(r, seen); leader {
				c.fly(c.life, r, f)
			}
		})
		if !started {
			r.busy.Store(false)
			c.refreshing.Done()
		}
	}
}

// refreshAfter is the age at which r is refreshed: RefreshAt of the TTL,
// less this node's jitter for r (or for r's batch group).
func (c *Cache) refreshAfter(r *record) time.Duration {
	at := time.Duration(float64(c.opts.TTL) * c.opts.RefreshAt)
	span := uint64(float64(c.opts.TTL) * c.opts.RefreshJitter)
	if span == 0 {
		return at
	}
	var h uint64
	if m := r.member.Load(); m != nil {
		h = maphash.Comparable(c.seed, m.group)
	} else {
		h = maphash.String(c.seed, r.id)
	}
	return at - time.Duration(h%span) //nolint:gosec // below span, a duration
}

// evictIdle drops r if it is still unpinned and unread for IdleEvict,
// checked again under the write lock (Pin and Get may have raced the sweep).
func (c *Cache) evictIdle(r *record) {
	id := r.id
	c.mu.Lock()
	idle := c.items[id] == r && r.pins.Load() == 0 && !r.busy.Load() &&
		c.opts.Now().Sub(time.Unix(0, r.lastRead.Load())) >= c.opts.IdleEvict
	if idle {
		delete(c.items, id)
	}
	c.mu.Unlock()
	if idle {
		c.opts.Observer.CacheEvicted()
	}
}

// RefreshNow runs one refresher pass at once and waits for the refreshes it
// started (tests, dev). After Run has returned it refreshes nothing.
func (c *Cache) RefreshNow() {
	c.sweep()
	c.refreshing.Wait()
}
