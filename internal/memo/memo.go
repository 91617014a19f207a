// Package memo owns the one shape of the provider's bounded keyed stores
// beside the node-wide cache: the SDK clients and parsed classes in fetch,
// and the decoded Mount attributes in csi.
package memo

import (
	"sync"
	"time"
)

// Map maps a comparable key (a struct of strings, so a lookup builds no
// string) to a value, bounded to Max entries with the least recently used
// dropped first and, when Idle is set, entries unused that long dropped
// whenever one is added. Drop, when set, is called (under the map's lock)
// for every value it drops. The cache in fetch keys its records the same
// way but expires them by TTL and refreshes them, which a Map never does.
// Set Max before first use; a Map must not be copied after that.
type Map[K comparable, V any] struct {
	Max  int
	Idle time.Duration
	Drop func(V)

	mu sync.Mutex
	m  map[K]*memoItem[V]
}

type memoItem[V any] struct {
	v    V
	used time.Time
}

// Get returns k's value and marks it used.
func (m *Map[K, V]) Get(k K) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.m[k]; ok {
		it.used = time.Now()
		return it.v, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns k's value, building it with mk (under the lock, so two
// callers never build the same key twice) when it is missing. An error from
// mk adds nothing.
func (m *Map[K, V]) GetOrAdd(k K, mk func() (V, error)) (V, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if it, ok := m.m[k]; ok {
		it.used = now
		return it.v, nil
	}
	v, err := mk()
	if err != nil {
		return v, err
	}
	m.addLocked(k, v, now)
	return v, nil
}

// Put sets k's value.
func (m *Map[K, V]) Put(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked(k, v, time.Now())
}

func (m *Map[K, V]) addLocked(k K, v V, now time.Time) {
	if m.m == nil {
		m.m = map[K]*memoItem[V]{}
	}
	if old, ok := m.m[k]; ok {
		m.dropLocked(k, old)
	}
	// Adding is rare (a new class, identity or endpoint): a scan of the
	// whole memo then costs nothing on the warm path.
	var oldestKey K
	var oldest *memoItem[V]
	for key, it := range m.m {
		if m.Idle > 0 && now.Sub(it.used) > m.Idle {
			m.dropLocked(key, it)
			continue
		}
		if oldest == nil || it.used.Before(oldest.used) {
			oldestKey, oldest = key, it
		}
	}
	if len(m.m) >= m.Max && oldest != nil {
		m.dropLocked(oldestKey, oldest)
	}
	m.m[k] = &memoItem[V]{v: v, used: now}
}

func (m *Map[K, V]) dropLocked(k K, it *memoItem[V]) {
	delete(m.m, k)
	if m.Drop != nil {
		m.Drop(it.v)
	}
}

// Len is the number of entries.
func (m *Map[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}

// Clear drops every entry.
func (m *Map[K, V]) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, it := range m.m {
		m.dropLocked(k, it)
	}
}
