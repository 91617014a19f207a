package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// incumbentKeys are the keys of the incumbent chart (Alibaba's own provider,
// chart v0.6.0) that this chart did not have before 0.2.0; each is accepted
// now with the meaning docs/migration.md gives it.
var incumbentKeys = []string{
	"logFormatJSON", "linux.healthzPort", "linux.healthzPath", "linux.healthzTimeout",
	"linux.kubeletRootDir", "rrsa.accountId", "rrsa.clusterId",
}

// TestIncumbentValuesFileHasItsKeys keeps testdata/incumbent-values.yaml, which
// the "incumbent-values" scenario of TestChart renders unchanged, carrying
// every one of the incumbent's keys, and none of the incumbent's own image.
func TestIncumbentValuesFileHasItsKeys(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "incumbent-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	keys := leafKeys("", values)
	for _, k := range incumbentKeys {
		found := false
		for _, have := range keys {
			if have == k {
				found = true
			}
		}
		if !found {
			t.Errorf("testdata/incumbent-values.yaml lacks the incumbent's key %s", k)
		}
	}
	if strings.Contains(string(raw), "secrets-store-csi-driver-provider-alibaba-cloud:") {
		t.Error("testdata/incumbent-values.yaml names the incumbent's provider image, which the chart refuses")
	}
}

// TestChartRejectsIncumbentValues: the incumbent's keys are refused, with a
// message naming the keys involved, where taking them would not do what they
// say: a contradiction with this chart's own key, a path or directory this
// provider cannot honour, half of the account/cluster pair, a number that has
// lost digits, and the incumbent's own image.
func TestChartRejectsIncumbentValues(t *testing.T) {
	chart := chartCopy(t)
	incumbent := filepath.Join("testdata", "incumbent-values.yaml")
	cases := []struct {
		name  string
		files []string // values files, before the --set pairs
		yaml  string   // a values file written for the case, after files
		sets  []string
		want  string
	}{
		{name: "logFormatJSON against logFormat=text", sets: []string{"logFormatJSON=true", "logFormat=text"},
			want: "logFormat=text and logFormatJSON=true"},
		{name: "incumbent file with logFormat=text", files: []string{incumbent}, sets: []string{"logFormat=text"},
			want: "logFormat=text and logFormatJSON=true"},
		{name: "healthzPort against healthPort", sets: []string{"linux.healthPort=9000", "linux.healthzPort=8989"},
			want: "linux.healthPort (9000) and linux.healthzPort (8989"},
		{name: "incumbent file with another healthPort", files: []string{incumbent}, sets: []string{"linux.healthPort=9000"},
			want: "linux.healthPort (9000) and linux.healthzPort (8989"},
		{name: "healthzPort not a port", sets: []string{"linux.healthzPort=99999"}, want: "healthzPort"},
		{name: "healthzPort string not a port", yaml: "linux:\n  healthzPort: \"99999\"\n", want: "linux.healthzPort (99999) is not a port"},
		{name: "healthzPath other than /healthz", sets: []string{"linux.healthzPath=/health"},
			want: "linux.healthzPath=/health"},
		{name: "healthzTimeout not a duration", sets: []string{"linux.healthzTimeout=5"}, want: "healthzTimeout"},
		{name: "kubeletRootDir other than the driver's default", sets: []string{"linux.kubeletRootDir=/data/kubelet"},
			want: "set secrets-store-csi-driver.linux.kubeletRootDir=/data/kubelet"},
		{name: "kubeletRootDir other than the driver's setting", sets: []string{"linux.kubeletRootDir=/var/lib/kubelet",
			"secrets-store-csi-driver.linux.kubeletRootDir=/data/kubelet"},
			want: "secrets-store-csi-driver.linux.kubeletRootDir (/data/kubelet)"},
		{name: "accountId without clusterId", sets: []string{"rrsa.accountId=123456789012"},
			want: "rrsa.accountId and rrsa.clusterId go together"},
		{name: "clusterId without accountId", sets: []string{"rrsa.clusterId=c0123456789abcdef"},
			want: "rrsa.accountId and rrsa.clusterId go together"},
		{name: "accountId as a YAML number", yaml: "rrsa:\n  accountId: 1234567890123456789\n  clusterId: c0123456789abcdef\n",
			want: "rrsa.accountId is a YAML number"},
		{name: "accountId not digits", sets: []string{"rrsa.accountId=acct", "rrsa.clusterId=c1"}, want: "accountId"},
		{name: "clusterId not a name", sets: []string{"rrsa.accountId=1", "rrsa.clusterId=c/1"}, want: "clusterId"},
		{name: "accountId also in extraEnv", sets: []string{"rrsa.accountId=1", "rrsa.clusterId=c1",
			"extraEnv[0].name=ALICLOUD_ACCOUNT_ID", "extraEnv[0].value=2"}, want: "ALICLOUD_ACCOUNT_ID is set both"},
		{name: "account and cluster against another OIDC provider ARN", sets: []string{"rrsa.accountId=1", "rrsa.clusterId=c1",
			"extraEnv[0].name=ALICLOUD_OIDC_PROVIDER_ARN", "extraEnv[0].value=acs:ram::2:oidc-provider/ack-rrsa-c1"},
			want: "name different OIDC providers"},
		{name: "rrsa.enable without the role", files: []string{incumbent}, sets: []string{"envVarsFromSecret=null"},
			want: "ALICLOUD_ROLE_ARN"},
		{name: "the incumbent's own image", files: []string{incumbent},
			sets: []string{"linux.image.repository=registry.cn-hangzhou.aliyuncs.com/acs/secrets-store-csi-driver-provider-alibaba-cloud"},
			want: "is the incumbent's image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"template", releaseName, chart, "--namespace", namespace, "--kube-version", kubeVersions[len(kubeVersions)-1]}
			for _, f := range tc.files {
				args = append(args, "-f", f)
			}
			if tc.yaml != "" {
				f := filepath.Join(t.TempDir(), "values.yaml")
				writeFile(t, f, tc.yaml, 0o644)
				args = append(args, "-f", f)
			}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			_, err := runHelm(t, args...)
			if err == nil {
				t.Fatalf("rendered without error; want a failure mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}
