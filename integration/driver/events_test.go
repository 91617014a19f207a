package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// TestRotationEvents: `serve --emit-events` against a real kube-apiserver,
// with exactly the RBAC the chart renders for events.enable=true and the
// provider's own ServiceAccount token (no admin rights). Two pods mount a
// KMS secret through the socket, the secret is rotated in the emulator, and
// the cache's refresh posts exactly one SecretRotated Event per pod, on the
// pod (name, namespace, UID), naming the object and the old and new
// versions, never a value. More refreshes that change nothing post nothing.
func TestRotationEvents(t *testing.T) {
	cfg := apiServer(t)
	helm := helmBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The chart's ServiceAccount and RBAC with events.enable=true, applied
	// as rendered: the provider gets what a user's install gives it.
	out := runHelm(t, helm, "template", releaseName, chartCopy(t), "--namespace", chartNS,
		"--kube-version", renderKubeVersion, "--set", "events.enable=true", "--set", "secrets-store-csi-driver.install=false")
	ensureNamespace(ctx, t, admin, chartNS)
	var sa string
	applied := 0
	for _, u := range splitYAML(t, "events.enable=true", out) {
		switch u.GetKind() {
		case "ServiceAccount":
			var o corev1.ServiceAccount
			fromUnstructured(t, u.Object, &o)
			sa = o.Name
			_, err = admin.CoreV1().ServiceAccounts(chartNS).Create(ctx, &o, metav1.CreateOptions{})
		case "ClusterRole":
			var o rbacv1.ClusterRole
			fromUnstructured(t, u.Object, &o)
			_, err = admin.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			fromUnstructured(t, u.Object, &o)
			_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
		default:
			continue
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		applied++
	}
	if sa == "" || applied != 5 {
		t.Fatalf("applied %d objects (ServiceAccount %q), want the ServiceAccount and two ClusterRoles with their bindings", applied, sa)
	}
	kubeconfig := providerKubeconfig(ctx, t, admin, cfg, chartNS, sa)

	e := startEmulator(t)
	const ttl = 2 * time.Second
	p := startProvider(t, e, ttl, "--emit-events", "--kubeconfig", kubeconfig, "-v", "4")
	client, closeClient := providerClient(t, p)
	defer closeClient()

	// A namespace of its own per run: the API server outlives one test
	// (go test -count=N starts it once).
	nsObj, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rotation-events-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	var pods []podRef
	for _, name := range []string{"web-0", "web-1"} {
		created, err := admin.CoreV1().Pods(ns).Create(ctx, newPod(name, ns, "", "app-secrets"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, podRef{name: name, namespace: ns, uid: string(created.UID), serviceAccount: "default"})
	}
	objects := "- objectName: " + emulator.DemoSecretJSON + "\n  objectAlias: db.json\n"
	mountAll := func() string {
		t.Helper()
		var version string
		for _, pod := range pods {
			resp, err := client.Mount(ctx, providerMountRequest(objects, pod))
			if err != nil {
				t.Fatalf("Mount for %s: %v", pod.name, err)
			}
			version = resp.GetObjectVersion()[0].GetVersion()
		}
		return version
	}
	oldVersion := mountAll()
	oldValue := emulator.DemoSecretJSONValue
	newValue := `{"username":"app","password":"rotated-` + fmt.Sprint(time.Now().UnixNano()) + `"}`
	newVersion, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(newValue), false)
	if err != nil {
		t.Fatal(err)
	}
	if newVersion == oldVersion {
		t.Fatalf("the emulator kept version %s", oldVersion)
	}

	// Kubelet re-publishes while the cache refreshes; poll the API server.
	list := func() []corev1.Event {
		t.Helper()
		evs, err := admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=SecretRotated"})
		if err != nil {
			t.Fatal(err)
		}
		return evs.Items
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(list()) < len(pods) {
		if time.Now().After(deadline) {
			t.Fatalf("%d SecretRotated events after 90s, want %d\nprovider logs:\n%s", len(list()), len(pods), p.logs.String())
		}
		mountAll()
		time.Sleep(200 * time.Millisecond)
	}

	// Refreshes that bring the same version post nothing: wait until the
	// provider has read the secret twice more, unchanged, and its poster
	// has had time to post anything they could have caused.
	reads := e.CallsFor(emulator.RouteKMS, emulator.DemoSecretJSON)
	deadline = time.Now().Add(90 * time.Second)
	for e.CallsFor(emulator.RouteKMS, emulator.DemoSecretJSON) < reads+2 {
		if time.Now().After(deadline) {
			t.Fatalf("the provider did not read %s again within 90s (TTL %v)", emulator.DemoSecretJSON, ttl)
		}
		if v := mountAll(); v != newVersion {
			t.Fatalf("Mount serves version %s, want %s", v, newVersion)
		}
		time.Sleep(200 * time.Millisecond)
	}
	posted := func() int { return strings.Count(p.logs.String(), `msg="rotation event posted"`) }
	if n := posted(); n != len(pods) {
		t.Fatalf("the provider logged %d posted events, want %d", n, len(pods))
	}

	evs := list()
	if len(evs) != len(pods) {
		t.Fatalf("%d SecretRotated events, want exactly one per pod:\n%s", len(evs), describe(evs))
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].InvolvedObject.Name < evs[j].InvolvedObject.Name })
	for i, ev := range evs {
		pod := pods[i]
		obj := ev.InvolvedObject
		if obj.Kind != "Pod" || obj.APIVersion != "v1" || obj.Name != pod.name || obj.Namespace != ns || string(obj.UID) != pod.uid {
			t.Errorf("event %s is on %+v, want Pod %s/%s uid %s", ev.Name, obj, ns, pod.name, pod.uid)
		}
		if ev.Type != corev1.EventTypeNormal || ev.Count != 1 || ev.Source.Component != "csi-secrets-store-provider-alibabacloud" {
			t.Errorf("event %s: type %q, count %d, source %+v", ev.Name, ev.Type, ev.Count, ev.Source)
		}
		for _, want := range []string{"kms/" + emulator.DemoSecretJSON, "(file db.json)", oldVersion + " -> " + newVersion} {
			if !strings.Contains(ev.Message, want) {
				t.Errorf("event message %q lacks %q", ev.Message, want)
			}
		}
		raw, _ := json.Marshal(ev)
		for _, v := range []string{oldValue, newValue, "rotated-"} {
			if strings.Contains(string(raw), v) {
				t.Errorf("event %s holds a secret value", ev.Name)
			}
		}
	}
	for _, v := range []string{oldValue, newValue, "rotated-"} {
		if strings.Contains(p.logs.String(), v) {
			t.Error("the provider's logs hold a secret value")
		}
	}
	metrics := scrapeProvider(t, p)
	for _, want := range []string{
		`alibabacloud_provider_rotation_events_total{result="posted"} 2`,
		`alibabacloud_provider_rotation_events_total{result="failed"} 0`,
		`alibabacloud_provider_secret_last_change_timestamp_seconds{type="kms"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "rotated-") || strings.Contains(metrics, oldValue) {
		t.Error("/metrics holds a secret value")
	}
}

// providerMountRequest is the MountRequest the driver sends for pod's
// inline volume of a class with these objects.
func providerMountRequest(objects string, pod podRef) *v1alpha1.MountRequest {
	a, _ := json.Marshal(map[string]string{
		"objects":                                objects,
		"secretProviderClass":                    "app-secrets",
		"csi.storage.k8s.io/pod.name":            pod.name,
		"csi.storage.k8s.io/pod.namespace":       pod.namespace,
		"csi.storage.k8s.io/pod.uid":             pod.uid,
		"csi.storage.k8s.io/serviceAccount.name": pod.serviceAccount,
		"csi.storage.k8s.io/ephemeral":           "true",
	})
	return &v1alpha1.MountRequest{Attributes: string(a), Secrets: "null", Permission: "420",
		TargetPath: "/var/lib/kubelet/pods/" + pod.uid + "/volumes/kubernetes.io~csi/" + volumeName + "/mount"}
}

// providerClient dials the provider's socket as the driver does.
func providerClient(t testing.TB, p *provider) (v1alpha1.CSIDriverProviderClient, func()) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(p.dir, providerName+".sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	return v1alpha1.NewCSIDriverProviderClient(conn), func() { _ = conn.Close() }
}

func ensureNamespace(ctx context.Context, t testing.TB, c kubernetes.Interface, name string) {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func fromUnstructured(t testing.TB, m map[string]any, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, into); err != nil {
		t.Fatal(err)
	}
}

// providerKubeconfig writes a kubeconfig for the API server of cfg that
// authenticates as the ServiceAccount namespace/name, with a token from the
// TokenRequest API (what kubelet projects into the provider's pod).
func providerKubeconfig(ctx context.Context, t testing.TB, admin kubernetes.Interface, cfg *rest.Config, namespace, name string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", namespace, name, err)
	}
	server := cfg.Host
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["provider"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["provider"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "provider"}
	kc.CurrentContext = "provider"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrapeProvider reads the provider's /metrics, at the address its
// "serving" log line names.
func scrapeProvider(t testing.TB, p *provider) string {
	t.Helper()
	m := regexp.MustCompile(`metricsAddr=(\S+)`).FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("no metricsAddr in the provider's logs:\n%s", p.logs.String())
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	return string(b)
}

func describe(evs []corev1.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s on %s/%s: %s\n", ev.Name, ev.InvolvedObject.Namespace, ev.InvolvedObject.Name, ev.Message)
	}
	return b.String()
}
