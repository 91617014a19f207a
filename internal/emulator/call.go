package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answered with the POP JSON error body.
type apiError struct {
	Status             int
	Code               string
	Message            string
	AccessDeniedDetail map[string]any
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errf(status int, code, format string, a ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// call is one request travelling through the pipeline: it carries what the
// request log and the counters need, and writes the response.
type call struct {
	e         *Emulator
	w         http.ResponseWriter
	r         *http.Request
	start     time.Time
	requestID string

	route, action, version string
	resource, principal    string
	// rs is the region whose port the request reached; region its name.
	rs     *regionState
	region string
	params url.Values // query plus form body
	body   []byte

	status       int
	code         string
	faultOutcome string   // set when a fault replaced the response
	faultNotes   []string // every fault that fired, for the log
	rec          RequestRecord
	recorded     bool
}

func (e *Emulator) newCall(w http.ResponseWriter, r *http.Request, route string) *call {
	c := &call{e: e, w: w, r: r, start: time.Now(), requestID: newRequestID(), route: route, rs: e.primary, region: e.primary.name}
	c.rec = RequestRecord{
		Time:                c.start,
		RequestID:           c.requestID,
		Method:              r.Method,
		Host:                r.Host,
		Path:                r.URL.Path,
		UserAgent:           r.UserAgent(),
		CredentialsProvider: r.Header.Get("x-acs-credentials-provider"),
	}
	return c
}

// readParams reads the body and merges query and form parameters.
func (c *call) readParams() error {
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 1<<20))
	if err != nil {
		return err
	}
	c.body = body
	c.params = url.Values{}
	for k, vs := range c.r.URL.Query() {
		c.params[k] = append(c.params[k], vs...)
	}
	ct, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" && len(body) > 0 {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return err
		}
		for k, vs := range form {
			c.params[k] = append(c.params[k], vs...)
		}
	}
	return nil
}

// classify finds the product and action: x-acs-* headers (ACS3), else the
// Action and Version parameters (v1 and STS).
func (c *call) classify() {
	c.action = c.r.Header.Get("x-acs-action")
	c.version = c.r.Header.Get("x-acs-version")
	if c.action == "" {
		c.action = c.params.Get("Action")
		c.version = c.params.Get("Version")
	}
	switch c.version {
	case "2016-01-20":
		c.route = RouteKMS
	case "2019-06-01":
		c.route = RouteOOS
	case "2015-04-01":
		c.route = RouteSTS
	default:
		c.route = RouteUnknown
	}
}

// redactedParams are never written to the request log.
var redactedParams = map[string]bool{
	"Signature": true, "SecurityToken": true, "OIDCToken": true, "AccessKeySecret": true,
}

func (c *call) logParams() map[string]string {
	if len(c.params) == 0 {
		return nil
	}
	out := make(map[string]string, len(c.params))
	for k, vs := range c.params {
		v := strings.Join(vs, ",")
		if redactedParams[k] {
			v = "<redacted>"
		}
		out[k] = v
	}
	return out
}

func (c *call) hostID() string {
	switch c.route {
	case RouteKMS:
		return "kms." + c.region + ".aliyuncs.com"
	case RouteOOS:
		return "oos." + c.region + ".aliyuncs.com"
	case RouteSTS:
		return "sts.aliyuncs.com"
	default:
		return c.r.Host
	}
}

func (c *call) setCommonHeaders() {
	c.w.Header().Set("x-acs-request-id", c.requestID)
}

// writeJSON answers with a JSON body.
func (c *call) writeJSON(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"Code":"InternalError"}`)
	}
	c.writeRaw(status, "application/json;charset=utf-8", b)
}

func (c *call) writeRaw(status int, contentType string, body []byte) {
	c.setCommonHeaders()
	c.w.Header().Set("Content-Type", contentType)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	c.status = status
	c.record()
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body) //nolint:gosec // an API reply to an SDK client (JSON, or a fault's error page), never rendered for a browser
}

// writeError answers with the POP error body
// {"RequestId","HostId","Code","Message","Recommend"[,"AccessDeniedDetail"]}.
func (c *call) writeError(err *apiError) {
	body := map[string]any{
		"RequestId": c.requestID,
		"HostId":    c.hostID(),
		"Code":      err.Code,
		"Message":   err.Message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(err.Code) + "&product=" + productName(c.route) + "&requestId=" + c.requestID,
	}
	if err.AccessDeniedDetail != nil {
		body["AccessDeniedDetail"] = err.AccessDeniedDetail
	}
	c.code = err.Code
	c.writeJSON(err.Status, body)
}

func productName(route string) string {
	switch route {
	case RouteKMS:
		return "Kms"
	case RouteOOS:
		return "oos"
	case RouteSTS:
		return "Sts"
	default:
		return route
	}
}

// finish records the call if no response did so.
func (c *call) finish() { c.record() }

// record adds the call to the counters and the request log, once. It runs
// just before the response is committed (first byte written, connection
// reset or closed, hang started), so that a client that has its answer
// always finds its call counted.
func (c *call) record() {
	if c.recorded {
		return
	}
	c.recorded = true
	outcome := OutcomeOK
	switch {
	case c.faultOutcome != "":
		outcome = c.faultOutcome
	case c.status == 0:
		outcome = OutcomeAborted
	case c.status >= 400:
		outcome = c.code
		if outcome == "" {
			outcome = "http_" + strconv.Itoa(c.status)
		}
	}
	c.e.counters.add(counterKey{region: c.region, route: c.route, action: c.action, principal: c.principal, resource: c.resource, outcome: outcome})
	rec := c.rec
	rec.Region, rec.Route, rec.Action, rec.Resource, rec.Principal = c.region, c.route, c.action, c.resource, c.principal
	rec.Params = c.logParams()
	rec.Fault = strings.Join(c.faultNotes, "+")
	rec.Status, rec.Code, rec.Outcome = c.status, c.code, outcome
	rec.Duration = time.Since(c.start)
	c.e.reqlog.add(rec)
	c.e.logf("emulator: %s%s %s principal=%q resource=%q status=%d outcome=%s%s", c.route, c.regionSuffix(), c.action, c.principal, c.resource, c.status, outcome, faultSuffix(rec.Fault))
}

// regionSuffix names the region in log lines of calls to an extra region.
func (c *call) regionSuffix() string {
	if c.rs == c.e.primary {
		return ""
	}
	return "@" + c.region
}

func faultSuffix(f string) string {
	if f == "" {
		return ""
	}
	return " fault=" + f
}

// down answers a request while the emulator is "down": a reset connection.
func (c *call) down() {
	c.faultNotes = append(c.faultNotes, "down")
	c.faultOutcome = "fault:down"
	c.record()
	resetConn(c.w)
}

// serveAPI handles the POP-style cloud API of the primary ports: KMS, OOS
// and STS.
func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) { e.serveAPIIn(w, r, e.primary) }

// serveAPIIn handles the cloud API for one region: every route on the
// primary's ports, KMS and OOS on an extra region's.
func (e *Emulator) serveAPIIn(w http.ResponseWriter, r *http.Request, rs *regionState) {
	c := e.newCall(w, r, RouteUnknown)
	c.rs, c.region = rs, rs.name
	defer c.finish()
	if err := c.readParams(); err != nil {
		c.writeError(errf(http.StatusBadRequest, "InvalidParameter", "cannot read the request: %v", err))
		return
	}
	c.classify()
	if rs.down.Load() {
		c.down()
		return
	}
	c.resource = c.resourceName()

	var id *identity
	var authErr *apiError
	if c.route == RouteSTS && c.action == "AssumeRoleWithOIDC" {
		c.rec.Auth = "none"
		c.principal = c.params.Get("RoleArn")
	} else if c.route != RouteUnknown {
		id, authErr = e.authenticate(c)
	}
	if e.applyFaults(c) {
		return
	}
	if c.route == RouteUnknown {
		c.writeError(errf(http.StatusNotFound, "InvalidApi.NotFound", "Specified api is not found, please check your url and method (version %q, action %q).", c.version, c.action))
		return
	}
	if rs != e.primary && c.route != RouteKMS && c.route != RouteOOS {
		c.writeError(errf(http.StatusNotFound, "InvalidApi.NotFound", "The port of region %s serves KMS and OOS only; %s %s is on the primary port.", rs.name, c.version, c.action))
		return
	}
	if authErr != nil {
		c.writeError(authErr)
		return
	}
	if h := apiHandlers[c.route+" "+c.action]; h != nil {
		h(e, c, id)
		return
	}
	c.writeError(errf(http.StatusNotFound, "InvalidApi.NotFound", "The emulator does not implement %s %s.", c.version, c.action))
}

// apiHandlers are the implemented actions, by "route action".
var apiHandlers = map[string]func(e *Emulator, c *call, id *identity){
	RouteKMS + " GetSecretValue":       (*Emulator).kmsGetSecretValue,
	RouteKMS + " ListSecretVersionIds": (*Emulator).kmsListSecretVersionIds,
	RouteKMS + " ListSecrets":          (*Emulator).kmsListSecrets,

	RouteOOS + " GetSecretParameter":          (*Emulator).oosGetSecretParameter,
	RouteOOS + " GetSecretParameters":         (*Emulator).oosGetSecretParameters,
	RouteOOS + " ListSecretParameterVersions": (*Emulator).oosListSecretParameterVersions,
	RouteOOS + " GetSecretParametersByPath":   (*Emulator).oosGetSecretParametersByPath,
	RouteOOS + " GetParameter":                (*Emulator).oosGetParameter,
	RouteOOS + " GetParameters":               (*Emulator).oosGetParameters,
	RouteOOS + " ListParameterVersions":       (*Emulator).oosListParameterVersions,
	RouteOOS + " GetParametersByPath":         (*Emulator).oosGetParametersByPath,

	RouteSTS + " AssumeRole":         (*Emulator).stsAssumeRole,
	RouteSTS + " AssumeRoleWithOIDC": func(e *Emulator, c *call, _ *identity) { e.stsAssumeRoleWithOIDC(c) },
}

// resourceName is the resource a request is about, for counters, faults
// and policies: the secret or parameter name; for GetParameters and
// GetSecretParameters the requested names joined with commas; for the
// ByPath actions the path; nothing for ListSecrets.
func (c *call) resourceName() string {
	switch c.route {
	case RouteKMS:
		return secretNameFromParam(c.params.Get("SecretName"))
	case RouteOOS:
		switch c.action {
		case "GetParameters", "GetSecretParameters":
			names, err := parseNames(c.params.Get("Names"))
			if err != nil {
				return ""
			}
			return strings.Join(names, ",")
		case "GetParametersByPath", "GetSecretParametersByPath":
			return c.params.Get("Path")
		}
		return c.params.Get("Name")
	case RouteSTS:
		return c.params.Get("RoleArn")
	}
	return ""
}
