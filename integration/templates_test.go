package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// Templated files (issue 15), end to end: a .env and a JSON config rendered
// from a KMS secret and an OOS parameter whose values hold every character
// the formats must escape, through the real provider's socket and the
// driver's writer.

const (
	tplPassword = "p\"a's$HOME\\w\nord `id` $(id) ${X}"
	tplToken    = "line1\nline2 'single' \"double\" $1 \\n end\\"
	tplToken2   = "rotated 'token' \"2\" $$ \\\\\n"
)

const tplEnv = `- fileName: app.env
  filePermission: "0400"
  template: |
    # rendered by the provider
    DB_USER={{ secret "db-user" | dotenvQuote }}
    DB_PASSWORD={{ secret "db-password" | dotenvQuote }}
    TOKEN={{ secret "tpl-token" | dotenvQuote }}
- fileName: config/app.json
  template: |
    {
      "user": {{ secret "db-user" | jsonQuote }},
      "password": {{ secret "db-password" | jsonQuote }},
      "token": {{ secret "tpl-token" | jsonQuote }}
    }
`

// tplEnvBytes and tplJSONBytes are the files the templates make, byte for
// byte.
func tplEnvBytes(token string) string {
	q := func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
		return `"` + r.Replace(s) + `"`
	}
	return "# rendered by the provider\nDB_USER=\"app\"\nDB_PASSWORD=" + q(tplPassword) + "\nTOKEN=" + q(token) + "\n"
}

func tplJSONBytes(token string) string {
	q := func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
		return `"` + r.Replace(s) + `"`
	}
	return "{\n  \"user\": \"app\",\n  \"password\": " + q(tplPassword) + ",\n  \"token\": " + q(token) + "\n}\n"
}

func TestTemplatesEndToEnd(t *testing.T) {
	dbJSON, _ := json.Marshal(map[string]string{"username": "app", "password": tplPassword})
	seed := emulator.DemoSeed()
	seed.Secrets = append(seed.Secrets, emulator.Secret{Name: "tpl-db", Value: string(dbJSON)})
	seed.Parameters = append(seed.Parameters, emulator.Parameter{Name: "tpl-token", Value: tplToken})
	e := startEmulator(t, seed)
	noteSensitive(tplPassword, tplToken, tplToken2)
	p := startProvider(t, e, providerConfig{args: []string{"--cache-ttl", "1s"}})
	class := objects(
		"- objectName: tpl-db",
		"  file: false",
		"  jmesPath:",
		"    - {path: username, objectAlias: db-user}",
		"    - {path: password, objectAlias: db-password}",
		"- objectName: tpl-token",
		"  objectType: oos",
		"  file: false",
		"- objectName: demo-db",
	)
	class["templates"] = tplEnv

	resp := p.mountOK(t, class, nil)
	got := writeLikeDriver(t, resp)
	if len(got) != 3 {
		t.Fatalf("files %v, want app.env, config_app.json and demo-db (file: false objects stay out)", keys(got))
	}
	if f := got["app.env"]; string(f.data) != tplEnvBytes(tplToken) || f.mode != 0o400 {
		t.Fatalf("app.env (mode %o):\n%s\nwant:\n%s", f.mode, f.data, tplEnvBytes(tplToken))
	}
	if f := got["config_app.json"]; string(f.data) != tplJSONBytes(tplToken) || f.mode != 0o644 {
		t.Fatalf("config_app.json (mode %o):\n%s\nwant:\n%s", f.mode, f.data, tplJSONBytes(tplToken))
	}
	if _, ok := got["demo-db"]; !ok {
		t.Fatal("an object without file: false is missing")
	}

	// The consumers read the exact values back: sh sourcing the .env, and
	// a JSON decoder.
	checkEnvWithSh(t, got["app.env"].data, map[string]string{"DB_USER": "app", "DB_PASSWORD": tplPassword, "TOKEN": tplToken})
	var cfg map[string]string
	if err := json.Unmarshal(got["config_app.json"].data, &cfg); err != nil || cfg["password"] != tplPassword || cfg["token"] != tplToken || cfg["user"] != "app" {
		t.Fatalf("config_app.json decodes to %q (%v)", cfg, err)
	}

	vers := versions(resp)
	envVer, jsonVer := vers["template/app.env"], vers["template/config_app.json"]
	if !strings.HasPrefix(envVer, "tpl-") || !strings.HasPrefix(jsonVer, "tpl-") || envVer == jsonVer {
		t.Fatalf("template versions %v", vers)
	}
	for id := range vers {
		if strings.HasPrefix(id, "kms/tpl-db") || strings.HasPrefix(id, "oos/tpl-token") || strings.Contains(id, "db-password") {
			t.Fatalf("a file: false object reports a file: %v", vers)
		}
	}

	// Re-Mounts give the same bytes and versions: the same process, and a
	// new one (its own parse and cache).
	q := startProvider(t, e, providerConfig{})
	for _, pr := range []*provider{p, q} {
		again := pr.mountOK(t, class, nil)
		ag, av := writeLikeDriver(t, again), versions(again)
		if string(ag["app.env"].data) != string(got["app.env"].data) || string(ag["config_app.json"].data) != string(got["config_app.json"].data) {
			t.Fatal("a re-Mount rendered other bytes")
		}
		if av["template/app.env"] != envVer || av["template/config_app.json"] != jsonVer {
			t.Fatalf("a re-Mount gave other versions: %v", av)
		}
	}

	// A rotation upstream is a new version of every template that reads it.
	if _, err := e.PutParameter("tpl-token", tplToken2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp = p.mountOK(t, class, nil)
		if v := versions(resp); v["template/app.env"] != envVer {
			if v["template/config_app.json"] == jsonVer {
				t.Fatalf("only one template saw the rotation: %v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the template's version never changed after a rotation")
		}
		time.Sleep(300 * time.Millisecond)
	}
	got = writeLikeDriver(t, resp)
	if string(got["app.env"].data) != tplEnvBytes(tplToken2) || string(got["config_app.json"].data) != tplJSONBytes(tplToken2) {
		t.Fatalf("after the rotation:\n%s\n%s", got["app.env"].data, got["config_app.json"].data)
	}
	checkEnvWithSh(t, got["app.env"].data, map[string]string{"TOKEN": tplToken2})

	// An unknown function is refused (as the class is parsed, before any
	// read), naming the template and the line.
	bad := objects("- objectName: tpl-db")
	bad["templates"] = "- fileName: bad.env\n  template: |\n    A=1\n    HOME={{ env \"HOME\" }}\n"
	_, err := p.mount(context.Background(), bad, nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "templates[0].template") ||
		!strings.Contains(err.Error(), `(fileName "bad.env") line 2: function "env" not defined`) {
		t.Fatalf("unknown function: %v", err)
	}
	// A render error fails the Mount, naming the template, the line and the
	// file asked for, never a value.
	missing := objects("- objectName: tpl-db", "  keysAsFiles: true", "  file: false")
	missing["templates"] = "- fileName: x.env\n  template: |\n    U={{ secret \"tpl-db/username\" }}\n    P={{ secret \"tpl-db/nope\" }}\n"
	_, err = p.mount(context.Background(), missing, nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `templates[0] "x.env"`) ||
		!strings.Contains(err.Error(), `line 2`) || !strings.Contains(err.Error(), `secret "tpl-db/nope": no such file`) || strings.Contains(err.Error(), "pass") {
		t.Fatalf("missing key: %v", err)
	}
	// file: false without a template is refused.
	_, err = p.mount(context.Background(), objects("- objectName: tpl-db", "  file: false"), nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "objects[0].file") {
		t.Fatalf("file: false without templates: %v", err)
	}
}

// checkEnvWithSh sources the .env in /bin/sh and compares each variable.
func checkEnvWithSh(t *testing.T, env []byte, want map[string]string) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	path := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(path, env, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, v := range want {
		out, err := exec.Command(sh, "-c", `set -a; . "$1" && printf %s "$`+name+`"`, "sh", path).Output()
		if err != nil || string(out) != v {
			t.Fatalf("sh reads %s as %q, want %q (%v)", name, out, v, err)
		}
	}
}
