package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/memo"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Target is one upstream read: which service, endpoint and object version.
type Target struct {
	Type         ObjectType
	Name         string
	Version      string // KMS VersionId / OOS ParameterVersion
	VersionLabel string // KMS VersionStage
	Region       string
	Endpoint     string // host[:port] (HTTPS) or http://host:port
	// Instance marks a per-object kmsEndpoint (a KMS instance gateway),
	// the only target that trusts --kms-ca-file.
	Instance bool
	// History, above 0, reads the current and up to History-1 previous
	// versions (objectVersionHistory) instead of one value.
	History int16
	// FailoverRegion is read when every retry in Region failed for
	// availability; "" for none. Its endpoint is the region's, as for any
	// object without a kmsEndpoint.
	FailoverRegion string
	// List, when set, reads a directory object's listing (names only)
	// instead of a value; ListMax bounds the names (--max-listed-objects).
	List    *Dir
	ListMax int
	// Optional turns "not found" into an absent value (Result.Absent).
	Optional bool
}

// Result is what a source returns: the value and its upstream version.
type Result struct {
	Data    Bytes
	Version string // KMS VersionId, OOS ParameterVersion
	// Binary marks a KMS binary secret (Data is already decoded).
	Binary bool
	// History is set for an objectVersionHistory read: the current
	// version first; Data and Version are History[0]'s.
	History []Version
	// Absent: an optional object upstream says does not exist; Version
	// is AbsentVersion and there is no Data.
	Absent bool
}

// AbsentVersion is the object version of an optional object that does not
// exist: fixed, so its creation upstream is a change the driver writes.
const AbsentVersion = "absent"

// Version is one version of a value, in a history.
type Version struct {
	Data    Bytes
	Version string
}

// Source reads one target with one identity. Implementations do no retries,
// no rate limiting and no caching: the cache's fetch path wraps them once.
type Source interface {
	Get(ctx context.Context, id *auth.Identity, t Target) (Result, error)
}

// Endpoint is a parsed endpoint flag or parameter.
type Endpoint struct {
	Host     string // host[:port] as the SDK wants it (no scheme)
	Protocol string // "HTTPS" or "HTTP"
}

// ParseEndpoint accepts host[:port] (HTTPS) or http://host:port / https://host.
func ParseEndpoint(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	ep := Endpoint{Protocol: "HTTPS"}
	switch {
	case strings.HasPrefix(s, "http://"):
		ep.Protocol, s = "HTTP", strings.TrimPrefix(s, "http://")
	case strings.HasPrefix(s, "https://"):
		s = strings.TrimPrefix(s, "https://")
	}
	s = strings.TrimSuffix(s, "/")
	if s == "" || !endpointRe.MatchString(s) {
		return ep, fmt.Errorf("endpoint %q: use host[:port] for HTTPS or http://host:port for plain HTTP", textutil.Truncate(s, 64))
	}
	ep.Host = s
	return ep, nil
}

// DefaultEndpoint is the regional VPC endpoint of a service.
func DefaultEndpoint(t ObjectType, region string) string {
	return string(t) + "-vpc." + region + ".aliyuncs.com"
}

// SDKOptions are the HTTP settings of every SDK client.
type SDKOptions struct {
	ConnectTimeout time.Duration // default 5s
	ReadTimeout    time.Duration // default 10s
	// KMSCAFile is the CA bundle (PEM) of KMS instance gateways.
	KMSCAFile string
}

// SDKSource talks to KMS and OOS through the official SDK clients, built
// once per (identity, service, endpoint) and reused.
type SDKSource struct {
	opts    SDKOptions
	clients *memo.Map[clientKey, *sdkClient]
	kmsCA   *x509.CertPool
}

// clientKey is what an SDK client is built for.
type clientKey struct {
	identity string // the credential's fingerprint
	service  ObjectType
	protocol string
	host     string
	region   string
	instance bool // a KMS instance gateway (its own CA)
}

type sdkClient struct {
	kms  *kms.Client
	oos  *oos.Client
	http *hintClient
}

// clientIdle is how long an SDK client may go unused before it is dropped
// (identities come and go: pods, rotated AccessKeys); maxClients bounds
// them (the least recently used goes first), since kmsEndpoint values come
// from untrusted attributes.
const (
	clientIdle = 30 * time.Minute
	maxClients = 1024
)

// NewSDKSource returns a source with the given HTTP settings.
func NewSDKSource(opts SDKOptions) (*SDKSource, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 10 * time.Second
	}
	s := &SDKSource{opts: opts}
	s.clients = &memo.Map[clientKey, *sdkClient]{Max: maxClients, Idle: clientIdle,
		Drop: func(c *sdkClient) { c.http.c.CloseIdleConnections() }}
	if opts.KMSCAFile != "" {
		pem, err := os.ReadFile(opts.KMSCAFile)
		if err != nil {
			return nil, fmt.Errorf("--kms-ca-file: %w", err)
		}
		// The instance CA is added to the system roots, and only for
		// KMS instance gateways: other endpoints keep the system roots.
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kms-ca-file %s: no PEM certificate found", opts.KMSCAFile)
		}
		s.kmsCA = pool
	}
	return s, nil
}

// Clients reports how many SDK clients are built (for tests and metrics).
func (s *SDKSource) Clients() int { return s.clients.Len() }

func (s *SDKSource) client(id *auth.Identity, t Target) (*sdkClient, error) {
	ep, err := ParseEndpoint(t.Endpoint)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Service: t.Type.Service(), Message: err.Error()}
	}
	key := clientKey{identity: id.Fingerprint, service: t.Type.Service(), protocol: ep.Protocol, host: ep.Host, region: t.Region, instance: t.Instance}
	return s.clients.GetOrAdd(key, func() (*sdkClient, error) {
		var ca *x509.CertPool
		if t.Type == TypeKMS && t.Instance {
			ca = s.kmsCA
		}
		hc := newHintClient(s.opts, ca)
		cfg := &openapi.Config{
			Credential:     id.Credential,
			Endpoint:       dara.String(ep.Host),
			Protocol:       dara.String(ep.Protocol),
			ConnectTimeout: dara.Int(int(s.opts.ConnectTimeout / time.Millisecond)),
			ReadTimeout:    dara.Int(int(s.opts.ReadTimeout / time.Millisecond)),
			HttpClient:     hc,
		}
		if t.Region != "" {
			cfg.RegionId = dara.String(t.Region)
		}
		c := &sdkClient{http: hc}
		var err error
		switch t.Type.Service() {
		case TypeKMS:
			c.kms, err = kms.NewClient(cfg)
		case TypeOOS:
			c.oos, err = oos.NewClient(cfg)
		default:
			err = fmt.Errorf("unknown object type %q", t.Type)
		}
		if err != nil {
			return nil, &Error{Kind: KindInternal, Service: t.Type.Service(), Message: "building the SDK client: " + textutil.Truncate(err.Error(), 160)}
		}
		return c, nil
	})
}

// Close drops every SDK client and closes their idle connections, so no
// connection of theirs outlives the provider's shutdown (serve calls it once
// the cache has stopped). A later Get builds new clients.
func (s *SDKSource) Close() { s.clients.Clear() }

// Get reads one target. A panic inside the SDK or a credential provider
// (some panic on malformed bodies) becomes an Unavailable error: fetches run
// on background goroutines, where a panic would end the process.
func (s *SDKSource) Get(ctx context.Context, id *auth.Identity, t Target) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = Result{}, sdkPanic(t, r)
		}
	}()
	return s.get(ctx, id, t)
}

// sdkPanic reports a recovered SDK panic by its type only (its value could
// hold response bytes).
func sdkPanic(t Target, r any) error {
	return &Error{Kind: KindUnavailable, Service: t.Type.Service(), Action: actionOf(t), Message: fmt.Sprintf("the SDK panicked on the response (%T); treated as a malformed response", r)}
}

func (s *SDKSource) get(ctx context.Context, id *auth.Identity, t Target) (Result, error) {
	if id == nil || id.Credential == nil {
		return Result{}, &Error{Kind: KindUnauthenticated, Service: t.Type.Service(), Message: "no credential"}
	}
	c, err := s.client(id, t)
	if err != nil {
		return Result{}, err
	}
	var res Result
	switch {
	case t.List != nil:
		return Result{}, &Error{Kind: KindInternal, Service: t.Type.Service(), Message: "a listing is read a page at a time (ListPage)"}
	case t.Type == TypeKMS && t.History > 0:
		res, err = s.getKMSHistory(ctx, c, t)
	case t.Type == TypeKMS:
		res, err = s.getKMS(ctx, c, t)
	case t.History > 0:
		res, err = s.getOOSHistory(ctx, c, t)
	case t.Type.IsOOS():
		res, err = s.getOOS(ctx, c, t)
	default:
		err = fmt.Errorf("unknown object type %q", t.Type)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err() // the caller's deadline or cancellation, whatever the transport said
		}
		e := Classify(t.Type.Service(), actionOf(t), err)
		if e.Kind == KindThrottled && e.RetryAfter == 0 {
			e.RetryAfter = c.http.hint()
		}
		return Result{}, e
	}
	return res, nil
}

// actionOf is the API action a read of t calls (a listing: its first).
func actionOf(t Target) string {
	if t.List != nil {
		return ListAction(t.Type)
	}
	return ReadAction(t.Type, t.History > 0)
}

func (s *SDKSource) getKMS(ctx context.Context, c *sdkClient, t Target) (Result, error) {
	res, _, err := s.kmsGetValue(ctx, c, t, t.Version, t.VersionLabel)
	return res, err
}

// kmsGetValue is one GetSecretValue of t.Name by version id and/or stage;
// it also returns the SecretType.
func (s *SDKSource) kmsGetValue(ctx context.Context, c *sdkClient, t Target, versionID, stage string) (Result, string, error) {
	// The KMS client has no context-aware GetSecretValue: build the same
	// request as GetSecretValueWithOptions and send it through the
	// context-aware CallApiWithCtx (which also takes the signature-v4 path
	// when the client is set so). The call ends with ctx: nothing is left
	// running aside.
	query := map[string]any{"SecretName": dara.String(t.Name)}
	if versionID != "" {
		query["VersionId"] = dara.String(versionID)
	}
	if stage != "" {
		query["VersionStage"] = dara.String(stage)
	}
	req := &openapi.OpenApiRequest{Query: openapiutil.Query(query)}
	body, err := c.kms.CallApiWithCtx(ctx, kmsGetSecretValue, req, &dara.RuntimeOptions{})
	if err != nil {
		return Result{}, "", err
	}
	r := &kms.GetSecretValueResponse{}
	if err := dara.Convert(body, &r); err != nil {
		return Result{}, "", err
	}
	if r.StatusCode == nil || *r.StatusCode/100 != 2 {
		return Result{}, "", malformed(t, "a non-2xx status without an error body")
	}
	if r.Body == nil || r.Body.SecretData == nil || r.Body.VersionId == nil || *r.Body.VersionId == "" {
		return Result{}, "", malformed(t, "SecretData or VersionId missing")
	}
	b := r.Body
	data := []byte(*b.SecretData)
	binary := strings.EqualFold(dara.StringValue(b.SecretDataType), "binary")
	if binary {
		dec, err := base64.StdEncoding.DecodeString(*b.SecretData)
		if err != nil {
			return Result{}, "", malformed(t, "a binary SecretData is not base64")
		}
		data = dec
	}
	return Result{Data: Bytes(data), Version: *b.VersionId, Binary: binary}, dara.StringValue(b.SecretType), nil
}

// kmsGetSecretValue is the KMS client's own description of GetSecretValue
// (kms-20160120 GetSecretValueWithOptions).
var kmsGetSecretValue = kmsRPC("GetSecretValue")

// kmsRPC describes a KMS 2016-01-20 action as the KMS client's
// <Action>WithOptions methods do, for its context-aware CallApiWithCtx.
func kmsRPC(action string) *openapi.Params {
	return &openapi.Params{
		Action:      dara.String(action),
		Version:     dara.String("2016-01-20"),
		Protocol:    dara.String("HTTPS"),
		Pathname:    dara.String("/"),
		Method:      dara.String("POST"),
		AuthType:    dara.String("AK"),
		Style:       dara.String("RPC"),
		ReqBodyType: dara.String("formData"),
		BodyType:    dara.String("json"),
	}
}

// oosParam is what every OOS read answers per parameter, whichever action
// (GetSecretParameter, GetParameter, their batch and version forms).
type oosParam struct {
	name, value *string
	version     *int32
}

// getOOS reads one encrypted (with decryption) or common parameter.
func (s *SDKSource) getOOS(ctx context.Context, c *sdkClient, t Target) (Result, error) {
	var pv *int32
	if t.Version != "" {
		n, err := strconv.ParseInt(t.Version, 10, 32)
		if err != nil {
			return Result{}, &Error{Kind: KindInvalid, Service: TypeOOS, Message: "objectVersion is not a number"}
		}
		pv = dara.Int32(int32(n))
	}
	// The context reaches our HTTP client through the request.
	var status *int32
	var p *oosParam
	answered := false
	if t.Type == TypeOOS {
		r, err := c.oos.GetSecretParameterWithContext(ctx, &oos.GetSecretParameterRequest{Name: dara.String(t.Name), WithDecryption: dara.Bool(true), ParameterVersion: pv}, &dara.RuntimeOptions{})
		if err != nil {
			return Result{}, err
		}
		if r != nil {
			answered, status = true, r.StatusCode
			if r.Body != nil && r.Body.Parameter != nil {
				p = &oosParam{value: r.Body.Parameter.Value, version: r.Body.Parameter.ParameterVersion}
			}
		}
	} else {
		r, err := c.oos.GetParameterWithContext(ctx, &oos.GetParameterRequest{Name: dara.String(t.Name), ParameterVersion: pv}, &dara.RuntimeOptions{})
		if err != nil {
			return Result{}, err
		}
		if r != nil {
			answered, status = true, r.StatusCode
			if r.Body != nil && r.Body.Parameter != nil {
				p = &oosParam{value: r.Body.Parameter.Value, version: r.Body.Parameter.ParameterVersion}
			}
		}
	}
	if answered && (status == nil || *status/100 != 2) {
		return Result{}, malformed(t, "a non-2xx status without an error body")
	}
	if p == nil || p.value == nil || p.version == nil {
		return Result{}, malformed(t, "Parameter.Value or Parameter.ParameterVersion missing")
	}
	return Result{Data: Bytes(*p.value), Version: strconv.Itoa(int(*p.version))}, nil
}

func malformed(t Target, what string) error {
	return &Error{Kind: KindUnavailable, Service: t.Type.Service(), Action: actionOf(t), Message: "malformed success response: " + what}
}

// hintClient is the SDK's HTTP client: our own transport (no environment
// proxy, bounded idle pool, the KMS instance CA) that also remembers the
// server's latest throttling hint (x-ratelimit-user[-api] TimeLeft), which
// the SDK drops when it converts errors.
type hintClient struct {
	c        *http.Client
	hintMs   atomic.Int64
	hintSeen atomic.Int64
}

func newHintClient(o SDKOptions, ca *x509.CertPool) *hintClient {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.ReadTimeout,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if ca != nil {
		tr.TLSClientConfig.RootCAs = ca
	}
	return &hintClient{c: &http.Client{Transport: tr, Timeout: o.ConnectTimeout + o.ReadTimeout}}
}

// Call implements dara.HttpClient.
func (h *hintClient) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	resp, err := h.c.Do(req) //nolint:gosec // endpoints come from flags or the kmsEndpoint allow-list (Fetcher.CheckKMSEndpoint)
	if err == nil && resp != nil {
		if ms := timeLeft(resp.Header.Get("x-ratelimit-user-api"), resp.Header.Get("x-ratelimit-user")); ms > 0 {
			h.hintMs.Store(ms)
			h.hintSeen.Store(time.Now().UnixNano())
		}
	}
	return resp, err
}

// hint returns a throttling hint seen within the last two seconds.
func (h *hintClient) hint() time.Duration {
	if time.Since(time.Unix(0, h.hintSeen.Load())) > 2*time.Second {
		return 0
	}
	return time.Duration(h.hintMs.Load()) * time.Millisecond
}

// timeLeft parses "...,TimeLeft:<ms>" from the rate-limit headers.
func timeLeft(headers ...string) int64 {
	var best int64
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
			if ok && strings.EqualFold(k, "TimeLeft") {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > best {
					best = n
				}
			}
		}
	}
	return best
}
