package fetch

import (
	"strings"
	"testing"
)

func TestParseDirectoryObjects(t *testing.T) {
	s, err := ParseParameters(map[string]string{"objects": `
- objectPath: /app/prod
  objectType: oos
  objectAlias: prod
  recursive: true
- objectTags: {team: payments, env: prod}
  objectAlias: pay
  filePermission: "0400"
- objectName: maybe
  optional: true
`})
	if err != nil {
		t.Fatal(err)
	}
	p, tg, opt := s.Objects[0], s.Objects[1], s.Objects[2]
	if p.Dir == nil || p.Dir.Path != "/app/prod/" || !p.Dir.Recursive || p.File != "prod" || p.Selector() != "list,recursive" {
		t.Fatalf("path object: %+v %+v", p, p.Dir)
	}
	if tg.Dir == nil || len(tg.Dir.Tags) != 2 || tg.Dir.Tags[0] != [2]string{"env", "prod"} || tg.Mode != 0o400 {
		t.Fatalf("tags object: %+v %+v", tg, tg.Dir)
	}
	if want := `objects[1] objectTags {env=prod, team=payments} (kms)`; tg.Ref() != want {
		t.Fatalf("Ref %q, want %q", tg.Ref(), want)
	}
	if !opt.Optional || opt.Selector() != "optional," {
		t.Fatalf("optional: %+v selector %q", opt, opt.Selector())
	}
	if !s.dirs || !s.dynamic {
		t.Fatal("a spec with directories is dynamic")
	}
}

func TestListingExpansion(t *testing.T) {
	parse := func(pt string) *Object {
		t.Helper()
		params := map[string]string{"objects": "- objectPath: /app/\n  objectType: oos\n  objectAlias: d\n  recursive: true\n  objectEncoding: base64"}
		if pt != "" {
			params["pathTranslation"] = pt
		}
		s, err := ParseParameters(params)
		if err != nil {
			t.Fatal(err)
		}
		return s.Objects[0]
	}
	o := parse("")
	e := &Entry{Data: listResult([]string{"/app/b", "/app/a/x"}).Data}
	ms, err := o.members(e, "_")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].File != "d/a_x" || ms[1].File != "d/b" || ms[0].Name != "/app/a/x" || ms[0].Encoding != EncodingBase64 || ms[0].Parent() != o {
		t.Fatalf("members %+v %+v", ms[0], ms[1])
	}
	if again, _ := o.members(e, "_"); again[0] != ms[0] {
		t.Fatal("the same listing entry must give the same members")
	}

	for _, c := range []struct {
		names []string
		pt    string
		says  []string
	}{
		{[]string{"/app/a/b", "/app/a_b"}, "", []string{`"/app/a/b"`, `"/app/a_b"`, "pathTranslation"}},
		{[]string{"/app/a", "/app/a/b"}, "False", []string{`"/app/a/b"`, "directory"}},
		{[]string{"/app/..data"}, "", []string{`"/app/..data"`, "never rewritten"}},
		{[]string{"/app/" + strings.Repeat("x", 300)}, "", []string{"cannot name a file"}},
	} {
		o := parse(c.pt)
		sep := "_"
		if c.pt == "False" {
			sep = ""
		}
		_, err := o.members(&Entry{Data: listResult(c.names).Data}, sep)
		if err == nil || KindOf(err) != KindInvalid {
			t.Fatalf("%v: %v", c.names, err)
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%v: %q does not say %q", c.names, err, s)
			}
		}
	}
}

func TestListResultVersionFollowsNames(t *testing.T) {
	a, b, c := listResult([]string{"x", "y"}), listResult([]string{"y", "x"}), listResult([]string{"x", "z"})
	if a.Version != b.Version || string(a.Data) != "x\ny" {
		t.Fatalf("order matters: %q %q", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Fatal("another name, the same version")
	}
}
