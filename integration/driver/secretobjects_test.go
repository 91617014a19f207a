package driver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/secretutil"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// selfSignedPEM returns a certificate and its key, PEM-encoded, as one would
// store a TLS bundle in a KMS secret.
func selfSignedPEM(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app.example"},
		DNSNames: []string{"app.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestSecretObjectsMapping: after a real publish, the mapping the driver's
// secret-sync controller applies (fileutil.GetMountedFiles, then
// secretutil.GetSecretData per secretObjects entry) finds our files by
// objectName = file name (the alias when one is set) and gets their bytes,
// including the TLS split of a PEM bundle.
func TestSecretObjectsMapping(t *testing.T) {
	needRoot(t)
	e := startEmulator(t)
	certPEM, keyPEM := selfSignedPEM(t)
	bundle := append(append([]byte{}, certPEM...), keyPEM...)
	if _, err := e.PutSecretValue("app-tls", bundle, false); err != nil {
		t.Fatal(err)
	}
	p := startProvider(t, e, time.Second)
	pod := defaultPod
	spc := newSPC("alibaba-secrets", pod.namespace, demoObjects+"- objectName: app-tls\n  objectAlias: tls-bundle.pem\n")
	fc := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(spc, newPod(pod.name, pod.namespace, pod.uid, spc.Name)).Build()
	node := startDriver(t, p.dir, driverConfig{client: fc, interval: 2 * time.Minute})
	target := targetPath(t, kubeletDir(t), pod)
	req := publishRequest(target, spc.Name, pod)
	publish(t, node, req)
	defer unpublish(t, node, req.VolumeId, target)

	files, err := fileutil.GetMountedFiles(target)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		obj     secretsstorev1.SecretObject
		want    map[string]string
		wantErr string
	}{
		{
			name: "Opaque from jmesPath aliases, binary and OOS",
			obj: secretsstorev1.SecretObject{SecretName: "db", Type: "Opaque", Data: []*secretsstorev1.SecretObjectData{
				{ObjectName: "db-user", Key: "username"},
				{ObjectName: "db-pass", Key: "password"},
				{ObjectName: "demo-tls-key", Key: "key.der"},
				{ObjectName: "app-config.json", Key: "config.json"},
				{ObjectName: "demo-db", Key: "all.json"},
			}},
			want: map[string]string{
				"username": "testuser", "password": "testpassword", "key.der": string(emulator.DemoSecretBinaryValue),
				"config.json": emulator.DemoParameterValue, "all.json": emulator.DemoSecretJSONValue,
			},
		},
		{
			name: "kubernetes.io/tls split out of one PEM bundle",
			obj: secretsstorev1.SecretObject{SecretName: "tls", Type: "kubernetes.io/tls", Data: []*secretsstorev1.SecretObjectData{
				{ObjectName: "tls-bundle.pem", Key: "tls.crt"},
				{ObjectName: "tls-bundle.pem", Key: "tls.key"},
			}},
			want: map[string]string{"tls.crt": string(certPEM)}, // tls.key is re-encoded; checked below
		},
		{
			// With an alias the object's own name is not a file.
			name: "objectName must be the alias",
			obj: secretsstorev1.SecretObject{SecretName: "x", Type: "Opaque", Data: []*secretsstorev1.SecretObjectData{
				{ObjectName: "app-tls", Key: "k"},
			}},
			wantErr: "file matching objectName app-tls not found in the pod",
		},
		{
			name: "objectName is not a JSON path into a file",
			obj: secretsstorev1.SecretObject{SecretName: "x", Type: "Opaque", Data: []*secretsstorev1.SecretObjectData{
				{ObjectName: "demo-db/password", Key: "k"},
			}},
			wantErr: "file matching objectName demo-db/password not found in the pod",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := secretutil.ValidateSecretObject(c.obj); err != nil {
				t.Fatalf("ValidateSecretObject: %v", err)
			}
			typ := secretutil.GetSecretType(c.obj.Type)
			got, err := secretutil.GetSecretData(c.obj.Data, typ, files)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("GetSecretData error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetSecretData: %v", err)
			}
			for k, w := range c.want {
				if string(got[k]) != w {
					t.Errorf("%s: %q, want %q", k, trunc(string(got[k])), trunc(w))
				}
			}
			if typ == corev1.SecretTypeTLS {
				if _, err := tls.X509KeyPair(got["tls.crt"], got["tls.key"]); err != nil {
					t.Errorf("tls.crt/tls.key do not form a key pair: %v", err)
				}
				if strings.Contains(string(got["tls.crt"]), "PRIVATE KEY") {
					t.Error("tls.crt holds the private key")
				}
			} else if len(got) != len(c.want) {
				t.Errorf("keys %v, want %v", keys(got), keys(c.want))
			}
		})
	}
}
