package fetch

import (
	"errors"
	"strings"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/badinput"
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

func TestParseParametersBad(t *testing.T) {
	for _, c := range badinput.Cases {
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

func TestJMESPathIsAPlainPath(t *testing.T) {
	for _, ok := range []string{"username", "db.password", "hosts[0].name", `"my-key"`, `a."b.c"[1]`, "[0]", "[-1].x", `"a\"b"`} {
		if !jmesPathSubset.MatchString(ok) {
			t.Errorf("refused the plain path %s", ok)
		}
	}
	for _, bad := range []string{"to_string(@)", "a | b", "a[*]", "{a: b}", "[a, b]", "a[?x=='1']", "@", "a.", ".a", "a..b", "`1`", "length(a)", "a[]", "a[0:2]", ""} {
		if jmesPathSubset.MatchString(bad) {
			t.Errorf("accepted %q", bad)
		}
	}
}
