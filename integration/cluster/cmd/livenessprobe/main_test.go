package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeIdentity answers Probe with resp or err (an IdentityClient, so no
// socket is needed: the handler's logic is what is tested).
type fakeIdentity struct {
	csi.IdentityClient
	resp  *csi.ProbeResponse
	err   error
	delay time.Duration
}

func (f fakeIdentity) Probe(ctx context.Context, _ *csi.ProbeRequest, _ ...grpc.CallOption) (*csi.ProbeResponse, error) {
	select {
	case <-time.After(f.delay):
		return f.resp, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestHealthz(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   fakeIdentity
		want int
	}{
		{"ready", fakeIdentity{resp: &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}}, 200},
		{"ready unset", fakeIdentity{resp: &csi.ProbeResponse{}}, 200},
		{"not ready", fakeIdentity{resp: &csi.ProbeResponse{Ready: wrapperspb.Bool(false)}}, 500},
		{"error", fakeIdentity{err: errors.New("connection refused")}, 500},
		{"timeout", fakeIdentity{resp: &csi.ProbeResponse{}, delay: time.Second}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			healthz(tc.id, 50*time.Millisecond).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

type identityServer struct {
	csi.UnimplementedIdentityServer
}

func (*identityServer) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

// TestHealthzSocket probes through a real unix socket: 500 while nothing
// listens (and quickly: the probe must not wait for the driver), 200 once a
// driver answers.
func TestHealthzSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "csi.sock")
	id, err := identity("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	h := healthz(id, 3*time.Second)
	get := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code
	}
	start := time.Now()
	if code := get(); code != 500 || time.Since(start) > 2*time.Second {
		t.Fatalf("no driver: status %d after %v, want a quick 500", code, time.Since(start))
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, &identityServer{})
	go srv.Serve(lis)
	defer srv.Stop()
	// gRPC backs off after the failed connect; keep probing as kubelet would.
	deadline := time.Now().Add(10 * time.Second)
	for get() != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no 200 once the driver listens")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
