// Package gctune owns the provider's garbage-collector setting when the
// operator left it to us (no GOGC, no GOMEMLIMIT): Go's default GOGC=100
// while the live heap is small, so a node serving a few classes collects
// rarely and its warm Mounts keep a short tail, and GOGC=50 once the live
// heap is large (thousands of cached secrets), so the heap never grows to
// twice a large cache during a cold fill. Below Threshold the heap may grow
// to twice the live heap (at most 24 MiB); above, to one and a half times.
package gctune

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Threshold is the live heap above which the collector runs at GOGC=50.
const Threshold = 12 << 20

// Interval is how often the live heap is read.
const Interval = 250 * time.Millisecond

// Percent is the GOGC for a live heap of live bytes.
func Percent(live uint64) int {
	if live >= Threshold {
		return 50
	}
	return 100
}

// Enabled reports whether the operator left the collector to us.
func Enabled(getenv func(string) string) bool {
	return getenv("GOGC") == "" && getenv("GOMEMLIMIT") == ""
}

// Run adjusts the collector until ctx ends, when Enabled(os.Getenv); it
// starts at GOGC=50 (the safe side) until the first reading.
func Run(ctx context.Context) {
	if !Enabled(os.Getenv) {
		return
	}
	debug.SetGCPercent(50)
	cur := 50
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := Percent(sample[0].Value.Uint64()); p != cur {
				debug.SetGCPercent(p)
				cur = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
