package csi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// sizedSource answers every object with a value of the size its name asks
// for: "big-a.2621440" is 2,621,440 bytes.
type sizedSource struct{}

func (sizedSource) Get(_ context.Context, _ *auth.Identity, t fetch.Target) (fetch.Result, error) {
	i := strings.LastIndexByte(t.Name, '.')
	n, _ := strconv.Atoi(t.Name[i+1:])
	return fetch.Result{Data: fetch.Bytes(valueOf(t.Name, n)), Version: "v1"}, nil
}

// valueOf is a value no error or log may contain: a marker, then filler.
func valueOf(name string, n int) []byte {
	v := []byte(strings.Repeat("VALUE-OF-"+name+"-", n/len(name)+1))
	return v[:n]
}

type fixedIdentity struct{}

func (fixedIdentity) Resolve(context.Context, auth.MountInfo) (*auth.Identity, error) {
	return &auth.Identity{Fingerprint: "test", Principal: "test"}, nil
}

func sizedServer(limit int, log *bytes.Buffer, obs Observer) *Server {
	f := fetch.NewFetcher(fetch.NewCache(fetch.CacheOptions{}), sizedSource{}, fetch.FetcherOptions{Region: "cn-hangzhou"})
	return &Server{Fetcher: f, Identity: fixedIdentity{}, Observer: obs, MaxResponseBytes: limit,
		Log: slog.New(slog.NewTextHandler(log, nil))}
}

func sizedMount(names ...string) *v1alpha1.MountRequest {
	var objs strings.Builder
	for _, n := range names {
		objs.WriteString("- objectName: " + n + "\n")
	}
	a, _ := json.Marshal(map[string]string{"objects": objs.String(), AttrPodName: "p", AttrPodNamespace: "ns"})
	return &v1alpha1.MountRequest{Attributes: string(a), Secrets: "null", Permission: "420"}
}

// A Mount whose response is over the driver's default 4 MiB is refused by
// the provider, naming the largest files, their sizes, the total and the
// flags to raise; counted as a failed Mount; no value anywhere.
func TestMountOverTheDriverLimitIsRefused(t *testing.T) {
	var logs bytes.Buffer
	obs := &outcomes{}
	srv := sizedServer(0, &logs, obs) // 0: the default, the driver's 4 MiB
	names := []string{"big-a.2621440", "big-b.2097152", "small.10"}
	_, err := srv.Mount(context.Background(), sizedMount(names...))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code %v, want ResourceExhausted: %v", status.Code(err), err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{
		"over the 4194304 bytes (4.0 MiB)",
		`"big-a.2621440" 2621440 bytes`, `"big-b.2097152" 2097152 bytes`,
		"3 files hold 4718602 bytes",
		"--max-call-recv-msg-size", "secrets-store-csi-driver.maxCallRecvMsgSize", "--max-response-bytes",
		"1 MiB",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, msg)
		}
	}
	for _, n := range names {
		if v := valueOf(n, 12); strings.Contains(msg, string(v)) || strings.Contains(logs.String(), string(v)) {
			t.Errorf("a value of %s leaked into the error or the log", n)
		}
	}
	if len(obs.got) != 1 || obs.got[0] != "too-large" {
		t.Errorf("outcomes %v, want [too-large]", obs.got)
	}
	if !strings.Contains(logs.String(), "outcome=too-large") || strings.Contains(logs.String(), "msg=mount ") {
		t.Errorf("not logged as a failed Mount:\n%s", logs.String())
	}
}

// The limit is on the encoded MountResponse, as the driver's gRPC client
// measures it, not on the file contents alone: paths, modes and object
// versions count too.
func TestMountLimitIsTheEncodedResponseSize(t *testing.T) {
	var logs bytes.Buffer
	req := sizedMount("a.1000", "b.2000")
	resp, err := sizedServer(1<<20, &logs, nil).Mount(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	n := proto.Size(resp)
	if n <= 3000+10 {
		t.Fatalf("encoded size %d, expected well over the 3000 content bytes", n)
	}
	if _, err := sizedServer(n, &logs, nil).Mount(context.Background(), req); err != nil {
		t.Fatalf("a response of exactly the limit (%d bytes) was refused: %v", n, err)
	}
	_, err = sizedServer(n-1, &logs, nil).Mount(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "is "+strconv.Itoa(n)+" bytes") {
		t.Fatalf("a response 1 byte over the limit, with contents far under it: %v", err)
	}
	// The files named are capped, the largest first.
	names := []string{}
	for i := 0; i < 12; i++ {
		names = append(names, "f"+strconv.Itoa(i)+"."+strconv.Itoa(100+i))
	}
	_, err = sizedServer(500, &logs, nil).Mount(context.Background(), sizedMount(names...))
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, `largest "f11.111" 111 bytes, "f10.110" 110 bytes`) || !strings.Contains(msg, "and 7 more") {
		t.Fatalf("the largest files are not listed first and capped:\n%s", msg)
	}
}
