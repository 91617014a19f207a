package k8s

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/yaml"
)

const csiDriverName = "secrets-store.csi.k8s.io"

// The manifests every example set must have (the list).
var wantExamples = []string{
	"secretstore.yaml", "deploy.yaml", "spc-rrsa.yaml", "spc-worker-role.yaml",
	"spc-accesskey-role.yaml", "spc-node-publish-secret.yaml", "spc-pod-rrsa.yaml",
	"spc-jmespath.yaml", "spc-sync-secret.yaml",
	"alibaba-credentials.yaml", "alibaba-credentials-rrsa.yaml",
}

// loadExamples decodes every manifest in examples/ (not the values-*.yaml
// files, which are chart values) strictly, keyed by file name.
func loadExamples(t *testing.T) map[string][]runtime.Object {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "examples")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]runtime.Object{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".yaml") || strings.HasPrefix(name, "values-") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), "#") {
			t.Errorf("%s: start with a comment saying what it is for and how to apply it", name)
		}
		objs := decodeAll(t, name, string(raw))
		if len(objs) == 0 {
			t.Errorf("%s holds no object", name)
		}
		out[name] = objs
	}
	for _, w := range wantExamples {
		if _, ok := out[w]; !ok {
			t.Errorf("examples/%s is missing", w)
		}
	}
	return out
}

// checkSPC checks what the chart and the driver need of a class. Its
// parameters are parsed with the provider's own parser in
// examples/examples_test.go (root module), which also checks secretObjects.
func checkSPC(t *testing.T, where string, spc *secretsstorev1.SecretProviderClass) {
	t.Helper()
	if spc.Spec.Provider != "alibabacloud" {
		t.Errorf("%s: provider %q, want alibabacloud (the socket is alibabacloud.sock)", where, spc.Spec.Provider)
	}
	if strings.TrimSpace(spc.Spec.Parameters["objects"]) == "" {
		t.Errorf("%s: SecretProviderClass %s has no objects parameter", where, spc.Name)
	}
	for k := range spc.Spec.Parameters {
		if !slices.Contains([]string{"objects", "region", "pathTranslation", "usePodServiceAccountToken", "roleArn"}, k) {
			t.Errorf("%s: unknown parameter %q", where, k)
		}
	}
	for _, so := range spc.Spec.SecretObjects {
		if so.SecretName == "" || so.Type == "" || len(so.Data) == 0 {
			t.Errorf("%s: secretObjects entry %+v needs secretName, type and data", where, so)
		}
	}
}

func TestExamples(t *testing.T) {
	examples := loadExamples(t)

	classes := map[string]*secretsstorev1.SecretProviderClass{}
	for file, objs := range examples {
		for name, spc := range find[*secretsstorev1.SecretProviderClass](objs) {
			if _, dup := classes[name]; dup {
				t.Errorf("%s: SecretProviderClass %s is defined twice in examples/", file, name)
			}
			classes[name] = spc
			checkSPC(t, file, spc)
		}
	}

	// Every workload mounts a class of the examples the way the driver needs.
	for file, objs := range examples {
		secrets := find[*corev1.Secret](objs)
		accounts := find[*corev1.ServiceAccount](objs)
		for _, d := range find[*appsv1.Deployment](objs) {
			pod := d.Spec.Template.Spec
			csiVolumes := 0
			for _, v := range pod.Volumes {
				if v.CSI == nil {
					continue
				}
				csiVolumes++
				if v.CSI.Driver != csiDriverName || v.CSI.ReadOnly == nil || !*v.CSI.ReadOnly {
					t.Errorf("%s: volume %s: want driver %s, readOnly true", file, v.Name, csiDriverName)
				}
				spc, ok := classes[v.CSI.VolumeAttributes["secretProviderClass"]]
				if !ok {
					t.Errorf("%s: volume %s names SecretProviderClass %q, not in examples/", file, v.Name, v.CSI.VolumeAttributes["secretProviderClass"])
					continue
				}
				if ref := v.CSI.NodePublishSecretRef; ref != nil {
					s, ok := secrets[ref.Name]
					if !ok {
						t.Errorf("%s: nodePublishSecretRef %s is not in the same file", file, ref.Name)
					} else {
						for _, k := range []string{"access_key", "access_secret"} {
							if _, ok := s.StringData[k]; !ok {
								t.Errorf("%s: Secret %s lacks key %s", file, s.Name, k)
							}
						}
					}
				}
				if spc.Spec.Parameters["usePodServiceAccountToken"] == "true" {
					sa, ok := accounts[pod.ServiceAccountName]
					if !ok || sa.Annotations["ack.alibabacloud.com/role-arn"] == "" {
						t.Errorf("%s: per-pod RRSA needs the pod's ServiceAccount %q with annotation ack.alibabacloud.com/role-arn", file, pod.ServiceAccountName)
					}
				}
				for _, c := range pod.Containers {
					for _, m := range c.VolumeMounts {
						if m.Name == v.Name && !m.ReadOnly {
							t.Errorf("%s: %s mounts %s writable", file, c.Name, v.Name)
						}
					}
				}
			}
			if csiVolumes == 0 {
				t.Errorf("%s: Deployment %s mounts no CSI volume", file, d.Name)
			}
		}
	}
}

// TestExamplesFollowTheGuide pins what the user guide's step 3 shows.
func TestExamplesFollowTheGuide(t *testing.T) {
	examples := loadExamples(t)

	spc, ok := find[*secretsstorev1.SecretProviderClass](examples["secretstore.yaml"])["test-secrets"]
	if !ok {
		t.Fatal("secretstore.yaml: no SecretProviderClass test-secrets")
	}
	checkSPC(t, "secretstore.yaml", spc)
	// The guide's literal objects text (its meaning is checked by the
	// provider's parser in examples/examples_test.go).
	want := "- objectName: \"test\"\n- objectType: \"oos\"\n"
	if got := spc.Spec.Parameters["objects"]; got != want {
		t.Errorf("secretstore.yaml objects %q, want the guide's %q", got, want)
	}

	d, ok := find[*appsv1.Deployment](examples["deploy.yaml"])["nginx-deployment-basic"]
	if !ok {
		t.Fatal("deploy.yaml: no Deployment nginx-deployment-basic")
	}
	pod := d.Spec.Template.Spec
	v := volume(t, pod, "secrets-store-inline")
	if v.CSI == nil || v.CSI.VolumeAttributes["secretProviderClass"] != "test-secrets" {
		t.Errorf("deploy.yaml: volume %+v does not use test-secrets", v.VolumeSource)
	}
	m, ok := mountOf(container(t, pod, "nginx"), "secrets-store-inline")
	if !ok || m.MountPath != "/mnt/secrets-store" {
		t.Errorf("deploy.yaml: mount %+v, want /mnt/secrets-store", m)
	}
}

// TestExampleValuesMatchSecrets checks that each credential mode's values
// read keys that its example Secret has, in the namespace the chart runs in.
func TestExampleValuesMatchSecrets(t *testing.T) {
	examples := loadExamples(t)
	for values, secretFile := range map[string]string{
		"values-rrsa.yaml":           "alibaba-credentials-rrsa.yaml",
		"values-accesskey-role.yaml": "alibaba-credentials.yaml",
	} {
		raw, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", values))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			EnvVarsFromSecret map[string]struct {
				SecretKeyRef string `json:"secretKeyRef"`
				Key          string `json:"key"`
			} `json:"envVarsFromSecret"`
		}
		if err := yaml.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		if len(v.EnvVarsFromSecret) == 0 {
			t.Errorf("%s sets no envVarsFromSecret", values)
		}
		secrets := find[*corev1.Secret](examples[secretFile])
		for name, ref := range v.EnvVarsFromSecret {
			s, ok := secrets[ref.SecretKeyRef]
			if !ok {
				t.Errorf("%s: %s reads Secret %q, which %s does not define", values, name, ref.SecretKeyRef, secretFile)
				continue
			}
			if s.Namespace != namespace {
				t.Errorf("%s: Secret %s is in %q; the provider runs in %s", secretFile, s.Name, s.Namespace, namespace)
			}
			if _, ok := s.StringData[ref.Key]; !ok {
				if _, ok := s.Data[ref.Key]; !ok {
					t.Errorf("%s: %s reads key %q, missing from Secret %s in %s", values, name, ref.Key, s.Name, secretFile)
				}
			}
		}
	}
}
