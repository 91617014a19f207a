package fetch

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/badinput"
)

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

// FuzzParseParameters: no input panics, every rejection is a ValidationError
// naming a field, and every accepted spec has clean, unique file names.
func FuzzParseParameters(f *testing.F) {
	for _, c := range badinput.Cases {
		f.Add(c.Params["objects"], c.Params["pathTranslation"], c.Params["region"], c.Params["failoverRegion"])
	}
	f.Add("- objectName: a/b\n  objectAlias: c\n  jmesPath:\n    - {path: x.y, objectAlias: d/e}\n", "", "cn-hangzhou", "")
	f.Add("- objectName: test\n- objectType: oos\n", "False", "", "")
	f.Add("- objectName: db\n  keysAsFiles: true\n  objectFormat: yaml\n  filePermission: \"0440\"\n", "False", "", "cn-shanghai")
	f.Add("- objectName: p\n  objectType: oos-parameter\n  objectVersionHistory: 3\n  objectEncoding: base64\n", "", "cn-hangzhou", "cn-shanghai")
	f.Add("- objectName: db\n  jmesPath:\n    - {path: a, objectAlias: b, filePermission: \"0400\", objectEncoding: hex}\n", "", "", "")
	f.Add("- objectPath: /app/prod/\n  objectType: oos\n  objectAlias: prod\n  recursive: true\n  filePermission: \"0440\"\n", "False", "", "")
	f.Add("- objectTags: {team: payments, env: prod}\n  objectAlias: pay\n- objectName: maybe\n  optional: true\n", "", "cn-hangzhou", "cn-shanghai")
	f.Fuzz(func(t *testing.T, objects, pt, region, failover string) {
		params := map[string]string{"objects": objects}
		if failover != "" {
			params["failoverRegion"] = failover
		}
		if pt != "" {
			params["pathTranslation"] = pt
		}
		if region != "" {
			params["region"] = region
		}
		s, err := ParseParameters(params)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("rejection without a field: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range s.Files() {
			if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "..") || seen[p] {
				t.Fatalf("bad or duplicate file %q", p)
			}
			for _, seg := range strings.Split(p, "/") {
				if seg == "" || seg == "." || seg == ".." || len(seg) > 255 {
					t.Fatalf("bad segment in %q", p)
				}
			}
			seen[p] = true
		}
	})
}

// FuzzJMESPath: evaluating any expression on any value never panics and
// never yields a non-string file.
func FuzzJMESPath(f *testing.F) {
	f.Add("username", `{"username":"u"}`)
	f.Add("a[0].b", `{"a":[{"b":"x"}]}`)
	f.Add("length(@)", `[1,2]`)
	f.Add("a", `not json`)
	f.Fuzz(func(t *testing.T, path, value string) {
		params := map[string]string{"objects": "- objectName: o\n  jmesPath:\n    - path: " + quoteYAML(path) + "\n      objectAlias: out\n"}
		s, err := ParseParameters(params)
		if err != nil {
			return
		}
		files, err := ObjectFiles(s.Objects[0], &Entry{Data: Bytes(value), Version: "v1"})
		if err != nil {
			if KindOf(err) != KindInvalid {
				t.Fatalf("unexpected kind: %v", err)
			}
			if strings.Contains(err.Error(), value) && len(value) > 8 {
				t.Fatalf("error echoes the value: %v", err)
			}
			return
		}
		if len(files) != 2 || files[1].Path != "out" {
			t.Fatalf("files = %+v", files)
		}
	})
}

func quoteYAML(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// FuzzShapedFiles: keysAsFiles, objectFormat yaml and objectEncoding on any
// value never panic, never echo the value in an error, and only make clean
// file names inside the object's directory.
func FuzzShapedFiles(f *testing.F) {
	f.Add(`{"user":"u","n":1}`, uint8(0))
	f.Add("a: 1\nb: [x, y]\n", uint8(1))
	f.Add("aGVsbG8=", uint8(2))
	f.Add(`{"a/b":"x","..":"y"}`, uint8(0))
	f.Add("a: &a [x,x]\nb: [*a,*a]\n", uint8(1))
	classes := []string{
		"- objectName: o\n  keysAsFiles: true\n",
		"- objectName: o\n  keysAsFiles: true\n  objectFormat: yaml\n  jmesPath:\n    - {path: a, objectAlias: j}\n",
		"- objectName: o\n  objectEncoding: base64\n  objectVersionHistory: 2\n",
		"- objectName: o\n  objectEncoding: hex\n",
	}
	f.Fuzz(func(t *testing.T, value string, which uint8) {
		s, err := ParseParameters(map[string]string{"objects": classes[int(which)%len(classes)]})
		if err != nil {
			t.Fatal(err)
		}
		files, err := ObjectFiles(s.Objects[0], &Entry{Data: Bytes(value), Version: "v1", History: []Version{{Bytes(value), "v1"}}})
		if err != nil {
			if KindOf(err) != KindInvalid {
				t.Fatalf("unexpected kind: %v", err)
			}
			if len(value) > 8 && strings.Contains(err.Error(), value) {
				t.Fatalf("error echoes the value: %v", err)
			}
			return
		}
		for _, fl := range files {
			if fl.Path != "o" && fl.Path != "j" && !strings.HasPrefix(fl.Path, "o/") {
				t.Fatalf("file %q outside the object's directory", fl.Path)
			}
			if rest, ok := strings.CutPrefix(fl.Path, "o/"); ok && badKeyName(rest) != "" {
				t.Fatalf("bad key file %q", fl.Path)
			}
		}
	})
}
