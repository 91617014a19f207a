package cluster

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestCluster runs the product the way users run it, in one release that
// the steps upgrade in place: installed with the worker RAM role (the
// chart's default), switched to AccessKey + AssumeRole, to RRSA and back,
// restarted, given rotation events and the FUSE view and finally
// uninstalled. The steps share the release, so they run in this order; each
// makes its own namespace.
func TestCluster(t *testing.T) {
	needCluster(t)
	s.registerOIDC(t)
	s.install(t, s.repoFile("examples/values-worker-role.yaml"))

	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"GuideExample", testGuideExample},
		{"Rotation", testRotation},
		{"SecretSync", testSecretSync},
		{"MissingObject", testMissingObject},
		{"WorkerRole", testWorkerRole},
		{"UpgradeToAccessKeyRole", testAccessKeyRole},
		{"UpgradeToRRSA", testRRSA},
		{"PodRRSA", testPodRRSA},
		{"UpgradeToWorkerRoleAndNodePublishSecret", testNodePublishSecret},
		{"ProviderRestart", testProviderRestart},
		{"DirectoriesTemplatesOptionalEvents", testDirectoriesTemplatesOptionalEvents},
		{"FUSEViewAndUninstall", testFUSEAndUninstall},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.fn) && st.name == "GuideExample" {
			t.Fatal("the guide's example does not work: the later steps would only repeat its failure")
		}
	}
}

func (s *suite) repoFile(rel string) string { return filepath.Join(s.repo, rel) }

// registerOIDC tells the emulator's STS the API server's issuer and its
// published keys (/openid/v1/jwks), so it verifies projected tokens the way
// Alibaba Cloud verifies an ACK cluster's RRSA tokens.
func (s *suite) registerOIDC(t *testing.T) {
	t.Helper()
	jwks, err := s.kube.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("the API server's JWKS: %v", err)
	}
	if err := s.emu.SetOIDCProvider(oidcProvider, s.apiServer, jwks); err != nil {
		t.Fatal(err)
	}
}

// exampleManifest returns a manifest of examples/ as a user applies it, with
// only the container image replaced by the node's local test image (and a
// command, since that image has no server to run).
func (s *suite) exampleManifest(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(s.repoFile(rel))
	if err != nil {
		t.Fatal(err)
	}
	appRepo, appTag := s.image(t, "APP_IMAGE")
	docs := splitYAML(string(b))
	for i, d := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(d), &obj); err != nil || obj == nil {
			continue
		}
		if obj["kind"] != "Deployment" {
			continue
		}
		spec := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		spec["terminationGracePeriodSeconds"] = 1
		for _, c := range spec["containers"].([]any) {
			c := c.(map[string]any)
			c["image"] = appRepo + ":" + appTag
			c["imagePullPolicy"] = "Never"
			c["command"] = []any{"/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}
		}
		nb, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = string(nb)
	}
	return strings.Join(docs, "\n---\n")
}

// deploymentPods waits for a Deployment's pods to run and returns their names.
func (s *suite) deploymentPods(t testing.TB, ns, app string, want int) []string {
	t.Helper()
	var names []string
	err := poll(3*time.Minute, func(ctx context.Context) (bool, error) {
		l, err := s.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		names = names[:0]
		for _, p := range l.Items {
			for _, c := range p.Status.ContainerStatuses {
				if c.State.Running != nil && p.DeletionTimestamp == nil {
					names = append(names, p.Name)
				}
			}
		}
		return len(names) == want, nil
	})
	if err != nil {
		s.dumpNamespace(t, ns)
		t.Fatalf("deployment %s/%s: %d of %d pods running: %v", ns, app, len(names), want, err)
	}
	return names
}

// testGuideExample applies the guide's SecretProviderClass and Deployment
// (examples/secretstore.yaml, deploy.yaml) unchanged but for the image, and
// a class with the guide's other fields: a KMS secret with an alias and
// jmesPath files.
func testGuideExample(t *testing.T) {
	ns := s.namespace(t)
	s.applyYAML(t, ns, s.exampleManifest(t, "examples/secretstore.yaml"))
	s.applyYAML(t, ns, s.exampleManifest(t, "examples/deploy.yaml"))
	for _, p := range s.deploymentPods(t, ns, "nginx", 2) {
		if got := s.readFile(t, ns, p, "/mnt/secrets-store/test"); got != guideValue {
			t.Errorf("pod %s: /mnt/secrets-store/test = %q, want %q", p, got, guideValue)
		}
	}

	s.applyYAML(t, ns, `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: guide-fields
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - objectName: "`+guideParameter+`"
        objectType: "oos"
        objectAlias: "app/param"
      - objectName: "`+dbSecret+`"
        objectType: "kms"
        objectAlias: "db.json"
        jmesPath:
          - path: "username"
            objectAlias: "db-username"
          - path: "password"
            objectAlias: "db-password"
`)
	s.pod(t, ns, podSpec{name: "guide-fields", class: "guide-fields"})
	s.waitRunning(t, ns, "guide-fields", 2*time.Minute)
	for file, want := range map[string]string{
		"app_param":   guideValue, // pathTranslation's default "_"
		"db.json":     dbValue,
		"db-username": "testuser",
		"db-password": "testpassword",
	} {
		if got := s.readFile(t, ns, "guide-fields", "/mnt/secrets-store/"+file); got != want {
			t.Errorf("/mnt/secrets-store/%s = %q, want %q", file, got, want)
		}
	}
	// The driver writes only what the provider returned.
	if got := s.ls(t, ns, "guide-fields", "/mnt/secrets-store"); strings.Join(got, " ") != "app_param db-password db-username db.json" {
		t.Errorf("files in the volume: %v", got)
	}
}

// testRotation: a value changed upstream reaches running pods' files, and
// with several pods mounting the same objects the node still asks KMS and
// OOS about once per object per TTL (rotationPollInterval).
func testRotation(t *testing.T) {
	ns := s.namespace(t)
	param, secret := "rotating-param", "rotating-secret"
	if _, err := s.emu.PutParameter(param, "param-v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.emu.PutSecretValue(secret, []byte("secret-v1"), false); err != nil {
		t.Fatal(err)
	}
	s.applyYAML(t, ns, `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: rotating
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - {objectName: "`+param+`", objectType: oos}
      - {objectName: "`+secret+`", objectType: kms}
`)
	pods := []string{"rotate-0", "rotate-1", "rotate-2"}
	for _, p := range pods {
		s.pod(t, ns, podSpec{name: p, class: "rotating"})
	}
	for _, p := range pods {
		s.waitRunning(t, ns, p, 2*time.Minute)
		if got := s.readFile(t, ns, p, "/mnt/secrets-store/"+param); got != "param-v1" {
			t.Fatalf("%s: %s = %q before rotation", p, param, got)
		}
	}

	if _, err := s.emu.PutParameter(param, "param-v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.emu.PutSecretValue(secret, []byte("secret-v2"), false); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for _, p := range pods {
		s.waitFile(t, ns, p, "/mnt/secrets-store/"+param, "param-v2", 2*time.Minute)
		s.waitFile(t, ns, p, "/mnt/secrets-store/"+secret, "secret-v2", 2*time.Minute)
	}
	t.Logf("rotation reached %d pods %s after the upstream change (rotationPollInterval %s)",
		len(pods), time.Since(changed).Round(time.Second), rotationInterval)

	// Steady state: the driver re-mounts every pod every interval; the
	// node-wide cache turns that into about one upstream read per object
	// per TTL. Without it: pods x window / interval reads per object.
	window := 6 * rotationInterval
	before := map[string]int{"oos": s.emu.CallsFor("oos", param), "kms": s.emu.CallsFor("kms", secret)}
	time.Sleep(window)
	perTTL := float64(window) / float64(rotationInterval)
	withoutCache := len(pods) * int(perTTL)
	for route, n0 := range before {
		name := map[string]string{"oos": param, "kms": secret}[route]
		n := s.emu.CallsFor(route, name) - n0
		t.Logf("%s %s: %d upstream reads in %s with %d pods (%.0f TTLs; %d without the cache)", route, name, n, window, len(pods), perTTL, withoutCache)
		// The cache refreshes a read entry at 0.9 TTL: at most one read per
		// 0.9 TTL, plus one at each edge of the window.
		upper := int(math.Ceil(perTTL/0.9)) + 2
		if n < 2 || n > upper {
			t.Errorf("%s %s: %d upstream reads in %s, want about one per TTL (2..%d; %d without the cache)", route, name, n, window, upper, withoutCache)
		}
	}
}

// testSecretSync: the guide's sync example (examples/spc-sync-secret.yaml):
// secretObjects makes the driver create the Secret, the pod reads it as an
// env var, and a rotation upstream updates the Secret.
func testSecretSync(t *testing.T) {
	ns := s.namespace(t)
	s.applyYAML(t, ns, s.exampleManifest(t, "examples/spc-sync-secret.yaml"))
	pods := s.deploymentPods(t, ns, "app-sync-secret", 1)
	out, err := s.exec(ns, pods[0], "sh", "-c", `echo "$DB_USERNAME"`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "testuser" {
		t.Errorf("DB_USERNAME from the synced Secret = %q, want testuser", strings.TrimSpace(out))
	}
	sec, err := s.kube.CoreV1().Secrets(ns).Get(context.Background(), "db-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the synced Secret: %v", err)
	}
	if string(sec.Data["password"]) != "testpassword" || sec.Labels["app"] != "app-sync-secret" {
		t.Errorf("synced Secret: password %d bytes, labels %v", len(sec.Data["password"]), sec.Labels)
	}

	// Rotation upstream: the driver's rotation reconciler updates the Secret.
	if _, err := s.emu.PutParameter(dbSecret, `{"username":"testuser","password":"rotated-password"}`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.emu.PutParameter(dbSecret, dbValue) })
	start := time.Now()
	err = poll(2*time.Minute, func(ctx context.Context) (bool, error) {
		sec, err := s.kube.CoreV1().Secrets(ns).Get(ctx, "db-secret", metav1.GetOptions{})
		return err == nil && string(sec.Data["password"]) == "rotated-password", nil
	})
	if err != nil {
		t.Fatalf("the synced Secret was not updated after the rotation: %v", err)
	}
	t.Logf("synced Secret updated %s after the upstream change", time.Since(start).Round(time.Second))
	s.waitFile(t, ns, pods[0], "/mnt/secrets-store/db-password", "rotated-password", time.Minute)
}

// testMissingObject: a class that names an object that does not exist keeps
// the pod in ContainerCreating with an event that names the object; once
// the object is created upstream, kubelet's retry starts the pod.
func testMissingObject(t *testing.T) {
	ns := s.namespace(t)
	missing := "created-later"
	s.applyYAML(t, ns, `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: missing
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - {objectName: "`+missing+`", objectType: oos}
`)
	s.pod(t, ns, podSpec{name: "waits", class: "missing"})
	var msg string
	err := poll(2*time.Minute, func(context.Context) (bool, error) {
		for _, e := range s.events(ns, "waits") {
			if e.Reason == "FailedMount" && strings.Contains(e.Message, missing) {
				msg = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no FailedMount event naming %s:\n%s", missing, s.podReport(ns, "waits"))
	}
	t.Logf("event: %s", msg)
	for _, want := range []string{"not-found", "oos", missing} {
		if !strings.Contains(msg, want) {
			t.Errorf("the FailedMount event does not say %q: %s", want, msg)
		}
	}
	p, err := s.kube.CoreV1().Pods(ns).Get(context.Background(), "waits", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod phase %s, want Pending while the object is missing", p.Status.Phase)
	}
	if _, err := s.emu.PutParameter(missing, "here-now"); err != nil {
		t.Fatal(err)
	}
	took := s.waitRunning(t, ns, "waits", 3*time.Minute)
	t.Logf("pod started %s after the object was created", took.Round(time.Second))
	if got := s.readFile(t, ns, "waits", "/mnt/secrets-store/"+missing); got != "here-now" {
		t.Errorf("%s = %q", missing, got)
	}
}

// mountAs mounts a fresh OOS parameter in a fresh pod, with the class
// parameters given (YAML lines), and checks that every upstream read of it
// was made by principal: the identity the credential mode must use.
func mountAs(t *testing.T, ns, principal string, p podSpec, classParams string) {
	t.Helper()
	p.name = fmt.Sprintf("creds-%d", time.Now().UnixNano()%1e9)
	param := "param-" + p.name
	if _, err := s.emu.PutParameter(param, "for-"+p.name); err != nil {
		t.Fatal(err)
	}
	p.class = p.name
	s.applyYAML(t, ns, classWith(p.class, classParams, param))
	s.pod(t, ns, p)
	s.waitRunning(t, ns, p.name, 2*time.Minute)
	if got := s.readFile(t, ns, p.name, "/mnt/secrets-store/"+param); got != "for-"+p.name {
		t.Errorf("%s = %q", param, got)
	}
	by := 0
	for _, c := range s.emu.Counters() {
		if c.Route == "oos" && c.Resource == param && c.Outcome == "ok" {
			if c.Principal != principal {
				t.Errorf("%s was read by %s, want %s", param, c.Principal, principal)
			}
			by += c.Count
		}
	}
	if by == 0 {
		t.Errorf("no successful OOS read of %s recorded by the emulator", param)
	}
}

// classWith is a SecretProviderClass of one OOS parameter.
func classWith(name, params, param string) string {
	return `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: ` + name + `
spec:
  provider: alibabacloud
  parameters:
` + params + `    objects: |
      - {objectName: "` + param + `", objectType: oos}
`
}

func testWorkerRole(t *testing.T) {
	mountAs(t, s.namespace(t), workerRole, podSpec{}, "")
}

// credentialsSecret creates or replaces the Secret alibaba-credentials in
// the release namespace, as the guide's step 1 does.
func (s *suite) credentialsSecret(t *testing.T, data map[string]string) {
	t.Helper()
	ctx := context.Background()
	_ = s.kube.CoreV1().Secrets(releaseNS).Delete(ctx, "alibaba-credentials", metav1.DeleteOptions{})
	_, err := s.kube.CoreV1().Secrets(releaseNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "alibaba-credentials"},
		StringData: data,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// testAccessKeyRole: helm upgrade of the running release to the guide's
// third way (AccessKey + AssumeRole from envVarsFromSecret).
func testAccessKeyRole(t *testing.T) {
	s.credentialsSecret(t, map[string]string{"id": akUserID, "secret": akUserSecret, "rolearn": akRole})
	stsBefore := s.emu.CallsBy("sts", akUser)
	s.install(t, s.repoFile("examples/values-accesskey-role.yaml"))
	mountAs(t, s.namespace(t), akRole, podSpec{}, "")
	if n := s.emu.CallsBy("sts", akUser) - stsBefore; n < 1 {
		t.Errorf("no AssumeRole by %s after the upgrade", akUser)
	}
}

// testRRSA: helm upgrade to the guide's first way: rrsa.enable projects a
// token kubelet requests from the API server; the emulator's STS verifies
// it against the API server's keys before it issues the session.
func testRRSA(t *testing.T) {
	s.credentialsSecret(t, map[string]string{"rolearn": providerRRSA, "oidcproviderarn": oidcProvider})
	s.install(t, s.repoFile("examples/values-rrsa.yaml"))
	mountAs(t, s.namespace(t), providerRRSA, podSpec{}, "")
}

// testPodRRSA: per-pod RRSA (usePodServiceAccountToken) with the token
// kubelet requests for the driver (tokenRequests, audience
// sts.aliyuncs.com). A token the STS does not trust (here: the emulator is
// told the cluster's OIDC provider has another issuer) keeps the pod from
// starting, and nothing falls back to the provider's identity.
func testPodRRSA(t *testing.T) {
	const podRRSA = "    usePodServiceAccountToken: \"true\"\n"
	sa := `apiVersion: v1
kind: ServiceAccount
metadata:
  name: app-reader
  annotations:
    ack.alibabacloud.com/role-arn: ` + podRole + `
`
	ns := s.namespace(t)
	s.applyYAML(t, ns, sa)
	mountAs(t, ns, podRole, podSpec{serviceAccount: "app-reader"}, podRRSA)

	// Another namespace, the same trusted ServiceAccount name, but the STS
	// now expects another issuer: refused, the pod waits, no other identity
	// reads in its place.
	ns2 := s.namespaceNamed(t, "-2")
	s.applyYAML(t, ns2, sa)
	param := "param-foreign-issuer"
	if _, err := s.emu.PutParameter(param, "foreign"); err != nil {
		t.Fatal(err)
	}
	s.applyYAML(t, ns2, classWith("pod-rrsa", podRRSA, param))
	jwks, err := s.kube.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.emu.SetOIDCProvider(oidcProvider, "https://issuer.other.example", jwks); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			s.registerOIDC(t)
		}
	}
	t.Cleanup(restore)
	s.pod(t, ns2, podSpec{name: "foreign-issuer", class: "pod-rrsa", serviceAccount: "app-reader"})
	var msg string
	err = poll(2*time.Minute, func(context.Context) (bool, error) {
		for _, e := range s.events(ns2, "foreign-issuer") {
			if e.Reason == "FailedMount" && strings.Contains(e.Message, "issuer") {
				msg = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no FailedMount event about the token's issuer:\n%s", s.podReport(ns2, "foreign-issuer"))
	}
	t.Logf("event: %s", msg)
	if n := s.emu.CallsFor("oos", param); n != 0 {
		t.Errorf("%d OOS reads of %s while the pod's token was refused: another identity was used", n, param)
	}
	if p, err := s.kube.CoreV1().Pods(ns2).Get(context.Background(), "foreign-issuer", metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod with a refused token: err %v; want Pending", err)
	}
	restore()
	s.waitRunning(t, ns2, "foreign-issuer", 3*time.Minute)
	if got := s.readFile(t, ns2, "foreign-issuer", "/mnt/secrets-store/"+param); got != "foreign" {
		t.Errorf("%s = %q", param, got)
	}
}

// testNodePublishSecret: helm upgrade back to the worker role, then a volume
// that brings its own AccessKey through nodePublishSecretRef.
func testNodePublishSecret(t *testing.T) {
	s.install(t, s.repoFile("examples/values-worker-role.yaml"))
	ns := s.namespace(t)
	mountAs(t, ns, workerRole, podSpec{}, "")
	_, err := s.kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "secrets-store-creds", Labels: map[string]string{"secrets-store.csi.k8s.io/used": "true"}},
		StringData: map[string]string{"access_key": publishKeyID, "access_secret": publishSecret},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mountAs(t, ns, publishUser, podSpec{publishSecret: "secrets-store-creds"}, "")
}
