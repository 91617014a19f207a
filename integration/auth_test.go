package integration

// End-to-end tests of every credential mode (docs/credentials.md), through
// the real `serve` binary and its socket, against the emulator's STS
// (AssumeRole, AssumeRoleWithOIDC over TLS), ECS metadata (through
// --metadata-proxy) and KMS/OOS. The emulator's counters are the witness:
// STS once per session, never an upstream call for a refused Mount.

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

var demoObjects = objects("- objectName: demo-db", "- objectName: test", "  objectType: oos")

// The guide's third way: an AccessKey that assumes ALICLOUD_ROLE_ARN. STS is
// called once for many Mounts, and again only when the session nears its end.
func TestAuthAccessKeyAssumesRoleOncePerSession(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	// Sessions live 183 s; credentials-go renews when at most 180 s are
	// left, so a session is good for about 3 s here.
	e.SetSessionTTL(183 * time.Second)
	p := startProvider(t, e, providerConfig{
		args: []string{"--cache-ttl", "1s"},
		env: map[string]string{
			"ALICLOUD_ROLE_ARN":                emulator.DemoRoleARN,
			"ALICLOUD_ROLE_SESSION_NAME":       "csi-e2e-session",
			"ALICLOUD_ROLE_SESSION_EXPIRATION": "900",
		},
	})
	t0 := time.Now()
	p.mountOK(t, demoObjects, nil)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.mountPod(t, defaultPod, demoObjects, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if time.Since(t0) > 1900*time.Millisecond {
		t.Skip("11 mounts took longer than one session window; the STS count would not prove anything")
	}
	if n := e.CallsFor("sts", emulator.DemoRoleARN); n != 1 {
		t.Fatalf("11 Mounts made %d AssumeRole calls, want 1", n)
	}
	if e.CallsBy("kms", emulator.DemoRoleARN) == 0 || e.CallsBy("kms", emulator.DemoPrincipal) != 0 {
		t.Fatalf("KMS must be called by the role, never by the AccessKey itself: %+v", e.Counters())
	}
	recs := stsRecords(e, emulator.DemoRoleARN)
	if len(recs) != 1 || recs[0].Params["RoleSessionName"] != "csi-e2e-session" || recs[0].Params["DurationSeconds"] != "900" || recs[0].Action != "AssumeRole" {
		t.Fatalf("AssumeRole request %+v: want the session name and expiration from the environment", recs)
	}
	if n := p.logLines(`msg="identity chosen"`, 11); n != 11 {
		t.Fatalf("%d identity lines for 11 Mounts, want one per Mount", n)
	}
	if !strings.Contains(p.logs.String(), "mode=access-key-role principal="+emulator.DemoRoleARN) {
		t.Fatalf("the identity line does not name the mode and role:\n%s", p.logs.String())
	}

	// After the session's window: one more AssumeRole, then none again.
	time.Sleep(time.Until(t0.Add(3300 * time.Millisecond)))
	p.mountOK(t, demoObjects, nil)
	p.mountOK(t, demoObjects, nil)
	if n := e.CallsFor("sts", emulator.DemoRoleARN); n != 2 {
		t.Fatalf("after the session expired: %d AssumeRole calls in all, want 2", n)
	}
}

// The guide's first way: RRSA for the provider itself, with the guide's
// variable names and the standard ones.
func TestAuthProviderRRSA(t *testing.T) {
	for _, names := range [][3]string{
		{"ALICLOUD_ROLE_ARN", "ALICLOUD_OIDC_PROVIDER_ARN", "ALICLOUD_OIDC_TOKEN_FILE"},
		{"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"},
	} {
		t.Run(names[0], func(t *testing.T) {
			e := startEmulator(t, authSeed("x"))
			tokFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokFile, []byte(podToken(emulator.DemoOIDCSubject, time.Hour, "provider")), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}, env: map[string]string{
				"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": "",
				names[0]: emulator.DemoOIDCRoleARN, names[1]: emulator.DemoOIDCProviderARN, names[2]: tokFile,
			}})
			for range 5 {
				files := writeLikeDriver(t, p.mountOK(t, demoObjects, nil))
				if string(files["demo-db"].data) != emulator.DemoSecretJSONValue {
					t.Fatal("wrong content")
				}
			}
			if n := e.CallsFor("sts", emulator.DemoOIDCRoleARN); n != 1 {
				t.Fatalf("5 Mounts made %d AssumeRoleWithOIDC calls, want 1", n)
			}
			if e.CallsBy("kms", emulator.DemoOIDCRoleARN) == 0 {
				t.Fatalf("KMS was not called as the RRSA role: %+v", e.Counters())
			}
		})
	}
	t.Run("token file missing", func(t *testing.T) {
		e := startEmulator(t, authSeed("x"))
		p := startProvider(t, e, providerConfig{env: map[string]string{
			"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": "",
			"ALICLOUD_ROLE_ARN": emulator.DemoOIDCRoleARN, "ALICLOUD_OIDC_PROVIDER_ARN": emulator.DemoOIDCProviderARN,
			"ALICLOUD_OIDC_TOKEN_FILE": filepath.Join(t.TempDir(), "absent"),
		}})
		noCalls(t, e, "a Mount without the RRSA token", func() {
			_, err := p.mountPod(t, defaultPod, demoObjects, nil)
			wantRefused(t, err, codes.InvalidArgument, "rrsa.enable=true", "ALICLOUD_OIDC_TOKEN_FILE")
		})
	})
}

// The guide's second way: the worker's RAM role from ECS metadata, hardened
// (token first, never a tokenless request), and the node's region from
// metadata when --region is not given.
func TestAuthWorkerRAMRoleAndMetadataRegion(t *testing.T) {
	seed := authSeed("x")
	seed.IMDS.Region = "cn-shanghai"
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{
		args: []string{"--region=", "--metadata-proxy", e.ProxyURL(), "--cache-ttl", "1s"},
		env:  map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": "", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": ""},
	})
	if !strings.Contains(p.logs.String(), `msg="region from ECS metadata" region=cn-shanghai`) {
		t.Fatalf("the region was not discovered:\n%s", p.logs.String())
	}
	if n := e.CallsFor("imds", "region-id"); n != 1 {
		t.Fatalf("region-id read %d times, want once at startup", n)
	}
	for range 5 {
		p.mountOK(t, demoObjects, nil)
	}
	if n := e.CallsFor("imds", emulator.DemoIMDSRoleName); n != 1 {
		t.Fatalf("5 Mounts read the role's credentials %d times, want 1", n)
	}
	if n := e.CallsWithOutcome("imds", "MissingToken"); n != 0 {
		t.Fatalf("%d tokenless metadata requests; hardened mode sends none", n)
	}
	if e.CallsBy("kms", ecsRoleARN) == 0 {
		t.Fatalf("KMS was not called as the worker role: %+v", e.Counters())
	}
	if n := e.CallsFor("imds", "region-id"); n != 1 {
		t.Fatalf("region-id read %d times after Mounts, want still 1", n)
	}
}

func TestAuthServeWithoutRegionFailsClearly(t *testing.T) {
	out, err := runServeToExit(t, map[string]string{"ACCESS_KEY_ID": "LTAIx", "SECRET_ACCESS_KEY": "y", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"})
	if err == nil || !strings.Contains(out, "no region") || !strings.Contains(out, "--region") {
		t.Fatalf("metadata disabled: err=%v\n%s", err, out)
	}
	start := time.Now()
	out, err = runServeToExit(t, map[string]string{"ACCESS_KEY_ID": "LTAIx", "SECRET_ACCESS_KEY": "y"}, "--metadata-proxy", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(out, "could not be read from ECS metadata") || !strings.Contains(out, "--region") {
		t.Fatalf("metadata unreachable: err=%v\n%s", err, out)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("gave up after %s", d)
	}
}

// nodePublishSecretRef: the volume's own AccessKey, optionally assuming a
// role, works even when the provider has no identity of its own.
func TestAuthNodePublishSecretRef(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	p := startProvider(t, e, providerConfig{env: map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": ""}})
	if !strings.Contains(p.logs.String(), "the provider has no identity of its own") {
		t.Fatalf("startup does not say the provider has no identity:\n%s", p.logs.String())
	}
	noCalls(t, e, "a Mount with no identity at all", func() {
		_, err := p.mountPod(t, defaultPod, demoObjects, nil)
		wantRefused(t, err, codes.Unauthenticated, "no credentials", "nodePublishSecretRef")
	})
	withRole := map[string]string{"access_key": emulator.DemoAccessKeyID, "access_secret": emulator.DemoAccessKeySecret, "role_arn": emulator.DemoRoleARN}
	for range 5 {
		p.mountPodOK(t, defaultPod, demoObjects, withRole)
	}
	if n := e.CallsFor("sts", emulator.DemoRoleARN); n != 1 {
		t.Fatalf("5 Mounts with role_arn made %d AssumeRole calls, want 1", n)
	}
	if e.CallsBy("kms", emulator.DemoRoleARN) != 1 || e.CallsBy("kms", emulator.DemoPrincipal) != 0 {
		t.Fatalf("KMS must be called once, as the role: %+v", e.Counters())
	}
	// The same key without role_arn is another identity: its own fetch.
	plain := map[string]string{"access_key": emulator.DemoAccessKeyID, "access_secret": emulator.DemoAccessKeySecret}
	p.mountPodOK(t, defaultPod, demoObjects, plain)
	if e.CallsBy("kms", emulator.DemoPrincipal) != 1 {
		t.Fatalf("the plain key must fetch for itself, not reuse the role's cache: %+v", e.Counters())
	}
	noCalls(t, e, "a half nodePublishSecretRef", func() {
		_, err := p.mountPod(t, defaultPod, demoObjects, map[string]string{"access_key": emulator.DemoAccessKeyID})
		wantRefused(t, err, codes.InvalidArgument, "access_secret")
	})
}

// crossAccountRoleArn assumes a role on top of whichever identity was chosen.
func TestAuthCrossAccountRole(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	p := startProvider(t, e, providerConfig{env: map[string]string{"ALICLOUD_OIDC_PROVIDER_ARN": emulator.DemoOIDCProviderARN}})
	cross := objects("- objectName: cross-db", "  crossAccountRoleArn: "+roleCross, "- objectName: demo-db")
	for range 5 {
		files := p.mountPodOK(t, defaultPod, cross, nil)
		if string(files["cross-db"].data) != valueCross {
			t.Fatal("wrong cross-account value")
		}
	}
	if n := e.CallsFor("sts", roleCross); n != 1 {
		t.Fatalf("5 Mounts made %d AssumeRole calls into the other account, want 1", n)
	}
	if e.CallsBy("kms", roleCross) != 1 || e.CallsFor("kms", "demo-db") != 1 || e.CallsBy("kms", emulator.DemoPrincipal) != 1 {
		t.Fatalf("cross-db must be read as the other account's role, demo-db as the base: %+v", e.Counters())
	}
	// A role that does not trust the base identity: refused, and the object
	// is never fetched.
	untrusting := objects("- objectName: team-a/db", "  crossAccountRoleArn: "+roleTeamA)
	_, err := p.mountPod(t, defaultPod, untrusting, nil)
	wantRefused(t, err, codes.Unauthenticated, "crossAccountRoleArn", roleTeamA)
	if e.CallsFor("kms", "team-a/db") != 0 {
		t.Fatal("the object was fetched although the role was refused")
	}
	// On top of per-pod RRSA: team-a's pod role may assume the cross role.
	tok := podToken(subTeamA, time.Hour, "cross")
	files := p.mountPodOK(t, podA, perPod(objects("- objectName: cross-db", "  crossAccountRoleArn: "+roleCross), roleTeamA, tok), nil)
	if string(files["cross-db"].data) != valueCross || e.CallsFor("sts", roleCross) != 2 {
		t.Fatalf("cross-account on top of per-pod RRSA: %+v", e.Counters())
	}
}

// Per-pod RRSA: the pod's own token, exchanged once, never a fallback.
func TestAuthPerPodRRSA(t *testing.T) {
	exact := podToken(subTeamA, time.Hour, "exact")
	e := startEmulator(t, authSeed(exact))
	tmp := t.TempDir()
	p := startProvider(t, e, providerConfig{
		args: []string{"--cache-ttl", "1m"},
		// The provider has an identity of its own (the demo AccessKey):
		// per-pod failures must never fall back to it.
		env: map[string]string{"ALICLOUD_OIDC_PROVIDER_ARN": emulator.DemoOIDCProviderARN, "TMPDIR": tmp},
	})
	teamA := objects("- objectName: team-a/db", "- objectName: shared")
	tokA := podToken(subTeamA, time.Hour, "a1")
	tokB := podToken(subTeamB, time.Hour, "b1")

	t.Run("token in attributes, exchanged once", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := p.mountPod(t, podA, perPod(teamA, roleTeamA, tokA), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if files := writeLikeDriver(t, resp); string(files["team-a_db"].data) != valueTeamA {
					t.Error("wrong content")
				}
			}()
		}
		wg.Wait()
		for range 5 { // one after the other too: cached, not only coalesced
			p.mountPodOK(t, podA, perPod(teamA, roleTeamA, tokA), nil)
		}
		if n := e.CallsFor("sts", roleTeamA); n != 1 {
			t.Fatalf("15 Mounts with one token made %d AssumeRoleWithOIDC calls, want 1", n)
		}
		if e.CallsBy("kms", roleTeamA) != 2 || e.CallsBy("kms", emulator.DemoPrincipal) != 0 {
			t.Fatalf("KMS must be read as team-a's role only: %+v", e.Counters())
		}
		if !strings.Contains(p.logs.String(), "mode=pod-rrsa principal="+roleTeamA) {
			t.Fatal("the identity line does not name per-pod RRSA")
		}
	})

	t.Run("token in secrets, rotated", func(t *testing.T) {
		tokA2 := podToken(subTeamA, 2*time.Hour, "a2")
		params := merge(teamA, "usePodServiceAccountToken", "true", "roleArn", roleTeamA)
		kmsBefore := e.Calls("kms")
		files := p.mountPodOK(t, podA, params, map[string]string{"csi.storage.k8s.io/serviceAccount.tokens": tokensValue(tokA2)})
		if string(files["shared"].data) != valueShared {
			t.Fatal("wrong content")
		}
		if n := e.CallsFor("sts", roleTeamA); n != 2 {
			t.Fatalf("a new token costs one exchange: %d in all, want 2", n)
		}
		if e.Calls("kms") != kmsBefore {
			t.Fatal("the same pod identity with a new token must hit the cache")
		}
	})

	t.Run("two pods with different roles never share values", func(t *testing.T) {
		// Pod B asks for team-a's secret, cached for pod A: it must be
		// fetched as team-b's role, which is refused.
		deniedBefore := e.CallsBy("kms", roleTeamB)
		_, err := p.mountPod(t, podB, perPod(objects("- objectName: team-a/db"), roleTeamB, tokB), nil)
		wantRefused(t, err, codes.PermissionDenied, "team-a/db")
		if e.CallsBy("kms", roleTeamB) != deniedBefore+1 {
			t.Fatal("pod B was answered from pod A's cache")
		}
		// A secret both may read is fetched once per role.
		sharedBefore := e.CallsFor("kms", "shared")
		files := p.mountPodOK(t, podB, perPod(objects("- objectName: shared", "- objectName: team-b/db"), roleTeamB, tokB), nil)
		if string(files["team-b_db"].data) != valueTeamB || string(files["shared"].data) != valueShared {
			t.Fatal("wrong content for pod B")
		}
		if e.CallsFor("kms", "shared") != sharedBefore+1 {
			t.Fatal("pod B's shared value came from pod A's cache entry")
		}
		// And pod A still cannot read team-b's secret.
		_, err = p.mountPod(t, podA, perPod(objects("- objectName: team-b/db"), roleTeamA, tokA), nil)
		wantRefused(t, err, codes.PermissionDenied)
	})

	t.Run("a role that does not trust the token is refused", func(t *testing.T) {
		kmsBefore := e.Calls("kms")
		_, err := p.mountPod(t, podA, perPod(objects("- objectName: team-b/db"), roleTeamB, tokA), nil)
		wantRefused(t, err, codes.PermissionDenied, "NoPermission", roleTeamB)
		if e.Calls("kms") != kmsBefore {
			t.Fatal("KMS was called with a refused token")
		}
	})

	t.Run("a missing token fails closed", func(t *testing.T) {
		noCalls(t, e, "a per-pod Mount without a token", func() {
			_, err := p.mountPod(t, podA, perPod(teamA, roleTeamA, ""), nil)
			wantRefused(t, err, codes.Unauthenticated, "tokenRequests", "rather than use another identity")
			// Even with a nodePublishSecretRef at hand.
			_, err = p.mountPod(t, podA, perPod(teamA, roleTeamA, ""), map[string]string{"access_key": emulator.DemoAccessKeyID, "access_secret": emulator.DemoAccessKeySecret})
			wantRefused(t, err, codes.Unauthenticated, "tokenRequests")
		})
	})

	t.Run("a missing role fails closed", func(t *testing.T) {
		noCalls(t, e, "a per-pod Mount without a role", func() {
			_, err := p.mountPod(t, podA, perPod(teamA, "", tokA), nil)
			wantRefused(t, err, codes.InvalidArgument, "roleArn")
		})
	})

	t.Run("another pod's token is refused", func(t *testing.T) {
		noCalls(t, e, "pod A presenting pod B's token", func() {
			_, err := p.mountPod(t, podA, perPod(objects("- objectName: team-b/db"), roleTeamB, tokB), nil)
			wantRefused(t, err, codes.PermissionDenied, "not to the mounting pod's service account")
		})
	})

	t.Run("a forged token never reaches a cached identity", func(t *testing.T) {
		shared := objects("- objectName: shared")
		p.mountPodOK(t, podA, perPod(shared, roleExact, exact), nil)
		stsBefore, kmsBefore := e.CallsFor("sts", roleExact), e.Calls("kms")
		forged := podToken(subTeamA, time.Hour, "forged") // same subject and role, other bytes
		_, err := p.mountPod(t, podA, perPod(shared, roleExact, forged), nil)
		wantRefused(t, err, codes.PermissionDenied, "InvalidParameter.OIDCToken")
		if e.CallsFor("sts", roleExact) != stsBefore+1 || e.Calls("kms") != kmsBefore {
			t.Fatalf("the forged token must go to STS and nowhere else: %+v", e.Counters())
		}
	})

	t.Run("tokens stay in memory", func(t *testing.T) {
		entries, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Fatalf("the provider wrote %d files to its TMPDIR", len(entries))
		}
		// The harness also checks the logs for every token (noteSensitive).
	})
}

// A per-object kmsEndpoint comes from untrusted attributes: only Alibaba
// Cloud's patterns and --allowed-kms-endpoints are dialled.
func TestAuthKMSEndpointAllowList(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	p := startProvider(t, e, providerConfig{args: []string{"--allowed-kms-endpoints", "127.0.0.1:*", "--kms-ca-file", e.CAFile()}})
	for _, ep := range []string{"evil.example.com", "kms.cn-hangzhou.aliyuncs.com.evil.example.com", "169.254.169.254:80", "100.100.100.200", "localhost:" + strings.Split(e.TLSEndpoint(), ":")[1]} {
		noCalls(t, e, "kmsEndpoint "+ep, func() {
			_, err := p.mountPod(t, defaultPod, objects("- objectName: demo-db", "  kmsEndpoint: "+ep), nil)
			wantRefused(t, err, codes.InvalidArgument, "not an Alibaba Cloud KMS endpoint", "--allowed-kms-endpoints")
		})
	}
	// An allowed instance gateway, over TLS with the instance CA.
	files := p.mountPodOK(t, defaultPod, objects("- objectName: demo-db", "  kmsEndpoint: "+e.TLSEndpoint()), nil)
	if string(files["demo-db"].data) != emulator.DemoSecretJSONValue {
		t.Fatal("wrong content through the allowed endpoint")
	}
}

// The namespace policy: with a shared identity, a namespace gets only what
// the policy gives it, refused before any upstream call; reloads apply.
func TestAuthNamespacePolicy(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(body string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(`rules:
  - namespace: team-a
    serviceAccount: app
    kms: ["team-a/*", "shared"]
  - namespace: "*"
    oos: ["test"]
`)
	p := startProvider(t, e, providerConfig{args: []string{"--policy", path, "--policy-reload-interval", "100ms"}})

	p.mountPodOK(t, podA, objects("- objectName: team-a/db", "- objectName: shared"), nil)
	p.mountPodOK(t, podB, objects("- objectName: test", "  objectType: oos"), nil)
	rule := `{namespace: "team-b", serviceAccount: "app", kms: ["team-a/db"]}`
	noCalls(t, e, "a Mount the policy refuses", func() {
		_, err := p.mountPod(t, podB, objects("- objectName: test", "  objectType: oos", "- objectName: team-a/db"), nil)
		wantRefused(t, err, codes.PermissionDenied, "team-a/db", "add the rule "+rule)
		// The service account matters too.
		_, err = p.mountPod(t, pod{name: "x", namespace: "team-a", serviceAccount: "default", uid: "u"}, objects("- objectName: shared"), nil)
		wantRefused(t, err, codes.PermissionDenied, `serviceAccount: "default"`)
		// So does the STS identity: per-pod RRSA is checked by the policy first.
		_, err = p.mountPod(t, podB, perPod(objects("- objectName: team-a/db"), roleTeamB, podToken(subTeamB, time.Hour, "pol")), nil)
		wantRefused(t, err, codes.PermissionDenied, "add the rule")
		// A role to assume is a grant too: refused unless a rule lists it.
		_, err = p.mountPod(t, podA, objects("- objectName: team-a/db", "  crossAccountRoleArn: acs:ram::999999999999:role/other"), nil)
		wantRefused(t, err, codes.PermissionDenied, `roles: ["acs:ram::999999999999:role/other"]`)
	})

	// Add the rule: the next reload lets pod B in.
	write(`rules:
  - namespace: team-a
    serviceAccount: app
    kms: ["team-a/*", "shared"]
  - namespace: "*"
    oos: ["test"]
  - ` + rule + "\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := p.mountPod(t, podB, objects("- objectName: team-a/db"), nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the added rule never took effect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A bad file keeps the last good policy, and is logged once.
	write("rules:\n  - namespace: team-b\n    kms: [\"*\"]\n    typo: true\n")
	time.Sleep(500 * time.Millisecond)
	p.mountPodOK(t, podB, objects("- objectName: team-a/db"), nil)
	_, err := p.mountPod(t, podB, objects("- objectName: team-b/db"), nil)
	wantRefused(t, err, codes.PermissionDenied)
	if n := p.logLines("keeping the last good policy", 1); n != 1 {
		t.Fatalf("the bad file was logged %d times, want once", n)
	}

	// A bad file at startup stops the provider.
	out, err := runServeToExit(t, map[string]string{"ACCESS_KEY_ID": "LTAIx", "SECRET_ACCESS_KEY": "y", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}, "--region", "cn-hangzhou", "--policy", path)
	if err == nil || !strings.Contains(out, path) || !strings.Contains(out, "typo") {
		t.Fatalf("bad policy at startup: err=%v\n%s", err, out)
	}
}

// --deny-provider-identity: every volume must bring its own identity.
func TestAuthDenyProviderIdentity(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	p := startProvider(t, e, providerConfig{args: []string{"--deny-provider-identity"}})
	noCalls(t, e, "a Mount that would use the provider's identity", func() {
		_, err := p.mountPod(t, defaultPod, demoObjects, nil)
		wantRefused(t, err, codes.PermissionDenied, "--deny-provider-identity", "usePodServiceAccountToken")
	})
	p.mountPodOK(t, defaultPod, demoObjects, map[string]string{"access_key": emulator.DemoAccessKeyID, "access_secret": emulator.DemoAccessKeySecret})
}
