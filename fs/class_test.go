package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Classes: the manifest checks name the file and the field.
func TestParseClass(t *testing.T) {
	good := "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: %s\nspec:\n  provider: %s\n  parameters:\n    objects: |\n      - objectName: %s\n"
	cases := []struct {
		name, doc, want string
	}{
		{"ok", sprintf(good, "app", "alibabacloud", "db"), ""},
		{"api", strings.Replace(sprintf(good, "app", "alibabacloud", "db"), "x-k8s.io/v1", "x-k8s.io/v2", 1), "f.yaml: apiVersion: "},
		{"kind", strings.Replace(sprintf(good, "app", "alibabacloud", "db"), "SecretProviderClass", "Secret", 1), "f.yaml: kind: "},
		{"name", sprintf(good, "App_1", "alibabacloud", "db"), "f.yaml: metadata.name: \"App_1\" is not a valid name"},
		{"noname", sprintf(good, "''", "alibabacloud", "db"), "f.yaml: metadata.name: is missing"},
		{"provider", sprintf(good, "app", "azure", "db"), "f.yaml: spec.provider: \"azure\""},
		{"object", sprintf(good, "app", "alibabacloud", "/abs"), "f.yaml: spec.parameters.objects[0].objectName: "},
		{"status", sprintf(good, "app", "alibabacloud", ".status"), "f.yaml: spec.parameters.objects[0]: file \".status\" is reserved"},
		{"two", sprintf(good, "a", "alibabacloud", "db") + "---\n" + sprintf(good, "b", "alibabacloud", "db"), "holds 2 YAML documents"},
		{"empty", "# nothing\n", "is empty"},
		{"params", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: a\nspec:\n  provider: alibabacloud\n", "spec.parameters: is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, err := ParseClass("f.yaml", []byte(c.doc))
			if c.want == "" {
				if err != nil || cl.Name != "app" || len(cl.Spec.Objects) != 1 {
					t.Fatalf("%v %+v", err, cl)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}

	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for p, obj := range map[string]string{a: "db", b: "other"} {
		if err := os.WriteFile(p, []byte(sprintf(good, "same", "alibabacloud", obj)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadClasses([]string{a, b}); err == nil || !strings.Contains(err.Error(), "metadata.name") || !strings.Contains(err.Error(), "a.yaml") {
		t.Fatalf("duplicate names: %v", err)
	}
	if _, err := LoadClasses([]string{filepath.Join(dir, "none.yaml")}); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func sprintf(f string, a ...any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n" }
