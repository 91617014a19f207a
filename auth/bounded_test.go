package auth

import (
	"fmt"
	"strings"
	"testing"
)

// What a Mount's attributes or an unverified token hold is quoted in errors
// (which the Mount's log line and the driver show) only up to a bound, so
// a 250 KB pod namespace makes no 250 KB message.
func TestErrorsQuoteAttributesBounded(t *testing.T) {
	const maxErr = 2048
	huge := strings.Repeat("n", 250_000)
	r := NewResolver(Config{Getenv: envMap("ALICLOUD_OIDC_PROVIDER_ARN", testOIDCProvider), STSEndpoint: "127.0.0.1:1"})
	for name, c := range map[string]struct {
		sub, ns, sa string
		want        string
	}{
		"namespace attribute":            {"system:serviceaccount:a:s", huge, "s", "not to the mounting pod's service account"},
		"service account attribute":      {"system:serviceaccount:a:s", "a", huge, "not to the mounting pod's service account"},
		"namespace in the token":         {"system:serviceaccount:" + huge + ":s", "", "", "not a service account"},
		"service account in the token":   {"system:serviceaccount:a:" + huge, "", "", "not a service account"},
		"token subject not a k8s name":   {"system:serviceaccount:A_B:s", "", "", "not a service account"},
		"token subject with a colon too": {"system:serviceaccount:a:s:x", "", "", "not a service account"},
	} {
		t.Run(name, func(t *testing.T) {
			attrs := map[string]string{"usePodServiceAccountToken": "true", "roleArn": testRole, AttrServiceAccountTokens: tokensJSON(jwt(map[string]any{"sub": c.sub}))}
			_, err := resolve(r, attrs, nil, c.ns, c.sa)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %.300v, want %q", err, c.want)
			}
			if len(err.Error()) > maxErr {
				t.Errorf("a %d-byte error: %.300s", len(err.Error()), err)
			}
		})
	}

	p, err := LoadPolicy(writePolicy(t, t.TempDir(), testPolicy), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ns, sa, roleOrName string }{{huge, "s", "x"}, {"payments", huge, "x"}} {
		for _, typ := range []string{"kms", PolicyRoles} {
			err := p.Allow(c.ns, c.sa, typ, c.roleOrName)
			if err == nil {
				t.Fatal("allowed")
			}
			if len(err.Error()) > maxErr || !strings.Contains(err.Error(), fmt.Sprintf("(%d bytes)", len(huge))) {
				t.Errorf("policy %s refusal of %d bytes, or without the cut value's length: %.300s", typ, len(err.Error()), err)
			}
		}
	}
}
