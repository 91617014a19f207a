package fetch

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func parseOne(t *testing.T, objects string, extra ...string) *Spec {
	t.Helper()
	params := map[string]string{ParamObjects: objects}
	for i := 0; i+1 < len(extra); i += 2 {
		params[extra[i]] = extra[i+1]
	}
	s, err := ParseParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func filesOf(t *testing.T, o *Object, e *Entry) map[string]File {
	t.Helper()
	fs, err := ObjectFiles(o, e)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]File{}
	for _, f := range fs {
		m[f.Path] = f
	}
	return m
}

func TestFilePermission(t *testing.T) {
	s := parseOne(t, `- objectName: db
  filePermission: "0440"
  jmesPath:
    - {path: user, objectAlias: user}
    - {path: pass, objectAlias: pass, filePermission: "0400"}
- objectName: plain
`)
	db := filesOf(t, s.Objects[0], &Entry{Data: Bytes(`{"user":"u","pass":"p"}`), Version: "v1"})
	if db["db"].Mode != 0o440 || db["user"].Mode != 0o440 || db["pass"].Mode != 0o400 {
		t.Fatalf("modes: db %o user %o pass %o", db["db"].Mode, db["user"].Mode, db["pass"].Mode)
	}
	if m := filesOf(t, s.Objects[1], &Entry{Data: Bytes("x")})["plain"].Mode; m != 0 {
		t.Fatalf("an object without filePermission has mode %o, want 0 (the driver's)", m)
	}
	_, err := ParseParameters(map[string]string{ParamObjects: "- objectName: a\n  filePermission: 0440\n"})
	if err == nil || !strings.Contains(err.Error(), `quote it: filePermission: "0440"`) {
		t.Fatalf("unquoted mode: %v", err)
	}
}

func TestObjectEncoding(t *testing.T) {
	raw := []byte("\x00\x01binary\xff")
	cases := []struct{ enc, text string }{
		{"base64", base64.StdEncoding.EncodeToString(raw) + "\n"},
		{"base64", base64.RawStdEncoding.EncodeToString(raw)},
		{"base64url", base64.URLEncoding.EncodeToString(raw)},
		{"hex", hex.EncodeToString(raw)},
		{"utf-8", string(raw)},
	}
	for _, c := range cases {
		s := parseOne(t, "- objectName: a\n  objectEncoding: "+c.enc+"\n")
		got := filesOf(t, s.Objects[0], &Entry{Data: Bytes(c.text)})["a"]
		if string(got.Data) != string(raw) {
			t.Fatalf("%s: got %q", c.enc, got.Data)
		}
	}
	// A KMS binary secret is already decoded: not decoded twice.
	s := parseOne(t, "- objectName: a\n  objectEncoding: base64\n")
	if got := filesOf(t, s.Objects[0], &Entry{Data: Bytes(raw), Binary: true})["a"]; string(got.Data) != string(raw) {
		t.Fatalf("binary decoded twice: %q", got.Data)
	}
	// A failure names the field, never the value.
	secret := "not-base64-s3cr3t!!"
	_, err := ObjectFiles(s.Objects[0], &Entry{Data: Bytes(secret)})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "objectEncoding") {
		t.Fatalf("bad base64: %v", err)
	}
	// On a jmesPath entry: decode what it extracts.
	s = parseOne(t, "- objectName: j\n  jmesPath:\n    - {path: k, objectAlias: key, objectEncoding: hex}\n")
	got := filesOf(t, s.Objects[0], &Entry{Data: Bytes(`{"k":"` + hex.EncodeToString(raw) + `"}`)})
	if string(got["key"].Data) != string(raw) || !strings.Contains(string(got["j"].Data), `"k"`) {
		t.Fatalf("jmes decode: %q / %q", got["key"].Data, got["j"].Data)
	}
}

func TestKeysAsFiles(t *testing.T) {
	s := parseOne(t, "- objectName: app/db\n  keysAsFiles: true\n  filePermission: \"0440\"\n")
	got := filesOf(t, s.Objects[0], &Entry{Data: Bytes(`{"user":"u","port":5432,"tls":{"on":true},"big":12345678901234567890}`), Version: "v7"})
	want := map[string]string{"app_db/user": "u", "app_db/port": "5432", "app_db/tls": `{"on":true}`, "app_db/big": "12345678901234567890"}
	if len(got) != len(want) {
		t.Fatalf("files %v", got)
	}
	for p, v := range want {
		f, ok := got[p]
		if !ok || string(f.Data) != v || f.Version != "v7" || f.Mode != 0o440 || f.ID != "kms/"+p {
			t.Fatalf("%s: %+v", p, f)
		}
	}
	y := parseOne(t, "- objectName: cfg\n  objectType: oos\n  keysAsFiles: true\n  objectFormat: yaml\n  jmesPath:\n    - {path: db.host, objectAlias: host}\n")
	got = filesOf(t, y.Objects[0], &Entry{Data: Bytes("db:\n  host: h1\nname: app\n")})
	if string(got["cfg/name"].Data) != "app" || string(got["cfg/db"].Data) != `{"host":"h1"}` || string(got["host"].Data) != "h1" {
		t.Fatalf("yaml: %v", got)
	}
	secretKey := "s3cr3t-key/with-slash"
	refusals := []struct{ value, want string }{
		{`{"` + secretKey + `":"x"}`, "slash"},
		{`{"..":"x"}`, "dot name"},
		{`{"":"x"}`, "empty"},
		{`["a"]`, "JSON array"},
		{`{}`, "empty object"},
		{`{` + strings.Repeat(`"k":1,`, 3) + `"k2":2}`, ""}, // duplicate JSON keys: the last wins, no refusal
		{manyKeys(MaxKeysPerObject + 1), "over the limit"},
		{"not json", "not JSON"},
	}
	for _, r := range refusals {
		_, err := ObjectFiles(s.Objects[0], &Entry{Data: Bytes(r.value)})
		if r.want == "" {
			if err != nil {
				t.Fatalf("%q: %v", r.value, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), r.want) || strings.Contains(err.Error(), secretKey) {
			t.Fatalf("%.40q: %v", r.value, err)
		}
	}
	bomb := "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
	if _, err := ObjectFiles(y.Objects[0], &Entry{Data: Bytes(bomb)}); err == nil {
		t.Fatal("a YAML alias bomb in a value was expanded")
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i) + `":1`)
	}
	b.WriteString("}")
	return b.String()
}

func itoa(i int) string { return sprintf("%d", i) }

func TestHistoryFiles(t *testing.T) {
	s := parseOne(t, "- objectName: db\n  objectVersionHistory: 3\n  objectEncoding: base64\n")
	e := &Entry{Data: b64("c"), Version: "v3", History: []Version{{b64("c"), "v3"}, {b64("b"), "v2"}, {b64("a"), "v1"}, {b64("z"), "v0"}}}
	got := filesOf(t, s.Objects[0], e)
	if len(got) != 3 || string(got["db/0"].Data) != "c" || got["db/1"].Version != "v2" || string(got["db/2"].Data) != "a" {
		t.Fatalf("history: %v", got)
	}
	if s.Objects[0].Selector() != "history=3" {
		t.Fatalf("selector %q", s.Objects[0].Selector())
	}
}

func b64(s string) Bytes { return Bytes(base64.StdEncoding.EncodeToString([]byte(s))) }

func TestDynamicCollisions(t *testing.T) {
	s := parseOne(t, "- objectName: db\n  keysAsFiles: true\n- objectName: other\n  objectAlias: db/user\n", ParamPathTranslation, "False")
	files := []File{}
	for i, o := range s.Objects {
		data := `{"user":"u"}`
		if i == 1 {
			data = "x"
		}
		fs, err := appendObjectFiles(nil, o, &Entry{Data: Bytes(data)})
		if err != nil {
			t.Fatal(err)
		}
		for k := range fs {
			fs[k].obj = o
		}
		files = append(files, fs...)
	}
	oe := checkDynamicPaths(files)
	if oe == nil || oe.Object != s.Objects[0] || !strings.Contains(oe.Err.Error(), `"db/user"`) {
		t.Fatalf("collision: %+v", oe)
	}
	if KindOf(oe.Err) != KindInvalid {
		t.Fatalf("a collision is %v, want invalid", KindOf(oe.Err))
	}
	// Two key files alike never quote the path: it holds a key of a value.
	s = parseOne(t, "- objectName: a\n  keysAsFiles: true\n- objectName: b\n  objectAlias: a/k\n", ParamPathTranslation, "False")
	a, _ := appendObjectFiles(nil, s.Objects[0], &Entry{Data: Bytes(`{"k":"1"}`)})
	a[0].obj = s.Objects[0]
	dup := []File{a[0], a[0]}
	if oe := checkDynamicPaths(dup); oe == nil || strings.Contains(oe.Err.Error(), "a/k") {
		t.Fatalf("two key files alike: %+v", oe)
	}
}

func TestFailoverRegionParse(t *testing.T) {
	s := parseOne(t, "- objectName: a\n- objectName: b\n  failoverRegion: cn-beijing\n- objectName: c\n  kmsEndpoint: kst-abc.cryptoservice.kms.aliyuncs.com\n", ParamFailoverRegion, "cn-shanghai")
	if s.Objects[0].FailoverRegion != "cn-shanghai" || s.Objects[1].FailoverRegion != "cn-beijing" || s.Objects[2].FailoverRegion != "" {
		t.Fatalf("failover regions: %q %q %q", s.Objects[0].FailoverRegion, s.Objects[1].FailoverRegion, s.Objects[2].FailoverRegion)
	}
}
