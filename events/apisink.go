package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/kube"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Component is the Event's source and reporting component.
const Component = "csi-secrets-store-provider-alibabacloud"

// APISink posts core/v1 Events to the API server (the chart's events.enable
// grants create on events). It uses internal/kube's client, as per-pod
// RRSA's ServiceAccount reads do.
type APISink struct {
	base string
	hc   *http.Client
}

// NewAPISink posts with cfg (kube.Config).
func NewAPISink(cfg *rest.Config) (*APISink, error) {
	base, hc, err := kube.Client(cfg, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &APISink{base: base, hc: hc}, nil
}

// event is the subset of core/v1 Event the provider writes.
type event struct {
	APIVersion         string         `json:"apiVersion"`
	Kind               string         `json:"kind"`
	Metadata           eventMeta      `json:"metadata"`
	InvolvedObject     objectRef      `json:"involvedObject"`
	Reason             string         `json:"reason"`
	Message            string         `json:"message"`
	Type               string         `json:"type"`
	Source             map[string]any `json:"source"`
	FirstTimestamp     string         `json:"firstTimestamp"`
	LastTimestamp      string         `json:"lastTimestamp"`
	Count              int            `json:"count"`
	ReportingComponent string         `json:"reportingComponent"`
}

type eventMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

type objectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
}

// Message is the Event's text: the object, its file, the versions. Never a
// value: a Rotation holds none.
func Message(r Rotation) string {
	file := ""
	if r.File != "" && r.File != r.Object[strings.IndexByte(r.Object, '/')+1:] {
		file = " (file " + textutil.Clip(r.File, maxQuotedName) + ")"
	}
	obj, from, to := textutil.Clip(r.Object, maxQuotedName), textutil.Clip(r.OldVersion, maxQuotedVersion), textutil.Clip(r.NewVersion, maxQuotedVersion)
	const poll = "at the driver's next rotation poll (enableSecretRotation)"
	switch {
	case r.NewVersion == fetch.AbsentVersion:
		return fmt.Sprintf("%s%s was deleted upstream: version %s -> %s; the optional object's files leave the volume %s", obj, file, from, to, poll)
	case r.OldVersion == fetch.AbsentVersion:
		return fmt.Sprintf("%s%s was created upstream: version %s -> %s; the optional object's files join the volume %s", obj, file, from, to, poll)
	}
	return fmt.Sprintf("%s%s changed upstream: version %s -> %s; the volume gets the new value %s", obj, file, from, to, poll)
}

// EventName is the Event's name: the pod's name and a hash of the pod, the
// object and the new version, so that posting the same rotation twice (a
// restarted provider) is refused by the API server as already existing.
// Pod names are DNS subdomains, and so is the result.
func EventName(r Rotation) string {
	h := sha256.Sum256([]byte(r.Namespace + "\x00" + r.Pod + "\x00" + r.UID + "\x00" + r.Object + "\x00" + r.NewVersion))
	pod := r.Pod
	const suffix = 1 + 16
	if len(pod) > 253-suffix {
		pod = strings.TrimRight(pod[:253-suffix], ".-")
	}
	return pod + "." + hex.EncodeToString(h[:8])
}

// Post creates the Event in the pod's namespace.
func (s *APISink) Post(ctx context.Context, r Rotation) error {
	ts := r.At.UTC().Format(time.RFC3339)
	body, err := json.Marshal(event{
		APIVersion: "v1", Kind: "Event",
		Metadata:       eventMeta{Name: EventName(r), Namespace: r.Namespace},
		InvolvedObject: objectRef{APIVersion: "v1", Kind: "Pod", Namespace: r.Namespace, Name: r.Pod, UID: r.UID},
		Reason:         Reason, Message: Message(r), Type: "Normal",
		Source:         map[string]any{"component": Component},
		FirstTimestamp: ts, LastTimestamp: ts, Count: 1,
		ReportingComponent: Component,
	})
	if err != nil {
		return err
	}
	u := s.base + "/api/v1/namespaces/" + url.PathEscape(r.Namespace) + "/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("post event: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
		return nil
	case http.StatusConflict:
		return ErrExists
	case http.StatusForbidden, http.StatusUnauthorized:
		return fmt.Errorf("post event: HTTP %d (%s): grant the provider's service account create on events (chart value events.enable=true with rbac.install=true)",
			resp.StatusCode, statusMessage(msg))
	default:
		return fmt.Errorf("post event: HTTP %d (%s)", resp.StatusCode, statusMessage(msg))
	}
}

// statusMessage is the message of the API server's Status answer, bounded.
func statusMessage(b []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		return textutil.Clip(st.Message, 512)
	}
	return textutil.Clip(strings.TrimSpace(string(b)), 512)
}
