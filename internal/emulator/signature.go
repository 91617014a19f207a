package emulator

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // STS v1 (RPC) signatures are HMAC-SHA1: the protocol credentials-go signs AssumeRole with
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// identity is an authenticated caller.
type identity struct {
	AccessKeyID string
	Principal   string // AccessKey principal, or role ARN for STS sessions
	Session     *session
}

// accessKeyState is a long-lived AccessKey.
type accessKeyState struct {
	id, secret, principal string
	disabled              bool
}

// AddAccessKey adds (or replaces) a long-lived AccessKey. An empty
// principal means the id itself.
func (e *Emulator) AddAccessKey(id, secret, principal string) {
	if principal == "" {
		principal = id
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys[id] = &accessKeyState{id: id, secret: secret, principal: principal}
}

// SetAccessKeyDisabled disables or re-enables an AccessKey; calls signed
// with a disabled key get 403 Forbidden.AccessKeyDisabled.
func (e *Emulator) SetAccessKeyDisabled(id string, disabled bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.keys[id]
	if ok {
		k.disabled = disabled
	}
	return ok
}

// authenticate verifies the request signature: ACS3-HMAC-SHA256 when an
// Authorization header is present, v1 HMAC-SHA1 when a Signature parameter
// is. It fills the request record whatever the result.
func (e *Emulator) authenticate(c *call) (*identity, *apiError) {
	if c.r.Header.Get("Authorization") != "" {
		c.rec.Auth = "acs3"
		return e.verifyACS3(c)
	}
	if c.params.Get("Signature") != "" {
		c.rec.Auth = "v1"
		return e.verifyV1(c)
	}
	c.rec.Auth = "none"
	return nil, errf(http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to Aliyun standards: no Authorization header and no Signature parameter.")
}

// lookupCredential finds the secret for an AccessKeyId and checks the
// security token rules. It returns the identity even on some errors so the
// principal can be recorded.
func (e *Emulator) lookupCredential(akid, token string) (secret string, id *identity, err *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if strings.HasPrefix(akid, "STS.") {
		s, ok := e.sessions[akid]
		if !ok {
			return "", nil, errf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
		}
		id = &identity{AccessKeyID: akid, Principal: s.principal, Session: s}
		if token == "" {
			return "", id, errf(http.StatusBadRequest, "MissingSecurityToken", "SecurityToken is mandatory for this action.")
		}
		if !hmac.Equal([]byte(token), []byte(s.token)) {
			return "", id, errf(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "The security token you provided does not match your access key.")
		}
		return s.secret, id, nil
	}
	k, ok := e.keys[akid]
	if !ok {
		return "", nil, errf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	id = &identity{AccessKeyID: akid, Principal: k.principal}
	if token != "" {
		return "", id, errf(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "The security token you provided does not match your access key.")
	}
	return k.secret, id, nil
}

// afterSignature applies the checks that only make sense once the
// signature is known to be good: disabled keys, expired sessions, replays.
func (e *Emulator) afterSignature(id *identity, nonce string) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if id.Session != nil {
		if !now.Before(id.Session.expires) {
			return errf(http.StatusBadRequest, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
		}
	} else if k := e.keys[id.AccessKeyID]; k != nil && k.disabled {
		return errf(http.StatusForbidden, "Forbidden.AccessKeyDisabled", "The Access Key is disabled.")
	}
	if !e.opts.DisableNonceCheck && nonce != "" {
		key := id.AccessKeyID + "\x00" + nonce
		if t, seen := e.nonces[key]; seen && now.Sub(t) < e.nonceWindow {
			return errf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
		}
		if len(e.nonces) > 100000 {
			for k, t := range e.nonces {
				if now.Sub(t) >= e.nonceWindow {
					delete(e.nonces, k)
				}
			}
		}
		e.nonces[key] = now
	}
	return nil
}

func (e *Emulator) checkTimestamp(value, layout string) *apiError {
	if e.opts.DisableTimestampCheck || value == "" {
		return nil
	}
	t, err := time.Parse(layout, value)
	if err != nil {
		return errf(http.StatusBadRequest, "IllegalTimestamp", "The input parameter Timestamp %q does not match the expected format %s.", value, layout)
	}
	if d := time.Since(t); d > e.clockSkewAllowed || d < -e.clockSkewAllowed {
		return errf(http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	}
	return nil
}

const acs3Algorithm = "ACS3-HMAC-SHA256"

// verifyACS3 checks an ACS3-HMAC-SHA256 Authorization header as described
// in docs/emulator.md (Signatures).
func (e *Emulator) verifyACS3(c *call) (*identity, *apiError) {
	auth := c.r.Header.Get("Authorization")
	algo, rest, _ := strings.Cut(auth, " ")
	if algo != acs3Algorithm {
		return nil, errf(http.StatusBadRequest, "IncompleteSignature", "Unsupported signature algorithm %q; the emulator verifies %s.", algo, acs3Algorithm)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			fields[k] = v
		}
	}
	akid, signedHeaders, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if akid == "" || signedHeaders == "" || signature == "" {
		return nil, errf(http.StatusBadRequest, "IncompleteSignature", "The Authorization header must carry Credential, SignedHeaders and Signature.")
	}
	token := c.r.Header.Get("x-acs-security-token")
	c.rec.AccessKeyID = akid
	c.rec.SecurityToken = token != ""
	c.rec.Nonce = c.r.Header.Get("x-acs-signature-nonce")

	secret, id, err := e.lookupCredential(akid, token)
	if id != nil {
		c.principal = id.Principal
	}
	if err != nil {
		return id, err
	}
	if hdr := c.r.Header.Get("x-acs-accesskey-id"); hdr != "" && hdr != akid {
		return id, errf(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "x-acs-accesskey-id does not match the Credential of the Authorization header.")
	}
	if err := e.checkTimestamp(c.r.Header.Get("x-acs-date"), "2006-01-02T15:04:05Z"); err != nil {
		return id, err
	}
	sum := sha256.Sum256(c.body)
	payloadHash := hex.EncodeToString(sum[:])
	if got := c.r.Header.Get("x-acs-content-sha256"); got != payloadHash {
		return id, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the SHA-256 of the request body.")
	}
	expected := acs3Signature(c.r, signedHeaders, payloadHash, secret)
	if !hmac.Equal([]byte(expected), []byte(strings.ToLower(signature))) {
		return id, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
	}
	c.rec.SignatureValid = true
	if err := e.afterSignature(id, c.rec.Nonce); err != nil {
		return id, err
	}
	return id, nil
}

// acs3Signature computes the hex signature the SDK should have sent.
func acs3Signature(r *http.Request, signedHeaders, payloadHash, secret string) string {
	canonical := r.Method + "\n" +
		acs3Escape(firstNonEmpty(r.URL.Path, "/")) + "\n" +
		acs3CanonicalQuery(r.URL.RawQuery) + "\n" +
		acs3CanonicalHeaders(r, signedHeaders) + "\n" +
		signedHeaders + "\n" +
		payloadHash
	h := sha256.Sum256([]byte(canonical))
	stringToSign := acs3Algorithm + "\n" + hex.EncodeToString(h[:])
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(stringToSign))
	return hex.EncodeToString(mac.Sum(nil))
}

func acs3Escape(s string) string {
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(s)
}

// acs3CanonicalQuery sorts keys bytewise and escapes values, not keys.
func acs3CanonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := ""
		if vs := q[k]; len(vs) > 0 {
			v = vs[0]
		}
		if v == "" {
			parts = append(parts, k+"=")
		} else {
			parts = append(parts, k+"="+url.QueryEscape(v))
		}
	}
	return acs3Escape(strings.Join(parts, "&"))
}

// acs3CanonicalHeaders renders "name:value\n" for each signed header, in
// the order given; host is the Host the server received.
func acs3CanonicalHeaders(r *http.Request, signedHeaders string) string {
	var b strings.Builder
	for _, name := range strings.Split(signedHeaders, ";") {
		var value string
		if name == "host" {
			value = strings.TrimSpace(r.Host)
		} else {
			vals := r.Header.Values(name)
			trimmed := make([]string, len(vals))
			for i, v := range vals {
				trimmed[i] = strings.TrimSpace(v)
			}
			sort.Strings(trimmed)
			value = strings.Join(trimmed, ",")
		}
		b.WriteString(name + ":" + value + "\n")
	}
	return b.String()
}

// verifyV1 checks a legacy RPC HMAC-SHA1 signature (docs/emulator.md, Signatures),
// as sent by credentials-go for AssumeRole.
func (e *Emulator) verifyV1(c *call) (*identity, *apiError) {
	akid := c.params.Get("AccessKeyId")
	token := c.params.Get("SecurityToken")
	c.rec.AccessKeyID = akid
	c.rec.SecurityToken = token != ""
	c.rec.Nonce = c.params.Get("SignatureNonce")
	if akid == "" {
		return nil, errf(http.StatusBadRequest, "MissingAccessKeyId", "AccessKeyId is mandatory for this action.")
	}
	if m := c.params.Get("SignatureMethod"); m != "" && m != "HMAC-SHA1" {
		return nil, errf(http.StatusBadRequest, "IncompleteSignature", "Unsupported SignatureMethod %q; the emulator verifies HMAC-SHA1.", m)
	}
	secret, id, err := e.lookupCredential(akid, token)
	if id != nil {
		c.principal = id.Principal
	}
	if err != nil {
		return id, err
	}
	if err := e.checkTimestamp(c.params.Get("Timestamp"), "2006-01-02T15:04:05Z"); err != nil {
		return id, err
	}
	expected := v1Signature(c.r.Method, c.params, secret)
	got, decErr := base64.StdEncoding.DecodeString(c.params.Get("Signature"))
	if decErr != nil || !hmac.Equal(expected, got) {
		return id, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
	}
	c.rec.SignatureValid = true
	if err := e.afterSignature(id, c.rec.Nonce); err != nil {
		return id, err
	}
	return id, nil
}

// v1Signature is HMAC-SHA1(secret+"&", METHOD&%2F&escape(sorted params)).
func v1Signature(method string, params url.Values, secret string) []byte {
	signed := url.Values{}
	for k, vs := range params {
		if k == "Signature" || len(vs) == 0 {
			continue
		}
		signed.Set(k, vs[0])
	}
	canon := acs3Escape(signed.Encode())
	stringToSign := method + "&%2F&" + url.QueryEscape(canon)
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign))
	return mac.Sum(nil)
}
