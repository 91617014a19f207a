package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// Identities of the credential-mode tests: two teams with their own RAM
// roles (trusting only their own service account), a role that accepts
// exactly one token, and a role in another account for crossAccountRoleArn.
const (
	roleTeamA  = "acs:ram::" + emulator.DemoAccountID + ":role/team-a"
	roleTeamB  = "acs:ram::" + emulator.DemoAccountID + ":role/team-b"
	roleExact  = "acs:ram::" + emulator.DemoAccountID + ":role/exact-token"
	roleCross  = "acs:ram::2222222222222222:role/cross-reader"
	subTeamA   = "system:serviceaccount:team-a:app"
	subTeamB   = "system:serviceaccount:team-b:app"
	ecsRoleARN = "acs:ram::" + emulator.DemoAccountID + ":role/" + emulator.DemoIMDSRoleName

	valueTeamA  = "team-a-db-password-0001"
	valueTeamB  = "team-b-db-password-0002"
	valueShared = "shared-value-000000003"
	valueCross  = "cross-account-value-0004"
)

var (
	podA = pod{name: "app-a-1", namespace: "team-a", serviceAccount: "app", uid: "aaaaaaaa-0000-0000-0000-000000000001"}
	podB = pod{name: "app-b-1", namespace: "team-b", serviceAccount: "app", uid: "bbbbbbbb-0000-0000-0000-000000000002"}
)

// authSeed is the demo seed plus the teams' secrets, roles and policies.
// exactToken is the one token roleExact accepts.
func authSeed(exactToken string) *emulator.Seed {
	s := emulator.DemoSeed()
	s.Secrets = append(s.Secrets,
		emulator.Secret{Name: "team-a/db", Value: valueTeamA},
		emulator.Secret{Name: "team-b/db", Value: valueTeamB},
		emulator.Secret{Name: "shared", Value: valueShared},
		emulator.Secret{Name: "cross-db", Value: valueCross},
	)
	s.Roles = append(s.Roles,
		emulator.Role{ARN: roleTeamA, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCSubjects: []string{subTeamA}},
		emulator.Role{ARN: roleTeamB, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCSubjects: []string{subTeamB}},
		emulator.Role{ARN: roleExact, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCTokens: []string{exactToken}},
		emulator.Role{ARN: roleCross, TrustedPrincipals: []string{emulator.DemoPrincipal}, TrustedRoles: []string{roleTeamA}},
	)
	s.Policies = map[string]emulator.Policy{
		roleTeamA: {Allow: map[string][]string{"kms:GetSecretValue": {"team-a/*", "shared"}}},
		roleTeamB: {Allow: map[string][]string{"kms:GetSecretValue": {"team-b/*", "shared"}}},
		roleExact: {Allow: map[string][]string{"kms:GetSecretValue": {"shared"}}},
		roleCross: {Allow: map[string][]string{"kms:GetSecretValue": {"cross-db"}}},
	}
	return s
}

// podToken is an unsigned service-account JWT shaped like kubelet's: the
// emulator reads sub (and exp) and matches them against the role's trust.
// nonce makes two tokens with the same claims differ.
func podToken(sub string, ttl time.Duration, nonce string) string {
	enc := base64.RawURLEncoding
	now := time.Now()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "e2e", "typ": "JWT"})
	p, _ := json.Marshal(map[string]any{
		"iss": "https://oidc-ack-e2e.aliyuncs.com/c1", "sub": sub, "aud": []string{"sts.aliyuncs.com"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": nonce,
	})
	tok := enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString([]byte("unsigned-"+nonce))
	noteSensitive(tok)
	return tok
}

// tokensValue is csi.storage.k8s.io/serviceAccount.tokens as the driver
// writes it.
func tokensValue(tok string) string {
	b, _ := json.Marshal(map[string]any{"sts.aliyuncs.com": map[string]string{
		"token": tok, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}})
	return string(b)
}

// perPod is the class parameters of per-pod RRSA with the token in the
// attributes (drivers before serviceAccountTokenInSecrets).
func perPod(params map[string]string, role, tok string) map[string]string {
	out := merge(params, "usePodServiceAccountToken", "true")
	if role != "" {
		out["roleArn"] = role
	}
	if tok != "" {
		out["csi.storage.k8s.io/serviceAccount.tokens"] = tokensValue(tok)
	}
	return out
}

func (p *provider) mountPod(t testing.TB, pd pod, params, secrets map[string]string) (*v1alpha1.MountResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p.mountAs(ctx, pd, params, secrets)
}

func (p *provider) mountPodOK(t testing.TB, pd pod, params, secrets map[string]string) map[string]written {
	t.Helper()
	resp, err := p.mountPod(t, pd, params, secrets)
	if err != nil {
		t.Fatalf("Mount as %s/%s: %v", pd.namespace, pd.serviceAccount, err)
	}
	return writeLikeDriver(t, resp)
}

// wantRefused checks a Mount error's code and that its message says why.
func wantRefused(t testing.TB, err error, code codes.Code, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Mount succeeded, want %v", code)
	}
	if status.Code(err) != code {
		t.Fatalf("code %v, want %v: %v", status.Code(err), code, err)
	}
	msg := status.Convert(err).Message()
	for _, s := range says {
		if !strings.Contains(msg, s) {
			t.Fatalf("error %q does not say %q", msg, s)
		}
	}
}

// noCalls runs f and fails if it made any call to the emulator (KMS, OOS,
// STS, metadata).
func noCalls(t testing.TB, e *emulator.Emulator, what string, f func()) {
	t.Helper()
	before := e.Calls("")
	f()
	if n := e.Calls("") - before; n != 0 {
		t.Fatalf("%s made %d upstream calls, want 0: %+v", what, n, e.Counters())
	}
}

// stsRecords returns the STS requests for a role from the request log.
func stsRecords(e *emulator.Emulator, role string) []emulator.RequestRecord {
	var out []emulator.RequestRecord
	for _, r := range e.Requests() {
		if r.Route == emulator.RouteSTS && r.Resource == role {
			out = append(out, r)
		}
	}
	return out
}

// runServeToExit runs `serve` with exactly env and expects it to stop by
// itself (a startup error) within the deadline.
func runServeToExit(t testing.TB, env map[string]string, args ...string) (string, error) {
	t.Helper()
	dir := shortTempDir(t)
	cmd := exec.Command(providerBin, append([]string{"serve", "--provider-volume", dir, "--metrics-addr", "", "--health-addr", ""}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err, timedOut := runBounded(cmd, 15*time.Second)
	if timedOut {
		t.Fatalf("serve did not stop by itself: %s", out)
	}
	if _, serr := os.Stat(filepath.Join(dir, "alibabacloud.sock")); serr == nil {
		t.Errorf("serve created its socket before failing")
	}
	return out, err
}

// logLines counts the provider's log lines holding sub once at least want of
// them have arrived (or 5 s passed): the log reaches the test through a pipe,
// so lines of calls that have returned may still be in flight. A short settle
// lets any extra line show up too, so "exactly want" checks stay honest.
func (p *provider) logLines(sub string, want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for countLines(p.logs.String(), sub) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return countLines(p.logs.String(), sub)
}

func countLines(s, sub string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}
