package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// ErrorKind classifies why an identity could not be had. fetch.Identities
// maps it to a fetch Kind, and so to the gRPC code of the Mount (auth cannot
// import fetch, which imports auth).
type ErrorKind int

const (
	// ErrUnauthenticated: the credential material is missing or unusable
	// (no pod token, an expired token, a rejected AccessKey).
	ErrUnauthenticated ErrorKind = iota
	// ErrInvalid: a parameter or the provider's configuration is wrong
	// (a malformed roleArn, a half-set AccessKey, no OIDC provider ARN).
	ErrInvalid
	// ErrDenied: STS or the metadata service refused: the role does not
	// trust the caller, or the caller may not assume it.
	ErrDenied
	// ErrUnavailable: STS, the metadata service or the API server could not
	// be reached or failed; retrying may help.
	ErrUnavailable
)

func (k ErrorKind) String() string {
	switch k {
	case ErrInvalid:
		return "invalid"
	case ErrDenied:
		return "denied"
	case ErrUnavailable:
		return "unavailable"
	}
	return "unauthenticated"
}

// Error is why a Mount got no identity. It never holds a secret: no
// AccessKey secret, no security token, no OIDC token.
type Error struct {
	Kind      ErrorKind
	Code      string // STS error code, when STS answered
	RequestID string // STS request id, when STS answered
	Message   string
	Err       error // cause, for errors.Is; never printed whole
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Code != "" || e.RequestID != "" {
		b.WriteString(" (")
		if e.Code != "" {
			b.WriteString(e.Code)
		}
		if e.RequestID != "" {
			if e.Code != "" {
				b.WriteString(", ")
			}
			b.WriteString("RequestId " + e.RequestID)
		}
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of an auth error (ErrUnauthenticated for others).
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ErrUnauthenticated
}

func errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// upstreamError turns a credentials-go failure (STS or ECS metadata) into an
// *Error: the STS code and request id when the body has them, the kind from
// the code, and a message with every secret in scrub removed.
func upstreamError(what string, err error, scrub ...string) *Error {
	msg := err.Error()
	out := &Error{Kind: ErrUnauthenticated, Err: errors.New("credentials provider failed")}
	if i := strings.IndexByte(msg, '{'); i >= 0 {
		var body struct {
			Code      string `json:"Code"`
			Message   string `json:"Message"`
			RequestID string `json:"RequestId"`
		}
		if json.Unmarshal([]byte(msg[i:]), &body) == nil && body.Code != "" {
			out.Code, out.RequestID = textutil.Truncate(body.Code, 64), textutil.Truncate(body.RequestID, 64)
			out.Kind = kindOfSTSCode(body.Code)
			out.Message = what + ": " + textutil.Truncate(scrubbed(body.Message, scrub), 300)
			return out
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || transportFailure(msg) {
		out.Kind = ErrUnavailable
	}
	if strings.Contains(msg, "httpStatus: 404") {
		out.Kind = ErrDenied
	}
	out.Message = what + ": " + textutil.Truncate(scrubbed(msg, scrub), 300)
	return out
}

func transportFailure(msg string) bool {
	for _, s := range []string{"dial tcp", "connection refused", "connection reset", "timeout", "Timeout", "EOF", "no such host", "i/o timeout", "tls:", "x509:", "httpStatus: 5"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func kindOfSTSCode(code string) ErrorKind {
	switch {
	case strings.HasPrefix(code, "Throttling"), strings.HasPrefix(code, "ServiceUnavailable"), strings.HasPrefix(code, "InternalError"), code == "UnknownError":
		return ErrUnavailable
	case strings.HasPrefix(code, "InvalidAccessKeyId"), strings.HasPrefix(code, "SignatureDoesNotMatch"),
		strings.HasPrefix(code, "InvalidSecurityToken"), strings.HasPrefix(code, "Forbidden.AccessKeyDisabled"),
		strings.HasPrefix(code, "MissingSecurityToken"):
		return ErrUnauthenticated
	case strings.HasPrefix(code, "InvalidParameter.OIDCToken"), strings.HasPrefix(code, "AuthenticationFail"):
		return ErrDenied
	case strings.HasPrefix(code, "NoPermission"), strings.HasPrefix(code, "EntityNotExist"), strings.HasPrefix(code, "Forbidden"), strings.HasPrefix(code, "AccessDenied"):
		return ErrDenied
	case strings.HasPrefix(code, "InvalidParameter"), strings.HasPrefix(code, "Missing"):
		return ErrInvalid
	}
	return ErrDenied
}

func scrubbed(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}
