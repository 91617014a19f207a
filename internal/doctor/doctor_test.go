package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

type resolver struct {
	id  *auth.Identity
	err error
}

func (r resolver) Resolve(context.Context, auth.MountInfo) (*auth.Identity, error) {
	return r.id, r.err
}

// upstream answers FetchObject from a table by object name.
type upstream struct {
	mu       sync.Mutex
	values   map[string]string
	errs     map[string]error
	endpoint string
	calls    int
}

func (u *upstream) FetchObject(_ context.Context, _ *auth.Identity, spec *fetch.Spec, o *fetch.Object) (fetch.Key, *fetch.Entry, fetch.Outcome, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	k := fetch.Key{Region: spec.Region, Endpoint: u.endpoint, Type: o.Type, Name: o.Name, Selector: o.Selector()}
	if err := u.errs[o.Name]; err != nil {
		return k, nil, fetch.OutcomeError, err
	}
	return k, &fetch.Entry{Data: fetch.Bytes(u.values[o.Name]), Version: "v1"}, fetch.OutcomeMiss, nil
}

func class(t *testing.T, name, params string) *spc.Class {
	t.Helper()
	cs, err := spc.Parse(name+".yaml", []byte("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: "+name+
		"\nspec:\n  provider: alibabacloud\n  parameters:\n"+params))
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

func staticID(t *testing.T) *auth.Identity {
	t.Helper()
	id, err := auth.StaticAccessKey(auth.ModeEnvAccessKey, "LTAI5tTestKeyId", "key-secret", "", "ACCESS_KEY_ID is set")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// One row per object (version and size, never the value) and, per failure,
// its fix: the RAM policy to attach (to the role, for crossAccountRoleArn),
// the name and version to check, the endpoint that is this machine, the
// jmesPath that does not match the real value.
func TestReportRowsAndFixes(t *testing.T) {
	cl := class(t, "app", `    region: cn-hangzhou
    objects: |
      - objectName: db
        jmesPath:
          - {path: username, objectAlias: user}
      - objectName: denied
        crossAccountRoleArn: acs:ram::123456789012:role/reader
      - objectName: gone
        objectType: oos
        objectVersion: "3"
      - objectName: down
      - objectName: plain
        jmesPath:
          - {path: username, objectAlias: plain-user}
`)
	up := &upstream{
		endpoint: "127.0.0.1:4567",
		values:   map[string]string{"db": `{"username":"the-user-value"}`, "plain": "not json"},
		errs: map[string]error{
			"denied": &fetch.Error{Kind: fetch.KindPermission, Code: "Forbidden.NoPermission", Message: "no permission"},
			"gone":   &fetch.Error{Kind: fetch.KindNotFound, Code: "EntityNotExists.SecretParameter", Message: "not found"},
			"down":   &fetch.Error{Kind: fetch.KindUnavailable, Message: "connection refused"},
		},
	}
	var out bytes.Buffer
	c := &Checker{Identities: resolver{id: staticID(t)}, Fetcher: up, Timeout: time.Second, Out: &out}
	res := c.Check(context.Background(), []*spc.Class{cl})
	got := out.String()
	if res != (Result{Objects: 5, Failed: 4}) || res.OK() {
		t.Errorf("result %+v", res)
	}
	for _, want := range []string{
		"Class app (app.yaml), region cn-hangzhou, 5 objects",
		"identity:   env-access-key AccessKey LTAI****yId (ACCESS_KEY_ID is set)",
		"credential: ok",
		"fix: env-access-key AccessKey LTAI****yId may not call kms:GetSecretValue on acs:kms:cn-hangzhou:*:secret/denied",
		"grant the policy to acs:ram::123456789012:role/reader, not to the base identity",
		`fix: OOS has no encrypted parameter "gone" with objectVersion 3 in region cn-hangzhou`,
		"127.0.0.1:4567 is this machine",
		`objects[4] "plain" (kms): invalid: jmesPath needs a JSON value`,
		"4 of 5 objects failed; the fixes are above.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "the-user-value") || strings.Contains(got, "key-secret") {
		t.Errorf("the report shows a secret:\n%s", got)
	}
	row := func(name string) []string {
		for _, l := range strings.Split(got, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == name {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", name, got)
		return nil
	}
	if r := row("db"); strings.Join(r, " ") != "db kms ok - v1 29 bytes db, user" {
		t.Errorf("db row %q", r)
	}
	if r := row("denied"); r[2] != fetch.KindPermission.String() || r[3] != "Forbidden.NoPermission" {
		t.Errorf("denied row %q", r)
	}
	// The RAM policy is JSON that can be pasted as is.
	i := strings.Index(got, "    {\n")
	j := strings.Index(got, "\n    }\n")
	var pol ramPolicy
	if i < 0 || j < i || json.Unmarshal([]byte(got[i:j+6]), &pol) != nil ||
		pol.Statement[0].Action[0] != "kms:GetSecretValue" || pol.Statement[0].Resource[0] != "acs:kms:cn-hangzhou:*:secret/denied" {
		t.Errorf("no RAM policy JSON in:\n%s", got)
	}
}

// Without an identity no object is tried, and every object counts as
// failed; a credential that yields no key is an identity failure too.
func TestIdentityFirst(t *testing.T) {
	cl := class(t, "app", "    objects: |\n      - objectName: db\n      - objectName: other\n")
	for name, r := range map[string]resolver{
		"refused":  {err: &fetch.Error{Kind: fetch.KindUnauthenticated, Message: "no AccessKey configured"}},
		"unusable": {id: &auth.Identity{Mode: auth.ModeRRSA, Principal: "acs:ram::1:role/r"}},
	} {
		t.Run(name, func(t *testing.T) {
			up := &upstream{}
			var out bytes.Buffer
			c := &Checker{Identities: r, Fetcher: up, Region: "cn-beijing", Timeout: time.Second, Out: &out}
			res := c.Check(context.Background(), []*spc.Class{cl})
			if res != (Result{Objects: 2, Failed: 2}) || up.calls != 0 {
				t.Errorf("result %+v, %d upstream calls", res, up.calls)
			}
			for _, want := range []string{"region cn-beijing, 2 objects", "identity:   FAIL: ", "No object was tried", "2 of 2 objects failed"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the report lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// Every class in order, then one summary line over all of them.
func TestAllReadable(t *testing.T) {
	a := class(t, "a", "    region: cn-hangzhou\n    objects: |\n      - objectName: db\n")
	b := class(t, "b", "    objects: |\n      - objectName: cfg\n        objectType: oos\n")
	var out bytes.Buffer
	c := &Checker{Identities: resolver{id: staticID(t)}, Fetcher: &upstream{values: map[string]string{"db": "x", "cfg": "y"}}, Timeout: time.Second, Out: &out}
	if res := c.Check(context.Background(), []*spc.Class{a, b}); !res.OK() || res.Objects != 2 {
		t.Errorf("result %+v", res)
	}
	got := out.String()
	if !strings.HasSuffix(got, "\nAll 2 objects readable.\n") || strings.Index(got, "Class a") > strings.Index(got, "Class b") ||
		!strings.Contains(got, "Class b (b.yaml), region (none), 1 object") {
		t.Errorf("report:\n%s", got)
	}
}

// The fix of each kind of failure.
func TestFixes(t *testing.T) {
	id := staticID(t)
	kms := &fetch.Object{Name: "db", Type: fetch.TypeKMS}
	oos := &fetch.Object{Name: "cfg", Type: fetch.TypeOOS}
	for _, c := range []struct {
		name   string
		r      row
		region string
		want   []string
	}{
		{"oos permission", row{obj: oos, err: &fetch.Error{Kind: fetch.KindPermission}}, "cn-hangzhou",
			[]string{"oos:GetSecretParameter on acs:oos:cn-hangzhou:*:secretparameter/cfg", "also grants kms:GetSecretValue"}},
		{"key region wins", row{obj: kms, key: fetch.Key{Region: "cn-shanghai"}, err: &fetch.Error{Kind: fetch.KindPermission}}, "cn-hangzhou",
			[]string{"acs:kms:cn-shanghai:*:secret/db"}},
		{"rejected", row{obj: kms, err: &fetch.Error{Kind: fetch.KindUnauthenticated}}, "cn-hangzhou",
			[]string{"KMS rejected the credential of env-access-key AccessKey LTAI****yId"}},
		{"throttled", row{obj: oos, err: &fetch.Error{Kind: fetch.KindThrottled}}, "cn-hangzhou",
			[]string{"lower --oos-qps"}},
		{"vpc endpoint", row{obj: kms, key: fetch.Key{Endpoint: fetch.DefaultEndpoint(fetch.TypeKMS, "cn-hangzhou")}, err: &fetch.Error{Kind: fetch.KindDeadline}}, "cn-hangzhou",
			[]string{"reachable only from an Alibaba Cloud VPC in cn-hangzhou", "--kms-endpoint kms.cn-hangzhou.aliyuncs.com", "or the object's kmsEndpoint"}},
		{"no region", row{obj: kms, err: &fetch.Error{Kind: fetch.KindInvalid}}, "",
			[]string{"add the region under spec.parameters"}},
		{"invalid", row{obj: kms, err: &fetch.Error{Kind: fetch.KindInvalid}}, "cn-hangzhou",
			[]string{"correct the class as the message says"}},
		{"other", row{obj: kms, err: errors.New("boom")}, "cn-hangzhou",
			[]string{"rerun with -v 4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := fix(c.r, id, c.region)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("fix lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for ep, want := range map[string]bool{
		"127.0.0.1:8080": true, "http://127.0.0.1:8080": true, "localhost:443": true,
		"kms.cn-hangzhou.aliyuncs.com": false, "10.0.0.1:443": false, "": false,
	} {
		if got := isLoopback(ep); got != want {
			t.Errorf("isLoopback(%q) = %v", ep, got)
		}
	}
}
