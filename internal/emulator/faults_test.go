package emulator_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func setFault(t *testing.T, e *emulator.Emulator, f emulator.Fault) string {
	t.Helper()
	id, err := e.AddFault(f)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wantURLError(t *testing.T, err error) *url.Error {
	t.Helper()
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("want *url.Error, got %T: %v", err, err)
	}
	var se *tea.SDKError
	if errors.As(err, &se) {
		t.Fatalf("a transport error must not be an SDKError: %v", err)
	}
	return ue
}

// TestFaultErrorClasses checks that every fault kind reaches the caller as
// the error class docs/emulator.md describes ("Errors and what the SDK
// caller sees").
func TestFaultErrorClasses(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	kc := kmsClient(t, e, demoCred(t))
	one := func(f emulator.Fault) error {
		t.Helper()
		f.Route, f.Count = "kms", 1
		setFault(t, e, f)
		_, err := getSecret(kc, emulator.DemoSecretJSON)
		if len(e.Faults()) != 0 {
			t.Fatalf("one-shot fault still installed: %+v", e.Faults())
		}
		return err
	}

	_ = wantSDKError(t, one(emulator.Fault{Kind: emulator.FaultThrottle, TimeLeftMs: 1500}), "Throttling.User", 429)
	_ = wantSDKError(t, one(emulator.Fault{Kind: emulator.FaultThrottle, Code: "Throttling.Api", Status: 400}), "Throttling.Api", 400)
	_ = wantSDKError(t, one(emulator.Fault{Kind: emulator.FaultThrottle, Code: "Rejected.Throttling"}), "Rejected.Throttling", 400)
	_ = wantSDKError(t, one(emulator.Fault{Kind: emulator.FaultError}), "InternalFailure", 500)
	_ = wantSDKError(t, one(emulator.Fault{Kind: emulator.FaultError, Status: 503}), "ServiceUnavailableTemporary", 503)
	se := wantSDKError(t, one(emulator.Fault{Kind: emulator.FaultDeny}), "Forbidden.NoPermission", 403)
	if se.AccessDeniedDetail["AuthAction"] != "kms:GetSecretValue" {
		t.Fatalf("AccessDeniedDetail = %v", se.AccessDeniedDetail)
	}

	// Non-JSON error bodies surface as a raw JSON syntax error.
	for _, status := range []int{502, 503} {
		err := one(emulator.Fault{Kind: emulator.FaultText, Status: status})
		var syn *json.SyntaxError
		if !errors.As(err, &syn) {
			t.Fatalf("text %d: want *json.SyntaxError, got %T: %v", status, err, err)
		}
	}

	// A truncated success body is a decode error, not an SDKError.
	err := one(emulator.Fault{Kind: emulator.FaultMalformed})
	var se2 *tea.SDKError
	if err == nil || errors.As(err, &se2) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("malformed: got %T: %v", err, err)
	}

	err = one(emulator.Fault{Kind: emulator.FaultReset})
	_ = wantURLError(t, err)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reset: want ECONNRESET, got %v", err)
	}
	err = one(emulator.Fault{Kind: emulator.FaultClose})
	_ = wantURLError(t, err)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("close: want EOF, got %v", err)
	}

	// After all that the client still works, and every call was counted.
	mustSecret(t, kc, emulator.DemoSecretJSON)
	eventually(t, "12 kms calls", func() bool { return e.Calls("kms") == 12 })
	for outcome, want := range map[string]int{
		"Throttling.User": 1, "InternalFailure": 1, "fault:text": 2, "fault:malformed": 1, "fault:reset": 1, "fault:close": 1, "ok": 1,
	} {
		eventually(t, "outcome "+outcome, func() bool { return e.CallsWithOutcome("kms", outcome) == want })
	}
}

func TestThrottlingErrorRetryAfter(t *testing.T) {
	// With DisableSDKError the dara client returns its own ThrottlingError,
	// whose RetryAfter comes from x-ratelimit-user-api TimeLeft.
	e := start(t, nil, emulator.Options{})
	setFault(t, e, emulator.Fault{Route: "kms", Kind: emulator.FaultThrottle, TimeLeftMs: 1500, Count: 1})
	kc := kmsClient(t, e, demoCred(t))
	kc.DisableSDKError = tea.Bool(true) // a field of the embedded openapi.Client, not of Config
	_, err := getSecret(kc, emulator.DemoSecretJSON)
	var te *openapi.ThrottlingError
	if !errors.As(err, &te) {
		t.Fatalf("want *ThrottlingError, got %T: %v", err, err)
	}
	if tea.Int64Value(te.RetryAfter) != 1500 || tea.StringValue(te.Code) != "Throttling.User" {
		t.Fatalf("ThrottlingError = %+v", te)
	}
}

func TestLatencyAndHang(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	fast := kmsClient(t, e, demoCred(t), func(c *openapi.Config) { c.ReadTimeout = tea.Int(150) })

	setFault(t, e, emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 60 * time.Millisecond, Count: 1})
	t0 := time.Now()
	mustSecret(t, fast, emulator.DemoSecretJSON)
	if d := time.Since(t0); d < 60*time.Millisecond {
		t.Fatalf("latency fault took only %v", d)
	}

	setFault(t, e, emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 10 * time.Second, Count: 1})
	t0 = time.Now()
	_, err := getSecret(fast, emulator.DemoSecretJSON)
	if ue := wantURLError(t, err); !ue.Timeout() {
		t.Fatalf("want a timeout, got %v", err)
	}
	// The emulator noticed the client leaving instead of sleeping 10s.
	eventually(t, "aborted latency", func() bool { return e.CallsWithOutcome("kms", "aborted") == 1 })
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("latency fault did not honour the disconnect (%v)", d)
	}

	setFault(t, e, emulator.Fault{Route: "kms", Kind: emulator.FaultHang, Count: 1})
	_, err = getSecret(fast, emulator.DemoSecretJSON)
	if ue := wantURLError(t, err); !ue.Timeout() {
		t.Fatalf("want a timeout, got %v", err)
	}
	eventually(t, "hang released", func() bool { return e.CallsWithOutcome("kms", "fault:hang") == 1 })
}

func TestFaultTriggersAndScopes(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.AccessKeys = append(seed.AccessKeys, emulator.AccessKey{ID: "LTAIother", Secret: "os", Principal: "other"})
	e := start(t, seed, emulator.Options{})
	kc := kmsClient(t, e, demoCred(t))
	other := kmsClient(t, e, akCred(t, "LTAIother", "os"))

	// Count: the next two matching calls fail, then the fault is gone.
	setFault(t, e, emulator.Fault{Route: "kms", Kind: emulator.FaultError, Count: 2})
	var pattern []bool
	for i := 0; i < 3; i++ {
		_, err := getSecret(kc, emulator.DemoSecretJSON)
		pattern = append(pattern, err != nil)
	}
	if !equalBools(pattern, []bool{true, true, false}) {
		t.Fatalf("count=2 pattern %v", pattern)
	}

	// EveryNth: every second call fails, until cleared.
	id := setFault(t, e, emulator.Fault{Route: "kms", Kind: emulator.FaultError, EveryNth: 2})
	pattern = nil
	for i := 0; i < 4; i++ {
		_, err := getSecret(kc, emulator.DemoSecretJSON)
		pattern = append(pattern, err != nil)
	}
	if !equalBools(pattern, []bool{false, true, false, true}) {
		t.Fatalf("everyNth=2 pattern %v", pattern)
	}
	if !e.ClearFault(id) || len(e.Faults()) != 0 {
		t.Fatal("ClearFault")
	}

	// Resource scope.
	setFault(t, e, emulator.Fault{Route: "kms", Resource: "demo-d*", Kind: emulator.FaultDeny})
	if _, err := getSecret(kc, emulator.DemoSecretJSON); err == nil {
		t.Fatal("resource-scoped fault did not fire")
	}
	mustSecret(t, kc, emulator.DemoSecretBinary)
	e.ClearFaults()

	// Principal scope (by principal name or AccessKeyId).
	setFault(t, e, emulator.Fault{Route: "kms", Principal: "other", Kind: emulator.FaultThrottle})
	setFault(t, e, emulator.Fault{Route: "oos", Principal: emulator.DemoAccessKeyID, Kind: emulator.FaultThrottle})
	mustSecret(t, kc, emulator.DemoSecretJSON)
	_, err := getSecret(other, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "Throttling.User", 429)
	_, err = getParam(oosClient(t, e, demoCred(t)), emulator.DemoParameter)
	_ = wantSDKError(t, err, "Throttling.User", 429)
	e.ClearFaults()

	// Route scope: an oos fault leaves kms alone.
	setFault(t, e, emulator.Fault{Route: "oos", Kind: emulator.FaultReset})
	mustSecret(t, kc, emulator.DemoSecretJSON)
	e.ClearFaults()

	if _, err := e.AddFault(emulator.Fault{Kind: "explode"}); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if e.SetFault(emulator.Fault{Kind: emulator.FaultLatency}) != "" {
		t.Fatal("latency fault without latency accepted")
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDownSwitch(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	kc := kmsClient(t, e, demoCred(t))
	mustSecret(t, kc, emulator.DemoSecretJSON)
	endpoint := e.Endpoint()

	e.SetDown(true)
	_, err := getSecret(kc, emulator.DemoSecretJSON)
	_ = wantURLError(t, err)
	_, err = getSecret(kmsClient(t, e, demoCred(t), func(c *openapi.Config) { c.ReadTimeout = tea.Int(4000) }), emulator.DemoSecretJSON)
	_ = wantURLError(t, err) // a fresh connection too

	e.SetDown(false)
	mustSecret(t, kc, emulator.DemoSecretJSON)
	if e.Endpoint() != endpoint {
		t.Fatalf("endpoint changed: %s -> %s", endpoint, e.Endpoint())
	}
	if n := e.CallsWithOutcome("kms", "fault:down"); n != 2 {
		t.Fatalf("down calls = %d", n)
	}
}

func TestSTSAndIMDSFaults(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	setFault(t, e, emulator.Fault{Route: "sts", Kind: emulator.FaultError, Status: 403, Code: "NoPermission", Count: 1})
	kc := kmsClient(t, e, ramRoleCred(t, e, emulator.DemoRoleARN))
	_, err := getSecret(kc, emulator.DemoSecretJSON)
	if err == nil || !strings.Contains(err.Error(), "NoPermission") {
		t.Fatalf("sts fault: %v", err)
	}
	mustSecret(t, kc, emulator.DemoSecretJSON) // the provider retries on the next call

	// The metadata token endpoint fails: with hardening off credentials-go
	// falls back to tokenless requests; with hardening on it cannot.
	setFault(t, e, emulator.Fault{Route: "imds", Action: "PutToken", Kind: emulator.FaultError, Status: 404})
	_, err = getSecret(kmsClient(t, e, ecsCred(t, e)), emulator.DemoSecretJSON)
	if err == nil {
		t.Fatal("hardened IMDS without tokens should fail")
	}
	e.SetHardenedIMDS(false)
	mustSecret(t, kmsClient(t, e, ecsCred(t, e)), emulator.DemoSecretJSON)
	e.ClearFaults()

	// A credentials body whose Code is not Success.
	setFault(t, e, emulator.Fault{Route: "imds", Action: "GetRoleCredentials", Kind: emulator.FaultError, Status: 200, Code: "Failed"})
	_, err = getSecret(kmsClient(t, e, ecsCred(t, e)), emulator.DemoSecretJSON)
	if err == nil || !strings.Contains(err.Error(), "Code is not Success") {
		t.Fatalf("imds Code fault: %v", err)
	}
}
