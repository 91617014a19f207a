package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// singleOnly hides a source's batch reads (a provider without batching).
type singleOnly struct{ s fetch.Source }

func (o singleOnly) Get(ctx context.Context, id *auth.Identity, t fetch.Target) (fetch.Result, error) {
	return o.s.Get(ctx, id, t)
}

// BenchmarkFleet is the fleet model of docs/performance.md: 20 nodes (each
// its own cache, fetcher and SDK clients, in this process) with the same 20
// secrets (10 KMS secrets, 10 OOS encrypted parameters) against one
// emulator, the account. Every node caches them within the first 5% of a
// TTL (a rollout: the worst case for a burst), then keeps them hot with a
// Mount every TTL/4, for 6 TTLs. The emulator's counters, sampled every
// TTL/20, give the account-wide calls per TTL in the steady state (TTLs 2
// to 6) and the busiest TTL/20 against the mean (peak/mean: 1 is perfectly
// flat, 20 is every call in one slot). Sub-benchmarks switch batching and
// refresh jitter. It asserts nothing about time.
func BenchmarkFleet(b *testing.B) {
	const nodes, kmsN, oosN = 20, 10, 10
	const ttl = 2 * time.Second
	seed := emulator.DemoSeed()
	var lines []string
	for i := 0; i < kmsN; i++ {
		n := fmt.Sprintf("fleet-kms-%02d", i)
		seed.Secrets = append(seed.Secrets, emulator.Secret{Name: n, Value: "v"})
		lines = append(lines, "- objectName: "+n)
	}
	for i := 0; i < oosN; i++ {
		n := fmt.Sprintf("fleet-oos-%02d", i)
		seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: n, Value: "v"})
		lines = append(lines, "- {objectName: "+n+", objectType: oos}")
	}
	e := startEmulator(b, seed)
	id, err := auth.StaticAccessKey(auth.ModeStatic, emulator.DemoAccessKeyID, emulator.DemoAccessKeySecret, "", "fleet")
	if err != nil {
		b.Fatal(err)
	}
	params := objects(lines...)
	for _, v := range []struct {
		name   string
		batch  bool
		jitter float64
	}{{"batch+jitter", true, 0}, {"batch-nojitter", true, -1}, {"nobatch+jitter", false, 0}} {
		b.Run(v.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				perTTL, peak := runFleet(b, e, id, params, nodes, ttl, v.batch, v.jitter)
				b.ReportMetric(perTTL, "calls/TTL")
				b.ReportMetric(perTTL/nodes, "calls/TTL/node")
				b.ReportMetric(peak, "peak/mean")
			}
		})
	}
}

func runFleet(b *testing.B, e *emulator.Emulator, id *auth.Identity, params map[string]string, nodes int, ttl time.Duration, batch bool, jitter float64) (perTTL, peak float64) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sources []*fetch.SDKSource
	defer func() {
		cancel() // ends every cache's Run
		wg.Wait()
		for _, s := range sources {
			s.Close()
		}
	}()
	e.ResetCounters()
	start := time.Now()
	end := start.Add(6 * ttl)
	for n := 0; n < nodes; n++ {
		src, err := fetch.NewSDKSource(fetch.SDKOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sources = append(sources, src)
		var s fetch.Source = src
		if !batch {
			s = singleOnly{src}
		}
		c := fetch.NewCache(fetch.CacheOptions{TTL: ttl, RefreshJitter: jitter})
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
		f := fetch.NewFetcher(c, s, fetch.FetcherOptions{Region: "cn-hangzhou", KMSEndpoint: e.URL(), OOSEndpoint: e.URL(),
			KMSQPS: 1e4, OOSQPS: 1e4, KMSBurst: 1e4, OOSBurst: 1e4})
		spec, err := f.ParseParameters(params)
		if err != nil {
			b.Fatal(err)
		}
		first := time.Duration(rand.Int64N(int64(ttl / 20))) //nolint:gosec // a start offset
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(first)
			for time.Now().Before(end) {
				if _, _, err := f.Fetch(ctx, id, spec); err != nil {
					b.Error(err)
					return
				}
				time.Sleep(ttl / 4)
			}
		}()
	}
	// Sample the account's calls every TTL/20.
	slot := ttl / 20
	var counts []int
	t := time.NewTicker(slot)
	defer t.Stop()
	for time.Now().Before(end) {
		<-t.C
		counts = append(counts, e.Calls("kms")+e.Calls("oos"))
	}
	// The steady state: TTLs 2 to 6 (after the cold fill).
	from := 20
	if len(counts) <= from+1 {
		b.Fatalf("only %d samples", len(counts))
	}
	steady := counts[len(counts)-1] - counts[from]
	ttls := float64(len(counts)-1-from) / 20
	perTTL = float64(steady) / ttls
	mean := float64(steady) / float64(len(counts)-1-from)
	maxSlot := 0
	for i := from + 1; i < len(counts); i++ {
		maxSlot = max(maxSlot, counts[i]-counts[i-1])
	}
	return perTTL, float64(maxSlot) / mean
}
