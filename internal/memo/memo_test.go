package memo

import (
	"errors"
	"testing"
	"time"
)

func TestMemoBoundsAndDrops(t *testing.T) {
	var dropped []int
	m := Map[string, int]{Max: 2, Drop: func(v int) { dropped = append(dropped, v) }}
	m.Put("a", 1)
	m.Put("b", 2)
	if _, ok := m.Get("a"); !ok { // a is now more recent than b
		t.Fatal("a missing")
	}
	m.Put("c", 3)
	if _, ok := m.Get("b"); ok {
		t.Fatal("b, the least recently used, was kept over the bound")
	}
	if v, ok := m.Get("a"); !ok || v != 1 {
		t.Fatalf("a = %d, %v", v, ok)
	}
	if m.Len() != 2 || len(dropped) != 1 || dropped[0] != 2 {
		t.Fatalf("len %d, dropped %v", m.Len(), dropped)
	}
	m.Put("a", 10) // replacing drops the old value
	if len(dropped) != 2 || dropped[1] != 1 {
		t.Fatalf("dropped %v", dropped)
	}
	m.Clear()
	if m.Len() != 0 || len(dropped) != 4 {
		t.Fatalf("after clear: len %d, dropped %v", m.Len(), dropped)
	}
}

type key struct{ a, b string }

func TestMemoGetOrAdd(t *testing.T) {
	m := Map[key, string]{Max: 10, Idle: time.Hour}
	k := key{a: "id", b: "h"}
	builds := 0
	for range 3 {
		v, err := m.GetOrAdd(k, func() (string, error) { builds++; return "client", nil })
		if err != nil || v != "client" {
			t.Fatal(v, err)
		}
	}
	if builds != 1 {
		t.Fatalf("built %d times", builds)
	}
	boom := errors.New("boom")
	if _, err := m.GetOrAdd(key{a: "other"}, func() (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if m.Len() != 1 {
		t.Fatalf("a failed build was kept: len %d", m.Len())
	}
}

func TestMemoDropsIdleOnAdd(t *testing.T) {
	m := Map[string, int]{Max: 10, Idle: time.Minute}
	m.Put("old", 1)
	m.mu.Lock()
	m.m["old"].used = time.Now().Add(-2 * time.Minute)
	m.mu.Unlock()
	m.Put("new", 2)
	if _, ok := m.Get("old"); ok {
		t.Fatal("an entry idle past the limit survived an add")
	}
}
