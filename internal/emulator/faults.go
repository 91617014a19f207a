package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// FaultKind selects what an injected fault does.
type FaultKind string

// Fault kinds. "Error class" is what a dara-generation SDK caller sees
// (docs/emulator.md, "Errors and what the SDK caller sees").
const (
	// FaultLatency delays the request by Latency, then serves it normally.
	// A client that gives up first is noticed (outcome "aborted").
	FaultLatency FaultKind = "latency"
	// FaultHang never answers; the request ends when the client gives up
	// or the emulator closes. Client: *url.Error (timeout).
	FaultHang FaultKind = "hang"
	// FaultThrottle answers a throttling error: Code Throttling.User
	// (default; also Throttling, Throttling.Api, Rejected.Throttling),
	// Status 429 (default; Rejected.Throttling defaults to 400). With
	// TimeLeftMs an x-ratelimit-user-api header carries TimeLeft:<ms>.
	// Client: *tea.SDKError with that Code and StatusCode.
	FaultThrottle FaultKind = "throttle"
	// FaultError answers a JSON error: Status 500/InternalFailure by
	// default, 503 defaults to ServiceUnavailableTemporary; any Code and
	// Status may be given (e.g. STS 403 NoPermission). On the imds route it
	// is a text error, or with Status 200 a credentials body whose Code is
	// not "Success". Client: *tea.SDKError.
	FaultError FaultKind = "error"
	// FaultText answers a non-JSON body (an HTML 503 from a load balancer
	// by default; Status 502 or 503). Client: a raw *json.SyntaxError.
	FaultText FaultKind = "text"
	// FaultReset closes the connection with SO_LINGER 0 (TCP RST) before
	// any response. Client: *url.Error ("connection reset by peer").
	FaultReset FaultKind = "reset"
	// FaultClose closes the connection cleanly before any response.
	// Client: *url.Error (EOF).
	FaultClose FaultKind = "close"
	// FaultResetBody answers 200 with headers and half of a JSON body, then
	// resets the connection (TCP RST mid-response). Client: a read error
	// (connection reset by peer / unexpected EOF).
	FaultResetBody FaultKind = "reset-body"
	// FaultMalformed answers 200 with a truncated JSON body. Client: a raw
	// decode error (unexpected EOF).
	FaultMalformed FaultKind = "malformed"
	// FaultDeny answers 403 Forbidden.NoPermission with an
	// AccessDeniedDetail (NoPermission on STS, text 403 on imds).
	FaultDeny FaultKind = "deny"
)

var faultKinds = map[FaultKind]bool{
	FaultLatency: true, FaultHang: true, FaultThrottle: true, FaultError: true, FaultText: true,
	FaultReset: true, FaultClose: true, FaultMalformed: true, FaultDeny: true, FaultResetBody: true,
}

// Fault is an injected failure. Empty match fields match everything.
//
// Triggering: with Count N the fault fires for the next N matching
// requests and then removes itself; with EveryNth N it fires on every Nth
// matching request (N, 2N, ...; combined with Count it stops after Count
// firings); with neither it fires on every match until cleared.
//
// In JSON (control API), Latency is a duration string ("250ms") or a
// number of milliseconds.
type Fault struct {
	ID string `json:"id,omitempty"`
	// Region narrows to the requests that reach one region's ports (see
	// AddRegion); empty means every region. STS, the metadata service and
	// the credentials URI are served by the primary region.
	Region string `json:"region,omitempty"`
	// Route is kms, oos, sts, imds or uri; empty means all.
	Route string `json:"route,omitempty"`
	// Action narrows to one action (GetSecretValue, AssumeRole, PutToken...).
	Action string `json:"action,omitempty"`
	// Resource is a glob over the secret/parameter name (the path for the
	// ByPath actions, the comma-joined names for GetParameters and
	// GetSecretParameters), role ARN or metadata role name.
	Resource string `json:"resource,omitempty"`
	// Principal is a glob over the caller's principal or AccessKeyId.
	Principal string    `json:"principal,omitempty"`
	Kind      FaultKind `json:"kind"`
	Count     int       `json:"count,omitempty"`
	EveryNth  int       `json:"everyNth,omitempty"`

	Latency    time.Duration `json:"-"`
	Status     int           `json:"status,omitempty"`
	Code       string        `json:"code,omitempty"`
	Message    string        `json:"message,omitempty"`
	TimeLeftMs int           `json:"timeLeftMs,omitempty"`

	// Matched and Fired are read-only counts reported by Faults().
	Matched int `json:"matched,omitempty"`
	Fired   int `json:"fired,omitempty"`
}

type faultJSON Fault

// MarshalJSON writes Latency as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	type out struct {
		faultJSON
		Latency string `json:"latency,omitempty"`
	}
	o := out{faultJSON: faultJSON(f)}
	if f.Latency > 0 {
		o.Latency = f.Latency.String()
	}
	return json.Marshal(o)
}

// UnmarshalJSON reads Latency as "250ms" or a number of milliseconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type in struct {
		*faultJSON
		Latency json.RawMessage `json:"latency,omitempty"`
	}
	v := in{faultJSON: (*faultJSON)(f)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	f.Latency = 0
	if len(v.Latency) > 0 && string(v.Latency) != "null" {
		var s string
		if err := json.Unmarshal(v.Latency, &s); err == nil {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			f.Latency = d
		} else {
			var ms float64
			if err := json.Unmarshal(v.Latency, &ms); err != nil {
				return errors.New(`latency: want a duration string like "250ms" or a number of milliseconds`)
			}
			f.Latency = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return nil
}

// validate fills defaults and rejects nonsense.
func (f *Fault) validate() error {
	if !faultKinds[f.Kind] {
		return fmt.Errorf("emulator: unknown fault kind %q (want latency, hang, throttle, error, text, reset, close, malformed or deny)", f.Kind)
	}
	switch f.Route {
	case "", RouteKMS, RouteOOS, RouteSTS, RouteIMDS, RouteURI:
	default:
		return fmt.Errorf("emulator: unknown fault route %q (want kms, oos, sts, imds, uri or empty)", f.Route)
	}
	if f.Region != "" {
		if err := validRegionName(f.Region); err != nil {
			return fmt.Errorf("emulator: fault: %w", err)
		}
	}
	if f.Count < 0 || f.EveryNth < 0 {
		return errors.New("emulator: fault count and everyNth must not be negative")
	}
	if f.Kind == FaultLatency && f.Latency <= 0 {
		return errors.New("emulator: a latency fault needs a positive latency")
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("emulator: fault status %d is not an HTTP status", f.Status)
	}
	switch f.Kind {
	case FaultThrottle:
		if f.Code == "" {
			f.Code = "Throttling.User"
		}
		if f.Status == 0 {
			f.Status = http.StatusTooManyRequests
			if f.Code == "Rejected.Throttling" {
				f.Status = http.StatusBadRequest
			}
		}
		if f.Message == "" {
			f.Message = "Request was denied due to user flow control."
			if f.Code == "Rejected.Throttling" {
				f.Message = "QPS Limit Exceeded"
			}
		}
	case FaultError:
		if f.Status == 0 {
			f.Status = http.StatusInternalServerError
			if f.Code == "ServiceUnavailableTemporary" {
				f.Status = http.StatusServiceUnavailable
			}
		}
		if f.Code == "" {
			switch f.Status {
			case http.StatusServiceUnavailable:
				f.Code = "ServiceUnavailableTemporary"
			case http.StatusInternalServerError:
				f.Code = "InternalFailure"
			default:
				f.Code = "InjectedFault"
			}
		}
		if f.Message == "" {
			f.Message = "The request processing has failed due to some unknown error, exception or failure. (injected)"
		}
	case FaultText:
		if f.Status == 0 {
			f.Status = http.StatusServiceUnavailable
		}
	}
	return nil
}

type faultSet struct {
	mu     sync.Mutex
	faults []*Fault
	nextID int
}

// AddFault validates and installs a fault, returning its id.
func (e *Emulator) AddFault(f Fault) (string, error) {
	f.Matched, f.Fired = 0, 0
	if err := f.validate(); err != nil {
		return "", err
	}
	s := &e.faults
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	f.ID = "f" + strconv.Itoa(s.nextID)
	s.faults = append(s.faults, &f)
	return f.ID, nil
}

// SetFault installs a fault and returns its id, or "" when the fault is
// invalid (use AddFault to see why).
func (e *Emulator) SetFault(f Fault) (id string) {
	id, err := e.AddFault(f)
	if err != nil {
		e.logf("emulator: SetFault: %v", err)
		return ""
	}
	return id
}

// ClearFault removes one fault; it reports whether it existed.
func (e *Emulator) ClearFault(id string) bool {
	s := &e.faults
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.ID == id {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
			return true
		}
	}
	return false
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	s := &e.faults
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Faults lists the installed faults with their match and fire counts.
func (e *Emulator) Faults() []Fault {
	s := &e.faults
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, len(s.faults))
	for i, f := range s.faults {
		out[i] = *f
	}
	return out
}

func (f *Fault) matches(c *call) bool {
	if f.Region != "" && f.Region != c.region {
		return false
	}
	if f.Route != "" && f.Route != c.route {
		return false
	}
	if f.Action != "" && f.Action != c.action {
		return false
	}
	if f.Resource != "" && !globMatch(f.Resource, c.resource) {
		return false
	}
	if f.Principal != "" && !globMatch(f.Principal, c.principal) && !globMatch(f.Principal, c.rec.AccessKeyID) {
		return false
	}
	return true
}

// firing returns the faults that fire for this request, in install order:
// all matching latency faults and at most one other fault.
func (s *faultSet) firing(c *call) []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Fault
	terminal := false
	kept := s.faults[:0]
	for _, f := range s.faults {
		remove := false
		if (f.Kind == FaultLatency || !terminal) && f.matches(c) {
			f.Matched++
			fire := f.EveryNth <= 1 || f.Matched%f.EveryNth == 0
			if fire {
				f.Fired++
				out = append(out, *f)
				if f.Kind != FaultLatency {
					terminal = true
				}
				if f.Count > 0 && f.Fired >= f.Count {
					remove = true
				}
			}
		}
		if !remove {
			kept = append(kept, f)
		}
	}
	clear(s.faults[len(kept):])
	s.faults = kept
	return out
}

// applyFaults runs the faults that fire for c. It reports true when a
// fault produced (or suppressed) the response.
func (e *Emulator) applyFaults(c *call) bool {
	for _, f := range e.faults.firing(c) {
		note := f.ID + ":" + string(f.Kind)
		c.faultNotes = append(c.faultNotes, note)
		switch f.Kind {
		case FaultLatency:
			if !e.sleepCtx(c.r.Context(), f.Latency) {
				c.faultOutcome = OutcomeAborted
				return true
			}
		case FaultHang:
			c.faultOutcome = "fault:hang"
			c.record()
			select {
			case <-c.r.Context().Done():
			case <-e.closing:
			}
			return true
		case FaultReset:
			c.faultOutcome = "fault:reset"
			c.record()
			resetConn(c.w)
			return true
		case FaultClose:
			c.faultOutcome = "fault:close"
			c.record()
			closeConn(c.w)
			return true
		case FaultText:
			c.faultOutcome = "fault:text"
			body := f.Message
			if body == "" {
				t := strconv.Itoa(f.Status) + " " + http.StatusText(f.Status)
				body = "<html>\r\n<head><title>" + t + "</title></head>\r\n<body>\r\n<center><h1>" + t + "</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n"
			}
			c.writeRaw(f.Status, "text/html", []byte(body))
			return true
		case FaultResetBody:
			c.faultOutcome = "fault:reset-body"
			c.record()
			body := `{"RequestId":"` + c.requestID + `","SecretName":"` + c.resource + `","SecretData":"partial`
			c.w.Header().Set("Content-Type", "application/json;charset=utf-8")
			c.w.Header().Set("Content-Length", strconv.Itoa(len(body)*4))
			c.w.WriteHeader(http.StatusOK)
			_, _ = c.w.Write([]byte(body)) //nolint:gosec // a truncated JSON reply to an SDK client, never rendered for a browser
			_ = http.NewResponseController(c.w).Flush()
			resetConn(c.w)
			return true
		case FaultMalformed:
			c.faultOutcome = "fault:malformed"
			c.writeRaw(http.StatusOK, "application/json;charset=utf-8", []byte(`{"RequestId":"`+c.requestID+`","Name":"trunc`))
			return true
		case FaultThrottle:
			if f.TimeLeftMs > 0 {
				c.w.Header().Set("x-ratelimit-user-api", "Limit:100,Remain:0,TimeLeft:"+strconv.Itoa(f.TimeLeftMs)+",Reset:"+strconv.FormatInt(time.Now().Add(time.Duration(f.TimeLeftMs)*time.Millisecond).UnixMilli(), 10))
			}
			c.writeError(&apiError{Status: f.Status, Code: f.Code, Message: f.Message})
			return true
		case FaultError:
			e.faultError(c, f)
			return true
		case FaultDeny:
			e.faultDeny(c, f)
			return true
		}
	}
	return false
}

func (e *Emulator) faultError(c *call, f Fault) {
	if c.route != RouteIMDS {
		c.writeError(&apiError{Status: f.Status, Code: f.Code, Message: f.Message})
		return
	}
	if f.Status == http.StatusOK && c.action == "GetRoleCredentials" {
		// A well-formed credentials body whose Code is not "Success".
		e.mu.Lock()
		s := e.issueSession(e.imds.roleARN, "ecs-fault", "imds", "", 0)
		e.mu.Unlock()
		c.faultOutcome = "fault:error"
		c.writeJSON(http.StatusOK, imdsCredentials(s, f.Code))
		return
	}
	c.imdsText(f.Status, f.Code, f.Message)
}

func (e *Emulator) faultDeny(c *call, f Fault) {
	switch c.route {
	case RouteIMDS:
		c.imdsText(http.StatusForbidden, "Forbidden", "forbidden (injected)")
	case RouteSTS:
		c.writeError(errf(http.StatusForbidden, "NoPermission", "You are not authorized to do this action. You should be authorized by RAM. (injected)"))
	default:
		action, arn, code := ActionKMSGetSecretValue, e.secretARN(c.region, c.resource), "Forbidden.NoPermission"
		if c.route == RouteOOS {
			action, arn, code = ActionOOSGetSecretParameter, e.oosARN(c.region, oosKindSecret, c.resource), e.oosDeniedCode
		}
		if ram := ramActions[c.route+" "+c.action]; ram.action != "" {
			action, arn = ram.action, e.resourceARN(c.region, ram.kind, c.resource)
		}
		if f.Code != "" {
			code = f.Code
		}
		c.writeError(e.permissionDenied(c, c.principal, action, arn, code, true))
	}
}
