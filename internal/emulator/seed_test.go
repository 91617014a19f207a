package emulator_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// exampleSeed is the format documented on emulator.Seed.
const exampleSeed = `
accountId: "1234567890123456"
region: cn-beijing
accessKeys:
  - id: LTAIexampleAccessKey0000
    secret: exampleSecret
    principal: app-user
secrets:
  - name: db-creds
    value: '{"username":"u","password":"p"}'
  - name: tls-key
    dataType: binary
    value: AAECAw==
  - name: rotated
    versions:
      - {id: v1, data: old, stages: [ACSPrevious]}
      - {id: v2, data: new, stages: [ACSCurrent]}
parameters:
  - name: test
    value: '{"username":"testuser"}'
  - name: multi
    versions: [one, two, three]
    tags: {env: dev}
roles:
  - arn: acs:ram::1234567890123456:role/app-role
    trustedPrincipals: [app-user]
    maxSessionDuration: 2h
policies:
  app-user:
    allow: {"kms:GetSecretValue": ["db-*", "tls-key", "rotated"], "oos:GetSecretParameter": ["*"]}
    deny:  {"kms:GetSecretValue": ["tls-key"]}
imds:
  roleName: ecs-role
  region: cn-beijing
  hardened: false
sts:
  sessionTTL: 30m
`

func TestExampleSeedWorksWithTheSDK(t *testing.T) {
	seed, err := emulator.ParseSeed([]byte(exampleSeed))
	if err != nil {
		t.Fatal(err)
	}
	if seed.STS.SessionTTL.Duration != 30*time.Minute || seed.Roles[0].MaxSessionDuration.Duration != 2*time.Hour {
		t.Fatalf("durations: %+v %+v", seed.STS, seed.Roles[0])
	}
	e := start(t, seed, emulator.Options{})
	if e.Region() != "cn-beijing" {
		t.Fatalf("region = %s", e.Region())
	}
	cred := akCred(t, "LTAIexampleAccessKey0000", "exampleSecret")
	kc := kmsClient(t, e, cred)
	if got := tea.StringValue(mustSecret(t, kc, "db-creds").SecretData); got != `{"username":"u","password":"p"}` {
		t.Fatalf("db-creds = %q", got)
	}
	_, err = getSecret(kc, "tls-key")
	_ = wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if got := tea.StringValue(mustSecret(t, kc, "rotated").SecretData); got != "new" {
		t.Fatalf("rotated = %q", got)
	}
	if code, body := imdsDo(t, e, "GET", "/latest/meta-data/region-id", nil); code != 200 || body != "cn-beijing" {
		t.Fatalf("imds region (hardened off) = %d %q", code, body)
	}
	p, err := getParam(oosClient(t, e, cred), "multi")
	if err != nil || tea.StringValue(p.Value) != "three" {
		t.Fatalf("multi = %v %v", p, err)
	}
}

func TestParseSeedRejectsUnknownFields(t *testing.T) {
	for _, tc := range []struct{ yaml, field string }{
		{"bogus: 1", "bogus: unknown field"},
		{"secrets: [{name: a, valeu: x}]", "secrets[0].valeu: unknown field"},
		{"secrets: [{name: a, versions: [{id: v1, data: x, stage: [ACSCurrent]}]}]", "secrets[0].versions[0].stage: unknown field"},
		{"roles: [{arn: 'acs:ram::1:role/r', trustedPrincipal: [x]}]", "roles[0].trustedPrincipal: unknown field"},
		{"policies: {u: {alow: {}}}", `policies["u"].alow: unknown field`},
		{"imds: {role: x}", "imds.role: unknown field"},
	} {
		_, err := emulator.ParseSeed([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: got %v, want an error naming %s", tc.yaml, err, tc.field)
		}
	}
}

func TestParseSeedValidates(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"accessKeys: [{id: a}]", "accessKeys[0].secret"},
		{"accessKeys: [{id: a, secret: b}, {id: a, secret: c}]", "duplicate access key"},
		{"secrets: [{name: a}]", "secrets[0]: give value or versions"},
		{"secrets: [{name: a, versions: [{id: v1, data: x}]}]", "ACSCurrent"},
		{"secrets: [{name: a, versions: [{id: v1, data: x, stages: [ACSCurrent]}, {id: v2, data: y, stages: [ACSCurrent]}]}]", "more than one version"},
		{"secrets: [{name: a, dataType: binary, value: '***'}]", "base64"},
		{"secrets: [{name: a, value: x, dataType: blob}]", "dataType"},
		{"secrets: [{name: a, value: x}, {name: a, value: y}]", "duplicate secret"},
		{"parameters: [{name: ALIYUN_x, value: v}]", "must not start"},
		{"parameters: [{name: p}]", "give value or versions"},
		{"roles: [{arn: 'not-an-arn'}]", "roles[0].arn"},
		{"policies: {u: {allow: {GetSecretValue: ['*']}}}", "service:Action"},
		{"sts: {sessionTTL: soon}", "invalid duration"},
	} {
		_, err := emulator.ParseSeed([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestDemoSeed(t *testing.T) {
	s := emulator.DemoSeed()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Secrets[1].Value != base64.StdEncoding.EncodeToString(emulator.DemoSecretBinaryValue) || s.IMDS.Region != "cn-hangzhou" {
		t.Fatalf("demo seed = %+v", s)
	}
	if !strings.HasPrefix(emulator.DemoAccessKeyID, "LTAIdemo") {
		t.Fatal("demo key id")
	}
	// DemoSeed returns a fresh copy each time.
	s.Secrets[0].Value = "changed"
	if emulator.DemoSeed().Secrets[0].Value != emulator.DemoSecretJSONValue {
		t.Fatal("DemoSeed shares state")
	}
}

// TestSeedRegionsAndPlainParameters reads the fields of the Seed example
// that name regions, plain parameters, tags and creation times.
func TestSeedRegionsAndPlainParameters(t *testing.T) {
	seed, err := emulator.ParseSeed([]byte(`
accessKeys: [{id: AK1, secret: S1}]
secrets:
  - name: tagged
    value: x
    description: for ListSecrets filters
    tags: {team: payments}
  - name: dated
    versions:
      - {id: v1, data: old, createTime: "2024-01-02T03:04:05Z"}
      - {id: v2, data: new, stages: [ACSCurrent]}
parameters:
  - name: /app/prod/db
    value: s3cret
plainParameters:
  - name: /app/prod/endpoint
    value: db.internal:5432
  - name: hosts
    type: StringList
    value: a,b,c
regions:
  cn-shanghai:
    secrets: [{name: db-creds, value: '{"username":"sh"}'}]
    parameters: [{name: test, value: sh}]
    plainParameters: [{name: endpoint, value: sh.internal}]
`))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, seed, emulator.Options{})
	if got := e.Regions(); len(got) != 2 || got[1] != "cn-shanghai" {
		t.Fatalf("Regions = %v", got)
	}
	kc := kmsClient(t, e, akCred(t, "AK1", "S1"))
	old := mustSecret(t, kc, "dated", func(r *kms.GetSecretValueRequest) { r.VersionId = tea.String("v1") })
	if tea.StringValue(old.CreateTime) != "2024-01-02T03:04:05Z" {
		t.Fatalf("v1 CreateTime = %s", tea.StringValue(old.CreateTime))
	}
	if got := tea.StringValue(mustSecret(t, kmsClient(t, e, akCred(t, "AK1", "S1"), inRegion(e, "cn-shanghai")), "db-creds").SecretData); got != `{"username":"sh"}` {
		t.Fatalf("shanghai db-creds = %q", got)
	}
	if v, err := getPlain(oosClient(t, e, akCred(t, "AK1", "S1")), "hosts"); err != nil || v != "a,b,c" {
		t.Fatalf("hosts = %q, %v", v, err)
	}
}

func TestParseSeedValidatesRegionsAndPlainParameters(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"regions: {cn-shanghai: {secrets: [{name: a, valeu: x}]}}", `regions["cn-shanghai"].secrets[0].valeu: unknown field`},
		{"regions: {cn-shanghai: {secrets: [{name: a}]}}", `regions["cn-shanghai"].secrets[0]: give value or versions`},
		{"regions: {Shanghai: {}}", `regions["Shanghai"]: region "Shanghai" must look like`},
		{"regions: {cn-hangzhou: {}}", `regions["cn-hangzhou"]: is the primary region`},
		{"region: cn-beijing\nregions: {cn-beijing: {}}", `regions["cn-beijing"]: is the primary region`},
		{"plainParameters: [{name: p, value: v, type: Number}]", "plainParameters[0].type: must be String or StringList"},
		{"plainParameters: [{name: p, value: v}, {name: p, value: w}]", "plainParameters[1].name: duplicate parameter"},
		{"plainParameters: [{name: OOS_p, value: v}]", "must not start"},
		{"parameters: [{name: p, value: v, type: String}]", "parameters[0].type: encrypted parameters are always Secret"},
		{"secrets: [{name: a, versions: [{id: v1, data: x, stages: [ACSCurrent], createTime: yesterday}]}]", "createTime: want RFC 3339"},
		{"secrets: [{name: a, value: x, tags: {'': v}}]", "secrets[0].tags: empty tag key"},
	} {
		_, err := emulator.ParseSeed([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
	// A plain parameter name may be 200 characters long, an encrypted one 180.
	long := strings.Repeat("p", 200)
	if _, err := emulator.ParseSeed([]byte("plainParameters: [{name: " + long + ", value: v}]")); err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.ParseSeed([]byte("parameters: [{name: " + long + ", value: v}]")); err == nil {
		t.Fatal("a 200-character encrypted parameter name should be refused")
	}
}
