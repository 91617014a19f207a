package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/yaml"
)

// Facts about the provider binary the chart must match.
const (
	// serve --provider-volume default; the socket is <dir>/alibabacloud.sock.
	binaryProviderVolume = "/var/run/secrets-store-csi-providers"
	socketName           = "alibabacloud.sock"
	// ALICLOUD_OIDC_TOKEN_FILE default: where rrsa.enable projects the token.
	rrsaTokenFile = "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud"
	stsAudience   = "sts.aliyuncs.com"
	// The ServiceAccount name RAM roles trust in the guide's RRSA condition.
	providerSA = "csi-secrets-store-provider-alibabacloud"
)

// binaryEnv is every environment variable the provider reads (auth/env.go).
var binaryEnv = []string{
	"ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ALICLOUD_ROLE_ARN", "ALICLOUD_ROLE_SESSION_NAME",
	"ALICLOUD_ROLE_SESSION_EXPIRATION", "ALICLOUD_OIDC_PROVIDER_ARN", "ALICLOUD_OIDC_TOKEN_FILE",
	"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ROLE_ARN",
	"ALIBABA_CLOUD_ROLE_SESSION_NAME", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
	"ALICLOUD_ACCOUNT_ID", "ALICLOUD_CLUSTER_ID", "ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_ECS_METADATA_DISABLED",
}

// kubeVersions: the oldest the bundled driver supports, and one where the
// driver chart adds serviceAccountTokenInSecrets to the CSIDriver.
var kubeVersions = []string{"v1.30.0", "v1.35.0"}

// env is what one variable of the provider container must be: a Secret key
// reference, or a literal value.
type env struct{ secret, key, value string }

func fromSecret(key string) env { return env{secret: "alibaba-credentials", key: key} }

// scenario is one way users install the chart: a credential mode from the
// guide (with the guide's own values snippets, in examples/), plus options.
type scenario struct {
	name   string
	values []string // files in examples/
	// files in testdata/ (after values): e.g. the incumbent chart's values
	testdata []string
	sets     []string // extra --set
	// extra --set-string (an account ID is a string; --set would make it a number)
	setStrings []string
	env        map[string]env
	rrsa       bool
	// driver settings the values ask for
	rotation bool
	poll     string
	sync     bool
	fuse     bool
	deny     bool   // --deny-provider-identity
	events   bool   // --emit-events and its ClusterRole (events.enable)
	cacheTTL string // expected --cache-ttl
	// expected --max-response-bytes: the driver's maxCallRecvMsgSize; ""
	// means the upstream default, 4194304.
	maxResponse string
	// fuseFlags: the --fuse-* options besides the mountpoint and classes
	// (name -> value, "" for a boolean); nil: the defaults (uid and gid 0).
	fuseFlags map[string]string
	// expected --log-format; "" means text
	logFormat string
	// expected port of /healthz and /readyz (--health-addr); 0 means 8081
	healthPort int32
}

var scenarios = []scenario{
	{name: "defaults", poll: "2m", cacheTTL: "2m"},
	{
		// A raised driver limit raises the provider's with it.
		name: "defaults+max-call-recv-msg-size", sets: []string{"secrets-store-csi-driver.maxCallRecvMsgSize=8388608"},
		poll: "2m", cacheTTL: "2m", maxResponse: "8388608",
	},
	{name: "worker-role", values: []string{"values-worker-role.yaml"}, poll: "2m", cacheTTL: "2m"},
	{
		// When pods cannot reach ECS metadata: host network, cluster DNS kept.
		name: "worker-role+hostNetwork", values: []string{"values-worker-role.yaml"},
		sets: []string{"linux.hostNetwork=true"}, poll: "2m", cacheTTL: "2m",
	},
	{
		name: "rrsa", values: []string{"values-rrsa.yaml"}, rrsa: true, poll: "2m", cacheTTL: "2m",
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":          fromSecret("rolearn"),
			"ALICLOUD_OIDC_PROVIDER_ARN": fromSecret("oidcproviderarn"),
			"ALICLOUD_OIDC_TOKEN_FILE":   {value: rrsaTokenFile},
		},
	},
	{
		name: "accesskey-role", values: []string{"values-accesskey-role.yaml"}, poll: "2m", cacheTTL: "2m",
		env: map[string]env{
			"ACCESS_KEY_ID":     fromSecret("id"),
			"SECRET_ACCESS_KEY": fromSecret("secret"),
			"ALICLOUD_ROLE_ARN": fromSecret("rolearn"),
		},
	},
	{
		name: "rrsa+rotation+sync", values: []string{"values-rrsa.yaml", "values-rotation-sync.yaml"},
		rrsa: true, rotation: true, poll: "120s", sync: true, cacheTTL: "120s",
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":          fromSecret("rolearn"),
			"ALICLOUD_OIDC_PROVIDER_ARN": fromSecret("oidcproviderarn"),
			"ALICLOUD_OIDC_TOKEN_FILE":   {value: rrsaTokenFile},
		},
	},
	{
		// The guide's --set style, and an explicit cache TTL that wins over the poll interval.
		name: "accesskey-role+rotation-set+cache-ttl", values: []string{"values-accesskey-role.yaml"},
		sets: []string{
			"secrets-store-csi-driver.enableSecretRotation=true",
			"secrets-store-csi-driver.rotationPollInterval=5m",
			"cache.ttl=90s",
		},
		rotation: true, poll: "5m", cacheTTL: "90s",
		env: map[string]env{
			"ACCESS_KEY_ID":     fromSecret("id"),
			"SECRET_ACCESS_KEY": fromSecret("secret"),
			"ALICLOUD_ROLE_ARN": fromSecret("rolearn"),
		},
	},
	{
		// Per-pod RRSA on top of the worker role: the OIDC provider for the pods' tokens.
		name: "worker-role+pod-rrsa", values: []string{"values-worker-role.yaml", "values-pod-rrsa.yaml"}, poll: "2m", cacheTTL: "2m",
		env: map[string]env{"ALICLOUD_OIDC_PROVIDER_ARN": {value: podRRSAOIDCProvider}},
	},
	{
		// values-pod-rrsa.yaml must not switch off the AccessKey identity it is added to.
		name: "accesskey-role+pod-rrsa", values: []string{"values-accesskey-role.yaml", "values-pod-rrsa.yaml"}, poll: "2m", cacheTTL: "2m",
		env: map[string]env{
			"ACCESS_KEY_ID":              fromSecret("id"),
			"SECRET_ACCESS_KEY":          fromSecret("secret"),
			"ALICLOUD_ROLE_ARN":          fromSecret("rolearn"),
			"ALICLOUD_OIDC_PROVIDER_ARN": {value: podRRSAOIDCProvider},
		},
	},
	{
		// values-pod-rrsa.yaml added to the RRSA mode renders (it needs
		// nothing more). Both name ALICLOUD_OIDC_PROVIDER_ARN; as kubelet
		// resolves duplicates, the later entry (the file's literal) wins.
		name: "rrsa+pod-rrsa", values: []string{"values-rrsa.yaml", "values-pod-rrsa.yaml"},
		rrsa: true, poll: "2m", cacheTTL: "2m",
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":          fromSecret("rolearn"),
			"ALICLOUD_OIDC_PROVIDER_ARN": {value: podRRSAOIDCProvider},
			"ALICLOUD_OIDC_TOKEN_FILE":   {value: rrsaTokenFile},
		},
	},
	{
		// Per-pod RRSA only, with no identity of the provider's own (the line
		// values-pod-rrsa.yaml leaves commented out).
		name: "pod-rrsa+deny", values: []string{"values-pod-rrsa.yaml"}, sets: []string{"denyProviderIdentity=true"},
		deny: true, poll: "2m", cacheTTL: "2m",
		env: map[string]env{"ALICLOUD_OIDC_PROVIDER_ARN": {value: podRRSAOIDCProvider}},
	},
	{
		// RRSA with the OIDC provider given as account and cluster IDs, from
		// which the provider builds its ARN (auth/env.go).
		name: "rrsa-account-cluster",
		sets: []string{
			"rrsa.enable=true",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.secretKeyRef=alibaba-credentials",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.key=rolearn",
			"extraEnv[0].name=ALICLOUD_ACCOUNT_ID", "extraEnv[1].name=ALICLOUD_CLUSTER_ID",
		},
		setStrings: []string{"extraEnv[0].value=123456789012", "extraEnv[1].value=c0123456789abcdef"},
		rrsa:       true, poll: "2m", cacheTTL: "2m",
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":        fromSecret("rolearn"),
			"ALICLOUD_ACCOUNT_ID":      {value: "123456789012"},
			"ALICLOUD_CLUSTER_ID":      {value: "c0123456789abcdef"},
			"ALICLOUD_OIDC_TOKEN_FILE": {value: rrsaTokenFile},
		},
	},
	{
		// The incumbent chart's values file (Alibaba's provider, v0.6.0),
		// unchanged: its seven keys this chart did not have take effect as
		// that chart documents them. rrsa.accountId/clusterId become the
		// environment the provider builds the OIDC provider ARN from,
		// logFormatJSON JSON logs, linux.healthzPort the health port;
		// healthzPath (/healthz), healthzTimeout and kubeletRootDir (equal to
		// the driver's) are accepted without changing anything.
		name: "incumbent-values", testdata: []string{"incumbent-values.yaml"},
		rrsa: true, poll: "2m", cacheTTL: "2m", logFormat: "json", healthPort: 8989,
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":        fromSecret("rolearn"),
			"ALICLOUD_ACCOUNT_ID":      {value: "123456789012"},
			"ALICLOUD_CLUSTER_ID":      {value: "c0123456789abcdef0123456789abcdef"},
			"ALICLOUD_OIDC_TOKEN_FILE": {value: rrsaTokenFile},
		},
	},
	{
		// The incumbent's README way (--set rrsa.accountId=<digits>, an
		// integer to helm) for per-pod RRSA without rrsa.enable, next to
		// this chart's own keys: logFormat=json agrees with logFormatJSON,
		// healthPort equal to healthzPort.
		name: "incumbent-set-style",
		sets: []string{
			"rrsa.accountId=1234567890123456", "rrsa.clusterId=c0123456789abcdef",
			"logFormatJSON=true", "logFormat=json", "linux.healthPort=9090", "linux.healthzPort=9090",
			"linux.healthzPath=/healthz", "linux.healthzTimeout=10s",
		},
		poll: "2m", cacheTTL: "2m", logFormat: "json", healthPort: 9090,
		env: map[string]env{
			"ALICLOUD_ACCOUNT_ID": {value: "1234567890123456"},
			"ALICLOUD_CLUSTER_ID": {value: "c0123456789abcdef"},
		},
	},
	{
		// logFormatJSON=false (the incumbent's default) does not override logFormat.
		name: "logFormatJSON-false", sets: []string{"logFormatJSON=false", "logFormat=json"},
		poll: "2m", cacheTTL: "2m", logFormat: "json",
	},
	{
		// Rotation events on top of rotation: the flag, and a second
		// ClusterRole that may only create events.
		name: "rrsa+rotation+events", values: []string{"values-rrsa.yaml", "values-rotation-sync.yaml"},
		sets: []string{"events.enable=true"},
		rrsa: true, rotation: true, poll: "120s", sync: true, cacheTTL: "120s", events: true,
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":          fromSecret("rolearn"),
			"ALICLOUD_OIDC_PROVIDER_ARN": fromSecret("oidcproviderarn"),
			"ALICLOUD_OIDC_TOKEN_FILE":   {value: rrsaTokenFile},
		},
	},
	{
		// Events with RBAC managed by the user: the flag, no ClusterRole at all.
		name: "worker-role+events-no-rbac", values: []string{"values-worker-role.yaml"},
		sets: []string{"events.enable=true", "rbac.install=false"}, poll: "2m", cacheTTL: "2m", events: true,
	},
	{
		// With the ConfigMap-backed files too: the view's classes sit next to them.
		name: "worker-role+fuse+config", values: []string{"values-worker-role.yaml", "values-fuse.yaml"},
		sets: []string{"policy=rules: []", "kmsCACert=-----BEGIN CERTIFICATE-----"},
		fuse: true, poll: "2m", cacheTTL: "2m",
	},
	{
		// Every view option, in the RRSA mode.
		name: "rrsa+fuse-options", values: []string{"values-rrsa.yaml", "values-fuse.yaml"},
		sets: []string{
			"fuse.uid=1000", "fuse.gid=1000", "fuse.allowOther=true", "fuse.noOpen=true",
			"fuse.lookupTimeout=3s", "fuse.kernelCacheTimeout=10m", "fuse.shutdownGrace=2s",
		},
		rrsa: true, fuse: true, poll: "2m", cacheTTL: "2m",
		env: map[string]env{
			"ALICLOUD_ROLE_ARN":          fromSecret("rolearn"),
			"ALICLOUD_OIDC_PROVIDER_ARN": fromSecret("oidcproviderarn"),
			"ALICLOUD_OIDC_TOKEN_FILE":   {value: rrsaTokenFile},
		},
		fuseFlags: map[string]string{
			"--fuse-uid": "1000", "--fuse-gid": "1000", "--fuse-allow-other": "", "--fuse-no-open": "",
			"--fuse-lookup-timeout": "3s", "--fuse-kernel-cache-timeout": "10m", "--fuse-shutdown-grace": "2s",
		},
	},
}

// podRRSAOIDCProvider is the OIDC provider ARN examples/values-pod-rrsa.yaml sets.
const podRRSAOIDCProvider = "acs:ram::123456789012:oidc-provider/ack-rrsa-c0123456789abcdef0123456789abcdef"

// TestChart lints and renders the chart for every credential mode, with the
// bundled driver on and off, for each Kubernetes version, and checks the
// strictly decoded objects.
func TestChart(t *testing.T) {
	chart := chartCopy(t)
	for _, sc := range scenarios {
		for _, driverOn := range []bool{true, false} {
			for _, kv := range kubeVersions {
				name := fmt.Sprintf("%s/driver=%v/%s", sc.name, driverOn, kv)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var files []string
					for _, f := range sc.testdata {
						files = append(files, "-f", filepath.Join("testdata", f))
					}
					args := append(valuesArgs(t, sc.values, nil), files...)
					args = append(args, valuesArgs(t, nil, append(slices.Clone(sc.sets),
						fmt.Sprintf("secrets-store-csi-driver.install=%v", driverOn)))...)
					for _, s := range sc.setStrings {
						args = append(args, "--set-string", s)
					}

					if _, err := runHelm(t, append([]string{"lint", "--strict", "--kube-version", kv, chart}, args...)...); err != nil {
						t.Fatal(err)
					}
					out, err := runHelm(t, append([]string{"template", releaseName, chart,
						"--namespace", namespace, "--kube-version", kv}, args...)...)
					if err != nil {
						t.Fatal(err)
					}
					objs := decodeAll(t, name, out)
					checkProvider(t, objs, sc)
					checkMaxResponse(t, objs, sc, driverOn)
					checkDriver(t, objs, sc, driverOn, kv)
					checkFuse(t, objs, sc)
				})
			}
		}
	}
}

// checkMaxResponse: the provider refuses an oversize Mount at the size the
// bundled driver would (its maxCallRecvMsgSize, default 4194304). Without the
// bundled driver the chart cannot know the size and leaves the provider's
// default, the driver's own default.
func checkMaxResponse(t *testing.T, objs []runtime.Object, sc scenario, driverOn bool) {
	ds := find[*appsv1.DaemonSet](objs)[releaseName]
	if ds == nil {
		return // checkProvider reports it
	}
	f := flags(container(t, ds.Spec.Template.Spec, "provider").Args[1:])
	want := sc.maxResponse
	if want == "" && driverOn {
		want = "4194304"
	}
	if got := f["--max-response-bytes"]; got != want {
		t.Errorf("--max-response-bytes=%q, want %q (secrets-store-csi-driver.maxCallRecvMsgSize, driver installed: %v)", got, want, driverOn)
	}
	if !driverOn {
		return
	}
	for _, d := range find[*appsv1.DaemonSet](objs) {
		for _, c := range d.Spec.Template.Spec.Containers {
			if v, ok := flags(c.Args)["--max-call-recv-msg-size"]; ok && v != want {
				t.Errorf("driver --max-call-recv-msg-size=%s, provider --max-response-bytes=%s: they must match", v, want)
			}
		}
	}
}

func checkProvider(t *testing.T, objs []runtime.Object, sc scenario) {
	ds, ok := find[*appsv1.DaemonSet](objs)[releaseName]
	if !ok {
		t.Fatalf("no DaemonSet %s", releaseName)
	}
	if ds.Namespace != namespace {
		t.Errorf("DaemonSet namespace %q, want %q", ds.Namespace, namespace)
	}
	pod := ds.Spec.Template.Spec
	c := container(t, pod, "provider")
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("provider args %q: want the serve subcommand first", c.Args)
	}
	f := flags(c.Args[1:])

	// The socket: the driver dials <providersDir>/alibabacloud.sock on the
	// host; the provider must create it in the same host directory.
	pv := f["--provider-volume"]
	if pv != binaryProviderVolume {
		t.Errorf("--provider-volume=%q, want %q (the driver's providersDir)", pv, binaryProviderVolume)
	}
	hostDirMounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath != pv {
			continue
		}
		v := volume(t, pod, m.Name)
		if v.HostPath == nil || v.HostPath.Path != binaryProviderVolume {
			t.Errorf("provider volume %q at %s is %+v, want hostPath %s", m.Name, pv, v.VolumeSource, binaryProviderVolume)
		}
		if v.HostPath != nil && (v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate) {
			t.Errorf("provider hostPath type %v, want DirectoryOrCreate", v.HostPath.Type)
		}
		if m.ReadOnly {
			t.Error("the provider volume is read-only; the provider must create its socket there")
		}
		hostDirMounted = true
	}
	if !hostDirMounted {
		t.Errorf("nothing is mounted at --provider-volume=%s", pv)
	}

	checkMountsDisjoint(t, c)

	// Security: uid 0 for the root-owned hostPath, and nothing more; unless
	// the FUSE view is on, which checkFuse checks.
	sc0 := c.SecurityContext
	switch {
	case sc0 == nil:
		t.Fatal("provider has no securityContext")
	case sc.fuse:
	case sc0.RunAsUser == nil || *sc0.RunAsUser != 0:
		t.Errorf("runAsUser %v, want 0 (the socket directory is root-owned)", sc0.RunAsUser)
	case sc0.ReadOnlyRootFilesystem == nil || !*sc0.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc0.AllowPrivilegeEscalation == nil || *sc0.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc0.Privileged != nil && *sc0.Privileged:
		t.Error("provider is privileged")
	case sc0.Capabilities == nil || !slices.Equal(sc0.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc0.Capabilities.Add) != 0:
		t.Errorf("capabilities %+v, want drop [ALL] and add nothing", sc0.Capabilities)
	case sc0.SeccompProfile == nil || sc0.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("seccompProfile %+v, want RuntimeDefault", sc0.SeccompProfile)
	}
	if pod.HostNetwork && pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork with dnsPolicy %q: the provider would lose cluster DNS", pod.DNSPolicy)
	}
	if pod.HostPID || pod.HostIPC {
		t.Error("provider shares the host PID or IPC namespace")
	}

	// Scheduling: on every Linux node, critical, rolling.
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", pod.PriorityClassName)
	}
	if pod.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector %v lacks kubernetes.io/os=linux", pod.NodeSelector)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "" && tol.Operator == corev1.TolerationOpExists && tol.Effect == ""
	}) {
		t.Errorf("tolerations %+v do not tolerate every taint", pod.Tolerations)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("updateStrategy %v", ds.Spec.UpdateStrategy.Type)
	}
	if len(c.Resources.Requests) == 0 || len(c.Resources.Limits) == 0 {
		t.Errorf("resources %+v: want requests and limits", c.Resources)
	}
	sel := ds.Spec.Selector.MatchLabels
	for k, v := range sel {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels", k, v)
		}
	}

	checkProbes(t, c, f)
	wantPort := sc.healthPort
	if wantPort == 0 {
		wantPort = 8081
	}
	if got, want := f["--health-addr"], fmt.Sprintf(":%d", wantPort); got != want {
		t.Errorf("--health-addr=%q, want %q", got, want)
	}
	wantFormat := sc.logFormat
	if wantFormat == "" {
		wantFormat = "text"
	}
	if f["--log-format"] != wantFormat {
		t.Errorf("--log-format=%q, want %q", f["--log-format"], wantFormat)
	}
	if _, ok := f["--deny-provider-identity"]; ok != sc.deny {
		t.Errorf("--deny-provider-identity present %v, want %v", ok, sc.deny)
	}
	if f["--cache-ttl"] != sc.cacheTTL {
		t.Errorf("--cache-ttl=%q, want %q", f["--cache-ttl"], sc.cacheTTL)
	}

	// Credentials: exactly the env of the mode, all names the binary reads.
	got := map[string]env{}
	for _, e := range c.Env {
		if !slices.Contains(binaryEnv, e.Name) {
			t.Errorf("env %s is not read by the provider", e.Name)
		}
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			got[e.Name] = env{secret: e.ValueFrom.SecretKeyRef.Name, key: e.ValueFrom.SecretKeyRef.Key}
		case e.ValueFrom == nil:
			got[e.Name] = env{value: e.Value}
		default:
			t.Errorf("env %s has an unexpected source %+v", e.Name, e.ValueFrom)
		}
	}
	want := sc.env
	if want == nil {
		want = map[string]env{}
	}
	if fmt.Sprint(sortedEnv(got)) != fmt.Sprint(sortedEnv(want)) {
		t.Errorf("env\n got %v\nwant %v", sortedEnv(got), sortedEnv(want))
	}

	// RRSA: the token with audience sts.aliyuncs.com at the binary's default path.
	var tokenFiles []string
	for _, v := range pod.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken == nil {
				continue
			}
			if src.ServiceAccountToken.Audience != stsAudience {
				t.Errorf("projected token audience %q, want %q", src.ServiceAccountToken.Audience, stsAudience)
			}
			m, ok := mountOf(c, v.Name)
			if !ok {
				t.Errorf("projected token volume %s is not mounted", v.Name)
				continue
			}
			tokenFiles = append(tokenFiles, filepath.Join(m.MountPath, src.ServiceAccountToken.Path))
		}
	}
	switch {
	case sc.rrsa && !slices.Equal(tokenFiles, []string{rrsaTokenFile}):
		t.Errorf("rrsa: token files %v, want [%s]", tokenFiles, rrsaTokenFile)
	case !sc.rrsa && len(tokenFiles) != 0:
		t.Errorf("no rrsa, yet token files %v", tokenFiles)
	}

	// ServiceAccount and RBAC: `get serviceaccounts` for per-pod RRSA, and
	// `create events` only with events.enable.
	if pod.ServiceAccountName != providerSA {
		t.Errorf("serviceAccountName %q, want %q (the guide's oidc:sub condition)", pod.ServiceAccountName, providerSA)
	}
	if sa, ok := find[*corev1.ServiceAccount](objs)[providerSA]; !ok || sa.Namespace != namespace {
		t.Errorf("ServiceAccount %s/%s missing", namespace, providerSA)
	}
	checkRBAC(t, objs, sc)

	// Nothing of ours lands outside the release namespace.
	for _, o := range objs {
		m, ok := o.(interface {
			GetNamespace() string
			GetLabels() map[string]string
			GetName() string
		})
		if ok && m.GetLabels()["app.kubernetes.io/name"] == chartName && m.GetNamespace() != "" && m.GetNamespace() != namespace {
			t.Errorf("%s is in namespace %q", m.GetName(), m.GetNamespace())
		}
	}
}

// checkRBAC: with rbac.install (the default) exactly one ClusterRole of
// ours, `get serviceaccounts` for per-pod RRSA; with events.enable, a second
// one, `create events` and nothing more, and serve gets --emit-events. Each
// bound to the provider's ServiceAccount only.
func checkRBAC(t *testing.T, objs []runtime.Object, sc scenario) {
	t.Helper()
	ds := find[*appsv1.DaemonSet](objs)[releaseName]
	if _, ok := flags(container(t, ds.Spec.Template.Spec, "provider").Args[1:])["--emit-events"]; ok != sc.events {
		t.Errorf("--emit-events present %v, want %v (events.enable)", ok, sc.events)
	}
	rbacOn := !slices.Contains(sc.sets, "rbac.install=false")
	want := map[string][]rbacv1.PolicyRule{}
	if rbacOn {
		want[releaseName] = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}}}
		if sc.events {
			want[releaseName+"-events"] = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}}}
		}
	}
	ours := func(labels map[string]string) bool { return labels["app.kubernetes.io/name"] == chartName }
	roles := map[string]*rbacv1.ClusterRole{}
	for name, r := range find[*rbacv1.ClusterRole](objs) {
		if ours(r.Labels) {
			roles[name] = r
		}
	}
	if len(roles) != len(want) {
		t.Errorf("ClusterRoles of ours %v, want exactly %v", sortedKeys(roles), sortedKeys(want))
	}
	bindings := find[*rbacv1.ClusterRoleBinding](objs)
	for name, rules := range want {
		role, ok := roles[name]
		if !ok {
			t.Errorf("no ClusterRole %s", name)
			continue
		}
		if fmt.Sprint(role.Rules) != fmt.Sprint(rules) {
			t.Errorf("ClusterRole %s rules %+v, want %+v", name, role.Rules, rules)
		}
		binding, ok := bindings[name]
		if !ok || binding.RoleRef.Name != role.Name || binding.RoleRef.Kind != "ClusterRole" || len(binding.Subjects) != 1 ||
			binding.Subjects[0].Kind != "ServiceAccount" || binding.Subjects[0].Name != providerSA || binding.Subjects[0].Namespace != namespace {
			t.Errorf("ClusterRoleBinding %+v does not bind %s to %s/%s", binding, role.Name, namespace, providerSA)
		}
	}
	n := 0
	for _, b := range bindings {
		if ours(b.Labels) {
			n++
		}
	}
	if n != len(want) {
		t.Errorf("%d ClusterRoleBindings of ours, want %d", n, len(want))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func checkDriver(t *testing.T, objs []runtime.Object, sc scenario, on bool, kubeVersion string) {
	drivers := find[*storagev1.CSIDriver](objs)
	ds, haveDS := find[*appsv1.DaemonSet](objs)["secrets-store-csi-driver"]
	if !on {
		if len(drivers) != 0 || haveDS {
			t.Errorf("secrets-store-csi-driver.install=false still renders the driver (%d CSIDriver, DaemonSet %v)", len(drivers), haveDS)
		}
		return
	}
	csi, ok := drivers["secrets-store.csi.k8s.io"]
	if !ok || !haveDS {
		t.Fatalf("driver not rendered: CSIDriver %v, DaemonSet %v", ok, haveDS)
	}
	if !slices.ContainsFunc(csi.Spec.TokenRequests, func(r storagev1.TokenRequest) bool { return r.Audience == stsAudience }) {
		t.Errorf("CSIDriver tokenRequests %+v lack audience %s (per-pod RRSA)", csi.Spec.TokenRequests, stsAudience)
	}
	if csi.Spec.RequiresRepublish == nil || *csi.Spec.RequiresRepublish != sc.rotation {
		t.Errorf("CSIDriver requiresRepublish %v, want %v", csi.Spec.RequiresRepublish, sc.rotation)
	}
	if version.MustParseSemantic(kubeVersion).AtLeast(version.MustParseSemantic("v1.35.0")) &&
		(csi.Spec.ServiceAccountTokenInSecrets == nil || !*csi.Spec.ServiceAccountTokenInSecrets) {
		t.Errorf("on %s the CSIDriver should carry serviceAccountTokenInSecrets", kubeVersion)
	}

	f := flags(container(t, ds.Spec.Template.Spec, "secrets-store").Args)
	if f["--provider-volume"] != binaryProviderVolume {
		t.Errorf("driver --provider-volume=%q, want %q where the provider puts %s", f["--provider-volume"], binaryProviderVolume, socketName)
	}
	if rot, ok := f["--enable-secret-rotation"]; (ok && rot == "true") != sc.rotation {
		t.Errorf("driver --enable-secret-rotation=%q (present %v), want rotation %v", rot, ok, sc.rotation)
	}
	if f["--rotation-poll-interval"] != sc.poll {
		t.Errorf("driver --rotation-poll-interval=%q, want %q", f["--rotation-poll-interval"], sc.poll)
	}
	if _, ok := find[*rbacv1.ClusterRole](objs)["secretprovidersyncing-role"]; ok != sc.sync {
		t.Errorf("secret sync RBAC rendered %v, want %v", ok, sc.sync)
	}
}

// fuseClassDir is where the chart mounts the view's classes ConfigMap.
const fuseClassDir = "/etc/csi-secrets-store-provider-alibabacloud/fuse-classes"

// checkFuse: the view is part of the provider container (one process, one
// cache), never a DaemonSet of its own; with it on, the container has the
// --fuse-* flags, /dev/fuse, the mountpoint with Bidirectional propagation,
// the classes ConfigMap and the privilege mount(2) needs. With it off, none
// of that is there.
func checkFuse(t *testing.T, objs []runtime.Object, sc scenario) {
	for name := range find[*appsv1.DaemonSet](objs) {
		if name != releaseName && name != "secrets-store-csi-driver" {
			t.Errorf("DaemonSet %s: the FUSE view must run in the provider's own container, not a DaemonSet of its own", name)
		}
	}
	ds, ok := find[*appsv1.DaemonSet](objs)[releaseName]
	if !ok {
		t.Fatalf("no DaemonSet %s", releaseName)
	}
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Errorf("provider pod has %d containers, want 1: the view shares the provider's process", len(pod.Containers))
	}
	c := container(t, pod, "provider")
	if c.Args[0] != "serve" {
		t.Fatalf("provider args %q: want serve", c.Args)
	}
	f := flags(c.Args[1:])
	var mountpoint string
	var classes, fuseArgs []string
	for _, a := range c.Args[1:] {
		k, v, _ := strings.Cut(a, "=")
		if !strings.HasPrefix(k, "--fuse-") {
			continue
		}
		fuseArgs = append(fuseArgs, a)
		switch k {
		case "--fuse-mountpoint":
			mountpoint = v
		case "--fuse-class":
			classes = append(classes, v)
		}
	}
	cm, haveCM := find[*corev1.ConfigMap](objs)[releaseName+"-fuse-classes"]
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	if !sc.fuse {
		if len(fuseArgs) != 0 || haveCM || privileged {
			t.Errorf("fuse off, yet --fuse-* args %q, classes ConfigMap %v, privileged %v", fuseArgs, haveCM, privileged)
		}
		for _, v := range pod.Volumes {
			if v.HostPath != nil && v.HostPath.Path == "/dev/fuse" {
				t.Errorf("fuse off, yet volume %s is /dev/fuse", v.Name)
			}
		}
		for _, m := range c.VolumeMounts {
			if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
				t.Errorf("fuse off, yet %s is mounted with propagation %s", m.Name, *m.MountPropagation)
			}
		}
		return
	}

	// The privilege of the view, and only what Kubernetes accepts with it
	// (allowPrivilegeEscalation=false is refused next to privileged=true).
	sctx := c.SecurityContext
	switch {
	case !privileged:
		t.Error("with the FUSE view the provider container must be privileged (mount(2), Bidirectional propagation)")
	case sctx.AllowPrivilegeEscalation != nil && !*sctx.AllowPrivilegeEscalation:
		t.Error("privileged with allowPrivilegeEscalation=false: the API server refuses that pod")
	case sctx.RunAsUser == nil || *sctx.RunAsUser != 0:
		t.Errorf("runAsUser %v, want 0", sctx.RunAsUser)
	case sctx.ReadOnlyRootFilesystem == nil || !*sctx.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	}
	if pod.HostPID || pod.HostIPC {
		t.Error("provider shares the host PID or IPC namespace")
	}

	// One view per process: exactly one mountpoint; the defaults and options.
	if n := strings.Count(strings.Join(c.Args, "\n"), "--fuse-mountpoint="); n != 1 {
		t.Errorf("%d --fuse-mountpoint flags, want 1", n)
	}
	wantFlags := sc.fuseFlags
	if wantFlags == nil {
		wantFlags = map[string]string{"--fuse-uid": "0", "--fuse-gid": "0"}
	}
	for k, v := range f {
		if !strings.HasPrefix(k, "--fuse-") || k == "--fuse-mountpoint" || k == "--fuse-class" {
			continue
		}
		if w, ok := wantFlags[k]; !ok || w != v {
			t.Errorf("%s=%q, want %q (set %v)", k, v, w, ok)
		}
	}
	for k, v := range wantFlags {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("%s missing or %q, want %q", k, got, v)
		}
	}

	checkMountsDisjoint(t, c)
	// The volume is the mountpoint's parent: inside the container a volume
	// is itself a mount point, and serve refuses to mount the view on one.
	hostDir := filepath.Dir(mountpoint)
	m, ok := mountOf(c, "fuse-mountpoint")
	if !ok || m.MountPath != hostDir || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional || m.ReadOnly {
		t.Errorf("mountpoint mount %+v: want %s (the mountpoint's parent), writable, with Bidirectional propagation", m, hostDir)
	}
	for _, other := range c.VolumeMounts {
		if other.Name != "fuse-mountpoint" && other.MountPropagation != nil && *other.MountPropagation != corev1.MountPropagationNone {
			t.Errorf("%s is mounted with propagation %s; only the view's mountpoint needs it", other.Name, *other.MountPropagation)
		}
	}
	if v := volume(t, pod, "fuse-mountpoint"); v.HostPath == nil || v.HostPath.Path != hostDir ||
		v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("mountpoint volume %+v is not hostPath %s (DirectoryOrCreate)", v.VolumeSource, hostDir)
	}
	if v := volume(t, pod, "fuse-dev"); v.HostPath == nil || v.HostPath.Path != "/dev/fuse" ||
		v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathCharDev {
		t.Errorf("fuse-dev volume %+v, want hostPath /dev/fuse (CharDevice)", v.VolumeSource)
	}
	if dm, ok := mountOf(c, "fuse-dev"); !ok || dm.MountPath != "/dev/fuse" {
		t.Errorf("/dev/fuse is not mounted at /dev/fuse: %+v", dm)
	}

	// Every --fuse-class is a key of the ConfigMap mounted read-only at its
	// directory, and holds a SecretProviderClass the provider can parse.
	if !haveCM {
		t.Fatal("no classes ConfigMap")
	}
	if v := volume(t, pod, "fuse-classes"); v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("fuse-classes volume %+v is not ConfigMap %s", v.VolumeSource, cm.Name)
	}
	cmMount, ok := mountOf(c, "fuse-classes")
	if !ok || !cmMount.ReadOnly || cmMount.MountPath != fuseClassDir {
		t.Errorf("classes mount %+v: want read-only at %s", cmMount, fuseClassDir)
	}
	if len(classes) != len(cm.Data) {
		t.Errorf("%d --fuse-class flags for %d ConfigMap keys", len(classes), len(cm.Data))
	}
	for _, p := range classes {
		if filepath.Dir(p) != cmMount.MountPath {
			t.Errorf("--fuse-class=%s is not under the classes mount %s", p, cmMount.MountPath)
		}
		text, ok := cm.Data[filepath.Base(p)]
		if !ok {
			t.Errorf("--fuse-class=%s: no such key in the ConfigMap", p)
			continue
		}
		for _, o := range decodeAll(t, p, text) {
			spc, ok := o.(*secretsstorev1.SecretProviderClass)
			if !ok {
				t.Errorf("%s holds a %T, want a SecretProviderClass", p, o)
				continue
			}
			checkSPC(t, p, spc)
		}
	}
	// The view reads its classes at start: a change must roll the pods.
	if ds.Spec.Template.Annotations["checksum/fuse-classes"] == "" {
		t.Error("no checksum/fuse-classes annotation: changing fuse.classes would not restart the provider")
	}
}

// checkProbes: liveness /healthz and readiness /readyz on the port
// --health-addr opens, and a metrics port where --metrics-addr listens.
func checkProbes(t *testing.T, c corev1.Container, f map[string]string) {
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if got := f["--health-addr"]; ports["health"] == 0 || got != fmt.Sprintf(":%d", ports["health"]) {
		t.Errorf("container %s: --health-addr=%q but the health port is %d", c.Name, got, ports["health"])
	}
	if got := f["--metrics-addr"]; ports["metrics"] == 0 || got != fmt.Sprintf(":%d", ports["metrics"]) {
		t.Errorf("container %s: --metrics-addr=%q but the metrics port is %d", c.Name, got, ports["metrics"])
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("container %s: probe %+v, want GET %s on port health", c.Name, probe, want)
		}
	}
}

// checkMountsDisjoint: no volume is mounted inside another. A mount inside a
// read-only ConfigMap or projected volume cannot be created by the runtime.
func checkMountsDisjoint(t *testing.T, c corev1.Container) {
	for _, a := range c.VolumeMounts {
		for _, b := range c.VolumeMounts {
			if a.Name != b.Name && (a.MountPath == b.MountPath || strings.HasPrefix(b.MountPath, strings.TrimSuffix(a.MountPath, "/")+"/")) {
				t.Errorf("container %s: volume %s at %s lies inside volume %s at %s", c.Name, b.Name, b.MountPath, a.Name, a.MountPath)
			}
		}
	}
}

func sortedEnv(m map[string]env) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%+v", k, v))
	}
	sort.Strings(out)
	return out
}

// TestChartRejects checks that values that cannot work fail the render with
// a message naming the fix, instead of producing a broken DaemonSet.
func TestChartRejects(t *testing.T) {
	chart := chartCopy(t)
	cases := []struct {
		name string
		sets []string
		want string
	}{
		{"rrsa without role", []string{"rrsa.enable=true"}, "ALICLOUD_ROLE_ARN"},
		{"rrsa without oidc provider", []string{"rrsa.enable=true",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.secretKeyRef=alibaba-credentials",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.key=rolearn"}, "ALICLOUD_OIDC_PROVIDER_ARN"},
		{"misspelt rrsa key", []string{"rrsa.enabled=true"}, "enabled"},
		{"env without key", []string{"envVarsFromSecret.ACCESS_KEY_ID.secretKeyRef=alibaba-credentials"}, "key"},
		{"env with a Kubernetes-style secretKeyRef", []string{
			"envVarsFromSecret.ACCESS_KEY_ID.secretKeyRef.name=alibaba-credentials",
			"envVarsFromSecret.ACCESS_KEY_ID.key=id"}, "secretKeyRef"},
		{"poll interval without unit", []string{"secrets-store-csi-driver.rotationPollInterval=120"}, "rotationPollInterval"},
		{"socket directories differ", []string{"linux.providersDir=/opt/providers"}, "providersDir"},
		{"fuse without classes", []string{"fuse.enabled=true"}, "fuse.classes"},
		{"rrsa with only the account ID", []string{"rrsa.enable=true",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.secretKeyRef=alibaba-credentials",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.key=rolearn",
			"extraEnv[0].name=ALICLOUD_ACCOUNT_ID", "extraEnv[0].value=123456789012"}, "ALICLOUD_CLUSTER_ID"},
		{"fuse class not a file name", []string{"fuse.enabled=true", "fuse.classes.a/b=x"}, "plain file name"},
		{"fuse mountpoint in the socket directory", []string{"fuse.enabled=true", "fuse.classes.a=x",
			"fuse.mountpoint=/var/run/secrets-store-csi-providers/fuse"}, "fuse.mountpoint"},
		{"fuse mountpoint whose parent is a system directory", []string{"fuse.enabled=true", "fuse.classes.a=x",
			"fuse.mountpoint=/var/run/fuse"}, "directory of its own"},
		{"fuse mountpoint next to the socket directory", []string{"fuse.enabled=true", "fuse.classes.a=x",
			"fuse.mountpoint=/var/run/secrets-store-csi-providers"}, "overlap"},
		{"fuse option of the old DaemonSet", []string{"fuse.enabled=true", "fuse.classes.a=x", "fuse.healthPort=8091"}, "healthPort"},
		{"bad log format", []string{"logFormat=yaml"}, "logFormat"},
		{"events without the service account token", []string{"events.enable=true", "serviceAccount.automountToken=false"}, "automountToken"},
		{"misspelt events key", []string{"events.enabled=true"}, "enabled"},
		{"fuse view and no provider identity", []string{"fuse.enabled=true", "fuse.classes.a=x", "denyProviderIdentity=true"}, "denyProviderIdentity"},
		{"rrsa and no provider identity", []string{"denyProviderIdentity=true", "rrsa.enable=true",
			"envVarsFromSecret.ALICLOUD_ROLE_ARN.secretKeyRef=s", "envVarsFromSecret.ALICLOUD_ROLE_ARN.key=k",
			"envVarsFromSecret.ALICLOUD_OIDC_PROVIDER_ARN.secretKeyRef=s", "envVarsFromSecret.ALICLOUD_OIDC_PROVIDER_ARN.key=k"}, "denyProviderIdentity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"template", releaseName, chart, "--namespace", namespace, "--kube-version", kubeVersions[len(kubeVersions)-1]}
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

// TestChartPackage packages the chart with its dependency, as a release would.
func TestChartPackage(t *testing.T) {
	chart := chartCopy(t)
	dest := t.TempDir()
	if _, err := runHelm(t, "package", chart, "--destination", dest); err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Version string `json:"version"`
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "charts", chartName, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, chartName+"-"+meta.Version+".tgz")); err != nil {
		t.Fatal(err)
	}
}

// TestChartValuesDocumented keeps values.yaml and README.md in step: every
// leaf key of values.yaml has a comment and a row in the README's table.
func TestChartValuesDocumented(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "charts", chartName)
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for _, key := range leafKeys("", values) {
		if !strings.Contains(string(readme), "`"+key+"`") {
			t.Errorf("README.md has no row for `%s`", key)
		}
		// The key's line must follow a comment line (or a comment of its parent).
		last := key[strings.LastIndex(key, ".")+1:]
		if !commented(lines, last) {
			t.Errorf("values.yaml: %s has no comment", key)
		}
	}
}

// leafKeys lists dotted keys down to values that are not maps, and stops at
// maps that are values themselves (resources, affinity, ...).
func leafKeys(prefix string, m map[string]any) []string {
	opaque := map[string]bool{
		"linux.resources": true, "linux.affinity": true, "linux.updateStrategy": true,
		"fuse.classes": true, "envVarsFromSecret": true,
		"linux.nodeSelector": true, "linux.podLabels": true, "linux.podAnnotations": true,
		"linux.daemonsetAnnotations": true, "serviceAccount.annotations": true,
	}
	var out []string
	for k, v := range m {
		key := strings.TrimPrefix(prefix+"."+k, ".")
		if sub, ok := v.(map[string]any); ok && !opaque[key] && len(sub) > 0 {
			out = append(out, leafKeys(key, sub)...)
			continue
		}
		out = append(out, key)
	}
	sort.Strings(out)
	return out
}

// commented reports whether some line defining key is preceded by a comment.
func commented(lines []string, key string) bool {
	for i, l := range lines {
		if strings.TrimSpace(l) == key+":" || strings.HasPrefix(strings.TrimSpace(l), key+": ") {
			for j := i - 1; j >= 0; j-- {
				p := strings.TrimSpace(lines[j])
				if strings.HasPrefix(p, "#") {
					return true
				}
				if p != "" {
					break
				}
			}
		}
	}
	return false
}

// TestDriverChartMatchesDependency: helm only checks the subchart's name, so
// make sure the driver chart the tests use (from the Go module the provider
// builds against) is the version Chart.yaml asks users to fetch.
func TestDriverChartMatchesDependency(t *testing.T) {
	type meta struct {
		Version      string `json:"version"`
		KubeVersion  string `json:"kubeVersion"`
		Dependencies []struct {
			Name, Version, Repository, Condition string
		} `json:"dependencies"`
	}
	read := func(path string) meta {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m meta
		if err := yaml.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ours := read(filepath.Join(repoRoot(t), "charts", chartName, "Chart.yaml"))
	upstream := read(filepath.Join(upstreamDriverChart(t), "Chart.yaml"))
	if len(ours.Dependencies) != 1 {
		t.Fatalf("dependencies %+v, want only %s", ours.Dependencies, driverChart)
	}
	dep := ours.Dependencies[0]
	if dep.Name != driverChart || dep.Condition != driverChart+".install" {
		t.Errorf("dependency %+v, want %s with condition %s.install", dep, driverChart, driverChart)
	}
	prefix := strings.TrimSuffix(dep.Version, "x")
	if !strings.HasSuffix(dep.Version, ".x") || !strings.HasPrefix(upstream.Version, prefix) {
		t.Errorf("Chart.yaml asks for %s %s, but the Go module ships chart %s: update one of them",
			driverChart, dep.Version, upstream.Version)
	}
	if ours.KubeVersion != upstream.KubeVersion {
		t.Errorf("kubeVersion %q differs from the bundled driver's %q", ours.KubeVersion, upstream.KubeVersion)
	}
	if lowest := strings.TrimPrefix(kubeVersions[0], "v"); !strings.Contains(upstream.KubeVersion, lowest) {
		t.Errorf("the tests' oldest Kubernetes %s is not the driver's minimum %q", kubeVersions[0], upstream.KubeVersion)
	}
}
