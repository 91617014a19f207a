package emulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// session is an issued STS credential. It acts as its role's principal.
type session struct {
	akid, secret, token string
	principal           string // the role ARN
	roleARN             string
	sessionName         string
	source              string // assume_role | oidc | imds | uri
	baseAKID            string // caller of AssumeRole, if any
	issued, expires     time.Time
}

// roleState is a configured RAM role.
type roleState struct {
	Role
	account, name string
}

const (
	defaultSessionTTL  = time.Hour
	defaultMaxDuration = time.Hour
	minSessionDuration = 900 * time.Second
	maxStoredSessions  = 4096
)

var roleSessionNameRE = regexp.MustCompile(`^[\w.@-]{2,64}$`)

// AddRole adds (or replaces) a RAM role.
func (e *Emulator) AddRole(r Role) error {
	account, name, err := parseRoleARN(r.ARN)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.roles[strings.ToLower(r.ARN)] = &roleState{Role: r, account: account, name: name}
	return nil
}

// SetSessionTTL changes the lifetime cap of sessions issued from now on.
// Under 180s, credentials-go refreshes before every API call.
func (e *Emulator) SetSessionTTL(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d <= 0 {
		d = defaultSessionTTL
	}
	e.sessionTTL = d
}

// ExpireSessions makes every STS session issued so far expired: calls
// signed with them get InvalidSecurityToken.Expired. Clients are not told;
// credentials-go keeps using a cached session until its own Expiration.
func (e *Emulator) ExpireSessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for _, s := range e.sessions {
		if s.expires.After(past) {
			s.expires = past
		}
	}
	return len(e.sessions)
}

// issueSession mints an STS.<random> credential. e.mu must be held.
func (e *Emulator) issueSession(roleARN, sessionName, source, baseAKID string, requested time.Duration) *session {
	ttl := e.sessionTTL
	if requested > 0 && requested < ttl {
		ttl = requested
	}
	now := time.Now()
	s := &session{
		akid:        "STS." + randomString(24),
		secret:      randomString(44),
		token:       "CAIS" + randomString(156),
		principal:   roleARN,
		roleARN:     roleARN,
		sessionName: sessionName,
		source:      source,
		baseAKID:    baseAKID,
		issued:      now,
		expires:     now.Add(ttl),
	}
	e.pruneSessions(now)
	e.sessions[s.akid] = s
	return s
}

// pruneSessions keeps the session table bounded; recently expired
// sessions are kept so that their use still reports "Expired".
func (e *Emulator) pruneSessions(now time.Time) {
	if len(e.sessions) < maxStoredSessions {
		return
	}
	for k, s := range e.sessions {
		if now.Sub(s.expires) > time.Hour {
			delete(e.sessions, k)
		}
	}
	for k := range e.sessions {
		if len(e.sessions) < maxStoredSessions {
			break
		}
		delete(e.sessions, k)
	}
}

// credentialsJSON is the Credentials object of STS and the metadata service.
// Expiration is always present: credentials-go dereferences it unchecked.
func (s *session) credentialsJSON() map[string]any {
	return map[string]any{
		"AccessKeyId":     s.akid,
		"AccessKeySecret": s.secret,
		"SecurityToken":   s.token,
		"Expiration":      s.expires.UTC().Format(isoTime),
	}
}

func (e *Emulator) lookupRole(arn string) (*roleState, *apiError) {
	r, ok := e.roles[strings.ToLower(arn)]
	if !ok {
		return nil, errf(http.StatusNotFound, "EntityNotExist.Role", "The specified Role not exists: %s", arn)
	}
	return r, nil
}

// sessionParams reads RoleSessionName and DurationSeconds.
func sessionParams(c *call, r *roleState, required bool) (string, time.Duration, *apiError) {
	name := c.params.Get("RoleSessionName")
	if name == "" && !required {
		name = "emulator-" + strconv.FormatInt(time.Now().UnixNano()/1000, 10)
	}
	if name == "" {
		return "", 0, errf(http.StatusBadRequest, "MissingRoleSessionName", "RoleSessionName is mandatory for this action.")
	}
	if !roleSessionNameRE.MatchString(name) {
		return "", 0, errf(http.StatusBadRequest, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName %q is invalid: 2-64 characters of letters, digits, '.', '@', '-' and '_'.", name)
	}
	dur := defaultSessionTTL
	if s := c.params.Get("DurationSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", 0, errf(http.StatusBadRequest, "InvalidParameter.DurationSeconds", "The parameter DurationSeconds %q is not a number.", s)
		}
		dur = time.Duration(n) * time.Second
	}
	maxDur := r.MaxSessionDuration.Duration
	if maxDur == 0 {
		maxDur = defaultMaxDuration
	}
	if dur < minSessionDuration || dur > maxDur {
		return "", 0, errf(http.StatusBadRequest, "InvalidParameter.DurationSeconds", "The DurationSeconds must be between %d and %d seconds.", int(minSessionDuration.Seconds()), int(maxDur.Seconds()))
	}
	return name, dur, nil
}

func (e *Emulator) stsSuccess(c *call, r *roleState, s *session, extra map[string]any) {
	body := map[string]any{
		"RequestId": c.requestID,
		"AssumedRoleUser": map[string]any{
			"Arn":           "acs:ram::" + r.account + ":role/" + strings.ToLower(r.name) + "/" + s.sessionName,
			"AssumedRoleId": randomDigits(18) + ":" + s.sessionName,
		},
		"Credentials": s.credentialsJSON(),
	}
	for k, v := range extra {
		body[k] = v
	}
	c.writeJSON(http.StatusOK, body)
}

// stsAssumeRole implements STS AssumeRole. The caller (an AccessKey, or a
// session of another role) must be trusted by the role.
func (e *Emulator) stsAssumeRole(c *call, id *identity) {
	r, sess, apiErr := e.assumeRole(c, id)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	e.stsSuccess(c, r, sess, nil)
}

func (e *Emulator) assumeRole(c *call, id *identity) (*roleState, *session, *apiError) {
	arn := c.params.Get("RoleArn")
	if arn == "" {
		return nil, nil, errf(http.StatusBadRequest, "MissingRoleArn", "RoleArn is mandatory for this action.")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, apiErr := e.lookupRole(arn)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	name, dur, apiErr := sessionParams(c, r, true)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	trusted := false
	if id.Session != nil {
		trusted = globAny(r.TrustedRoles, id.Session.roleARN)
	} else {
		trusted = globAny(r.TrustedPrincipals, id.Principal) || globAny(r.TrustedPrincipals, id.AccessKeyID)
	}
	if !trusted {
		return nil, nil, errf(http.StatusForbidden, "NoPermission", "You are not authorized to do this action. You should be authorized by RAM. (%s is not trusted by %s)", id.Principal, r.ARN)
	}
	if r.ExternalID != "" && c.params.Get("ExternalId") != r.ExternalID {
		return nil, nil, errf(http.StatusForbidden, "NoPermission", "You are not authorized to do this action: ExternalId does not match the role's trust policy.")
	}
	return r, e.issueSession(r.ARN, name, "assume_role", id.AccessKeyID, dur), nil
}

// stsAssumeRoleWithOIDC implements STS AssumeRoleWithOIDC. When the
// OIDCProviderArn is a registered provider (SetOIDCProvider), the token is
// verified first (signature, iss, exp, nbf, aud); otherwise its claims are
// decoded without checking the signature. Then the role must name the
// provider, and either list the exact token or trust the token's sub claim.
func (e *Emulator) stsAssumeRoleWithOIDC(c *call) {
	r, sess, extra, apiErr := e.assumeRoleWithOIDC(c)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	e.stsSuccess(c, r, sess, extra)
}

func (e *Emulator) assumeRoleWithOIDC(c *call) (*roleState, *session, map[string]any, *apiError) {
	arn, providerARN := c.params.Get("RoleArn"), c.params.Get("OIDCProviderArn")
	token := strings.TrimSpace(c.params.Get("OIDCToken"))
	for _, p := range []struct{ name, v string }{{"RoleArn", arn}, {"OIDCProviderArn", providerARN}, {"OIDCToken", token}} {
		if p.v == "" {
			return nil, nil, nil, errf(http.StatusBadRequest, "MissingParameter", "The parameter %s needed but no provided.", p.name)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, apiErr := e.lookupRole(arn)
	if apiErr != nil {
		return nil, nil, nil, apiErr
	}
	var claims jwtClaims
	var decodeErr error
	if p := e.oidcProviders[strings.ToLower(providerARN)]; p != nil {
		if claims, apiErr = p.verify(token, time.Now()); apiErr != nil {
			return nil, nil, nil, apiErr
		}
	} else {
		claims, decodeErr = decodeJWTClaims(token)
	}
	if r.OIDCProviderARN == "" || !strings.EqualFold(r.OIDCProviderARN, providerARN) {
		return nil, nil, nil, errf(http.StatusForbidden, "NoPermission", "You are not authorized to do this action: role %s does not trust OIDC provider %s.", r.ARN, providerARN)
	}
	exact := false
	for _, t := range r.OIDCTokens {
		if t == token {
			exact = true
		}
	}
	if !exact {
		if len(r.OIDCTokens) > 0 && len(r.OIDCSubjects) == 0 {
			return nil, nil, nil, errf(http.StatusBadRequest, "InvalidParameter.OIDCToken", "The OIDC token is not accepted by role %s.", r.ARN)
		}
		if decodeErr != nil {
			return nil, nil, nil, errf(http.StatusBadRequest, "InvalidParameter.OIDCToken", "The OIDC token is malformed: %v.", decodeErr)
		}
		if exp, ok := claims.number("exp"); ok && time.Now().Unix() > int64(exp) {
			return nil, nil, nil, errf(http.StatusBadRequest, "InvalidParameter.OIDCToken", "The OIDC token is expired.")
		}
		sub := claims.string("sub")
		if len(r.OIDCSubjects) > 0 && !globAny(r.OIDCSubjects, sub) {
			return nil, nil, nil, errf(http.StatusForbidden, "NoPermission", "You are not authorized to do this action: subject %q is not trusted by role %s.", sub, r.ARN)
		}
	}
	name, dur, apiErr := sessionParams(c, r, false)
	if apiErr != nil {
		return nil, nil, nil, apiErr
	}
	s := e.issueSession(r.ARN, name, "oidc", "", dur)
	info := map[string]any{
		"Subject":          claims.string("sub"),
		"Issuer":           claims.string("iss"),
		"ClientIds":        strings.Join(claims.strings("aud"), ","),
		"VerificationInfo": "Success",
	}
	if exp, ok := claims.number("exp"); ok {
		info["ExpirationTime"] = time.Unix(int64(exp), 0).UTC().Format(isoTime)
	}
	if iat, ok := claims.number("iat"); ok {
		info["IssuanceTime"] = time.Unix(int64(iat), 0).UTC().Format(isoTime)
	}
	return r, s, map[string]any{"OIDCTokenInfo": info}, nil
}

type jwtClaims map[string]any

func (c jwtClaims) string(k string) string {
	s, _ := c[k].(string)
	return s
}

func (c jwtClaims) number(k string) (float64, bool) {
	n, ok := c[k].(float64)
	return n, ok
}

func (c jwtClaims) strings(k string) []string {
	switch v := c[k].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// decodeJWTClaims decodes a JWT payload without checking the signature.
func decodeJWTClaims(token string) (jwtClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jwtClaims{}, errors.New("not a JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return jwtClaims{}, fmt.Errorf("payload is not base64url: %w", err)
	}
	var claims jwtClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return jwtClaims{}, fmt.Errorf("payload is not JSON: %w", err)
	}
	return claims, nil
}

// FakeOIDCToken builds an unsigned JWT with the given subject, issuer and
// lifetime, shaped like a Kubernetes service-account token. The emulator
// decodes it without checking the signature, unless the provider ARN it is
// presented with is registered (SetOIDCProvider): then it is refused.
func FakeOIDCToken(subject, issuer string, ttl time.Duration) string {
	if issuer == "" {
		issuer = "https://oidc-ack-emulator.aliyuncs.com/cdemo"
	}
	now := time.Now()
	header, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "emulator", "typ": "JWT"})
	payload, _ := json.Marshal(map[string]any{
		"sub": subject, "iss": issuer, "aud": []string{"sts.aliyuncs.com"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte("emulator-unsigned"))
}

func randomDigits(n int) string {
	b := []byte(randomString(n))
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}
