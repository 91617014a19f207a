// Package csi owns the provider side of the Secrets Store CSI Driver's gRPC
// protocol (provider/v1alpha1): the unix socket, Version and Mount. A Mount
// parses the untrusted attributes, asks auth for the identity, asks fetch for
// every object through the node-wide cache, and answers with files and one
// object version per file, or one error naming every failed object.
package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/memo"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Attribute keys kubelet and the driver add to MountRequest.attributes.
const (
	AttrPodName        = "csi.storage.k8s.io/pod.name"
	AttrPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	AttrPodUID         = "csi.storage.k8s.io/pod.uid"
	AttrServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	AttrSPC            = "secretProviderClass"
)

// MaxAttributesBytes bounds the attributes and secrets JSON of one Mount.
const MaxAttributesBytes = 256 << 10

// Bounds of what a Mount's log lines quote from its request. The attributes
// come from whoever can reach the socket, so a pod name can be as long as
// the attributes; Kubernetes names are at most 253 bytes, so no real one is
// ever cut. The error holds object names and upstream messages.
const (
	maxLoggedAttr  = 253
	maxLoggedError = 8 << 10
)

// logAttr is an attribute value as a log line quotes it: past
// maxLoggedAttr, cut, with an ellipsis and its length.
func logAttr(s string) string { return textutil.Clip(s, maxLoggedAttr) }

// DefaultMaxResponseBytes is the largest MountResponse the Secrets Store CSI
// Driver accepts by default: its --max-call-recv-msg-size, 4 MiB.
const DefaultMaxResponseBytes = 4 << 20

// IdentityResolver picks the identity of a Mount (auth.Resolver).
type IdentityResolver interface {
	Resolve(ctx context.Context, m auth.MountInfo) (*auth.Identity, error)
}

// Observer receives one measurement per Mount (metrics).
type Observer interface {
	Mount(outcome string, d time.Duration)
	Panic(where string)
}

type nopObserver struct{}

func (nopObserver) Mount(string, time.Duration) {}
func (nopObserver) Panic(string)                {}

// Server implements v1alpha1.CSIDriverProviderServer.
type Server struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	Fetcher  *fetch.Fetcher
	Identity IdentityResolver
	Log      *slog.Logger
	Observer Observer
	// Version is reported as runtime_version (semver).
	RuntimeVersion string
	// Policy, when set (cmd sets the namespace policy of --policy), is
	// asked for every object before any identity is resolved or any
	// upstream call is made. Nil: everything is allowed.
	Policy Policy
	// Mounts, when set (serve --emit-events), is told of every successful
	// Mount: the pod and the results of its objects, with their cache keys.
	Mounts MountRecorder
	// MaxResponseBytes is the largest encoded MountResponse served (serve's
	// --max-response-bytes, the driver's --max-call-recv-msg-size); a larger
	// one is refused here with the files to blame, not by the driver's gRPC
	// client with a bare ResourceExhausted. 0: DefaultMaxResponseBytes.
	MaxResponseBytes int

	// attrs remembers the decoded attributes of recent volumes: kubelet
	// re-publishes a volume with the same attributes every rotation poll.
	attrs     *memo.Map[string, map[string]string]
	attrsOnce sync.Once
}

// Bounds of the attribute memo: the attributes of the 128 most recent
// volumes, of at most 2 KiB each (a pod's with a class of a dozen objects;
// 512 KiB worst case with the decoded copies). Larger ones are decoded every
// time: their objects' work dwarfs the decode.
const (
	maxMemoAttrs      = 128
	maxMemoAttrsBytes = 2 << 10
)

// attributes decodes the request's attributes, from the memo when the same
// text was decoded before. The map is shared: read it, never write it.
// Attributes that carry service account tokens (tokenRequests) are never
// kept: they are credentials, and new on every token refresh anyway.
func (s *Server) attributes(raw string) (map[string]string, error) {
	s.attrsOnce.Do(func() { s.attrs = &memo.Map[string, map[string]string]{Max: maxMemoAttrs} })
	if len(raw) > maxMemoAttrsBytes || strings.Contains(raw, auth.AttrServiceAccountTokens) {
		return parseJSONMap("attributes", raw)
	}
	if m, ok := s.attrs.Get(raw); ok {
		return m, nil
	}
	m, err := parseJSONMap("attributes", raw)
	if err == nil {
		s.attrs.Put(raw, m)
	}
	return m, err
}

func (s *Server) maxResponseBytes() int {
	if s.MaxResponseBytes <= 0 {
		return DefaultMaxResponseBytes
	}
	return s.MaxResponseBytes
}

// MountRecorder learns which pod mounted which cached values
// (*events.Recorder). Mounted is called once per successful Mount, on the
// Mount's goroutine: it must be cheap, and must not keep results.
type MountRecorder interface {
	Mounted(namespace, name, uid string, results []fetch.ObjectResult)
}

// Policy decides whether the pods of a namespace running as a service
// account may mount an object of a type (kms, oos, or auth.PolicyRoles for a
// crossAccountRoleArn) and name: *auth.Policy.
type Policy interface {
	Allow(namespace, serviceAccount, objectType, name string) error
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) obs() Observer {
	if s.Observer == nil {
		return nopObserver{}
	}
	return s.Observer
}

// Version answers the driver's health check.
func (s *Server) Version(_ context.Context, req *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	v := strings.TrimPrefix(s.RuntimeVersion, "v")
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0.0.0-dev" // the driver wants semver
	}
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "csi-secrets-store-provider-alibabacloud", RuntimeVersion: v}, nil
}

// Mount returns the files of one volume.
func (s *Server) Mount(ctx context.Context, req *v1alpha1.MountRequest) (resp *v1alpha1.MountResponse, err error) {
	start := time.Now()
	log := s.log()
	outcome := "error"
	var pod, ns string
	var nObjects int
	var cacheSummary string
	defer func() {
		d := time.Since(start)
		s.obs().Mount(outcome, d)
		attrs := make([]slog.Attr, 0, 8)
		attrs = append(attrs, slog.String("pod", logAttr(pod)), slog.String("namespace", logAttr(ns)), slog.Int("objects", nObjects),
			slog.String("cache", cacheSummary), slog.String("duration", d.Round(time.Microsecond).String()), slog.String("outcome", outcome))
		if err != nil {
			attrs = append(attrs, slog.String("code", status.Code(err).String()), slog.String("error", textutil.Clip(status.Convert(err).Message(), maxLoggedError)))
			log.LogAttrs(ctx, slog.LevelWarn, "mount failed", attrs...)
		} else {
			log.LogAttrs(ctx, slog.LevelInfo, "mount", attrs...)
		}
	}()

	attrs, err := s.attributes(req.GetAttributes())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	pod, ns = attrs[AttrPodName], attrs[AttrPodNamespace]
	secrets, err := parseJSONMap("secrets", req.GetSecrets())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	mode, err := parseMode(req.GetPermission())
	if err != nil {
		outcome = "invalid"
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	spec, err := s.Fetcher.ParseParameters(attrs)
	if err != nil {
		outcome = "invalid"
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	nObjects = len(spec.Objects)
	for _, n := range spec.Notes {
		log.Info("class note", "pod", logAttr(pod), "namespace", logAttr(ns), "note", n)
	}
	if pol := s.Policy; pol != nil {
		for _, o := range spec.Objects {
			if o.Dir != nil && ns != "" {
				continue // every name it lists is checked before it is read
			}
			if err := pol.Allow(ns, attrs[AttrServiceAccount], string(o.Type), o.Name); err != nil {
				outcome = "denied"
				return nil, status.Errorf(codes.PermissionDenied, "%s: %v", o.Ref(), err)
			}
			// A role to assume is as much a grant as a name: with a
			// policy, only the roles it lists for this pod.
			if o.CrossAccountRoleArn != "" {
				if err := pol.Allow(ns, attrs[AttrServiceAccount], auth.PolicyRoles, o.CrossAccountRoleArn); err != nil {
					outcome = "denied"
					return nil, status.Errorf(codes.PermissionDenied, "%s: %v", o.Ref(), err)
				}
			}
		}
	}
	// A per-object kmsEndpoint comes from untrusted attributes: refuse one
	// outside the allow-list before any call at all, STS included.
	for _, o := range spec.Objects {
		if err := s.Fetcher.CheckKMSEndpoint(o); err != nil {
			outcome = "invalid"
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", o.Ref(), err)
		}
	}
	id, err := s.Identity.Resolve(ctx, auth.MountInfo{
		PodName: pod, PodNamespace: ns, PodUID: attrs[AttrPodUID],
		ServiceAccount: attrs[AttrServiceAccount], Secrets: secrets, Attributes: attrs,
	})
	if err != nil {
		outcome = "identity"
		return nil, status.Error(identityCode(err), "credentials: "+err.Error())
	}
	log.Debug("identity chosen", "pod", logAttr(pod), "namespace", logAttr(ns), "mode", string(id.Mode),
		"principal", textutil.Clip(id.Principal, 1024), "reason", textutil.Clip(id.Reason, 1024))

	var allow fetch.Allow
	if pol := s.Policy; pol != nil {
		sa := attrs[AttrServiceAccount]
		allow = func(t fetch.ObjectType, name string) error { return pol.Allow(ns, sa, string(t), name) }
	}
	files, results, err := s.Fetcher.FetchAllowed(ctx, id, spec, allow)
	cacheSummary = summarize(results)
	logHidden(ctx, log, pod, ns, results)
	if err != nil {
		outcome = "fetch"
		return nil, status.Error(grpcCode(err), err.Error())
	}
	fetch.SortFiles(files)
	resp = &v1alpha1.MountResponse{
		Files:         make([]*v1alpha1.File, len(files)),
		ObjectVersion: make([]*v1alpha1.ObjectVersion, len(files)),
	}
	pf, pv := make([]v1alpha1.File, len(files)), make([]v1alpha1.ObjectVersion, len(files))
	for i, f := range files {
		pf[i].Path, pf[i].Mode, pf[i].Contents = f.Path, mode, f.Data.Reveal()
		if f.Mode != 0 {
			pf[i].Mode = f.Mode // the object's filePermission
		}
		pv[i].Id, pv[i].Version = f.ID, f.Version
		resp.Files[i], resp.ObjectVersion[i] = &pf[i], &pv[i]
	}
	// An optional object that does not exist has no file, but a version:
	// its creation changes it, and the driver writes the new file.
	for _, r := range results {
		if r.Err == nil && r.Entry != nil && r.Entry.Absent {
			resp.ObjectVersion = append(resp.ObjectVersion, &v1alpha1.ObjectVersion{Id: r.Object.FileID(), Version: r.Entry.Version})
		}
	}
	// The driver's gRPC client measures the encoded message, so this does.
	if n, limit := proto.Size(resp), s.maxResponseBytes(); n > limit {
		outcome = "too-large"
		return nil, status.Error(codes.ResourceExhausted, tooLarge(files, n, limit))
	}
	if s.Mounts != nil {
		s.Mounts.Mounted(ns, pod, attrs[AttrPodUID], results)
	}
	outcome = "success"
	return resp, nil
}

// tooLarge explains a response over the limit: the largest files by path
// and size (never their contents), the total, and the flags to raise.
func tooLarge(files []fetch.File, n, limit int) string {
	type sized struct {
		path string
		size int
	}
	all := make([]sized, len(files))
	total := 0
	for i, f := range files {
		all[i] = sized{f.Path, len(f.Data)}
		total += len(f.Data)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].size > all[j].size })
	const shown = 5
	var largest []string
	for i, f := range all {
		if i == shown {
			largest = append(largest, fmt.Sprintf("and %d more", len(all)-shown))
			break
		}
		largest = append(largest, fmt.Sprintf("%q %d bytes", f.path, f.size))
	}
	mib := func(b int) string { return fmt.Sprintf("%d bytes (%.1f MiB)", b, float64(b)/(1<<20)) }
	return fmt.Sprintf("the response is %s, over the %s the driver accepts: %d files hold %d bytes; largest %s. "+
		"Mount fewer or smaller objects, or raise the secrets-store-csi-driver's --max-call-recv-msg-size "+
		"and this provider's --max-response-bytes to the same value (this chart: secrets-store-csi-driver.maxCallRecvMsgSize sets both); "+
		"a class that syncs a Kubernetes Secret must stay under 1 MiB either way",
		mib(n), mib(limit), len(files), total, strings.Join(largest, ", "))
}

// summaryOrder is the order of the outcomes in a Mount's "cache" log field.
var summaryOrder = [...]fetch.Outcome{fetch.OutcomeHit, fetch.OutcomeMiss, fetch.OutcomeCoalesced, fetch.OutcomeRefreshed, fetch.OutcomeStale, fetch.OutcomeAbsent, fetch.OutcomeError}

// logHidden says which listed names the namespace policy kept out of a
// Mount (names, never values), once per directory object.
func logHidden(ctx context.Context, log *slog.Logger, pod, ns string, rs []fetch.ObjectResult) {
	for _, r := range rs {
		if len(r.Hidden) == 0 {
			continue
		}
		names := r.Hidden
		if len(names) > 20 {
			names = names[:20]
		}
		log.LogAttrs(ctx, slog.LevelInfo, "listed objects hidden by the namespace policy",
			slog.String("pod", logAttr(pod)), slog.String("namespace", logAttr(ns)), slog.String("object", r.Object.Ref()),
			slog.Int("hidden", len(r.Hidden)), slog.String("names", textutil.Clip(strings.Join(names, ","), maxLoggedError)))
	}
}

// summarize counts the outcomes of a Mount's objects: "hit=9,miss=1".
func summarize(rs []fetch.ObjectResult) string {
	var counts [len(summaryOrder)]int
	for _, r := range rs {
		for i, o := range summaryOrder {
			if r.Outcome == o {
				counts[i]++
				break
			}
		}
	}
	b := make([]byte, 0, 32)
	for i, o := range summaryOrder {
		if counts[i] > 0 {
			if len(b) > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, o...), '='), strconv.Itoa(counts[i])...)
		}
	}
	return string(b)
}

// parseJSONMap parses a JSON object of strings; "", "null" and "{}" are empty.
func parseJSONMap(field, s string) (map[string]string, error) {
	if len(s) > MaxAttributesBytes {
		return nil, fmt.Errorf("%s: %d bytes, over the limit of %d", field, len(s), MaxAttributesBytes)
	}
	t := strings.TrimSpace(s)
	if t == "" || t == "null" {
		return map[string]string{}, nil
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(t), &m); err != nil {
		// Never echo the input: secrets holds credentials.
		return nil, fmt.Errorf("%s: not a JSON object of strings", field)
	}
	return m, nil
}

// parseMode reads the request's permission: the JSON of an os.FileMode, a
// decimal number such as "420" (0644), which is what the driver sends. A
// missing permission becomes 0644. A value outside 1..0o777 or without any
// permission bit is refused: masking it down or defaulting it would give the
// files a mode nobody asked for.
func parseMode(p string) (int32, error) {
	p = strings.TrimSpace(p)
	if p == "" || p == "null" {
		return 0o644, nil
	}
	const fix = `send the file mode as a decimal number from 1 to 511 (0o1 to 0o777), e.g. "420" for 0644, as the Secrets Store CSI Driver does`
	shown := p
	if len(shown) > 24 {
		shown = shown[:24] + "…"
	}
	n, err := strconv.ParseUint(p, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("permission: %q is out of range: %s", shown, fix)
	case err != nil:
		return 0, fmt.Errorf("permission: %q is not a file mode: %s", shown, fix)
	case n == 0:
		return 0, fmt.Errorf("permission: 0 has no permission bits, so nobody could read the files: %s", fix)
	case n > 0o777:
		return 0, fmt.Errorf("permission: %d (0o%o) is out of range: %s", n, n, fix)
	}
	return int32(n), nil //nolint:gosec // at most 0o777
}

// identityCode is grpcCode for a failure to get an identity: what is not
// otherwise classified is a credential problem.
func identityCode(err error) codes.Code {
	switch c := grpcCode(err); c {
	case codes.Internal, codes.NotFound:
		return codes.Unauthenticated
	case codes.ResourceExhausted:
		return codes.Unavailable
	default:
		return c
	}
}

func grpcCode(err error) codes.Code {
	k := fetch.KindOf(err)
	var me *fetch.MountError
	if errors.As(err, &me) {
		k = me.Kind()
	}
	switch k {
	case fetch.KindInvalid:
		return codes.InvalidArgument
	case fetch.KindNotFound:
		return codes.NotFound
	case fetch.KindPermission:
		return codes.PermissionDenied
	case fetch.KindUnauthenticated:
		return codes.Unauthenticated
	case fetch.KindThrottled:
		return codes.ResourceExhausted
	case fetch.KindUnavailable:
		return codes.Unavailable
	case fetch.KindDeadline:
		return codes.DeadlineExceeded
	case fetch.KindCanceled:
		return codes.Canceled
	}
	return codes.Internal
}

// RecoverInterceptor turns a handler panic into an Internal error, logged
// with its stack (never the request) and counted.
func RecoverInterceptor(log *slog.Logger, obs Observer) grpc.UnaryServerInterceptor {
	if obs == nil {
		obs = nopObserver{}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				obs.Panic(info.FullMethod)
				log.Error("panic in handler", "method", info.FullMethod, "panic", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error (a panic, logged with its stack)")
			}
		}()
		return handler(ctx, req)
	}
}
