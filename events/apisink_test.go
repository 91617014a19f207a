package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// apiServer answers POST /api/v1/namespaces/<ns>/events with status and
// records each body.
type apiServer struct {
	mu     sync.Mutex
	status int
	paths  []string
	bodies []map[string]any
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	a.mu.Lock()
	a.paths = append(a.paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	a.bodies = append(a.bodies, m)
	st := a.status
	a.mu.Unlock()
	w.WriteHeader(st)
	_, _ = io.WriteString(w, `{"kind":"Status","message":"events \"x\" is forbidden: User cannot create resource"}`)
}

var rot = Rotation{
	Namespace: "payments", Pod: "api-7d9f-abcde", UID: "0d7e-11", Object: "kms/db-password", File: "db-pass",
	OldVersion: "v1", NewVersion: "v2", At: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
}

// The Event on the wire: core/v1, on the Pod (namespace, name, UID), reason
// SecretRotated, type Normal, the object, file and versions in the message,
// a name derived from the pod, the object and the new version.
func TestAPISinkPostsTheEvent(t *testing.T) {
	api := &apiServer{status: http.StatusCreated}
	srv := httptest.NewServer(api)
	defer srv.Close()
	sink, err := NewAPISink(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Post(context.Background(), rot); err != nil {
		t.Fatal(err)
	}
	if got := api.paths[0]; got != "POST /api/v1/namespaces/payments/events application/json" {
		t.Fatalf("request %q", got)
	}
	b := api.bodies[0]
	obj := b["involvedObject"].(map[string]any)
	meta := b["metadata"].(map[string]any)
	if b["apiVersion"] != "v1" || b["kind"] != "Event" || b["reason"] != "SecretRotated" || b["type"] != "Normal" ||
		obj["kind"] != "Pod" || obj["apiVersion"] != "v1" || obj["namespace"] != "payments" || obj["name"] != rot.Pod || obj["uid"] != rot.UID ||
		meta["namespace"] != "payments" || meta["name"] != EventName(rot) || b["count"] != 1.0 ||
		b["firstTimestamp"] != "2026-11-27T10:00:00Z" || b["source"].(map[string]any)["component"] != Component {
		t.Fatalf("event %v", b)
	}
	msg := b["message"].(string)
	for _, want := range []string{"kms/db-password", "(file db-pass)", "v1 -> v2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// 409 (same name: posted before) is ErrExists; 403 names the RBAC to grant.
func TestAPISinkErrors(t *testing.T) {
	api := &apiServer{status: http.StatusConflict}
	srv := httptest.NewServer(api)
	defer srv.Close()
	sink, err := NewAPISink(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Post(context.Background(), rot); !errors.Is(err, ErrExists) {
		t.Fatalf("409: %v, want ErrExists", err)
	}
	api.status = http.StatusForbidden
	err = sink.Post(context.Background(), rot)
	if err == nil || errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "HTTP 403") ||
		!strings.Contains(err.Error(), "events.enable") || !strings.Contains(err.Error(), "is forbidden") {
		t.Fatalf("403: %v, want the API server's message and the chart value to set", err)
	}
	api.status = http.StatusInternalServerError
	if err := sink.Post(context.Background(), rot); err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("500: %v", err)
	}
}

var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// Event names are valid DNS subdomains for any valid pod name, the longest
// included, and differ per pod, object and new version.
func TestEventName(t *testing.T) {
	long := strings.Repeat("a", 200) + "." + strings.Repeat("b", 52) // 253 bytes
	seen := map[string]bool{}
	for _, r := range []Rotation{
		rot,
		{Namespace: "payments", Pod: rot.Pod, UID: rot.UID, Object: rot.Object, NewVersion: "v3"},
		{Namespace: "payments", Pod: rot.Pod, UID: rot.UID, Object: "oos/db-password", NewVersion: "v2"},
		{Namespace: "payments", Pod: "other", UID: "u2", Object: rot.Object, NewVersion: "v2"},
		{Namespace: "x", Pod: long, Object: rot.Object, NewVersion: "v2"},
		{Namespace: "x", Pod: strings.Repeat("c", 235) + "-" + strings.Repeat("d", 17), Object: rot.Object, NewVersion: "v2"},
	} {
		n := EventName(r)
		if len(n) > 253 || !dnsSubdomain.MatchString(n) {
			t.Errorf("EventName(%q) = %q (%d bytes): not a DNS subdomain", r.Pod, n, len(n))
		}
		if seen[n] {
			t.Errorf("EventName %q repeats for another pod, object or version", n)
		}
		seen[n] = true
	}
	again := rot
	again.File, again.OldVersion, again.At = "other-file", "v0", time.Now()
	if EventName(again) != EventName(rot) {
		t.Error("EventName depends on more than the pod, the object and the new version")
	}
}

// The message names the file only when it differs from the object's name,
// and bounds what it quotes.
func TestMessage(t *testing.T) {
	same := rot
	same.File = "db-password"
	if m := Message(same); strings.Contains(m, "(file") {
		t.Errorf("message %q names a file equal to the object's name", m)
	}
	huge := rot
	huge.NewVersion = strings.Repeat("9", 10000)
	if m := Message(huge); len(m) > 1024 || !strings.Contains(m, "(10000 bytes)") {
		t.Errorf("message of %d bytes for a 10000-byte version: %.80q", len(m), m)
	}
}
