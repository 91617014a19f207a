package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// One AssumeRole session for many Mounts shows as one credential refresh.
func TestCredentialRefreshMetric(t *testing.T) {
	e := startEmulator(t, authSeed("x"))
	addr := freeAddr(t)
	p := startProvider(t, e, providerConfig{
		args: []string{"--metrics-addr", addr},
		env:  map[string]string{"ALICLOUD_ROLE_ARN": emulator.DemoRoleARN},
	})
	for i := 0; i < 3; i++ {
		p.mountOK(t, objects("- objectName: demo-db"), nil)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	want := `alibabacloud_provider_credential_refreshes_total{mode="access-key-role",result="ok"} 1`
	if !strings.Contains(string(body), want) {
		var got []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.Contains(l, "credential_refreshes") {
				got = append(got, l)
			}
		}
		t.Fatalf("want %s, got %v", want, got)
	}
}
