package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// Exit codes of doctor.
const (
	doctorOK       = 0 // every object of every class was read
	doctorFailed   = 1 // the identity or some object failed; the fixes are printed
	doctorBadUsage = 2 // bad flags or a class file that is not a valid class
)

const doctorUsage = `usage: csi-secrets-store-provider-alibabacloud doctor --class FILE [--class FILE ...] [flags]

Checks SecretProviderClass manifests against KMS and OOS with the provider's
own identity (the same flags and environment as serve): resolves the identity,
reads every object once (no cache), and prints one row per object and, for
each failure, the fix. Secret values are never printed: only their size and
version. Exit code: 0 all objects readable, 1 some failed, 2 bad usage or class.

flags:
`

const doctorUsageTail = `
serve's other flags (socket, cache, namespace policy, metrics, health, FUSE view)
are accepted and ignored, so that serve's command line can be reused as is.
`

func runDoctor(ctx context.Context, args []string) int {
	return doctor(ctx, args, os.Stdout, os.Stderr)
}

// classFiles is the repeatable --class flag.
type classFiles []string

func (c *classFiles) String() string     { return strings.Join(*c, ",") }
func (c *classFiles) Set(v string) error { *c = append(*c, v); return nil }

func doctor(ctx context.Context, args []string, out, errw io.Writer) int {
	o := options{command: "doctor"}
	o.setDefaults()
	var classes classFiles
	flags := flag.NewFlagSet("doctor", flag.ContinueOnError)
	flags.SetOutput(errw)
	// doctor's own flags: where the services are, whose identity, the
	// upstream limits, logging. The cache, the policy and serve's socket,
	// operations and FUSE flags play no part in a check.
	o.registerServices(flags)
	o.registerIdentity(flags)
	o.registerLimits(flags)
	o.registerLog(flags)
	flags.Var(&classes, "class", "SecretProviderClass manifest (YAML) to check, - for stdin; repeat for more files. Other documents in a file are skipped")
	timeout := flags.Duration("timeout", 30*time.Second, "how long to try each object, retries included")
	own := map[string]bool{}
	flags.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	acceptServeFlags(flags)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), doctorUsage)
		printFlags(flags.Output(), flags, func(name string) bool { return own[name] })
		fmt.Fprint(flags.Output(), doctorUsageTail)
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return doctorOK
		}
		return doctorBadUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(errw, "error: doctor takes no arguments, got %q; pass class files with --class\n", flags.Args())
		return doctorBadUsage
	}
	if len(classes) == 0 {
		fmt.Fprintln(errw, "error: no class: pass --class FILE (a SecretProviderClass manifest); repeat it for more")
		return doctorBadUsage
	}
	cls, err := loadDoctorClasses(classes)
	if err != nil {
		fmt.Fprintln(errw, "error:", err)
		return doctorBadUsage
	}
	return doctorCheck(ctx, &o, cls, *timeout, out, errw)
}

// acceptServeFlags adds to flags every flag of serve it lacks, bound to
// values nothing reads: doctor accepts serve's command line unchanged, and
// its -h lists only its own flags.
func acceptServeFlags(flags *flag.FlagSet) {
	var so serveOptions
	serve := flag.NewFlagSet("serve", flag.ContinueOnError)
	so.register(serve)
	so.registerOps(serve)
	so.view.registerAs(serve, "fuse-")
	serve.VisitAll(func(f *flag.Flag) {
		if flags.Lookup(f.Name) == nil {
			flags.Var(f.Value, f.Name, f.Usage)
		}
	})
}

// doctorCheck builds the provider's stack from o and checks every class;
// it returns doctor's exit code. dev --doctor calls it too.
func doctorCheck(ctx context.Context, o *options, cls []doctorClass, timeout time.Duration, out, errw io.Writer) int {
	log := o.logger(errw)
	st, err := o.build(ctx, log, fetch.NopObserver{})
	if err != nil {
		fmt.Fprintln(errw, "error:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return doctorBadUsage
		}
		return doctorFailed
	}
	d := &doctorRun{st: st, timeout: timeout, out: out}
	for i, c := range cls {
		if i > 0 {
			fmt.Fprintln(out)
		}
		d.checkClass(ctx, c)
	}
	fmt.Fprintln(out)
	if d.failed == 0 {
		fmt.Fprintf(out, "All %s readable.\n", plural(d.total, "object"))
		return doctorOK
	}
	fmt.Fprintf(out, "%d of %s failed; the fixes are above.\n", d.failed, plural(d.total, "object"))
	return doctorFailed
}

// doctorClass is one SecretProviderClass document of a --class file.
type doctorClass struct {
	source string
	name   string
	params map[string]string
	spec   *fetch.Spec
}

const maxClassFileBytes = 1 << 20

// loadDoctorClasses reads every SecretProviderClass document of the files;
// a file without one, another provider's class or invalid parameters is a
// bad class (exit 2), named with its file and field.
func loadDoctorClasses(paths []string) ([]doctorClass, error) {
	var out []doctorClass
	for _, p := range paths {
		data, err := readClassFile(p)
		if err != nil {
			return nil, fmt.Errorf("--class %s: %w", p, err)
		}
		cls, err := parseDoctorClasses("--class "+p, p, data)
		if err != nil {
			return nil, err
		}
		out = append(out, cls...)
	}
	return out, nil
}

// parseDoctorClasses reads every SecretProviderClass document of data;
// errors start with where (e.g. "--class FILE"), rows name source.
func parseDoctorClasses(where, source string, data []byte) ([]doctorClass, error) {
	var out []doctorClass
	for i, doc := range yamlDocuments(data) {
		var m struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Provider   string            `json:"provider"`
				Parameters map[string]string `json:"parameters"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %s", where, i+1, firstLine(err.Error()))
		}
		if m.Kind != "SecretProviderClass" {
			continue
		}
		at := fmt.Sprintf("%s: SecretProviderClass %q", where, m.Metadata.Name)
		if m.Spec.Provider != csi.ProviderName {
			return nil, fmt.Errorf("%s: spec.provider is %q; this provider serves classes with spec.provider: %s", at, m.Spec.Provider, csi.ProviderName)
		}
		if len(m.Spec.Parameters) == 0 {
			return nil, fmt.Errorf("%s: spec.parameters is missing; set spec.parameters.objects to the list of secrets", at)
		}
		spec, err := fetch.ParseParameters(m.Spec.Parameters)
		if err != nil {
			var v *fetch.ValidationError
			if errors.As(err, &v) {
				return nil, fmt.Errorf("%s: spec.parameters.%s: %s", at, v.Field, v.Msg)
			}
			return nil, fmt.Errorf("%s: spec.parameters: %w", at, err)
		}
		out = append(out, doctorClass{source: source, name: m.Metadata.Name, params: m.Spec.Parameters, spec: spec})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no SecretProviderClass in the file (kind: SecretProviderClass)", where)
	}
	return out, nil
}

// readClassFile reads a manifest file, or stdin for "-", up to
// maxClassFileBytes.
func readClassFile(p string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if p != "-" {
		f, err := os.Open(p) //nolint:gosec // the operator names the class file on the command line
		if err != nil {
			return nil, errors.Unwrap(err)
		}
		defer func() { _ = f.Close() }()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, errors.New("is a directory; pass a manifest file")
		}
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxClassFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxClassFileBytes {
		return nil, fmt.Errorf("over %d bytes; is it a manifest?", maxClassFileBytes)
	}
	return data, nil
}

// yamlDocuments splits a multi-document YAML stream at "---" lines.
func yamlDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

type doctorRun struct {
	st            *stack
	timeout       time.Duration
	out           io.Writer
	total, failed int
}

// doctorRow is the outcome of one object.
type doctorRow struct {
	obj   *fetch.Object
	key   fetch.Key
	entry *fetch.Entry
	err   error
}

func (d *doctorRun) checkClass(ctx context.Context, c doctorClass) {
	out := d.out
	region := c.spec.Region
	if region == "" {
		region = d.st.region
	}
	fmt.Fprintf(out, "Class %s (%s), region %s, %s\n", c.name, c.source, orDash(region, "(none)"), plural(len(c.spec.Objects), "object"))
	d.total += len(c.spec.Objects)

	id, err := d.identity(ctx, c)
	if err != nil {
		d.failed += len(c.spec.Objects)
		fmt.Fprintf(out, "  identity:   FAIL: %v\n", err)
		fmt.Fprintf(out, "\n  No object was tried. Fix the identity first: the provider reads ACCESS_KEY_ID/SECRET_ACCESS_KEY,\n  ALICLOUD_ROLE_ARN (+ ALICLOUD_OIDC_PROVIDER_ARN and ALICLOUD_OIDC_TOKEN_FILE for RRSA) or the worker RAM role;\n  see docs/operations.md#doctor.\n")
		return
	}
	fmt.Fprintf(out, "  identity:   %s (%s)\n  credential: ok\n\n", id, id.Reason)

	rows := make([]doctorRow, len(c.spec.Objects))
	var wg sync.WaitGroup
	for i, o := range c.spec.Objects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = d.checkObject(ctx, id, c.spec, o)
		}()
	}
	wg.Wait()

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OBJECT\tTYPE\tRESULT\tCODE\tVERSION\tSIZE\tFILES")
	var fails []doctorRow
	for _, r := range rows {
		result, code, ver, size := "ok", "-", "-", "-"
		if r.err != nil {
			result = fetch.KindOf(r.err).String()
			code = orDash(fetch.CodeOf(r.err), "-")
			fails = append(fails, r)
		} else {
			ver, size = orDash(r.entry.Version, "-"), fmt.Sprintf("%d bytes", len(r.entry.Data))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.obj.Name, r.obj.Type, result, code, ver, size, strings.Join(append([]string{r.obj.File}, r.obj.JMESFiles...), ", "))
	}
	_ = tw.Flush()
	d.failed += len(fails)
	if len(fails) == 0 {
		return
	}
	fmt.Fprintf(out, "\n  Fixes:\n")
	for _, r := range fails {
		fmt.Fprintf(out, "\n  %s: %v\n", r.obj.Ref(), r.err)
		for _, l := range strings.Split(doctorFix(r, id, region), "\n") {
			fmt.Fprintf(out, "    %s\n", l)
		}
	}
}

// identity resolves the identity a Mount of this class without a
// nodePublishSecretRef would use, and checks that its credential yields.
func (d *doctorRun) identity(ctx context.Context, c doctorClass) (*auth.Identity, error) {
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	id, err := d.st.resolver.Resolve(cctx, auth.MountInfo{Attributes: c.params, Secrets: map[string]string{}})
	if err != nil {
		return nil, err
	}
	if err := credentialYields(cctx, id); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return id, nil
}

func (d *doctorRun) checkObject(ctx context.Context, id *auth.Identity, spec *fetch.Spec, o *fetch.Object) doctorRow {
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	k, e, _, err := d.st.fetcher.FetchObject(cctx, id, spec, o)
	r := doctorRow{obj: o, key: k, entry: e, err: err}
	if err == nil {
		// jmesPath entries are checked against the real value.
		_, r.err = fetch.ObjectFiles(o, e)
	}
	return r
}

// doctorFix says what to change for one failed object.
func doctorFix(r doctorRow, id *auth.Identity, region string) string {
	o, k := r.obj, r.key
	if k.Region != "" {
		region = k.Region
	}
	svc := strings.ToUpper(string(o.Type))
	flag := "--" + string(o.Type) + "-endpoint"
	switch fetch.KindOf(r.err) {
	case fetch.KindPermission:
		action, resource := "kms:GetSecretValue", "acs:kms:"+region+":*:secret/"+o.Name
		if o.Type == fetch.TypeOOS {
			action, resource = "oos:GetSecretParameter", "acs:oos:"+region+":*:secretparameter/"+o.Name
		}
		pol, _ := json.MarshalIndent(ramPolicy{Version: "1", Statement: []ramStatement{{Effect: "Allow", Action: []string{action}, Resource: []string{resource}}}}, "", "  ")
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
		what := "secret"
		if o.Type == fetch.TypeOOS {
			what = "encrypted parameter"
		}
		sel := ""
		if s := o.Selector(); s != "" {
			sel = " with " + strings.ReplaceAll(strings.ReplaceAll(s, "id=", "objectVersion "), "stage=", "objectVersionLabel ")
		}
		return fmt.Sprintf("fix: %s has no %s %q%s in region %s (endpoint %s). Check objectName (names are case-sensitive),\nthe region (the class parameter region, or --region) and, for a pinned version, objectVersion/objectVersionLabel.",
			svc, what, o.Name, sel, region, k.Endpoint)
	case fetch.KindUnauthenticated:
		return fmt.Sprintf("fix: %s rejected the credential of %s. Check that the AccessKey id and secret belong together and\nare enabled (or that the role session is valid), and that this machine's clock is right.", svc, id)
	case fetch.KindThrottled:
		return fmt.Sprintf("fix: %s kept throttling after retries. Try again later; if it persists, lower --%s-qps on the nodes\nor raise the account's quota.", svc, o.Type)
	case fetch.KindUnavailable, fetch.KindDeadline:
		where := flag
		if o.Type == fetch.TypeKMS {
			where += ", or the object's kmsEndpoint"
		}
		s := fmt.Sprintf("fix: %s at %s did not answer usefully. Check the endpoint (%s):\nhost[:port] for HTTPS, http://host:port for plain HTTP.", svc, orDash(k.Endpoint, "(none)"), where)
		if k.Endpoint != "" && k.Endpoint == fetch.DefaultEndpoint(o.Type, region) {
			s += fmt.Sprintf("\n%s is reachable only from an Alibaba Cloud VPC in %s; elsewhere pass %s %s.%s.aliyuncs.com.",
				k.Endpoint, region, flag, o.Type, region)
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
