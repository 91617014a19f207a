package metrics

import (
	"container/list"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// OtherObject is the object label of every lookup and upstream call for an
// object that is not labelled by name: one never served successfully (it
// does not exist, or the identity may not read it), or one that left the
// cap. Parentheses are in no KMS secret or OOS parameter name.
const OtherObject = "(other)"

// DefaultObjectLabelsMax is how many objects keep their own label sets
// under --metrics-object-labels when Options.ObjectLabelsMax is 0.
const DefaultObjectLabelsMax = 500

type objectKey struct{ svc, name string }

// objectLabels decides the object label of each observation: an object's
// own name once it has been served successfully, OtherObject otherwise. At
// most max objects are labelled by name; admitting one more evicts the
// least recently used and deletes its series from the families that carry
// it, so /metrics stays bounded whatever names the classes request.
//
// The lock is held while the series is incremented: an observation can
// never recreate the series of an object evicted meanwhile.
type objectLabels struct {
	mu    sync.Mutex
	max   int
	order *list.List // of objectKey, most recently used first
	index map[objectKey]*list.Element
	// The families with an object label, and the name of their label that
	// holds the service (cache and last change: type, upstream: service).
	cache, upstream *prometheus.CounterVec
	lastChange      *prometheus.GaugeVec
}

func newObjectLabels(max int, cache, upstream *prometheus.CounterVec, lastChange *prometheus.GaugeVec) *objectLabels {
	if max <= 0 {
		max = DefaultObjectLabelsMax
	}
	return &objectLabels{max: max, order: list.New(), index: map[objectKey]*list.Element{}, cache: cache, upstream: upstream, lastChange: lastChange}
}

// inc increments vec's series of lvs plus the object label of (svc, name);
// served says the observation is a success for that object.
func (o *objectLabels) inc(vec *prometheus.CounterVec, svc, name string, served bool, lvs ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	vec.WithLabelValues(append(lvs, o.labelLocked(svc, name, served))...).Inc()
}

// set sets vec's series of lvs plus the object label of (svc, name) to v;
// served as for inc.
func (o *objectLabels) set(vec *prometheus.GaugeVec, svc, name string, served bool, v float64, lvs ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	vec.WithLabelValues(append(lvs, o.labelLocked(svc, name, served))...).Set(v)
}

func (o *objectLabels) labelLocked(svc, name string, served bool) string {
	k := objectKey{svc, name}
	if e, ok := o.index[k]; ok {
		o.order.MoveToFront(e)
		return name
	}
	if !served || name == OtherObject {
		return OtherObject
	}
	for o.order.Len() >= o.max {
		old := o.order.Back()
		ok := o.order.Remove(old).(objectKey)
		delete(o.index, ok)
		o.cache.DeletePartialMatch(prometheus.Labels{"type": ok.svc, "object": ok.name})
		o.upstream.DeletePartialMatch(prometheus.Labels{"service": ok.svc, "object": ok.name})
		o.lastChange.DeletePartialMatch(prometheus.Labels{"type": ok.svc, "object": ok.name})
	}
	o.index[k] = o.order.PushFront(k)
	return name
}
