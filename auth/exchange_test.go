package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

const (
	roleA = "acs:ram::" + emulator.DemoAccountID + ":role/team-a"
	roleB = "acs:ram::" + emulator.DemoAccountID + ":role/team-b"
	// roleExact accepts exactly one token (its trust lists it), so a token
	// with the same claims but other bytes is a forgery STS refuses.
	roleExact = "acs:ram::" + emulator.DemoAccountID + ":role/exact"
	crossRole = "acs:ram::2222222222222222:role/cross"
	subjectA  = "system:serviceaccount:team-a:app"
	subjectB  = "system:serviceaccount:team-b:app"
)

func podSeed(exactToken string) *emulator.Seed {
	s := emulator.DemoSeed()
	s.Roles = append(s.Roles,
		emulator.Role{ARN: roleA, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCSubjects: []string{subjectA}},
		emulator.Role{ARN: roleB, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCSubjects: []string{subjectB}},
		emulator.Role{ARN: roleExact, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCTokens: []string{exactToken}},
		emulator.Role{ARN: crossRole, TrustedPrincipals: []string{emulator.DemoPrincipal}},
	)
	return s
}

func podResolver(e *emulator.Emulator, now func() time.Time) *Resolver {
	return NewResolver(Config{
		Getenv:      envMap("ACCESS_KEY_ID", emulator.DemoAccessKeyID, "SECRET_ACCESS_KEY", emulator.DemoAccessKeySecret, "ALICLOUD_OIDC_PROVIDER_ARN", emulator.DemoOIDCProviderARN),
		STSEndpoint: e.TLSEndpoint(), Region: emulator.DemoRegion, Now: now,
	})
}

func podAttrs(tok, role string) map[string]string {
	return map[string]string{"usePodServiceAccountToken": "true", "roleArn": role, AttrServiceAccountTokens: tokensJSON(tok)}
}

func TestPodRRSAExchangesOncePerToken(t *testing.T) {
	tokA := jwt(map[string]any{"sub": subjectA, "aud": STSAudience, "exp": time.Now().Add(time.Hour).Unix(), "n": 1})
	exact := jwt(map[string]any{"sub": subjectA, "aud": STSAudience, "exp": time.Now().Add(time.Hour).Unix(), "n": "exact"})
	e := startEmulator(t, podSeed(exact), emulator.Options{})
	r := podResolver(e, nil)

	// Many concurrent Mounts with one token: one AssumeRoleWithOIDC.
	var wg sync.WaitGroup
	ids := make([]*Identity, 20)
	errs := make([]error, 20)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = resolve(r, podAttrs(tokA, roleA), nil, "team-a", "app")
		}()
	}
	wg.Wait()
	for range 5 { // one after the other too: cached, not only coalesced
		if _, err := resolve(r, podAttrs(tokA, roleA), nil, "team-a", "app"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i].Mode != ModePodRRSA || ids[i].Principal != roleA || ids[i].Fingerprint != ids[0].Fingerprint {
			t.Fatalf("identity %d: %+v", i, ids[i])
		}
	}
	if n := e.CallsFor("sts", roleA); n != 1 {
		t.Fatalf("25 Mounts with one token made %d STS calls, want 1", n)
	}
	if !strings.Contains(ids[0].Reason, "team-a/app") || !strings.Contains(ids[0].Reason, "roleArn parameter") || strings.Contains(ids[0].Reason, tokA) {
		t.Fatalf("reason %q", ids[0].Reason)
	}
	if _, err := ids[0].Credential.GetCredential(); err != nil {
		t.Fatal(err)
	}

	// kubelet rotates the token: one more exchange, the same identity (and
	// so the same cache entries).
	tokA2 := jwt(map[string]any{"sub": subjectA, "aud": STSAudience, "exp": time.Now().Add(2 * time.Hour).Unix(), "n": 2})
	id2, err := resolve(r, podAttrs(tokA2, roleA), nil, "team-a", "app")
	if err != nil || id2.Fingerprint != ids[0].Fingerprint {
		t.Fatalf("rotated token: %v %v", id2, err)
	}
	if n := e.CallsFor("sts", roleA); n != 2 {
		t.Fatalf("a new token made %d STS calls in all, want 2", n)
	}

	// The same token asking for another role: STS checks trust again, and
	// team-b's role does not trust team-a's token.
	for range 2 {
		_, err = resolve(r, podAttrs(tokA, roleB), nil, "team-a", "app")
		if KindOf(err) != ErrDenied || !strings.Contains(err.Error(), "NoPermission") {
			t.Fatalf("role B with token A: %v", err)
		}
	}
	if n := e.CallsFor("sts", roleB); n != 2 {
		t.Fatalf("refused exchanges must not be cached: %d STS calls, want 2", n)
	}

	// Pod B, its own role: another identity.
	tokB := jwt(map[string]any{"sub": subjectB, "aud": STSAudience, "exp": time.Now().Add(time.Hour).Unix()})
	idB, err := resolve(r, podAttrs(tokB, roleB), nil, "team-b", "app")
	if err != nil || idB.Fingerprint == ids[0].Fingerprint {
		t.Fatalf("pod B: %v %v", idB, err)
	}

	// A forged token never reaches a cached identity: the genuine token is
	// accepted and cached; one with the same subject and role is sent to STS
	// and refused.
	if _, err := resolve(r, podAttrs(exact, roleExact), nil, "team-a", "app"); err != nil {
		t.Fatalf("genuine token: %v", err)
	}
	forged := jwt(map[string]any{"sub": subjectA, "aud": STSAudience, "exp": time.Now().Add(time.Hour).Unix(), "n": "forged"})
	before := e.CallsFor("sts", roleExact)
	if _, err := resolve(r, podAttrs(forged, roleExact), nil, "team-a", "app"); err == nil || strings.Contains(err.Error(), forged) {
		t.Fatalf("forged token accepted (or echoed): %v", err)
	}
	if e.CallsFor("sts", roleExact) != before+1 {
		t.Fatal("the forged token was not checked by STS")
	}
}

func TestPodTokenForgottenAtItsExpiry(t *testing.T) {
	e := startEmulator(t, podSeed("x"), emulator.Options{})
	var offset atomic.Int64
	r := podResolver(e, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	tok := jwt(map[string]any{"sub": subjectA, "exp": time.Now().Add(10 * time.Minute).Unix()})
	if _, err := resolve(r, podAttrs(tok, roleA), nil, "team-a", "app"); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(10*time.Minute - 10*time.Second)) // within the grace before exp
	before := e.Calls("sts")
	if _, err := resolve(r, podAttrs(tok, roleA), nil, "team-a", "app"); err != nil {
		t.Fatalf("a token close to its expiry is exchanged again: %v", err)
	}
	if e.Calls("sts") != before+1 {
		t.Fatal("a token near its expiry was served from the cache")
	}
	offset.Store(int64(11 * time.Minute))
	if _, err := resolve(r, podAttrs(tok, roleA), nil, "team-a", "app"); KindOf(err) != ErrUnauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	fresh := jwt(map[string]any{"sub": subjectA, "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := resolve(r, podAttrs(fresh, roleA), nil, "team-a", "app"); err != nil {
		t.Fatal(err)
	}
	r.pods.mu.Lock()
	n := len(r.pods.byToken)
	r.pods.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d tokens held, want only the fresh one (expired ones are dropped)", n)
	}
}

type fakeSAs map[string]string

func (f fakeSAs) RoleARN(_ context.Context, ns, name string) (string, error) {
	return f[ns+"/"+name], nil
}

func TestPodRoleFromServiceAccountAnnotation(t *testing.T) {
	e := startEmulator(t, podSeed("x"), emulator.Options{})
	r := NewResolver(Config{
		Getenv:      envMap("ALICLOUD_OIDC_PROVIDER_ARN", emulator.DemoOIDCProviderARN),
		STSEndpoint: e.TLSEndpoint(), ServiceAccounts: fakeSAs{"team-a/app": roleA},
	})
	tok := jwt(map[string]any{"sub": subjectA})
	attrs := podAttrs(tok, "")
	delete(attrs, "roleArn")
	id, err := resolve(r, attrs, nil, "team-a", "app")
	if err != nil || id.Principal != roleA || !strings.Contains(id.Reason, RoleAnnotation) {
		t.Fatalf("%v %v", id, err)
	}
	tokB := jwt(map[string]any{"sub": subjectB})
	attrs = podAttrs(tokB, "")
	delete(attrs, "roleArn")
	if _, err := resolve(r, attrs, nil, "team-b", "app"); KindOf(err) != ErrInvalid || !strings.Contains(err.Error(), "has no annotation "+RoleAnnotation) {
		t.Fatalf("unannotated service account: %v", err)
	}
}

func TestCrossAccountRoleAssumedOncePerSession(t *testing.T) {
	e := startEmulator(t, podSeed("x"), emulator.Options{})
	r := podResolver(e, nil)
	base, err := r.Base(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := r.AssumeRole(context.Background(), base, crossRole)
			if err != nil || id.Mode != ModeCrossAccount || id.Principal != crossRole || id.Fingerprint == base.Fingerprint {
				t.Errorf("%v %v", id, err)
			}
		}()
	}
	wg.Wait()
	if n := e.CallsFor("sts", crossRole); n != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", n)
	}
	if _, err := r.AssumeRole(context.Background(), base, roleA); KindOf(err) != ErrDenied {
		t.Fatalf("a role that does not trust the base: %v", err)
	}
	if _, err := r.AssumeRole(context.Background(), base, "acs:ram::1:user/x"); KindOf(err) != ErrInvalid {
		t.Fatalf("bad ARN: %v", err)
	}
}

func TestWorkerRAMRoleAndRegionThroughMetadataProxy(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.IMDS.Region = "cn-shanghai"
	e := startEmulator(t, seed, emulator.Options{})
	region, err := Metadata{Proxy: e.ProxyURL(), Timeout: 2 * time.Second}.Region(context.Background())
	if err != nil || region != "cn-shanghai" {
		t.Fatalf("region %q, %v", region, err)
	}
	r := NewResolver(Config{Getenv: envMap(), MetadataProxy: e.ProxyURL(), Region: region})
	for range 5 {
		id, err := resolve(r, nil, nil, "default", "default")
		if err != nil || id.Mode != ModeECSRAMRole {
			t.Fatalf("%v %v", id, err)
		}
	}
	if n := e.CallsFor("imds", emulator.DemoIMDSRoleName); n != 1 {
		t.Fatalf("%d credential reads from metadata, want 1", n)
	}
	if n := e.CallsWithOutcome("imds", "MissingToken"); n != 0 {
		t.Fatalf("%d tokenless metadata requests (hardened mode wants none)", n)
	}
	// No metadata: a clear error, quickly.
	start := time.Now()
	_, err = Metadata{Proxy: "http://127.0.0.1:1", Timeout: time.Second}.Region(context.Background())
	if err == nil || time.Since(start) > 3*time.Second || !strings.Contains(err.Error(), "100.100.100.200") {
		t.Fatalf("unreachable metadata: %v after %s", err, time.Since(start))
	}
}

func TestKubeServiceAccountsReadsTheAnnotation(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sa-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		gets.Add(1)
		switch r.URL.Path {
		case "/api/v1/namespaces/team-a/serviceaccounts/app":
			_, _ = w.Write([]byte(`{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"app","namespace":"team-a","annotations":{"` + RoleAnnotation + `":"` + roleA + `"}}}`))
		case "/api/v1/namespaces/team-a/serviceaccounts/plain":
			_, _ = w.Write([]byte(`{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"plain"}}`))
		case "/api/v1/namespaces/team-a/serviceaccounts/secret":
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if _, err := x509.ParseCertificate(srv.Certificate().Raw); err != nil {
		t.Fatal(err)
	}
	k, err := NewKubeServiceAccounts(&rest.Config{Host: srv.URL, BearerToken: "sa-token", TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		role, err := k.RoleARN(context.Background(), "team-a", "app")
		if err != nil || role != roleA {
			t.Fatalf("%q %v", role, err)
		}
	}
	if gets.Load() != 1 {
		t.Fatalf("%d API reads for 3 lookups, want 1 (cached)", gets.Load())
	}
	if role, err := k.RoleARN(context.Background(), "team-a", "plain"); err != nil || role != "" {
		t.Fatalf("unannotated: %q %v", role, err)
	}
	if _, err := k.RoleARN(context.Background(), "team-a", "secret"); KindOf(err) != ErrDenied || !strings.Contains(err.Error(), "rbac.install") {
		t.Fatalf("forbidden: %v", err)
	}
	if _, err := k.RoleARN(context.Background(), "team-a", "ghost"); KindOf(err) != ErrInvalid {
		t.Fatalf("missing: %v", err)
	}
}
