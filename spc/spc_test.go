package spc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: %s\nspec:\n  provider: %s\n  parameters:\n    objects: |\n      - objectName: %s\n"

func doc(name, provider, object string) string {
	return strings.TrimSpace(fmt.Sprintf(good, name, provider, object)) + "\n"
}

// Every check names the file, the class (or document) and the field.
func TestParse(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"ok", doc("app", "alibabacloud", "db"), ""},
		{"alpha", strings.Replace(doc("app", "alibabacloud", "db"), "/v1\n", "/v1alpha1\n", 1), ""},
		{"api", strings.Replace(doc("app", "alibabacloud", "db"), "x-k8s.io/v1", "x-k8s.io/v2", 1), "f.yaml: apiVersion: "},
		{"noapi", strings.Replace(doc("app", "alibabacloud", "db"), "apiVersion: secrets-store.csi.x-k8s.io/v1\n", "", 1), "f.yaml: apiVersion: is missing"},
		{"kind", strings.Replace(doc("app", "alibabacloud", "db"), "SecretProviderClass", "Secret", 1), "f.yaml: holds no SecretProviderClass (its documents: Secret)"},
		{"name", doc("App_1", "alibabacloud", "db"), "f.yaml: metadata.name: \"App_1\" is not a valid name"},
		{"noname", doc("''", "alibabacloud", "db"), "f.yaml: metadata.name: is missing"},
		{"provider", doc("app", "azure", "db"), "f.yaml: SecretProviderClass \"app\": spec.provider: \"azure\" is another provider's class"},
		{"noprovider", doc("app", "''", "db"), "f.yaml: SecretProviderClass \"app\": spec.provider: is missing; set it to alibabacloud"},
		{"object", doc("app", "alibabacloud", "/abs"), "f.yaml: SecretProviderClass \"app\": spec.parameters.objects[0].objectName: "},
		{"empty", "# nothing\n---\n", "f.yaml: is empty"},
		{"nul", "kind: \x00\n", "NUL byte"},
		{"yaml", "kind: [\n", "f.yaml: the file is not valid YAML"},
		{"yaml2", doc("a", "alibabacloud", "db") + "---\nkind: [\n", "f.yaml: document 2 is not valid YAML"},
		{"nonameof2", "kind: ConfigMap\n---\n" + doc("''", "alibabacloud", "db"), "f.yaml: document 2: metadata.name: is missing"},
		{"params", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: a\nspec:\n  provider: alibabacloud\n", "spec.parameters: is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs, err := Parse("f.yaml", []byte(c.doc))
			if c.want == "" {
				if err != nil || len(cs) != 1 || cs[0].Name != "app" || cs[0].Source != "f.yaml" || len(cs[0].Spec.Objects) != 1 {
					t.Fatalf("%v %+v", err, cs)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want an *Error with %q", err, c.want)
			}
		})
	}
}

// A file of several documents: comments, "..." ends and other kinds around
// the classes are skipped; the classes come in file order.
func TestParseSeveralDocuments(t *testing.T) {
	data := "# app manifests\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n...\n---\n" +
		doc("b", "alibabacloud", "db") + "--- # the second\n" + doc("a", "alibabacloud", "other") + "---\n# trailing comment\n"
	cs, err := Parse("app.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Name != "b" || cs[1].Name != "a" || cs[1].Spec.Objects[0].Name != "other" {
		t.Fatalf("classes %+v", cs)
	}
}

// Load reads files and stdin ("-", once) with the same rules, and refuses
// two classes of one name across files.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", doc("a", "alibabacloud", "db"))
	two := write("two.yaml", doc("b", "alibabacloud", "db")+"---\n"+doc("c", "alibabacloud", "db"))
	stdin := strings.NewReader(doc("piped", "alibabacloud", "db"))
	cs, err := Load([]string{a, "-", two}, stdin)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name+"@"+filepath.Base(c.Source))
	}
	if got := strings.Join(names, ","); got != "a@a.yaml,piped@-,b@two.yaml,c@two.yaml" {
		t.Fatalf("loaded %s", got)
	}

	same := write("same.yaml", doc("a", "alibabacloud", "other"))
	for _, c := range []struct {
		name  string
		paths []string
		want  string
	}{
		{"none", nil, "no class"},
		{"dup", []string{a, same}, same + ": SecretProviderClass \"a\": metadata.name: is also the name of a class in " + a},
		{"missing", []string{filepath.Join(dir, "none.yaml")}, "none.yaml: cannot read the class file"},
		{"dir", []string{dir}, "is a directory"},
		{"stdin twice", []string{"-", "-"}, "stdin (-): stdin is given twice"},
		{"big", []string{write("big.yaml", strings.Repeat("#", MaxFileBytes+1))}, "over the limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.paths, strings.NewReader(doc("x", "alibabacloud", "db")))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
