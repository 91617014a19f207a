package integration

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// The class vocabulary peers have (issue 14), end to end: the real provider
// over its socket, the driver's writer laying out the files, the emulator's
// counters as the witness.

func TestFileModesAndDecoding(t *testing.T) {
	raw := []byte("\x00\x01 key material \xfe\xff")
	seed := emulator.DemoSeed()
	seed.Secrets = append(seed.Secrets,
		emulator.Secret{Name: "modes-db", Value: `{"username":"app","token":"` + base64.StdEncoding.EncodeToString(raw) + `"}`},
		emulator.Secret{Name: "enc-hex", Value: hex.EncodeToString(raw) + "\n"},
	)
	seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: "enc-b64url", Value: base64.RawURLEncoding.EncodeToString(raw)})
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{})
	resp := p.mountOK(t, objects(
		"- objectName: modes-db",
		`  filePermission: "0440"`,
		"  jmesPath:",
		`    - {path: username, objectAlias: user, filePermission: "0400"}`,
		"    - {path: token, objectAlias: token.bin, objectEncoding: base64}",
		"- objectName: enc-hex",
		"  objectEncoding: hex",
		"- objectName: enc-b64url",
		"  objectType: oos",
		"  objectEncoding: base64url",
		`  filePermission: "0444"`,
		"- objectName: demo-db",
	), nil)
	got := writeLikeDriver(t, resp)
	want := map[string]struct {
		mode uint32
		data string
	}{
		"modes-db":   {0o440, ""},
		"user":       {0o400, "app"},
		"token.bin":  {0o440, string(raw)},
		"enc-hex":    {0o644, string(raw)},
		"enc-b64url": {0o444, string(raw)},
		"demo-db":    {0o644, ""},
	}
	for path, w := range want {
		f, ok := got[path]
		if !ok {
			t.Fatalf("no file %s in %v", path, keys(got))
		}
		if uint32(f.mode.Perm()) != w.mode {
			t.Errorf("%s: mode %o, want %o", path, f.mode.Perm(), w.mode)
		}
		if w.data != "" && string(f.data) != w.data {
			t.Errorf("%s: %q, want %q", path, f.data, w.data)
		}
	}

	// A value that does not decode fails its object, naming the field and
	// never quoting the value.
	_, err := p.mount(context.Background(), objects("- objectName: demo-db", "  objectEncoding: hex"), nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "objects[0]") || !strings.Contains(err.Error(), "objectEncoding") {
		t.Fatalf("undecodable value: %v", err)
	}
}

func TestKeysAsFilesEndToEnd(t *testing.T) {
	many := make([]string, 0, 201)
	for i := 0; i < 201; i++ {
		many = append(many, fmt.Sprintf(`"k%03d":"v"`, i))
	}
	seed := emulator.DemoSeed()
	seed.Secrets = append(seed.Secrets,
		emulator.Secret{Name: "kv-db", Value: `{"user":"app","password":"p$ss \"q\"","port":5432,"tls":{"ca":"x"}}`},
		emulator.Secret{Name: "kv-slash", Value: `{"hidden/key-name":"x"}`},
		emulator.Secret{Name: "kv-many", Value: "{" + strings.Join(many, ",") + "}"},
		emulator.Secret{Name: "kv-bomb", Value: "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"},
	)
	seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: "kv-yaml", Value: "db:\n  host: h1\nname: app\n"})
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{})
	resp := p.mountOK(t, objects(
		"- objectName: kv-db",
		"  keysAsFiles: true",
		`  filePermission: "0400"`,
		"- objectName: kv-yaml",
		"  objectType: oos",
		"  keysAsFiles: true",
		"  objectFormat: yaml",
		"  jmesPath:",
		"    - {path: db.host, objectAlias: dbhost}",
	), nil)
	got := writeLikeDriver(t, resp)
	for path, v := range map[string]string{
		"kv-db/user": "app", "kv-db/password": `p$ss "q"`, "kv-db/port": "5432", "kv-db/tls": `{"ca":"x"}`,
		"kv-yaml/name": "app", "kv-yaml/db": `{"host":"h1"}`, "dbhost": "h1",
	} {
		if f, ok := got[path]; !ok || string(f.data) != v {
			t.Fatalf("%s = %q (present %v), want %q; files %v", path, f.data, ok, v, keys(got))
		}
	}
	if m := got["kv-db/user"].mode.Perm(); m != 0o400 {
		t.Fatalf("key file mode %o", m)
	}
	vers := versions(resp)
	if vers["kms/kv-db/user"] == "" || vers["kms/kv-db/user"] != vers["kms/kv-db/port"] {
		t.Fatalf("key files carry the object's version: %v", vers)
	}

	refusals := []struct {
		class []string
		want  string
	}{
		{[]string{"- objectName: kv-slash", "  keysAsFiles: true"}, "slash"},
		{[]string{"- objectName: kv-many", "  keysAsFiles: true"}, "over the limit"},
		{[]string{"- objectName: kv-bomb", "  keysAsFiles: true", "  objectFormat: yaml"}, "not YAML"},
		{[]string{"- objectName: kv-db", "  keysAsFiles: true", "- objectName: demo-db", "  objectAlias: kv-db/user"}, `collides with the file "kv-db/user"`},
	}
	for _, r := range refusals {
		params := objects(r.class...)
		if strings.Contains(r.want, "collides") {
			params["pathTranslation"] = "False"
		}
		start := time.Now()
		_, err := p.mount(context.Background(), params, nil)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), r.want) || !strings.Contains(err.Error(), "objects[0]") {
			t.Fatalf("%v: %v", r.class, err)
		}
		if strings.Contains(err.Error(), "hidden/key-name") {
			t.Fatalf("the error quotes a key of the value: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("refusal took %v", d)
		}
	}
}

func TestPlainParameters(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.PlainParameters = append(seed.PlainParameters, emulator.Parameter{Name: "app-config", Versions: []string{`{"mode":"v1"}`, `{"mode":"v2"}`}})
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{})
	resp := p.mountOK(t, objects(
		"- objectName: app-config",
		"  objectType: oos-parameter",
		"  jmesPath:",
		"    - {path: mode, objectAlias: mode}",
		"- objectName: app-config",
		"  objectType: oos-parameter",
		`  objectVersion: "1"`,
		"  objectAlias: app-config.v1",
	), nil)
	got := writeLikeDriver(t, resp)
	if string(got["mode"].data) != "v2" || string(got["app-config.v1"].data) != `{"mode":"v1"}` {
		t.Fatalf("files %q / %q", got["mode"].data, got["app-config.v1"].data)
	}
	if v := versions(resp); v["oos-parameter/app-config"] != "2" || v["oos-parameter/app-config.v1"] != "1" {
		t.Fatalf("versions %v", v)
	}
	if n := e.CallsAction("oos", "GetParameter"); n != 2 {
		t.Fatalf("%d GetParameter calls, want 2", n)
	}
	if n := e.CallsAction("oos", "GetSecretParameter"); n != 0 {
		t.Fatalf("a plain parameter was read as an encrypted one (%d calls)", n)
	}
	// Everything else works as for oos: a history (ListParameterVersions)
	// and key files.
	if _, err := e.PutPlainParameter("app-config", `{"mode":"v3"}`); err != nil {
		t.Fatal(err)
	}
	hp := startProvider(t, e, providerConfig{})
	resp = hp.mountOK(t, objects(
		"- objectName: app-config",
		"  objectType: oos-parameter",
		"  objectVersionHistory: 2",
		"- objectName: app-config",
		"  objectType: oos-parameter",
		"  objectAlias: kv",
		"  keysAsFiles: true",
	), nil)
	got = writeLikeDriver(t, resp)
	if string(got["app-config/0"].data) != `{"mode":"v3"}` || string(got["app-config/1"].data) != `{"mode":"v2"}` || string(got["kv/mode"].data) != "v3" {
		t.Fatalf("plain history and keys: %v", keys(got))
	}
	if v := versions(resp); v["oos-parameter/app-config/0"] != "3" || v["oos-parameter/app-config/1"] != "2" {
		t.Fatalf("versions %v", v)
	}
	if e.CallsAction("oos", "ListParameterVersions") != 1 {
		t.Fatal("a plain history without ListParameterVersions")
	}

	// Missing: the error names the kind of object.
	_, err := p.mount(context.Background(), objects("- objectName: nope", "  objectType: oos-parameter"), nil)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "parameter") {
		t.Fatalf("missing plain parameter: %v", err)
	}
}

func TestVersionHistory(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.Secrets = append(seed.Secrets, emulator.Secret{Name: "hist-db", Value: "v-one"})
	seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: "hist-p", Value: "p-one"})
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}})
	class := objects(
		"- objectName: hist-db",
		"  objectVersionHistory: 3",
		"- objectName: hist-p",
		"  objectType: oos",
		"  objectVersionHistory: 2",
	)
	resp := p.mountOK(t, class, nil)
	got := writeLikeDriver(t, resp)
	if len(got) != 2 || string(got["hist-db/0"].data) != "v-one" || string(got["hist-p/0"].data) != "p-one" {
		t.Fatalf("before rotation: %v", keys(got))
	}
	// Two rotations of each.
	for _, v := range []string{"two", "three"} {
		if _, err := e.PutSecretValue("hist-db", []byte("v-"+v), false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.PutParameter("hist-p", "p-"+v); err != nil {
			t.Fatal(err)
		}
	}
	var vers map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp = p.mountOK(t, class, nil)
		got = writeLikeDriver(t, resp)
		vers = versions(resp)
		if string(got["hist-db/0"].data) == "v-three" && len(got) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history never caught up: %v", vers)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for path, v := range map[string]string{"hist-db/0": "v-three", "hist-db/1": "v-two", "hist-db/2": "v-one", "hist-p/0": "p-three", "hist-p/1": "p-two"} {
		if string(got[path].data) != v {
			t.Fatalf("%s = %q, want %q", path, got[path].data, v)
		}
	}
	if vers["kms/hist-db/0"] == vers["kms/hist-db/1"] || vers["oos/hist-p/0"] != "3" || vers["oos/hist-p/1"] != "2" {
		t.Fatalf("each version file has its own version: %v", vers)
	}
	if e.CallsAction("kms", "ListSecretVersionIds") == 0 || e.CallsAction("oos", "ListSecretParameterVersions") == 0 {
		t.Fatal("history read without listing versions")
	}
}

func TestFailoverRegion(t *testing.T) {
	const primary, secondary = "cn-hangzhou", "cn-shanghai"
	seed := emulator.DemoSeed()
	seed.Secrets = append(seed.Secrets, emulator.Secret{Name: "fo-db", Value: "from-hangzhou"})
	seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: "fo-param", Value: "p-hangzhou"})
	seed.Regions = map[string]emulator.RegionSeed{secondary: {
		Secrets:    []emulator.Secret{{Name: "fo-db", Value: "from-shanghai"}, {Name: "only-shanghai", Value: "x"}},
		Parameters: []emulator.Parameter{{Name: "fo-param", Value: "p-shanghai"}},
	}}
	e := startEmulator(t, seed)
	if err := e.AddRegion(secondary); err != nil {
		t.Fatal(err)
	}
	cfg := providerConfig{args: []string{
		"--kms-endpoint", secondary + "=" + e.RegionURL(secondary),
		"--oos-endpoint", secondary + "=" + e.RegionURL(secondary),
		"--cache-ttl", "2s",
	}}
	class := objects("- objectName: fo-db", "- objectName: fo-param", "  objectType: oos")
	class["failoverRegion"] = secondary

	// Healthy primary: read there, and nothing from the failover region.
	p := startOps(t, e, cfg)
	resp := p.mountOK(t, class, nil)
	if got := writeLikeDriver(t, resp); string(got["fo-db"].data) != "from-hangzhou" || string(got["fo-param"].data) != "p-hangzhou" {
		t.Fatalf("healthy primary: %q %q", got["fo-db"].data, got["fo-param"].data)
	}
	if n := e.CallsIn(secondary, ""); n != 0 {
		t.Fatalf("%d calls to the failover region while the primary was healthy", n)
	}

	// KMS and OOS down in the primary region: every retry fails, the same
	// identity reads the failover region, and the version says so.
	for _, route := range []string{"kms", "oos"} {
		e.SetFault(emulator.Fault{Region: primary, Route: route, Kind: emulator.FaultError, Status: 503})
	}
	var vers map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp = p.mountOK(t, class, nil)
		vers = versions(resp)
		if strings.HasSuffix(vers["kms/fo-db"], "@"+secondary) && strings.HasSuffix(vers["oos/fo-param"], "@"+secondary) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never failed over: %v", vers)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := writeLikeDriver(t, resp); string(got["fo-db"].data) != "from-shanghai" || string(got["fo-param"].data) != "p-shanghai" {
		t.Fatalf("after failover: %q %q", got["fo-db"].data, got["fo-param"].data)
	}
	s := p.scrape(t)
	if s.Sum("alibabacloud_provider_failovers_total", "service", "kms", "result", "ok") < 1 ||
		s.Sum("alibabacloud_provider_failovers_total", "service", "oos", "result", "ok") < 1 {
		t.Fatalf("failovers not counted:\n%v", s.Families("alibabacloud_provider_failovers"))
	}

	// The primary recovers: the next refresh reads it again, and the
	// version switches back.
	e.ClearFaults()
	deadline = time.Now().Add(30 * time.Second)
	for {
		vers = versions(p.mountOK(t, class, nil))
		if !strings.Contains(vers["kms/fo-db"], "@") && !strings.Contains(vers["oos/fo-param"], "@") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never switched back: %v", vers)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A missing object or a denial in the primary is an answer: no failover.
	before := e.CallsIn(secondary, "")
	missing := objects("- objectName: only-shanghai")
	missing["failoverRegion"] = secondary
	if _, err := p.mount(context.Background(), missing, nil); status.Code(err) != codes.NotFound {
		t.Fatalf("missing in the primary: %v", err)
	}
	q := startProvider(t, e, cfg)
	e.SetFault(emulator.Fault{Region: primary, Route: "kms", Resource: "fo-db", Kind: emulator.FaultDeny})
	if _, err := q.mount(context.Background(), class, nil); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied in the primary: %v", err)
	}
	if n := e.CallsIn(secondary, ""); n != before {
		t.Fatalf("%d calls to the failover region for a missing or denied object", n-before)
	}
}

func TestBatchedOOSReads(t *testing.T) {
	seed := emulator.DemoSeed()
	var lines, plain []string
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("batch-%02d", i)
		seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: name, Value: "value-" + name})
		seed.PlainParameters = append(seed.PlainParameters, emulator.Parameter{Name: "plain-" + name, Value: "plain-value-" + name})
		lines = append(lines, "- objectName: "+name, "  objectType: oos")
		plain = append(plain, "- objectName: plain-"+name, "  objectType: oos-parameter")
	}
	e := startEmulator(t, seed)
	p := startProvider(t, e, providerConfig{})

	// A cold Mount of 10 encrypted parameters: one call, not 10.
	resp := p.mountOK(t, objects(lines...), nil)
	got := writeLikeDriver(t, resp)
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("batch-%02d", i)
		if string(got[name].data) != "value-"+name {
			t.Fatalf("%s = %q", name, got[name].data)
		}
	}
	if n, single := e.CallsAction("oos", "GetSecretParameters"), e.CallsAction("oos", "GetSecretParameter"); n != 1 || single != 0 {
		t.Fatalf("cold Mount of 10 parameters: %d GetSecretParameters and %d GetSecretParameter calls, want 1 and 0", n, single)
	}
	if v := versions(resp); v["oos/batch-03"] != "1" {
		t.Fatalf("versions %v", v)
	}

	// Ten pods mounting 10 common parameters at once: still one call.
	q := startProvider(t, e, providerConfig{})
	e.ResetCounters()
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		go func(i int) {
			pd := defaultPod
			pd.name, pd.uid = fmt.Sprintf("pod-%d", i), fmt.Sprintf("uid-%d", i)
			_, err := q.mountAs(context.Background(), pd, objects(plain...), nil)
			errs <- err
		}(i)
	}
	for i := 0; i < 10; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n, all := e.CallsAction("oos", "GetParameters"), e.Calls("oos"); n != 1 || all != 1 {
		t.Fatalf("10 pods x 10 parameters: %d GetParameters of %d OOS calls, want 1 of 1", n, all)
	}

	// A missing name is answered exactly as a single read would: that
	// object fails NotFound, the others are read and cached.
	r := startProvider(t, e, providerConfig{})
	e.ResetCounters()
	withMissing := append(append([]string{}, lines[:6]...), "- objectName: batch-missing", "  objectType: oos")
	_, err := r.mount(context.Background(), objects(withMissing...), nil)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `objects[3] "batch-missing"`) || strings.Count(err.Error(), "objects[") != 1 {
		t.Fatalf("missing name: %v", err)
	}
	if n := e.CallsAction("oos", "GetSecretParameter"); n != 1 {
		t.Fatalf("the missing name was read alone %d times, want 1", n)
	}
	calls := e.Calls("oos")
	r.mountOK(t, objects(lines[:6]...), nil)
	if n := e.Calls("oos"); n != calls {
		t.Fatalf("the found names were not cached: %d more calls", n-calls)
	}

	// A denied name refuses the whole batch call upstream; each name is then
	// read alone, so only the denied object fails.
	s := startProvider(t, e, providerConfig{})
	e.SetPolicy(emulator.DemoPrincipal, emulator.Policy{Deny: map[string][]string{"oos:*": {"batch-05"}}})
	e.ResetCounters()
	_, err = s.mount(context.Background(), objects(lines...), nil)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"batch-05"`) || !strings.Contains(err.Error(), "1 of 10 objects failed") {
		t.Fatalf("denied name: %v", err)
	}
	if n, single := e.CallsAction("oos", "GetSecretParameters"), e.CallsAction("oos", "GetSecretParameter"); n != 1 || single != 10 {
		t.Fatalf("a refused batch: %d batch and %d single calls, want 1 and 10", n, single)
	}
}
