package fetch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// fuzzServer answers every request with the body and status the fuzzer
// chose, so the real SDK clients decode arbitrary responses.
type fuzzServer struct {
	mu     sync.Mutex
	status int
	ctype  string
	body   []byte
}

func (f *fuzzServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", f.ctype)
	w.WriteHeader(f.status)
	_, _ = w.Write(f.body)
}

// FuzzResponseDecoding feeds arbitrary bodies and statuses to the real KMS
// and OOS SDK clients: no panic escapes, and every outcome is either a
// value with a version or a classified error.
func FuzzResponseDecoding(f *testing.F) {
	f.Add(200, false, []byte(`{"RequestId":"r","SecretName":"n","VersionId":"v1","SecretData":"x","SecretDataType":"text","VersionStages":{"VersionStage":["ACSCurrent"]}}`))
	f.Add(200, false, []byte(`{"RequestId":"r","SecretName":"n","VersionId":"v1","SecretData":"!!","SecretDataType":"binary"}`))
	f.Add(200, false, []byte(`{"RequestId":"r","VersionStages":["ACSCurrent"]}`))
	f.Add(200, true, []byte(`{"RequestId":"r","Parameter":{"Name":"p","Value":"v","ParameterVersion":3,"Tags":{"a":"b"}}}`))
	f.Add(200, true, []byte(`{"RequestId":"r","Parameter":{"Name":"p","Value":"v","ParameterVersion":"3","Tags":[]}}`))
	f.Add(404, false, []byte(`{"RequestId":"r","Code":"Forbidden.ResourceNotFound","Message":"m"}`))
	f.Add(429, true, []byte(`{"Code":"Throttling.User"}`))
	f.Add(503, false, []byte(`<html>503</html>`))
	f.Add(200, false, []byte(`{"RequestId":"r","SecretData":`))
	f.Add(400, true, []byte(`<?xml version="1.0"?><Error><Code>X</Code></Error>`))
	srv := &fuzzServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	src, err := NewSDKSource(SDKOptions{ConnectTimeout: time.Second, ReadTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	id, err := auth.StaticAccessKey(auth.ModeStatic, "LTAIfuzz", "fuzzsecret", "", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status int, oos bool, body []byte) {
		if status < 200 || status > 599 {
			status = 200 + (abs(status) % 400)
		}
		srv.mu.Lock()
		srv.status, srv.body, srv.ctype = status, body, "application/json;charset=utf-8"
		if status%7 == 0 {
			srv.ctype = "text/xml;charset=utf-8"
		}
		srv.mu.Unlock()
		tg := Target{Type: TypeKMS, Name: "n", Region: "cn-hangzhou", Endpoint: ts.URL}
		if oos {
			tg.Type = TypeOOS
		}
		res, err := src.Get(context.Background(), id, tg)
		if err == nil {
			if res.Version == "" {
				t.Fatalf("success without a version (status %d)", status)
			}
			if status/100 != 2 {
				t.Fatalf("status %d decoded as success", status)
			}
			return
		}
		if KindOf(err) == KindInternal && status/100 == 2 {
			// A 200 that is not a valid answer must be a retryable or
			// invalid kind, not an unclassified one.
			t.Fatalf("unclassified error for a 200 body: %v", err)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
