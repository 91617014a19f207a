package emulator

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// imdsState is the emulated ECS instance behind 100.100.100.200.
type imdsState struct {
	roleName, roleARN          string
	region, zoneID, instanceID string
	hardened                   bool
	tokens                     map[string]time.Time
}

const (
	imdsTokenPath   = "/latest/api/token"                           //nolint:gosec // a metadata URL path, not a credential
	imdsCredsPrefix = "/latest/meta-data/ram/security-credentials/" //nolint:gosec // a metadata URL path, not a credential
	imdsMetaPrefix  = "/latest/meta-data/"
	imdsTTLHeader   = "X-aliyun-ecs-metadata-token-ttl-seconds"
	imdsTokenHeader = "X-aliyun-ecs-metadata-token" //nolint:gosec // a header name, not a credential
	imdsMaxTokenTTL = 21600
)

// SetHardenedIMDS switches IMDSv2-only mode: when true, metadata GETs
// without a token get 403.
func (e *Emulator) SetHardenedIMDS(hardened bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imds.hardened = hardened
}

// SetIMDSRole attaches a role (by name; the ARN defaults to
// acs:ram::<account>:role/<name>) to the emulated instance. An empty name
// detaches it.
func (e *Emulator) SetIMDSRole(roleName, roleARN string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if roleARN == "" && roleName != "" {
		roleARN = "acs:ram::" + e.account + ":role/" + roleName
	}
	e.imds.roleName, e.imds.roleARN = roleName, roleARN
}

func imdsAction(method, path string) (action, resource string) {
	switch {
	case path == imdsTokenPath:
		return "PutToken", "token"
	case path == imdsCredsPrefix || path == strings.TrimSuffix(imdsCredsPrefix, "/"):
		return "ListRoles", ""
	case strings.HasPrefix(path, imdsCredsPrefix):
		return "GetRoleCredentials", strings.TrimPrefix(path, imdsCredsPrefix)
	case strings.HasPrefix(path, imdsMetaPrefix):
		return "GetMetadata", strings.TrimPrefix(path, imdsMetaPrefix)
	}
	return "GetMetadata", strings.TrimPrefix(path, "/latest/")
}

// serveIMDS answers the ECS metadata service, reached through the proxy
// (absolute-form requests for 100.100.100.200) or directly under /latest/.
func (e *Emulator) serveIMDS(w http.ResponseWriter, r *http.Request) {
	c := e.newCall(w, r, RouteIMDS)
	defer c.finish()
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	c.action, c.resource = imdsAction(r.Method, r.URL.Path)
	if e.Down() {
		c.down()
		return
	}

	e.mu.Lock()
	st := e.imds
	e.mu.Unlock()
	if c.action == "GetRoleCredentials" && c.resource == st.roleName {
		c.principal = st.roleARN
	}

	var authErr *apiError
	if c.action == "PutToken" {
		c.rec.Auth = "none"
	} else if tok := r.Header.Get(imdsTokenHeader); tok != "" {
		c.rec.Auth, c.rec.SecurityToken = "imds-token", true
		e.mu.Lock()
		exp, ok := e.imds.tokens[tok]
		e.mu.Unlock()
		if !ok || time.Now().After(exp) {
			authErr = errf(http.StatusUnauthorized, "InvalidToken", "invalid or expired metadata token")
		} else {
			c.rec.SignatureValid = true
		}
	} else {
		c.rec.Auth = "none"
		if st.hardened {
			authErr = errf(http.StatusForbidden, "MissingToken", "metadata token required (hardened mode)")
		}
	}
	if e.applyFaults(c) {
		return
	}
	if authErr != nil {
		c.imdsText(authErr.Status, authErr.Code, authErr.Message)
		return
	}

	switch c.action {
	case "PutToken":
		e.imdsPutToken(c)
	case "ListRoles":
		if r.Method != http.MethodGet {
			c.imdsText(http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		} else if st.roleName == "" {
			c.imdsText(http.StatusNotFound, "NotFound", "no RAM role is attached to this instance")
		} else {
			c.imdsText(http.StatusOK, "", st.roleName)
		}
	case "GetRoleCredentials":
		if c.resource != st.roleName || st.roleName == "" {
			c.imdsText(http.StatusNotFound, "NotFound", "role "+c.resource+" is not attached to this instance")
			return
		}
		e.mu.Lock()
		s := e.issueSession(st.roleARN, "ecs-"+st.instanceID, "imds", "", 0)
		e.mu.Unlock()
		c.writeJSON(http.StatusOK, imdsCredentials(s, "Success"))
	default:
		e.imdsMetadata(c, st)
	}
}

func imdsCredentials(s *session, code string) map[string]any {
	body := s.credentialsJSON()
	body["Code"] = code
	body["LastUpdated"] = s.issued.UTC().Format(isoTime)
	return body
}

func (c *call) imdsText(status int, code, text string) {
	if status >= 400 {
		c.code = code
	}
	c.writeRaw(status, "text/plain;charset=utf-8", []byte(text))
}

func (e *Emulator) imdsPutToken(c *call) {
	if c.r.Method != http.MethodPut {
		c.imdsText(http.StatusMethodNotAllowed, "MethodNotAllowed", "use PUT")
		return
	}
	ttl, err := strconv.Atoi(c.r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > imdsMaxTokenTTL {
		c.imdsText(http.StatusBadRequest, "InvalidTTL", imdsTTLHeader+" must be 1.."+strconv.Itoa(imdsMaxTokenTTL))
		return
	}
	tok := randomString(56)
	now := time.Now()
	e.mu.Lock()
	if len(e.imds.tokens) > 1024 {
		for k, exp := range e.imds.tokens {
			if now.After(exp) {
				delete(e.imds.tokens, k)
			}
		}
	}
	e.imds.tokens[tok] = now.Add(time.Duration(ttl) * time.Second)
	e.mu.Unlock()
	c.imdsText(http.StatusOK, "", tok)
}

func (e *Emulator) imdsMetadata(c *call, st imdsState) {
	if c.r.Method != http.MethodGet {
		c.imdsText(http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		return
	}
	values := map[string]string{
		"region-id":   st.region,
		"zone-id":     st.zoneID,
		"instance-id": st.instanceID,
		"":            "instance-id\nram/\nregion-id\nzone-id",
		"ram/":        "security-credentials/",
	}
	v, ok := values[c.resource]
	if !ok {
		c.imdsText(http.StatusNotFound, "NotFound", "not found")
		return
	}
	c.imdsText(http.StatusOK, "", v)
}

// serveCredentialsURI answers GET /_emulator/credentials-uri[?role=<arn>]
// in the shape credentials-go's credentials_uri provider expects. The role
// defaults to the instance role.
func (e *Emulator) serveCredentialsURI(w http.ResponseWriter, r *http.Request) {
	c := e.newCall(w, r, RouteURI)
	defer c.finish()
	c.action = "GetCredentials"
	c.rec.Auth = "none"
	e.mu.Lock()
	arn := firstNonEmpty(r.URL.Query().Get("role"), e.imds.roleARN)
	e.mu.Unlock()
	c.resource, c.principal = arn, arn
	if e.Down() {
		c.down()
		return
	}
	if e.applyFaults(c) {
		return
	}
	if arn == "" {
		c.writeError(errf(http.StatusNotFound, "EntityNotExist.Role", "no role: pass ?role=<arn> or configure imds.roleName"))
		return
	}
	e.mu.Lock()
	var s *session
	if _, known := e.roles[strings.ToLower(arn)]; known || strings.EqualFold(arn, e.imds.roleARN) {
		s = e.issueSession(arn, "credentials-uri", "uri", "", 0)
	}
	e.mu.Unlock()
	if s == nil {
		c.writeError(errf(http.StatusNotFound, "EntityNotExist.Role", "The specified Role not exists: %s", arn))
		return
	}
	c.writeJSON(http.StatusOK, imdsCredentials(s, "Success"))
}
