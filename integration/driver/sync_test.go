package driver

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/secrets-store-csi-driver/controllers"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// startDriverManager wires the driver's controller-runtime manager and its
// secret-sync controller exactly as the driver's main does (same cache
// filters, same reconciler and owner-reference patcher) against cfg.
func startDriverManager(t testing.TB, cfg *rest.Config) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:         scheme(),
		Metrics:        metricsserver.Options{BindAddress: "0"},
		LeaderElection: false,
		MapperProvider: apiutil.NewDynamicRESTMapper,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Field: fields.OneTermEqualSelector("spec.nodeName", nodeID)},
			&secretsstorev1.SecretProviderClassPodStatus{}: {
				Label: labels.SelectorFromSet(labels.Set{secretsstorev1.InternalNodeLabel: nodeID}),
			},
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{controllers.SecretManagedLabel: "true"})},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reconciler, err := controllers.New(driverName, mgr, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	go reconciler.RunPatcher(ctx)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the manager did not stop")
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if !mgr.GetCache().WaitForCacheSync(wctx) {
		t.Fatal("manager cache did not sync")
	}
	return mgr
}

// TestSyncSecretObjects: the driver's secret-sync controller, on a real API
// server, turns a mount of ours into Kubernetes Secrets (Opaque and TLS),
// and follows an upstream rotation after a republish.
func TestSyncSecretObjects(t *testing.T) {
	needRoot(t)
	rc := apiServer(t)
	mgr := startDriverManager(t, rc)
	c := mgr.GetClient()
	api := mgr.GetAPIReader()
	ctx := context.Background()

	e := startEmulator(t)
	certPEM, keyPEM := selfSignedPEM(t)
	if _, err := e.PutSecretValue("app-tls", append(append([]byte{}, certPEM...), keyPEM...), false); err != nil {
		t.Fatal(err)
	}
	p := startProvider(t, e, time.Second)

	ns := fmt.Sprintf("sync-%d", time.Now().UnixNano()%1_000_000)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	spc := newSPC("alibaba-sync", ns, demoObjects+"- objectName: app-tls\n  objectAlias: tls-bundle.pem\n",
		&secretsstorev1.SecretObject{
			SecretName: "db-credentials", Type: "Opaque",
			Labels: map[string]string{"app": "demo"},
			Data: []*secretsstorev1.SecretObjectData{
				{ObjectName: "db-user", Key: "username"},
				{ObjectName: "db-pass", Key: "password"},
			},
		},
		&secretsstorev1.SecretObject{
			SecretName: "app-tls", Type: "kubernetes.io/tls",
			Data: []*secretsstorev1.SecretObjectData{
				{ObjectName: "tls-bundle.pem", Key: "tls.crt"},
				{ObjectName: "tls-bundle.pem", Key: "tls.key"},
			},
		},
	)
	spc.TypeMeta = metav1.TypeMeta{}
	if err := c.Create(ctx, spc); err != nil {
		t.Fatalf("create SecretProviderClass: %v", err)
	}
	podObj := newPod("app-0", ns, "", spc.Name)
	podObj.TypeMeta = metav1.TypeMeta{}
	if err := c.Create(ctx, podObj); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	pod := podRef{name: podObj.Name, namespace: ns, uid: string(podObj.UID), serviceAccount: "default"}

	// The node server reads the class through the manager's cached client
	// and writes the SPCPS with it, as in the driver.
	const interval = time.Second
	node := startDriver(t, p.dir, driverConfig{client: c, reader: api, rotation: true, interval: interval})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)
	publish(t, node, req)

	secretData := func(name string) (*corev1.Secret, error) {
		s := &corev1.Secret{}
		err := api.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s)
		return s, err
	}
	eventually(t, 30*time.Second, "Secret db-credentials synced", func() error {
		s, err := secretData("db-credentials")
		if err != nil {
			return err
		}
		if string(s.Data["username"]) != "testuser" || string(s.Data["password"]) != "testpassword" || len(s.Data) != 2 {
			return fmt.Errorf("data keys %v", keys(s.Data))
		}
		if s.Type != corev1.SecretTypeOpaque || s.Labels[controllers.SecretManagedLabel] != "true" || s.Labels["app"] != "demo" {
			return fmt.Errorf("type %s labels %v", s.Type, s.Labels)
		}
		return nil
	})
	eventually(t, 30*time.Second, "Secret app-tls synced", func() error {
		s, err := secretData("app-tls")
		if err != nil {
			return err
		}
		if s.Type != corev1.SecretTypeTLS {
			return fmt.Errorf("type %s", s.Type)
		}
		if _, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"]); err != nil {
			return fmt.Errorf("tls.crt/tls.key: %v", err)
		}
		return nil
	})
	// A bare pod: the patcher (every 5s) makes the SPCPS the Secrets' owner,
	// so they go away with the pod's mount status.
	eventually(t, 30*time.Second, "owner reference on the synced Secret", func() error {
		s, err := secretData("db-credentials")
		if err != nil {
			return err
		}
		for _, o := range s.OwnerReferences {
			if o.Kind == "SecretProviderClassPodStatus" && o.Name == spcpsName(pod.name, ns, spc.Name) {
				return nil
			}
		}
		return fmt.Errorf("owners %+v", s.OwnerReferences)
	})
	spcps := getSPCPS(t, api, pod, spc.Name)
	if got := objectVersions(spcps); !slices.Contains(got, "kms/db-pass=v1") || !slices.Contains(got, "kms/tls-bundle.pem=v1") {
		t.Errorf("SPCPS objects %v", got)
	}

	// Upstream rotation -> republish after the interval -> the Secret follows.
	if _, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(`{"username":"testuser","password":"rotated-in-kms"}`), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(interval + 200*time.Millisecond) // also past the provider's --cache-ttl
	publish(t, node, req)
	eventually(t, 30*time.Second, "Secret db-credentials updated after the rotation", func() error {
		s, err := secretData("db-credentials")
		if err != nil {
			return err
		}
		if string(s.Data["password"]) != "rotated-in-kms" {
			return fmt.Errorf("password is still %q", s.Data["password"])
		}
		return nil
	})
	if got := objectVersions(getSPCPS(t, api, pod, spc.Name)); !slices.Contains(got, "kms/db-pass=v2") {
		t.Errorf("SPCPS objects after rotation %v, want kms/db-pass=v2", got)
	}

	unpublish(t, node, req.VolumeId, target)
}
