package emulator

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"time"
)

// OIDCProvider is a RAM OIDC identity provider. When the OIDCProviderArn of
// an AssumeRoleWithOIDC call names a registered provider, the token must be
// a JWS signed (RS256 or ES256) by a key of the provider's JWKS, with iss
// equal to Issuer, exp in the future, nbf (if any) in the past and aud
// containing sts.aliyuncs.com. Without a registered provider for the ARN,
// tokens are decoded without checking the signature (see FakeOIDCToken).
type OIDCProvider struct {
	// ARN is acs:ram::<account>:oidc-provider/<name>.
	ARN string `json:"arn"`
	// Issuer must equal the token's iss claim exactly, e.g. the
	// kube-apiserver's --service-account-issuer.
	Issuer string `json:"issuer"`
	// JWKS is the issuer's JSON Web Key Set, e.g. the body of the
	// kube-apiserver's /openid/v1/jwks.
	JWKS JWKSText `json:"jwks"`
}

// JWKSText is a JSON Web Key Set held as JSON text. From JSON or YAML it
// reads either a string holding the JSON, or the key set object itself; it
// always writes a string.
type JWKSText string

// UnmarshalJSON accepts a JSON string or a JSON object.
func (j *JWKSText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*j = JWKSText(s)
	case len(b) > 0 && b[0] == '{':
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return err
		}
		*j = JWKSText(buf.String())
	case bytes.Equal(b, []byte("null")):
		*j = ""
	default:
		return errors.New(`jwks must be the key set as JSON text or as an object {"keys":[...]}`)
	}
	return nil
}

// oidcAudience is the audience every verified token must carry.
const oidcAudience = "sts.aliyuncs.com"

// oidcClockLeeway is how far in the future a token's nbf may be.
const oidcClockLeeway = 30 * time.Second

// oidcProvider is a registered provider with its parsed keys.
type oidcProvider struct {
	arn, issuer string
	jwks        string
	keys        []jwk
}

// jwk is one usable verification key of a JWKS.
type jwk struct {
	kid string
	alg string // the JWK's alg member; "" means any alg its type allows
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
}

// canVerify reports whether the key may verify a JWS with that alg.
func (k jwk) canVerify(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256":
		return k.rsa != nil
	case "ES256":
		return k.ec != nil
	}
	return false
}

func (k jwk) verify(alg string, digest, sig []byte) bool {
	switch {
	case alg == "RS256" && k.rsa != nil:
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, digest, sig) == nil
	case alg == "ES256" && k.ec != nil:
		if len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ec, digest, r, s)
	}
	return false
}

func (p *oidcProvider) kids() []string {
	out := []string{}
	for _, k := range p.keys {
		if k.kid != "" {
			out = append(out, k.kid)
		}
	}
	sort.Strings(out)
	return out
}

// SetOIDCProvider registers (or replaces) the OIDC provider arn: from now
// on AssumeRoleWithOIDC calls with that OIDCProviderArn must present a
// token signed by a key of jwks (a JSON Web Key Set, e.g. the body of
// kube-apiserver's /openid/v1/jwks) whose iss is issuer. RSA keys and EC
// P-256 keys are used; keys of other types, and keys whose use is not
// "sig", are ignored.
// A provider already registered under arn (compared case-insensitively) is
// replaced; on error nothing changes.
func (e *Emulator) SetOIDCProvider(arn, issuer string, jwks []byte) error {
	_, err := e.putOIDCProvider(arn, issuer, jwks)
	return err
}

// putOIDCProvider is SetOIDCProvider that also reports whether it replaced
// a provider.
func (e *Emulator) putOIDCProvider(arn, issuer string, jwks []byte) (replaced bool, err error) {
	p, err := newOIDCProvider(arn, issuer, jwks)
	if err != nil {
		return false, fmt.Errorf("emulator: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := strings.ToLower(arn)
	_, replaced = e.oidcProviders[k]
	e.oidcProviders[k] = p
	return replaced, nil
}

// RemoveOIDCProvider unregisters the OIDC provider arn, so that tokens for
// it are again decoded without verification. It reports whether the
// provider was registered.
func (e *Emulator) RemoveOIDCProvider(arn string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := strings.ToLower(arn)
	_, ok := e.oidcProviders[k]
	delete(e.oidcProviders, k)
	return ok
}

// OIDCProviders returns the registered OIDC providers, sorted by ARN.
func (e *Emulator) OIDCProviders() []OIDCProvider {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]OIDCProvider, 0, len(e.oidcProviders))
	for _, p := range e.oidcProviders {
		out = append(out, OIDCProvider{ARN: p.arn, Issuer: p.issuer, JWKS: JWKSText(p.jwks)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN < out[j].ARN })
	return out
}

// oidcProviderSummaries lists the providers for the control API.
func (e *Emulator) oidcProviderSummaries() []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]map[string]any, 0, len(e.oidcProviders))
	for _, p := range e.oidcProviders {
		out = append(out, map[string]any{"arn": p.arn, "issuer": p.issuer, "kids": p.kids(), "keys": len(p.keys)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["arn"].(string) < out[j]["arn"].(string) })
	return out
}

func newOIDCProvider(arn, issuer string, jwks []byte) (*oidcProvider, error) {
	if err := parseOIDCProviderARN(arn); err != nil {
		return nil, err
	}
	if issuer == "" {
		return nil, errors.New("OIDC provider issuer is required")
	}
	keys, err := parseJWKS(jwks)
	if err != nil {
		return nil, err
	}
	return &oidcProvider{arn: arn, issuer: issuer, jwks: string(jwks), keys: keys}, nil
}

// parseOIDCProviderARN checks acs:ram::<account>:oidc-provider/<name>.
func parseOIDCProviderARN(arn string) error {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) != 5 || parts[0] != "acs" || parts[1] != "ram" || parts[3] == "" ||
		!strings.HasPrefix(parts[4], "oidc-provider/") || parts[4] == "oidc-provider/" {
		return fmt.Errorf("OIDC provider ARN %q must look like acs:ram::<account>:oidc-provider/<name>", arn)
	}
	return nil
}

// parseJWKS reads the RSA and EC P-256 signing keys of a JWKS (RFC 7517).
func parseJWKS(data []byte) ([]jwk, error) {
	var doc struct {
		Keys *[]struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
			// YAML 1.1 reads the unquoted keys n and y as booleans, so a
			// key set written as a YAML mapping arrives with "false" for
			// n and "true" for y. No JWK member has those names.
			YAMLn string `json:"false"`
			YAMLy string `json:"true"`
		} `json:"keys"`
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("jwks is required")
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks is not a JSON key set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`jwks has no "keys" array (want the key set, e.g. /openid/v1/jwks, not the discovery document)`)
	}
	var out []jwk
	for i, k := range *doc.Keys {
		where := fmt.Sprintf("jwks keys[%d] (kid %q)", i, k.Kid)
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		k.N, k.Y = firstNonEmpty(k.N, k.YAMLn), firstNonEmpty(k.Y, k.YAMLy)
		switch k.Kty {
		case "RSA":
			n, err := b64url(k.N)
			if err != nil || len(n) == 0 {
				return nil, fmt.Errorf("%s: n must be non-empty base64url", where)
			}
			eb, err := b64url(k.E)
			if err != nil || len(eb) == 0 || len(eb) > 4 {
				return nil, fmt.Errorf("%s: e must be base64url of at most 4 bytes", where)
			}
			exp := new(big.Int).SetBytes(eb)
			if exp.Int64() < 3 || exp.Int64() > 1<<31-1 || exp.Bit(0) == 0 {
				return nil, fmt.Errorf("%s: e must be an odd number of at least 3", where)
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
			if pub.N.BitLen() < 1024 {
				return nil, fmt.Errorf("%s: RSA modulus of %d bits is too small", where, pub.N.BitLen())
			}
			out = append(out, jwk{kid: k.Kid, alg: k.Alg, rsa: pub})
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, errX := b64url(k.X)
			y, errY := b64url(k.Y)
			if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("%s: x and y must be base64url of 32 bytes each", where)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			out = append(out, jwk{kid: k.Kid, alg: k.Alg, ec: pub})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("jwks has no RSA or EC P-256 signing key")
	}
	return out, nil
}

func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// badOIDCToken is the STS answer to a token that fails verification. The
// message says which check failed and never contains the token.
func badOIDCToken(format string, a ...any) *apiError {
	return errf(http.StatusBadRequest, "InvalidParameter.OIDCToken", format, a...)
}

// verify checks token against the provider and returns its claims.
func (p *oidcProvider) verify(token string, now time.Time) (jwtClaims, *apiError) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, badOIDCToken("The OIDC token is malformed: not a JWS (want three dot-separated base64url parts).")
	}
	var hdr struct {
		Alg  string          `json:"alg"`
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
	}
	hb, err := b64url(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return nil, badOIDCToken("The OIDC token is malformed: the JWS header is not base64url JSON.")
	}
	switch {
	case strings.EqualFold(hdr.Alg, "none"):
		return nil, badOIDCToken("The OIDC token is refused: alg none (unsigned) is not accepted; OIDC provider %s requires RS256 or ES256.", p.arn)
	case hdr.Alg != "RS256" && hdr.Alg != "ES256":
		return nil, badOIDCToken("The OIDC token is refused: alg %q is not supported; OIDC provider %s requires RS256 or ES256.", clip(hdr.Alg), p.arn)
	case len(hdr.Crit) > 0:
		return nil, badOIDCToken("The OIDC token is refused: the crit header parameter is not supported.")
	}
	sig, err := b64url(parts[2])
	if err != nil {
		return nil, badOIDCToken("The OIDC token is malformed: the signature is not base64url.")
	}

	var candidates []jwk
	keyName := "any key"
	if hdr.Kid != "" {
		keyName = fmt.Sprintf("key %q", clip(hdr.Kid))
		found := false
		for _, k := range p.keys {
			if k.kid == hdr.Kid {
				found = true
				if k.canVerify(hdr.Alg) {
					candidates = append(candidates, k)
				}
			}
		}
		if !found {
			return nil, badOIDCToken("The OIDC token has an unknown kid %q: OIDC provider %s has keys %s.", clip(hdr.Kid), p.arn, quoteList(p.kids()))
		}
		if len(candidates) == 0 {
			return nil, badOIDCToken("The OIDC token is refused: key %q of OIDC provider %s cannot verify alg %s.", clip(hdr.Kid), p.arn, hdr.Alg)
		}
	} else {
		for _, k := range p.keys {
			if k.canVerify(hdr.Alg) {
				candidates = append(candidates, k)
			}
		}
		if len(candidates) == 0 {
			return nil, badOIDCToken("The OIDC token is refused: OIDC provider %s has no key for alg %s.", p.arn, hdr.Alg)
		}
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	verified := false
	for _, k := range candidates {
		if k.verify(hdr.Alg, digest[:], sig) {
			verified = true
			break
		}
	}
	if !verified {
		return nil, badOIDCToken("The OIDC token signature is invalid: it does not verify with %s of OIDC provider %s.", keyName, p.arn)
	}

	pb, err := b64url(parts[1])
	var claims jwtClaims
	if err != nil || json.Unmarshal(pb, &claims) != nil || claims == nil {
		return nil, badOIDCToken("The OIDC token is malformed: the payload is not base64url JSON.")
	}
	if iss := claims.string("iss"); iss != p.issuer {
		return nil, badOIDCToken("The OIDC token issuer does not match: token iss is %q, OIDC provider %s has issuer %q.", clip(iss), p.arn, p.issuer)
	}
	exp, ok := claims.number("exp")
	if !ok {
		return nil, badOIDCToken("The OIDC token has no numeric exp claim.")
	}
	if now.Unix() > int64(exp) {
		return nil, badOIDCToken("The OIDC token is expired: exp %s is before now %s.", unixTime(exp), now.UTC().Format(isoTime))
	}
	if _, present := claims["nbf"]; present {
		nbf, ok := claims.number("nbf")
		if !ok {
			return nil, badOIDCToken("The OIDC token has a non-numeric nbf claim.")
		}
		if now.Add(oidcClockLeeway).Unix() < int64(nbf) {
			return nil, badOIDCToken("The OIDC token is not yet valid: nbf %s is after now %s (leeway %s).", unixTime(nbf), now.UTC().Format(isoTime), oidcClockLeeway)
		}
	}
	aud := claims.strings("aud")
	hasAud := false
	for _, a := range aud {
		if a == oidcAudience {
			hasAud = true
		}
	}
	if !hasAud {
		return nil, badOIDCToken("The OIDC token audience is wrong: aud %s does not contain %q.", quoteList(aud), oidcAudience)
	}
	return claims, nil
}

func unixTime(sec float64) string { return time.Unix(int64(sec), 0).UTC().Format(isoTime) }

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", clip(s))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// clip shortens a claim or header value quoted in an error message.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
