package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Per-pod RRSA attributes and conventions.
const (
	// AttrUsePodToken turns per-pod RRSA on ("true") for a volume.
	AttrUsePodToken = "usePodServiceAccountToken"
	// AttrRoleArn is the role a pod's token is exchanged for. It comes from
	// untrusted attributes; that is safe only because STS checks the
	// token's subject against the role's trust policy.
	AttrRoleArn = "roleArn"
	// AttrServiceAccountTokens is where the driver passes the pod's tokens
	// (in secrets on drivers with serviceAccountTokenInSecrets, else in
	// attributes): {"<audience>":{"token":"<jwt>","expirationTimestamp":"<RFC3339>"}}.
	AttrServiceAccountTokens = "csi.storage.k8s.io/serviceAccount.tokens" // #nosec G101 -- an attribute key, not a credential
	// STSAudience is the audience of tokens STS accepts.
	STSAudience = "sts.aliyuncs.com"
	// RoleAnnotation on a ServiceAccount names its RAM role (ACK's RRSA
	// convention, and the incumbent provider's).
	RoleAnnotation = "ack.alibabacloud.com/role-arn"

	saSubjectPrefix = "system:serviceaccount:"
	maxPodTokens    = 10000
	// tokenGrace drops a cached token this long before its expiry, so a
	// Mount never starts with a token STS would refuse on the next refresh.
	tokenGrace = 30 * time.Second
)

// ServiceAccountRoles reads the RAM role annotation of a service account.
type ServiceAccountRoles interface {
	// RoleARN returns the ack.alibabacloud.com/role-arn annotation of the
	// service account, "" when it has none.
	RoleARN(ctx context.Context, namespace, name string) (string, error)
}

func podTokenRequested(attrs map[string]string) (bool, error) {
	v := strings.TrimSpace(attrs[AttrUsePodToken])
	switch {
	case v == "" || strings.EqualFold(v, "false"):
		return false, nil
	case strings.EqualFold(v, "true"):
		return true, nil
	}
	return false, errorf(ErrInvalid, "%s %q: use \"true\" or \"false\"", AttrUsePodToken, textutil.Truncate(v, 32))
}

// A namespace is a DNS label (at most 63 bytes), a service account name a
// DNS subdomain (at most maxKubeName bytes, checked apart).
var (
	kubeNamespaceRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	kubeSubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// podToken is an exchanged token: its identity and when to forget it.
type podToken struct {
	fp  string
	exp time.Time
}

// podSession is the credential of one per-pod identity (role, subject,
// OIDC provider). It holds the session of the freshest token STS accepted
// for that identity, so refreshes keep working while kubelet rotates tokens.
type podSession struct {
	mu  sync.Mutex
	cur providers.CredentialsProvider
	exp time.Time // expiry of cur's token
	id  *Identity
}

func (s *podSession) GetCredentials() (*providers.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.GetCredentials()
}

func (s *podSession) GetProviderName() string { return "oidc_role_arn" }

type podTokens struct {
	mu      sync.Mutex
	byToken map[string]podToken // keyed by Fingerprint(token, role, provider)
	byFP    map[string]*podSession
	// onRefresh is Config.OnRefresh, for the sessions' identities.
	onRefresh func(Mode, error)
}

// podRRSA exchanges the pod's own token for its role. It never falls back
// to another identity: every failure fails the Mount.
func (r *Resolver) podRRSA(ctx context.Context, m MountInfo) (*Identity, error) {
	tok, exp, err := podServiceAccountToken(m)
	if err != nil {
		return nil, err
	}
	claims, err := jwtClaims(tok)
	if err != nil {
		return nil, err
	}
	// The token is not verified yet (STS does that): its subject is only
	// taken when its names are Kubernetes names, so every message and
	// session name below quotes at most 63+253 bytes of it.
	ns, sa, ok := strings.Cut(strings.TrimPrefix(claims.Sub, saSubjectPrefix), ":")
	if !strings.HasPrefix(claims.Sub, saSubjectPrefix) || !ok || !kubeNamespaceRe.MatchString(ns) || len(sa) > maxKubeName || !kubeSubdomainRe.MatchString(sa) {
		return nil, errorf(ErrUnauthenticated, "per-pod RRSA: the token's subject %q is not a service account (system:serviceaccount:<namespace>:<name>)", textutil.Clip(claims.Sub, 96))
	}
	if (m.PodNamespace != "" && m.PodNamespace != ns) || (m.ServiceAccount != "" && m.ServiceAccount != sa) {
		return nil, errorf(ErrDenied, "per-pod RRSA: the token belongs to %s/%s, not to the mounting pod's service account %s/%s", ns, sa, textutil.Clip(m.PodNamespace, maxKubeName), textutil.Clip(m.ServiceAccount, maxKubeName))
	}
	now := r.cfg.Now()
	if claims.Exp > 0 {
		exp = time.Unix(claims.Exp, 0)
	}
	if !exp.IsZero() && !now.Before(exp) {
		return nil, errorf(ErrUnauthenticated, "per-pod RRSA: the service-account token of %s/%s expired at %s; kubelet renews it, retry the mount", ns, sa, exp.UTC().Format(time.RFC3339))
	}
	if exp.IsZero() {
		exp = now.Add(10 * time.Minute)
	}

	role, from, err := r.podRole(ctx, m, ns, sa)
	if err != nil {
		return nil, err
	}
	oidc, err := r.oidcProviderARN()
	if err != nil {
		return nil, err
	}
	if oidc == "" {
		return nil, errorf(ErrInvalid, "per-pod RRSA: the provider does not know the cluster's OIDC provider: set %s (acs:ram::<account-id>:oidc-provider/ack-rrsa-<cluster-id>), or %s and %s", envName(envOIDCProviderARN), envName(envAccountID), envName(envClusterID))
	}
	reason := fmt.Sprintf("%s is \"true\": the token of service account %s/%s exchanged for %s (%s)", AttrUsePodToken, ns, sa, role, from)

	key := Fingerprint("pod-token", tok, strings.ToLower(role), strings.ToLower(oidc))
	if id := r.pods.lookup(key, now); id != nil {
		return id.with(ModePodRRSA, reason), nil
	}
	v, err, _ := r.exchanges.Do(key, func() (any, error) {
		if id := r.pods.lookup(key, r.cfg.Now()); id != nil {
			return id, nil
		}
		return r.exchange(key, tok, exp, role, oidc, claims.Sub, ns, sa)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Identity).with(ModePodRRSA, reason), nil
}

// exchange calls AssumeRoleWithOIDC with the pod's token. Only a token STS
// accepted is remembered, so a forged token never reaches a cached
// identity, however its claims read.
func (r *Resolver) exchange(key, tok string, exp time.Time, role, oidc, sub, ns, sa string) (*Identity, error) {
	p, err := providers.NewOIDCCredentialsProviderBuilder().
		WithOIDCToken(tok).WithRoleArn(role).WithOIDCProviderARN(oidc).
		WithRoleSessionName(podSessionName(ns, sa)).WithDurationSeconds(defaultSessionSeconds).
		WithSTSEndpoint(r.stsEndpoint()).WithHttpOptions(r.stsHTTP()).Build()
	if err != nil {
		return nil, errorf(ErrInvalid, "per-pod RRSA: %v", err)
	}
	if _, err := p.GetCredentials(); err != nil {
		return nil, upstreamError(fmt.Sprintf("per-pod RRSA: STS refused the token of %s/%s for %s (the role's trust policy must allow oidc:sub %s and the provider %s)", ns, sa, role, sub, oidc), err, tok)
	}
	fp := Fingerprint(string(ModePodRRSA), strings.ToLower(role), sub, strings.ToLower(oidc))
	return r.pods.store(key, fp, role, exp, p, r.cfg.Now()), nil
}

func (t *podTokens) lookup(key string, now time.Time) *Identity {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt, ok := t.byToken[key]
	if !ok {
		return nil
	}
	if !now.Before(pt.exp.Add(-tokenGrace)) {
		delete(t.byToken, key)
		return nil
	}
	return t.byFP[pt.fp].id
}

// store remembers an accepted token and makes its session the identity's
// current one when it is the freshest.
func (t *podTokens) store(key, fp, role string, exp time.Time, p providers.CredentialsProvider, now time.Time) *Identity {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, pt := range t.byToken { // exchanges are rare: one per pod token
		if !now.Before(pt.exp.Add(-tokenGrace)) {
			delete(t.byToken, k)
		}
	}
	for k := range t.byToken { // still full: forget any; it costs one exchange
		if len(t.byToken) < maxPodTokens {
			break
		}
		delete(t.byToken, k)
	}
	t.byToken[key] = podToken{fp: fp, exp: exp}
	s, ok := t.byFP[fp]
	if !ok {
		s = &podSession{cur: p, exp: exp}
		s.id = newIdentity(ModePodRRSA, fp, role, "", s, t.onRefresh)
		t.byFP[fp] = s
		return s.id
	}
	s.mu.Lock()
	if exp.After(s.exp) {
		s.cur, s.exp = p, exp
	}
	s.mu.Unlock()
	return s.id
}

// podServiceAccountToken finds the pod's sts.aliyuncs.com token: in the
// secrets first (drivers with serviceAccountTokenInSecrets), then in the
// attributes.
func podServiceAccountToken(m MountInfo) (string, time.Time, error) {
	raw, where := strings.TrimSpace(m.Secrets[AttrServiceAccountTokens]), "secrets"
	if raw == "" {
		raw, where = strings.TrimSpace(m.Attributes[AttrServiceAccountTokens]), "attributes"
	}
	if raw == "" {
		return "", time.Time{}, errorf(ErrUnauthenticated, "per-pod RRSA: %s is \"true\" but the driver passed no service-account token (%s); the CSIDriver needs tokenRequests [{audience: %s}] (chart value secrets-store-csi-driver.tokenRequests). The mount fails rather than use another identity", AttrUsePodToken, AttrServiceAccountTokens, STSAudience)
	}
	var tokens map[string]struct {
		Token               string `json:"token"`
		ExpirationTimestamp string `json:"expirationTimestamp"`
	}
	if err := json.Unmarshal([]byte(raw), &tokens); err != nil {
		return "", time.Time{}, errorf(ErrInvalid, "per-pod RRSA: %s in the %s is not a JSON object of audience -> {token, expirationTimestamp}", AttrServiceAccountTokens, where)
	}
	t, ok := tokens[STSAudience]
	if !ok || strings.TrimSpace(t.Token) == "" {
		auds := make([]string, 0, len(tokens))
		for a := range tokens {
			auds = append(auds, textutil.Truncate(a, 64))
		}
		sort.Strings(auds)
		return "", time.Time{}, errorf(ErrUnauthenticated, "per-pod RRSA: the driver passed service-account tokens for %v but none for audience %s; add {audience: %s} to the CSIDriver's tokenRequests. The mount fails rather than use another identity", auds, STSAudience, STSAudience)
	}
	var exp time.Time
	if t.ExpirationTimestamp != "" {
		exp, _ = time.Parse(time.RFC3339, t.ExpirationTimestamp)
	}
	return strings.TrimSpace(t.Token), exp, nil
}

type claims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
}

// jwtClaims reads sub and exp from a JWT payload without verifying it:
// they only pick the cache identity and catch obvious mistakes early; STS
// verifies the token.
func jwtClaims(tok string) (claims, error) {
	parts := strings.Split(tok, ".")
	bad := errorf(ErrInvalid, "per-pod RRSA: the service-account token is not a JWT")
	if len(parts) != 3 {
		return claims{}, bad
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}, bad
	}
	var c claims
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return claims{}, bad
	}
	if v, ok := raw["sub"]; ok {
		if err := json.Unmarshal(v, &c.Sub); err != nil {
			return claims{}, bad
		}
	}
	if v, ok := raw["exp"]; ok {
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return claims{}, bad
		}
		c.Exp = int64(f)
	}
	return c, nil
}

// podRole is the role of a pod: the roleArn attribute, else its service
// account's annotation.
func (r *Resolver) podRole(ctx context.Context, m MountInfo, ns, sa string) (role, from string, err error) {
	if v := strings.TrimSpace(m.Attributes[AttrRoleArn]); v != "" {
		if !aliyun.ValidRoleArn(v) {
			return "", "", errorf(ErrInvalid, "per-pod RRSA: %s %q is not a RAM role ARN; use acs:ram::<account-id>:role/<role-name>", AttrRoleArn, textutil.Truncate(v, 96))
		}
		return v, "from the " + AttrRoleArn + " parameter", nil
	}
	if r.cfg.ServiceAccounts == nil {
		return "", "", errorf(ErrInvalid, "per-pod RRSA: the class has no %s parameter and the provider cannot read ServiceAccounts (it runs outside a cluster or without a Kubernetes client); set %s in the SecretProviderClass", AttrRoleArn, AttrRoleArn)
	}
	v, err := r.cfg.ServiceAccounts.RoleARN(ctx, ns, sa)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return "", "", ae
		}
		return "", "", &Error{Kind: ErrUnavailable, Message: fmt.Sprintf("per-pod RRSA: reading service account %s/%s: %s", ns, sa, textutil.Truncate(err.Error(), 200)), Err: err}
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", "", errorf(ErrInvalid, "per-pod RRSA: service account %s/%s has no annotation %s and the class has no %s parameter; annotate the service account with its RAM role ARN", ns, sa, RoleAnnotation, AttrRoleArn)
	}
	if !aliyun.ValidRoleArn(v) {
		return "", "", errorf(ErrInvalid, "per-pod RRSA: the annotation %s of service account %s/%s, %q, is not a RAM role ARN", RoleAnnotation, ns, sa, textutil.Truncate(v, 96))
	}
	return v, "from the annotation " + RoleAnnotation + " of the service account", nil
}

// podSessionName is csi.<namespace>.<serviceaccount>, within STS's rules
// (2-64 of [A-Za-z0-9_.@-]), so ActionTrail shows which pod read what.
func podSessionName(ns, sa string) string {
	b := []byte("csi." + ns + "." + sa)
	for i, c := range b {
		if !sessionNameByte(c) {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

func sessionNameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '_' || c == '.' || c == '@' || c == '-'
}
