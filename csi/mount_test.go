package csi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// Unit tests of the decisions Mount makes itself, in their order: the
// policy, then the kmsEndpoint allow-list, then the identity, then the
// fetch, and one error for every object that failed. Each fake counts what
// reached it, so a test sees which step was never asked.

// countingResolver hands out one identity and counts the requests.
type countingResolver struct{ calls atomic.Int32 }

func (r *countingResolver) Resolve(context.Context, auth.MountInfo) (*auth.Identity, error) {
	r.calls.Add(1)
	return &auth.Identity{Fingerprint: "fp", Principal: "test"}, nil
}

// countingSource answers every object with its name as the value, except
// the names in fail, and records every target it was asked for.
type countingSource struct {
	fail map[string]error

	mu      sync.Mutex
	targets []fetch.Target
}

func (s *countingSource) Get(_ context.Context, _ *auth.Identity, t fetch.Target) (fetch.Result, error) {
	s.mu.Lock()
	s.targets = append(s.targets, t)
	s.mu.Unlock()
	if err := s.fail[t.Name]; err != nil {
		return fetch.Result{}, err
	}
	return fetch.Result{Data: fetch.Bytes("value of " + t.Name), Version: "v1"}, nil
}

func (s *countingSource) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.targets)
}

// policyFunc is a Policy that records what it was asked.
type policyFunc struct {
	allow func(ns, sa, typ, name string) error
	asked []string
}

func (p *policyFunc) Allow(ns, sa, typ, name string) error {
	p.asked = append(p.asked, ns+"/"+sa+" "+typ+":"+name)
	return p.allow(ns, sa, typ, name)
}

type mountFakes struct {
	resolver *countingResolver
	source   *countingSource
	srv      *Server
}

func newMountFakes(opts fetch.FetcherOptions, fail map[string]error, pol Policy) *mountFakes {
	m := &mountFakes{resolver: &countingResolver{}, source: &countingSource{fail: fail}}
	opts.Region = "cn-hangzhou"
	opts.Retry = fetch.RetryPolicy{MaxAttempts: 1}
	f := fetch.NewFetcher(fetch.NewCache(fetch.CacheOptions{}), m.source, opts)
	m.srv = &Server{Fetcher: f, Identity: m.resolver, Policy: pol}
	return m
}

func mountRequest(ns, objects string) *v1alpha1.MountRequest {
	a, _ := json.Marshal(map[string]string{"objects": objects, AttrPodName: "p", AttrPodNamespace: ns, AttrServiceAccount: "sa", AttrSPC: "c"})
	return &v1alpha1.MountRequest{Attributes: string(a), Secrets: "null", Permission: "420"}
}

// The policy is asked for every object before anything else: a namespace
// it denies never reaches the identity resolver nor upstream, even when
// only the last object is refused. The same class from an allowed
// namespace mounts.
func TestMountPolicyBeforeIdentity(t *testing.T) {
	const objects = "- objectName: db\n- objectName: api\n  objectType: oos\n"
	denyBlocked := func(ns, _, _, name string) error {
		if ns == "blocked" || name == "api" && ns == "half" {
			return errors.New("namespace " + ns + " may not mount " + name)
		}
		return nil
	}
	for _, c := range []struct {
		ns, blamed string
	}{
		{"blocked", `objects[0] "db" (kms)`},
		{"half", `objects[1] "api" (oos)`}, // the first object is allowed
	} {
		t.Run(c.ns, func(t *testing.T) {
			pol := &policyFunc{allow: denyBlocked}
			m := newMountFakes(fetch.FetcherOptions{}, nil, pol)
			_, err := m.srv.Mount(context.Background(), mountRequest(c.ns, objects))
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), c.blamed) || !strings.Contains(err.Error(), "may not mount") {
				t.Fatalf("Mount: %v, want PermissionDenied naming %s with the policy's reason", err, c.blamed)
			}
			if n := m.resolver.calls.Load(); n != 0 {
				t.Fatalf("the identity resolver was asked %d times for a denied mount", n)
			}
			if n := m.source.calls(); n != 0 {
				t.Fatalf("%d upstream reads for a denied mount", n)
			}
		})
	}

	pol := &policyFunc{allow: denyBlocked}
	m := newMountFakes(fetch.FetcherOptions{}, nil, pol)
	resp, err := m.srv.Mount(context.Background(), mountRequest("app", objects))
	if err != nil || len(resp.GetFiles()) != 2 {
		t.Fatalf("allowed namespace: %v, %d files", err, len(resp.GetFiles()))
	}
	if got := strings.Join(pol.asked, ","); got != "app/sa kms:db,app/sa oos:api" {
		t.Fatalf("policy asked %q, want each object once with the pod's namespace and service account", got)
	}
	if n, k := m.resolver.calls.Load(), m.source.calls(); n != 1 || k != 2 {
		t.Fatalf("allowed namespace: %d identity requests and %d upstream reads, want 1 and 2", n, k)
	}
}

// A per-object kmsEndpoint outside the allow-list is refused before any
// call: no identity is resolved (no STS call) and nothing is read, even
// for the objects whose endpoint is fine. An operator's extra pattern lets
// the same endpoint through, and the read then goes to it.
func TestMountKMSEndpointAllowListBeforeAnyCall(t *testing.T) {
	const objects = "- objectName: fine\n- objectName: db\n  kmsEndpoint: kms.attacker.example:443\n"
	m := newMountFakes(fetch.FetcherOptions{}, nil, nil)
	_, err := m.srv.Mount(context.Background(), mountRequest("app", objects))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `objects[1] "db" (kms)`) ||
		!strings.Contains(err.Error(), "kms.attacker.example") || !strings.Contains(err.Error(), "--allowed-kms-endpoints") {
		t.Fatalf("Mount: %v, want InvalidArgument naming the object, its endpoint and the flag", err)
	}
	if n, k := m.resolver.calls.Load(), m.source.calls(); n != 0 || k != 0 {
		t.Fatalf("an endpoint off the allow-list: %d identity requests and %d upstream reads, want none", n, k)
	}

	m = newMountFakes(fetch.FetcherOptions{AllowedKMSEndpoints: []string{"*.attacker.example:443"}}, nil, nil)
	if _, err := m.srv.Mount(context.Background(), mountRequest("app", objects)); err != nil {
		t.Fatalf("with the endpoint allowed: %v", err)
	}
	var endpoint string
	for _, tg := range m.source.targets {
		if tg.Name == "db" {
			endpoint = tg.Endpoint
		}
	}
	if m.resolver.calls.Load() != 1 || !strings.Contains(endpoint, "kms.attacker.example:443") {
		t.Fatalf("with the endpoint allowed: %d identity requests, db read at %q", m.resolver.calls.Load(), endpoint)
	}
}

// Every object is tried, and the one error the driver gets names each
// object that failed with its own reason, none that succeeded, and carries
// the most actionable code (permission over not-found).
func TestMountOneErrorNamesEveryFailedObject(t *testing.T) {
	fail := map[string]error{
		"gone":   &fetch.Error{Kind: fetch.KindNotFound, Service: fetch.TypeOOS, Code: "ParameterNotFound", Status: 404, Message: "no parameter gone"},
		"locked": &fetch.Error{Kind: fetch.KindPermission, Service: fetch.TypeKMS, Code: "Forbidden.NoPermission", Status: 403, Message: "no access to locked"},
	}
	m := newMountFakes(fetch.FetcherOptions{}, fail, nil)
	const objects = "- objectName: good\n- objectName: gone\n  objectType: oos\n- objectName: locked\n"
	resp, err := m.srv.Mount(context.Background(), mountRequest("app", objects))
	if err == nil {
		t.Fatalf("Mount succeeded with %d files", len(resp.GetFiles()))
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"2 of 3 objects failed", `objects[1] "gone" (oos)`, "ParameterNotFound", `objects[2] "locked" (kms)`, "Forbidden.NoPermission"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, `"good"`) {
		t.Errorf("the error names the object that succeeded: %s", msg)
	}
	if c := status.Code(err); c != codes.PermissionDenied {
		t.Errorf("code %s, want PermissionDenied", c)
	}
	if n := m.source.calls(); n != 3 {
		t.Errorf("%d upstream reads, want every object tried (3)", n)
	}
}

// A directory object's names are checked by the policy as they are listed;
// without the pod's namespace no rule can apply, so the Mount is refused as
// for any object, before anything is listed, instead of mounting an empty
// directory.
func TestMountDirectoryWithoutNamespaceUnderPolicy(t *testing.T) {
	pol := &policyFunc{allow: func(ns, _, _, _ string) error {
		if ns == "" {
			return errors.New("the mount carries no pod namespace; the CSIDriver must have podInfoOnMount: true")
		}
		return nil
	}}
	m := newMountFakes(fetch.FetcherOptions{}, nil, pol)
	_, err := m.srv.Mount(context.Background(), mountRequest("", "- objectPath: /app/\n  objectType: oos\n  objectAlias: app\n"))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "podInfoOnMount") {
		t.Fatalf("a directory without a namespace: %v", err)
	}
	if len(pol.asked) != 1 || m.resolver.calls.Load() != 0 || m.source.calls() != 0 {
		t.Fatalf("policy asked %v, resolver %d calls, source %d", pol.asked, m.resolver.calls.Load(), m.source.calls())
	}
}
