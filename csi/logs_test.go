package csi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// echoIdentity fails with an error that quotes the pod's attributes whole,
// as an identity error may.
type echoIdentity struct{}

func (echoIdentity) Resolve(_ context.Context, m auth.MountInfo) (*auth.Identity, error) {
	return nil, errors.New("no identity for pod " + m.PodNamespace + "/" + m.PodName + " of " + m.ServiceAccount)
}

// The attributes come from whoever can reach the socket: a 250 KB pod name
// made a 250 KB log line per Mount. Every line a Mount logs stays bounded
// whatever the attributes, and says how long the cut value was.
func TestMountLogLinesAreBounded(t *testing.T) {
	const maxLine = 16 << 10
	hugeNS, hugeSA := strings.Repeat("n", 3000), strings.Repeat("s", 1000)
	req := func(objects string, podBytes int) *v1alpha1.MountRequest {
		a, _ := json.Marshal(map[string]string{"objects": objects, AttrPodName: strings.Repeat("p", podBytes), AttrPodNamespace: hugeNS, AttrServiceAccount: hugeSA, AttrSPC: "c"})
		return &v1alpha1.MountRequest{Attributes: string(a), Secrets: "null", Permission: "420"}
	}
	// 60 objects whose 1000-byte names fail make a long error too.
	var many strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&many, "- {objectName: %s-%d, objectAlias: a%d, objectType: oos}\n", strings.Repeat("x", 990), i, i)
	}
	for _, c := range []struct {
		name     string
		identity IdentityResolver
		objects  string
		podBytes int
		fails    bool
	}{
		{"success", fixedIdentity{}, "- objectName: ok.10\n  objectType: oos\n", 250_000, false},
		{"identity error quoting the attributes", echoIdentity{}, "- objectName: ok.10\n", 250_000, true},
		{"60 objects failing", fixedIdentity{}, many.String(), 100_000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := fetch.NewFetcher(fetch.NewCache(fetch.CacheOptions{}), failingNames{}, fetch.FetcherOptions{Region: "cn-hangzhou"})
			srv := &Server{Fetcher: f, Identity: c.identity, Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			_, err := srv.Mount(context.Background(), req(c.objects, c.podBytes))
			if (err != nil) != c.fails {
				t.Fatalf("Mount: %v", err)
			}
			if err != nil {
				t.Logf("the error the driver gets: %d bytes: %.200s", len(status.Convert(err).Message()), status.Convert(err).Message())
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) == 0 || lines[0] == "" {
				t.Fatal("nothing logged")
			}
			for _, l := range lines {
				if len(l) > maxLine {
					t.Errorf("a %d-byte log line: %.300s…", len(l), l)
				}
			}
			if !strings.Contains(buf.String(), fmt.Sprintf("… (%d bytes)", c.podBytes)) || !strings.Contains(buf.String(), "… (3000 bytes)") {
				t.Errorf("the cut pod name and namespace do not say their length:\n%.2000s", buf.String())
			}
		})
	}
}

// failingNames serves "ok.N" names (N bytes) and refuses every other name.
type failingNames struct{}

func (failingNames) Get(ctx context.Context, id *auth.Identity, t fetch.Target) (fetch.Result, error) {
	if strings.HasPrefix(t.Name, "ok.") {
		return sizedSource{}.Get(ctx, id, t)
	}
	return fetch.Result{}, &fetch.Error{Kind: fetch.KindNotFound, Service: t.Type, Code: "ParameterNotFound", Status: 404, Message: "no such parameter " + t.Name}
}
