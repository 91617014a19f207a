package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func TestRetriedFaultsThenSuccess(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{args: []string{"--read-timeout", "400ms"}})
	cases := []struct {
		name  string
		fault emulator.Fault
		calls int
	}{
		{"Throttling.User x2", emulator.Fault{Kind: emulator.FaultThrottle, Code: "Throttling.User", Count: 2}, 3},
		{"Throttling x2", emulator.Fault{Kind: emulator.FaultThrottle, Code: "Throttling", Count: 2}, 3},
		{"Throttling.Api x2", emulator.Fault{Kind: emulator.FaultThrottle, Code: "Throttling.Api", Count: 2}, 3},
		{"Rejected.Throttling 400 x2", emulator.Fault{Kind: emulator.FaultThrottle, Code: "Rejected.Throttling", Status: 400, Count: 2}, 3},
		{"InternalFailure 500", emulator.Fault{Kind: emulator.FaultError, Status: 500, Count: 1}, 2},
		{"ServiceUnavailableTemporary 503", emulator.Fault{Kind: emulator.FaultError, Status: 503, Count: 1}, 2},
		{"gateway text 502", emulator.Fault{Kind: emulator.FaultText, Status: 502, Count: 1}, 2},
		{"connection reset", emulator.Fault{Kind: emulator.FaultReset, Count: 1}, 2},
		{"closed before headers", emulator.Fault{Kind: emulator.FaultClose, Count: 1}, 2},
		{"timeout", emulator.Fault{Kind: emulator.FaultLatency, Latency: time.Second, Count: 1}, 2},
		{"malformed success body", emulator.Fault{Kind: emulator.FaultMalformed, Count: 1}, 2},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, route := range []string{"kms", "oos"} {
				name := fmt.Sprintf("retry-%s-%d", route, i)
				if route == "kms" {
					if _, err := e.PutSecretValue(name, []byte("value-"+name), false); err != nil {
						t.Fatal(err)
					}
				} else if _, err := e.PutParameter(name, "value-"+name); err != nil {
					t.Fatal(err)
				}
				f := c.fault
				f.Route, f.Resource = route, name
				e.SetFault(f)
				resp, err := p.mount(context.Background(), objects("- objectName: "+name, "  objectType: "+route), nil)
				if err != nil {
					t.Fatalf("%s: Mount failed although the fault was transient: %v", route, err)
				}
				if got := string(writeLikeDriver(t, resp)[name].data); got != "value-"+name {
					t.Fatalf("%s: content %q", route, got)
				}
				if n := e.CallsFor(route, name); n != c.calls {
					t.Errorf("%s: %d upstream calls, want %d", route, n, c.calls)
				}
			}
		})
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	e := startEmulator(t, seedWith())
	p := startProvider(t, e, providerConfig{})
	limited := map[string]string{"access_key": limitedID, "access_secret": limitedSecret}
	for _, c := range []struct {
		name    string
		params  map[string]string
		secrets map[string]string
		route   string
		code    codes.Code
	}{
		{"not found", objects("- objectName: missing-secret"), nil, "kms", codes.NotFound},
		{"oos not found", objects("- objectName: missing-param", "  objectType: oos"), nil, "oos", codes.NotFound},
		{"permission", objects("- objectName: demo-db"), limited, "kms", codes.PermissionDenied},
		{"bad version", objects("- objectName: multi", "  objectVersion: old-1", "  objectVersionLabel: ACSCurrent"), nil, "kms", codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.ResetCounters()
			_, err := p.mount(context.Background(), c.params, c.secrets)
			if status.Code(err) != c.code {
				t.Fatalf("code %v, want %v: %v", status.Code(err), c.code, err)
			}
			if n := e.Calls(c.route); n != 1 {
				t.Errorf("%d upstream calls, want exactly 1 (no retries)", n)
			}
		})
	}
}

func TestThrottleRetryHonoursServerHint(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultThrottle, Code: "Throttling.User", TimeLeftMs: 600, Count: 1})
	start := time.Now()
	p.mountOK(t, objects("- objectName: demo-db"), nil)
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Fatalf("retried after %v, before the server's TimeLeft of 600ms", d)
	}
}

func TestRetriesGiveUpWithAClearError(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultThrottle, Code: "Throttling.User"})
	_, err := p.mount(context.Background(), objects("- objectName: demo-db"), nil)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code %v: %v", status.Code(err), err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "Throttling.User") || !strings.Contains(msg, "--kms-qps") {
		t.Errorf("message does not name the code and the knob: %s", msg)
	}
	if n := e.Calls("kms"); n != 4 {
		t.Errorf("%d attempts, want the bounded 4", n)
	}
}

func TestStaleIfErrorThenMaxStale(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s", "--max-stale", "2s"}})
	params := objects("- objectName: demo-db")
	first := versions(p.mountOK(t, params, nil))["kms/demo-db"]
	if _, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(`{"username":"new","password":"new-password"}`), false); err != nil {
		t.Fatal(err)
	}
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultError, Status: 500})
	time.Sleep(1200 * time.Millisecond) // past the TTL
	resp := p.mountOK(t, params, nil)
	if v := versions(resp)["kms/demo-db"]; v != first {
		t.Fatalf("stale serve returned version %s, want the last good %s", v, first)
	}
	if !strings.Contains(string(writeLikeDriver(t, resp)["demo-db"].data), "testuser") {
		t.Fatal("stale serve returned other content")
	}
	// Past TTL + max-stale the Mount fails, clearly.
	deadline := time.Now().Add(6 * time.Second)
	for {
		_, err := p.mount(context.Background(), params, nil)
		if err != nil {
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, "--max-stale") || !strings.Contains(msg, "InternalFailure") {
				t.Fatalf("past max-stale the error is unclear: %s", msg)
			}
			if status.Code(err) != codes.Unavailable {
				t.Errorf("code %v, want Unavailable", status.Code(err))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still served past max-stale")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := p.logLines("refresh failed", 1); n != 1 {
		t.Errorf("the failure was logged %d times, want once per object", n)
	}
	if !strings.Contains(p.logs.String(), "code=InternalFailure") {
		t.Error("the failure log lacks the upstream code")
	}
	// Recovery: the fault is cleared and the new version arrives.
	e.ClearFaults()
	deadline = time.Now().Add(6 * time.Second)
	for {
		resp, err := p.mount(context.Background(), params, nil)
		if err == nil && versions(resp)["kms/demo-db"] != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestFiftyMountsFiveObjectsThenWarmRound(t *testing.T) {
	seed := emulator.DemoSeed()
	var lines []string
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("obj-%d", i)
		seed.Secrets = append(seed.Secrets, emulator.Secret{Name: name, Value: "value-of-" + name})
		lines = append(lines, "- objectName: "+name)
	}
	e := startEmulator(t, seed)
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 50 * time.Millisecond})
	p := startProvider(t, e, providerConfig{})
	params := objects(lines...)
	round := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				pd := defaultPod
				pd.name = fmt.Sprintf("pod-%d", i)
				_, err := p.mountAs(context.Background(), pd, params, nil)
				errs <- err
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	round()
	if n := e.Calls("kms"); n != 5 {
		t.Fatalf("50 concurrent Mounts of 5 objects made %d upstream calls, want 5", n)
	}
	e.ResetCounters()
	round()
	if n := e.Calls("kms"); n != 0 {
		t.Fatalf("a second round inside the TTL made %d upstream calls, want 0", n)
	}
}

func TestRefreshAheadKeepsHotSecretsOffTheNetwork(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}})
	params := objects("- objectName: demo-db")
	p.mountOK(t, params, nil)
	// Read it regularly for 3 TTLs; every Mount must be a memory hit while the
	// refresher fetches in the background about once per TTL.
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 300 * time.Millisecond})
	for i := 0; i < 12; i++ {
		time.Sleep(250 * time.Millisecond)
		start := time.Now()
		p.mountOK(t, params, nil)
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Fatalf("Mount %d waited %v on the network", i, d)
		}
	}
	if n := e.Calls("kms"); n < 3 || n > 6 {
		t.Errorf("%d upstream calls over 3 TTLs, want about one per TTL", n)
	}
	// The log reaches the buffer through a pipe: wait for the last line.
	hits := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if hits = strings.Count(p.logs.String(), `cache="hit=1"`); hits >= 12 {
			break
		}
	}
	if hits < 12 {
		t.Errorf("hot Mounts were not all cache hits: %d cache hits logged for 12 Mounts", hits)
	}
	// Not read for a while: evicted, and refreshes stop.
	e.ClearFaults()
	time.Sleep(3500 * time.Millisecond)
	e.ResetCounters()
	time.Sleep(1500 * time.Millisecond)
	if n := e.Calls("kms"); n != 0 {
		t.Errorf("an idle entry is still refreshed (%d calls)", n)
	}
	p.mountOK(t, params, nil)
	if n := e.Calls("kms"); n != 1 {
		t.Errorf("the Mount after eviction made %d calls, want 1 (a miss)", n)
	}
}

func TestNodeWideRateLimitRespectsDeadline(t *testing.T) {
	seed := emulator.DemoSeed()
	var lines []string
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("rl-%d", i)
		seed.Secrets = append(seed.Secrets, emulator.Secret{Name: name, Value: "value-of-" + name})
		lines = append(lines, "- objectName: "+name)
	}
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{args: []string{"--kms-qps", "4", "--kms-burst", "1"}})
	start := time.Now()
	p.mountOK(t, objects(lines...), nil)
	if d := time.Since(start); d < 1700*time.Millisecond {
		t.Fatalf("8 calls at 4 qps took %v; the limiter did not hold", d)
	}
	// With a deadline the limiter cannot meet, the Mount fails inside it.
	p2 := startProvider(t, e, providerConfig{args: []string{"--kms-qps", "1", "--kms-burst", "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := p2.mount(ctx, objects(lines...), nil)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("the Mount outlived its deadline by far: %v", d)
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("code %v: %v", status.Code(err), err)
	}
}

// Revoking access upstream takes effect within one TTL: the cached value is
// not ridden out like an outage.
func TestRevokedAccessIsNotServedStale(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s", "--max-stale", "1h"}})
	params := objects("- objectName: demo-db")
	p.mountOK(t, params, nil)
	e.SetPolicy(emulator.DemoPrincipal, emulator.Policy{Deny: map[string][]string{"kms:GetSecretValue": {"demo-db"}}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := p.mount(context.Background(), params, nil)
		if status.Code(err) == codes.PermissionDenied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked secret is still served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(p.logs.String(), "no longer served") {
		t.Error("the revocation was not logged")
	}
}

// --kms-ca-file is trusted for KMS instance gateways (a class's kmsEndpoint)
// only; every other endpoint keeps the system roots.
func TestKMSInstanceCAOnlyForInstanceEndpoints(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{
		env: map[string]string{"SSL_CERT_FILE": ""},
		args: []string{"--kms-ca-file", e.CAFile(), "--allowed-kms-endpoints", "127.0.0.1:*",
			"--oos-endpoint", e.TLSEndpoint()},
	})
	resp := p.mountOK(t, objects("- objectName: demo-db", "  kmsEndpoint: "+e.TLSEndpoint()), nil)
	if string(writeLikeDriver(t, resp)["demo-db"].data) != emulator.DemoSecretJSONValue {
		t.Fatal("wrong content through the KMS instance endpoint")
	}
	_, err := p.mount(context.Background(), objects("- objectName: test", "  objectType: oos"), nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "unknown authority") {
		t.Fatalf("OOS over TLS trusted the KMS instance CA, or failed unclearly: %v", err)
	}
	if n := e.Calls("oos"); n != 0 {
		t.Errorf("%d OOS calls reached the server through an untrusted TLS connection", n)
	}
}
