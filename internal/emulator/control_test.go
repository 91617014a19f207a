package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func TestCountersAndRequestLogNeverHoldSecrets(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	kc := kmsClient(t, e, demoCred(t))
	oc := oosClient(t, e, demoCred(t))
	for i := 0; i < 3; i++ {
		mustSecret(t, kc, emulator.DemoSecretJSON)
	}
	mustSecret(t, kc, emulator.DemoSecretBinary)
	for i := 0; i < 2; i++ {
		if _, err := getParam(oc, emulator.DemoParameter); err != nil {
			t.Fatal(err)
		}
	}
	role := ramRoleCred(t, e, emulator.DemoRoleARN)
	mustSecret(t, kmsClient(t, e, role), emulator.DemoSecretJSON)
	cm, err := role.GetCredential()
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		got, want int
		what      string
	}{
		{e.Calls("kms"), 5, "kms"},
		{e.Calls("oos"), 2, "oos"},
		{e.Calls("sts"), 1, "sts"},
		{e.Calls(""), 8, "all"},
		{e.CallsFor("kms", emulator.DemoSecretJSON), 4, "kms demo-db"},
		{e.CallsFor("kms", emulator.DemoSecretBinary), 1, "kms demo-tls-key"},
		{e.CallsFor("oos", emulator.DemoParameter), 2, "oos test"},
		{e.CallsBy("kms", emulator.DemoPrincipal), 4, "kms by demo-user"},
		{e.CallsBy("kms", emulator.DemoRoleARN), 1, "kms by demo-role"},
		{e.CallsWithOutcome("kms", "ok"), 5, "kms ok"},
	} {
		if c.got != c.want {
			t.Errorf("%s calls = %d, want %d", c.what, c.got, c.want)
		}
	}

	b, err := json.Marshal(e.Requests())
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, secret := range []string{
		emulator.DemoAccessKeySecret, "testpassword",
		tea.StringValue(cm.AccessKeySecret), tea.StringValue(cm.SecurityToken),
	} {
		if strings.Contains(log, secret) {
			t.Errorf("request log leaks %q", secret)
		}
	}
	if len(e.Requests()) != 8 {
		t.Errorf("request log has %d records", len(e.Requests()))
	}

	e.ResetCounters()
	if e.Calls("") != 0 || len(e.Counters()) != 0 {
		t.Fatal("ResetCounters left counts behind")
	}
}

func TestRequestLogIsARing(t *testing.T) {
	e := start(t, nil, emulator.Options{RequestLogSize: 3})
	kc := kmsClient(t, e, demoCred(t))
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		_, _ = getSecret(kc, name)
	}
	var got []string
	for _, r := range e.Requests() {
		got = append(got, r.Resource)
	}
	if strings.Join(got, ",") != "c,d,e" {
		t.Fatalf("ring = %v", got)
	}
}

func control(t *testing.T, e *emulator.Emulator, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, raw)
	}
	return resp.StatusCode, out
}

func TestControlAPI(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	kc := kmsClient(t, e, demoCred(t))
	oc := oosClient(t, e, demoCred(t))

	code, out := control(t, e, "POST", "/_emulator/kms/secrets", `{"name":"demo-db","value":"rotated"}`)
	if code != 200 || out["versionId"] != "v2" {
		t.Fatalf("put secret: %d %v", code, out)
	}
	if got := tea.StringValue(mustSecret(t, kc, emulator.DemoSecretJSON).SecretData); got != "rotated" {
		t.Fatalf("after control put: %q", got)
	}
	code, out = control(t, e, "POST", "/_emulator/kms/secrets", `{"name":"bin","base64":"AAEC"}`)
	if code != 200 || tea.StringValue(mustSecret(t, kc, "bin").SecretDataType) != "binary" {
		t.Fatalf("put binary secret: %d %v", code, out)
	}
	code, out = control(t, e, "POST", "/_emulator/oos/parameters", `{"name":"test","value":"v2"}`)
	if code != 200 || out["version"] != float64(2) {
		t.Fatalf("put parameter: %d %v", code, out)
	}
	if p, err := getParam(oc, emulator.DemoParameter); err != nil || tea.StringValue(p.Value) != "v2" {
		t.Fatalf("after control put: %v %v", p, err)
	}

	code, out = control(t, e, "POST", "/_emulator/faults", `{"route":"kms","kind":"throttle","count":1,"timeLeftMs":250}`)
	if code != 200 || out["id"] == "" {
		t.Fatalf("add fault: %d %v", code, out)
	}
	_, err := getSecret(kc, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "Throttling.User", 429)
	code, out = control(t, e, "POST", "/_emulator/faults", `{"route":"oos","kind":"latency","latency":"5ms"}`)
	if code != 200 {
		t.Fatalf("add latency fault: %d %v", code, out)
	}
	_, out = control(t, e, "GET", "/_emulator/faults", "")
	if fs := out["faults"].([]any); len(fs) != 1 || fs[0].(map[string]any)["latency"] != "5ms" {
		t.Fatalf("faults = %v", out)
	}
	if code, out = control(t, e, "POST", "/_emulator/faults", `{"route":"kms","kind":"throttle","bogus":1}`); code != 400 || !strings.Contains(out["error"].(string), "bogus") {
		t.Fatalf("unknown field: %d %v", code, out)
	}
	if code, _ = control(t, e, "DELETE", "/_emulator/faults", ""); code != 200 || len(e.Faults()) != 0 {
		t.Fatalf("clear faults: %d", code)
	}

	if code, _ = control(t, e, "POST", "/_emulator/down", ""); code != 200 || !e.Down() {
		t.Fatal("down")
	}
	if _, err := getSecret(kc, emulator.DemoSecretJSON); err == nil {
		t.Fatal("API served while down")
	}
	if code, _ = control(t, e, "POST", "/_emulator/up", ""); code != 200 || e.Down() {
		t.Fatal("up")
	}
	mustSecret(t, kc, emulator.DemoSecretJSON)

	_, out = control(t, e, "GET", "/_emulator/counters", "")
	if out["byRoute"].(map[string]any)["kms"] != float64(e.Calls("kms")) || out["total"] != float64(e.Calls("")) {
		t.Fatalf("counters = %v", out)
	}
	_, out = control(t, e, "GET", "/_emulator/requests?limit=2&route=kms", "")
	if reqs := out["requests"].([]any); len(reqs) != 2 {
		t.Fatalf("requests = %v", out)
	}
	_, out = control(t, e, "GET", "/_emulator/state", "")
	if !strings.Contains(mustJSON(t, out), `"demo-db"`) || strings.Contains(mustJSON(t, out), "rotated") {
		t.Fatalf("state = %v", out)
	}
	if code, out = control(t, e, "POST", "/_emulator/sts/expire", ""); code != 200 {
		t.Fatalf("expire: %d %v", code, out)
	}
	if code, _ = control(t, e, "POST", "/_emulator/reset?state=true", ""); code != 200 || e.Calls("") != 0 {
		t.Fatal("reset")
	}
	if got := tea.StringValue(mustSecret(t, kc, emulator.DemoSecretJSON).SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("after reset?state=true: %q", got)
	}
	if code, out = control(t, e, "GET", "/_emulator/", ""); code != 200 || len(out["routes"].([]any)) == 0 {
		t.Fatalf("index: %d %v", code, out)
	}
	if code, _ = control(t, e, "GET", "/_emulator/nope", ""); code != 404 {
		t.Fatalf("unknown control route = %d", code)
	}
	if len(e.ExampleCommands()) == 0 || !strings.Contains(e.ExampleCommands()[0], e.URL()) {
		t.Fatalf("ExampleCommands = %v", e.ExampleCommands())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnknownActionAndForwardProxy(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	// An absolute-form request for another loopback server is forwarded.
	other := start(t, nil, emulator.Options{})
	proxyURL, _ := url.Parse(e.ProxyURL())
	proxied := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	other.SetHardenedIMDS(false)
	resp, err := proxied.Get(other.URL() + "/latest/meta-data/region-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || other.Calls("imds") != 1 || e.Calls("imds") != 0 {
		t.Fatalf("forwarded: status %d, other imds %d, proxy imds %d", resp.StatusCode, other.Calls("imds"), e.Calls("imds"))
	}

	// A POST without the SDK's headers is an unknown API.
	resp, err = http.Post(e.URL()+"/?Action=Nope&Version=2099-01-01", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var eb map[string]any
	if resp.StatusCode != 404 || json.Unmarshal(body, &eb) != nil || eb["Code"] != "InvalidApi.NotFound" || eb["RequestId"] == "" || resp.Header.Get("Content-Type") != "application/json;charset=utf-8" {
		t.Fatalf("unknown api: %d %s %v", resp.StatusCode, body, resp.Header)
	}
}
