package auth

import (
	"errors"
	"testing"

	"github.com/aliyun/credentials-go/credentials/providers"
)

// sessions hands out the security tokens it is given, then fails.
type sessions struct{ tokens []string }

func (s *sessions) GetCredentials() (*providers.Credentials, error) {
	if len(s.tokens) == 0 {
		return nil, errors.New("sts unavailable")
	}
	t := s.tokens[0]
	s.tokens = s.tokens[1:]
	return &providers.Credentials{AccessKeyId: "STS.id", AccessKeySecret: "secret", SecurityToken: t, ProviderName: "test"}, nil
}

func (s *sessions) GetProviderName() string { return "test" }

type refreshEvent struct {
	mode Mode
	err  bool
}

// TestOnRefreshIsPerIdentity: each identity tells the OnRefresh it was
// built with (no package-level hook) of every new session and every failed
// attempt, and of nothing else.
func TestOnRefreshIsPerIdentity(t *testing.T) {
	var a, b []refreshEvent
	ida := newIdentity(ModeRRSA, "a", "role-a", "", &sessions{tokens: []string{"t1", "t1", "t2"}}, func(m Mode, err error) {
		a = append(a, refreshEvent{m, err != nil})
	})
	idb := newIdentity(ModeECSRAMRole, "b", "worker", "", &sessions{tokens: []string{"w1"}}, func(m Mode, err error) {
		b = append(b, refreshEvent{m, err != nil})
	})
	silent := newIdentity(ModeCrossAccount, "c", "role-c", "", &sessions{tokens: []string{"c1"}}, nil)
	for range 4 {
		_, _ = ida.Credential.GetCredential()
	}
	_, _ = idb.Credential.GetCredential()
	if _, err := silent.Credential.GetCredential(); err != nil {
		t.Fatal(err)
	}
	want := []refreshEvent{{ModeRRSA, false}, {ModeRRSA, false}, {ModeRRSA, true}}
	if len(a) != len(want) {
		t.Fatalf("identity a reported %v, want %v (t1, t2, then the failure)", a, want)
	}
	for i := range want {
		if a[i] != want[i] {
			t.Fatalf("identity a reported %v, want %v", a, want)
		}
	}
	if len(b) != 1 || b[0] != (refreshEvent{ModeECSRAMRole, false}) {
		t.Fatalf("identity b reported %v, want one new session", b)
	}
}
