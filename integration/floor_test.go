package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// The floor provider: the cheapest thing that can answer the driver's Mount
// over a unix socket. It is this test binary run again with floorEnv set to
// a socket path and floorRespEnv to a file holding an encoded MountResponse;
// it answers every Mount with that response and does nothing else (no
// parsing, no identity, no cache, no logs, no interceptors). What `serve`
// costs above it is what the provider itself adds.
const (
	floorEnv     = "CSSPA_FLOOR_SOCKET"
	floorRespEnv = "CSSPA_FLOOR_RESPONSE"
)

type floorServer struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	resp *v1alpha1.MountResponse
}

func (f *floorServer) Mount(context.Context, *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	return f.resp, nil
}

func (f *floorServer) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "floor", RuntimeVersion: "0.0.0"}, nil
}

// runFloor is the floor provider's main; it serves until killed.
func runFloor(sock, respFile string) int {
	b, err := os.ReadFile(respFile) //nolint:gosec // the benchmark's own file
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp := &v1alpha1.MountResponse{}
	if err := proto.Unmarshal(b, resp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	g := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(g, &floorServer{resp: resp})
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startFloor runs the floor provider answering with resp and returns a
// client connected the way the driver connects.
func startFloor(tb testing.TB, resp *v1alpha1.MountResponse) (v1alpha1.CSIDriverProviderClient, int) {
	tb.Helper()
	dir := shortTempDir(tb)
	b, err := proto.Marshal(resp)
	if err != nil {
		tb.Fatal(err)
	}
	respFile := filepath.Join(dir, "response.pb")
	if err := os.WriteFile(respFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(dir, "floor.sock")
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(self) //nolint:gosec // this test binary
	cmd.Env = []string{floorEnv + "=" + sock, floorRespEnv + "=" + respFile}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); <-done })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		cancel()
		if err == nil {
			return client, cmd.Process.Pid
		}
		select {
		case <-done:
			tb.Fatalf("floor provider exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("floor provider never answered: %v %s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkWarmMountFloor10 compares warm Mounts of 10 cached objects of
// 1 KiB against the real `serve` process and against the floor provider,
// which answers with the same 10 files, each a separate process on its own
// unix socket, one Mount to each per iteration in alternating order so a
// load swing hits both alike. Target: serve/floor <= 1.3 at p50 and p99.
// Sub-benchmarks run serve as the chart does (chart: -v 0, one log line per
// Mount, serve's default GOGC of 50), at -v 4 (debug-log, what the
// end-to-end tests use), and with Go's default GOGC=100 (gogc100: the
// garbage collector's share of the tail).
func BenchmarkWarmMountFloor10(b *testing.B) {
	seed, params := benchSeed(10, 1024)
	e := startEmulator(b, seed)
	for _, variant := range []struct {
		name, v, gogc string
	}{{"chart", "0", ""}, {"debug-log", "4", ""}, {"gogc100", "0", "100"}} {
		b.Run(variant.name, func(b *testing.B) {
			p := startProvider(b, e, providerConfig{args: []string{"-v", variant.v}, env: map[string]string{"GOGC": variant.gogc}})
			req := mountReq(params, nil, defaultPod)
			first := p.mountOK(b, params, nil)
			floor, floorPid := startFloor(b, first)
			calls := e.Calls("kms")
			one := func(c v1alpha1.CSIDriverProviderClient) time.Duration {
				s := time.Now()
				resp, err := c.Mount(context.Background(), req)
				d := time.Since(s)
				if err != nil {
					b.Fatal(err)
				}
				if len(resp.GetFiles()) != 10 {
					b.Fatalf("%d files", len(resp.GetFiles()))
				}
				return d
			}
			// Warm both connections and both processes' code paths.
			for i := 0; i < 200; i++ {
				one(p.client)
				one(floor)
			}
			serve := make([]time.Duration, 0, b.N)
			flo := make([]time.Duration, 0, b.N)
			cpuServe, cpuFloor := procCPU(b, p.cmd.Process.Pid), procCPU(b, floorPid)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					serve = append(serve, one(p.client))
					flo = append(flo, one(floor))
				} else {
					flo = append(flo, one(floor))
					serve = append(serve, one(p.client))
				}
			}
			b.StopTimer()
			cpuServe, cpuFloor = procCPU(b, p.cmd.Process.Pid)-cpuServe, procCPU(b, floorPid)-cpuFloor
			if n := e.Calls("kms"); n != calls {
				b.Fatalf("%d upstream calls during warm Mounts", n-calls)
			}
			ps50, ps99 := percentiles(serve)
			pf50, pf99 := percentiles(flo)
			b.ReportMetric(float64(ps50.Microseconds()), "serve-p50-µs")
			b.ReportMetric(float64(ps99.Microseconds()), "serve-p99-µs")
			b.ReportMetric(float64(pf50.Microseconds()), "floor-p50-µs")
			b.ReportMetric(float64(pf99.Microseconds()), "floor-p99-µs")
			// CPU per Mount of each process (user+system), the work the
			// provider adds apart from waiting.
			b.ReportMetric(float64(cpuServe.Microseconds())/float64(b.N), "serve-cpu-µs/mount")
			b.ReportMetric(float64(cpuFloor.Microseconds())/float64(b.N), "floor-cpu-µs/mount")
			b.ReportMetric(float64(ps50)/float64(pf50), "x-floor-p50")
			b.ReportMetric(float64(ps99)/float64(pf99), "x-floor-p99")
		})
	}
}

// procCPU is a process's user+system CPU time so far (/proc/<pid>/stat).
func procCPU(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// the first, utime the 12th and stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// percentiles sorts d and returns its p50 and p99.
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[(len(d)*99)/100]
}
