package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// The benchmarks measure the claims of docs/performance.md side by side in
// one run. They assert nothing about time; `go test -bench` prints the
// figures (see docs/performance.md for the command and the numbers).

type staticResolver struct{ id *auth.Identity }

func (s staticResolver) Resolve(context.Context, auth.MountInfo) (*auth.Identity, error) {
	return s.id, nil
}

// inproc is the provider's csi server and fetch stack in this process, on a
// real unix socket, so the benchmark can swap in a fresh (cold) cache.
type inproc struct {
	srv    *csi.Server
	src    *fetch.SDKSource
	opts   fetch.FetcherOptions
	ttl    time.Duration
	client v1alpha1.CSIDriverProviderClient
	id     *auth.Identity
	cancel context.CancelFunc
	// stopRun stops the current cache's refresher; base ends with the test.
	stopRun context.CancelFunc
	base    context.Context
}

func newInproc(tb testing.TB, e *emulator.Emulator, ttl time.Duration) *inproc {
	tb.Helper()
	id, err := auth.StaticAccessKey(auth.ModeStatic, emulator.DemoAccessKeyID, emulator.DemoAccessKeySecret, "", "benchmark")
	if err != nil {
		tb.Fatal(err)
	}
	src, err := fetch.NewSDKSource(fetch.SDKOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	ip := &inproc{src: src, ttl: ttl, id: id, opts: fetch.FetcherOptions{
		Region: "cn-hangzhou", KMSEndpoint: e.URL(), OOSEndpoint: e.URL(),
		KMSQPS: 1e6, OOSQPS: 1e6, KMSBurst: 1e6, OOSBurst: 1e6, MaxConcurrentFetches: 64,
	}}
	ip.srv = &csi.Server{Identity: staticResolver{id}}
	ctx, cancel := context.WithCancel(context.Background())
	ip.cancel, ip.base = cancel, ctx
	ip.fresh(ctx)
	dir := shortTempDir(tb)
	g, err := csi.NewGRPCServer(filepath.Join(dir, "alibabacloud.sock"), ip.srv)
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = g.Serve(ctx, time.Second) }()
	conn, err := grpc.NewClient("unix://"+g.Path(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close(); cancel() })
	ip.client = v1alpha1.NewCSIDriverProviderClient(conn)
	return ip
}

// fresh gives the server a new, empty cache (a cold node); the previous
// cache's refresher stops, and the last one stops with the test.
func (ip *inproc) fresh(context.Context) *fetch.Cache {
	if ip.stopRun != nil {
		ip.stopRun()
	}
	rctx, stop := context.WithCancel(ip.base)
	ip.stopRun = stop
	c := fetch.NewCache(fetch.CacheOptions{TTL: ip.ttl})
	go c.Run(rctx)
	ip.srv.Fetcher = fetch.NewFetcher(c, ip.src, ip.opts)
	return c
}

func (ip *inproc) mount(tb testing.TB, params map[string]string, pd pod) {
	resp, err := ip.client.Mount(context.Background(), mountReq(params, nil, pd))
	if err != nil {
		tb.Fatal(err)
	}
	if len(resp.GetFiles()) == 0 {
		tb.Fatal("no files")
	}
}

func benchSeed(n, size int) (*emulator.Seed, map[string]string) {
	seed := emulator.DemoSeed()
	lines := make([]string, 0, n)
	val := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("bench-%05d", i)
		seed.Secrets = append(seed.Secrets, emulator.Secret{Name: name, Value: val})
		lines = append(lines, "- objectName: "+name)
	}
	return seed, objects(lines...)
}

// BenchmarkColdMount10 compares a cold Mount of 10 objects with one upstream
// round trip, both against the emulator with 20 ms of injected latency.
// Target: cold/roundtrip <= 2 (the objects are fetched in parallel).
func BenchmarkColdMount10(b *testing.B) {
	seed, params := benchSeed(10, 64)
	e := startEmulator(b, seed)
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 20 * time.Millisecond})
	ip := newInproc(b, e, time.Minute)
	ctx := context.Background()
	ip.mount(b, params, defaultPod) // warm the SDK clients and connections
	target := fetch.Target{Type: fetch.TypeKMS, Name: "bench-00000", Region: "cn-hangzhou", Endpoint: e.URL()}
	var rt, cold time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := time.Now()
		if _, err := ip.src.Get(ctx, ip.id, target); err != nil {
			b.Fatal(err)
		}
		rt += time.Since(s)
		ip.fresh(ctx)
		s = time.Now()
		ip.mount(b, params, defaultPod)
		cold += time.Since(s)
	}
	b.StopTimer()
	b.ReportMetric(float64(rt.Microseconds())/float64(b.N)/1000, "roundtrip-ms")
	b.ReportMetric(float64(cold.Microseconds())/float64(b.N)/1000, "cold-mount-ms")
	b.ReportMetric(float64(cold)/float64(rt), "cold/roundtrip")
}

// BenchmarkWarmMount10 measures Mounts of 10 cached objects: over the unix
// socket with a gRPC client in the same process (what the driver sees, plus
// the client's own cost), and the provider's handler alone. Target: p99
// under 1 ms.
func BenchmarkWarmMount10(b *testing.B) {
	seed, params := benchSeed(10, 1024)
	e := startEmulator(b, seed)
	ip := newInproc(b, e, time.Hour)
	ip.mount(b, params, defaultPod)
	req := mountReq(params, nil, defaultPod)
	run := func(b *testing.B, one func()) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s := time.Now()
			one()
			lat = append(lat, time.Since(s))
		}
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
	}
	b.Run("socket", func(b *testing.B) { run(b, func() { ip.mount(b, params, defaultPod) }) })
	b.Run("handler", func(b *testing.B) {
		run(b, func() {
			if _, err := ip.srv.Mount(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		})
	})
	if n := e.Calls("kms"); n != 10 {
		b.Fatalf("%d upstream calls for warm Mounts, want the 10 of the first", n)
	}
}

// BenchmarkUpstreamCalls10x10 runs 10 pods with the same 10 objects, each
// re-Mounted every TTL/5 (kubelet republishes often), over 5 TTLs, and
// counts upstream calls per TTL next to what a provider without a cache
// (the incumbent: every object on every Mount) would make for the same
// Mounts. Target: 10 per TTL.
func BenchmarkUpstreamCalls10x10(b *testing.B) {
	seed, params := benchSeed(10, 256)
	e := startEmulator(b, seed)
	const ttl = 400 * time.Millisecond
	for i := 0; i < b.N; i++ {
		ip := newInproc(b, e, ttl)
		e.ResetCounters()
		mounts := 0
		var mu sync.Mutex
		end := time.Now().Add(5 * ttl)
		var wg sync.WaitGroup
		for p := 0; p < 10; p++ {
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				pd := defaultPod
				pd.name = fmt.Sprintf("pod-%d", p)
				for time.Now().Before(end) {
					ip.mount(b, params, pd)
					mu.Lock()
					mounts++
					mu.Unlock()
					time.Sleep(ttl / 5)
				}
			}(p)
		}
		// The first TTL holds the cold fill; the steady state is after it.
		time.Sleep(time.Until(end.Add(-4 * ttl)))
		afterFirst := e.Calls("kms")
		wg.Wait()
		ip.cancel()
		b.ReportMetric(float64(e.Calls("kms")-afterFirst)/4, "steady-calls/TTL")
		b.ReportMetric(float64(e.Calls("kms"))/5, "calls/TTL")
		b.ReportMetric(float64(mounts*10)/5, "uncached-calls/TTL")
		b.ReportMetric(float64(mounts)/5, "mounts/TTL")
	}
}

// BenchmarkMemory10kSecrets caches 10,000 secrets of 1 KiB in the real
// provider process and reports its resident memory. Target: under 64 MiB.
func BenchmarkMemory10kSecrets(b *testing.B) {
	seed, _ := benchSeed(10000, 1024)
	e := startEmulator(b, seed)
	for i := 0; i < b.N; i++ {
		p := startProvider(b, e, providerConfig{env: map[string]string{"GOGC": os.Getenv("BENCH_GOGC")}, args: []string{"--kms-qps", "100000", "--kms-burst", "100000", "--max-concurrent-fetches", "64", "-v", "0"}})
		for batch := 0; batch < 100; batch++ {
			lines := make([]string, 0, 100)
			for j := 0; j < 100; j++ {
				lines = append(lines, fmt.Sprintf("- objectName: bench-%05d", batch*100+j))
			}
			p.mountOK(b, objects(lines...), nil)
		}
		if n := e.Calls("kms"); n < 10000 {
			b.Fatalf("only %d secrets fetched", n)
		}
		rss, hwm := procMemory(b, p.cmd.Process.Pid)
		b.ReportMetric(rss, "rss-MiB")
		b.ReportMetric(hwm, "peak-rss-MiB")
		_ = p.stop(9)
	}
}

// procMemory reads VmRSS and VmHWM of a process in MiB.
func procMemory(tb testing.TB, pid int) (rss, hwm float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}
