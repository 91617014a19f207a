// Package doctor checks SecretProviderClasses against KMS and OOS with the
// provider's own identity and explains every failure: the report of the
// doctor command and of dev --doctor. For each class it resolves the
// identity a Mount without a nodePublishSecretRef would use and checks that
// its credential yields a key; then it reads every object once, side by
// side, through the Fetcher (its retries and limits, and the cache cmd
// gives it), derives the jmesPath files from the real value, and prints one
// row per object (the upstream version and size, never a value) and, for
// each failure, the fix: the RAM policy to attach, the name, version or
// region to correct, the endpoint to reach.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// Resolver picks the identity of a Mount (fetch.Identities).
type Resolver interface {
	Resolve(ctx context.Context, m auth.MountInfo) (*auth.Identity, error)
}

// Fetcher reads one object (*fetch.Fetcher).
type Fetcher interface {
	FetchObject(ctx context.Context, id *auth.Identity, spec *fetch.Spec, o *fetch.Object) (fetch.Key, *fetch.Entry, fetch.Outcome, error)
}

// Checker checks classes and writes the report to Out.
type Checker struct {
	Identities Resolver
	Fetcher    Fetcher
	// Region is the default region (--region, or the node's): the region
	// of a class without a region parameter. Empty: none.
	Region string
	// Timeout bounds the identity and each object, retries included.
	Timeout time.Duration
	Out     io.Writer
}

// Result counts the objects checked and those that failed (an object of a
// class whose identity failed counts as failed).
type Result struct{ Objects, Failed int }

// OK reports whether every object was read.
func (r Result) OK() bool { return r.Failed == 0 }

// Check checks every class in order and writes the report: per class its
// identity, one row per object and the fixes, then a summary line.
func (c *Checker) Check(ctx context.Context, classes []*spc.Class) Result {
	var res Result
	for i, cl := range classes {
		if i > 0 {
			fmt.Fprintln(c.Out)
		}
		c.checkClass(ctx, cl, &res)
	}
	fmt.Fprintln(c.Out)
	if res.OK() {
		fmt.Fprintf(c.Out, "All %s readable.\n", plural(res.Objects, "object"))
	} else {
		fmt.Fprintf(c.Out, "%d of %s failed; the fixes are above.\n", res.Failed, plural(res.Objects, "object"))
	}
	return res
}

// row is the outcome of one object.
type row struct {
	obj   *fetch.Object
	key   fetch.Key
	entry *fetch.Entry
	err   error
}

func (c *Checker) checkClass(ctx context.Context, cl *spc.Class, res *Result) {
	out := c.Out
	region := cl.Spec.Region
	if region == "" {
		region = c.Region
	}
	fmt.Fprintf(out, "Class %s (%s), region %s, %s\n", cl.Name, cl.Source, orDash(region, "(none)"), plural(len(cl.Spec.Objects), "object"))
	res.Objects += len(cl.Spec.Objects)

	id, err := c.identity(ctx, cl)
	if err != nil {
		res.Failed += len(cl.Spec.Objects)
		fmt.Fprintf(out, "  identity:   FAIL: %v\n", err)
		fmt.Fprintf(out, "\n  No object was tried. Fix the identity first: the provider reads ACCESS_KEY_ID/SECRET_ACCESS_KEY,\n  ALICLOUD_ROLE_ARN (+ ALICLOUD_OIDC_PROVIDER_ARN and ALICLOUD_OIDC_TOKEN_FILE for RRSA) or the worker RAM role;\n  see docs/operations.md#doctor.\n")
		return
	}
	fmt.Fprintf(out, "  identity:   %s (%s)\n  credential: ok\n\n", id, id.Reason)

	rows := make([]row, len(cl.Spec.Objects))
	var wg sync.WaitGroup
	for i, o := range cl.Spec.Objects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = c.checkObject(ctx, id, cl.Spec, o)
		}()
	}
	wg.Wait()

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OBJECT\tTYPE\tRESULT\tCODE\tVERSION\tSIZE\tFILES")
	var fails []row
	for _, r := range rows {
		result, code, ver, size := "ok", "-", "-", "-"
		if r.err != nil {
			result = fetch.KindOf(r.err).String()
			code = orDash(fetch.CodeOf(r.err), "-")
			fails = append(fails, r)
		} else {
			ver, size = orDash(r.entry.Version, "-"), fmt.Sprintf("%d bytes", len(r.entry.Data))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.obj.Name, r.obj.Type, result, code, ver, size, strings.Join(r.obj.Paths(), ", "))
	}
	_ = tw.Flush()
	res.Failed += len(fails)
	if len(fails) == 0 {
		return
	}
	fmt.Fprintf(out, "\n  Fixes:\n")
	for _, r := range fails {
		fmt.Fprintf(out, "\n  %s: %v\n", r.obj.Ref(), r.err)
		for _, l := range strings.Split(fix(r, id, region), "\n") {
			fmt.Fprintf(out, "    %s\n", l)
		}
	}
}

// identity resolves the identity a Mount of this class without a
// nodePublishSecretRef would use, and checks that its credential yields.
func (c *Checker) identity(ctx context.Context, cl *spc.Class) (*auth.Identity, error) {
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	id, err := c.Identities.Resolve(cctx, auth.MountInfo{Attributes: cl.Parameters, Secrets: map[string]string{}})
	if err != nil {
		return nil, err
	}
	if err := id.Usable(cctx); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return id, nil
}

func (c *Checker) checkObject(ctx context.Context, id *auth.Identity, spec *fetch.Spec, o *fetch.Object) row {
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	k, e, _, err := c.Fetcher.FetchObject(cctx, id, spec, o)
	r := row{obj: o, key: k, entry: e, err: err}
	if err == nil {
		// jmesPath entries are checked against the real value.
		_, r.err = fetch.ObjectFiles(o, e)
	}
	return r
}

// fix says what to change for one failed object.
func fix(r row, id *auth.Identity, region string) string {
	o, k := r.obj, r.key
	if k.Region != "" {
		region = k.Region
	}
	svc := strings.ToUpper(string(o.Type.Service()))
	flag := "--" + string(o.Type.Service()) + "-endpoint"
	switch fetch.KindOf(r.err) {
	case fetch.KindPermission:
		actions := fetch.ObjectRAMActions(o)
		if o.Type == fetch.TypeOOS {
			actions = actions[:len(actions)-1] // the KMS key's action is the note below
		}
		action, resource := strings.Join(actions, " and "), fetch.ObjectResourceARN(o, region)
		pol, _ := json.MarshalIndent(ramPolicy{Version: "1", Statement: []ramStatement{{Effect: "Allow", Action: actions, Resource: []string{resource}}}}, "", "  ")
		s := fmt.Sprintf("fix: %s may not call %s on %s. Attach this RAM policy to it\n(RAM console > Permissions > Policies > Create Policy > JSON), or add the statement to its policy:\n%s",
			id, action, resource, pol)
		if o.Type == fetch.TypeOOS {
			s += "\nThe user guide also grants kms:GetSecretValue with oos:GetSecretParameter; keep it if the parameter's KMS key needs it."
		}
		if o.CrossAccountRoleArn != "" {
			s += "\nThe object sets crossAccountRoleArn: grant the policy to " + o.CrossAccountRoleArn + ", not to the base identity."
		}
		return s
	case fetch.KindNotFound:
		what := o.Type.Noun()
		sel := ""
		if s := o.Selector(); s != "" {
			sel = " with " + strings.ReplaceAll(strings.ReplaceAll(s, "id=", "objectVersion "), "stage=", "objectVersionLabel ")
		}
		return fmt.Sprintf("fix: %s has no %s %q%s in region %s (endpoint %s). Check objectName (names are case-sensitive),\nthe region (the class parameter region, or --region) and, for a pinned version, objectVersion/objectVersionLabel.",
			svc, what, o.Name, sel, region, k.Endpoint)
	case fetch.KindUnauthenticated:
		return fmt.Sprintf("fix: %s rejected the credential of %s. Check that the AccessKey id and secret belong together and\nare enabled (or that the role session is valid), and that this machine's clock is right.", svc, id)
	case fetch.KindThrottled:
		return fmt.Sprintf("fix: %s kept throttling after retries. Try again later; if it persists, lower --%s-qps on the nodes\nor raise the account's quota.", svc, o.Type.Service())
	case fetch.KindUnavailable, fetch.KindDeadline:
		where := flag
		if o.Type == fetch.TypeKMS {
			where += ", or the object's kmsEndpoint"
		}
		s := fmt.Sprintf("fix: %s at %s did not answer usefully. Check the endpoint (%s):\nhost[:port] for HTTPS, http://host:port for plain HTTP.", svc, orDash(k.Endpoint, "(none)"), where)
		if k.Endpoint != "" && k.Endpoint == fetch.DefaultEndpoint(o.Type.Service(), region) {
			s += fmt.Sprintf("\n%s is reachable only from an Alibaba Cloud VPC in %s; elsewhere pass %s %s.%s.aliyuncs.com.",
				k.Endpoint, region, flag, o.Type.Service(), region)
		}
		if isLoopback(k.Endpoint) {
			s += fmt.Sprintf("\n%s is this machine. If it is the emulator of `dev` (the command dev printed), dev must be running:\nits emulator stops when dev exits. `dev --doctor` checks the demo class against an emulator of its own.", k.Endpoint)
		}
		return s
	case fetch.KindInvalid:
		if k.Region == "" && region == "" {
			return "fix: add the region under spec.parameters (e.g. region: cn-hangzhou), or pass --region to serve (and doctor)."
		}
		return "fix: correct the class as the message says."
	}
	return "fix: see the message; rerun with -v 4 for details."
}

// isLoopback reports whether an endpoint (host[:port], http://host:port)
// names this machine: a local emulator, such as dev's.
func isLoopback(endpoint string) bool {
	ep, err := fetch.ParseEndpoint(endpoint)
	if err != nil {
		return false
	}
	host := ep.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

type ramPolicy struct {
	Version   string         `json:"Version"`
	Statement []ramStatement `json:"Statement"`
}

type ramStatement struct {
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

func orDash(s, dash string) string {
	if s == "" {
		return dash
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
