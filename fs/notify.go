package fs

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// notifyQueue carries cache events from the cache's fetching goroutines to
// the view's one notifier goroutine. push never blocks: events for the same
// object coalesce into the newest entry.
type notifyQueue struct {
	mu      sync.Mutex
	pending map[*objView]pendingChange
	wake    chan struct{}
}

type pendingChange struct {
	entry   *fetch.Entry // nil when the value is gone (see gone)
	changed bool         // a refresh replaced an earlier value (not a first fetch)
	// gone is upstream's refusal when the cache dropped the value
	// (deleted, access revoked, credential rejected); old is the entry
	// dropped.
	gone error
	old  *fetch.Entry
}

func (q *notifyQueue) init() {
	q.pending = map[*objView]pendingChange{}
	q.wake = make(chan struct{}, 1)
}

func (q *notifyQueue) push(objs []*objView, e *fetch.Entry, changed bool) {
	q.mu.Lock()
	for _, ov := range objs {
		p, ok := q.pending[ov]
		// A value after a pending refusal is newer: a key's events come
		// from its fetches one at a time.
		if !ok || p.entry == nil || !e.FetchedAt.Before(p.entry.FetchedAt) {
			p.entry, p.gone, p.old = e, nil, nil
		}
		p.changed = p.changed || changed
		q.pending[ov] = p
	}
	q.mu.Unlock()
	q.signal()
}

// pushGone queues the refusal of a value: it replaces whatever is pending
// for the objects (the refusal came after it).
func (q *notifyQueue) pushGone(objs []*objView, old *fetch.Entry, err error) {
	q.mu.Lock()
	for _, ov := range objs {
		q.pending[ov] = pendingChange{changed: true, gone: err, old: old}
	}
	q.mu.Unlock()
	q.signal()
}

func (q *notifyQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *notifyQueue) take() map[*objView]pendingChange {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return nil
	}
	out := q.pending
	q.pending = map[*objView]pendingChange{}
	return out
}

// onEvent is the cache subscription: it runs on the fetching goroutine,
// so it only routes the event to the queue.
func (v *view) onEvent(ev fetch.Event) {
	v.keysMu.RLock()
	objs := v.byKey[ev.Key]
	v.keysMu.RUnlock()
	if len(objs) == 0 {
		return
	}
	if ev.New == nil {
		err := ev.Err
		if err == nil {
			err = errors.New("the value is no longer served")
		}
		v.queue.pushGone(objs, ev.Old, err)
		return
	}
	v.queue.push(objs, ev.New, ev.Old != nil)
}

// notifier is the one goroutine that turns cache events into kernel
// invalidations: it publishes the new snapshot first, then, holding no lock
// and outside any FUSE handler, drops the kernel's cached pages and
// attributes of every live file of the object.
func (v *view) notifier(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-v.queue.wake:
		}
		for ov, p := range v.queue.take() {
			if p.gone != nil {
				if ov.revoke(p.old, p.gone) {
					for _, f := range ov.files {
						v.invalidate(f)
					}
					v.log.Warn("value refused upstream (deleted, access revoked or credential rejected): its files answer EIO; kernel cache invalidated",
						"class", ov.cls.class.Name, "object", ov.o.Ref(), "kind", fetch.KindOf(p.gone).String(), "error", p.gone.Error())
				}
				continue
			}
			_, changed := ov.apply(p.entry, v.log)
			if !changed && !p.changed {
				continue // a first fetch: the lookup reported these bytes
			}
			for _, f := range ov.files {
				v.invalidate(f)
			}
			if changed {
				v.log.Info("value changed; kernel cache invalidated",
					"class", ov.cls.class.Name, "object", ov.o.Ref(), "version", p.entry.Version)
			}
		}
	}
}

// invalidate drops the kernel's pages and attributes of one file, if the
// kernel holds it. ENOENT means the kernel has no such inode; it is tried a
// few more times in case a lookup reply that created it is still in flight.
func (v *view) invalidate(f *fileRec) {
	dir := f.dir.inode
	if dir == nil {
		return
	}
	for _, wait := range []time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond} {
		time.Sleep(wait)
		ch := dir.GetChild(f.name)
		if ch == nil { // the kernel forgot it: nothing cached
			return
		}
		errno := ch.NotifyContent(0, 0)
		if errno != syscall.ENOENT {
			return
		}
	}
}
