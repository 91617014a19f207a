package fetch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/alibabacloud-go/tea/tea"
)

func TestClassify(t *testing.T) {
	sdk := func(code string, status int, msg string) error {
		return tea.NewSDKError(map[string]interface{}{"code": code, "statusCode": status, "message": msg,
			"data": map[string]interface{}{"RequestId": "req-1", "Code": code}})
	}
	ue := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://kms-vpc.cn-hangzhou.aliyuncs.com/", Err: err}
	}
	for _, c := range []struct {
		name string
		err  error
		kind Kind
	}{
		{"caller deadline", context.DeadlineExceeded, KindDeadline},
		{"caller canceled", context.Canceled, KindCanceled},
		{"not found", sdk("Forbidden.ResourceNotFound", 404, "x"), KindNotFound},
		{"oos not found", sdk("EntityNotExists.Parameter", 404, "x"), KindNotFound},
		{"denied", sdk("Forbidden.NoPermission", 403, "x"), KindPermission},
		{"throttled", sdk("Throttling.User", 429, "x"), KindThrottled},
		{"kms qps", sdk("Rejected.Throttling", 400, "x"), KindThrottled},
		{"5xx", sdk("InternalFailure", 500, "x"), KindUnavailable},
		{"signature", sdk("SignatureDoesNotMatch", 400, "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DSTS.x%26SecurityToken%3Dsecret-token"), KindUnauthenticated},
		{"bad parameter", sdk("InvalidParameter", 400, "x"), KindInvalid},
		{"no such host", ue(&net.OpError{Op: "dial", Err: &net.DNSError{Name: "kst-x.cryptoservice.kms.aliyuncs.com", IsNotFound: true}}), KindInvalid},
		{"unknown CA", ue(x509.UnknownAuthorityError{}), KindInvalid},
		{"reset", ue(&net.OpError{Op: "read", Err: syscall.ECONNRESET}), KindUnavailable},
		{"refused", ue(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), KindUnavailable},
		{"eof", ue(io.EOF), KindUnavailable},
		{"html gateway page", fmt.Errorf("decode: %w", &jsonSyntaxErr{}), KindUnavailable},
		{"unknown", errors.New("something else with body bytes: hunter2"), KindInternal},
	} {
		got := Classify(TypeKMS, "GetSecretValue", c.err)
		if got.Kind != c.kind {
			t.Errorf("%s: kind %s, want %s (%v)", c.name, got.Kind, c.kind, got)
		}
		if strings.Contains(got.Error(), "secret-token") || strings.Contains(got.Error(), "hunter2") {
			t.Errorf("%s: the message leaks: %v", c.name, got)
		}
	}
}

type jsonSyntaxErr struct{}

func (*jsonSyntaxErr) Error() string { return "invalid character '<' looking for beginning of value" }
