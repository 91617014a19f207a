package auth

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// testCA signs every emulator of this package: Go reads SSL_CERT_FILE once,
// so it is set before the first TLS handshake, here.
var testCA *emulator.CA

func TestMain(m *testing.M) {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED", "ALIBABA_CLOUD_OIDC_TOKEN", "ALIBABA_CLOUD_IMDSV1_DISABLED"} {
		_ = os.Unsetenv(k)
	}
	ca, err := emulator.NewCA()
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "auth-test-ca-")
	if err != nil {
		panic(err)
	}
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, ca.CertPEM, 0o644); err != nil {
		panic(err)
	}
	_ = os.Setenv("SSL_CERT_FILE", file)
	testCA = ca
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code != 0 {
		fmt.Fprintln(os.Stderr, "auth tests failed")
	}
	os.Exit(code)
}

// startEmulator starts an emulator signed by testCA.
func startEmulator(t *testing.T, seed *emulator.Seed, opts emulator.Options) *emulator.Emulator {
	t.Helper()
	if seed == nil {
		seed = emulator.DemoSeed()
	}
	opts.CA = testCA
	e, err := emulator.New(seed, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// envMap is a Getenv over a map.
func envMap(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}
