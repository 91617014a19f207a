package csi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// resolverWithAllow is an identity resolver that also has Allow: before
// cmd set Server.Policy, csi found the policy by this method.
type resolverWithAllow struct{ resolves, allows int }

func (r *resolverWithAllow) Resolve(context.Context, auth.MountInfo) (*auth.Identity, error) {
	r.resolves++
	return nil, errors.New("no identity in this test")
}

func (r *resolverWithAllow) Allow(string, string, string, string) error {
	r.allows++
	return errors.New("refused by the resolver")
}

// denyRoles allows every object and refuses every role to assume.
type denyRoles struct{ asked []string }

func (d *denyRoles) Allow(ns, sa, typ, name string) error {
	d.asked = append(d.asked, ns+"/"+sa+" "+typ+":"+name)
	if typ == auth.PolicyRoles {
		return errors.New("not in the policy")
	}
	return nil
}

// Server.Policy is the only policy asked: set, it refuses before any
// identity is resolved; unset, nothing is discovered on the resolver.
func TestMountAsksOnlyTheServersPolicy(t *testing.T) {
	f := fetch.NewFetcher(fetch.NewCache(fetch.CacheOptions{TTL: time.Minute}), nil, fetch.FetcherOptions{Region: "cn-hangzhou"})
	req := &v1alpha1.MountRequest{
		Attributes: `{"objects":"- objectName: db\n  crossAccountRoleArn: acs:ram::123456789012:role/r\n","csi.storage.k8s.io/pod.namespace":"app","csi.storage.k8s.io/serviceAccount.name":"sa"}`,
		Secrets:    "null", Permission: "420",
	}

	r := &resolverWithAllow{}
	pol := &denyRoles{}
	srv := &Server{Fetcher: f, Identity: r, Policy: pol}
	_, err := srv.Mount(context.Background(), req)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not in the policy") {
		t.Fatalf("with a policy: %v, want PermissionDenied from it", err)
	}
	if r.resolves != 0 || r.allows != 0 || strings.Join(pol.asked, ",") != "app/sa kms:db,app/sa roles:acs:ram::123456789012:role/r" {
		t.Fatalf("resolves %d, resolver allows %d, policy asked %q", r.resolves, r.allows, pol.asked)
	}

	r = &resolverWithAllow{}
	srv = &Server{Fetcher: f, Identity: r}
	_, err = srv.Mount(context.Background(), req)
	if status.Code(err) == codes.PermissionDenied || r.resolves != 1 || r.allows != 0 {
		t.Fatalf("without a policy: %v; resolves %d, resolver allows %d: the resolver's Allow was asked", err, r.resolves, r.allows)
	}
}
