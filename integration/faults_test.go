package integration

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func TestEmulatorDownAndBack(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	params := objects("- objectName: demo-db", "- objectName: test", "  objectType: oos")
	e.SetDown(true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.mount(ctx, params, nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Mount succeeded with the cloud down")
	}
	if took > 3500*time.Millisecond {
		t.Fatalf("the failing Mount took %v, past its 3s deadline", took)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, `objects[0] "demo-db"`) || !strings.Contains(msg, `objects[1] "test"`) {
		t.Errorf("the error does not name both objects: %s", msg)
	}
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Errorf("code %v, want Unavailable or DeadlineExceeded", c)
	}
	e.SetDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := p.mount(context.Background(), params, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered without a restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSlowUpstreamBeyondDeadline(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 3 * time.Second, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.mount(ctx, objects("- objectName: demo-db"), nil)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("code %v: %v", status.Code(err), err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("returned after %v, well past the 1s deadline", d)
	}
	// The fetch went on in the background and filled the cache: the next
	// Mount is served without another upstream call.
	time.Sleep(2500 * time.Millisecond)
	before := e.Calls("kms")
	p.mountOK(t, objects("- objectName: demo-db"), nil)
	if n := e.Calls("kms") - before; n != 0 {
		t.Errorf("the abandoned fetch did not fill the cache (%d more calls)", n)
	}
}

func TestResetMidResponseIsRetried(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultResetBody, Count: 1})
	resp := p.mountOK(t, objects("- objectName: demo-db"), nil)
	if string(writeLikeDriver(t, resp)["demo-db"].data) != emulator.DemoSecretJSONValue {
		t.Fatal("wrong content after a reset mid-response")
	}
	if n := e.Calls("kms"); n != 2 {
		t.Errorf("%d calls, want 2 (one reset, one retry)", n)
	}
}

func TestProviderKilledAndRestartedOnSameSocket(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	p.mountOK(t, objects("- objectName: demo-db"), nil)
	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL reported a clean exit")
	}
	if _, err := os.Stat(p.sock); err != nil {
		t.Fatalf("after SIGKILL the socket file should be left behind (stale): %v", err)
	}
	p2 := startProvider(t, e, providerConfig{dir: p.dir})
	p2.mountOK(t, objects("- objectName: demo-db"), nil)
}

// TestLoad runs 1,000 Mounts from 100 pods at once, cold then warm, through
// the real binary: zero errors, upstream calls equal to the unique objects,
// and the provider's goroutines back to their baseline afterwards.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	seed := emulator.DemoSeed()
	groups := make([]map[string]string, 10)
	for g := 0; g < 10; g++ {
		var lines []string
		for j := 0; j < 10; j++ {
			name := fmt.Sprintf("load-%d-%d", g, j)
			seed.Secrets = append(seed.Secrets, emulator.Secret{Name: name, Value: strings.Repeat("v", 512)})
			lines = append(lines, "- objectName: "+name)
		}
		groups[g] = objects(lines...)
	}
	e := startEmulator(t, seed)
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 20 * time.Millisecond})
	metricsAddr := freeAddr(t)
	p := startProvider(t, e, providerConfig{args: []string{"--metrics-addr", metricsAddr, "-v", "0"}})
	baseline := scrapeGauge(t, metricsAddr, "go_goroutines")

	for _, phase := range []string{"cold", "warm"} {
		e.ResetCounters()
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []error
		for podN := 0; podN < 100; podN++ {
			wg.Add(1)
			go func(podN int) {
				defer wg.Done()
				pd := defaultPod
				pd.name = fmt.Sprintf("load-pod-%d", podN)
				for i := 0; i < 10; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					_, err := p.mountAs(ctx, pd, groups[podN%10], nil)
					cancel()
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
				}
			}(podN)
		}
		wg.Wait()
		took := time.Since(start)
		if len(failures) > 0 {
			t.Fatalf("%s: %d of 1000 Mounts failed, first: %v", phase, len(failures), failures[0])
		}
		calls := e.Calls("kms")
		want := 100
		if phase == "warm" {
			want = 0
		}
		if calls != want {
			t.Errorf("%s: %d upstream calls, want %d (the unique objects)", phase, calls, want)
		}
		_, hwm := procMemory(t, p.cmd.Process.Pid)
		t.Logf("%s: 1000 Mounts from 100 pods in %v (%.0f Mounts/s), %d upstream calls, peak RSS %.1f MiB",
			phase, took.Round(time.Millisecond), 1000/took.Seconds(), calls, hwm)
	}
	// Goroutines return to the baseline once the load is over: what stays is
	// the SDK's bounded pool of idle keep-alive connections (2 goroutines
	// each, at most 16 per endpoint, closed after 90 s idle).
	const idlePool = 2 * 16
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := scrapeGauge(t, metricsAddr, "go_goroutines")
		if n <= baseline+idlePool+5 {
			t.Logf("goroutines: baseline %.0f, after load %.0f (idle connection pool allowance %d)", baseline, n, idlePool)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines stayed at %.0f after the load (baseline %.0f + idle pool %d)", n, baseline, idlePool)
		}
		runtime.Gosched()
		time.Sleep(200 * time.Millisecond)
	}
}

// STS or the metadata service down while the cached session is still
// valid: Mounts that need upstream calls keep working on that session.
func TestCredentialServiceDownWhileSessionValid(t *testing.T) {
	t.Run("sts", func(t *testing.T) {
		e := startEmulator(t, authSeed("x"))
		p := startProvider(t, e, providerConfig{env: map[string]string{"ALICLOUD_ROLE_ARN": emulator.DemoRoleARN}})
		p.mountOK(t, objects("- objectName: demo-db"), nil)
		if n := e.Calls("sts"); n != 1 {
			t.Fatalf("%d STS calls, want 1", n)
		}
		e.SetFault(emulator.Fault{Route: "sts", Kind: emulator.FaultError, Status: 503})
		// A cache miss needs a signed call: the session still serves it.
		p.mountOK(t, objects("- objectName: test", "  objectType: oos"), nil)
		if e.CallsBy("oos", emulator.DemoRoleARN) != 1 {
			t.Fatalf("OOS not called with the cached session: %+v", e.Counters())
		}
		if n := e.Calls("sts"); n != 1 {
			t.Errorf("STS asked again (%d calls) although the session is valid", n)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		e := startEmulator(t, authSeed("x"))
		p := startProvider(t, e, providerConfig{
			args: []string{"--metadata-proxy", e.ProxyURL()},
			env:  map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": "", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": ""},
		})
		p.mountOK(t, objects("- objectName: demo-db"), nil)
		e.SetFault(emulator.Fault{Route: "imds", Kind: emulator.FaultError, Status: 500})
		p.mountOK(t, objects("- objectName: test", "  objectType: oos"), nil)
		if e.CallsBy("oos", ecsRoleARN) != 1 {
			t.Fatalf("OOS not called with the cached worker-role session: %+v", e.Counters())
		}
	})
}
