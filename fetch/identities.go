package fetch

import (
	"context"
	"errors"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// Identities is auth's Resolver as csi, doctor and the Fetcher (its
// RoleAssumer) use it: an *auth.Error becomes an *Error of the matching
// Kind here, where every other error is classified, so that csi turns it
// into a gRPC code and doctor into a fix like any upstream failure. Other
// errors pass unchanged. Base is auth's, untranslated.
type Identities struct {
	*auth.Resolver
}

// Resolve picks the identity of a Mount. A refusal (STS or the metadata
// service denied) is KindPermission.
func (i Identities) Resolve(ctx context.Context, m auth.MountInfo) (*auth.Identity, error) {
	id, err := i.Resolver.Resolve(ctx, m)
	if err != nil {
		return nil, fromAuth(err, KindPermission)
	}
	return id, nil
}

// AssumeRole implements RoleAssumer (crossAccountRoleArn). A refusal is
// KindUnauthenticated, a rejected credential: the fix is in the role's
// trust policy, not in a permission on the secret.
func (i Identities) AssumeRole(ctx context.Context, base *auth.Identity, roleArn string) (*auth.Identity, error) {
	id, err := i.Resolver.AssumeRole(ctx, base, roleArn)
	if err != nil {
		return nil, fromAuth(err, KindUnauthenticated)
	}
	return id, nil
}

// fromAuth classifies an *auth.Error (denied is the Kind of a refusal);
// any other error is returned as it is.
func fromAuth(err error, denied Kind) error {
	var ae *auth.Error
	if !errors.As(err, &ae) {
		return err
	}
	kind := KindUnauthenticated
	switch ae.Kind {
	case auth.ErrInvalid:
		kind = KindInvalid
	case auth.ErrDenied:
		kind = denied
	case auth.ErrUnavailable:
		kind = KindUnavailable
	}
	return &Error{Kind: kind, Code: ae.Code, RequestID: ae.RequestID, Message: ae.Message, Err: err}
}
