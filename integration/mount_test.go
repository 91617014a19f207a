package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/badinput"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// seedWith returns the demo seed plus secrets with path-like names and a
// second, less privileged AccessKey.
func seedWith() *emulator.Seed {
	s := emulator.DemoSeed()
	s.Secrets = append(s.Secrets,
		emulator.Secret{Name: "app/db/password", Value: "p@ss"},
		emulator.Secret{Name: "multi", Versions: []emulator.SecretVersion{
			{ID: "old-1", Data: "one"}, {ID: "prev-2", Data: "two", Stages: []string{"ACSPrevious"}}, {ID: "cur-3", Data: "three", Stages: []string{"ACSCurrent"}},
		}},
		emulator.Secret{Name: "plain", Value: "not json"},
	)
	s.Parameters = append(s.Parameters, emulator.Parameter{Name: "app/param", Versions: []string{"first", "second"}})
	s.AccessKeys = append(s.AccessKeys, emulator.AccessKey{ID: "LTAIlimitedKey000000001", Secret: "limitedSecret00000000000000000001", Principal: "limited"})
	s.Policies = map[string]emulator.Policy{"limited": {Allow: map[string][]string{"kms:GetSecretValue": {"plain"}}}}
	return s
}

const limitedID, limitedSecret = "LTAIlimitedKey000000001", "limitedSecret00000000000000000001"

func TestMountKinds(t *testing.T) {
	e := startEmulator(t, seedWith())
	p := startProvider(t, e, providerConfig{})

	cases := []struct {
		name   string
		params map[string]string
		want   map[string]string
		ids    map[string]string // object_version id -> version
	}{
		{"kms text", objects("- objectName: demo-db"), map[string]string{"demo-db": emulator.DemoSecretJSONValue}, map[string]string{"kms/demo-db": "v1"}},
		{"kms binary", objects("- objectName: demo-tls-key"), map[string]string{"demo-tls-key": string(emulator.DemoSecretBinaryValue)}, nil},
		{"oos", objects("- objectName: test", "  objectType: oos"), map[string]string{"test": emulator.DemoParameterValue}, map[string]string{"oos/test": "1"}},
		{"guide's literal example", objects(`- objectName: "test"`, `- objectType: "oos"`), map[string]string{"test": emulator.DemoParameterValue}, nil},
		{"alias", objects("- objectName: demo-db", "  objectAlias: database.json"), map[string]string{"database.json": emulator.DemoSecretJSONValue}, nil},
		{"jmesPath", objects("- objectName: demo-db", "  jmesPath:", "    - path: username", "      objectAlias: user", "    - path: password", "      objectAlias: pass"),
			map[string]string{"demo-db": emulator.DemoSecretJSONValue, "user": "testuser", "pass": "testpassword"},
			map[string]string{"kms/demo-db": "v1", "kms/user": "v1", "kms/pass": "v1"}},
		{"jmesPath on oos", objects("- objectName: test", "  objectType: oos", "  jmesPath:", "    - {path: username, objectAlias: u}"),
			map[string]string{"test": emulator.DemoParameterValue, "u": "testuser"}, nil},
		{"pathTranslation default", objects("- objectName: app/db/password"), map[string]string{"app_db_password": "p@ss"}, nil},
		{"pathTranslation dash", merge(objects("- objectName: app/db/password"), "pathTranslation", "-"), map[string]string{"app-db-password": "p@ss"}, nil},
		{"pathTranslation False", merge(objects("- objectName: app/db/password"), "pathTranslation", "False"), map[string]string{"app/db/password": "p@ss"}, nil},
		{"kms VersionId", objects("- objectName: multi", "  objectVersion: old-1"), map[string]string{"multi": "one"}, map[string]string{"kms/multi": "old-1"}},
		{"kms VersionStage", objects("- objectName: multi", "  objectVersionLabel: ACSPrevious"), map[string]string{"multi": "two"}, map[string]string{"kms/multi": "prev-2"}},
		{"kms current and previous side by side", objects("- objectName: multi", "- objectName: multi", "  objectAlias: multi-previous", "  objectVersionLabel: ACSPrevious"),
			map[string]string{"multi": "three", "multi-previous": "two"}, map[string]string{"kms/multi": "cur-3", "kms/multi-previous": "prev-2"}},
		{"oos ParameterVersion", objects("- objectName: app/param", "  objectType: oos", "  objectVersion: \"1\""), map[string]string{"app_param": "first"}, map[string]string{"oos/app_param": "1"}},
		{"oos latest", objects("- objectName: app/param", "  objectType: oos"), map[string]string{"app_param": "second"}, map[string]string{"oos/app_param": "2"}},
		{"region parameter", merge(objects("- objectName: demo-db"), "region", "cn-hangzhou"), map[string]string{"demo-db": emulator.DemoSecretJSONValue}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := p.mountOK(t, c.params, nil)
			got := writeLikeDriver(t, resp)
			if len(got) != len(c.want) {
				t.Fatalf("files = %v, want %v", keys(got), keys(c.want))
			}
			for name, content := range c.want {
				w, ok := got[name]
				if !ok {
					t.Fatalf("missing file %q (have %v)", name, keys(got))
				}
				if string(w.data) != content {
					t.Errorf("%s: content differs (%d bytes, want %d)", name, len(w.data), len(content))
				}
				if w.mode != 0o644 {
					t.Errorf("%s: mode %v, want the request's 0644", name, w.mode)
				}
			}
			if len(resp.GetObjectVersion()) != len(resp.GetFiles()) {
				t.Errorf("%d versions for %d files", len(resp.GetObjectVersion()), len(resp.GetFiles()))
			}
			vs := versions(resp)
			for id, v := range vs {
				if v == "" {
					t.Errorf("empty version for %s", id)
				}
			}
			for id, v := range c.ids {
				if vs[id] != v {
					t.Errorf("version of %s = %q, want %q (all: %v)", id, vs[id], v, vs)
				}
			}
		})
	}
}

func TestSecretsFieldForms(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	for _, s := range []string{"null", "", "{}", "  "} {
		req := mountReq(objects("- objectName: demo-db"), nil, defaultPod)
		req.Secrets = s
		if _, err := p.client.Mount(context.Background(), req); err != nil {
			t.Errorf("secrets %q: %v", s, err)
		}
	}
	req := mountReq(objects("- objectName: demo-db"), nil, defaultPod)
	req.Permission = ""
	resp, err := p.client.Mount(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range resp.GetFiles() {
		if f.Mode == 0 {
			t.Errorf("file %s has mode 0", f.Path)
		}
	}
}

func TestVersionsChangeAfterUpstreamUpdate(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}})
	params := objects("- objectName: demo-db", "- objectName: test", "  objectType: oos")
	first := p.mountOK(t, params, nil)
	v1 := versions(first)

	newID, err := e.PutSecretValue(emulator.DemoSecretJSON, []byte(`{"username":"u2","password":"p2"}`), false)
	if err != nil {
		t.Fatal(err)
	}
	newVer, err := e.PutParameter(emulator.DemoParameter, "rotated")
	if err != nil {
		t.Fatal(err)
	}
	// Within one TTL plus one refresh the new versions are served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := p.mountOK(t, params, nil)
		v2 := versions(resp)
		if v2["kms/demo-db"] == newID && v2["oos/test"] == itoa(newVer) {
			files := writeLikeDriver(t, resp)
			if string(files["test"].data) != "rotated" || !strings.Contains(string(files["demo-db"].data), "u2") {
				t.Fatal("new versions but old content")
			}
			if v1["kms/demo-db"] == v2["kms/demo-db"] || v1["oos/test"] == v2["oos/test"] {
				t.Fatal("versions did not change")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versions %v never became %s / %d", v2, newID, newVer)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestBadInputsRefusedThroughSocket(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	for _, c := range badinput.Cases {
		t.Run(c.Name, func(t *testing.T) {
			_, err := p.mount(context.Background(), c.Params, nil)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v, want InvalidArgument: %v", status.Code(err), err)
			}
			if !strings.Contains(status.Convert(err).Message(), c.Field) {
				t.Fatalf("error %q does not name %q", status.Convert(err).Message(), c.Field)
			}
		})
	}
	if n := e.Calls("kms") + e.Calls("oos"); n != 0 {
		t.Fatalf("bad inputs caused %d upstream calls", n)
	}
	// Attribute-level garbage.
	for name, req := range map[string]func() *mountRequestMod{
		"attributes not JSON": func() *mountRequestMod { return &mountRequestMod{attrs: "{not json"} },
		"attributes huge": func() *mountRequestMod {
			return &mountRequestMod{attrs: `{"objects":"` + strings.Repeat("a", 300<<10) + `"}`}
		},
		"secrets not JSON":   func() *mountRequestMod { return &mountRequestMod{secrets: "[1,2]"} },
		"permission garbage": func() *mountRequestMod { return &mountRequestMod{perm: "rwx"} },
		// Refused instead of becoming 0644, or a mode made of low bits.
		"permission zero":           func() *mountRequestMod { return &mountRequestMod{perm: "0"} },
		"permission out of range":   func() *mountRequestMod { return &mountRequestMod{perm: "512"} },
		"permission octal digits":   func() *mountRequestMod { return &mountRequestMod{perm: "0644"} },
		"permission with file type": func() *mountRequestMod { return &mountRequestMod{perm: "33188"} },
	} {
		t.Run(name, func(t *testing.T) {
			m := req()
			r := mountReq(objects("- objectName: demo-db"), nil, defaultPod)
			if m.attrs != "" {
				r.Attributes = m.attrs
			}
			if m.secrets != "" {
				r.Secrets = m.secrets
			}
			if m.perm != "" {
				r.Permission = m.perm
			}
			_, err := p.client.Mount(context.Background(), r)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v: %v", status.Code(err), err)
			}
			if msg := status.Convert(err).Message(); m.perm != "" && (!strings.HasPrefix(msg, "permission: ") || !strings.Contains(msg, `"420" for 0644`)) {
				t.Fatalf("the error does not name the field and the fix: %s", msg)
			}
		})
	}
}

type mountRequestMod struct{ attrs, secrets, perm string }

func TestAllOrNothingNamesEveryFailure(t *testing.T) {
	e := startEmulator(t, seedWith())
	p := startProvider(t, e, providerConfig{})
	_, err := p.mount(context.Background(), objects(
		"- objectName: demo-db",
		"- objectName: no-such-secret",
		"- objectName: no-such-param",
		"  objectType: oos",
		"- objectName: plain",
		"  jmesPath: [{path: a, objectAlias: a}]",
	), nil)
	if err == nil {
		t.Fatal("mount with missing objects succeeded")
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"3 of 4 objects failed", `objects[1] "no-such-secret" (kms): not-found (Forbidden.ResourceNotFound`, `objects[2] "no-such-param" (oos): not-found (EntityNotExists.Parameter`, `objects[3] "plain" (kms)`, "not JSON"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("code %v, want InvalidArgument (the jmesPath is the most actionable)", status.Code(err))
	}
	if strings.Contains(msg, "not json") {
		t.Error("the error echoes the secret's value")
	}
}

func TestDeniedKeyAndSecondIdentityNeverSharesCache(t *testing.T) {
	e := startEmulator(t, seedWith())
	p := startProvider(t, e, providerConfig{})
	params := objects("- objectName: demo-db")
	p.mountOK(t, params, nil) // the provider identity caches demo-db
	e.ResetCounters()

	limited := map[string]string{"access_key": limitedID, "access_secret": limitedSecret}
	_, err := p.mount(context.Background(), params, limited)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("second identity: code %v, want PermissionDenied: %v", status.Code(err), err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "kms:GetSecretValue") || !strings.Contains(msg, "secret/demo-db") {
		t.Errorf("denial does not say which RAM action to grant: %s", msg)
	}
	if n := e.CallsBy("kms", "limited"); n != 1 {
		t.Errorf("the second identity made %d upstream calls, want 1 (no shared cache entry)", n)
	}
	// Allowed for the limited key: served, and cached separately.
	resp := p.mountOK(t, objects("- objectName: plain"), limited)
	if string(writeLikeDriver(t, resp)["plain"].data) != "not json" {
		t.Fatal("limited key did not get its allowed secret")
	}

	// A wrong secret for a known key id is refused even though that key id
	// has values cached.
	wrong := map[string]string{"access_key": limitedID, "access_secret": "wrong" + limitedSecret[5:]}
	_, err = p.mount(context.Background(), objects("- objectName: plain"), wrong)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong secret: code %v: %v", status.Code(err), err)
	}
	if !strings.Contains(status.Convert(err).Message(), "SignatureDoesNotMatch") {
		t.Errorf("wrong secret error: %v", err)
	}
	if strings.Contains(p.logs.String(), limitedSecret) || strings.Contains(status.Convert(err).Message(), limitedSecret[5:]) {
		t.Error("an AccessKey secret leaked into logs or errors")
	}
}

func TestConcurrentMountsCostOneCallPerObject(t *testing.T) {
	e := startEmulator(t, seedWith())
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 100 * time.Millisecond})
	e.SetFault(emulator.Fault{Route: "oos", Kind: emulator.FaultLatency, Latency: 100 * time.Millisecond})
	p := startProvider(t, e, providerConfig{})
	params := objects("- objectName: demo-db", "- objectName: demo-tls-key", "- objectName: test", "  objectType: oos")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.mount(context.Background(), params, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ route, name string }{{"kms", "demo-db"}, {"kms", "demo-tls-key"}, {"oos", "test"}} {
		if n := e.CallsFor(c.route, c.name); n != 1 {
			t.Errorf("%s %s: %d upstream calls for 20 concurrent Mounts, want 1", c.route, c.name, n)
		}
	}
}

func TestSocketLifecycle(t *testing.T) {
	e := startEmulator(t, nil)
	dir := shortTempDir(t)
	// A stale socket file left by a crash is replaced.
	stale := filepath.Join(dir, "alibabacloud.sock")
	l, err := netListenUnix(stale)
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close()
	p := startProvider(t, e, providerConfig{dir: dir})
	fi, err := os.Stat(p.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}

	// SIGTERM lets an in-flight Mount finish.
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: time.Second, Count: 1})
	res := make(chan error, 1)
	go func() {
		_, err := p.mount(context.Background(), objects("- objectName: demo-db"), nil)
		res <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("in-flight Mount failed during graceful stop: %v", err)
	}
	if _, err := os.Stat(p.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after SIGTERM: %v", err)
	}
}

func TestSecondProviderRefusesLiveSocket(t *testing.T) {
	e := startEmulator(t, nil)
	p := startProvider(t, e, providerConfig{})
	out, err := runBinary(t, "serve", "--provider-volume", p.dir, "--region", "cn-hangzhou")
	if err == nil || !strings.Contains(out, "another provider is already serving") {
		t.Fatalf("second serve on a live socket: err=%v out=%s", err, out)
	}
	if _, err := os.Stat(p.sock); err != nil {
		t.Fatal("the live socket was removed")
	}
}

// The overlap of a rolling update: provider A drains an in-flight Mount
// after SIGTERM while provider B starts on the same provider volume. A
// exiting must leave B's socket, which keeps answering the driver; B
// stopping removes its own socket.
func TestStoppingProviderLeavesTheNextOnesSocket(t *testing.T) {
	e := startEmulator(t, nil)
	a := startProvider(t, e, providerConfig{})
	e.SetFault(emulator.Fault{Route: "kms", Kind: emulator.FaultLatency, Latency: 8 * time.Second, Count: 1})
	res := make(chan error, 1)
	go func() {
		_, err := a.mount(context.Background(), objects("- objectName: demo-db"), nil)
		res <- err
	}()
	eventually(t, 20*time.Second, "the Mount never reached the emulator", func() bool {
		fs := e.Faults()
		return len(fs) == 0 || fs[0].Matched > 0
	})
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A kept its socket after SIGTERM", func() bool {
		_, err := os.Lstat(a.sock)
		return errors.Is(err, os.ErrNotExist)
	})
	b := startProvider(t, e, providerConfig{dir: a.dir})
	select {
	case err := <-a.done:
		a.done <- err
		t.Fatalf("A exited (%v) before B served: the overlap was not reached", err)
	default:
	}

	if err := a.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("A's exit: %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("A's in-flight Mount failed: %v", err)
	}
	if _, err := os.Lstat(b.sock); err != nil {
		t.Fatalf("A's exit removed B's socket: %v", err)
	}
	if err := versionOnFreshConnection(b.sock); err != nil {
		t.Fatalf("B's socket does not answer a new connection after A exited: %v", err)
	}

	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("B's exit: %v", err)
	}
	if _, err := os.Lstat(b.sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("B left its socket behind: %v", err)
	}
}

// versionOnFreshConnection dials path as the driver does and calls Version.
func versionOnFreshConnection(path string) error {
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = v1alpha1.NewCSIDriverProviderClient(conn).Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
	return err
}

// A Mount whose response would be over the driver's default 4 MiB
// (--max-call-recv-msg-size) is refused by the provider, naming the largest
// files, their sizes, the total and the flags to raise, and counted as a
// failed Mount; with both limits raised it is served.
func TestOversizeResponseNamesFilesAndFlags(t *testing.T) {
	seed := emulator.DemoSeed()
	bigA := strings.Repeat("big-value-A-", 2621440/12) // 2.5 MiB
	bigB := strings.Repeat("big-value-B-", 2097152/12) // 2 MiB
	seed.Secrets = append(seed.Secrets, emulator.Secret{Name: "big-a", Value: bigA}, emulator.Secret{Name: "big-b", Value: bigB})
	e := startEmulator(t, seed)
	p := startOps(t, e, providerConfig{})
	params := objects("- objectName: big-a", "- objectName: big-b", "- objectName: demo-db")
	var err error
	d := p.step(t, func() { _, err = p.mount(context.Background(), params, nil) })
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code %v, want ResourceExhausted: %v", status.Code(err), err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{
		"over the 4194304 bytes (4.0 MiB)",
		fmt.Sprintf(`largest "big-a" %d bytes, "big-b" %d bytes`, len(bigA), len(bigB)),
		"3 files hold",
		"--max-call-recv-msg-size", "secrets-store-csi-driver.maxCallRecvMsgSize", "--max-response-bytes",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, msg)
		}
	}
	d.want(t, 1, "alibabacloud_provider_mount_requests_total", "outcome", "too-large")
	d.want(t, 0, "alibabacloud_provider_mount_requests_total", "outcome", "success")
	if !strings.Contains(p.logs.String(), "outcome=too-large") {
		t.Errorf("the refusal is not logged as a failed Mount:\n%s", p.logs.String())
	}

	// The driver raised to 8 MiB, and the provider with it: served whole.
	q := startProvider(t, e, providerConfig{args: []string{"--max-response-bytes", "8388608"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := q.client.Mount(ctx, mountReq(params, nil, defaultPod), grpc.MaxCallRecvMsgSize(8<<20))
	if err != nil {
		t.Fatalf("Mount with both limits at 8 MiB: %v", err)
	}
	files := writeLikeDriver(t, resp)
	if len(files["big-a"].data) != len(bigA) || len(files["big-b"].data) != len(bigB) {
		t.Fatalf("the driver wrote %d and %d bytes", len(files["big-a"].data), len(files["big-b"].data))
	}
}
