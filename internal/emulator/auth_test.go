package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func TestSignatureErrors(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.AccessKeys = append(seed.AccessKeys, emulator.AccessKey{ID: "LTAIdisabled", Secret: "s", Disabled: true})
	e := start(t, seed, emulator.Options{})

	_, err := getSecret(kmsClient(t, e, akCred(t, emulator.DemoAccessKeyID, "wrong-secret")), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "SignatureDoesNotMatch", 400)
	_, err = getSecret(kmsClient(t, e, akCred(t, "LTAIunknown", "x")), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "InvalidAccessKeyId.NotFound", 404)
	_, err = getSecret(kmsClient(t, e, akCred(t, "LTAIdisabled", "s")), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "Forbidden.AccessKeyDisabled", 403)
	_, err = getParam(oosClient(t, e, akCred(t, emulator.DemoAccessKeyID, "wrong-secret")), emulator.DemoParameter)
	_ = wantSDKError(t, err, "SignatureDoesNotMatch", 400)

	recs := e.Requests()
	if len(recs) != 4 || recs[0].SignatureValid || !recs[2].SignatureValid || recs[0].Auth != "acs3" {
		t.Fatalf("records = %+v", recs)
	}

	// An STS key without its token, or with another session's token.
	cred := ramRoleCred(t, e, emulator.DemoRoleARN)
	cm, err := cred.GetCredential()
	if err != nil {
		t.Fatal(err)
	}
	_, err = getSecret(kmsClient(t, e, akCred(t, tea.StringValue(cm.AccessKeyId), tea.StringValue(cm.AccessKeySecret))), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "MissingSecurityToken", 400)
	_, err = getSecret(kmsClient(t, e, stsCred(t, tea.StringValue(cm.AccessKeyId), tea.StringValue(cm.AccessKeySecret), "CAISforged")), emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "InvalidSecurityToken.MismatchWithAccessKey", 400)
}

func stsCred(t *testing.T, id, secret, token string) credentials.Credential {
	t.Helper()
	c, err := credentials.NewCredential(&credentials.Config{
		Type: tea.String("sts"), AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret), SecurityToken: tea.String(token),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ramRoleCred(t *testing.T, e *emulator.Emulator, roleARN string) credentials.Credential {
	t.Helper()
	c, err := credentials.NewCredential(&credentials.Config{
		Type:            tea.String("ram_role_arn"),
		AccessKeyId:     tea.String(emulator.DemoAccessKeyID),
		AccessKeySecret: tea.String(emulator.DemoAccessKeySecret),
		RoleArn:         tea.String(roleARN),
		RoleSessionName: tea.String("emulator-test"),
		STSEndpoint:     tea.String(e.TLSEndpoint()),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPolicyDenied(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.AccessKeys = append(seed.AccessKeys, emulator.AccessKey{ID: "LTAIreader", Secret: "rs", Principal: "reader"})
	seed.Policies = map[string]emulator.Policy{
		"reader": {
			Allow: map[string][]string{"kms:GetSecretValue": {"demo-*"}, "oos:*": {"*"}},
			Deny:  map[string][]string{"kms:GetSecretValue": {emulator.DemoSecretBinary}, "oos:GetSecretParameter": {"te?t"}},
		},
	}
	e := start(t, seed, emulator.Options{})
	if _, err := e.PutSecretValue("other", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	reader := akCred(t, "LTAIreader", "rs")
	kc := kmsClient(t, e, reader)

	mustSecret(t, kc, emulator.DemoSecretJSON)
	_, err := getSecret(kc, emulator.DemoSecretBinary)
	se := wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if se.AccessDeniedDetail["AuthAction"] != "kms:GetSecretValue" || se.AccessDeniedDetail["NoPermissionType"] != "ExplicitDeny" {
		t.Fatalf("AccessDeniedDetail = %v", se.AccessDeniedDetail)
	}
	_, err = getSecret(kc, "other") // not in the allow list
	se = wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if se.AccessDeniedDetail["NoPermissionType"] != "ImplicitDeny" {
		t.Fatalf("AccessDeniedDetail = %v", se.AccessDeniedDetail)
	}
	_, err = getParam(oosClient(t, e, reader), emulator.DemoParameter)
	se = wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if se.AccessDeniedDetail["AuthAction"] != "oos:GetSecretParameter" {
		t.Fatalf("AccessDeniedDetail = %v", se.AccessDeniedDetail)
	}
	// Principals without a policy may do everything.
	mustSecret(t, kmsClient(t, e, demoCred(t)), emulator.DemoSecretBinary)
	if n := e.CallsWithOutcome("kms", "Forbidden.NoPermission"); n != 2 {
		t.Fatalf("denied kms calls = %d", n)
	}
}

func TestAssumeRoleSessionUsableAndExpires(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.Policies = map[string]emulator.Policy{
		emulator.DemoRoleARN: {Allow: map[string][]string{"kms:GetSecretValue": {emulator.DemoSecretJSON}}},
	}
	e := start(t, seed, emulator.Options{})
	cred := ramRoleCred(t, e, emulator.DemoRoleARN)
	kc := kmsClient(t, e, cred)

	mustSecret(t, kc, emulator.DemoSecretJSON)
	mustSecret(t, kc, emulator.DemoSecretJSON)
	if n := e.Calls("sts"); n != 1 {
		t.Fatalf("sts calls = %d, want 1 (the session is cached for an hour)", n)
	}
	if n := e.CallsBy("kms", emulator.DemoRoleARN); n != 2 {
		t.Fatalf("kms calls by the role = %d", n)
	}
	if n := e.CallsBy("sts", emulator.DemoPrincipal); n != 1 {
		t.Fatalf("AssumeRole calls by demo-user = %d", n)
	}
	// The session acts as the role: the role's policy applies.
	_, err := getSecret(kc, emulator.DemoSecretBinary)
	_ = wantSDKError(t, err, "Forbidden.NoPermission", 403)

	var stsRec, kmsRec *emulator.RequestRecord
	for _, r := range e.Requests() {
		switch r.Route {
		case "sts":
			stsRec = &r
		case "kms":
			kmsRec = &r
		}
	}
	if stsRec == nil || stsRec.Auth != "v1" || !stsRec.SignatureValid || stsRec.Params["Signature"] != "<redacted>" || stsRec.Params["RoleArn"] != emulator.DemoRoleARN {
		t.Fatalf("sts record = %+v", stsRec)
	}
	if kmsRec == nil || !kmsRec.SecurityToken || !strings.HasPrefix(kmsRec.AccessKeyID, "STS.") || kmsRec.CredentialsProvider != "ram_role_arn/static_ak" {
		t.Fatalf("kms record = %+v", kmsRec)
	}

	// Expired on the server: the client still has it cached and is refused.
	e.ExpireSessions()
	_, err = getSecret(kc, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "InvalidSecurityToken.Expired", 400)
}

func TestSessionExpiresInRealTime(t *testing.T) {
	e := start(t, nil, emulator.Options{SessionTTL: time.Second})
	cm, err := ramRoleCred(t, e, emulator.DemoRoleARN).GetCredential()
	if err != nil {
		t.Fatal(err)
	}
	kc := kmsClient(t, e, stsCred(t, tea.StringValue(cm.AccessKeyId), tea.StringValue(cm.AccessKeySecret), tea.StringValue(cm.SecurityToken)))
	mustSecret(t, kc, emulator.DemoSecretJSON)
	time.Sleep(time.Second + 50*time.Millisecond)
	_, err = getSecret(kc, emulator.DemoSecretJSON)
	_ = wantSDKError(t, err, "InvalidSecurityToken.Expired", 400)
}

func TestShortTTLForcesRefreshEveryCall(t *testing.T) {
	e := start(t, nil, emulator.Options{SessionTTL: 60 * time.Second})
	kc := kmsClient(t, e, ramRoleCred(t, e, emulator.DemoRoleARN))
	for i := 0; i < 3; i++ {
		mustSecret(t, kc, emulator.DemoSecretJSON)
	}
	if n := e.Calls("sts"); n != 3 {
		t.Fatalf("sts calls = %d, want 3 (TTL under 180s refreshes every call)", n)
	}
}

func TestAssumeRoleUntrustedAndChained(t *testing.T) {
	const cross = "acs:ram::9999999999999999:role/cross-account"
	const stranger = "acs:ram::" + emulator.DemoAccountID + ":role/stranger"
	seed := emulator.DemoSeed()
	seed.Roles = append(seed.Roles,
		emulator.Role{ARN: cross, TrustedRoles: []string{emulator.DemoRoleARN}},
		emulator.Role{ARN: stranger, TrustedPrincipals: []string{"someone-else"}},
	)
	e := start(t, seed, emulator.Options{})

	_, err := getSecret(kmsClient(t, e, ramRoleCred(t, e, stranger)), emulator.DemoSecretJSON)
	if err == nil || !strings.Contains(err.Error(), "NoPermission") {
		t.Fatalf("untrusted AssumeRole: %v", err)
	}
	// demo-user cannot assume the cross-account role directly...
	_, err = getSecret(kmsClient(t, e, ramRoleCred(t, e, cross)), emulator.DemoSecretJSON)
	if err == nil || !strings.Contains(err.Error(), "NoPermission") {
		t.Fatalf("direct cross-account AssumeRole: %v", err)
	}
	// ...but a session of demo-role can.
	first, err := providers.NewRAMRoleARNCredentialsProviderBuilder().
		WithAccessKeyId(emulator.DemoAccessKeyID).WithAccessKeySecret(emulator.DemoAccessKeySecret).
		WithRoleArn(emulator.DemoRoleARN).WithStsEndpoint(e.TLSEndpoint()).Build()
	if err != nil {
		t.Fatal(err)
	}
	second, err := providers.NewRAMRoleARNCredentialsProviderBuilder().
		WithCredentialsProvider(first).WithRoleArn(cross).WithStsEndpoint(e.TLSEndpoint()).Build()
	if err != nil {
		t.Fatal(err)
	}
	mustSecret(t, kmsClient(t, e, credentials.FromCredentialsProvider("ram_role_arn", second)), emulator.DemoSecretJSON)
	if n := e.CallsBy("kms", cross); n != 1 {
		t.Fatalf("kms calls by the chained role = %d", n)
	}
	if n := e.CallsBy("sts", emulator.DemoRoleARN); n != 1 {
		t.Fatalf("AssumeRole calls made by demo-role's session = %d", n)
	}
}

func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func oidcCred(t *testing.T, e *emulator.Emulator, roleARN, providerARN, tokenFile string, mods ...func(*credentials.Config)) credentials.Credential {
	t.Helper()
	cfg := &credentials.Config{
		Type:              tea.String("oidc_role_arn"),
		RoleArn:           tea.String(roleARN),
		OIDCProviderArn:   tea.String(providerARN),
		OIDCTokenFilePath: tea.String(tokenFile),
		STSEndpoint:       tea.String(e.TLSEndpoint()),
	}
	for _, m := range mods {
		m(cfg)
	}
	c, err := credentials.NewCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAssumeRoleWithOIDC(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.Roles = append(seed.Roles, emulator.Role{
		ARN:             "acs:ram::" + emulator.DemoAccountID + ":role/opaque",
		OIDCProviderARN: emulator.DemoOIDCProviderARN,
		OIDCTokens:      []string{"opaque-token-123"},
	})
	e := start(t, seed, emulator.Options{})
	good := emulator.FakeOIDCToken(emulator.DemoOIDCSubject, "", time.Hour)

	kc := kmsClient(t, e, oidcCred(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, writeToken(t, good)))
	mustSecret(t, kc, emulator.DemoSecretJSON)
	if n := e.CallsBy("kms", emulator.DemoOIDCRoleARN); n != 1 {
		t.Fatalf("kms calls by the RRSA role = %d", n)
	}
	for _, r := range e.Requests() {
		if r.Route == "sts" && (r.Action != "AssumeRoleWithOIDC" || r.Auth != "none" || r.Params["OIDCToken"] != "<redacted>") {
			t.Fatalf("sts record = %+v", r)
		}
		if r.Route == "kms" && r.CredentialsProvider != "oidc_role_arn" {
			t.Fatalf("kms record provider = %q", r.CredentialsProvider)
		}
	}

	for name, tc := range map[string]struct{ role, provider, token, want string }{
		"untrusted subject": {emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, emulator.FakeOIDCToken("system:serviceaccount:default:intruder", "", time.Hour), "NoPermission"},
		"wrong provider":    {emulator.DemoOIDCRoleARN, "acs:ram::1:oidc-provider/other", good, "NoPermission"},
		"expired token":     {emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, emulator.FakeOIDCToken(emulator.DemoOIDCSubject, "", -time.Minute), "InvalidParameter.OIDCToken"},
		"not a JWT":         {emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, "garbage", "InvalidParameter.OIDCToken"},
		"unlisted opaque":   {"acs:ram::" + emulator.DemoAccountID + ":role/opaque", emulator.DemoOIDCProviderARN, "opaque-token-999", "InvalidParameter.OIDCToken"},
	} {
		_, err := getSecret(kmsClient(t, e, oidcCred(t, e, tc.role, tc.provider, writeToken(t, tc.token))), emulator.DemoSecretJSON)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %s", name, err, tc.want)
		}
	}

	// An exact token listed on the role is accepted without decoding.
	mustSecret(t, kmsClient(t, e, oidcCred(t, e, "acs:ram::"+emulator.DemoAccountID+":role/opaque", emulator.DemoOIDCProviderARN, writeToken(t, "opaque-token-123"))), emulator.DemoSecretJSON)
}

func TestOIDCThroughConnectProxyToDefaultSTSHost(t *testing.T) {
	// No STSEndpoint: credentials-go goes to https://sts.aliyuncs.com via
	// the proxy's CONNECT, which the emulator terminates with its CA.
	e := start(t, nil, emulator.Options{})
	cred := oidcCred(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN,
		writeToken(t, emulator.FakeOIDCToken(emulator.DemoOIDCSubject, "", time.Hour)),
		func(c *credentials.Config) { c.STSEndpoint = nil; c.Proxy = tea.String(e.ProxyURL()) })
	mustSecret(t, kmsClient(t, e, cred), emulator.DemoSecretJSON)
	var host string
	for _, r := range e.Requests() {
		if r.Route == "sts" {
			host = r.Host
		}
	}
	if host != "sts.aliyuncs.com" {
		t.Fatalf("sts request host = %q", host)
	}
}

func ecsCred(t *testing.T, e *emulator.Emulator) credentials.Credential {
	t.Helper()
	p, err := providers.NewECSRAMRoleCredentialsProviderBuilder().
		WithHttpOptions(&providers.HttpOptions{Proxy: e.ProxyURL()}).Build()
	if err != nil {
		t.Fatal(err)
	}
	return credentials.FromCredentialsProvider("ecs_ram_role", p)
}

func TestECSRAMRoleThroughProxy(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	mustSecret(t, kmsClient(t, e, ecsCred(t, e)), emulator.DemoSecretJSON)
	roleARN := "acs:ram::" + emulator.DemoAccountID + ":role/" + emulator.DemoIMDSRoleName
	if n := e.CallsBy("kms", roleARN); n != 1 {
		t.Fatalf("kms calls by the instance role = %d", n)
	}
	// PUT token, GET role name, PUT token, GET credentials.
	if n := e.Calls("imds"); n != 4 {
		t.Fatalf("imds calls = %d, want 4", n)
	}
	if n := e.CallsFor("imds", emulator.DemoIMDSRoleName); n != 1 {
		t.Fatalf("credential fetches = %d", n)
	}
	for _, r := range e.Requests() {
		if r.Route == "imds" && r.Host != "100.100.100.200" {
			t.Fatalf("imds request host = %q", r.Host)
		}
	}
}

// imdsGet talks to the metadata service through the emulator's proxy.
func imdsDo(t *testing.T, e *emulator.Emulator, method, path string, hdr map[string]string) (int, string) {
	t.Helper()
	proxy, _ := url.Parse(e.ProxyURL())
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest(method, "http://100.100.100.200"+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestIMDSHardenedAndRegion(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	if code, _ := imdsDo(t, e, "GET", "/latest/meta-data/region-id", nil); code != 403 {
		t.Fatalf("tokenless GET in hardened mode = %d, want 403", code)
	}
	code, tok := imdsDo(t, e, "PUT", "/latest/api/token", map[string]string{"X-aliyun-ecs-metadata-token-ttl-seconds": "60"})
	if code != 200 || tok == "" {
		t.Fatalf("token PUT = %d %q", code, tok)
	}
	auth := map[string]string{"X-aliyun-ecs-metadata-token": tok}
	if code, body := imdsDo(t, e, "GET", "/latest/meta-data/region-id", auth); code != 200 || body != "cn-hangzhou" {
		t.Fatalf("region-id = %d %q", code, body)
	}
	if code, body := imdsDo(t, e, "GET", "/latest/meta-data/ram/security-credentials/", auth); code != 200 || body != emulator.DemoIMDSRoleName {
		t.Fatalf("role list = %d %q", code, body)
	}
	code, body := imdsDo(t, e, "GET", "/latest/meta-data/ram/security-credentials/"+emulator.DemoIMDSRoleName, auth)
	var creds map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &creds) != nil || creds["Code"] != "Success" || creds["Expiration"] == "" || !strings.HasPrefix(creds["AccessKeyId"], "STS.") || creds["LastUpdated"] == "" {
		t.Fatalf("credentials = %d %s", code, body)
	}
	if code, _ := imdsDo(t, e, "GET", "/latest/meta-data/ram/security-credentials/other-role", auth); code != 404 {
		t.Fatalf("unattached role = %d", code)
	}
	if code, _ := imdsDo(t, e, "GET", "/latest/meta-data/region-id", map[string]string{"X-aliyun-ecs-metadata-token": "bogus"}); code != 401 {
		t.Fatalf("bad token = %d", code)
	}
	if code, _ := imdsDo(t, e, "PUT", "/latest/api/token", nil); code != 400 {
		t.Fatalf("token PUT without TTL = %d", code)
	}

	e.SetHardenedIMDS(false)
	if code, body := imdsDo(t, e, "GET", "/latest/meta-data/region-id", nil); code != 200 || body != "cn-hangzhou" {
		t.Fatalf("tokenless GET with hardening off = %d %q", code, body)
	}
}

func TestCredentialsURI(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	cred, err := credentials.NewCredential(&credentials.Config{
		Type: tea.String("credentials_uri"),
		Url:  tea.String(e.URL() + "/_emulator/credentials-uri?role=" + url.QueryEscape(emulator.DemoRoleARN)),
	})
	if err != nil {
		t.Fatal(err)
	}
	mustSecret(t, kmsClient(t, e, cred), emulator.DemoSecretJSON)
	if e.Calls("uri") != 1 || e.CallsBy("kms", emulator.DemoRoleARN) != 1 {
		t.Fatalf("uri calls %d, kms by role %d", e.Calls("uri"), e.CallsBy("kms", emulator.DemoRoleARN))
	}
}

// replayProxy is a test HTTP proxy that hands each request the SDK sends
// to the emulator, then lets the test send altered copies of it.
type replayProxy struct {
	t *testing.T

	mu   sync.Mutex
	last *http.Request
	body []byte
}

func (p *replayProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.last, p.body = r.Clone(context.Background()), body
	p.mu.Unlock()
	status, out, hdr := p.send(func(*http.Request) {})
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// send forwards the last SDK request, after mod, to the emulator.
func (p *replayProxy) send(mod func(*http.Request)) (int, []byte, http.Header) {
	p.mu.Lock()
	req := p.last.Clone(context.Background())
	body := p.body
	p.mu.Unlock()
	req.RequestURI = ""
	req.Body = io.NopCloser(bytes.NewReader(body))
	mod(req)
	resp, err := (&http.Transport{}).RoundTrip(req) // req.URL is the emulator (absolute form)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

func TestReplayAndTampering(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	p := &replayProxy{t: t}
	srv := httptest.NewServer(p)
	defer srv.Close()
	kc := kmsClient(t, e, demoCred(t), func(c *openapi.Config) { c.HttpProxy = tea.String(srv.URL) })
	mustSecret(t, kc, emulator.DemoSecretJSON)

	code := func(status int, body []byte, _ http.Header) string {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		return fmt.Sprint(status, " ", m["Code"])
	}
	if got := code(p.send(func(*http.Request) {})); got != "400 SignatureNonceUsed" {
		t.Errorf("replay: %s", got)
	}
	if got := code(p.send(func(r *http.Request) {
		r.Header.Set("x-acs-signature-nonce", "fresh-nonce")
	})); got != "400 SignatureDoesNotMatch" {
		t.Errorf("changed signed header: %s", got)
	}
	if got := code(p.send(func(r *http.Request) {
		q := r.URL.Query()
		q.Set("SecretName", emulator.DemoSecretBinary)
		r.URL.RawQuery = q.Encode()
	})); got != "400 SignatureDoesNotMatch" {
		t.Errorf("changed query: %s", got)
	}
	if got := code(p.send(func(r *http.Request) {
		r.Header.Set("x-acs-date", time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04:05Z"))
	})); got != "400 InvalidTimeStamp.Expired" {
		t.Errorf("stale date: %s", got)
	}
	if got := code(p.send(func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader("SecretName=x"))
		r.ContentLength = 12
	})); got != "400 SignatureDoesNotMatch" {
		t.Errorf("changed body: %s", got)
	}
}
