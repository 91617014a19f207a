package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	testAK, testSK   = "LTAItestAccessKey0000001", "testSecret000000000000000000001"
	testRole         = "acs:ram::1234567890123456:role/app-role"
	testOIDCProvider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1"
)

func tokenFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(jwt(map[string]any{"sub": "system:serviceaccount:kube-system:csi"})), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jwt builds an unsigned JWT with the claims.
func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString([]byte("unsigned"))
}

func TestBaseIdentityFromEnvironment(t *testing.T) {
	tf := tokenFile(t)
	cases := []struct {
		name    string
		env     []string
		mode    Mode
		errWant string
	}{
		{"guide AccessKey", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK}, ModeEnvAccessKey, ""},
		{"standard AccessKey", []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", testAK, "ALIBABA_CLOUD_ACCESS_KEY_SECRET", testSK}, ModeEnvAccessKey, ""},
		{"AccessKey assumes role", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_ROLE_SESSION_NAME", "my-session", "ALICLOUD_ROLE_SESSION_EXPIRATION", "1800"}, ModeEnvAssumeRole, ""},
		{"AccessKey assumes standard role", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALIBABA_CLOUD_ROLE_ARN", testRole}, ModeEnvAssumeRole, ""},
		{"AccessKey wins over RRSA env", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider, "ALICLOUD_OIDC_TOKEN_FILE", tf}, ModeEnvAssumeRole, ""},
		{"guide RRSA", []string{"ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider, "ALICLOUD_OIDC_TOKEN_FILE", tf}, ModeRRSA, ""},
		{"standard RRSA", []string{"ALIBABA_CLOUD_ROLE_ARN", testRole, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", testOIDCProvider, "ALIBABA_CLOUD_OIDC_TOKEN_FILE", tf}, ModeRRSA, ""},
		{"RRSA provider from account and cluster", []string{"ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_ACCOUNT_ID", "1234567890123456", "ALICLOUD_CLUSTER_ID", "c1", "ALICLOUD_OIDC_TOKEN_FILE", tf}, ModeRRSA, ""},
		{"RRSA without its token file", []string{"ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider, "ALICLOUD_OIDC_TOKEN_FILE", tf + ".missing"}, "", "rrsa.enable=true"},
		{"RRSA default token path", []string{"ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider}, "", DefaultOIDCTokenFile},
		{"role without a way to assume it", []string{"ALICLOUD_ROLE_ARN", testRole}, "", "ALICLOUD_OIDC_PROVIDER_ARN"},
		{"OIDC provider alone is for per-pod RRSA", []string{"ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider}, ModeECSRAMRole, ""},
		{"nothing: worker RAM role", nil, ModeECSRAMRole, ""},
		{"nothing, metadata disabled", []string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"}, "", "no credentials"},
		{"half an AccessKey", []string{"ACCESS_KEY_ID", testAK}, "", "set both ACCESS_KEY_ID and SECRET_ACCESS_KEY"},
		{"bad role ARN", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALICLOUD_ROLE_ARN", "arn:aws:iam::1:role/x"}, "", "not a RAM role ARN"},
		{"session too short", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_ROLE_SESSION_EXPIRATION", "60"}, "", "900 to 43200"},
		{"session not a number", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_ROLE_SESSION_EXPIRATION", "1h"}, "", "900 to 43200"},
		{"bad session name", []string{"ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK, "ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_ROLE_SESSION_NAME", "has space"}, "", "ALICLOUD_ROLE_SESSION_NAME"},
		{"bad OIDC provider ARN", []string{"ALICLOUD_ROLE_ARN", testRole, "ALICLOUD_OIDC_PROVIDER_ARN", "ack-rrsa-c1", "ALICLOUD_OIDC_TOKEN_FILE", tf}, "", "not an OIDC provider ARN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewResolver(Config{Getenv: envMap(c.env...), Region: "cn-hangzhou"})
			id, err := r.Base(context.Background())
			if c.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), c.errWant) {
					t.Fatalf("err = %v, want %q", err, c.errWant)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Mode != c.mode {
				t.Fatalf("mode %s, want %s", id.Mode, c.mode)
			}
			if id.Reason == "" || id.Fingerprint == "" || id.Credential == nil {
				t.Fatalf("incomplete identity %+v", id)
			}
			for _, s := range []string{testSK, testAK} {
				if strings.Contains(id.String()+id.Reason+id.Principal, s) {
					t.Fatalf("identity description leaks %q: %s / %s", s, id, id.Reason)
				}
			}
			again, _ := r.Base(context.Background())
			if again != id {
				t.Fatal("the provider's identity is rebuilt on every call")
			}
		})
	}
}

func TestSTSEndpointDefaultsToRegionalVPC(t *testing.T) {
	if got := NewResolver(Config{Region: "cn-shanghai"}).stsEndpoint(); got != "sts-vpc.cn-shanghai.aliyuncs.com" {
		t.Fatalf("default STS endpoint %q", got)
	}
	if got := NewResolver(Config{Region: "cn-shanghai", STSEndpoint: "127.0.0.1:8443"}).stsEndpoint(); got != "127.0.0.1:8443" {
		t.Fatalf("--sts-endpoint ignored: %q", got)
	}
}

func resolve(r *Resolver, attrs, secrets map[string]string, ns, sa string) (*Identity, error) {
	return r.Resolve(context.Background(), MountInfo{PodNamespace: ns, ServiceAccount: sa, PodName: "p", Attributes: attrs, Secrets: secrets})
}

func TestResolvePrecedenceAndFailClosed(t *testing.T) {
	r := NewResolver(Config{Getenv: envMap("ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK), Region: "cn-hangzhou"})
	base, err := resolve(r, nil, nil, "default", "default")
	if err != nil || base.Mode != ModeEnvAccessKey {
		t.Fatalf("base: %v %v", base, err)
	}
	if !strings.Contains(base.Reason, "no usePodServiceAccountToken and no nodePublishSecretRef") {
		t.Fatalf("reason %q does not say why", base.Reason)
	}

	other := map[string]string{"access_key": "LTAIotherKey000000000001", "access_secret": "otherSecret0000000000000000001"}
	np, err := resolve(r, nil, other, "default", "default")
	if err != nil || np.Mode != ModeNodePublish || np.Fingerprint == base.Fingerprint {
		t.Fatalf("nodePublishSecretRef must win and be another identity: %v %v", np, err)
	}
	np2, _ := resolve(r, nil, map[string]string{"ACCESS_KEY": other["access_key"], "Access_Secret": other["access_secret"]}, "default", "default")
	if np2 == nil || np2.Fingerprint != np.Fingerprint {
		t.Fatal("the same key pair (keys in another case) must be the same identity")
	}
	np3, _ := resolve(r, nil, map[string]string{"access_key": other["access_key"], "access_secret": other["access_secret"] + "x"}, "default", "default")
	if np3 == nil || np3.Fingerprint == np.Fingerprint {
		t.Fatal("same key id with another secret must be another identity")
	}
	sameAsBase, _ := resolve(r, nil, map[string]string{"access_key": testAK, "access_secret": testSK}, "default", "default")
	if sameAsBase.Mode != ModeNodePublish || sameAsBase.Fingerprint != base.Fingerprint {
		t.Fatalf("same credential, same fingerprint; mode says how this mount got it: %v", sameAsBase)
	}

	// Per-pod RRSA comes first and never falls back, even with a
	// nodePublishSecretRef and a provider identity at hand.
	for name, attrs := range map[string]map[string]string{
		"no token":         {"usePodServiceAccountToken": "true", "roleArn": testRole},
		"other audience":   {"usePodServiceAccountToken": "True", "roleArn": testRole, AttrServiceAccountTokens: `{"api":{"token":"a.b.c"}}`},
		"token not JSON":   {"usePodServiceAccountToken": "true", "roleArn": testRole, AttrServiceAccountTokens: `{"sts.aliyuncs.com":`},
		"token not a JWT":  {"usePodServiceAccountToken": "true", "roleArn": testRole, AttrServiceAccountTokens: `{"sts.aliyuncs.com":{"token":"opaque"}}`},
		"bad flag":         {"usePodServiceAccountToken": "yes"},
		"no role, no kube": {"usePodServiceAccountToken": "true", AttrServiceAccountTokens: tokensJSON(jwt(map[string]any{"sub": "system:serviceaccount:default:default"}))},
	} {
		t.Run(name, func(t *testing.T) {
			id, err := resolve(r, attrs, other, "default", "default")
			if err == nil {
				t.Fatalf("resolved %v", id)
			}
			if strings.Contains(err.Error(), "a.b.c") {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
	_, err = resolve(r, map[string]string{"usePodServiceAccountToken": "true"}, nil, "default", "default")
	if KindOf(err) != ErrUnauthenticated || !strings.Contains(err.Error(), "tokenRequests") || !strings.Contains(err.Error(), "rather than use another identity") {
		t.Fatalf("missing token: %v", err)
	}
	if _, err := resolve(r, map[string]string{"usePodServiceAccountToken": "false"}, nil, "default", "default"); err != nil {
		t.Fatalf("usePodServiceAccountToken false: %v", err)
	}

	for name, s := range map[string]map[string]string{
		"half a key":       {"access_key": testAK},
		"role without key": {"role_arn": testRole},
		"bad role":         {"access_key": testAK, "access_secret": testSK, "role_arn": "nope"},
	} {
		if _, err := resolve(r, nil, s, "default", "default"); KindOf(err) != ErrInvalid {
			t.Errorf("%s: err %v, want invalid", name, err)
		}
	}
	// The driver's token key in secrets is not a nodePublishSecretRef.
	if id, err := resolve(r, nil, map[string]string{AttrServiceAccountTokens: "{}"}, "default", "default"); err != nil || id.Mode != ModeEnvAccessKey {
		t.Fatalf("token-only secrets: %v %v", id, err)
	}
}

func TestDenyProviderIdentity(t *testing.T) {
	r := NewResolver(Config{Getenv: envMap("ACCESS_KEY_ID", testAK, "SECRET_ACCESS_KEY", testSK), DenyProviderIdentity: true})
	_, err := resolve(r, nil, nil, "default", "default")
	if KindOf(err) != ErrDenied || !strings.Contains(err.Error(), "--deny-provider-identity") {
		t.Fatalf("provider identity not refused: %v", err)
	}
	if id, err := resolve(r, nil, map[string]string{"access_key": testAK, "access_secret": testSK}, "default", "default"); err != nil || id.Mode != ModeNodePublish {
		t.Fatalf("nodePublishSecretRef must still work: %v %v", id, err)
	}
}

func tokensJSON(tok string) string {
	b, _ := json.Marshal(map[string]any{STSAudience: map[string]string{"token": tok, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	return string(b)
}

func TestPodTokenChecksBeforeSTS(t *testing.T) {
	// No STS endpoint is reachable: every case must fail before calling it.
	r := NewResolver(Config{Getenv: envMap("ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider), STSEndpoint: "127.0.0.1:1"})
	now := time.Now()
	cases := map[string]struct {
		claims  map[string]any
		ns, sa  string
		attrs   map[string]string
		kind    ErrorKind
		errWant string
	}{
		"subject not a service account": {map[string]any{"sub": "alice"}, "a", "s", nil, ErrUnauthenticated, "not a service account"},
		"another pod's token":           {map[string]any{"sub": "system:serviceaccount:b:s"}, "a", "s", nil, ErrDenied, "not to the mounting pod's service account a/s"},
		"another service account":       {map[string]any{"sub": "system:serviceaccount:a:admin"}, "a", "s", nil, ErrDenied, "a/admin"},
		"expired":                       {map[string]any{"sub": "system:serviceaccount:a:s", "exp": now.Add(-time.Minute).Unix()}, "a", "s", nil, ErrUnauthenticated, "expired"},
		"bad roleArn":                   {map[string]any{"sub": "system:serviceaccount:a:s"}, "a", "s", map[string]string{"roleArn": "acs:ram::1:user/x"}, ErrInvalid, "not a RAM role ARN"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			attrs := map[string]string{"usePodServiceAccountToken": "true", "roleArn": testRole, AttrServiceAccountTokens: tokensJSON(jwt(c.claims))}
			for k, v := range c.attrs {
				attrs[k] = v
			}
			_, err := resolve(r, attrs, nil, c.ns, c.sa)
			if err == nil || KindOf(err) != c.kind || !strings.Contains(err.Error(), c.errWant) {
				t.Fatalf("err = %v (kind %v), want %v %q", err, KindOf(err), c.kind, c.errWant)
			}
		})
	}
	// Without the OIDC provider ARN, per-pod RRSA says which variable to set.
	r2 := NewResolver(Config{Getenv: envMap(), STSEndpoint: "127.0.0.1:1"})
	_, err := resolve(r2, map[string]string{"usePodServiceAccountToken": "true", "roleArn": testRole, AttrServiceAccountTokens: tokensJSON(jwt(map[string]any{"sub": "system:serviceaccount:a:s"}))}, nil, "a", "s")
	if KindOf(err) != ErrInvalid || !strings.Contains(err.Error(), "ALICLOUD_OIDC_PROVIDER_ARN") {
		t.Fatalf("no OIDC provider: %v", err)
	}
}

func TestPodTokenFromSecretsFirst(t *testing.T) {
	a := jwt(map[string]any{"sub": "system:serviceaccount:a:s", "n": 1})
	b := jwt(map[string]any{"sub": "system:serviceaccount:a:s", "n": 2})
	tok, _, err := podServiceAccountToken(MountInfo{Secrets: map[string]string{AttrServiceAccountTokens: tokensJSON(a)}, Attributes: map[string]string{AttrServiceAccountTokens: tokensJSON(b)}})
	if err != nil || tok != a {
		t.Fatalf("secrets must win (driver v1.6 order): %v", err)
	}
	tok, exp, err := podServiceAccountToken(MountInfo{Attributes: map[string]string{AttrServiceAccountTokens: tokensJSON(b)}})
	if err != nil || tok != b || exp.IsZero() {
		t.Fatalf("attributes: %v", err)
	}
}

func TestUpstreamErrorsAreClassifiedAndScrubbed(t *testing.T) {
	tok := "eyJhbGciOi.secret-token-body.sig"
	err := upstreamError("per-pod RRSA", errors.New(`get session token failed: {"RequestId":"R1","Code":"NoPermission","Message":"subject not trusted; token `+tok+`"}`), tok)
	if err.Kind != ErrDenied || err.Code != "NoPermission" || err.RequestID != "R1" || strings.Contains(err.Error(), tok) {
		t.Fatalf("%#v / %v", err, err)
	}
	for msg, kind := range map[string]ErrorKind{
		`refresh session token failed: {"Code":"Throttling.User","Message":"x"}`:             ErrUnavailable,
		`refresh session token failed: {"Code":"InvalidAccessKeyId.NotFound","Message":"x"}`: ErrUnauthenticated,
		`refresh session token failed: {"Code":"InvalidParameter.RoleSessionName"}`:          ErrInvalid,
		`Post "https://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused`:     ErrUnavailable,
		"refresh Ecs sts token err, httpStatus: 404, message = role x is not attached":       ErrDenied,
	} {
		if got := upstreamError("x", errors.New(msg)).Kind; got != kind {
			t.Errorf("%s: kind %v, want %v", msg, got, kind)
		}
	}
}

func TestPodSessionName(t *testing.T) {
	if got := podSessionName("team-a", "app"); got != "csi.team-a.app" {
		t.Fatal(got)
	}
	long := podSessionName(strings.Repeat("n", 63), strings.Repeat("s", 63))
	if len(long) != 64 || !sessionNameRe.MatchString(long) {
		t.Fatalf("%q", long)
	}
}
