package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Kind is the small set every upstream failure maps into, once. csi turns it
// into a gRPC code, fs into an errno, doctor into a fix.
type Kind int

const (
	KindInternal        Kind = iota // anything we cannot classify
	KindInvalid                     // bad parameter (ours or the caller's)
	KindNotFound                    // no such secret, parameter, version or stage
	KindPermission                  // the identity may not read it
	KindUnauthenticated             // the credential itself is rejected
	KindThrottled                   // flow control, retried
	KindUnavailable                 // 5xx, gateway junk, timeouts, resets; retried
	KindDeadline                    // the caller's deadline passed
	KindCanceled                    // the caller went away
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not-found"
	case KindPermission:
		return "permission-denied"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindThrottled:
		return "throttled"
	case KindUnavailable:
		return "unavailable"
	case KindDeadline:
		return "deadline-exceeded"
	case KindCanceled:
		return "canceled"
	}
	return "internal"
}

// Retryable reports whether a failure of this kind may succeed if tried again.
func (k Kind) Retryable() bool { return k == KindThrottled || k == KindUnavailable }

// Error is an upstream failure, classified. It never holds secret bytes: the
// SDK error's body is reduced to its code, status and request id.
type Error struct {
	Kind       Kind
	Service    ObjectType // kms or oos ("" for credentials)
	Action     string     // e.g. GetSecretValue
	Code       string     // upstream error code, e.g. Forbidden.NoPermission
	Status     int        // HTTP status, 0 when none
	RequestID  string
	Message    string        // short, human, non-secret
	RetryAfter time.Duration // the server's hint, when it gave one
	Err        error         // cause, for errors.Is; never printed whole
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	if e.Code != "" || e.Status != 0 || e.RequestID != "" {
		b.WriteString(" (")
		sep := ""
		if e.Code != "" {
			b.WriteString(e.Code)
			sep = ", "
		}
		if e.Status != 0 {
			fmt.Fprintf(&b, "%sHTTP %d", sep, e.Status)
			sep = ", "
		}
		if e.RequestID != "" {
			fmt.Fprintf(&b, "%sRequestId %s", sep, e.RequestID)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of any error from this package (KindInternal when
// it carries none).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return KindDeadline
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case IsValidation(err):
		return KindInvalid
	}
	return KindInternal
}

// CodeOf returns the upstream error code of err, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Classify maps an SDK or transport error into an *Error, once.
func Classify(service ObjectType, action string, err error) *Error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	out := &Error{Kind: KindInternal, Service: service, Action: action, Err: err}
	var se *tea.SDKError
	switch {
	case err == context.DeadlineExceeded: //nolint:errorlint // the caller's own context error, not a wrapped transport timeout
		out.Kind, out.Message = KindDeadline, "the request's deadline passed before "+string(service)+" answered"
	case isBadEndpoint(err):
		// A name that does not resolve or a certificate that does not
		// verify will not fix itself: not retried, and the fix is in
		// the endpoint, region or CA.
		out.Kind, out.Message = KindInvalid, "the endpoint is wrong: "+shortNetError(err)+"; check the region, the endpoint flags, kmsEndpoint and --kms-ca-file"
	case isTimeout(err) && !errors.Is(err, context.Canceled):
		// An SDK/transport timeout (read or connect timeout, or the
		// http.Client's), not the caller's deadline: retryable.
		out.Kind, out.Message = KindUnavailable, "timed out talking to the endpoint"
	case errors.Is(err, context.DeadlineExceeded):
		out.Kind, out.Message = KindDeadline, "the request's deadline passed before "+string(service)+" answered"
	case errors.Is(err, context.Canceled):
		out.Kind, out.Message = KindCanceled, "the request was canceled"
	case errors.As(err, &se):
		out.Code = tea.StringValue(se.Code)
		out.Status = tea.IntValue(se.StatusCode)
		out.RequestID = requestIDOf(se)
		out.Kind = kindOfCode(out.Code, out.Status)
		out.Message = messageOf(se)
		if out.Kind == KindUnauthenticated {
			// Signature errors echo the server's string-to-sign, which
			// names the AccessKey and can carry a security token.
			out.Message = "the request's credential or signature was rejected"
		}
	case isJSONError(err):
		// A load balancer's text/HTML page, or a truncated success body.
		out.Kind, out.Message = KindUnavailable, "the endpoint answered with a body that is not the API's JSON (a gateway or load-balancer error)"
	case isTimeout(err):
		out.Kind, out.Message = KindUnavailable, "timed out talking to the endpoint"
	case isConnError(err):
		out.Kind, out.Message = KindUnavailable, "connection to the endpoint failed: "+shortNetError(err)
	case isDecodeError(err):
		// jsoniter/tea decode errors quote the body around the fault: never
		// print them, the body may hold the secret.
		out.Kind, out.Message = KindUnavailable, "the response body could not be decoded (a malformed or truncated answer)"
	default:
		// The text of an unknown error may quote response bytes: name its
		// type only.
		out.Message = fmt.Sprintf("unexpected error from the SDK (%T)", err)
	}
	return out
}

func kindOfCode(code string, status int) Kind {
	switch {
	case strings.HasPrefix(code, "Throttling"), code == "Rejected.Throttling", strings.HasSuffix(code, ".Throttling"),
		code == "ServiceUnavailable.Throttling":
		return KindThrottled
	case code == "InvalidAccessKeyId.NotFound", code == "InvalidAccessKeyId", code == "SignatureDoesNotMatch",
		code == "IncompleteSignature", strings.HasPrefix(code, "InvalidSecurityToken"), code == "MissingSecurityToken",
		code == "Forbidden.AccessKeyDisabled", code == "InvalidAccessKeyId.Inactive", strings.HasPrefix(code, "InvalidTimeStamp"),
		code == "IllegalTimestamp", code == "SignatureNonceUsed", code == "InvalidCredentials":
		return KindUnauthenticated
	case code == "Forbidden.ResourceNotFound", strings.HasPrefix(code, "EntityNotExists"), strings.HasSuffix(code, ".NotFound"),
		code == "ResourceNotFound", code == "Forbidden.KeyNotFound":
		return KindNotFound
	case strings.HasPrefix(code, "Forbidden"), code == "NoPermission", strings.HasPrefix(code, "NoPermission"), code == "AccessDenied":
		return KindPermission
	case status == 429:
		return KindThrottled
	case status >= 500, code == "InternalFailure", code == "InternalError", strings.HasPrefix(code, "ServiceUnavailable"):
		return KindUnavailable
	case status == 404:
		return KindNotFound
	case status == 403:
		return KindPermission
	case status == 401:
		return KindUnauthenticated
	case strings.HasPrefix(code, "InvalidParameter"), strings.HasPrefix(code, "MissingParameter"), strings.HasPrefix(code, "Invalid"),
		status == 400:
		return KindInvalid
	}
	return KindInternal
}

func requestIDOf(se *tea.SDKError) string {
	if se.Data == nil {
		return ""
	}
	var body struct {
		RequestID string `json:"RequestId"`
	}
	if json.Unmarshal([]byte(*se.Data), &body) == nil {
		return body.RequestID
	}
	return ""
}

// messageOf keeps the upstream message but drops the SDK's "code: 404, " and
// "request id: ..." decorations, which the Error prints itself.
func messageOf(se *tea.SDKError) string {
	m := tea.StringValue(se.Message)
	if i := strings.Index(m, ", "); strings.HasPrefix(m, "code: ") && i > 0 {
		m = m[i+2:]
	}
	if i := strings.Index(m, " request id:"); i >= 0 {
		m = m[:i]
	}
	if i := strings.Index(m, "\n"); i >= 0 {
		m = m[:i]
	}
	return textutil.Truncate(strings.TrimSpace(m), 200)
}

func isJSONError(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "invalid character") || strings.Contains(err.Error(), "unexpected end of JSON input")
}

func isBadEndpoint(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}

func isDecodeError(err error) bool {
	m := err.Error()
	for _, marker := range []string{"error found in #", "readObjectStart", "ReadString", "readStringSlowPath", "ReadMapCB", "decode", "Unmarshal", "cannot unmarshal", "unexpected end", "invalid character"} {
		if strings.Contains(m, marker) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isConnError(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)
}

func shortNetError(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "cannot resolve " + dnsErr.Name
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	if errors.As(err, &unknownCA) {
		return "its TLS certificate is signed by an unknown authority"
	}
	if errors.As(err, &hostname) {
		return "its TLS certificate is not valid for " + hostname.Host
	}
	var verify *tls.CertificateVerificationError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verify) || errors.As(err, &invalid) {
		return "its TLS certificate does not verify"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + textutil.Truncate(oe.Err.Error(), 120)
	}
	return textutil.Truncate(err.Error(), 160)
}

// RAMAction names the RAM actions reading o needs, for permission hints
// (ObjectRAMActions, with the KMS key's action of an OOS read as a note).
func RAMAction(o *Object) string {
	a := ObjectRAMActions(o)
	if o.Type == TypeOOS {
		// The last is the KMS key's action (RAMActions).
		return strings.Join(a[:len(a)-1], " and ") + " (and kms:GetSecretValue for the parameter's KMS key)"
	}
	return strings.Join(a, " and ")
}
