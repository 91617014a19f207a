package emulator_test

import (
	"bytes"
	"encoding/base64"
	"slices"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func TestKMSTextSecret(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	c := kmsClient(t, e, demoCred(t))
	b := mustSecret(t, c, emulator.DemoSecretJSON)
	if got := tea.StringValue(b.SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("SecretData = %q", got)
	}
	if tea.StringValue(b.SecretDataType) != "text" || tea.StringValue(b.SecretType) != "Generic" || tea.StringValue(b.VersionId) != "v1" {
		t.Fatalf("unexpected body %v", b)
	}
	if !slices.Equal(stages(b), []string{"ACSCurrent"}) {
		t.Fatalf("VersionStages = %v", stages(b))
	}
	if tea.StringValue(b.RequestId) == "" || tea.StringValue(b.CreateTime) == "" {
		t.Fatalf("RequestId/CreateTime missing: %v", b)
	}
	// The ARN form of the name works too.
	arn := "acs:kms:cn-hangzhou:" + emulator.DemoAccountID + ":secret/" + emulator.DemoSecretJSON
	if got := tea.StringValue(mustSecret(t, c, arn).SecretName); got != emulator.DemoSecretJSON {
		t.Fatalf("by ARN: SecretName = %q", got)
	}
}

func TestKMSBinarySecret(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	b := mustSecret(t, kmsClient(t, e, demoCred(t)), emulator.DemoSecretBinary)
	if tea.StringValue(b.SecretDataType) != "binary" {
		t.Fatalf("SecretDataType = %q", tea.StringValue(b.SecretDataType))
	}
	raw, err := base64.StdEncoding.DecodeString(tea.StringValue(b.SecretData))
	if err != nil {
		t.Fatalf("SecretData is not base64: %v", err)
	}
	if !bytes.Equal(raw, emulator.DemoSecretBinaryValue) {
		t.Fatalf("binary data = %x", raw)
	}
}

func TestKMSVersionSelection(t *testing.T) {
	seed, err := emulator.ParseSeed([]byte(`
accessKeys: [{id: AK1, secret: S1}]
secrets:
  - name: rotated
    versions:
      - {id: v1, data: one}
      - {id: v2, data: two, stages: [ACSPrevious]}
      - {id: v3, data: three, stages: [ACSCurrent, custom]}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, seed, emulator.Options{})
	c := kmsClient(t, e, akCred(t, "AK1", "S1"))
	byID := func(id string) func(*kms.GetSecretValueRequest) {
		return func(r *kms.GetSecretValueRequest) { r.VersionId = tea.String(id) }
	}
	byStage := func(s string) func(*kms.GetSecretValueRequest) {
		return func(r *kms.GetSecretValueRequest) { r.VersionStage = tea.String(s) }
	}
	for _, tc := range []struct {
		name string
		mods []func(*kms.GetSecretValueRequest)
		want string
	}{
		{"default is ACSCurrent", nil, "three"},
		{"unlabelled version by id", []func(*kms.GetSecretValueRequest){byID("v1")}, "one"},
		{"ACSPrevious", []func(*kms.GetSecretValueRequest){byStage("ACSPrevious")}, "two"},
		{"custom stage", []func(*kms.GetSecretValueRequest){byStage("custom")}, "three"},
		{"id and matching stage", []func(*kms.GetSecretValueRequest){byID("v2"), byStage("ACSPrevious")}, "two"},
	} {
		b, err := getSecret(c, "rotated", tc.mods...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := tea.StringValue(b.SecretData); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	_, err = getSecret(c, "rotated", byID("v1"), byStage("ACSCurrent"))
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = getSecret(c, "rotated", byID("v9"))
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	_, err = getSecret(c, "rotated", byStage("nope"))
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	_, err = getSecret(c, "rotated", func(r *kms.GetSecretValueRequest) { r.DryRun = tea.String("true") })
	_ = wantSDKError(t, err, "DryRunOperation", 400)
	_, err = getSecret(c, "missing")
	se := wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	if !bytes.Contains([]byte(tea.StringValue(se.Message)), []byte("request id: ")) {
		t.Errorf("SDK message lacks the request id: %q", tea.StringValue(se.Message))
	}
}

func TestKMSStagesMoveOnPut(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	c := kmsClient(t, e, demoCred(t))
	v2, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte("second"), false)
	if err != nil {
		t.Fatal(err)
	}
	b := mustSecret(t, c, emulator.DemoSecretJSON)
	if tea.StringValue(b.SecretData) != "second" || tea.StringValue(b.VersionId) != v2 || !slices.Equal(stages(b), []string{"ACSCurrent"}) {
		t.Fatalf("after first put: %v", b)
	}
	prev := mustSecret(t, c, emulator.DemoSecretJSON, func(r *kms.GetSecretValueRequest) { r.VersionStage = tea.String("ACSPrevious") })
	if tea.StringValue(prev.VersionId) != "v1" || tea.StringValue(prev.SecretData) != emulator.DemoSecretJSONValue {
		t.Fatalf("ACSPrevious after first put: %v", prev)
	}

	v3, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte{0, 1, 2}, true)
	if err != nil {
		t.Fatal(err)
	}
	if v3 == v2 || v2 == "v1" {
		t.Fatalf("version ids not fresh: %s %s", v2, v3)
	}
	b = mustSecret(t, c, emulator.DemoSecretJSON)
	if tea.StringValue(b.VersionId) != v3 || tea.StringValue(b.SecretDataType) != "binary" || tea.StringValue(b.SecretData) != "AAEC" {
		t.Fatalf("after second put: %v", b)
	}
	prev = mustSecret(t, c, emulator.DemoSecretJSON, func(r *kms.GetSecretValueRequest) { r.VersionStage = tea.String("ACSPrevious") })
	if tea.StringValue(prev.VersionId) != v2 {
		t.Fatalf("ACSPrevious should have moved to %s: %v", v2, prev)
	}
	// v1 lost its label but stays readable by id.
	old := mustSecret(t, c, emulator.DemoSecretJSON, func(r *kms.GetSecretValueRequest) { r.VersionId = tea.String("v1") })
	if len(stages(old)) != 0 || tea.StringValue(old.SecretData) != emulator.DemoSecretJSONValue {
		t.Fatalf("v1 after two puts: %v", old)
	}

	// Putting a secret that does not exist creates it.
	if _, err := e.PutSecretValue("brand-new", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if got := tea.StringValue(mustSecret(t, c, "brand-new").SecretData); got != "x" {
		t.Fatalf("new secret = %q", got)
	}
}

func TestOOSParameter(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	c := oosClient(t, e, demoCred(t))
	p, err := getParam(c, emulator.DemoParameter)
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(p.Value) != emulator.DemoParameterValue || tea.Int32Value(p.ParameterVersion) != 1 || tea.StringValue(p.Type) != "Secret" {
		t.Fatalf("parameter = %v", p)
	}
	if p.Tags == nil {
		t.Fatalf("Tags should be an (empty) object")
	}

	v, err := e.PutParameter(emulator.DemoParameter, "second")
	if err != nil || v != 2 {
		t.Fatalf("PutParameter = %d, %v", v, err)
	}
	p, err = getParam(c, emulator.DemoParameter)
	if err != nil || tea.StringValue(p.Value) != "second" || tea.Int32Value(p.ParameterVersion) != 2 {
		t.Fatalf("latest after put = %v, %v", p, err)
	}
	p, err = getParam(c, emulator.DemoParameter, func(r *oos.GetSecretParameterRequest) { r.ParameterVersion = tea.Int32(1) })
	if err != nil || tea.StringValue(p.Value) != emulator.DemoParameterValue || tea.Int32Value(p.ParameterVersion) != 1 {
		t.Fatalf("version 1 = %v, %v", p, err)
	}
	p, err = getParam(c, emulator.DemoParameter, func(r *oos.GetSecretParameterRequest) { r.WithDecryption = tea.Bool(false) })
	if err != nil || p.Value != nil || tea.Int32Value(p.ParameterVersion) != 2 {
		t.Fatalf("WithDecryption=false must omit Value: %v, %v", p, err)
	}
	p, err = getParam(c, emulator.DemoParameter, func(r *oos.GetSecretParameterRequest) { r.WithDecryption = nil })
	if err != nil || p.Value != nil {
		t.Fatalf("WithDecryption unset must omit Value: %v, %v", p, err)
	}

	_, err = getParam(c, emulator.DemoParameter, func(r *oos.GetSecretParameterRequest) { r.ParameterVersion = tea.Int32(3) })
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
	_, err = getParam(c, "nope")
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
}

func TestOOSTagsAndVersionsFromSeed(t *testing.T) {
	seed, err := emulator.ParseSeed([]byte(`
accessKeys: [{id: AK1, secret: S1}]
parameters:
  - name: multi
    versions: [one, two, three]
    description: several
    tags: {env: dev}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, seed, emulator.Options{})
	c := oosClient(t, e, akCred(t, "AK1", "S1"))
	p, err := getParam(c, "multi")
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(p.Value) != "three" || tea.Int32Value(p.ParameterVersion) != 3 || p.Tags["env"] != "dev" || tea.StringValue(p.Description) != "several" {
		t.Fatalf("parameter = %v", p)
	}
}

func TestHTTPSAPIWithConfigCa(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	c := kmsClient(t, e, demoCred(t), func(cfg *openapi.Config) {
		cfg.Endpoint = tea.String(e.TLSEndpoint())
		cfg.Protocol = tea.String("HTTPS")
		cfg.Ca = tea.String(string(e.CAPEM()))
	})
	if got := tea.StringValue(mustSecret(t, c, emulator.DemoSecretJSON).SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("over HTTPS: %q", got)
	}
}

func TestAPIThroughProxy(t *testing.T) {
	// dara sends absolute-form requests to a proxy even for loopback;
	// the emulator serves its own address and the signature still verifies.
	e := start(t, nil, emulator.Options{})
	c := kmsClient(t, e, demoCred(t), func(cfg *openapi.Config) { cfg.HttpProxy = tea.String(e.ProxyURL()) })
	if got := tea.StringValue(mustSecret(t, c, emulator.DemoSecretJSON).SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("through proxy: %q", got)
	}
	recs := e.Requests()
	if len(recs) != 1 || !recs[0].SignatureValid || recs[0].Host != e.Endpoint() {
		t.Fatalf("records = %+v", recs)
	}
}

func TestLegacyV1SignedRPC(t *testing.T) {
	// SignatureAlgorithm "v2" makes the SDK use DoRPCRequest: Action and
	// Version in the query and a v1 HMAC-SHA1 Signature parameter.
	e := start(t, nil, emulator.Options{})
	v2 := func(c *openapi.Config) { c.SignatureAlgorithm = tea.String("v2") }
	if got := tea.StringValue(mustSecret(t, kmsClient(t, e, demoCred(t), v2), emulator.DemoSecretJSON).SecretData); got != emulator.DemoSecretJSONValue {
		t.Fatalf("v1-signed KMS: %q", got)
	}
	if p, err := getParam(oosClient(t, e, demoCred(t), v2), emulator.DemoParameter); err != nil || tea.StringValue(p.Value) != emulator.DemoParameterValue {
		t.Fatalf("v1-signed OOS: %v %v", p, err)
	}
	_, err := getSecret(kmsClient(t, e, akCred(t, emulator.DemoAccessKeyID, "bad"), v2), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "SignatureDoesNotMatch", 400)
	for _, r := range e.Requests() {
		if r.Auth != "v1" {
			t.Fatalf("record auth = %q", r.Auth)
		}
	}
}
