package emulator_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// testCA is shared by every emulator of this test binary: Go reads
// SSL_CERT_FILE once, before the first TLS handshake, so the CA must exist
// before any test runs.
var testCA *emulator.CA

func TestMain(m *testing.M) {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"} {
		os.Unsetenv(k)
	}
	// The ECS provider builder refuses to build when this is set.
	os.Unsetenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED")
	ca, err := emulator.NewCA()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "emulator-test-ca-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SSL_CERT_FILE", caFile)
	testCA = ca
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// start runs an emulator for one test (DemoSeed when seed is nil).
func start(t *testing.T, seed *emulator.Seed, opts emulator.Options) *emulator.Emulator {
	t.Helper()
	if seed == nil {
		seed = emulator.DemoSeed()
	}
	opts.CA = testCA
	var mu sync.Mutex
	done := false
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			if !done {
				t.Logf(format, args...)
			}
		}
	}
	e, err := emulator.New(seed, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return e
}

func akCred(t *testing.T, id, secret string) credentials.Credential {
	t.Helper()
	c, err := credentials.NewCredential(&credentials.Config{
		Type: tea.String("access_key"), AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func demoCred(t *testing.T) credentials.Credential {
	return akCred(t, emulator.DemoAccessKeyID, emulator.DemoAccessKeySecret)
}

// config points an SDK client at the plain HTTP port (docs/emulator.md,
// "Pointing the SDK clients at it").
func config(e *emulator.Emulator, cred credentials.Credential, mods ...func(*openapi.Config)) *openapi.Config {
	c := &openapi.Config{
		Endpoint:       tea.String(e.Endpoint()),
		Protocol:       tea.String("HTTP"),
		RegionId:       tea.String("cn-hangzhou"),
		ConnectTimeout: tea.Int(2000),
		ReadTimeout:    tea.Int(5000),
		Credential:     cred,
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func kmsClient(t *testing.T, e *emulator.Emulator, cred credentials.Credential, mods ...func(*openapi.Config)) *kms.Client {
	t.Helper()
	c, err := kms.NewClient(config(e, cred, mods...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func oosClient(t *testing.T, e *emulator.Emulator, cred credentials.Credential, mods ...func(*openapi.Config)) *oos.Client {
	t.Helper()
	c, err := oos.NewClient(config(e, cred, mods...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getSecret(c *kms.Client, name string, mods ...func(*kms.GetSecretValueRequest)) (*kms.GetSecretValueResponseBody, error) {
	req := &kms.GetSecretValueRequest{SecretName: tea.String(name)}
	for _, m := range mods {
		m(req)
	}
	resp, err := c.GetSecretValue(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func getParam(c *oos.Client, name string, mods ...func(*oos.GetSecretParameterRequest)) (*oos.GetSecretParameterResponseBodyParameter, error) {
	req := &oos.GetSecretParameterRequest{Name: tea.String(name), WithDecryption: tea.Bool(true)}
	for _, m := range mods {
		m(req)
	}
	resp, err := c.GetSecretParameter(req)
	if err != nil {
		return nil, err
	}
	return resp.Body.Parameter, nil
}

// wantSDKError asserts err is a *tea.SDKError with that code and status.
func wantSDKError(t *testing.T, err error, code string, status int) *tea.SDKError {
	t.Helper()
	if err == nil {
		t.Fatalf("want SDKError %s/%d, got success", code, status)
	}
	var se *tea.SDKError
	if !errors.As(err, &se) {
		t.Fatalf("want *tea.SDKError %s/%d, got %T: %v", code, status, err, err)
	}
	if tea.StringValue(se.Code) != code || tea.IntValue(se.StatusCode) != status {
		t.Fatalf("want SDKError %s/%d, got %s/%d: %v", code, status, tea.StringValue(se.Code), tea.IntValue(se.StatusCode), err)
	}
	return se
}

func mustSecret(t *testing.T, c *kms.Client, name string, mods ...func(*kms.GetSecretValueRequest)) *kms.GetSecretValueResponseBody {
	t.Helper()
	b, err := getSecret(c, name, mods...)
	if err != nil {
		t.Fatalf("GetSecretValue(%s): %v", name, err)
	}
	return b
}

// eventually polls cond (server-side bookkeeping finishes after the client
// has its answer) for at most two seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stages(b *kms.GetSecretValueResponseBody) []string {
	if b.VersionStages == nil {
		return nil
	}
	return tea.StringSliceValue(b.VersionStages.VersionStage)
}
