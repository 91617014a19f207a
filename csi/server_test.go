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
	for in, want := range map[string]int32{"420": 0o644, "": 0o644, "0": 0o644, "256": 0o400, "33188": 0o644} {
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
