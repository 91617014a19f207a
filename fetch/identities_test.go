package fetch

import (
	"context"
	"errors"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// auth's error kinds become fetch Kinds; a refusal is a permission problem
// when resolving a Mount's identity and a rejected credential when assuming
// a crossAccountRoleArn; the code, request id and cause are kept.
func TestFromAuth(t *testing.T) {
	for _, c := range []struct {
		kind            auth.ErrorKind
		resolve, assume Kind
	}{
		{auth.ErrUnauthenticated, KindUnauthenticated, KindUnauthenticated},
		{auth.ErrInvalid, KindInvalid, KindInvalid},
		{auth.ErrDenied, KindPermission, KindUnauthenticated},
		{auth.ErrUnavailable, KindUnavailable, KindUnavailable},
	} {
		ae := &auth.Error{Kind: c.kind, Code: "NoPermission", RequestID: "req-1", Message: "m"}
		for denied, want := range map[Kind]Kind{KindPermission: c.resolve, KindUnauthenticated: c.assume} {
			err := fromAuth(ae, denied)
			var fe *Error
			if !errors.As(err, &fe) || fe.Kind != want || fe.Code != "NoPermission" || fe.RequestID != "req-1" || !errors.Is(err, ae) {
				t.Errorf("%v (refusal as %v): %#v, want kind %v", c.kind, denied, err, want)
			}
		}
	}
	other := errors.New("not auth's")
	var fe *Error
	if err := fromAuth(other, KindPermission); !errors.Is(err, other) || errors.As(err, &fe) {
		t.Errorf("another error became %#v", err)
	}
}

// Through Identities: a Mount whose identity cannot be had fails with a
// classified error.
func TestIdentitiesClassifyResolveErrors(t *testing.T) {
	ids := Identities{auth.NewResolver(auth.Config{Getenv: func(k string) string {
		if k == "ALIBABA_CLOUD_ECS_METADATA_DISABLED" {
			return "true"
		}
		return ""
	}})}
	_, err := ids.Resolve(context.Background(), auth.MountInfo{Secrets: map[string]string{"access_key": "only-the-id"}})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindInvalid {
		t.Fatalf("a half-set nodePublishSecretRef: %#v, want a KindInvalid *Error", err)
	}
}
