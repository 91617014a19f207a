package integration

// The incumbent's published SecretProviderClasses (Alibaba's own provider,
// v0.6.0: its examples/ directory and its README's jmesPath example), copied
// unchanged into testdata/incumbent/, mounted through the real binary's
// socket against the emulator: a cluster switching providers keeps its
// classes (docs/migration.md).

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// What the incumbent's examples name, seeded in the emulator.
const (
	incumbentCrossRole = "acs:ram::123456789012:role/cross-account-kms-access-role"
	incumbentPodSARole = "acs:ram::123456789012:role/pod-sa-kms-access-role"
	incumbentPodSASub  = "system:serviceaccount:default:app-pod-sa"
	// The AccessKey pair in the node-publish example's Secret
	// (alibaba-credentials: access_key, access_secret).
	incumbentNPKeyID     = "LTAInodePublishKey000001"
	incumbentNPKeySecret = "nodePublishKeySecret00000000001"
	incumbentNPPrincipal = "node-publish-user"

	incumbentAppConfig = `{"username": "admin", "password": "s3cret-admin-pw", "host": "db.example.com"}`
)

var incumbentValues = map[string]string{
	"test-kms":               "test-kms-value-1234",
	"app/database-password":  "app-database-password-0001",
	"app/api-key":            "app-api-key-000000000002",
	"prod/database-password": "prod-database-password-003",
	"prod/api-key":           "prod-api-key-0000000004",
	"my-secret":              "my-secret-value-0000005",
	"app-config":             incumbentAppConfig,
}

const incumbentOOSValue = "SecretParameter-test-oos-6"

func incumbentSeed() *emulator.Seed {
	s := emulator.DemoSeed()
	for name, v := range incumbentValues {
		s.Secrets = append(s.Secrets, emulator.Secret{Name: name, Value: v})
	}
	s.Parameters = append(s.Parameters, emulator.Parameter{Name: "test-oos", Value: incumbentOOSValue})
	s.AccessKeys = append(s.AccessKeys, emulator.AccessKey{ID: incumbentNPKeyID, Secret: incumbentNPKeySecret, Principal: incumbentNPPrincipal})
	s.Roles = append(s.Roles,
		emulator.Role{ARN: incumbentCrossRole, TrustedPrincipals: []string{emulator.DemoPrincipal}},
		emulator.Role{ARN: incumbentPodSARole, OIDCProviderARN: emulator.DemoOIDCProviderARN, OIDCSubjects: []string{incumbentPodSASub}},
	)
	s.Policies = map[string]emulator.Policy{
		incumbentCrossRole:   {Allow: map[string][]string{"kms:GetSecretValue": {"prod/*"}}},
		incumbentPodSARole:   {Allow: map[string][]string{"kms:GetSecretValue": {"test-kms"}}},
		incumbentNPPrincipal: {Allow: map[string][]string{"kms:GetSecretValue": {"app/*"}}},
	}
	noteSensitive(incumbentNPKeySecret, "s3cret-admin-pw")
	return s
}

// incumbentClass reads one of the incumbent's files through the provider's
// one class loader (spc) and returns its name, namespace and parameters, as
// the driver passes them.
func incumbentClass(t *testing.T, file string) (name, namespace string, params map[string]string) {
	t.Helper()
	classes, err := spc.Load([]string{filepath.Join("testdata", "incumbent", file)}, nil)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(classes) != 1 {
		t.Fatalf("%s: %d classes, want 1", file, len(classes))
	}
	c := classes[0]
	ns := c.Namespace
	if ns == "" {
		ns = "default"
	}
	return c.Name, ns, c.Parameters
}

func TestIncumbentExampleClassesMountUnchanged(t *testing.T) {
	e := startEmulator(t, incumbentSeed())
	// The provider's own identity is the demo AccessKey (the examples for
	// AK/SK, RAM role, ECS RAM role and provider RRSA differ only in the
	// provider's environment, not in their classes); per-pod RRSA needs the
	// cluster's OIDC provider, as the incumbent's chart sets it.
	p := startProvider(t, e, providerConfig{env: map[string]string{"ALICLOUD_OIDC_PROVIDER_ARN": emulator.DemoOIDCProviderARN}})

	type want struct {
		files    map[string]string // file -> content
		versions map[string]string // object version id -> version
		calledBy string            // the principal KMS saw
		// cached: an earlier class named the same objects for the same
		// identity, so the node-wide cache answers without a KMS call.
		cached bool
	}
	cases := []struct {
		file    string
		pod     string
		sa      string
		secrets map[string]string
		attrs   map[string]string // the pod's volume context, beyond the class
		want    want
	}{
		{file: "secretproviderclass.yaml", want: want{
			files:    map[string]string{"test-kms": incumbentValues["test-kms"], "test-oos": incumbentOOSValue},
			versions: map[string]string{"kms/test-kms": "v1", "oos/test-oos": "1"}, // OOS: the real ParameterVersion
			calledBy: emulator.DemoPrincipal,
		}},
		{file: "ak-sk-secretproviderclass.yaml", want: want{
			files:    map[string]string{"db-password": incumbentValues["app/database-password"], "api-key": incumbentValues["app/api-key"]},
			calledBy: emulator.DemoPrincipal,
		}},
		{file: "ram-role-secretproviderclass.yaml", want: want{
			files:    map[string]string{"db-password": incumbentValues["app/database-password"], "api-key": incumbentValues["app/api-key"]},
			calledBy: emulator.DemoPrincipal, cached: true,
		}},
		{file: "ecs-ram-role-secretproviderclass.yaml", want: want{
			files:    map[string]string{"db-password": incumbentValues["app/database-password"], "api-key": incumbentValues["app/api-key"]},
			calledBy: emulator.DemoPrincipal, cached: true,
		}},
		{file: "provider-rrsa-secretproviderclass.yaml", want: want{
			files:    map[string]string{"my-secret": incumbentValues["my-secret"]},
			calledBy: emulator.DemoPrincipal,
		}},
		{file: "cross-account-secretproviderclass.yaml", want: want{
			files:    map[string]string{"db-password": incumbentValues["prod/database-password"], "api-key": incumbentValues["prod/api-key"]},
			calledBy: incumbentCrossRole,
		}},
		{file: "node-publish-secretproviderclass.yaml", pod: "node-publish-secret-demo",
			// The example's nodePublishSecretRef: kubelet hands the
			// Secret's keys to the driver, which passes them on.
			secrets: map[string]string{"access_key": incumbentNPKeyID, "access_secret": incumbentNPKeySecret},
			want: want{
				files:    map[string]string{"db-password": incumbentValues["app/database-password"], "api-key": incumbentValues["app/api-key"]},
				calledBy: incumbentNPPrincipal,
			}},
		{file: "pod-sa-secretproviderclass.yaml", pod: "pod-sa-auth-demo", sa: "app-pod-sa",
			attrs: map[string]string{
				// The token kubelet requests for the pod (the driver's
				// tokenRequests, audience sts.aliyuncs.com).
				"csi.storage.k8s.io/serviceAccount.tokens": tokensValue(podToken(incumbentPodSASub, time.Hour, "incumbent")),
				// Stands in for the example's ServiceAccount annotation
				// ack.alibabacloud.com/role-arn, which the provider reads
				// from the Kubernetes API in a cluster; this test has none.
				"roleArn": incumbentPodSARole,
			},
			want: want{
				files:    map[string]string{"test-kms": incumbentValues["test-kms"]},
				calledBy: incumbentPodSARole,
			}},
		{file: "readme-jmespath.yaml", want: want{
			files: map[string]string{"app-config": incumbentAppConfig, "db-username": "admin",
				"db-password": "s3cret-admin-pw", "db-host": "db.example.com"},
			calledBy: emulator.DemoPrincipal,
		}},
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "incumbent"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(cases) {
		t.Fatalf("testdata/incumbent has %d files, the test covers %d", len(entries), len(cases))
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			name, ns, params := incumbentClass(t, tc.file)
			pd := pod{name: "incumbent-app", namespace: ns, serviceAccount: "default", uid: "cccccccc-0000-0000-0000-000000000003"}
			if tc.pod != "" {
				pd.name = tc.pod
			}
			if tc.sa != "" {
				pd.serviceAccount = tc.sa
			}
			attrs := merge(params, "secretProviderClass", name)
			for k, v := range tc.attrs {
				attrs[k] = v
			}
			kmsBefore := e.Calls("kms")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := p.mountAs(ctx, pd, attrs, tc.secrets)
			if err != nil {
				t.Fatalf("Mount of the unchanged class %s: %v", name, err)
			}
			files := writeLikeDriver(t, resp)
			if got, wantFiles := keys(files), keys(tc.want.files); strings.Join(got, ",") != strings.Join(wantFiles, ",") {
				t.Fatalf("files %v, want %v", got, wantFiles)
			}
			for f, v := range tc.want.files {
				if string(files[f].data) != v {
					t.Errorf("%s holds the wrong value", f)
				}
				if files[f].mode != 0o644 {
					t.Errorf("%s has mode %v, want the driver's 0644", f, files[f].mode)
				}
			}
			vs := versions(resp)
			for id, v := range tc.want.versions {
				if vs[id] != v {
					t.Errorf("object version %s = %q, want %q (all: %v)", id, vs[id], v, vs)
				}
			}
			if len(vs) != len(tc.want.files) {
				ids := keys(vs)
				sort.Strings(ids)
				t.Errorf("%d object versions %v for %d files", len(vs), ids, len(tc.want.files))
			}
			if e.CallsBy("kms", tc.want.calledBy) == 0 {
				t.Errorf("KMS was never called as %s: %+v", tc.want.calledBy, e.Counters())
			}
			if calls := e.Calls("kms") - kmsBefore; tc.want.cached && calls != 0 {
				t.Errorf("%d KMS calls for objects the node-wide cache holds for this identity", calls)
			} else if !tc.want.cached && calls == 0 {
				t.Errorf("no KMS call: the values cannot be this identity's")
			}
		})
	}
}
