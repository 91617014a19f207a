package integration

// Operability end to end: the real `serve` binary with its metrics and
// health endpoints, against the emulator. Every scrape is also checked for
// leaked secrets (the harness already checks logs and Mount errors).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/metrics/metricstest"
)

const mp = "alibabacloud_provider_"

// opsProvider is a provider started with its metrics and health endpoints
// on free loopback ports, read back from its "serving" log line.
type opsProvider struct {
	*provider
	metricsAddr, healthAddr string
}

var servingAddrRe = regexp.MustCompile(`(metricsAddr|healthAddr)["=:]+([0-9.]+:[0-9]+)`)

func startOps(t *testing.T, e *emulator.Emulator, cfg providerConfig) *opsProvider {
	t.Helper()
	cfg.args = append([]string{"--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"}, cfg.args...)
	p := startProvider(t, e, cfg)
	o := &opsProvider{provider: p}
	// The serving line is written before the socket is served, and
	// startProvider has seen Version answer.
	for _, m := range servingAddrRe.FindAllStringSubmatch(p.logs.String(), -1) {
		if m[1] == "metricsAddr" {
			o.metricsAddr = m[2]
		} else {
			o.healthAddr = m[2]
		}
	}
	if o.metricsAddr == "" || o.healthAddr == "" {
		t.Fatalf("no bound addresses in the serving log line:\n%s", p.logs.String())
	}
	return o
}

// scrape reads /metrics and fails the test if it holds a secret.
func (o *opsProvider) scrape(t testing.TB) *metricstest.Samples {
	t.Helper()
	s, err := metricstest.Scrape("http://" + o.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(s.Text); len(l) > 0 {
		t.Errorf("/metrics leaks %d sensitive values (%v)", len(l), l)
	}
	return s
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if l := leaks(string(b)); len(l) > 0 {
		t.Errorf("%s leaks %d sensitive values (%v)", url, len(l), l)
	}
	return resp.StatusCode, string(b)
}

// eventually polls cond every 100ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// delta is after-before of one series sum.
type delta struct{ before, after *metricstest.Samples }

func (d delta) of(name string, kv ...string) float64 {
	return d.after.Sum(name, kv...) - d.before.Sum(name, kv...)
}

func (d delta) want(t testing.TB, v float64, name string, kv ...string) {
	t.Helper()
	if got := d.of(name, kv...); got != v {
		t.Errorf("%s%v moved by %v, want %v", name, kv, got, v)
	}
}

// step runs fn and returns how the metrics moved.
func (o *opsProvider) step(t testing.TB, fn func()) delta {
	t.Helper()
	before := o.scrape(t)
	fn()
	return delta{before, o.scrape(t)}
}

func TestMetricsFamiliesMoveAgainstTheEmulator(t *testing.T) {
	e := startEmulator(t, seedWith())
	for _, n := range []string{"coal", "thr"} {
		if _, err := e.PutSecretValue(n, []byte("value-of-"+n+"-0123456789"), false); err != nil {
			t.Fatal(err)
		}
		noteSensitive("value-of-" + n + "-0123456789")
	}
	for _, n := range []string{"rl-1", "rl-2", "rl-3"} {
		if _, err := e.PutParameter(n, "param-"+n+"-0123456789"); err != nil {
			t.Fatal(err)
		}
		noteSensitive("param-" + n + "-0123456789")
	}
	// Default TTL (2m): no background refresh moves the counters mid-test.
	// OOS is limited to 2/s with no burst, for the rate-limit step.
	p := startOps(t, e, providerConfig{args: []string{"--oos-qps", "2", "--oos-burst", "1"}})
	ctx := context.Background()
	params := objects("- objectName: demo-db", "- objectName: test", "  objectType: oos")

	t.Run("miss then hit", func(t *testing.T) {
		d := p.step(t, func() { p.mountOK(t, params, nil) })
		d.want(t, 1, mp+"mount_requests_total", "outcome", "success")
		d.want(t, 1, mp+"mount_duration_seconds_count", "outcome", "success")
		d.want(t, 1, mp+"cache_requests_total", "type", "kms", "outcome", "miss")
		d.want(t, 1, mp+"cache_requests_total", "type", "oos", "outcome", "miss")
		d.want(t, 1, mp+"upstream_requests_total", "service", "kms", "action", "GetSecretValue", "code", "OK")
		d.want(t, 1, mp+"upstream_requests_total", "service", "oos", "action", "GetSecretParameter", "code", "OK")
		d.want(t, 1, mp+"upstream_request_duration_seconds_count", "service", "kms", "action", "GetSecretValue")
		d.want(t, 1, mp+"upstream_request_duration_seconds_count", "service", "oos", "action", "GetSecretParameter")
		d.want(t, 1, mp+"cache_refreshes_total", "type", "kms", "result", "unchanged")

		d = p.step(t, func() { p.mountOK(t, params, nil) })
		d.want(t, 1, mp+"mount_requests_total", "outcome", "success")
		d.want(t, 1, mp+"cache_requests_total", "type", "kms", "outcome", "hit")
		d.want(t, 1, mp+"cache_requests_total", "type", "oos", "outcome", "hit")
		d.want(t, 0, mp+"upstream_requests_total")
	})

	t.Run("failures by outcome and upstream code", func(t *testing.T) {
		d := p.step(t, func() {
			if _, err := p.mount(ctx, objects("- objectName: no-such-secret"), nil); err == nil {
				t.Fatal("missing secret mounted")
			}
		})
		d.want(t, 1, mp+"mount_requests_total", "outcome", "fetch")
		d.want(t, 1, mp+"upstream_requests_total", "service", "kms", "code", "Forbidden.ResourceNotFound")
		d.want(t, 1, mp+"cache_requests_total", "type", "kms", "outcome", "error")
		d.want(t, 1, mp+"cache_refreshes_total", "type", "kms", "result", "error")
		d.want(t, 1, mp+"cache_evictions_total") // a failed first fetch keeps no entry

		d = p.step(t, func() {
			if _, err := p.mount(ctx, objects("- objectType: kms"), nil); err == nil {
				t.Fatal("bad class mounted")
			}
		})
		d.want(t, 1, mp+"mount_requests_total", "outcome", "invalid")
		d.want(t, 0, mp+"upstream_requests_total")

		d = p.step(t, func() {
			_, err := p.mount(ctx, params, map[string]string{"access_key": limitedID, "access_secret": limitedSecret})
			if err == nil {
				t.Fatal("limited key read demo-db")
			}
		})
		d.want(t, 1, mp+"upstream_requests_total", "service", "kms", "code", "Forbidden.NoPermission")
	})

	t.Run("coalesced", func(t *testing.T) {
		e.SetFault(emulator.Fault{Route: "kms", Resource: "coal", Kind: emulator.FaultLatency, Latency: 400 * time.Millisecond, Count: 1})
		d := p.step(t, func() {
			var wg sync.WaitGroup
			for i := 0; i < 5; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := p.mount(ctx, objects("- objectName: coal"), nil); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		})
		if n := e.CallsFor("kms", "coal"); n != 1 {
			t.Fatalf("%d upstream calls for 5 concurrent Mounts", n)
		}
		co, miss := d.of(mp+"cache_requests_total", "outcome", "coalesced"), d.of(mp+"cache_requests_total", "outcome", "miss")
		if co+miss != 5 || co < 2 {
			t.Errorf("coalesced %v + miss %v, want 5 with most coalesced", co, miss)
		}
		d.want(t, 1, mp+"upstream_requests_total", "service", "kms", "code", "OK")
	})

	t.Run("retries", func(t *testing.T) {
		e.SetFault(emulator.Fault{Route: "kms", Resource: "thr", Kind: emulator.FaultThrottle, Code: "Throttling.User", Count: 2})
		d := p.step(t, func() { p.mountOK(t, objects("- objectName: thr"), nil) })
		d.want(t, 2, mp+"retries_total", "service", "kms", "reason", "throttled")
		d.want(t, 2, mp+"upstream_requests_total", "service", "kms", "code", "Throttling.User")
		d.want(t, 1, mp+"upstream_requests_total", "service", "kms", "code", "OK")
	})

	t.Run("rate limit waits", func(t *testing.T) {
		time.Sleep(600 * time.Millisecond) // let the OOS bucket refill
		d := p.step(t, func() {
			// Pinned versions are read one call each (latest values of one
			// Mount would be one batch call).
			p.mountOK(t, objects(`- {objectName: rl-1, objectType: oos, objectVersion: "1"}`, `- {objectName: rl-2, objectType: oos, objectVersion: "1"}`, `- {objectName: rl-3, objectType: oos, objectVersion: "1"}`), nil)
		})
		if n := d.of(mp+"rate_limit_wait_seconds_count", "service", "oos"); n < 2 {
			t.Errorf("%v rate-limit waits for 3 OOS calls at 2/s with burst 1, want 2", n)
		}
		if s := d.of(mp+"rate_limit_wait_seconds_sum", "service", "oos"); s < 0.5 {
			t.Errorf("waited %vs in total, want at least 0.5s", s)
		}
		d.want(t, 0, mp+"rate_limit_wait_seconds_count", "service", "kms")
	})

	t.Run("no object names without --metrics-object-labels", func(t *testing.T) {
		s := p.scrape(t)
		for _, name := range []string{"demo-db", "no-such-secret", "coal", "rl-1"} {
			if strings.Contains(s.Text, `"`+name+`"`) {
				t.Errorf("object name %q appears in /metrics", name)
			}
		}
		if s.Has(mp+"cache_requests_total", "object", "demo-db") || strings.Contains(s.Text, "object=") {
			t.Error("an object label is exported")
		}
		if !s.Has(mp+"build_info") || !s.Has("go_goroutines") || !s.Has("process_resident_memory_bytes") {
			t.Error("build_info or the Go/process collectors are missing")
		}
	})
}

func TestMetricsRotationStaleAndEviction(t *testing.T) {
	e := startEmulator(t, nil)
	p := startOps(t, e, providerConfig{args: []string{"--cache-ttl", "1s", "--read-timeout", "500ms"}})
	params := objects("- objectName: demo-db")
	first := versions(p.mountOK(t, params, nil))

	eventually(t, 5*time.Second, "cache_entries never counted the entry", func() bool {
		return p.scrape(t).Sum(mp+"cache_entries") >= 1
	})

	t.Run("rotation", func(t *testing.T) {
		rotated := `{"username":"u2","password":"rotated-password-0123"}`
		noteSensitive("rotated-password-0123")
		before := p.scrape(t)
		id, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(rotated), false)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the new version was never served", func() bool {
			return versions(p.mountOK(t, params, nil))["kms/demo-db"] == id
		})
		if first["kms/demo-db"] == id {
			t.Fatal("version did not change")
		}
		d := delta{before, p.scrape(t)}
		if d.of(mp+"cache_refreshes_total", "type", "kms", "result", "changed") < 1 {
			t.Error("a rotation did not count as a changed refresh")
		}
	})

	t.Run("stale while upstream fails", func(t *testing.T) {
		before := p.scrape(t)
		fid := e.SetFault(emulator.Fault{Route: "kms", Resource: "demo-db", Kind: emulator.FaultError, Status: 500})
		time.Sleep(1200 * time.Millisecond) // past the TTL
		eventually(t, 5*time.Second, "no stale serve counted", func() bool {
			p.mountOK(t, params, nil) // served stale: the Mount still succeeds
			return delta{before, p.scrape(t)}.of(mp+"cache_requests_total", "type", "kms", "outcome", "stale") >= 1
		})
		e.ClearFault(fid)
		d := delta{before, p.scrape(t)}
		if d.of(mp+"cache_refreshes_total", "type", "kms", "result", "error") < 1 {
			t.Error("failed refreshes not counted")
		}
		if d.of(mp+"retries_total", "service", "kms", "reason", "unavailable") < 1 {
			t.Error("retries of 500s not counted")
		}
		if d.of(mp+"upstream_requests_total", "service", "kms", "code", "InternalFailure") < 1 {
			t.Error("the upstream code of the failures is not counted")
		}
	})

	t.Run("idle eviction", func(t *testing.T) {
		before := p.scrape(t)
		// Nobody reads now: past 3 TTLs the entry is dropped.
		eventually(t, 10*time.Second, "the idle entry was never evicted", func() bool {
			d := delta{before, p.scrape(t)}
			return d.of(mp+"cache_evictions_total") >= 1 && d.after.Sum(mp+"cache_entries") == 0
		})
	})
}

func TestMetricsObjectLabelsWhenAsked(t *testing.T) {
	e := startEmulator(t, nil)
	p := startOps(t, e, providerConfig{args: []string{"--metrics-object-labels"}})
	p.mountOK(t, objects("- objectName: demo-db", "- objectName: test", "  objectType: oos"), nil)
	s := p.scrape(t)
	if s.Sum(mp+"cache_requests_total", "type", "kms", "outcome", "miss", "object", "demo-db") != 1 {
		t.Errorf("no cache series for object demo-db:\n%s", grepLines(s.Text, "cache_requests_total"))
	}
	if s.Sum(mp+"upstream_requests_total", "service", "oos", "code", "OK", "object", "test") != 1 {
		t.Errorf("no upstream series for object test:\n%s", grepLines(s.Text, "upstream_requests_total"))
	}
	// Names a class requests that cannot be served never become labels.
	for i := 0; i < 3; i++ {
		if _, err := p.mount(context.Background(), objects(fmt.Sprintf("- objectName: no-such-secret-%d", i)), nil); err == nil {
			t.Fatal("a Mount of a missing secret succeeded")
		}
	}
	s = p.scrape(t)
	if strings.Contains(s.Text, "no-such-secret") {
		t.Errorf("names never served are labels:\n%s", grepLines(s.Text, "no-such-secret"))
	}
	if s.Sum(mp+"cache_requests_total", "type", "kms", "outcome", "error", "object", "(other)") != 3 {
		t.Errorf("the failed lookups are not counted under (other):\n%s", grepLines(s.Text, "cache_requests_total"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// One line per Mount with pod, namespace, objects, cache outcome and
// duration; JSON when asked; debug lines only at -v 4.
func TestOneLogLinePerMount(t *testing.T) {
	e := startEmulator(t, nil)
	p := startOps(t, e, providerConfig{args: []string{"--log-format", "json"}})
	params := objects("- objectName: demo-db", "- objectName: test", "  objectType: oos")
	p.mountOK(t, params, nil)
	p.mountOK(t, params, nil)
	if _, err := p.mount(context.Background(), objects("- objectName: no-such-secret"), nil); err == nil {
		t.Fatal("missing secret mounted")
	}
	type line struct {
		Level, Msg, Pod, Namespace, Cache, Duration, Outcome string
		Objects                                              int
	}
	var mounts []line
	debug := 0
	parse := func() {
		mounts, debug = nil, 0
		sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("not a JSON log line: %s", sc.Text())
			}
			if l.Level == "DEBUG" {
				debug++
			}
			if l.Msg == "mount" || l.Msg == "mount failed" {
				mounts = append(mounts, l)
			}
		}
	}
	// The log reaches us through a pipe: give the last line a moment.
	deadline := time.Now().Add(5 * time.Second)
	for parse(); len(mounts) < 3 && time.Now().Before(deadline); parse() {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // and catch a 4th, which would be wrong
	parse()
	if len(mounts) != 3 {
		t.Fatalf("%d mount lines for 3 Mounts:\n%s", len(mounts), p.logs.String())
	}
	for i, w := range []line{
		{Level: "INFO", Msg: "mount", Cache: "miss=2", Outcome: "success", Objects: 2},
		{Level: "INFO", Msg: "mount", Cache: "hit=2", Outcome: "success", Objects: 2},
		{Level: "WARN", Msg: "mount failed", Cache: "error=1", Outcome: "fetch", Objects: 1},
	} {
		g := mounts[i]
		if g.Level != w.Level || g.Msg != w.Msg || g.Cache != w.Cache || g.Outcome != w.Outcome || g.Objects != w.Objects ||
			g.Pod != defaultPod.name || g.Namespace != defaultPod.namespace {
			t.Errorf("mount line %d = %+v, want %+v for pod %s/%s", i, g, w, defaultPod.namespace, defaultPod.name)
		}
		if _, err := time.ParseDuration(g.Duration); err != nil {
			t.Errorf("mount line %d: duration %q: %v", i, g.Duration, err)
		}
	}
	if debug == 0 {
		t.Error("-v 4 logged no debug line")
	}

	quiet := startOps(t, e, providerConfig{args: []string{"--log-format", "json", "-v", "0"}})
	quiet.mountOK(t, params, nil)
	eventually(t, 5*time.Second, "no mount line at -v 0", func() bool { return strings.Contains(quiet.logs.String(), `"msg":"mount"`) })
	if strings.Contains(quiet.logs.String(), `"level":"DEBUG"`) {
		t.Error("-v 0 logs debug lines")
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	e := startEmulator(t, nil)
	p := startOps(t, e, providerConfig{})
	code, body := httpGet(t, "http://"+p.healthAddr+"/healthz")
	if code != 200 {
		t.Fatalf("/healthz %d: %s", code, body)
	}
	code, body = httpGet(t, "http://"+p.healthAddr+"/readyz")
	if code != 200 || !strings.Contains(body, "socket: ok") || !strings.Contains(body, "credentials: ok") {
		t.Fatalf("/readyz %d: %s", code, body)
	}
	if strings.Contains(body, emulator.DemoAccessKeyID) {
		t.Error("/readyz shows the whole AccessKey id")
	}
	// The driver finds the provider by its socket file: without it the
	// provider is neither live nor ready.
	if err := os.Remove(p.sock); err != nil {
		t.Fatal(err)
	}
	code, body = httpGet(t, "http://"+p.healthAddr+"/healthz")
	if code != 503 || !strings.Contains(body, p.sock) {
		t.Errorf("/healthz without the socket: %d %s", code, body)
	}
	eventually(t, 10*time.Second, "/readyz kept passing without the socket", func() bool {
		code, body := httpGet(t, "http://"+p.healthAddr+"/readyz")
		return code == 503 && strings.Contains(body, "socket: FAIL")
	})
}

func TestReadyzFailsWhileCredentialsCannotResolve(t *testing.T) {
	e := startEmulator(t, nil)
	p := startOps(t, e, providerConfig{env: map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": ""}})
	code, body := httpGet(t, "http://"+p.healthAddr+"/readyz")
	if code != 503 || !strings.Contains(body, "credentials: FAIL") || !strings.Contains(body, "socket: ok") {
		t.Fatalf("/readyz without credentials: %d %s", code, body)
	}
	if code, _ := httpGet(t, "http://"+p.healthAddr+"/healthz"); code != 200 {
		t.Errorf("/healthz %d: a provider without credentials is alive, only not ready", code)
	}
	// The same provider configuration with credentials is ready.
	ok := startOps(t, e, providerConfig{})
	if code, body := httpGet(t, "http://"+ok.healthAddr+"/readyz"); code != 200 {
		t.Fatalf("/readyz with credentials: %d %s", code, body)
	}
	// A provider that must not use an identity of its own is ready without one.
	deny := startOps(t, e, providerConfig{args: []string{"--deny-provider-identity"}, env: map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": ""}})
	if code, body := httpGet(t, "http://"+deny.healthAddr+"/readyz"); code != 200 || !strings.Contains(body, "credentials: ok (not checked") {
		t.Fatalf("/readyz with --deny-provider-identity: %d %s", code, body)
	}
}

// An STS-backed identity: /readyz fails while STS refuses and passes once
// it answers again, in the same process.
func TestReadyzFollowsSTS(t *testing.T) {
	e := startEmulator(t, nil)
	fid := e.SetFault(emulator.Fault{Route: "sts", Kind: emulator.FaultError, Status: 503})
	p := startOps(t, e, providerConfig{env: map[string]string{"ALICLOUD_ROLE_ARN": emulator.DemoRoleARN}})
	code, body := httpGet(t, "http://"+p.healthAddr+"/readyz")
	if code == 200 && e.Calls("sts") == 0 {
		t.Skip("this build's auth does not assume ALICLOUD_ROLE_ARN yet: no STS-backed identity to follow")
	}
	if code != 503 || !strings.Contains(body, "credentials: FAIL") {
		t.Fatalf("/readyz while STS fails: %d %s", code, body)
	}
	e.ClearFault(fid)
	eventually(t, 15*time.Second, "/readyz never passed after STS recovered", func() bool {
		code, _ := httpGet(t, "http://"+p.healthAddr+"/readyz")
		return code == 200
	})
}

// A port that cannot be bound fails the start (exit 1), before the socket
// exists, and says which flag to change.
func TestBindFailureExitsNonZero(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	for _, flag := range []string{"--health-addr", "--metrics-addr"} {
		t.Run(flag, func(t *testing.T) {
			dir := shortTempDir(t)
			args := []string{"serve", "--provider-volume", dir, "--region", "cn-hangzhou", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0", flag, busy.Addr().String()}
			out, err := runBinary(t, args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1:\n%s", err, out)
			}
			if !strings.Contains(out, flag) || !strings.Contains(out, "address already in use") {
				t.Errorf("the error does not name %s and the cause:\n%s", flag, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "alibabacloud.sock")); err == nil {
				t.Error("the socket was created although the start failed")
			}
		})
	}
}

// One address for both: /metrics, /healthz and /readyz share the listener.
// An empty --metrics-addr disables metrics.
func TestSharedAndDisabledListeners(t *testing.T) {
	e := startEmulator(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	startProvider(t, e, providerConfig{args: []string{"--metrics-addr", addr, "--health-addr", addr}})
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+addr+path); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	q := startProvider(t, e, providerConfig{args: []string{"--metrics-addr", "", "--health-addr", "127.0.0.1:0"}})
	if !strings.Contains(q.logs.String(), `metricsAddr=""`) {
		t.Errorf("metrics not disabled:\n%s", q.logs.String())
	}
}

// The end-to-end log-leak test: debug logging, every kind of Mount, both
// failures and credentials in Mount secrets, a service-account token in the
// attributes, object labels on; then the logs (checked by the harness at
// cleanup), the Mount errors (checked by mountAs), /metrics, /healthz and
// /readyz must hold no secret value, AccessKey secret or token.
func TestNoSecretsInLogsErrorsOrMetrics(t *testing.T) {
	e := startEmulator(t, seedWith())
	token := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpkZWZhdWx0In0.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw"
	noteSensitive(token, "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			p := startOps(t, e, providerConfig{args: []string{"--metrics-object-labels", "--log-format", format, "--cache-ttl", "1s"}})
			ctx := context.Background()
			tokens := fmt.Sprintf(`{"sts.aliyuncs.com":{"token":%q,"expirationTimestamp":"2099-01-01T00:00:00Z"}}`, token)
			all := []map[string]string{
				objects("- objectName: demo-db", "  jmesPath:", "    - {path: username, objectAlias: u}", "    - {path: password, objectAlias: pw}"),
				objects("- objectName: demo-tls-key"),
				objects("- objectName: test", "  objectType: oos"),
				objects("- objectName: multi", "  objectVersionLabel: ACSPrevious"),
				objects("- objectName: app/param", "  objectType: oos", "  objectVersion: \"1\""),
				merge(objects("- objectName: demo-db"), "csi.storage.k8s.io/serviceAccount.tokens", tokens),
			}
			for _, params := range all {
				p.mountOK(t, params, nil)
			}
			p.mountOK(t, objects("- objectName: plain"), map[string]string{"access_key": limitedID, "access_secret": limitedSecret})
			fails := []struct {
				params, secrets map[string]string
			}{
				{objects("- objectName: demo-db"), map[string]string{"access_key": limitedID, "access_secret": limitedSecret}},
				{objects("- objectName: plain"), map[string]string{"access_key": limitedID, "access_secret": "wrong" + limitedSecret[5:]}},
				{objects("- objectName: plain", "  jmesPath: [{path: a, objectAlias: a}]"), nil},
				{objects("- objectName: no-such-secret"), map[string]string{"access_key": limitedID}},
			}
			for i, f := range fails {
				if _, err := p.mount(ctx, f.params, f.secrets); err == nil {
					t.Errorf("failing Mount %d succeeded", i)
				}
			}
			// Tokens the provider may use or refuse, depending on the
			// class: whatever the outcome, they must not be echoed.
			for _, params := range []map[string]string{
				merge(objects("- objectName: demo-db"), "csi.storage.k8s.io/serviceAccount.tokens", "{not json "+token),
				merge(objects("- objectName: demo-db"), "usePodServiceAccountToken", "true", "csi.storage.k8s.io/serviceAccount.tokens", tokens),
				merge(objects("- objectName: demo-db"), "usePodServiceAccountToken", "true", "csi.storage.k8s.io/serviceAccount.tokens", "{not json "+token),
			} {
				_, _ = p.mount(ctx, params, nil)
			}
			noteSensitive("wrong" + limitedSecret[5:])
			// Upstream failures and a rotation while refreshing.
			e.SetFault(emulator.Fault{Route: "kms", Resource: "demo-db", Kind: emulator.FaultError, Status: 500, Count: 3})
			if _, err := e.PutSecretValue("multi", []byte("rotated-multi-value-0123"), false); err != nil {
				t.Fatal(err)
			}
			noteSensitive("rotated-multi-value-0123")
			time.Sleep(1200 * time.Millisecond)
			for _, params := range all[:4] {
				p.mountOK(t, params, nil)
			}
			s := p.scrape(t) // fails on a leak
			if !s.Has(mp+"cache_requests_total", "object", "demo-db") {
				t.Error("object labels are off: the scrape checked less than it should")
			}
			httpGet(t, "http://"+p.healthAddr+"/readyz")
			httpGet(t, "http://"+p.healthAddr+"/healthz")
			if !strings.Contains(strings.ToLower(p.logs.String()), "debug") {
				t.Error("no debug lines were logged: the leak check covered less than -v 4")
			}
		})
	}
}

// docs/operations.md lists every flag of serve.
func TestOperationsDocListsEveryServeFlag(t *testing.T) {
	out, _ := runBinary(t, "serve", "-h")
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	flagRe := regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`)
	flags := flagRe.FindAllStringSubmatch(out, -1)
	if len(flags) < 10 {
		t.Fatalf("could not read serve's flags from -h:\n%s", out)
	}
	for _, f := range flags {
		name := f[1]
		if name == "v" {
			if !strings.Contains(string(doc), "`-v`") {
				t.Errorf("docs/operations.md does not list -v")
			}
			continue
		}
		if !strings.Contains(string(doc), "`--"+name+"`") {
			t.Errorf("docs/operations.md does not list `--%s`", name)
		}
	}
}
