package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type fakeIdentity struct {
	csi.UnimplementedIdentityServer
}

func (*fakeIdentity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: "secrets-store.csi.k8s.io", VendorVersion: "v1.6.0"}, nil
}

// TestRegistration starts the fake driver only after the registrar began
// waiting for it, then plays kubelet on the registration socket.
func TestRegistration(t *testing.T) {
	dir := t.TempDir()
	csiSock := filepath.Join(dir, "csi.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got := make(chan string, 1)
	go func() {
		name, err := driverName(ctx, "unix://"+csiSock, time.Second)
		if err != nil {
			t.Errorf("driverName: %v", err)
		}
		got <- name
	}()
	time.Sleep(300 * time.Millisecond)
	lis, err := net.Listen("unix", csiSock)
	if err != nil {
		t.Fatal(err)
	}
	fake := grpc.NewServer()
	csi.RegisterIdentityServer(fake, &fakeIdentity{})
	go fake.Serve(lis)
	defer fake.Stop()
	name := <-got
	if name != "secrets-store.csi.k8s.io" {
		t.Fatalf("driver name %q", name)
	}

	regSock := filepath.Join(dir, name+"-reg.sock")
	if err := os.WriteFile(regSock, nil, 0o600); err != nil { // stale file to remove
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	endpoint := "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock"
	srv, err := serve(regSock, &registrar{name: name, endpoint: endpoint, exit: func(c int) { exited <- c }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	conn, err := dial(regSock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kubelet := registerapi.NewRegistrationClient(conn)
	info, err := kubelet.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != "CSIPlugin" || info.Name != name || info.Endpoint != endpoint ||
		len(info.SupportedVersions) != 1 || info.SupportedVersions[0] != "1.0.0" {
		t.Fatalf("GetInfo = %+v", info)
	}
	if err := checkSocket(ctx, regSock, name); err != nil {
		t.Fatalf("healthz check: %v", err)
	}
	if _, err := kubelet.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	if len(exited) != 0 {
		t.Fatal("exited after a successful registration")
	}
	_, _ = kubelet.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{Error: "boom"})
	if c := <-exited; c == 0 {
		t.Fatal("exit code 0 after a failed registration")
	}
}
