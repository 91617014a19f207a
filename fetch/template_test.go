package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// tmplParams is a class of objects and templates.
func tmplParams(objects, templates string) map[string]string {
	p := map[string]string{ParamObjects: objects}
	if templates != "" {
		p[ParamTemplates] = templates
	}
	return p
}

// oneTemplate is the templates parameter of one template.
func oneTemplate(fileName, text string) string {
	b, _ := json.Marshal([]map[string]string{{"fileName": fileName, "template": text}})
	return string(b)
}

// mountFiles makes the object files of a Mount as Fetch does: vals by
// objectName (a missing name is an absent optional object).
func mountFiles(t testing.TB, spec *Spec, vals map[string]Entry) []File {
	t.Helper()
	var files []File
	for _, o := range spec.Objects {
		e, ok := vals[o.Name]
		if !ok {
			continue
		}
		n := len(files)
		var err error
		if files, err = appendObjectFiles(files, o, &e); err != nil {
			t.Fatalf("%s: %v", o.Ref(), err)
		}
		for k := n; k < len(files); k++ {
			files[k].obj = o
		}
	}
	return files
}

func render(t testing.TB, spec *Spec, vals map[string]Entry) ([]File, error) {
	t.Helper()
	return renderTemplates(spec, mountFiles(t, spec, vals))
}

func fileMap(files []File) map[string]File {
	m := map[string]File{}
	for _, f := range files {
		m[f.Path] = f
	}
	return m
}

const tmplObjects = `- objectName: db
  file: false
  jmesPath:
    - {path: password, objectAlias: db-password}
- objectName: app/token
  objectType: oos
- objectName: cfg
  keysAsFiles: true
`

func TestTemplateParseRefusals(t *testing.T) {
	long := strings.Repeat("x", MaxTemplateBytes+1)
	many := make([]map[string]string, MaxTemplates+1)
	for i := range many {
		many[i] = map[string]string{"fileName": "f" + strings.Repeat("x", i), "template": "x"}
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct {
		name      string
		objects   string
		templates string
		pt        string
		field     string
		want      []string
	}{
		{"unknown function", "", oneTemplate(".env", "A=1\nB={{ env \"HOME\" }}\n"), "", "templates[0].template", []string{`(fileName ".env") line 2: function "env" not defined`, "the functions are secret"}},
		{"unknown function second template", "", `[{fileName: a, template: x}, {fileName: app.json, template: "{\n\n {{ now }}"}]`, "", "templates[1].template", []string{`"app.json"`, "line 3", `"now"`}},
		{"define", "", oneTemplate("a", "{{ define \"x\" }}{{ template \"x\" }}{{ end }}x"), "", "templates[0].template", []string{"define"}},
		{"block", "", oneTemplate("a", "{{ block \"x\" . }}y{{ end }}"), "", "templates[0].template", []string{"block"}},
		{"template call", "", oneTemplate("a", "x\n{{ template \"y\" }}"), "", "templates[0].template", []string{"line 2", "template and block are not available"}},
		{"range", "", oneTemplate("a", "{{ range $i, $c := \"abc\" }}x{{ end }}"), "", "templates[0].template", []string{"line 1", "range is not available"}},
		{"range over int", "", oneTemplate("a", "\n\n{{ range 1000000000 }}x{{ end }}"), "", "templates[0].template", []string{"line 3", "range"}},
		{"printf width", "", oneTemplate("a", `{{ printf "%0999999999d" 1 }}`), "", "templates[0].template", []string{"printf is not available", "width"}},
		{"print", "", oneTemplate("a", `{{ print (secret "db") (secret "db") }}`), "", "templates[0].template", []string{"print is not available"}},
		{"call", "", oneTemplate("a", `{{ call . }}`), "", "templates[0].template", []string{"call is not available"}},
		{"index", "", oneTemplate("a", `{{ index "ab" 0 }}`), "", "templates[0].template", []string{"index is not available"}},
		{"slice", "", oneTemplate("a", `{{ slice "ab" 0 1 }}`), "", "templates[0].template", []string{"slice is not available"}},
		{"html", "", oneTemplate("a", `{{ html "x" }}`), "", "templates[0].template", []string{"html is not available"}},
		{"lt", "", oneTemplate("a", `{{ if lt 1 2 }}x{{ end }}`), "", "templates[0].template", []string{"lt is not available"}},
		{"field", "", oneTemplate("a", `{{ .Env }}`), "", "templates[0].template", []string{"fields"}},
		{"variable field", "", oneTemplate("a", `{{ $x := secret "db" }}{{ $x.Len }}`), "", "templates[0].template", []string{"fields"}},
		{"secret variable", "", oneTemplate("a", `{{ $p := "db" }}{{ secret $p }}`), "", "templates[0].template", []string{"one quoted file path"}},
		{"secret piped", "", oneTemplate("a", `{{ "db" | secret }}`), "", "templates[0].template", []string{"one quoted file path"}},
		{"secret as a value", "", oneTemplate("a", `{{ trim secret "db" }}`), "", "templates[0].template", []string{"one quoted file path"}},
		{"secret of no file", "", oneTemplate("a", "x\n{{ secret \"dbb\" }}"), "", "templates[0].template", []string{"line 2", `secret "dbb" names no file of this class`}},
		{"secret before translation", "", oneTemplate("a", `{{ secret "app/token" }}`), "", "templates[0].template", []string{`"app/token" names no file`}},
		{"secret of a key directory", "", oneTemplate("a", `{{ secret "cfg" }}`), "", "templates[0].template", []string{"directory of objects[2]", "cfg/<key>"}},
		{"secret of a template", "", `[{fileName: a, template: x}, {fileName: b, template: '{{ secret "a" }}'}]`, "", "templates[1].template", []string{`names the file of templates[0] "a"`}},
		{"parse error", "", oneTemplate("a", "ok\n{{ secret \"db\" "), "", "templates[0].template", []string{`(fileName "a") line 2: unclosed action`}},
		{"empty text", "", oneTemplate("a", "  "), "", "templates[0].template", []string{"required"}},
		{"too long", "", oneTemplate("a", long), "", "templates[0].template", []string{"over the limit of 65536"}},
		{"too many", "", string(manyJSON), "", "parameter templates", []string{"over the limit of 50"}},
		{"parameter too big", "", strings.Repeat(" ", MaxTemplatesBytes+1) + "[]", "", "parameter templates", []string{"bytes, over the limit"}},
		{"not a list", "", "fileName: a", "", "parameter templates", []string{"not a YAML list"}},
		{"empty list", "", "[]", "", "parameter templates", []string{"empty list"}},
		{"unknown field", "", "- fileName: a\n  text: x\n", "", "parameter templates", []string{`unknown field "text"`}},
		{"no fileName", "", "- template: x\n", "", "templates[0].fileName", []string{"required"}},
		{"absolute fileName", "", oneTemplate("/etc/profile", "x"), "", "templates[0].fileName", []string{"absolute"}},
		{"dotdot fileName", "", oneTemplate("a/../../b", "x"), "", "templates[0].fileName", []string{`".."`}},
		{"reserved fileName", "", oneTemplate("..data", "x"), "", "templates[0].fileName", []string{"reserves"}},
		{"control in fileName", "", oneTemplate("a\nb", "x"), "", "templates[0].fileName", []string{"control"}},
		{"collides with an object", "", oneTemplate("db", "x"), "", "templates[0].fileName", []string{`"db" is also the file of objects[0]`}},
		{"collides with a jmesPath file", "", oneTemplate("db-password", "x"), "", "templates[0].fileName", []string{"objects[0].jmesPath[0].objectAlias"}},
		{"collides after translation", "", oneTemplate("app/token", "x"), "", "templates[0].fileName", []string{`"app_token"`}},
		{"two templates on one file", "", `[{fileName: a, template: x}, {fileName: a, template: y}]`, "", "templates[1].fileName", []string{"templates[0].fileName"}},
		{"template under an object file", "- objectName: db\n", oneTemplate("db/x.env", "x"), "False", "templates[0].fileName", []string{`needs "db" to be a directory`}},
		{"file false without templates", "- objectName: db\n- objectName: other\n  file: false\n", "", "", "objects[1].file", []string{"no templates", "remove file: false"}},
		{"unquoted filePermission", "", "- fileName: a\n  template: x\n  filePermission: 0440\n", "", "templates[0].filePermission", []string{"quote it"}},
		{"bad filePermission", "", "- fileName: a\n  template: x\n  filePermission: \"0999\"\n", "", "templates[0].filePermission", []string{"octal"}},
		{"setuid filePermission", "", "- fileName: a\n  template: x\n  filePermission: \"4755\"\n", "", "templates[0].filePermission", []string{"4-digit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := c.objects
			if objs == "" {
				objs = tmplObjects
			}
			p := tmplParams(objs, c.templates)
			if c.pt != "" {
				p[ParamPathTranslation] = c.pt
			}
			_, err := ParseParameters(p)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error does not name %s: %v", c.field, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error does not say %q: %v", w, err)
				}
			}
		})
	}
}

func TestTemplateParse(t *testing.T) {
	spec, err := ParseParameters(tmplParams(tmplObjects+"- objectName: unused\n  file: false\n", `
- fileName: conf/app.env
  filePermission: "0440"
  template: |
    {{- if exists "cfg/port" }}PORT={{ secret "cfg/port" }}{{ end }}
    PASSWORD={{ secret "db-password" | dotenvQuote }}
    TOKEN={{ secret "app_token" | trim | shellQuote }}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Templates) != 1 {
		t.Fatalf("templates %+v", spec.Templates)
	}
	tp := spec.Templates[0]
	if tp.Path != "conf_app.env" || tp.Mode != 0o440 || tp.FileName != "conf/app.env" {
		t.Fatalf("template %+v", tp)
	}
	if got := strings.Join(tp.Inputs, ","); got != "app_token,cfg/port,db-password" {
		t.Fatalf("inputs %s", got)
	}
	if !spec.Objects[0].NoFile || spec.Objects[1].NoFile {
		t.Fatal("NoFile not parsed")
	}
	if len(spec.Notes) != 1 || !strings.Contains(spec.Notes[0], "objects[3] has file: false but no template reads") {
		t.Fatalf("notes %v", spec.Notes)
	}
	if r := tp.obj.Ref(); r != `templates[0] "conf/app.env"` {
		t.Fatalf("ref %s", r)
	}

	// The memo keys on the templates too.
	f := NewFetcher(NewCache(CacheOptions{}), nil, FetcherOptions{})
	a, err := f.ParseParameters(tmplParams(tmplObjects, oneTemplate("a", `{{ secret "db-password" }}`)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.ParseParameters(tmplParams(tmplObjects, oneTemplate("a", `{{ secret "app_token" }}`)))
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a.Templates[0].Inputs[0] == b.Templates[0].Inputs[0] {
		t.Fatal("two template texts share a memoized parse")
	}
	if _, err := f.ParseParameters(tmplParams(tmplObjects, "")); err == nil || !strings.Contains(err.Error(), "objects[0].file") {
		t.Fatalf("the memo answered for a class without templates: %v", err)
	}

	// The guide's folded item keeps file: false apart.
	if s, err := ParseParameters(tmplParams("- objectName: a\n- objectType: oos\n  file: false\n", oneTemplate("t", "x"))); err == nil && len(s.Objects) == 1 {
		t.Fatal("an item with objectType and file was folded into the one before it")
	}
}

// tricky values for the quoting helpers.
var trickyValues = []string{
	"", "plain", `dq"uote`, "it's", `$HOME ${HOME} $(id) ` + "`id`", `back\slash\\ \n`, "line1\nline2\n", "\n", "crlf\r\n",
	"tab\there", " spaced ", "unicode пароль 密码 🔑 é", "\u2028\u2029", "nel\u0085", "\ufeffbom", "esc\x1b[31m", "del\x7f",
	`'"'"'`, `\'`, `"\"`, "$", "\\", "=;&|<>#!*?~",
}

func newTestState() *renderState { return newRenderState(nil) }

func TestQuotingHelpersRoundTrip(t *testing.T) {
	st := newTestState()
	sh, shErr := exec.LookPath("sh")
	dir := t.TempDir()
	for i, v := range trickyValues {
		j, err := st.jsonQuote(v)
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal([]byte(j), &back); err != nil || back != v {
			t.Errorf("jsonQuote(%q) = %s reads back %q (%v)", v, j, back, err)
		}
		y, err := st.yamlQuote(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := yaml.Unmarshal([]byte("k: "+y+"\n"), &m); err != nil || m["k"] != v {
			t.Errorf("yamlQuote(%q) = %s reads back %q (%v)", v, y, m["k"], err)
		}
		if strings.ContainsAny(y, "\n\t\r") {
			t.Errorf("yamlQuote(%q) = %q keeps a raw line break or tab", v, y)
		}
		if shErr != nil {
			continue
		}
		s, err := st.shellQuote(v)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.dotenvQuote(v)
		if err != nil {
			t.Fatal(err)
		}
		env := filepath.Join(dir, "env")
		if err := os.WriteFile(env, []byte("S="+s+"\nD="+d+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"S", "D"} {
			out, err := exec.Command(sh, "-c", `. "$1" && printf %s "$`+name+`"`, "sh", env).Output()
			if err != nil || string(out) != v {
				t.Errorf("value %d: sh reads %s back as %q, want %q (%v)", i, name, out, v, err)
			}
		}
	}
}

func TestQuotingHelpersExact(t *testing.T) {
	st := newTestState()
	for _, c := range []struct {
		fn   func(string) (string, error)
		in   string
		want string
	}{
		{st.shellQuote, `it's $x`, `'it'\''s $x'`},
		{st.shellQuote, "", `''`},
		{st.dotenvQuote, "a\"b$c\\d`e\nf", "\"a\\\"b\\$c\\\\d\\`e\nf\""},
		{st.jsonQuote, "a\"\\\n\t\x01<&>\u2028é", `"a\"\\\n\t\u0001<&>\u2028é"`},
		{st.yamlQuote, "a\"\\\n\t\x01\x7f\u0085\u2028\ufeffé: #", `"a\"\\\n\t\x01\x7F\N\L\uFEFFé: #"`},
		{st.trim, " \n x y \t\n", "x y"},
		{st.b64enc, "\x00\xffhi", "AP9oaQ=="},
		{st.b64dec, " AP9oaQ\n", "\x00\xffhi"},
		{func(s string) (string, error) { return st.indent(2, s) }, "a\nb\n", "  a\n  b\n  "},
		{func(s string) (string, error) { return st.dflt("none", s) }, "", "none"},
		{func(s string) (string, error) { return st.dflt("none", s) }, "x", "x"},
	} {
		got, err := c.fn(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: got %q (%v), want %q", c.in, got, err, c.want)
		}
	}
	// What a format cannot hold is refused, naming the size, never the value.
	const v = "s3cr3t-\x00-value"
	for _, fn := range []func(string) (string, error){st.shellQuote, st.dotenvQuote} {
		if _, err := fn(v); err == nil || !strings.Contains(err.Error(), "NUL") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("NUL: %v", err)
		}
	}
	for _, fn := range []func(string) (string, error){st.jsonQuote, st.yamlQuote} {
		if _, err := fn("s3cr3t\xff"); err == nil || !strings.Contains(err.Error(), "UTF-8") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("invalid UTF-8: %v", err)
		}
	}
	if _, err := st.b64dec("s3cr3t-not-base64!"); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("b64dec: %v", err)
	}
	if _, err := st.indent(maxIndent+1, "x"); err == nil {
		t.Error("indent over the bound")
	}
}

func dbEntry(pw, version string) Entry {
	return Entry{Data: Bytes(`{"password":` + mustJSON(pw) + `}`), Version: version}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

const envAndJSON = `
- fileName: app.env
  template: |
    DB_PASSWORD={{ secret "db-password" | dotenvQuote }}
    TOKEN={{ secret "app_token" | dotenvQuote }}
- fileName: config.json
  filePermission: "0400"
  template: |
    {"password": {{ secret "db-password" | jsonQuote }}, "token": {{ secret "app_token" | jsonQuote }}, "port": {{ if exists "cfg/port" }}{{ secret "cfg/port" }}{{ else }}0{{ end }}}
`

func TestTemplateRender(t *testing.T) {
	spec, err := ParseParameters(tmplParams(tmplObjects, envAndJSON))
	if err != nil {
		t.Fatal(err)
	}
	pw, tok := "p\"a's$s\\w\nord", "tok`$(id)`"
	vals := map[string]Entry{
		"db":        dbEntry(pw, "v1"),
		"app/token": {Data: Bytes(tok), Version: "3"},
		"cfg":       {Data: Bytes(`{"port":5432,"host":"h"}`), Version: "c1"},
	}
	files, err := render(t, spec, vals)
	if err != nil {
		t.Fatal(err)
	}
	got := fileMap(files)
	if _, ok := got["db"]; ok {
		t.Fatal("a file: false object's own file is in the volume")
	}
	if _, ok := got["db-password"]; ok {
		t.Fatal("a file: false object's jmesPath file is in the volume")
	}
	for _, p := range []string{"app_token", "cfg/port", "cfg/host"} {
		if _, ok := got[p]; !ok {
			t.Fatalf("object file %s missing: %v", p, fileMap(files))
		}
	}
	env := got["app.env"]
	wantEnv := "DB_PASSWORD=\"p\\\"a's\\$s\\\\w\nord\"\nTOKEN=\"tok\\`\\$(id)\\`\"\n"
	if string(env.Data) != wantEnv || env.ID != "template/app.env" || env.Mode != 0 || !strings.HasPrefix(env.Version, "tpl-") || len(env.Version) != 20 {
		t.Fatalf("app.env = %q %+v", env.Data, env)
	}
	js := got["config.json"]
	var cfg struct {
		Password, Token string
		Port            int
	}
	if err := json.Unmarshal(js.Data, &cfg); err != nil || cfg.Password != pw || cfg.Token != tok || cfg.Port != 5432 || js.Mode != 0o400 {
		t.Fatalf("config.json = %q: %+v %v", js.Data, cfg, err)
	}

	// Deterministic: a new render, and a new parse, give the same bytes and
	// versions.
	spec2, _ := ParseParameters(tmplParams(tmplObjects, envAndJSON))
	for range 3 {
		again, err := render(t, spec2, vals)
		if err != nil {
			t.Fatal(err)
		}
		a := fileMap(again)
		for _, p := range []string{"app.env", "config.json"} {
			if string(a[p].Data) != string(got[p].Data) || a[p].Version != got[p].Version {
				t.Fatalf("%s differs between renders", p)
			}
		}
	}

	// A new version of an input is a new version of the file; of a file it
	// does not read, not.
	vals2 := map[string]Entry{"db": dbEntry(pw, "v1"), "app/token": {Data: Bytes(tok), Version: "4"}, "cfg": vals["cfg"]}
	b := fileMap(mustRender(t, spec, vals2))
	if b["app.env"].Version == env.Version || b["config.json"].Version == js.Version {
		t.Fatal("a new input version kept the template's version")
	}
	spec3, _ := ParseParameters(tmplParams(tmplObjects, oneTemplate("only-db", `{{ secret "db-password" }}`)))
	x, y := fileMap(mustRender(t, spec3, vals)), fileMap(mustRender(t, spec3, vals2))
	if x["only-db"].Version != y["only-db"].Version {
		t.Fatal("a version of a file the template does not read changed its version")
	}
	// The text is an input too.
	spec4, _ := ParseParameters(tmplParams(tmplObjects, oneTemplate("only-db", `{{ secret "db-password" }} `)))
	if z := fileMap(mustRender(t, spec4, vals)); z["only-db"].Version == x["only-db"].Version {
		t.Fatal("a new text kept the version")
	}
	// exists: a file that appears is a change.
	vals3 := map[string]Entry{"db": vals["db"], "app/token": vals["app/token"], "cfg": {Data: Bytes(`{"host":"h"}`), Version: "c1"}}
	c := fileMap(mustRender(t, spec, vals3))
	if !strings.Contains(string(c["config.json"].Data), `"port": 0}`) || c["config.json"].Version == js.Version {
		t.Fatalf("without cfg/port: %q %s", c["config.json"].Data, c["config.json"].Version)
	}
}

func mustRender(t testing.TB, spec *Spec, vals map[string]Entry) []File {
	t.Helper()
	files, err := render(t, spec, vals)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestTemplateRuntimeErrorsNameNoValue(t *testing.T) {
	const value = "Sup3r-S3cret-Value"
	cases := []struct {
		text string
		want []string
	}{
		{"ok\n{{ secret \"cfg/missing\" }}", []string{`templates[0] "out.txt"`, "line 2", `secret "cfg/missing": no such file`}},
		{"{{ secret \"app_token\" | b64dec }}", []string{"line 1", "b64dec", "not valid base64"}},
		{"\n{{ eq (secret \"app_token\") 1 }}", []string{"line 2", "incompatible types"}},
		{"{{ len (secret \"app_token\") | trim }}", []string{"line 1", "wrong type"}},
		{"{{ with secret \"app_token\" }}{{ indent 99 . }}{{ end }}", []string{"indent: 99 spaces"}},
		{"{{ secret \"app_token\" | jsonQuote | jsonQuote | b64dec }}", []string{"b64dec"}},
	}
	for _, c := range cases {
		spec, err := ParseParameters(tmplParams(tmplObjects, oneTemplate("out.txt", c.text)))
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		_, err = render(t, spec, map[string]Entry{"db": dbEntry(value, "1"), "app/token": {Data: Bytes(value), Version: "1"}, "cfg": {Data: Bytes(`{"a":"` + value + `"}`), Version: "1"}})
		var me *MountError
		if !errors.As(err, &me) || KindOf(err) != KindInvalid && me.Kind() != KindInvalid {
			t.Fatalf("%q: %v", c.text, err)
		}
		msg := err.Error()
		if strings.Contains(msg, value) || strings.Contains(msg, "Sup3r") {
			t.Fatalf("%q: the error quotes the value: %s", c.text, msg)
		}
		for _, w := range append([]string{"1 of 1 templates failed", `templates[0] "out.txt"`}, c.want...) {
			if !strings.Contains(msg, w) {
				t.Fatalf("%q: %s does not say %q", c.text, msg, w)
			}
		}
	}
	// The safety net: a message that would hold a value read is withheld.
	st := newRenderState([]File{{Path: "p", Data: Bytes(value)}})
	st.read = map[string]string{"p": ""}
	if m := st.scrub("line 3: at {{x}}: bad " + value); strings.Contains(m, value) || !strings.HasPrefix(m, "line 3: ") {
		t.Fatalf("scrub: %s", m)
	}
}

func TestTemplateBounds(t *testing.T) {
	big := strings.Repeat("a", 600<<10)
	vals := map[string]Entry{"db": dbEntry("x", "1"), "app/token": {Data: Bytes(big), Version: "1"}, "cfg": {Data: Bytes(`{"a":"b"}`), Version: "1"}}
	run := func(templates string) error {
		t.Helper()
		spec, err := ParseParameters(tmplParams(tmplObjects, templates))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = render(t, spec, vals)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a bounded render took %v", d)
		}
		return err
	}
	// Output: one template, and every template of a Mount.
	if err := run(oneTemplate("a", `{{ secret "app_token" }}{{ secret "app_token" }}`)); err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("output bound: %v", err)
	}
	var five []map[string]string
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		five = append(five, map[string]string{"fileName": n, "template": `{{ secret "app_token" }}`})
	}
	all, _ := json.Marshal(five)
	if err := run(string(all)); err == nil || !strings.Contains(err.Error(), "template files of this Mount would hold over") {
		t.Fatalf("Mount output bound: %v", err)
	}
	// A value a helper makes is refused before it is made.
	if _, err := newTestState().jsonQuote(strings.Repeat("\x01", 200<<10)); err == nil || !strings.Contains(err.Error(), "over the 1 MiB limit") {
		t.Fatalf("jsonQuote: %v", err)
	}
	if _, err := newTestState().indent(maxIndent, strings.Repeat("\n", 20000)); err == nil || !strings.Contains(err.Error(), "over the 1 MiB limit") {
		t.Fatalf("indent: %v", err)
	}
	for _, text := range []string{`{{ secret "app_token" | b64enc | b64enc }}`} {
		if err := run(oneTemplate("a", text)); err == nil || !strings.Contains(err.Error(), "over the 1 MiB limit") && !strings.Contains(err.Error(), "over 1048576 bytes") {
			t.Fatalf("%s: %v", text, err)
		}
	}
	// Work: eq is this package's (a template's funcs come before the
	// builtins), and charges what it compares.
	cmp := `{{ $a := secret "app_token" }}{{ $b := secret "app_token" | trim }}{{ if eq $a` + strings.Repeat(" $b", 60) + ` }}{{ end }}`
	vals["app/token"] = Entry{Data: Bytes(big + " "), Version: "1"}
	if err := run(oneTemplate("a", cmp)); err == nil || !strings.Contains(err.Error(), "read, make and compare over") {
		t.Fatalf("work bound: %v", err)
	}
	// Time.
	old := templateBudget
	templateBudget = 0
	defer func() { templateBudget = old }()
	if err := run(oneTemplate("a", `x`)); err == nil || !strings.Contains(err.Error(), "took longer than") {
		t.Fatalf("time bound: %v", err)
	}
}

// TestBuiltinOverride: text/template looks a template's own functions up
// before its builtins, which is what lets eq and ne be bounded.
func TestBuiltinOverride(t *testing.T) {
	tm := template.Must(template.New("x").Funcs(template.FuncMap{"eq": func(any, ...any) bool { return true }}).Parse(`{{ eq 1 2 }}`))
	var b strings.Builder
	if err := tm.Execute(&b, nil); err != nil || b.String() != "true" {
		t.Fatalf("override not used: %q %v", b.String(), err)
	}
}

// fixedSource answers every read from a map by name.
type fixedSource map[string]Result

func (s fixedSource) Get(_ context.Context, _ *auth.Identity, t Target) (Result, error) {
	if r, ok := s[t.Name]; ok {
		return r, nil
	}
	return Result{}, &Error{Kind: KindNotFound, Message: "no such object"}
}

func TestFetchRendersTemplates(t *testing.T) {
	src := fixedSource{
		"db":        {Data: Bytes(`{"password":"pw-1"}`), Version: "v1"},
		"app/token": {Data: Bytes("tok"), Version: "1"},
		"cfg":       {Data: Bytes(`{"port":1}`), Version: "c"},
	}
	f := NewFetcher(NewCache(CacheOptions{}), src, FetcherOptions{Region: "cn-hangzhou"})
	spec, err := f.ParseParameters(tmplParams(tmplObjects, envAndJSON))
	if err != nil {
		t.Fatal(err)
	}
	id := &auth.Identity{Fingerprint: "fp"}
	files, _, err := f.Fetch(context.Background(), id, spec)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, fl := range files {
		paths = append(paths, fl.Path)
	}
	if got := strings.Join(paths, ","); got != "app_token,cfg/port,app.env,config.json" {
		t.Fatalf("files %s", got)
	}
	// A render error fails the Mount as a MountError naming the template.
	bad, err := f.ParseParameters(tmplParams(tmplObjects, oneTemplate("x.env", "\n{{ secret \"cfg/nope\" }}")))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.Fetch(context.Background(), id, bad)
	var me *MountError
	if !errors.As(err, &me) || me.Kind() != KindInvalid || !strings.Contains(err.Error(), `1 of 1 templates failed: templates[0] "x.env": invalid: line 2: at {{secret "cfg/nope"}}: secret "cfg/nope": no such file`) {
		t.Fatalf("render error: %v", err)
	}
	// A key file that lands on a template file is refused at the Mount.
	src["cfg"] = Result{Data: Bytes(`{"app.env":"x"}`), Version: "c2"}
	f = NewFetcher(NewCache(CacheOptions{}), src, FetcherOptions{Region: "cn-hangzhou"})
	clash, err := f.ParseParameters(map[string]string{ParamObjects: tmplObjects, ParamTemplates: oneTemplate("cfg/app.env", "x"), ParamPathTranslation: "False"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Fetch(context.Background(), id, clash); err == nil || !strings.Contains(err.Error(), `templates[0] "cfg/app.env"`) {
		t.Fatalf("key file on a template file: %v", err)
	}
}

// TestTemplateConcurrentRenders: one parsed Spec (the memo shares it) is
// rendered by many Mounts at once, each with its own values.
func TestTemplateConcurrentRenders(t *testing.T) {
	spec, err := ParseParameters(tmplParams(tmplObjects, envAndJSON))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 16)
	for i := range 16 {
		go func() {
			pw := strings.Repeat("x", i)
			vals := map[string]Entry{"db": dbEntry(pw, "v"), "app/token": {Data: Bytes("t"), Version: "1"}, "cfg": {Data: Bytes(`{"port":1}`), Version: "c"}}
			for range 20 {
				files, err := renderTemplates(spec, mountFilesNoT(spec, vals))
				if err != nil {
					done <- err
					return
				}
				if env := fileMap(files)["app.env"]; !strings.Contains(string(env.Data), "DB_PASSWORD=\""+pw+"\"\n") {
					done <- errors.New("a render saw another Mount's value")
					return
				}
			}
			done <- nil
		}()
	}
	for range 16 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func mountFilesNoT(spec *Spec, vals map[string]Entry) []File {
	var files []File
	for _, o := range spec.Objects {
		e := vals[o.Name]
		n := len(files)
		files, _ = appendObjectFiles(files, o, &e)
		for k := n; k < len(files); k++ {
			files[k].obj = o
		}
	}
	return files
}

func TestTemplateInputUnderAPlainFile(t *testing.T) {
	_, err := ParseParameters(tmplParams(tmplObjects, oneTemplate("a", `{{ secret "app_token/x" }}`)))
	if err == nil || !strings.Contains(err.Error(), `"app_token/x" names no file of this class`) {
		t.Fatalf("a path under a plain file: %v", err)
	}
}

// TestTemplateReadsAListing: a template reads the files of a directory
// object (named at each Mount), and file: false keeps its members out.
func TestTemplateReadsAListing(t *testing.T) {
	spec, err := ParseParameters(tmplParams("- objectPath: /app/prod/\n  objectType: oos\n  objectAlias: prod\n  file: false\n",
		oneTemplate("app.env", `DB={{ secret "prod/db" | dotenvQuote }}{{ if exists "prod/gone" }}x{{ end }}`)))
	if err != nil {
		t.Fatal(err)
	}
	dir := spec.Objects[0]
	if !dir.NoFile || dir.Dir == nil {
		t.Fatalf("object %+v", dir)
	}
	member := &Object{Name: "/app/prod/db", Type: TypeOOS, File: "prod/db", parent: dir}
	files, err := renderTemplates(spec, []File{{Path: "prod/db", ID: "oos/prod/db", Data: Bytes("p$w"), Version: "2", obj: member}})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != "app.env" || string(files[0].Data) != `DB="p\$w"` {
		t.Fatalf("files %+v", files)
	}
}
