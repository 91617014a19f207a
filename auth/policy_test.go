package auth

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPolicy = `
rules:
  - namespace: payments
    kms: ["payments/*"]
    oos: ["payments-*"]
  - namespace: "team-*"
    serviceAccount: reader
    kms: ["shared", "team-?/db"]
`

func TestParsePolicyErrorsNameTheRule(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"unknown key", "rules:\n  - namespace: a\n    kms: [x1]\n    secrets: [y]\n", "secrets"},
		{"misspelled top key", "rule:\n  - namespace: a\n", "rule"},
		{"no rules key", "{}\n", `no "rules" key`},
		{"empty file", "", `no "rules" key`},
		{"no namespace", "rules:\n  - kms: [x1]\n", "rules[0].namespace: required"},
		{"allows nothing", "rules:\n  - namespace: a\n  - namespace: b\n    kms: []\n", "rules[0]: allows nothing"},
		{"empty glob", "rules:\n  - namespace: a\n    oos: [\"\"]\n", "rules[0].oos[0]"},
		{"not YAML", "rules: [", "policy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	rules, err := ParsePolicy([]byte("rules: []\n"))
	if err != nil || len(rules) != 0 {
		t.Fatalf("rules: [] (refuse everything) = %v, %v", rules, err)
	}
}

func writePolicy(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyAllow(t *testing.T) {
	p, err := LoadPolicy(writePolicy(t, t.TempDir(), testPolicy), nil)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []struct{ ns, sa, typ, name string }{
		{"payments", "default", "kms", "payments/db"},
		{"payments", "", "kms", "payments/a/b/c"}, // * crosses /
		{"payments", "anything", "oos", "payments-api"},
		{"team-a", "reader", "kms", "shared"},
		{"team-a", "reader", "kms", "team-x/db"},
	}
	for _, c := range allowed {
		if err := p.Allow(c.ns, c.sa, c.typ, c.name); err != nil {
			t.Errorf("Allow%v: %v", c, err)
		}
	}
	refused := []struct{ ns, sa, typ, name, want string }{
		{"payments", "default", "oos", "payments/db", "1 rule(s) apply"},       // right name, wrong type
		{"payments", "default", "kms", "other", "1 rule(s) apply"},             // wrong name
		{"team-a", "writer", "kms", "shared", "no rule applies"},               // wrong service account
		{"team-a", "reader", "kms", "team-xy/db", "none lists this kms name"},  // ? is one character
		{"other", "default", "kms", "payments/db", "no rule applies"},          // wrong namespace
		{"paymentsx", "default", "kms", "payments/db", "no rule applies"},      // globs are anchored
		{"", "default", "kms", "payments/db", "podInfoOnMount"},                // no namespace: fail closed
		{"payments", "default", "secretsmanager", "payments/db", "1 rule(s)"},  // unknown type
		{"payments", "default", "kms", "payments", "none lists this kms name"}, // payments/* needs the slash
	}
	for _, c := range refused {
		err := p.Allow(c.ns, c.sa, c.typ, c.name)
		if err == nil {
			t.Errorf("Allow(%q, %q, %q, %q) allowed", c.ns, c.sa, c.typ, c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Allow(%q, %q, %q, %q) = %v, want %q", c.ns, c.sa, c.typ, c.name, err, c.want)
		}
	}
	// The refusal names the rule to add.
	err = p.Allow("billing", "api", "oos", "billing-key")
	want := `add the rule {namespace: "billing", serviceAccount: "api", oos: ["billing-key"]}`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %v does not name the rule %s", err, want)
	}
	// ... and that rule, added, allows it.
	rules, err := ParsePolicy([]byte("rules:\n  - " + want[len("add the rule "):] + "\n"))
	if err != nil || len(rules) != 1 || rules[0].Namespace != "billing" || rules[0].OOS[0] != "billing-key" {
		t.Fatalf("the suggested rule does not parse as one: %v %v", rules, err)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "a/b", true}, {"a*", "a", true}, {"a*c", "abbbc", true}, {"a*c", "abbbd", false},
		{"?", "", false}, {"?", "x", true}, {"a?c", "abc", true}, {"*/db", "x/y/db", true}, {"*/db", "db", false},
		{"a", "A", false}, {"[a]", "a", false}, {"[a]", "[a]", true}, {"**", "xyz", true}, {"*a*b", "zazb", true},
	} {
		if got := Glob(c.p, c.s); got != c.ok {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.p, c.s, got, c.ok)
		}
	}
}

func TestPolicyReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := writePolicy(t, dir, "rules:\n  - namespace: a\n    kms: [x1]\n")
	var logs bytes.Buffer
	p, err := LoadPolicy(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := p.Reload(); changed || err != nil {
		t.Fatalf("unchanged file: changed=%v err=%v", changed, err)
	}
	writePolicy(t, dir, "rules:\n  - namespace: a\n    kms: [y1]\n")
	if changed, err := p.Reload(); !changed || err != nil {
		t.Fatalf("changed file: changed=%v err=%v", changed, err)
	}
	if p.Allow("a", "", "kms", "y1") != nil || p.Allow("a", "", "kms", "x1") == nil {
		t.Fatal("the reloaded rules are not in force")
	}
	// A bad file keeps the last good rules and is logged once.
	writePolicy(t, dir, "rules:\n  - namespace: a\n    kms: [z1]\n    typo: 1\n")
	for range 3 {
		if changed, err := p.Reload(); changed || err == nil {
			t.Fatalf("bad file: changed=%v err=%v", changed, err)
		}
	}
	if p.Allow("a", "", "kms", "y1") != nil {
		t.Fatal("a bad file dropped the last good policy")
	}
	if n := strings.Count(logs.String(), "keeping the last good policy"); n != 1 {
		t.Fatalf("bad file logged %d times, want once:\n%s", n, logs.String())
	}
	// So does a missing file (a ConfigMap being swapped).
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reload(); err == nil || p.Allow("a", "", "kms", "y1") != nil {
		t.Fatalf("missing file: err=%v", err)
	}
	writePolicy(t, dir, "rules: []\n")
	if changed, _ := p.Reload(); !changed || p.Allow("a", "", "kms", "y1") == nil {
		t.Fatal("an empty rule list must refuse everything")
	}
	if _, err := LoadPolicy(filepath.Join(dir, "nope.yaml"), nil); err == nil {
		t.Fatal("a missing file at startup must be an error")
	}
	writePolicy(t, dir, "rules:\n  - namespace: a\n")
	if _, err := LoadPolicy(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a bad file at startup must be an error naming it: %v", err)
	}
}

func TestPolicyCommonParameters(t *testing.T) {
	p, err := LoadPolicy(writePolicy(t, t.TempDir(), "rules:\n  - namespace: app\n    oos: [\"secret-*\"]\n    oosParameters: [\"flags-*\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Allow("app", "default", "oos-parameter", "flags-ui"); err != nil {
		t.Fatal(err)
	}
	// The two name spaces are apart: an encrypted parameter's glob does not
	// allow a common parameter of that name, nor the other way round.
	err = p.Allow("app", "default", "oos-parameter", "secret-db")
	if err == nil || !strings.Contains(err.Error(), `oosParameters: ["secret-db"]`) {
		t.Fatalf("oos glob allowed a common parameter: %v", err)
	}
	if err := p.Allow("app", "default", "oos", "flags-ui"); err == nil {
		t.Fatal("an oosParameters glob allowed an encrypted parameter")
	}
	if _, err := ParsePolicy([]byte("rules:\n  - namespace: a\n    oosParameters: [\" x\"]\n")); err == nil || !strings.Contains(err.Error(), "oosParameters[0]") {
		t.Fatalf("bad oosParameters glob: %v", err)
	}
}
