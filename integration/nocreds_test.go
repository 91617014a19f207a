package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// No credential source configured and ECS metadata unreachable: serve said
// nothing at start (it logged the worker RAM role as its identity) and
// /readyz failed with the metadata client's error, calling metadata on every
// probe. Now one WARN line at start says there are no credentials and names
// the ways to configure them, /readyz gives that reason, and probes read a
// result checked in the background. With --deny-provider-identity none of
// it applies: volumes bring their own identities.
func TestNoCredentialsSaidAtStartAndInReadiness(t *testing.T) {
	e := startEmulator(t, nil)
	e.SetFault(emulator.Fault{Route: "imds", Kind: emulator.FaultReset})
	noCreds := map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": "", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": ""}
	p := startOps(t, e, providerConfig{args: []string{"--metadata-proxy", e.ProxyURL()}, env: noCreds})

	var warn []string
	eventually(t, 10*time.Second, "no WARN line about missing credentials at start", func() bool {
		warn = nil
		for _, l := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "no credentials") {
				warn = append(warn, l)
			}
		}
		return len(warn) > 0
	})
	if len(warn) != 1 {
		t.Errorf("%d WARN lines about missing credentials, want 1:\n%s", len(warn), strings.Join(warn, "\n"))
	}
	for _, way := range []string{"ACCESS_KEY_ID", "ALICLOUD_ROLE_ARN", "worker RAM role", "nodePublishSecretRef", "usePodServiceAccountToken"} {
		if !strings.Contains(warn[0], way) {
			t.Errorf("the WARN line does not name %q:\n%s", way, warn[0])
		}
	}

	t.Logf("start line: %s", warn[0])
	before := e.Calls("imds")
	for range 20 {
		code, body := httpGet(t, "http://"+p.healthAddr+"/readyz")
		if code != 503 || !strings.Contains(body, "credentials: FAIL: no credentials") || !strings.Contains(body, "socket: ok") {
			t.Fatalf("/readyz without credentials: %d %s", code, body)
		}
	}
	_, body := httpGet(t, "http://"+p.healthAddr+"/readyz")
	t.Logf("/readyz: %s", body)
	if n := e.Calls("imds") - before; n > 6 {
		t.Errorf("20 /readyz probes made %d ECS metadata calls: probes must read a result checked in the background", n)
	}

	t.Run("deny-provider-identity", func(t *testing.T) {
		deny := startOps(t, e, providerConfig{args: []string{"--metadata-proxy", e.ProxyURL(), "--deny-provider-identity"}, env: noCreds})
		if code, body := httpGet(t, "http://"+deny.healthAddr+"/readyz"); code != 200 {
			t.Fatalf("/readyz with --deny-provider-identity: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond)
		if strings.Contains(deny.logs.String(), "level=WARN") {
			t.Errorf("a WARN with --deny-provider-identity:\n%s", deny.logs.String())
		}
	})
}
