package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"
)

type slowProvider struct{ release chan struct{} }

func (p slowProvider) GetCredentials() (*providers.Credentials, error) {
	<-p.release
	return nil, errors.New("released")
}

func (slowProvider) GetProviderName() string { return "slow" }

// Usable says whether the credential yields a key, within ctx: a static
// key does; no identity does not; a credential that hangs is abandoned at
// the deadline.
func TestIdentityUsable(t *testing.T) {
	id, err := StaticAccessKey(ModeStatic, "LTAI5tTestKeyId", "secret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Usable(context.Background()); err != nil {
		t.Fatalf("static key: %v", err)
	}
	var none *Identity
	if err := none.Usable(context.Background()); err == nil || !strings.Contains(err.Error(), "no credential") {
		t.Fatalf("no identity: %v", err)
	}
	slow := slowProvider{release: make(chan struct{})}
	defer close(slow.release)
	hung := &Identity{Mode: ModeStatic, Credential: credentials.FromCredentialsProvider("slow", slow)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := hung.Usable(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a hung credential: %v, want the deadline", err)
	}
}
