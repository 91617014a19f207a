package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// Directory objects (issue 15), end to end: an OOS path and a set of KMS
// tags become directories; listings are cached and coalesced like values,
// the namespace policy sees every listed name before its value is read,
// and the caps refuse an oversized listing. Optional objects ride along.

// pathSeed holds 25 encrypted parameters directly under /app/prod/ (three
// pages of GetSecretParametersByPath), one below it and one beside it.
func pathSeed() *emulator.Seed {
	seed := emulator.DemoSeed()
	for i := 0; i < 25; i++ {
		seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: fmt.Sprintf("/app/prod/p%02d", i), Value: fmt.Sprintf("prodval-%02d", i)})
	}
	seed.Parameters = append(seed.Parameters,
		emulator.Parameter{Name: "/app/prod/db/user", Value: "nested"},
		emulator.Parameter{Name: "/app/dev/p00", Value: "beside"},
	)
	return seed
}

var prodPath = objects("- objectPath: /app/prod/", "  objectType: oos", "  objectAlias: prod", `  filePermission: "0440"`)

func TestOOSPathDirectory(t *testing.T) {
	e := startEmulator(t, pathSeed())
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}})

	// Ten pods mount the path at once: one listing (three pages) and one
	// read per parameter, batched ten names a call, for all of them.
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pd := pod{name: fmt.Sprintf("web-%d", i), namespace: "shop", serviceAccount: "web", uid: fmt.Sprintf("uid-%d", i)}
			_, errs[i] = p.mountAs(context.Background(), pd, prodPath, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
	}
	if n := e.CallsAction("oos", "GetSecretParametersByPath"); n != 3 {
		t.Errorf("10 pods cost %d listing pages, want 3 (one listing of 25)", n)
	}
	if n := e.CallsAction("oos", "GetSecretParameters"); n != 3 {
		t.Errorf("10 pods cost %d batch reads, want 3 (25 names, 10 a call)", n)
	}
	if n := e.CallsAction("oos", "GetSecretParameter"); n != 0 {
		t.Errorf("%d single reads, want none", n)
	}
	for _, r := range e.Requests() {
		if r.Action == "GetSecretParametersByPath" && r.Params["WithDecryption"] == "true" {
			t.Fatalf("the listing asked for decrypted values: %v", r.Params)
		}
	}

	resp := p.mountOK(t, prodPath, nil)
	got := writeLikeDriver(t, resp)
	vers := versions(resp)
	if len(got) != 25 {
		t.Fatalf("%d files, want 25: %v", len(got), keys(got))
	}
	for i := 0; i < 25; i++ {
		path := fmt.Sprintf("prod/p%02d", i)
		f, ok := got[path]
		if !ok || string(f.data) != fmt.Sprintf("prodval-%02d", i) || f.mode.Perm() != 0o440 {
			t.Fatalf("%s: %q mode %o (present %v)", path, f.data, f.mode.Perm(), ok)
		}
		if vers["oos/"+path] != "1" {
			t.Fatalf("%s: version %q, want 1", path, vers["oos/"+path])
		}
	}

	// Upstream: one added, one deleted, one rotated. After the TTL the
	// directory follows, each file with its own version.
	if _, err := e.PutParameter("/app/prod/zz-new", "fresh"); err != nil {
		t.Fatal(err)
	}
	if !e.DeleteParameter("/app/prod/p03") {
		t.Fatal("delete failed")
	}
	if _, err := e.PutParameter("/app/prod/p07", "rotated"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp = p.mountOK(t, prodPath, nil)
		got, vers = writeLikeDriver(t, resp), versions(resp)
		// The listing and the values expire on their own schedules.
		if _, added := got["prod/zz-new"]; added && string(got["prod/p07"].data) == "rotated" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the added parameter or the rotated value never appeared: %v", keys(got))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, ok := got["prod/p03"]; ok {
		t.Fatal("the deleted parameter is still there")
	}
	if string(got["prod/p07"].data) != "rotated" || vers["oos/prod/p07"] != "2" || vers["oos/prod/p08"] != "1" {
		t.Fatalf("p07 %q v%s, p08 v%s", got["prod/p07"].data, vers["oos/prod/p07"], vers["oos/prod/p08"])
	}
	if len(got) != 25 || string(got["prod/zz-new"].data) != "fresh" {
		t.Fatalf("%d files: %v", len(got), keys(got))
	}

	// Recursive: the sub-path's parameter too, named by pathTranslation;
	// with "False" it is a sub-directory.
	resp = p.mountOK(t, objects("- objectPath: /app/prod", "  objectType: oos", "  objectAlias: all", "  recursive: true"), nil)
	if got := writeLikeDriver(t, resp); string(got["all/db_user"].data) != "nested" || len(got) != 26 {
		t.Fatalf("recursive: %v", keys(got))
	}
	resp = p.mountOK(t, merge(objects("- objectPath: /app/prod/", "  objectType: oos", "  objectAlias: all", "  recursive: true"), "pathTranslation", "False"), nil)
	if got := writeLikeDriver(t, resp); string(got["all/db/user"].data) != "nested" {
		t.Fatalf("recursive, no translation: %v", keys(got))
	}
}

func TestOOSPathDirectoryPlainAndCaps(t *testing.T) {
	seed := pathSeed()
	seed.PlainParameters = append(seed.PlainParameters,
		emulator.Parameter{Name: "/cfg/web/port", Value: "8080"},
		emulator.Parameter{Name: "/cfg/web/host", Value: "example.com"},
	)
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{args: []string{"--max-listed-objects", "20"}})
	resp := p.mountOK(t, objects("- objectPath: /cfg/web/", "  objectType: oos-parameter", "  objectAlias: web"), nil)
	got := writeLikeDriver(t, resp)
	if string(got["web/port"].data) != "8080" || string(got["web/host"].data) != "example.com" || len(got) != 2 {
		t.Fatalf("plain path: %v", keys(got))
	}

	// 25 under the path is over the cap of 20: refused, naming the flag,
	// and no value is read.
	e.ResetCounters()
	_, err := p.mount(context.Background(), prodPath, nil)
	wantRefused(t, err, codes.InvalidArgument, "objectPath \"/app/prod/\"", "--max-listed-objects")
	if n := e.CallsAction("oos", "GetSecretParameters") + e.CallsAction("oos", "GetSecretParameter"); n != 0 {
		t.Fatalf("%d reads for a refused listing", n)
	}
	if n := e.CallsAction("oos", "GetSecretParametersByPath"); n > 3 {
		t.Fatalf("%d listing pages: the listing stops past the cap", n)
	}
}

func tagSeed() *emulator.Seed {
	seed := emulator.DemoSeed()
	pay := map[string]string{"team": "payments", "env": "prod"}
	seed.Secrets = append(seed.Secrets,
		emulator.Secret{Name: "pay-api", Value: "k1", Tags: pay},
		emulator.Secret{Name: "pay-db", Value: `{"password":"k2"}`, Tags: pay},
		emulator.Secret{Name: "pay-root", Value: "k3", Tags: pay},
		emulator.Secret{Name: "pay-dev", Value: "k4", Tags: map[string]string{"team": "payments", "env": "dev"}},
		emulator.Secret{Name: "shop-api", Value: "k5", Tags: map[string]string{"team": "shop", "env": "prod"}},
	)
	return seed
}

var payTags = objects("- objectTags: {team: payments, env: prod}", "  objectAlias: pay")

func TestKMSTagDirectory(t *testing.T) {
	e := startEmulator(t, tagSeed())
	p := startProvider(t, e, providerConfig{})
	resp := p.mountOK(t, payTags, nil)
	got := writeLikeDriver(t, resp)
	want := map[string]string{"pay/pay-api": "k1", "pay/pay-db": `{"password":"k2"}`, "pay/pay-root": "k3"}
	if len(got) != len(want) {
		t.Fatalf("files %v, want %v", keys(got), keys(want))
	}
	for path, v := range want {
		if string(got[path].data) != v {
			t.Fatalf("%s = %q, want %q", path, got[path].data, v)
		}
	}
	if vers := versions(resp); vers["kms/pay/pay-api"] == "" {
		t.Fatalf("no version for a listed secret: %v", vers)
	}
	if n := e.CallsAction("kms", "ListSecrets"); n != 1 {
		t.Fatalf("%d ListSecrets calls, want 1", n)
	}
	// A second Mount is served from the cache: no call at all.
	noCalls(t, e, "a warm Mount of a tag directory", func() { p.mountOK(t, payTags, nil) })

	// A denied listing names the listing's RAM actions and resource.
	e.SetPolicy(emulator.DemoPrincipal, emulator.Policy{Deny: map[string][]string{emulator.ActionKMSListSecrets: {"*"}}})
	_, err := p.mount(context.Background(), objects("- objectTags: {team: other}", "  objectAlias: o"), nil)
	wantRefused(t, err, codes.PermissionDenied, "objectTags {team=other}", "RAM action kms:ListSecrets and kms:GetSecretValue on acs:kms:cn-hangzhou:*:secret/*")
}

// The namespace policy sees every listed name before its value is read:
// a name it does not grant is left out, and never read.
func TestListedNamesMeetThePolicy(t *testing.T) {
	e := startEmulator(t, tagSeed())
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(`rules:
  - namespace: team-a
    serviceAccount: app
    kms: ["pay-api", "pay-db"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProvider(t, e, providerConfig{args: []string{"--policy", path}})
	got := p.mountPodOK(t, podA, payTags, nil)
	names := keys(got)
	sort.Strings(names)
	if strings.Join(names, ",") != "pay/pay-api,pay/pay-db" {
		t.Fatalf("files %v, want pay-api and pay-db only", names)
	}
	if n := e.CallsFor("kms", "pay-root"); n != 0 {
		t.Fatalf("%d calls for the name the policy hides", n)
	}
	if p.logLines("listed objects hidden by the namespace policy", 1) < 1 {
		t.Fatal("no log line says a listed name was hidden")
	}
	// A namespace without a rule gets an empty directory: nothing read.
	e.ResetCounters()
	resp, err := p.mountPod(t, podB, payTags, nil)
	if err != nil || len(resp.GetFiles()) != 0 {
		t.Fatalf("podB: %v, %d files", err, len(resp.GetFiles()))
	}
	if n := e.CallsAction("kms", "GetSecretValue"); n != 0 {
		t.Fatalf("%d reads for a namespace the policy grants nothing", n)
	}
}

// A listed name that cannot name a file is an error naming it; names are
// never rewritten.
func TestListedNameCollisionIsRefused(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.Parameters = append(seed.Parameters,
		emulator.Parameter{Name: "/c/a/b", Value: "1"},
		emulator.Parameter{Name: "/c/a_b", Value: "2"},
	)
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{})
	_, err := p.mount(context.Background(), objects("- objectPath: /c/", "  objectType: oos", "  objectAlias: c", "  recursive: true"), nil)
	wantRefused(t, err, codes.InvalidArgument, `"/c/a/b"`, `"/c/a_b"`, "pathTranslation")
}

func TestOptionalObject(t *testing.T) {
	e := startEmulator(t, emulator.DemoSeed())
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}})
	class := objects("- objectName: demo-db", "- objectName: maybe-later", "  optional: true", "  jmesPath:", "    - {path: user, objectAlias: later-user}")
	resp := p.mountOK(t, class, nil)
	got, vers := writeLikeDriver(t, resp), versions(resp)
	if _, ok := got["maybe-later"]; ok || len(got) != 1 {
		t.Fatalf("files %v: the missing optional object has none", keys(got))
	}
	if vers["kms/maybe-later"] != "absent" {
		t.Fatalf("versions %v: the missing object's is the fixed marker", vers)
	}
	// Absence is cached like a value: the next Mount makes no call.
	noCalls(t, e, "a warm Mount with a missing optional object", func() { p.mountOK(t, class, nil) })

	// Created upstream: after the TTL the files appear, with a new version.
	if _, err := e.PutSecretValue("maybe-later", []byte(`{"user":"u1"}`), false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = p.mountOK(t, class, nil)
		got, vers = writeLikeDriver(t, resp), versions(resp)
		if _, ok := got["maybe-later"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the created object never appeared: %v", keys(got))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if string(got["later-user"].data) != "u1" || vers["kms/maybe-later"] == "absent" || vers["kms/maybe-later"] == "" {
		t.Fatalf("later-user %q, version %q", got["later-user"].data, vers["kms/maybe-later"])
	}

	// Only "does not exist" is optional: a denial still fails the Mount.
	e.SetPolicy(emulator.DemoPrincipal, emulator.Policy{Deny: map[string][]string{emulator.ActionKMSGetSecretValue: {"denied-one"}}})
	_, err := p.mount(context.Background(), objects("- objectName: denied-one", "  optional: true"), nil)
	wantRefused(t, err, codes.PermissionDenied, "denied-one")
}

// doctor reads a directory object's listing, and for a denied listing
// prints the RAM statement with the listing action.
func TestDoctorDirectoryObject(t *testing.T) {
	e := startEmulator(t, pathSeed())
	out, code := runDoctorStdin(t, e, nil, class("dirs", "    objects: |\n      - objectPath: /app/prod/\n        objectType: oos\n        objectAlias: prod\n"), "--region", "cn-hangzhou", "--class", "-")
	if code != 0 {
		t.Fatalf("doctor on a path: exit %d:\n%s", code, out)
	}
	e.SetPolicy(emulator.DemoPrincipal, emulator.Policy{Deny: map[string][]string{emulator.ActionKMSListSecrets: {"*"}}})
	out, code = runDoctorStdin(t, e, nil, class("tags", "    objects: |\n      - objectTags: {team: payments}\n        objectAlias: pay\n"), "--region", "cn-hangzhou", "--class", "-")
	if code == 0 || !strings.Contains(out, "kms:ListSecrets") || !strings.Contains(out, "kms:GetSecretValue") {
		t.Fatalf("doctor on a denied listing: exit %d:\n%s", code, out)
	}
}
