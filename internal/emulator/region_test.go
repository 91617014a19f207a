package emulator_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

const (
	shanghai  = "cn-shanghai"
	singapore = "ap-southeast-1"
)

// inRegion points a client at one region's HTTP port.
func inRegion(e *emulator.Emulator, region string) func(*openapi.Config) {
	return func(c *openapi.Config) {
		c.Endpoint = tea.String(e.RegionEndpoint(region))
		c.RegionId = tea.String(region)
	}
}

// regionSeed is DemoSeed with cn-shanghai holding objects of the same
// names and other values.
func regionSeed() *emulator.Seed {
	seed := emulator.DemoSeed()
	seed.Regions = map[string]emulator.RegionSeed{
		shanghai: {
			Secrets:         []emulator.Secret{{Name: emulator.DemoSecretJSON, Value: "VAL-sh-db", Tags: map[string]string{"site": "sh"}}},
			Parameters:      []emulator.Parameter{{Name: emulator.DemoParameter, Value: "VAL-sh-param"}},
			PlainParameters: []emulator.Parameter{{Name: "endpoint", Value: "sh.internal"}},
		},
	}
	return seed
}

func getPlain(c *oos.Client, name string) (string, error) {
	resp, err := c.GetParameter(&oos.GetParameterRequest{Name: tea.String(name)})
	if err != nil {
		return "", err
	}
	return tea.StringValue(resp.Body.Parameter.Value), nil
}

func TestRegionsHaveTheirOwnObjects(t *testing.T) {
	e := start(t, regionSeed(), emulator.Options{})
	if e.RegionURL(singapore) != "" {
		t.Fatal("an unknown region has no URL")
	}
	if err := e.AddRegion(singapore); err != nil { // after Start: served at once
		t.Fatal(err)
	}
	if got := e.Regions(); !slices.Equal(got, []string{emulator.DemoRegion, singapore, shanghai}) {
		t.Fatalf("Regions = %v", got)
	}
	if e.RegionURL(shanghai) == "" || e.RegionURL(shanghai) == e.URL() || e.RegionURL(emulator.DemoRegion) != e.URL() ||
		e.RegionTLSEndpoint(singapore) == "" || e.RegionTLSEndpoint(emulator.DemoRegion) != e.TLSEndpoint() {
		t.Fatalf("region addresses: %s %s %s", e.RegionURL(shanghai), e.RegionURL(emulator.DemoRegion), e.RegionTLSEndpoint(singapore))
	}
	if err := e.AddRegion(shanghai); err != nil {
		t.Fatalf("adding a served region again: %v", err)
	}
	if err := e.AddRegion(emulator.DemoRegion); err == nil {
		t.Fatal("adding the primary region should fail")
	}
	if err := e.AddRegion("Not A Region"); err == nil {
		t.Fatal("a malformed region should be refused")
	}

	cred := demoCred(t)
	hz, sh, sg := kmsClient(t, e, cred), kmsClient(t, e, cred, inRegion(e, shanghai)), kmsClient(t, e, cred, inRegion(e, singapore))
	if got := tea.StringValue(mustSecret(t, hz, emulator.DemoSecretJSON).SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("primary = %q", got)
	}
	if got := tea.StringValue(mustSecret(t, sh, emulator.DemoSecretJSON).SecretData); got != "VAL-sh-db" {
		t.Fatalf("shanghai = %q", got)
	}
	_, err := getSecret(sg, emulator.DemoSecretJSON)
	se := wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	if !strings.Contains(tea.StringValue(se.Data), "kms."+singapore+".aliyuncs.com") {
		t.Fatalf("HostId should name the serving region: %s", tea.StringValue(se.Data))
	}

	// Puts go to one region only.
	if _, err := e.PutSecretValueIn(singapore, emulator.DemoSecretJSON, []byte("VAL-sg"), false); err != nil {
		t.Fatal(err)
	}
	if got := tea.StringValue(mustSecret(t, sg, emulator.DemoSecretJSON).SecretData); got != "VAL-sg" {
		t.Fatalf("singapore after put = %q", got)
	}
	if got := tea.StringValue(mustSecret(t, hz, emulator.DemoSecretJSON).VersionId); got != "v1" {
		t.Fatalf("the primary secret moved: %s", got)
	}
	if _, err := e.PutSecretValueIn("eu-west-1", "x", []byte("x"), false); err == nil {
		t.Fatal("a put to an unknown region should fail")
	}

	// OOS: encrypted and plain parameters per region.
	ohz, osh := oosClient(t, e, cred), oosClient(t, e, cred, inRegion(e, shanghai))
	if p, err := getParam(osh, emulator.DemoParameter); err != nil || tea.StringValue(p.Value) != "VAL-sh-param" {
		t.Fatalf("shanghai parameter = %v, %v", p, err)
	}
	if v, err := getPlain(osh, "endpoint"); err != nil || v != "sh.internal" {
		t.Fatalf("shanghai plain = %q, %v", v, err)
	}
	_, err = getPlain(ohz, "endpoint")
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
	if _, err := e.PutParameterIn(shanghai, emulator.DemoParameter, "VAL-sh-2"); err != nil {
		t.Fatal(err)
	}
	if p, err := getParam(ohz, emulator.DemoParameter); err != nil || tea.Int32Value(p.ParameterVersion) != 1 {
		t.Fatalf("the primary parameter moved: %v, %v", p, err)
	}
	if _, err := e.PutPlainParameterIn(singapore, "endpoint", "sg.internal"); err != nil {
		t.Fatal(err)
	}
	if v, err := getPlain(oosClient(t, e, cred, inRegion(e, singapore)), "endpoint"); err != nil || v != "sg.internal" {
		t.Fatalf("singapore plain = %q, %v", v, err)
	}

	// The identities are shared: an STS session from the primary works in
	// every region; a refusal names the serving region's ARN.
	role := ramRoleCred(t, e, emulator.DemoRoleARN)
	if got := tea.StringValue(mustSecret(t, kmsClient(t, e, role, inRegion(e, shanghai)), emulator.DemoSecretJSON).SecretData); got != "VAL-sh-db" {
		t.Fatalf("STS session in shanghai = %q", got)
	}
	e.SetPolicy(emulator.DemoPrincipal, emulator.Policy{Deny: map[string][]string{"kms:GetSecretValue": {"*"}}})
	_, err = getSecret(sh, emulator.DemoSecretJSON)
	se = wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if want := "acs:kms:" + shanghai + ":" + emulator.DemoAccountID + ":secret/" + emulator.DemoSecretJSON; se.AccessDeniedDetail["AuthResource"] != want {
		t.Fatalf("AuthResource = %v, want %s", se.AccessDeniedDetail["AuthResource"], want)
	}
	e.ClearPolicy(emulator.DemoPrincipal)

	// Over HTTPS, with the region's own certificate.
	shTLS := kmsClient(t, e, cred, func(c *openapi.Config) {
		c.Endpoint, c.Protocol, c.Ca = tea.String(e.RegionTLSEndpoint(shanghai)), tea.String("HTTPS"), tea.String(string(e.CAPEM()))
	})
	if got := tea.StringValue(mustSecret(t, shTLS, emulator.DemoSecretJSON).SecretData); got != "VAL-sh-db" {
		t.Fatalf("shanghai over HTTPS = %q", got)
	}

	// Deletes are per region; ResetState brings back the seed's objects and
	// empties the regions the seed does not have, which stay served.
	if ok, err := e.DeleteSecretIn(shanghai, emulator.DemoSecretJSON); !ok || err != nil {
		t.Fatalf("DeleteSecretIn = %v, %v", ok, err)
	}
	_, err = getSecret(sh, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	mustSecret(t, hz, emulator.DemoSecretJSON)
	if ok, err := e.DeleteParameterIn(shanghai, emulator.DemoParameter); !ok || err != nil {
		t.Fatalf("DeleteParameterIn = %v, %v", ok, err)
	}
	if _, err := e.DeleteSecretIn("eu-west-1", "x"); err == nil {
		t.Fatal("a delete in an unknown region should fail")
	}
	e.ResetState()
	if got := tea.StringValue(mustSecret(t, sh, emulator.DemoSecretJSON).SecretData); got != "VAL-sh-db" {
		t.Fatalf("shanghai after ResetState = %q", got)
	}
	_, err = getSecret(sg, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
}

func TestRegionAddedBeforeStart(t *testing.T) {
	e, err := emulator.New(emulator.DemoSeed(), emulator.Options{CA: testCA})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddRegion(shanghai); err != nil {
		t.Fatal(err)
	}
	if e.RegionURL(shanghai) != "" {
		t.Fatal("no URL before Start")
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	_, err = getSecret(kmsClient(t, e, demoCred(t), inRegion(e, shanghai)), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	if e.CallsIn(shanghai, "kms") != 1 {
		t.Fatalf("shanghai kms calls = %d", e.CallsIn(shanghai, "kms"))
	}

	// A region port serves KMS and OOS only: STS stays on the primary.
	cred, err := credentials.NewCredential(&credentials.Config{
		Type:            tea.String("ram_role_arn"),
		AccessKeyId:     tea.String(emulator.DemoAccessKeyID),
		AccessKeySecret: tea.String(emulator.DemoAccessKeySecret),
		RoleArn:         tea.String(emulator.DemoRoleARN),
		RoleSessionName: tea.String("emulator-test"),
		STSEndpoint:     tea.String(e.RegionTLSEndpoint(shanghai)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred.GetCredential(); err == nil || !strings.Contains(err.Error(), "InvalidApi.NotFound") {
		t.Fatalf("STS on a region port: %v", err)
	}

	if _, err := emulator.New(&emulator.Seed{Regions: map[string]emulator.RegionSeed{emulator.DemoRegion: {}}}, emulator.Options{}); err == nil {
		t.Fatal("a seed region equal to the primary should be refused")
	}
	e.Close()
	if err := e.AddRegion(singapore); err == nil {
		t.Fatal("AddRegion after Close should fail")
	}
}

func TestRegionFaultsAndDownState(t *testing.T) {
	e := start(t, regionSeed(), emulator.Options{})
	cred := demoCred(t)
	hz, sh := kmsClient(t, e, cred), kmsClient(t, e, cred, inRegion(e, shanghai))
	ohz, osh := oosClient(t, e, cred), oosClient(t, e, cred, inRegion(e, shanghai))

	// KMS and OOS fail in the primary region only.
	setFault(t, e, emulator.Fault{Region: e.Region(), Route: "kms", Kind: emulator.FaultError, Status: 503})
	setFault(t, e, emulator.Fault{Region: e.Region(), Route: "oos", Kind: emulator.FaultError, Status: 503})
	_, err := getSecret(hz, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "ServiceUnavailableTemporary", 503)
	_, err = getParam(ohz, emulator.DemoParameter)
	_ = wantSDKError(t, err, "ServiceUnavailableTemporary", 503)
	mustSecret(t, sh, emulator.DemoSecretJSON)
	if _, err := getParam(osh, emulator.DemoParameter); err != nil {
		t.Fatal(err)
	}
	// STS (served by the primary) is not KMS or OOS: the faults above spare it.
	mustSecret(t, kmsClient(t, e, ramRoleCred(t, e, emulator.DemoRoleARN), inRegion(e, shanghai)), emulator.DemoSecretJSON)
	e.ClearFaults()

	// Through the control API, ?region= scopes a fault.
	if code, out := control(t, e, "POST", "/_emulator/faults?region="+shanghai, `{"route":"oos","kind":"throttle","count":1}`); code != 200 {
		t.Fatalf("fault = %d %v", code, out)
	}
	if f := e.Faults(); len(f) != 1 || f[0].Region != shanghai {
		t.Fatalf("faults = %+v", f)
	}
	if _, err := getParam(ohz, emulator.DemoParameter); err != nil {
		t.Fatal(err)
	}
	_, err = getParam(osh, emulator.DemoParameter)
	_ = wantSDKError(t, err, "Throttling.User", 429)
	if code, _ := control(t, e, "POST", "/_emulator/faults?region="+shanghai, `{"region":"`+singapore+`","kind":"reset"}`); code != 400 {
		t.Fatalf("conflicting regions accepted: %d", code)
	}
	if _, err := e.AddFault(emulator.Fault{Region: "Bad Region", Kind: emulator.FaultReset}); err == nil {
		t.Fatal("a malformed fault region should be refused")
	}

	// Down, per region.
	e.SetRegionDown(shanghai, true)
	if !e.RegionDown(shanghai) || e.Down() || e.RegionDown(e.Region()) {
		t.Fatal("down states mixed up")
	}
	_, err = getSecret(sh, emulator.DemoSecretJSON)
	_ = wantURLError(t, err)
	mustSecret(t, hz, emulator.DemoSecretJSON)
	e.SetRegionDown(shanghai, false)
	mustSecret(t, sh, emulator.DemoSecretJSON)
	e.SetDown(true)
	mustSecret(t, sh, emulator.DemoSecretJSON)
	_, err = getSecret(hz, emulator.DemoSecretJSON)
	_ = wantURLError(t, err)
	e.SetDown(false)

	if code, out := control(t, e, "POST", "/_emulator/down?region="+shanghai, ""); code != 200 || out["region"] != shanghai {
		t.Fatalf("down = %d %v", code, out)
	}
	_, err = getSecret(sh, emulator.DemoSecretJSON)
	_ = wantURLError(t, err)
	_, hz2 := control(t, e, "GET", "/_emulator/healthz", "")
	if hz2["down"] != false || hz2["regionsDown"].(map[string]any)[shanghai] != true {
		t.Fatalf("healthz = %v", hz2)
	}
	if code, _ := control(t, e, "POST", "/_emulator/up?region="+shanghai, ""); code != 200 {
		t.Fatal("up failed")
	}
	mustSecret(t, sh, emulator.DemoSecretJSON)
	if code, _ := control(t, e, "POST", "/_emulator/down?region=eu-west-1", ""); code != 404 {
		t.Fatalf("down in an unknown region = %d", code)
	}
	e.SetRegionDown(shanghai, true)
	e.Reset()
	if e.RegionDown(shanghai) {
		t.Fatal("Reset should bring every region up")
	}
}

func TestRegionCounters(t *testing.T) {
	e := start(t, regionSeed(), emulator.Options{})
	cred := demoCred(t)
	hz, sh := kmsClient(t, e, cred), kmsClient(t, e, cred, inRegion(e, shanghai))
	for i := 0; i < 3; i++ {
		mustSecret(t, sh, emulator.DemoSecretJSON)
	}
	mustSecret(t, hz, emulator.DemoSecretJSON)
	if _, err := getParam(oosClient(t, e, cred, inRegion(e, shanghai)), emulator.DemoParameter); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got, want int
		what      string
	}{
		{e.CallsIn(shanghai, "kms"), 3, "shanghai kms"},
		{e.CallsIn(shanghai, "oos"), 1, "shanghai oos"},
		{e.CallsIn(shanghai, ""), 4, "shanghai all"},
		{e.CallsIn(e.Region(), "kms"), 1, "primary kms"},
		{e.Calls("kms"), 4, "kms, every region"},
		{e.CallsFor("kms", emulator.DemoSecretJSON), 4, "demo-db, every region"},
		{e.CallsBy("kms", emulator.DemoPrincipal), 4, "by demo-user, every region"},
		{e.CallsAction("kms", "GetSecretValue"), 4, "GetSecretValue"},
		{e.CallsAction("oos", "GetSecretParameter"), 1, "GetSecretParameter"},
		{e.CallsAction("kms", "ListSecrets"), 0, "ListSecrets"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
	regions := map[string]int{}
	for _, row := range e.Counters() {
		regions[row.Region] += row.Count
	}
	if regions[shanghai] != 4 || regions[e.Region()] != 1 {
		t.Fatalf("counter rows by region = %v", regions)
	}
	if recs := e.Requests(); len(recs) != 5 || recs[0].Region != shanghai {
		t.Fatalf("records = %+v", recs)
	}
	_, out := control(t, e, "GET", "/_emulator/counters", "")
	raw, _ := json.Marshal(out)
	if !strings.Contains(string(raw), `"region":"`+shanghai+`"`) || strings.Contains(string(raw), "VAL-sh") {
		t.Fatalf("control counters = %s", raw)
	}
}

func TestRegionControlAPI(t *testing.T) {
	e := start(t, regionSeed(), emulator.Options{})
	cred := demoCred(t)
	sh, osh := kmsClient(t, e, cred, inRegion(e, shanghai)), oosClient(t, e, cred, inRegion(e, shanghai))

	code, out := control(t, e, "POST", "/_emulator/kms/secrets?region="+shanghai, `{"name":"new","value":"VAL-new","tags":{"a":"b"}}`)
	if code != 200 || out["region"] != shanghai || out["versionId"] != "v1" {
		t.Fatalf("put secret = %d %v", code, out)
	}
	if got := tea.StringValue(mustSecret(t, sh, "new").SecretData); got != "VAL-new" {
		t.Fatalf("new = %q", got)
	}
	_, err := getSecret(kmsClient(t, e, cred), "new")
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	if code, out = control(t, e, "POST", "/_emulator/oos/parameters?region="+shanghai, `{"name":"p","value":"VAL-p"}`); code != 200 || out["version"] != float64(1) {
		t.Fatalf("put parameter = %d %v", code, out)
	}
	if code, out = control(t, e, "POST", "/_emulator/oos/plain-parameters?region="+shanghai, `{"name":"hosts","value":"a,b","type":"StringList"}`); code != 200 {
		t.Fatalf("put plain = %d %v", code, out)
	}
	resp, err := osh.GetParameter(&oos.GetParameterRequest{Name: tea.String("hosts")})
	if err != nil || tea.StringValue(resp.Body.Parameter.Type) != "StringList" || tea.StringValue(resp.Body.Parameter.Value) != "a,b" {
		t.Fatalf("plain from control = %v, %v", resp, err)
	}
	if code, _ = control(t, e, "POST", "/_emulator/oos/plain-parameters?region="+shanghai, `{"name":"hosts","value":"c","type":"String"}`); code != 400 {
		t.Fatalf("changing a parameter's type = %d", code)
	}
	if code, _ = control(t, e, "POST", "/_emulator/oos/plain-parameters", `{"name":"x","value":"c","type":"Number"}`); code != 400 {
		t.Fatalf("a bad type = %d", code)
	}
	if code, _ = control(t, e, "POST", "/_emulator/kms/secrets?region=eu-west-1", `{"name":"x","value":"y"}`); code != 404 {
		t.Fatalf("unknown region = %d", code)
	}

	_, st := control(t, e, "GET", "/_emulator/state", "")
	regions := st["regions"].(map[string]any)
	shState := regions[shanghai].(map[string]any)
	if _, ok := shState["secrets"].(map[string]any)["new"]; !ok || shState["plainParameters"].(map[string]any)["hosts"] == nil {
		t.Fatalf("state = %v", shState)
	}
	raw, _ := json.Marshal(st)
	if strings.Contains(string(raw), "VAL-") {
		t.Fatalf("state leaks a value: %s", raw)
	}
	_, rl := control(t, e, "GET", "/_emulator/regions", "")
	if list := rl["regions"].([]any); len(list) != 2 || list[1].(map[string]any)["url"] != e.RegionURL(shanghai) {
		t.Fatalf("regions = %v", rl)
	}

	// Deleting through the control API.
	for _, path := range []string{"kms/secrets?name=new", "oos/parameters?name=p", "oos/plain-parameters?name=hosts"} {
		if code, out := control(t, e, "DELETE", "/_emulator/"+path+"&region="+shanghai, ""); code != 200 || out["deleted"] != true {
			t.Fatalf("DELETE %s = %d %v", path, code, out)
		}
		if code, _ := control(t, e, "DELETE", "/_emulator/"+path+"&region="+shanghai, ""); code != 404 {
			t.Fatalf("second DELETE %s = %d", path, code)
		}
	}
	if code, _ := control(t, e, "DELETE", "/_emulator/kms/secrets", ""); code != 400 {
		t.Fatal("DELETE without a name should be refused")
	}
	_, err = getSecret(sh, "new")
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	_, err = getParam(osh, "p")
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
	// The primary's objects are untouched.
	if code, _ := control(t, e, "DELETE", "/_emulator/kms/secrets?name="+emulator.DemoSecretJSON, ""); code != 200 {
		t.Fatal("DELETE in the primary failed")
	}
	mustSecret(t, sh, emulator.DemoSecretJSON)
}

// TestRegionThroughConnectProxy reaches kms.cn-shanghai.aliyuncs.com
// through the emulator as an HTTPS proxy: the tunnel goes to the region's
// TLS port, whose certificate covers *.cn-shanghai.aliyuncs.com.
func TestRegionThroughConnectProxy(t *testing.T) {
	e := start(t, regionSeed(), emulator.Options{})
	via := func(host string) func(*openapi.Config) {
		return func(c *openapi.Config) {
			c.Endpoint, c.Protocol = tea.String(host), tea.String("HTTPS")
			c.HttpsProxy, c.Ca = tea.String(e.ProxyURL()), tea.String(string(e.CAPEM()))
		}
	}
	if got := tea.StringValue(mustSecret(t, kmsClient(t, e, demoCred(t), via("kms."+shanghai+".aliyuncs.com")), emulator.DemoSecretJSON).SecretData); got != "VAL-sh-db" {
		t.Fatalf("kms.cn-shanghai through the proxy = %q", got)
	}
	if got := tea.StringValue(mustSecret(t, kmsClient(t, e, demoCred(t), via("kms."+emulator.DemoRegion+".aliyuncs.com")), emulator.DemoSecretJSON).SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("kms.cn-hangzhou through the proxy = %q", got)
	}
	if e.CallsIn(shanghai, "kms") != 1 || e.CallsIn(emulator.DemoRegion, "kms") != 1 {
		t.Fatalf("calls: shanghai %d, primary %d", e.CallsIn(shanghai, "kms"), e.CallsIn(emulator.DemoRegion, "kms"))
	}
}
