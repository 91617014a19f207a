package fetch

import (
	"errors"
	"strings"
	"testing"
)

func TestParseParametersGood(t *testing.T) {
	cases := []struct {
		name   string
		params map[string]string
		files  []string
		check  func(t *testing.T, s *Spec)
	}{
		{
			name:   "guide example, two items folded",
			params: map[string]string{"objects": "- objectName: \"test\"\n- objectType: \"oos\"\n"},
			files:  []string{"test"},
			check: func(t *testing.T, s *Spec) {
				if s.Objects[0].Type != TypeOOS || len(s.Notes) != 1 {
					t.Fatalf("want one oos object with a note, got %+v notes=%v", s.Objects[0], s.Notes)
				}
			},
		},
		{
			name:   "default type kms and default translation",
			params: map[string]string{"objects": "- objectName: app/db/pass\n"},
			files:  []string{"app_db_pass"},
			check: func(t *testing.T, s *Spec) {
				if s.Objects[0].Type != TypeKMS || s.PathSeparator != "_" {
					t.Fatalf("got %+v sep=%q", s.Objects[0], s.PathSeparator)
				}
			},
		},
		{
			name:   "pathTranslation other char",
			params: map[string]string{"objects": "- objectName: app/db/pass\n", "pathTranslation": "-"},
			files:  []string{"app-db-pass"},
		},
		{
			name:   "pathTranslation False keeps directories",
			params: map[string]string{"objects": "- objectName: app/db/pass\n", "pathTranslation": "False"},
			files:  []string{"app/db/pass"},
		},
		{
			name:   "alias wins and is translated",
			params: map[string]string{"objects": "- objectName: x\n  objectAlias: dir/file\n"},
			files:  []string{"dir_file"},
		},
		{
			name: "jmesPath files",
			params: map[string]string{"objects": `- objectName: db
  jmesPath:
    - path: username
      objectAlias: user
    - path: password
      objectAlias: pass
`},
			files: []string{"db", "user", "pass"},
		},
		{
			name:   "kms versions",
			params: map[string]string{"objects": "- objectName: a\n  objectVersion: v1\n- objectName: a\n  objectAlias: a-prev\n  objectVersionLabel: ACSPrevious\n"},
			files:  []string{"a", "a-prev"},
			check: func(t *testing.T, s *Spec) {
				if s.Objects[0].Selector() == s.Objects[1].Selector() {
					t.Fatal("selectors must differ")
				}
			},
		},
		{
			name:   "oos version and region",
			params: map[string]string{"objects": "- objectName: p\n  objectType: OOS\n  objectVersion: \"3\"\n", "region": "cn-shanghai"},
			files:  []string{"p"},
			check: func(t *testing.T, s *Spec) {
				if s.Region != "cn-shanghai" || s.Objects[0].Version != "3" {
					t.Fatalf("got %+v", s)
				}
			},
		},
		{
			name:   "unicode name is fine",
			params: map[string]string{"objects": "- objectName: 密码\n"},
			files:  []string{"密码"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseParameters(c.params)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got := s.Files()
			if strings.Join(got, "|") != strings.Join(c.files, "|") {
				t.Fatalf("files = %q, want %q", got, c.files)
			}
			if c.check != nil {
				c.check(t, s)
			}
		})
	}
}

// BadInputs are the inputs every layer must refuse with a clear error naming
// a field. They seed the fuzz target and are replayed end to end.
var BadInputs = []struct {
	Name   string
	Params map[string]string
	Field  string // substring the error must name
}{
	{"missing objects", map[string]string{}, "parameter objects"},
	{"empty objects", map[string]string{"objects": "  "}, "parameter objects"},
	{"empty list", map[string]string{"objects": "[]"}, "parameter objects"},
	{"malformed yaml", map[string]string{"objects": "- objectName: [unclosed"}, "parameter objects"},
	{"not a list", map[string]string{"objects": "objectName: x"}, "parameter objects"},
	{"unknown field", map[string]string{"objects": "- objectName: x\n  objectAlais: y"}, "parameter objects"},
	{"missing objectName", map[string]string{"objects": "- objectAlias: x"}, "objects[0].objectName"},
	{"type only first", map[string]string{"objects": "- objectType: oos"}, "objects[0].objectName"},
	{"unknown objectType", map[string]string{"objects": "- objectName: x\n  objectType: vault"}, "objects[0].objectType"},
	{"absolute name", map[string]string{"objects": "- objectName: /etc/passwd"}, "objects[0].objectName"},
	{"dotdot name", map[string]string{"objects": "- objectName: ../x"}, "objects[0].objectName"},
	{"dotdot inside", map[string]string{"objects": "- objectName: a/../b"}, "objects[0].objectName"},
	{"dot segment", map[string]string{"objects": "- objectName: a/./b"}, "objects[0].objectName"},
	{"empty segment", map[string]string{"objects": "- objectName: a//b"}, "objects[0].objectName"},
	{"trailing slash", map[string]string{"objects": "- objectName: a/"}, "objects[0].objectName"},
	{"absolute alias", map[string]string{"objects": "- objectName: x\n  objectAlias: /tmp/x"}, "objects[0].objectAlias"},
	{"dotdot alias", map[string]string{"objects": "- objectName: x\n  objectAlias: .."}, "objects[0].objectAlias"},
	{"dot alias", map[string]string{"objects": "- objectName: x\n  objectAlias: ."}, "objects[0].objectAlias"},
	{"driver reserved ..data", map[string]string{"objects": "- objectName: x\n  objectAlias: ..data"}, "objects[0].objectAlias"},
	{"symlink-looking alias", map[string]string{"objects": "- objectName: x\n  objectAlias: ..2026_01_01"}, "objects[0].objectAlias"},
	{"backslash alias", map[string]string{"objects": "- objectName: x\n  objectAlias: 'a\\..\\b'"}, "objects[0].objectAlias"},
	{"overlong component", map[string]string{"objects": "- objectName: " + strings.Repeat("a", 256)}, "objects[0].objectName"},
	{"overlong name", map[string]string{"objects": "- objectName: " + strings.Repeat("a/", 600) + "a"}, "objects[0].objectName"},
	{"NUL byte", map[string]string{"objects": "- objectName: \"a\\0b\""}, "objects[0].objectName"},
	{"raw NUL byte", map[string]string{"objects": "- objectName: a\x00b"}, "parameter objects"},
	{"bidi override", map[string]string{"objects": "- objectName: \"abc\u202Etxt\""}, "objects[0].objectName"},
	{"zero width", map[string]string{"objects": "- objectName: \"a\u200Bb\""}, "objects[0].objectName"},
	{"newline in name", map[string]string{"objects": "- objectName: \"a\\nb\""}, "objects[0].objectName"},
	{"leading space", map[string]string{"objects": "- objectName: \" a\""}, "objects[0].objectName"},
	{"duplicate names", map[string]string{"objects": "- objectName: a\n- objectName: a"}, "objects[1]"},
	{"translation collision", map[string]string{"objects": "- objectName: a/b\n- objectName: a_b"}, "objects[1]"},
	{"alias collision", map[string]string{"objects": "- objectName: a\n  objectAlias: c\n- objectName: b\n  objectAlias: c"}, "objects[1]"},
	{"jmes alias collides with object", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - path: x\n      objectAlias: a"}, "objects[0].jmesPath[0].objectAlias"},
	{"jmes aliases collide", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: x, objectAlias: u}\n    - {path: y, objectAlias: u}"}, "objects[0].jmesPath[1].objectAlias"},
	{"file vs directory", map[string]string{"objects": "- objectName: a\n- objectName: a/b", "pathTranslation": "False"}, "objects[1]"},
	{"pathTranslation too long", map[string]string{"objects": "- objectName: a", "pathTranslation": "__"}, "parameter pathTranslation"},
	{"pathTranslation control", map[string]string{"objects": "- objectName: a", "pathTranslation": "\t"}, "parameter pathTranslation"},
	{"jmes missing path", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - objectAlias: u"}, "objects[0].jmesPath[0].path"},
	{"jmes missing alias", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - path: u"}, "objects[0].jmesPath[0].objectAlias"},
	{"jmes bad expression", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: 'a[', objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes dotdot alias", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: u, objectAlias: ../u}"}, "objects[0].jmesPath[0].objectAlias"},
	{"oos version zero", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"0\""}, "objects[0].objectVersion"},
	{"oos version negative", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"-1\""}, "objects[0].objectVersion"},
	{"oos version word", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: latest"}, "objects[0].objectVersion"},
	{"oos version leading zero", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"01\""}, "objects[0].objectVersion"},
	{"oos version too big", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"101\""}, "objects[0].objectVersion"},
	{"oos version label", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersionLabel: ACSCurrent"}, "objects[0].objectVersionLabel"},
	{"kms version id junk", map[string]string{"objects": "- objectName: p\n  objectVersion: \"a b\""}, "objects[0].objectVersion"},
	{"bad region", map[string]string{"objects": "- objectName: a", "region": "evil.com/x"}, "parameter region"},
	{"region with dots", map[string]string{"objects": "- objectName: a", "region": "cn-hangzhou.attacker"}, "parameter region"},
	{"kmsEndpoint with scheme", map[string]string{"objects": "- objectName: a\n  kmsEndpoint: http://169.254.169.254/"}, "objects[0].kmsEndpoint"},
	{"kmsEndpoint on oos", map[string]string{"objects": "- objectName: a\n  objectType: oos\n  kmsEndpoint: kms.cn-hangzhou.aliyuncs.com"}, "objects[0].kmsEndpoint"},
	{"bad role arn", map[string]string{"objects": "- objectName: a\n  crossAccountRoleArn: arn:aws:iam::1:role/x"}, "objects[0].crossAccountRoleArn"},
	{"too many objects", map[string]string{"objects": strings.Repeat("- objectName: a\n", 101)}, "parameter objects"},
	{"oversized objects", map[string]string{"objects": "- objectName: a\n#" + strings.Repeat("x", MaxObjectsBytes)}, "parameter objects"},
	{"deep yaml", map[string]string{"objects": "- objectName: a\n  jmesPath: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000)}, "parameter objects"},
	{"alias bomb", map[string]string{"objects": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]"}, "parameter objects"},
	{"objects wrong type", map[string]string{"objects": "- objectName: [a, b]"}, "parameter objects"},
}

func TestParseParametersBad(t *testing.T) {
	for _, c := range BadInputs {
		t.Run(c.Name, func(t *testing.T) {
			s, err := ParseParameters(c.Params)
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is not a ValidationError: %v", err)
			}
			if !strings.Contains(err.Error(), c.Field) {
				t.Fatalf("error %q does not name %q", err, c.Field)
			}
		})
	}
}

func TestFileNameIsTheOneRule(t *testing.T) {
	for _, c := range []struct{ in, sep, want string }{
		{"a/b/c", "_", "a_b_c"}, {"a/b", "", "a/b"}, {"a.b", "_", "a.b"}, {".env", "_", ".env"},
		{"a/b", ".", "a.b"},
	} {
		got, err := FileName("f", c.in, c.sep)
		if err != nil || got != c.want {
			t.Errorf("FileName(%q,%q) = %q, %v; want %q", c.in, c.sep, got, err, c.want)
		}
	}
	if _, err := FileName("f", "...", "_"); err == nil {
		t.Error("..x must be refused (driver-reserved prefix)")
	}
}

func TestBytesNeverPrints(t *testing.T) {
	b := Bytes("hunter2-very-secret")
	for _, s := range []string{b.String(), b.GoString(), sprintf("%v|%s|%q|%x|%+v|%#v", b, b, b, b, b, b)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "68756e74") {
			t.Fatalf("leaked: %s", s)
		}
	}
	j, _ := b.MarshalJSON()
	if strings.Contains(string(j), "hunter2") {
		t.Fatal("json leaked")
	}
}
