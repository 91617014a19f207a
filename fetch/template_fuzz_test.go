package fetch

import (
	"errors"
	"strings"
	"testing"
)

// fuzzTemplateObjects: a value the fuzzer picks (db, and hidden with file:
// false), and key files.
const fuzzTemplateObjects = "- objectName: db\n- objectName: hidden\n  file: false\n- objectName: cfg\n  keysAsFiles: true\n"

// FuzzTemplates: no template text and value panics, hangs or breaks a
// bound; every refusal names its field; every render is deterministic
// (the same bytes and version twice); no error quotes the value; and a
// file: false object never reaches the volume.
func FuzzTemplates(f *testing.F) {
	for _, s := range [][2]string{
		{`DB={{ secret "db" | dotenvQuote }}` + "\n", "p\"a's$s\\w\nord"},
		{`{"db": {{ secret "db" | jsonQuote }}, "h": {{ secret "hidden" | yamlQuote }}}`, "\u2028\x00é"},
		{`{{ if exists "cfg/k" }}{{ secret "cfg/k" | indent 4 }}{{ else }}none{{ end }}`, "x"},
		{`{{ secret "db" | b64enc | b64dec | trim | default "empty" | shellQuote }}`, "  "},
		{`{{ with secret "db" }}{{ if eq . "a" "b" }}ab{{ else if ne . "" }}{{ . }}{{ end }}{{ end }}`, "b"},
		{`{{ $a := secret "db" }}{{ and $a (not (eq (len $a) 0)) }}`, "v"},
		{`{{ range 1000000000 }}x{{ end }}`, "v"},
		{`{{ define "x" }}{{ template "x" }}{{ end }}{{ template "x" }}`, "v"},
		{`{{ printf "%0999999999d" 1 }}`, "v"},
		{`{{ call .F }}{{ index . 0 }}{{ .Env.HOME }}`, "v"},
		{`{{ secret "db" | b64dec }}`, "not base64 s3cret value"},
		{`{{ secret "missing" }}`, "v"},
		{`{{ eq (secret "db") 1 }}`, "s3cret-value"},
		{`{{ secret "db" | indent 64 | indent 64 | indent 64 }}`, strings.Repeat("\n", 300)},
		{`{{/* a comment */}}{{- secret "db" -}}`, "v"},
		{`{{ block "b" . }}{{ end }}`, ""},
		{"{{ secret `db` }}", "raw string path"},
		{`{{ secret "cfg" }}`, "v"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		spec, err := ParseParameters(tmplParams(fuzzTemplateObjects, oneTemplate("out", text)))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("refusal without a field: %v", err)
			}
			return
		}
		vals := map[string]Entry{
			"db":     {Data: Bytes(value), Version: "1"},
			"hidden": {Data: Bytes(value), Version: "2"},
			"cfg":    {Data: Bytes(`{"k":"v"}`), Version: "3"},
		}
		a, errA := render(t, spec, vals)
		b, errB := render(t, spec, vals)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("renders differ: %v / %v", errA, errB)
		}
		if errA != nil {
			if errA.Error() != errB.Error() {
				t.Fatalf("errors differ: %v / %v", errA, errB)
			}
			var me *MountError
			if !errors.As(errA, &me) || me.Kind() != KindInvalid {
				t.Fatalf("not an invalid MountError: %v", errA)
			}
			if len(value) >= 8 && strings.Contains(errA.Error(), value) && !strings.Contains(text, value) {
				t.Fatalf("the error quotes the value: %v", errA)
			}
			return
		}
		fa, fb := fileMap(a), fileMap(b)
		out, ok := fa["out"]
		if !ok || len(out.Data) > MaxTemplateOutput {
			t.Fatalf("output missing or over the bound: %d bytes", len(out.Data))
		}
		if string(out.Data) != string(fb["out"].Data) || out.Version != fb["out"].Version {
			t.Fatal("two renders of the same inputs differ")
		}
		if _, ok := fa["hidden"]; ok {
			t.Fatal("a file: false object reached the volume")
		}
	})
}
