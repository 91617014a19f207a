package fetch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/memo"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// RoleAssumer assumes a RAM role on top of a base identity (crossAccountRoleArn).
type RoleAssumer interface {
	AssumeRole(ctx context.Context, base *auth.Identity, roleArn string) (*auth.Identity, error)
}

// RetryPolicy bounds retries of throttled and unavailable calls.
type RetryPolicy struct {
	MaxAttempts int           // total attempts, default 4
	Base        time.Duration // first backoff cap, default 100ms
	Max         time.Duration // backoff cap, default 5s
}

// FetcherOptions configure a Fetcher.
type FetcherOptions struct {
	Region      string // default region (--region, or the node's)
	KMSEndpoint string // --kms-endpoint; empty: kms-vpc.<region>.aliyuncs.com
	OOSEndpoint string // --oos-endpoint; empty: oos-vpc.<region>.aliyuncs.com
	// KMSEndpoints and OOSEndpoints are the per-region endpoints
	// (--kms-endpoint <region>=<endpoint>), ahead of the plain ones.
	KMSEndpoints, OOSEndpoints map[string]string
	// AllowedKMSEndpoints are extra glob patterns (path.Match) for per-object
	// kmsEndpoint, on top of the built-in Alibaba Cloud patterns.
	AllowedKMSEndpoints  []string
	MaxConcurrentFetches int // node-wide, default 16
	// MaxListed bounds the objects a Mount's directory objects list,
	// together (--max-listed-objects, default DefaultMaxListed).
	MaxListed          int
	KMSQPS, OOSQPS     float64 // node-wide client-side limits, default 20
	KMSBurst, OOSBurst int     // default 2x QPS
	Retry              RetryPolicy
	Roles              RoleAssumer
	Observer           Observer
}

// Fetcher resolves a Spec for an identity through the cache, fetching the
// objects in parallel under a node-wide concurrency bound and rate limits.
type Fetcher struct {
	cache  *Cache
	source Source
	opts   FetcherOptions
	sem    chan struct{}
	limit  map[ObjectType]*rate.Limiter
	obs    Observer
	specs  specMemo
}

// NewFetcher wires a cache and a source.
func NewFetcher(cache *Cache, source Source, opts FetcherOptions) *Fetcher {
	if opts.MaxConcurrentFetches <= 0 {
		opts.MaxConcurrentFetches = 16
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = DefaultMaxListed
	}
	if opts.KMSQPS <= 0 {
		opts.KMSQPS = 20
	}
	if opts.OOSQPS <= 0 {
		opts.OOSQPS = 20
	}
	if opts.KMSBurst <= 0 {
		opts.KMSBurst = max(1, int(2*opts.KMSQPS))
	}
	if opts.OOSBurst <= 0 {
		opts.OOSBurst = max(1, int(2*opts.OOSQPS))
	}
	if opts.Retry.MaxAttempts <= 0 {
		opts.Retry.MaxAttempts = 4
	}
	if opts.Retry.Base <= 0 {
		opts.Retry.Base = 100 * time.Millisecond
	}
	if opts.Retry.Max <= 0 {
		opts.Retry.Max = 5 * time.Second
	}
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	return &Fetcher{
		cache: cache, source: source, opts: opts,
		sem: make(chan struct{}, opts.MaxConcurrentFetches),
		limit: map[ObjectType]*rate.Limiter{
			TypeKMS: rate.NewLimiter(rate.Limit(opts.KMSQPS), opts.KMSBurst),
			TypeOOS: rate.NewLimiter(rate.Limit(opts.OOSQPS), opts.OOSBurst),
		},
		obs:   opts.Observer,
		specs: specMemo{m: &memo.Map[specKey, *Spec]{Max: maxParsed}, large: &memo.Map[specKey, *Spec]{Max: maxParsedLarge}},
	}
}

// Cache returns the fetcher's cache.
func (f *Fetcher) Cache() *Cache { return f.cache }

// ParseParameters is the package's ParseParameters, remembering successful
// parses (bounded) in this fetcher: the Mount path, where kubelet sends the
// same parameters every minute or two. The Spec returned may be shared: do
// not modify it. A nil Fetcher (a test that never fetches) parses every time.
func (f *Fetcher) ParseParameters(params map[string]string) (*Spec, error) {
	if f == nil {
		return ParseParameters(params)
	}
	return f.specs.parse(params)
}

// File is one file of a mount: a relative path, its bytes and the upstream
// version it came from.
type File struct {
	Path    string
	ID      string // object_version id: "<type>/<path>"
	Data    Bytes
	Version string
	Mode    int32 // filePermission; 0 for the driver's permission
	obj     *Object
}

// ObjectResult reports how one object was served (for logs and doctor).
type ObjectResult struct {
	Object  *Object
	Key     Key
	Outcome Outcome
	Entry   *Entry
	Err     error
	// Hidden are the listed names of a directory object that the
	// Mount's policy refused: left out, never read.
	Hidden []string
}

// ObjectError is one failed object of a mount.
type ObjectError struct {
	Object *Object
	Err    error
}

// MountError aggregates every failed object of one mount: all or nothing.
type MountError struct {
	Total    int
	Failures []ObjectError
}

func (e *MountError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d %s failed: ", len(e.Failures), e.Total, e.noun())
	for i, f := range e.Failures {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Object.Ref())
		b.WriteString(": ")
		b.WriteString(f.Err.Error())
	}
	return b.String()
}

// Kind is the most actionable kind among the failures.
func (e *MountError) Kind() Kind {
	order := []Kind{KindInvalid, KindPermission, KindUnauthenticated, KindNotFound, KindThrottled, KindUnavailable, KindDeadline, KindCanceled}
	seen := map[Kind]bool{}
	for _, f := range e.Failures {
		seen[KindOf(f.Err)] = true
	}
	for _, k := range order {
		if seen[k] {
			return k
		}
	}
	return KindInternal
}

// Unwrap exposes each failure for errors.Is/As.
func (e *MountError) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f.Err
	}
	return out
}

// Key returns the cache key of an object for an identity, after checking the
// object's region and endpoint. It makes no upstream call.
func (f *Fetcher) Key(id *auth.Identity, spec *Spec, o *Object) (Key, Target, error) {
	region := spec.Region
	if region == "" {
		region = f.opts.Region
	}
	if region == "" {
		return Key{}, Target{}, &Error{Kind: KindInvalid, Message: "no region: set the class parameter region (e.g. cn-hangzhou) or the provider's --region"}
	}
	ep, err := f.endpoint(o, region)
	if err != nil {
		return Key{}, Target{}, err
	}
	t := Target{Type: o.Type, Name: o.Name, Version: o.Version, VersionLabel: o.VersionLabel, History: o.History, Region: region, Endpoint: ep, Instance: o.KMSEndpoint != ""}
	k := Key{Identity: id.Fingerprint, Region: region, Endpoint: ep, Type: o.Type, Name: o.Name, Selector: o.Selector()}
	if fr := o.FailoverRegion; fr != "" && fr != region {
		t.FailoverRegion, k.Failover = fr, fr
	}
	if o.Dir != nil {
		t.List, t.ListMax = o.Dir, f.opts.MaxListed
	}
	t.Optional = o.Optional
	return k, t, nil
}

// builtinKMSEndpoints are the Alibaba Cloud KMS endpoints a class may name.
var builtinKMSEndpoints = regexp.MustCompile(`^(kst-[a-z0-9]{3,64}\.cryptoservice\.kms\.aliyuncs\.com|kms(-vpc)?\.[a-z0-9-]{2,40}\.aliyuncs\.com)(:443)?$`)

func (f *Fetcher) endpoint(o *Object, region string) (string, error) {
	if o.KMSEndpoint != "" {
		if err := f.CheckKMSEndpoint(o); err != nil {
			return "", err
		}
		return o.KMSEndpoint, nil
	}
	return f.serviceEndpoint(o.Type, region), nil
}

// serviceEndpoint is the endpoint of t's service in region, for objects
// without a kmsEndpoint: the flag's endpoint for the region, else its
// endpoint for every region, else the region's VPC endpoint.
func (f *Fetcher) serviceEndpoint(t ObjectType, region string) string {
	switch t.Service() {
	case TypeOOS:
		if ep := f.opts.OOSEndpoints[region]; ep != "" {
			return ep
		}
		if f.opts.OOSEndpoint != "" {
			return f.opts.OOSEndpoint
		}
	default:
		if ep := f.opts.KMSEndpoints[region]; ep != "" {
			return ep
		}
		if f.opts.KMSEndpoint != "" {
			return f.opts.KMSEndpoint
		}
	}
	return DefaultEndpoint(t.Service(), region)
}

// CheckKMSEndpoint refuses an object's kmsEndpoint (untrusted: it comes from
// attributes) outside the built-in Alibaba Cloud patterns and
// --allowed-kms-endpoints, with a KindInvalid error that says how to allow
// one. It is the one allow-list check: csi asks it before choosing an
// identity, and every cache key is built through it.
func (f *Fetcher) CheckKMSEndpoint(o *Object) error {
	if o.KMSEndpoint == "" || f.kmsEndpointAllowed(o.KMSEndpoint) {
		return nil
	}
	return &Error{Kind: KindInvalid, Service: TypeKMS, Message: fmt.Sprintf(
		"kmsEndpoint %q is not an Alibaba Cloud KMS endpoint (kst-<id>.cryptoservice.kms.aliyuncs.com or kms[-vpc].<region>.aliyuncs.com); an operator can allow more with --allowed-kms-endpoints",
		textutil.Truncate(o.KMSEndpoint, 64))}
}

func (f *Fetcher) kmsEndpointAllowed(ep string) bool {
	e := strings.ToLower(ep)
	if strings.Contains(e, "://") {
		return false
	}
	if builtinKMSEndpoints.MatchString(e) {
		return true
	}
	for _, p := range f.opts.AllowedKMSEndpoints {
		if ok, _ := path.Match(strings.ToLower(strings.TrimSpace(p)), e); ok {
			return true
		}
	}
	return false
}

// Allow decides whether the Mount's pod may read a listed object (the
// namespace policy); an error hides the object. nil allows every one.
type Allow func(t ObjectType, name string) error

// Fetch serves every object of spec for id: all files, or a *MountError
// naming every failed object. Objects are fetched in parallel through the
// cache.
func (f *Fetcher) Fetch(ctx context.Context, id *auth.Identity, spec *Spec) ([]File, []ObjectResult, error) {
	return f.FetchAllowed(ctx, id, spec, nil)
}

// FetchAllowed is Fetch with a policy for the objects directory objects
// list: each listed name is shown to allow before its value is read.
func (f *Fetcher) FetchAllowed(ctx context.Context, id *auth.Identity, spec *Spec, allow Allow) ([]File, []ObjectResult, error) {
	objs := spec.Objects
	var listed []ObjectResult
	if spec.dirs {
		var err error
		if objs, listed, err = f.expandDirs(ctx, id, spec, allow); err != nil {
			return nil, listed, err
		}
	}
	results := make([]ObjectResult, len(objs))
	var wg sync.WaitGroup
	var groups map[batchGroup][]int
	bs, canBatch := f.source.(BatchSource)
	single := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].Key, results[i].Entry, results[i].Outcome, results[i].Err = f.fetchObject(ctx, id, spec, objs[i])
		}()
	}
	var targets []Target // of the batch candidates, by object index
	for i, o := range objs {
		results[i].Object = o
		// An object with a crossAccountRoleArn takes the full path: its
		// identity, and so its key, comes from an STS call.
		if o.CrossAccountRoleArn == "" {
			if k, t, err := f.Key(id, spec, o); err == nil {
				// Cached objects are answered here; only the others get
				// a goroutine each, so a warm Mount starts none.
				if e, ok := f.cache.Fresh(k, id.Credential, func() FetchFunc { return f.FetchFunc(id, t) }); ok {
					results[i].Key, results[i].Entry, results[i].Outcome = k, e, OutcomeHit
					continue
				}
				if canBatch && batchable(o) {
					if groups == nil {
						groups, targets = map[batchGroup][]int{}, make([]Target, len(objs))
					}
					g := groupOf(k, t)
					groups[g] = append(groups[g], i)
					results[i].Key, targets[i] = k, t
					continue
				}
			}
		}
		single(i)
	}
	for _, idx := range groups {
		if len(idx) == 1 {
			single(idx[0])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.fetchBatch(ctx, id, bs, idx, targets, results)
		}()
	}
	wg.Wait()

	files := make([]File, 0, len(objs))
	me := &MountError{Total: len(objs)}
	for i := range results {
		r := &results[i]
		if r.Err != nil && r.Object.parent != nil && KindOf(r.Err) == KindNotFound {
			// Deleted since it was listed: the next listing drops it.
			r.Outcome, r.Entry = OutcomeAbsent, nil
			continue
		}
		if r.Err != nil {
			me.Failures = append(me.Failures, ObjectError{r.Object, hint(r.Object, r.Key, r.Err)})
			continue
		}
		var err error
		n := len(files)
		if files, err = appendObjectFiles(files, r.Object, r.Entry); err != nil {
			r.Err = err
			me.Failures = append(me.Failures, ObjectError{r.Object, err})
		}
		for k := n; k < len(files); k++ {
			files[k].obj = r.Object
		}
	}
	if listed != nil {
		results = append(listed, results...)
	}
	if len(me.Failures) > 0 {
		return nil, results, me
	}
	// Every object file, those of file: false included, is checked before
	// a template reads them: a listed name must not shadow another file.
	if spec.dynamic && len(spec.Templates) > 0 {
		if oe := checkDynamicPaths(files); oe != nil {
			return nil, results, &MountError{Total: len(objs), Failures: []ObjectError{*oe}}
		}
	}
	// Templated files, from the files above; drops those of file: false.
	var rerr error
	if files, rerr = renderTemplates(spec, files); rerr != nil {
		return nil, results, rerr
	}
	if spec.dynamic {
		if oe := checkDynamicPaths(files); oe != nil {
			return nil, results, &MountError{Total: len(objs), Failures: []ObjectError{*oe}}
		}
	}
	return files, results, nil
}

// fetchBatch serves the objects idx of one batch group through the cache,
// filling their results; results[i].Key and targets[i] are set.
func (f *Fetcher) fetchBatch(ctx context.Context, id *auth.Identity, bs BatchSource, idx []int, targets []Target, results []ObjectResult) {
	keys, fetches, ts := make([]Key, len(idx)), make([]FetchFunc, len(idx)), make([]Target, len(idx))
	members := make([]*batchMember, len(idx))
	for j, i := range idx {
		k, t := results[i].Key, targets[i]
		keys[j], ts[j], fetches[j] = k, t, f.FetchFunc(id, t)
		members[j] = &batchMember{group: groupOf(k, t), target: t, id: id, f: f, bs: bs}
	}
	entries, outcomes, errs := f.cache.GetBatch(ctx, keys, fetches, members, f.batchFunc(id, bs, ts, fetches))
	for j, i := range idx {
		results[i].Entry, results[i].Outcome, results[i].Err = entries[j], outcomes[j], errs[j]
	}
}

// FetchObject serves one object through the cache (the FUSE view's lookup).
func (f *Fetcher) FetchObject(ctx context.Context, id *auth.Identity, spec *Spec, o *Object) (Key, *Entry, Outcome, error) {
	return f.fetchObject(ctx, id, spec, o)
}

// Pin keeps one object refreshed in the cache until unpin is called, even
// when nobody reads it through the cache (the FUSE view's kernel-cached
// files). It makes no upstream call itself.
func (f *Fetcher) Pin(id *auth.Identity, spec *Spec, o *Object) (Key, func(), error) {
	k, t, err := f.Key(id, spec, o)
	if err != nil {
		return Key{}, nil, err
	}
	return k, f.cache.Pin(k, f.FetchFunc(id, t)), nil
}

func (f *Fetcher) fetchObject(ctx context.Context, id *auth.Identity, spec *Spec, o *Object) (Key, *Entry, Outcome, error) {
	if o.CrossAccountRoleArn != "" {
		if f.opts.Roles == nil {
			return Key{}, nil, OutcomeError, &Error{Kind: KindInvalid, Message: "crossAccountRoleArn is not supported by this provider's configuration"}
		}
		assumed, err := f.opts.Roles.AssumeRole(ctx, id, o.CrossAccountRoleArn)
		if err != nil {
			return Key{}, nil, OutcomeError, err
		}
		id = assumed
	}
	k, t, err := f.Key(id, spec, o)
	if err != nil {
		return k, nil, OutcomeError, err
	}
	e, out, err := f.cache.Get(ctx, k, f.FetchFunc(id, t))
	return k, e, out, err
}

// FetchFunc is the cache's fetch path for one target: the node-wide rate
// limit and concurrency bound, bounded retries with full jitter and, when
// the target has a failover region and every retry failed for
// availability, the same read there with the same identity. A value read
// in the failover region carries the region in its version
// ("<version>@<region>"), so the switch, and the switch back, reach the
// pod as a new version.
func (f *Fetcher) FetchFunc(id *auth.Identity, t Target) FetchFunc {
	return func(ctx context.Context) (Result, error) {
		res, err := f.retry(ctx, id, t)
		if err != nil && t.Optional && KindOf(err) == KindNotFound {
			// Cached like a value: a missing optional object costs one
			// call per TTL, and its creation is a change of version.
			return Result{Absent: true, Version: AbsentVersion}, nil
		}
		if err == nil || t.FailoverRegion == "" || !failsOver(err) || ctx.Err() != nil {
			return res, err
		}
		ft := t
		ft.Region, ft.Endpoint, ft.FailoverRegion = t.FailoverRegion, f.serviceEndpoint(t.Type, t.FailoverRegion), ""
		fres, ferr := f.retry(ctx, id, ft)
		f.obs.Failover(t.Type, ferr == nil)
		if ferr != nil {
			return Result{}, fmt.Errorf("%w; the failover region %s failed too: %v", err, t.FailoverRegion, ferr) //nolint:errorlint // the primary's error is the one classified
		}
		suffix := "@" + t.FailoverRegion
		fres.Version += suffix
		if len(fres.History) > 0 {
			hist := make([]Version, len(fres.History))
			for i, v := range fres.History {
				hist[i] = Version{Data: v.Data, Version: v.Version + suffix}
			}
			fres.History = hist
		}
		return fres, nil
	}
}

// BaseVersion is a version without the "@<region>" a read in the failover
// region adds: the same upstream version, wherever it was read.
func BaseVersion(v string) string {
	if i := strings.LastIndexByte(v, '@'); i > 0 && aliyun.ValidRegion(v[i+1:]) {
		return v[:i]
	}
	return v
}

// failsOver reports whether a failure in the primary region sends the read
// to the failover region: the region is unavailable (connection errors,
// timeouts, 5xx) or throttling. A missing object, a denial or a rejected
// credential is the answer, and is the same in every region.
func failsOver(err error) bool {
	switch KindOf(err) {
	case KindUnavailable, KindDeadline, KindThrottled:
		return true
	}
	return false
}

// retry reads t with the retry policy.
func (f *Fetcher) retry(ctx context.Context, id *auth.Identity, t Target) (Result, error) {
	var last error
	for attempt := 0; attempt < f.opts.Retry.MaxAttempts; attempt++ {
		if attempt > 0 {
			if err := f.wait(ctx, t, attempt, last); err != nil {
				return Result{}, last
			}
		}
		res, err := f.once(ctx, id, t)
		if err == nil {
			return res, nil
		}
		last = err
		if !KindOf(err).Retryable() || ctx.Err() != nil {
			return Result{}, err
		}
	}
	return Result{}, last
}

// wait sleeps the backoff before retry attempt, counting the retry; it
// fails when the deadline would pass first or ctx ends.
func (f *Fetcher) wait(ctx context.Context, t Target, attempt int, last error) error {
	d := backoff(f.opts.Retry, attempt, last)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	f.obs.Retry(t.Type, KindOf(last))
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slot waits for the rate limit of t's service and a fetch slot; release
// frees the slot.
func (f *Fetcher) slot(ctx context.Context, t Target) (release func(), err error) {
	start := time.Now()
	if err := f.limit[t.Type.Service()].Wait(ctx); err != nil {
		return nil, &Error{Kind: KindDeadline, Service: t.Type.Service(), Message: fmt.Sprintf("the node's client-side rate limit (--%s-qps) would delay this call past the request's deadline", t.Type.Service()), Err: err}
	}
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &Error{Kind: KindDeadline, Service: t.Type.Service(), Message: "waited for a free fetch slot (--max-concurrent-fetches) until the deadline", Err: ctx.Err()}
	}
	if w := time.Since(start); w > time.Millisecond {
		f.obs.RateLimitWait(t.Type, w)
	}
	return func() { <-f.sem }, nil
}

// onceBatch is one batch call: one rate-limit token and one fetch slot.
func (f *Fetcher) onceBatch(ctx context.Context, id *auth.Identity, bs BatchSource, ts []Target) ([]Result, []bool, error) {
	release, err := f.slot(ctx, ts[0])
	if err != nil {
		return nil, nil, err
	}
	callStart := time.Now()
	res, found, err := bs.GetBatch(ctx, id, ts)
	release()
	code := ""
	if err != nil {
		code = errCode(err)
	}
	f.obs.UpstreamCall(ts[0].Type, BatchAction(ts[0].Type), fmt.Sprintf("(%d names)", len(ts)), code, time.Since(callStart))
	return res, found, err
}

func (f *Fetcher) once(ctx context.Context, id *auth.Identity, t Target) (Result, error) {
	if t.List != nil {
		return f.listAll(ctx, id, t) // a slot, a token and a count per page
	}
	release, err := f.slot(ctx, t)
	if err != nil {
		return Result{}, err
	}
	callStart := time.Now()
	res, err := f.source.Get(ctx, id, t)
	release()
	code := ""
	if err != nil {
		code = errCode(err)
	}
	f.obs.UpstreamCall(t.Type, actionOf(t), t.Name, code, time.Since(callStart))
	return res, err
}

func backoff(p RetryPolicy, attempt int, last error) time.Duration {
	ceil := p.Base << (attempt - 1)
	if ceil > p.Max || ceil <= 0 {
		ceil = p.Max
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1)) //nolint:gosec // full jitter needs no cryptographic randomness
	var e *Error
	if errors.As(last, &e) && e.RetryAfter > d {
		d = min(e.RetryAfter, 2*p.Max)
	}
	return d
}

// hint adds the fix to an object's failure: the RAM action for a denial,
// the object name for not-found, the deadline for a timeout.
func hint(o *Object, k Key, err error) error {
	switch KindOf(err) {
	case KindPermission:
		return fmt.Errorf("%w; grant the identity RAM action %s on %s", err, RAMAction(o), ObjectResourceARN(o, k.Region))
	case KindNotFound:
		return fmt.Errorf("%w; check that the %s %q (and any objectVersion/objectVersionLabel) exists in region %s", err, o.Type.Noun(), o.Name, k.Region)
	case KindUnauthenticated:
		return fmt.Errorf("%w; the credential was rejected: check the AccessKey pair or the role session", err)
	case KindThrottled:
		return fmt.Errorf("%w; upstream kept throttling after retries: lower --%s-qps or raise the account's quota", err, o.Type.Service())
	}
	return err
}

// SortFiles orders files by path (stable responses).
func SortFiles(fs []File) { sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path }) }
