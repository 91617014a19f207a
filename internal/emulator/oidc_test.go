package emulator_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// The issuer a kube-apiserver would have with
// --service-account-issuer=https://kubernetes.default.svc.cluster.local.
const testIssuer = "https://kubernetes.default.svc.cluster.local"

var (
	rsaKeyA = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
	rsaKeyB = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
	ecKey   = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func mustRSAKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

var b64 = base64.RawURLEncoding

// testJWKS builds a JWKS shaped like kube-apiserver's /openid/v1/jwks.
func testJWKS(t *testing.T, keys map[string]crypto.PublicKey) []byte {
	t.Helper()
	var out []map[string]string
	for kid, pub := range keys {
		switch k := pub.(type) {
		case *rsa.PublicKey:
			out = append(out, map[string]string{"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
				"n": b64.EncodeToString(k.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		case *ecdsa.PublicKey:
			raw, err := k.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, map[string]string{"use": "sig", "kty": "EC", "kid": kid, "alg": "ES256", "crv": "P-256",
				"x": b64.EncodeToString(raw[1:33]), "y": b64.EncodeToString(raw[33:])})
		default:
			t.Fatalf("unsupported key %T", pub)
		}
	}
	b, err := json.Marshal(map[string]any{"keys": out})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signJWS signs claims with key (RS256 for RSA, ES256 for EC); kid "" is
// left out of the header.
func signJWS(t *testing.T, key crypto.Signer, kid string, claims map[string]any) string {
	t.Helper()
	alg := "RS256"
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		alg = "ES256"
	}
	hdr := map[string]any{"alg": alg}
	if kid != "" {
		hdr["kid"] = kid
	}
	input := jsonB64(t, hdr) + "." + jsonB64(t, claims)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	}
	return input + "." + b64.EncodeToString(sig)
}

func jsonB64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// saClaims are the claims of a kube-apiserver service-account token.
func saClaims(issuer, sub string, ttl time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": issuer, "sub": sub, "aud": []string{"sts.aliyuncs.com"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
		"kubernetes.io": map[string]any{"namespace": "kube-system", "serviceaccount": map[string]any{"name": "csi-secrets-store-provider-alibabacloud"}},
	}
}

func goodClaims() map[string]any { return saClaims(testIssuer, emulator.DemoOIDCSubject, time.Hour) }

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// stsOIDC sends AssumeRoleWithOIDC on the wire the way credentials-go does
// (an unsigned form POST to the TLS port) and returns status and body.
func stsOIDC(t *testing.T, e *emulator.Emulator, role, provider, token string) (int, map[string]any, string) {
	t.Helper()
	form := url.Values{"RoleArn": {role}, "OIDCProviderArn": {provider}, "OIDCToken": {token}, "RoleSessionName": {"oidc-test"}, "DurationSeconds": {"3600"}}
	u := "https://" + e.TLSEndpoint() + "/?Action=AssumeRoleWithOIDC&Format=JSON&Version=2015-04-01&Timestamp=" + url.QueryEscape(time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("STS answer is not JSON: %s", raw)
	}
	return resp.StatusCode, out, string(raw)
}

// viaSDK runs a KMS call with credentials-go's oidc_role_arn provider.
func viaSDK(t *testing.T, e *emulator.Emulator, role, provider, token string) error {
	t.Helper()
	_, err := getSecret(kmsClient(t, e, oidcCred(t, e, role, provider, writeToken(t, token))), emulator.DemoSecretJSON)
	return err
}

func TestOIDCVerifiedTokenAccepted(t *testing.T) {
	const otherProvider = "acs:ram::" + emulator.DemoAccountID + ":oidc-provider/unregistered"
	const otherRole = "acs:ram::" + emulator.DemoAccountID + ":role/other-rrsa"
	const untrustingRole = "acs:ram::" + emulator.DemoAccountID + ":role/untrusting"
	seed := emulator.DemoSeed()
	seed.Roles = append(seed.Roles,
		emulator.Role{ARN: otherRole, OIDCProviderARN: otherProvider, OIDCSubjects: []string{"system:serviceaccount:*"}},
		emulator.Role{ARN: untrustingRole, OIDCProviderARN: otherProvider})
	e := start(t, seed, emulator.Options{})
	jwks := testJWKS(t, map[string]crypto.PublicKey{"a": &rsaKeyA().PublicKey, "ec": &ecKey().PublicKey})
	if err := e.SetOIDCProvider(emulator.DemoOIDCProviderARN, testIssuer, jwks); err != nil {
		t.Fatal(err)
	}
	if got := e.OIDCProviders(); len(got) != 1 || got[0].Issuer != testIssuer || got[0].ARN != emulator.DemoOIDCProviderARN {
		t.Fatalf("OIDCProviders() = %+v", got)
	}

	// Through credentials-go, as the provider does it.
	good := signJWS(t, rsaKeyA(), "a", goodClaims())
	if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, good); err != nil {
		t.Fatalf("RS256 token refused: %v", err)
	}
	if n := e.CallsBy("kms", emulator.DemoOIDCRoleARN); n != 1 {
		t.Fatalf("kms calls by the RRSA role = %d", n)
	}
	for name, tok := range map[string]string{
		"ES256":         signJWS(t, ecKey(), "ec", goodClaims()),
		"no kid":        signJWS(t, rsaKeyA(), "", goodClaims()),
		"aud as string": signJWS(t, rsaKeyA(), "a", with(goodClaims(), "aud", "sts.aliyuncs.com")),
		"aud array":     signJWS(t, rsaKeyA(), "a", with(goodClaims(), "aud", []string{"other", "sts.aliyuncs.com"})),
		"no nbf":        signJWS(t, rsaKeyA(), "a", with(goodClaims(), "nbf", nil)),
		"nbf in leeway": signJWS(t, rsaKeyA(), "a", with(goodClaims(), "nbf", time.Now().Add(10*time.Second).Unix())),
	} {
		if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, tok); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}

	status, body, _ := stsOIDC(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, good)
	info, _ := body["OIDCTokenInfo"].(map[string]any)
	if status != 200 || info["Issuer"] != testIssuer || info["Subject"] != emulator.DemoOIDCSubject || info["ClientIds"] != "sts.aliyuncs.com" {
		t.Fatalf("AssumeRoleWithOIDC = %d %v", status, body)
	}

	// The role's trust still applies to a verified token.
	status, body, _ = stsOIDC(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN,
		signJWS(t, rsaKeyA(), "a", saClaims(testIssuer, "system:serviceaccount:default:intruder", time.Hour)))
	if status != 403 || body["Code"] != "NoPermission" || !strings.Contains(body["Message"].(string), "system:serviceaccount:default:intruder") {
		t.Fatalf("untrusted subject: %d %v", status, body)
	}
	status, body, _ = stsOIDC(t, e, untrustingRole, emulator.DemoOIDCProviderARN, good)
	if status != 403 || body["Code"] != "NoPermission" {
		t.Fatalf("role that does not trust the provider: %d %v", status, body)
	}

	// A registered provider refuses the unsigned fake token...
	fake := emulator.FakeOIDCToken(emulator.DemoOIDCSubject, testIssuer, time.Hour)
	if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, fake); err == nil || !strings.Contains(err.Error(), "InvalidParameter.OIDCToken") {
		t.Fatalf("unsigned token with a registered provider: %v", err)
	}
	// ...while a provider ARN without registration keeps the unsigned behaviour.
	if err := viaSDK(t, e, otherRole, otherProvider, fake); err != nil {
		t.Fatalf("unsigned token with an unregistered provider: %v", err)
	}
}

func TestOIDCVerificationFailures(t *testing.T) {
	e := start(t, nil, emulator.Options{})
	jwks := testJWKS(t, map[string]crypto.PublicKey{"a": &rsaKeyA().PublicKey})
	if err := e.SetOIDCProvider(emulator.DemoOIDCProviderARN, testIssuer, jwks); err != nil {
		t.Fatal(err)
	}
	good := signJWS(t, rsaKeyA(), "a", goodClaims())
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + jsonB64(t, with(goodClaims(), "sub", "system:serviceaccount:kube-system:admin")) + "." + parts[2]
	noneTok := jsonB64(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
	hsInput := jsonB64(t, map[string]any{"alg": "HS256", "kid": "a"}) + "." + parts[1]
	mac := hmac.New(sha256.New, rsaKeyA().N.Bytes())
	mac.Write([]byte(hsInput))
	hsTok := hsInput + "." + b64.EncodeToString(mac.Sum(nil))

	cases := []struct {
		name, token string
		want        []string // substrings of the Message
	}{
		{"wrong issuer", signJWS(t, rsaKeyA(), "a", saClaims("https://other-cluster.example.com", emulator.DemoOIDCSubject, time.Hour)),
			[]string{"issuer does not match", `token iss is "https://other-cluster.example.com"`, `has issuer "` + testIssuer + `"`}},
		{"tampered payload", tampered, []string{"signature is invalid", `key "a"`}},
		{"other key, same kid", signJWS(t, rsaKeyB(), "a", goodClaims()), []string{"signature is invalid"}},
		{"other key, no kid", signJWS(t, rsaKeyB(), "", goodClaims()), []string{"signature is invalid", "any key"}},
		{"unknown kid", signJWS(t, rsaKeyA(), "nope", goodClaims()), []string{`unknown kid "nope"`, `keys ["a"]`}},
		{"expired", signJWS(t, rsaKeyA(), "a", saClaims(testIssuer, emulator.DemoOIDCSubject, -5*time.Minute)), []string{"is expired: exp ", " is before now "}},
		{"no exp", signJWS(t, rsaKeyA(), "a", with(goodClaims(), "exp", nil)), []string{"no numeric exp"}},
		{"nbf in the future", signJWS(t, rsaKeyA(), "a", with(goodClaims(), "nbf", time.Now().Add(10*time.Minute).Unix())), []string{"not yet valid"}},
		{"wrong audience", signJWS(t, rsaKeyA(), "a", with(goodClaims(), "aud", []string{"https://kubernetes.default.svc"})), []string{"audience is wrong", `"https://kubernetes.default.svc"`, `"sts.aliyuncs.com"`}},
		{"no audience", signJWS(t, rsaKeyA(), "a", with(goodClaims(), "aud", nil)), []string{"audience is wrong"}},
		{"alg none", noneTok, []string{"alg none"}},
		{"alg HS256", hsTok, []string{`alg "HS256" is not supported`}},
		{"EC token, RSA-only JWKS", signJWS(t, ecKey(), "a", goodClaims()), []string{`key "a"`, "cannot verify alg ES256"}},
		{"unsigned fake", emulator.FakeOIDCToken(emulator.DemoOIDCSubject, testIssuer, time.Hour), []string{`unknown kid "emulator"`}},
		{"not a JWS", "garbage", []string{"malformed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, raw := stsOIDC(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, tc.token)
			msg, _ := body["Message"].(string)
			if status != 400 || body["Code"] != "InvalidParameter.OIDCToken" || body["RequestId"] == "" || body["HostId"] != "sts.aliyuncs.com" {
				t.Fatalf("got %d %s, want 400 InvalidParameter.OIDCToken", status, raw)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 8 && strings.Contains(raw, part) {
					t.Errorf("the answer echoes part of the token: %s", raw)
				}
			}
			if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, tc.token); err == nil || !strings.Contains(err.Error(), "InvalidParameter.OIDCToken") {
				t.Errorf("through credentials-go: got %v, want InvalidParameter.OIDCToken", err)
			}
		})
	}
	if n := e.CallsWithOutcome("sts", "InvalidParameter.OIDCToken"); n != 2*len(cases) {
		t.Errorf("refused OIDC calls = %d, want %d", n, 2*len(cases))
	}
	if n := e.Calls("kms"); n != 0 {
		t.Errorf("kms calls = %d, want 0", n)
	}
	if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, good); err != nil {
		t.Fatalf("good token after the failures: %v", err)
	}

	// Neither the counters, the request log nor the control API hold a token.
	var dump strings.Builder
	for _, v := range []any{e.Requests(), e.Counters()} {
		b, _ := json.Marshal(v)
		dump.Write(b)
	}
	for _, p := range []string{"/_emulator/requests", "/_emulator/counters", "/_emulator/state", "/_emulator/sts/oidc-providers"} {
		_, out := control(t, e, "GET", p, "")
		dump.WriteString(mustJSON(t, out))
	}
	for _, tok := range append([]string{good}, func() (ts []string) {
		for _, c := range cases {
			ts = append(ts, c.token)
		}
		return ts
	}()...) {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && strings.Contains(dump.String(), part) {
				t.Fatalf("a token part is in the counters, request log or control API")
			}
		}
	}
	redacted := 0
	for _, r := range e.Requests() {
		if r.Route == "sts" && r.Params["OIDCToken"] == "<redacted>" {
			redacted++
		}
	}
	if redacted == 0 {
		t.Fatal("no redacted OIDCToken parameter in the request log")
	}
}

func TestOIDCProviderReplacedViaControlAPI(t *testing.T) {
	const issuer2 = "https://127.0.0.1:6443"
	e := start(t, nil, emulator.Options{})
	tokA := signJWS(t, rsaKeyA(), "a", goodClaims())
	tokB := signJWS(t, rsaKeyB(), "b", saClaims(issuer2, emulator.DemoOIDCSubject, time.Hour))
	fake := emulator.FakeOIDCToken(emulator.DemoOIDCSubject, "", time.Hour)
	arn := emulator.DemoOIDCProviderARN
	accepted := func(tok string) bool {
		status, _, _ := stsOIDC(t, e, emulator.DemoOIDCRoleARN, arn, tok)
		return status == 200
	}
	if !accepted(fake) {
		t.Fatal("the unsigned fake token is refused before any provider is registered")
	}

	// jwks as the key set object, as `kubectl get --raw /openid/v1/jwks` prints it.
	jwksA := string(testJWKS(t, map[string]crypto.PublicKey{"a": &rsaKeyA().PublicKey}))
	code, out := control(t, e, "POST", "/_emulator/sts/oidc-providers", `{"arn":"`+arn+`","issuer":"`+testIssuer+`","jwks":`+jwksA+`}`)
	if code != 200 || out["replaced"] != false {
		t.Fatalf("register: %d %v", code, out)
	}
	if !accepted(tokA) || accepted(tokB) || accepted(fake) {
		t.Fatal("provider A: want only token A accepted")
	}
	if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, arn, tokA); err != nil {
		t.Fatalf("token A through credentials-go: %v", err)
	}

	// Replace it: jwks as JSON text this time, another key and issuer.
	jwksB, _ := json.Marshal(string(testJWKS(t, map[string]crypto.PublicKey{"b": &rsaKeyB().PublicKey})))
	code, out = control(t, e, "POST", "/_emulator/sts/oidc-providers", `{"arn":"`+arn+`","issuer":"`+issuer2+`","jwks":`+string(jwksB)+`}`)
	if code != 200 || out["replaced"] != true {
		t.Fatalf("replace: %d %v", code, out)
	}
	if accepted(tokA) || !accepted(tokB) {
		t.Fatal("provider B: want only token B accepted")
	}
	status, body, _ := stsOIDC(t, e, emulator.DemoOIDCRoleARN, arn, tokA)
	if status != 400 || !strings.Contains(body["Message"].(string), `unknown kid "a"`) {
		t.Fatalf("token A after the replacement: %d %v", status, body)
	}
	// Key B but the old issuer.
	status, body, _ = stsOIDC(t, e, emulator.DemoOIDCRoleARN, arn, signJWS(t, rsaKeyB(), "b", goodClaims()))
	if msg, _ := body["Message"].(string); status != 400 || !strings.Contains(msg, testIssuer) || !strings.Contains(msg, issuer2) {
		t.Fatalf("old issuer after the replacement: %d %v", status, body)
	}
	_, out = control(t, e, "GET", "/_emulator/sts/oidc-providers", "")
	if got := mustJSON(t, out["oidcProviders"]); !strings.Contains(got, issuer2) || !strings.Contains(got, `"b"`) || strings.Contains(got, testIssuer) {
		t.Fatalf("providers = %s", got)
	}

	// A bad registration is refused and changes nothing.
	for _, bad := range []string{
		`{"arn":"` + arn + `","issuer":"x","jwks":{"issuer":"x","jwks_uri":"y"}}`,
		`{"arn":"` + arn + `","issuer":"","jwks":` + jwksA + `}`,
		`{"arn":"acs:ram::1:role/not-a-provider","issuer":"x","jwks":` + jwksA + `}`,
		`{"arn":"` + arn + `","issuer":"x","jwks":[1]}`,
		`{"arn":"` + arn + `","issuer":"x","jwks":` + jwksA + `,"extra":1}`,
	} {
		if code, out := control(t, e, "POST", "/_emulator/sts/oidc-providers", bad); code != 400 || out["error"] == "" {
			t.Errorf("%s: %d %v, want 400", bad, code, out)
		}
	}
	if !accepted(tokB) {
		t.Fatal("a refused registration changed the provider")
	}

	// Removed: back to unsigned decoding.
	if code, out := control(t, e, "DELETE", "/_emulator/sts/oidc-providers?arn="+url.QueryEscape(arn), ""); code != 200 {
		t.Fatalf("delete: %d %v", code, out)
	}
	if code, _ := control(t, e, "DELETE", "/_emulator/sts/oidc-providers?arn="+url.QueryEscape(arn), ""); code != 404 {
		t.Fatalf("second delete: %d, want 404", code)
	}
	if !accepted(fake) {
		t.Fatal("the unsigned fake token is refused after the provider was removed")
	}

	// ResetState goes back to the seed's providers (none).
	if err := e.SetOIDCProvider(arn, testIssuer, []byte(jwksA)); err != nil {
		t.Fatal(err)
	}
	if accepted(fake) {
		t.Fatal("fake token accepted with a registered provider")
	}
	control(t, e, "POST", "/_emulator/reset?state=true", "")
	if !accepted(fake) || len(e.OIDCProviders()) != 0 {
		t.Fatal("ResetState kept a provider the seed does not have")
	}
	if e.RemoveOIDCProvider(arn) {
		t.Fatal("RemoveOIDCProvider reported a provider after ResetState")
	}
}

func TestOIDCProviderFromSeed(t *testing.T) {
	jwks := string(testJWKS(t, map[string]crypto.PublicKey{"a": &rsaKeyA().PublicKey}))
	quoted := strings.ReplaceAll(jwks, "'", "''")
	yamlSeed := `
accessKeys:
  - {id: LTAIseedAccessKey0000000, secret: s}
secrets:
  - {name: demo-db, value: x}
roles:
  - arn: acs:ram::1234567890123456:role/demo-rrsa-role
    oidcProviderArn: acs:ram::1234567890123456:oidc-provider/ack-rrsa-cdemo
    oidcSubjects: ["system:serviceaccount:kube-system:*"]
oidcProviders:
  - arn: acs:ram::1234567890123456:oidc-provider/ack-rrsa-cdemo
    issuer: ` + testIssuer + `
    jwks: '` + quoted + `'
`
	seed, err := emulator.ParseSeed([]byte(yamlSeed))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, seed, emulator.Options{})
	if err := viaSDK(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, signJWS(t, rsaKeyA(), "a", goodClaims())); err != nil {
		t.Fatalf("signed token: %v", err)
	}
	status, body, _ := stsOIDC(t, e, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, emulator.FakeOIDCToken(emulator.DemoOIDCSubject, testIssuer, time.Hour))
	if status != 400 || body["Code"] != "InvalidParameter.OIDCToken" {
		t.Fatalf("unsigned token with a seeded provider: %d %v", status, body)
	}

	// The key set may also be written as a YAML mapping, with n unquoted
	// (YAML 1.1 reads it as the boolean false).
	ecRaw, err := ecKey().PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	ecX, ecY := b64.EncodeToString(ecRaw[1:33]), b64.EncodeToString(ecRaw[33:])
	mapping := strings.Replace(yamlSeed, "jwks: '"+quoted+"'", "jwks:\n      keys:\n        - {kty: RSA, kid: a, n: "+b64.EncodeToString(rsaKeyA().N.Bytes())+", e: AQAB}\n        - {kty: EC, kid: ec, crv: P-256, x: "+ecX+", y: "+ecY+"}", 1)
	seed, err = emulator.ParseSeed([]byte(mapping))
	if err != nil {
		t.Fatal(err)
	}
	e2 := start(t, seed, emulator.Options{})
	if status, body, _ := stsOIDC(t, e2, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, signJWS(t, rsaKeyA(), "a", goodClaims())); status != 200 {
		t.Fatalf("jwks as a mapping: %d %v", status, body)
	}
	if status, body, _ := stsOIDC(t, e2, emulator.DemoOIDCRoleARN, emulator.DemoOIDCProviderARN, signJWS(t, ecKey(), "ec", goodClaims())); status != 200 {
		t.Fatalf("jwks as a mapping, EC key: %d %v", status, body)
	}
}

func TestOIDCProviderValidation(t *testing.T) {
	jwks := string(testJWKS(t, map[string]crypto.PublicKey{"a": &rsaKeyA().PublicKey}))
	const arn = "acs:ram::1:oidc-provider/p"
	for _, tc := range []struct{ yaml, want string }{
		{"oidcProviders: [{arn: 'acs:ram::1:role/r', issuer: i, jwks: '" + jwks + "'}]", "oidcProviders[0].arn"},
		{"oidcProviders: [{arn: '" + arn + "', jwks: '" + jwks + "'}]", "oidcProviders[0].issuer: required"},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i}]", "oidcProviders[0].jwks: jwks is required"},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i, jwks: '{\"issuer\":\"i\"}'}]", `no "keys" array`},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i, jwks: '{\"keys\":[{\"kty\":\"RSA\",\"n\":\"***\",\"e\":\"AQAB\"}]}'}]", "n must be non-empty base64url"},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i, jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}'}]", "no RSA or EC P-256 signing key"},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i, jwks: '" + jwks + "'}, {arn: '" + strings.ToUpper(arn) + "', issuer: j, jwks: '" + jwks + "'}]", "oidcProviders[1].arn"},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i, jwks: '" + jwks + "'}, {arn: '" + arn[:len(arn)-1] + "P', issuer: j, jwks: '" + jwks + "'}]", "duplicate OIDC provider"},
		{"oidcProviders: [{arn: '" + arn + "', issuer: i, jwk: x}]", "oidcProviders[0].jwk: unknown field"},
	} {
		_, err := emulator.ParseSeed([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}

	e := start(t, nil, emulator.Options{})
	for _, bad := range []struct{ arn, issuer, jwks string }{
		{"acs:ram::1:oidc-provider/", "i", jwks},
		{arn, "", jwks},
		{arn, "i", "not json"},
		{arn, "i", `{"keys":[]}`},
		{arn, "i", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`}, // 17-bit modulus
	} {
		if err := e.SetOIDCProvider(bad.arn, bad.issuer, []byte(bad.jwks)); err == nil {
			t.Errorf("SetOIDCProvider(%q, %q, %s) accepted", bad.arn, bad.issuer, bad.jwks)
		}
	}
	if len(e.OIDCProviders()) != 0 {
		t.Fatal("a refused SetOIDCProvider registered a provider")
	}
}
