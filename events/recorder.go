// Package events owns the opt-in rotation events (serve --emit-events): when
// a cache refresh publishes a new upstream version of a value that pods have
// mounted, one Kubernetes Event per affected pod, reason SecretRotated, type
// Normal, on the Pod, naming the object and its old and new versions, never
// a value.
//
// It owns three things and nothing else:
//
//   - the record of which pod mounted which cached value, learned from
//     successful Mounts (csi.Server.Mounts) and bounded: at most MaxPods
//     pods (the least recently mounted dropped first), MaxKeysPerPod values
//     per pod (the oldest dropped first), and a pod not mounted again for
//     PodExpiry is forgotten (kubelet re-publishes every volume every minute
//     or two when the driver's rotation is on; a deleted pod never is);
//   - the decision: a change with no new version, a first value, or a
//     value refused upstream posts nothing; a pod already on the new version
//     gets nothing; at most one Event per (pod, object, new version);
//   - the way to the API server: a bounded queue (full: dropped and
//     counted), a global token bucket, and one goroutine (Run) that posts
//     and stops with its context. The cache's callback (OnChange) never
//     blocks: it takes one lock, compares, and enqueues without waiting.
package events

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Reason is the Event reason of a rotation.
const Reason = "SecretRotated"

// Results of one rotation event, as Observer.RotationEvent reports them.
const (
	ResultPosted    = "posted"    // the API server stored it
	ResultDuplicate = "duplicate" // the API server already had it (same name: posted before)
	ResultDropped   = "dropped"   // the queue was full, or the provider stopped first
	ResultFailed    = "failed"    // the API server refused it or did not answer
)

// Results lists every result (metrics export them at 0 from the start).
var Results = []string{ResultPosted, ResultDuplicate, ResultDropped, ResultFailed}

// Observer counts rotation events by result (metrics). It must be cheap.
type Observer interface {
	RotationEvent(result string)
}

type nopObserver struct{}

func (nopObserver) RotationEvent(string) {}

// Rotation is one Event to post: a pod, the object whose mounted value
// changed upstream, and the versions. It holds no value.
type Rotation struct {
	Namespace, Pod, UID string
	// Object is "<type>/<name>" (kms/db-password); File is the object's
	// file in the pod's volume.
	Object, File           string
	OldVersion, NewVersion string
	At                     time.Time
}

// Sink posts one Event (APISink: the API server).
type Sink interface {
	Post(ctx context.Context, r Rotation) error
}

// ErrExists is what a Sink returns when the API server already holds the
// Event: it was posted before (Event names are derived from the pod, the
// object and the new version).
var ErrExists = errors.New("the event already exists")

// Options bound the record and the posting; zero values take the defaults.
type Options struct {
	// MaxPods is how many pods are remembered (1024); past it the least
	// recently mounted is dropped.
	MaxPods int
	// MaxKeysPerPod is how many cached values are remembered per pod
	// (128); past it the one mounted longest ago is dropped.
	MaxKeysPerPod int
	// PodExpiry forgets a pod not mounted again for this long. Default: 5
	// cache TTLs (CacheTTL), at least 10m: the driver calls Mount again
	// about once per rotationPollInterval, which the chart makes the TTL.
	PodExpiry time.Duration
	CacheTTL  time.Duration
	// QueueSize bounds the Events waiting to be posted (1024); past it
	// new ones are dropped and counted.
	QueueSize int
	// QPS and Burst are the node-wide token bucket of posts (5/s, 50).
	QPS   float64
	Burst int
	// PostTimeout bounds one post (10s).
	PostTimeout time.Duration
	Log         *slog.Logger
	Observer    Observer
	Now         func() time.Time
}

func (o *Options) defaults() {
	if o.MaxPods <= 0 {
		o.MaxPods = 1024
	}
	if o.MaxKeysPerPod <= 0 {
		o.MaxKeysPerPod = 128
	}
	if o.PodExpiry <= 0 {
		o.PodExpiry = max(10*time.Minute, 5*o.CacheTTL)
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.QPS <= 0 {
		o.QPS = 5
	}
	if o.Burst <= 0 {
		o.Burst = 50
	}
	if o.PostTimeout <= 0 {
		o.PostTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Bounds of what an Event quotes from a Mount's request or from upstream.
const (
	maxQuotedVersion = 64
	maxQuotedName    = 253
)

// Recorder remembers which pod mounted which cached value (Mounted, the
// csi.MountRecorder), turns the cache's changes into Rotations (OnChange,
// for fetch.Cache.Subscribe) and posts them (Run).
type Recorder struct {
	opts    Options
	sink    Sink
	queue   chan Rotation
	limiter *rate.Limiter

	mu   sync.Mutex
	pods map[string]*podRecord // by podID
	lru  *list.List            // of *podRecord, most recently mounted first
	// lastDropLog limits the "queue full" warning to one a minute.
	lastDropLog time.Time
	dropped     int
}

// podRecord is one pod and the values it mounted.
type podRecord struct {
	id                   string
	namespace, name, uid string
	seen                 time.Time
	elem                 *list.Element
	keys                 map[fetch.Key]*mountedValue
	// posted remembers the (object, version) pairs already enqueued for
	// this pod, oldest first, at most 2*MaxKeysPerPod.
	posted []postedPair
}

type mountedValue struct {
	object, file, version string
	at                    time.Time
}

type postedPair struct{ object, version string }

// New returns a Recorder posting to sink; call Run to post.
func New(sink Sink, opts Options) *Recorder {
	opts.defaults()
	return &Recorder{
		opts:    opts,
		sink:    sink,
		queue:   make(chan Rotation, opts.QueueSize),
		limiter: rate.NewLimiter(rate.Limit(opts.QPS), opts.Burst),
		pods:    map[string]*podRecord{},
		lru:     list.New(),
	}
}

// podID keys a pod: its UID, else (no UID in the attributes) its namespace
// and name.
func podID(namespace, name, uid string) string {
	if uid != "" {
		return uid
	}
	return namespace + "/" + name
}

// Mounted records that a pod mounted the values of results (the successful
// ones). It is called once per successful Mount, on the Mount's goroutine:
// one lock, no allocation per hit beyond the pod's first Mount and new keys.
func (r *Recorder) Mounted(namespace, name, uid string, results []fetch.ObjectResult) {
	if namespace == "" || name == "" {
		return // not a pod kubelet described: nothing to post an Event on
	}
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	id := podID(namespace, name, uid)
	p := r.pods[id]
	if p == nil {
		for r.lru.Len() >= r.opts.MaxPods {
			r.removeLocked(r.lru.Back().Value.(*podRecord))
		}
		p = &podRecord{id: id, namespace: namespace, name: name, uid: uid, keys: map[fetch.Key]*mountedValue{}}
		p.elem = r.lru.PushFront(p)
		r.pods[id] = p
	} else {
		r.lru.MoveToFront(p.elem)
	}
	p.seen = now
	for i := range results {
		res := &results[i]
		// A directory object's own result is its listing (names, not a
		// value): its members are results of their own.
		if res.Err != nil || res.Entry == nil || res.Object != nil && res.Object.Dir != nil {
			continue
		}
		if m := p.keys[res.Key]; m != nil {
			m.version, m.at = res.Entry.Version, now
			continue
		}
		file := ""
		if res.Object != nil {
			file = res.Object.File
		}
		p.keys[res.Key] = &mountedValue{object: string(res.Key.Type) + "/" + res.Key.Name, file: file, version: res.Entry.Version, at: now}
	}
	// Values this pod has not mounted for PodExpiry (another volume's,
	// since gone) and, past the cap, the ones mounted longest ago.
	for k, m := range p.keys {
		if now.Sub(m.at) >= r.opts.PodExpiry {
			delete(p.keys, k)
		}
	}
	for len(p.keys) > r.opts.MaxKeysPerPod {
		var oldest fetch.Key
		var at time.Time
		first := true
		for k, m := range p.keys {
			if first || m.at.Before(at) {
				oldest, at, first = k, m.at, false
			}
		}
		delete(p.keys, oldest)
	}
}

// OnChange is the cache's subscriber (fetch.Cache.Subscribe): for a new
// upstream version of a value, it enqueues one Rotation per pod that
// mounted an older version of it and has not had an Event for this
// version yet. A first value (Old nil), a value refused upstream (New nil:
// its pods' next Mount fails, and kubelet reports that) and a change
// without a new version post nothing. An optional object created or
// deleted upstream is a change of version (from or to
// fetch.AbsentVersion). It never blocks.
func (r *Recorder) OnChange(ev fetch.Event) {
	// A read in the failover region and back is the same version
	// (fetch.BaseVersion): nothing rotated.
	if ev.Old == nil || ev.New == nil || fetch.BaseVersion(ev.Old.Version) == fetch.BaseVersion(ev.New.Version) {
		return
	}
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	for e := r.lru.Front(); e != nil; e = e.Next() {
		p := e.Value.(*podRecord)
		m := p.keys[ev.Key]
		if m == nil || m.version == ev.New.Version || p.postedLocked(m.object, ev.New.Version) {
			continue
		}
		rot := Rotation{
			Namespace: p.namespace, Pod: p.name, UID: p.uid,
			Object: m.object, File: m.file,
			OldVersion: ev.Old.Version, NewVersion: ev.New.Version, At: now,
		}
		select {
		case r.queue <- rot:
			p.markPostedLocked(m.object, ev.New.Version, 2*r.opts.MaxKeysPerPod)
		default:
			r.opts.Observer.RotationEvent(ResultDropped)
			r.dropped++
			if now.Sub(r.lastDropLog) >= time.Minute {
				r.opts.Log.Warn("rotation events dropped: the queue to the API server is full",
					"dropped", r.dropped, "queue", cap(r.queue), "object", textutil.Clip(m.object, maxQuotedName))
				r.lastDropLog, r.dropped = now, 0
			}
		}
	}
}

func (p *podRecord) postedLocked(object, version string) bool {
	for _, pp := range p.posted {
		if pp.object == object && pp.version == version {
			return true
		}
	}
	return false
}

func (p *podRecord) markPostedLocked(object, version string, max int) {
	if len(p.posted) >= max {
		p.posted = append(p.posted[:0], p.posted[len(p.posted)-max+1:]...)
	}
	p.posted = append(p.posted, postedPair{object, version})
}

// expireLocked forgets the pods not mounted for PodExpiry: the least
// recently mounted are at the back.
func (r *Recorder) expireLocked(now time.Time) {
	for e := r.lru.Back(); e != nil; e = r.lru.Back() {
		p := e.Value.(*podRecord)
		if now.Sub(p.seen) < r.opts.PodExpiry {
			return
		}
		r.removeLocked(p)
	}
}

func (r *Recorder) removeLocked(p *podRecord) {
	r.lru.Remove(p.elem)
	delete(r.pods, p.id)
}

// Pods is how many pods are remembered (tests).
func (r *Recorder) Pods() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pods)
}

// Keys is how many values are remembered for a pod (tests).
func (r *Recorder) Keys(namespace, name, uid string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pods[podID(namespace, name, uid)]; p != nil {
		return len(p.keys)
	}
	return 0
}

// Run posts the queued Rotations, at most QPS a second (Burst at once),
// until ctx ends; what is still queued then is dropped and counted.
func (r *Recorder) Run(ctx context.Context) {
	var failing bool
	for {
		select {
		case <-ctx.Done():
			r.drain()
			return
		case rot := <-r.queue:
			if err := r.limiter.Wait(ctx); err != nil {
				r.opts.Observer.RotationEvent(ResultDropped)
				r.drain()
				return
			}
			failing = r.post(ctx, rot, failing)
		}
	}
}

// drain counts what is left in the queue as dropped.
func (r *Recorder) drain() {
	for {
		select {
		case <-r.queue:
			r.opts.Observer.RotationEvent(ResultDropped)
		default:
			return
		}
	}
}

// post sends one Rotation and reports whether posting is failing. The
// first failure after a success is a warning; the ones after it, until a
// post succeeds again, are debug lines.
func (r *Recorder) post(ctx context.Context, rot Rotation, failing bool) bool {
	pctx, cancel := context.WithTimeout(ctx, r.opts.PostTimeout)
	defer cancel()
	err := r.sink.Post(pctx, rot)
	attrs := []any{"pod", textutil.Clip(rot.Pod, maxQuotedName), "namespace", textutil.Clip(rot.Namespace, maxQuotedName),
		"object", textutil.Clip(rot.Object, maxQuotedName), "oldVersion", textutil.Clip(rot.OldVersion, maxQuotedVersion),
		"newVersion", textutil.Clip(rot.NewVersion, maxQuotedVersion)}
	switch {
	case err == nil:
		r.opts.Observer.RotationEvent(ResultPosted)
		r.opts.Log.Info("rotation event posted", append(attrs, "reason", Reason)...)
		return false
	case errors.Is(err, ErrExists):
		r.opts.Observer.RotationEvent(ResultDuplicate)
		r.opts.Log.Debug("rotation event already posted", attrs...)
		return false
	default:
		r.opts.Observer.RotationEvent(ResultFailed)
		level := slog.LevelWarn
		if failing {
			level = slog.LevelDebug
		}
		r.opts.Log.Log(ctx, level, "rotation event not posted", append(attrs, "error", textutil.Clip(err.Error(), 1024))...)
		return true
	}
}
