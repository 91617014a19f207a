package csi

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

type countPanics struct{ n int }

func (c *countPanics) Mount(string, time.Duration) {}
func (c *countPanics) Panic(string)                { c.n++ }

func TestRecoverInterceptorTurnsPanicIntoInternal(t *testing.T) {
	var buf bytes.Buffer
	obs := &countPanics{}
	ic := RecoverInterceptor(slog.New(slog.NewTextHandler(&buf, nil)), obs)
	_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/v1alpha1.CSIDriverProvider/Mount"},
		func(context.Context, any) (any, error) { panic("secret-value-in-panic") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("code %v", status.Code(err))
	}
	if obs.n != 1 {
		t.Fatal("panic not counted")
	}
	if !strings.Contains(buf.String(), "stack=") {
		t.Fatal("no stack logged")
	}
	if strings.Contains(buf.String(), "secret-value-in-panic") || strings.Contains(err.Error(), "secret-value-in-panic") {
		t.Fatal("the panic value leaked")
	}
}

func TestParseModeAndMaps(t *testing.T) {
	for in, want := range map[string]int32{"420": 0o644, "": 0o644, "null": 0o644, " 420 ": 0o644, "256": 0o400, "511": 0o777, "1": 0o001} {
		got, err := parseMode(in)
		if err != nil || got != want {
			t.Errorf("parseMode(%q) = %o, %v; want %o", in, got, err, want)
		}
	}
	if _, err := parseMode("-1"); err == nil {
		t.Error("negative mode accepted")
	}
	for _, in := range []string{"", "null", "{}", " null "} {
		m, err := parseJSONMap("secrets", in)
		if err != nil || len(m) != 0 {
			t.Errorf("parseJSONMap(%q) = %v, %v", in, m, err)
		}
	}
	if _, err := parseJSONMap("secrets", `{"access_secret":"hunter2-abc"`); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad secrets JSON: %v", err)
	}
}

// A permission out of range or without permission bits is refused, naming
// the field and the fix, instead of becoming 0644 (or a mode made of its
// low bits: "0644" is decimal 644, 0o1204).
func TestParseModeRefusesOutOfRangeAndNoBits(t *testing.T) {
	for in, want := range map[string]string{
		"0":          "has no permission bits",
		"512":        "is out of range",
		"0644":       "is out of range",
		"33188":      "is out of range",
		"4096":       "is out of range",
		"4294967296": "is out of range",
		"-1":         "is not a file mode",
		"rwx":        "is not a file mode",
		"4.2e2":      "is not a file mode",
	} {
		got, err := parseMode(in)
		if err == nil {
			t.Errorf("parseMode(%q) = %o, want an error", in, got)
			continue
		}
		for _, w := range []string{"permission", want, "420"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("parseMode(%q): %q lacks %q", in, err, w)
			}
		}
	}
	// A huge permission string is not echoed back whole.
	_, err := parseMode(strings.Repeat("7", 100000))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("huge permission: %d-byte error", len(err.Error()))
	}
}

type outcomes struct{ got []string }

func (o *outcomes) Mount(outcome string, _ time.Duration) { o.got = append(o.got, outcome) }
func (o *outcomes) Panic(string)                          {}

// Through Mount, a bad permission is InvalidArgument and counted as an
// invalid Mount, before any identity is resolved.
func TestMountRefusesBadPermission(t *testing.T) {
	obs := &outcomes{}
	srv := &Server{Observer: obs} // no Identity: reaching it would panic
	_, err := srv.Mount(context.Background(), &v1alpha1.MountRequest{
		Attributes: `{"objects":"- objectName: db\n"}`, Secrets: "null", Permission: "0",
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "permission") {
		t.Fatalf("Mount with permission 0: %v", err)
	}
	if len(obs.got) != 1 || obs.got[0] != "invalid" {
		t.Fatalf("outcomes %v, want [invalid]", obs.got)
	}
}

func TestSummarize(t *testing.T) {
	rs := []fetch.ObjectResult{{Outcome: fetch.OutcomeMiss}, {Outcome: fetch.OutcomeHit}, {}, {Outcome: fetch.OutcomeHit}, {Outcome: fetch.OutcomeError}}
	if got, want := summarize(rs), "hit=2,miss=1,error=1"; got != want {
		t.Fatalf("summarize = %q, want %q", got, want)
	}
	if got := summarize(nil); got != "" {
		t.Fatalf("summarize(nil) = %q", got)
	}
}

func TestAttributesMemo(t *testing.T) {
	s := &Server{}
	raw := `{"csi.storage.k8s.io/pod.name":"p","objects":"- objectName: a"}`
	a, err := s.attributes(raw)
	if err != nil || a[AttrPodName] != "p" || s.attrs.Len() != 1 {
		t.Fatal(a, err)
	}
	b, _ := s.attributes(raw)
	if b[AttrPodName] != "p" || s.attrs.Len() != 1 {
		t.Fatal("the same attributes decoded twice")
	}
	if _, err := s.attributes(`{"x":1}`); err == nil {
		t.Fatal("bad attributes accepted")
	}
	tokens := `{"` + auth.AttrServiceAccountTokens + `":"{}","csi.storage.k8s.io/pod.name":"p"}`
	if m, err := s.attributes(tokens); err != nil || m[AttrPodName] != "p" {
		t.Fatal(m, err)
	}
	big := `{"a":"` + strings.Repeat("x", maxMemoAttrsBytes) + `"}`
	if _, err := s.attributes(big); err != nil {
		t.Fatal(err)
	}
	if n := s.attrs.Len(); n != 1 {
		t.Fatalf("%d remembered: a failure, tokens or oversize attributes were kept", n)
	}
}
