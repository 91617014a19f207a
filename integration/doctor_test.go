package integration

// `doctor` end to end: the real binary against the emulator, with the same
// flags and environment as serve.

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// runDoctorBin runs `doctor` with the demo AccessKey (unless env overrides)
// against e, and returns its combined output and exit code.
func runDoctorBin(t *testing.T, e *emulator.Emulator, env map[string]string, args ...string) (string, int) {
	t.Helper()
	return runDoctorStdin(t, e, env, "", args...)
}

// runDoctorStdin is runDoctorBin with stdin (for --class -).
func runDoctorStdin(t *testing.T, e *emulator.Emulator, env map[string]string, stdin string, args ...string) (string, int) {
	t.Helper()
	all := []string{"doctor", "--kms-endpoint", e.URL(), "--oos-endpoint", e.URL(), "--sts-endpoint", e.TLSEndpoint(), "--timeout", "10s"}
	all = append(all, args...)
	vars := map[string]string{
		"ACCESS_KEY_ID":                       emulator.DemoAccessKeyID,
		"SECRET_ACCESS_KEY":                   emulator.DemoAccessKeySecret,
		"SSL_CERT_FILE":                       e.CAFile(),
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
		"PATH":                                os.Getenv("PATH"),
	}
	for k, v := range env {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	cmd := exec.Command(providerBin, all...)
	cmd.Stdin = strings.NewReader(stdin)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err, timedOut := runBounded(cmd, 60*time.Second)
	if timedOut {
		t.Fatalf("doctor did not finish:\n%s", out)
	}
	if l := leaks(out); len(l) > 0 {
		t.Errorf("doctor output leaks %d sensitive values (%v)", len(l), l)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out, code
}

func writeClass(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "class.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func class(name, params string) string {
	return "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: " + name +
		"\nspec:\n  provider: alibabacloud\n  parameters:\n" + params
}

// row finds the table row of an object and returns its columns.
func row(t *testing.T, out, object string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 7 && f[0] == object && (f[1] == "kms" || f[1] == "oos") {
			return f
		}
	}
	t.Fatalf("no row for %s:\n%s", object, out)
	return nil
}

// policyAfter extracts the RAM policy JSON printed in the fix of ref.
func policyAfter(t *testing.T, out, ref string) ramPolicyDoc {
	t.Helper()
	i := strings.Index(out, ref+": ")
	if i < 0 {
		t.Fatalf("no fix for %s:\n%s", ref, out)
	}
	rest := out[i:]
	start := strings.Index(rest, "\n    {\n")
	end := strings.Index(rest, "\n    }\n")
	if start < 0 || end < start {
		t.Fatalf("no policy JSON in the fix of %s:\n%s", ref, rest)
	}
	var p ramPolicyDoc
	if err := json.Unmarshal([]byte(rest[start:end+6]), &p); err != nil {
		t.Fatalf("the policy of %s is not JSON: %v\n%s", ref, err, rest[start:end+6])
	}
	return p
}

type ramPolicyDoc struct {
	Version   string
	Statement []struct {
		Effect   string
		Action   []string
		Resource []string
	}
}

func TestDoctorMixOfGoodMissingAndDenied(t *testing.T) {
	seed := emulator.DemoSeed()
	seed.Secrets = append(seed.Secrets, emulator.Secret{Name: "locked", Value: "locked-value-0123456789"})
	seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: "locked-param", Value: "locked-param-value-0123"})
	seed.Policies = map[string]emulator.Policy{emulator.DemoPrincipal: {Deny: map[string][]string{
		"kms:GetSecretValue": {"locked"}, "oos:GetSecretParameter": {"locked-param"},
	}}}
	e := startEmulator(t, seed)
	path := writeClass(t, class("mixed", `    region: cn-hangzhou
    objects: |
      - objectName: demo-db
        jmesPath:
          - {path: username, objectAlias: db-username}
      - objectName: test
        objectType: oos
      - objectName: no-such-secret
      - objectName: locked
      - objectName: locked-param
        objectType: oos
`))
	out, code := runDoctorBin(t, e, nil, "--class", path, "--region", "cn-hangzhou")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"Class mixed (" + path + "), region cn-hangzhou, 5 objects", "identity:   env-access-key AccessKey LTAI****000", "credential: ok", "3 of 5 objects failed; the fixes are above."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+OBJECT\s+TYPE\s+RESULT\s+CODE\s+VERSION\s+SIZE\s+FILES$`).MatchString(out) {
		t.Errorf("no table header:\n%s", out)
	}
	for _, c := range []struct{ object, typ, result, code, version string }{
		{"demo-db", "kms", "ok", "-", "v1"},
		{"test", "oos", "ok", "-", "1"},
		{"no-such-secret", "kms", "not-found", "Forbidden.ResourceNotFound", "-"},
		{"locked", "kms", "permission-denied", "Forbidden.NoPermission", "-"},
		{"locked-param", "oos", "permission-denied", "", "-"},
	} {
		r := row(t, out, c.object)
		if r[1] != c.typ || r[2] != c.result || (c.code != "" && r[3] != c.code) || r[4] != c.version {
			t.Errorf("row %v, want %+v", r, c)
		}
	}
	// Good rows show size and files, never the value.
	if r := row(t, out, "demo-db"); strings.Join(r[5:], " ") != "49 bytes demo-db, db-username" {
		t.Errorf("demo-db row %v", r)
	}
	if strings.Contains(out, "testpassword") || strings.Contains(out, "locked-value") {
		t.Fatal("doctor printed a secret value")
	}
	// Fixes: the exact action and resource, as a RAM policy document.
	kms := policyAfter(t, out, `objects[3] "locked" (kms)`)
	if kms.Version != "1" || len(kms.Statement) != 1 || kms.Statement[0].Effect != "Allow" ||
		strings.Join(kms.Statement[0].Action, ",") != "kms:GetSecretValue" ||
		strings.Join(kms.Statement[0].Resource, ",") != "acs:kms:cn-hangzhou:*:secret/locked" {
		t.Errorf("KMS policy %+v", kms)
	}
	oos := policyAfter(t, out, `objects[4] "locked-param" (oos)`)
	if strings.Join(oos.Statement[0].Action, ",") != "oos:GetSecretParameter" ||
		strings.Join(oos.Statement[0].Resource, ",") != "acs:oos:cn-hangzhou:*:secretparameter/locked-param" {
		t.Errorf("OOS policy %+v", oos)
	}
	if !strings.Contains(out, `KMS has no secret "no-such-secret" in region cn-hangzhou`) {
		t.Errorf("no not-found fix:\n%s", out)
	}
	// Only failures get a fix.
	if strings.Contains(out, `objects[0] "demo-db"`) {
		t.Errorf("a passing object got a fix:\n%s", out)
	}
}

func TestDoctorAllGood(t *testing.T) {
	e := startEmulator(t, nil)
	// A file with other documents around the class (as in examples/).
	path := writeClass(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n"+class("good", `    objects: |
      - objectName: demo-db
      - objectName: demo-tls-key
        objectAlias: tls/key.der
      - objectName: test
        objectType: oos
`)+"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n")
	out, code := runDoctorBin(t, e, nil, "--region", "cn-hangzhou", "--class", path)
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	if !strings.Contains(out, "All 3 objects readable.") || strings.Contains(out, "Fixes") {
		t.Errorf("output:\n%s", out)
	}
	if r := row(t, out, "demo-tls-key"); r[5] != "19" || r[7] != "tls_key.der" {
		t.Errorf("demo-tls-key row %v", r)
	}
	// --class repeats; serve's command line (with its ops flags) is accepted.
	path2 := writeClass(t, class("second", "    region: cn-hangzhou\n    objects: |\n      - objectName: test\n        objectType: oos\n"))
	out, code = runDoctorBin(t, e, nil, "--class", path, "--class", path2, "--region", "cn-hangzhou",
		"--provider-volume", "/nonexistent", "--metrics-addr", ":8080", "--health-addr", ":8081")
	if code != 0 || !strings.Contains(out, "Class second") || !strings.Contains(out, "All 4 objects readable.") {
		t.Errorf("two classes: exit %d:\n%s", code, out)
	}
	// --class - reads the manifest from stdin (kubectl exec -i … < class.yaml).
	out, code = runDoctorStdin(t, e, nil, class("piped", "    objects: |\n      - objectName: demo-db\n"), "--region", "cn-hangzhou", "--class", "-")
	if code != 0 || !strings.Contains(out, "Class piped (-)") {
		t.Errorf("stdin: exit %d:\n%s", code, out)
	}
}

func TestDoctorMissingRegionAndWrongEndpoint(t *testing.T) {
	e := startEmulator(t, nil)
	path := writeClass(t, class("noregion", "    objects: |\n      - objectName: demo-db\n"))
	// No region anywhere: the provider may refuse to start (serve reads the
	// node's region at startup) or the object fails; either way doctor
	// says to set one, and calls nothing.
	out, code := runDoctorBin(t, e, nil, "--class", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "--region") {
		t.Errorf("no region fix:\n%s", out)
	}
	if strings.Contains(out, "demo-db ") {
		if r := row(t, out, "demo-db"); r[2] != "invalid" {
			t.Errorf("row %v", r)
		}
	}
	if n := e.Calls("kms"); n != 0 {
		t.Errorf("%d KMS calls without a region", n)
	}

	// A closed port as the KMS endpoint.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	_ = l.Close()
	out, code = runDoctorBin(t, e, nil, "--class", path, "--region", "cn-hangzhou", "--kms-endpoint", dead)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if r := row(t, out, "demo-db"); r[2] != "unavailable" {
		t.Errorf("row %v", r)
	}
	if !strings.Contains(out, "--kms-endpoint") || !strings.Contains(out, strings.TrimPrefix(dead, "http://")) {
		t.Errorf("no endpoint fix:\n%s", out)
	}
}

func TestDoctorWithoutCredentials(t *testing.T) {
	e := startEmulator(t, nil)
	path := writeClass(t, class("c", "    region: cn-hangzhou\n    objects: |\n      - objectName: demo-db\n"))
	out, code := runDoctorBin(t, e, map[string]string{"ACCESS_KEY_ID": "", "SECRET_ACCESS_KEY": ""}, "--class", path, "--region", "cn-hangzhou")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "identity:   FAIL") || !strings.Contains(out, "no credentials") || !strings.Contains(out, "1 of 1 object failed") {
		t.Errorf("output:\n%s", out)
	}
	if e.Calls("kms") != 0 {
		t.Error("objects were tried without an identity")
	}
}

func TestDoctorBadUsageAndBadClass(t *testing.T) {
	e := startEmulator(t, nil)
	for _, c := range []struct {
		name string
		args []string
		body string // class file content, when set
		want string
	}{
		{"no class", nil, "", "pass --class FILE"},
		{"missing file", []string{"--class", "/nonexistent/class.yaml"}, "", "/nonexistent/class.yaml"},
		{"unknown flag", []string{"--no-such-flag"}, "", "no-such-flag"},
		{"not a class", nil, "apiVersion: v1\nkind: ConfigMap\n", "no SecretProviderClass"},
		{"another provider", nil, strings.Replace(class("c", "    objects: x\n"), "provider: alibabacloud", "provider: aws", 1), `spec.provider: "aws" is another provider's class`},
		{"no parameters", nil, strings.TrimSuffix(class("c", ""), "  parameters:\n") + "\n", "spec.parameters: is missing"},
		{"invalid objects", nil, class("c", "    objects: |\n      - objectType: kms\n"), "spec.parameters.objects[0].objectName"},
		{"bad yaml", nil, "kind: [\n", "not valid YAML"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.body != "" {
				args = append(args, "--class", writeClass(t, c.body))
			}
			out, code := runDoctorBin(t, e, nil, args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2:\n%s", code, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
		})
	}
	if e.Calls("kms")+e.Calls("oos") != 0 {
		t.Error("a bad invocation called upstream")
	}
}
