package gctune

import (
	"context"
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{{0, 100}, {8 << 20, 100}, {Threshold - 1, 100}, {Threshold, 50}, {1 << 30, 50}} {
		if got := Percent(c.live); got != c.want {
			t.Fatalf("Percent(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

func TestEnabled(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	if !Enabled(get) {
		t.Fatal("disabled with no GOGC and no GOMEMLIMIT")
	}
	env["GOMEMLIMIT"] = "200MiB"
	if Enabled(get) {
		t.Fatal("enabled with GOMEMLIMIT set")
	}
	delete(env, "GOMEMLIMIT")
	env["GOGC"] = "200"
	if Enabled(get) {
		t.Fatal("enabled with GOGC set")
	}
}

func TestRunSetsTheSmallHeapPercent(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetGCPercent(77)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithTimeout(context.Background(), 3*Interval)
	defer cancel()
	done := make(chan struct{})
	go func() { Run(ctx); close(done) }()
	<-done
	// A test binary's live heap is far under Threshold.
	if p := debug.SetGCPercent(77); p != 100 {
		t.Fatalf("GOGC %d after Run, want 100 for a small heap", p)
	}
}
