// Package examples_test checks the example SecretProviderClasses with the
// provider's own class loader (spc, the one doctor, mount and serve
// --fuse-class use), so an example that the provider would reject, or a
// secretObjects entry naming a file the provider never writes, fails here. Strict decoding into the Kubernetes and driver API types is
// done in integration/k8s, a module of its own.
package examples_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// class is the part of a SecretProviderClass the provider and the driver's
// Secret sync read.
type class struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Provider      string            `json:"provider"`
		Parameters    map[string]string `json:"parameters"`
		SecretObjects []struct {
			SecretName string `json:"secretName"`
			Data       []struct {
				ObjectName string `json:"objectName"`
				Key        string `json:"key"`
			} `json:"data"`
		} `json:"secretObjects"`
	} `json:"spec"`
}

// classesIn returns the SecretProviderClasses of a multi-document manifest.
func classesIn(t *testing.T, name string, raw []byte) []class {
	t.Helper()
	var out []class
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var c class
		if err := yaml.Unmarshal(doc, &c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Kind == "SecretProviderClass" {
			out = append(out, c)
		}
	}
	return out
}

// load reads a file's classes with the provider's loader, which must take
// the whole file (its other documents are skipped) and find every class.
func load(t *testing.T, where string, raw []byte) map[string]*spc.Class {
	t.Helper()
	cs, err := spc.Parse(where, raw)
	if err != nil {
		t.Errorf("%v", err)
		return nil
	}
	out := map[string]*spc.Class{}
	for _, c := range cs {
		out[c.Name] = c
	}
	if n := len(classesIn(t, where, raw)); len(out) != n {
		t.Errorf("%s: the loader found %d classes, the file holds %d", where, len(out), n)
	}
	return out
}

// check checks a class's secretObjects against the files the provider
// writes for it (loaded, the class as the provider parsed it).
func check(t *testing.T, where string, c class, loaded map[string]*spc.Class) *fetch.Spec {
	t.Helper()
	l := loaded[c.Metadata.Name]
	if l == nil {
		t.Errorf("%s: SecretProviderClass %s was not loaded", where, c.Metadata.Name)
		return nil
	}
	spec := l.Spec
	files := spec.Files()
	for _, so := range c.Spec.SecretObjects {
		for _, d := range so.Data {
			if !slices.Contains(files, d.ObjectName) {
				t.Errorf("%s: secretObjects %s: objectName %q is not a mounted file; the files are %q",
					where, so.SecretName, d.ObjectName, files)
			}
		}
	}
	return spec
}

func TestExampleClassesParse(t *testing.T) {
	paths, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range paths {
		if strings.HasPrefix(p, "values-") {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cs := classesIn(t, p, raw)
		if len(cs) == 0 {
			continue
		}
		loaded := load(t, p, raw)
		for _, c := range cs {
			check(t, p, c, loaded)
			n++
		}
	}
	if n < 8 {
		t.Errorf("found %d SecretProviderClasses in examples/, want at least 8", n)
	}
}

// The guide's secretstore.yaml writes objectName and objectType as two list
// items; it must still mean one OOS parameter named "test".
func TestGuideSecretStoreMeansOneOOSParameter(t *testing.T) {
	raw, err := os.ReadFile("secretstore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cs := classesIn(t, "secretstore.yaml", raw)
	if len(cs) != 1 || cs[0].Metadata.Name != "test-secrets" {
		t.Fatalf("want one SecretProviderClass test-secrets, got %+v", cs)
	}
	spec := check(t, "secretstore.yaml", cs[0], load(t, "secretstore.yaml", raw))
	if spec == nil {
		return
	}
	if len(spec.Objects) != 1 || spec.Objects[0].Name != "test" || spec.Objects[0].Type != fetch.TypeOOS {
		t.Errorf("objects = %+v, want one OOS parameter \"test\"", spec.Objects)
	}
	if files := spec.Files(); !slices.Equal(files, []string{"test"}) {
		t.Errorf("files = %q, want [test] (deploy.yaml reads /mnt/secrets-store/test)", files)
	}
}

// The classes of the FUSE example values are the chart's --fuse-class
// files: the loader takes each, and the view takes them all together.
func TestFuseValuesClassesParse(t *testing.T) {
	raw, err := os.ReadFile("values-fuse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Fuse struct {
			Classes map[string]string `json:"classes"`
		} `json:"fuse"`
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Fuse.Classes) == 0 {
		t.Fatal("values-fuse.yaml lists no classes")
	}
	var all []*spc.Class
	for file, text := range v.Fuse.Classes {
		where := "values-fuse.yaml fuse.classes[" + file + "]"
		cs, err := spc.Parse(where, []byte(text))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		all = append(all, cs...)
	}
	if err := fs.CheckClasses(all); err != nil {
		t.Errorf("the FUSE view refuses the classes: %v", err)
	}
}
