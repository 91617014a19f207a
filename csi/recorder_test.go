package csi

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// mountLog is a MountRecorder that keeps what it was told.
type mountLog struct {
	calls []string
	keys  [][]fetch.Key
}

func (m *mountLog) Mounted(namespace, name, uid string, results []fetch.ObjectResult) {
	m.calls = append(m.calls, namespace+"/"+name+"/"+uid)
	var ks []fetch.Key
	for _, r := range results {
		ks = append(ks, r.Key)
	}
	m.keys = append(m.keys, ks)
}

// The recorder of rotation events hears of every successful Mount, once,
// with the pod and the cache key of each object; of a failed Mount, never.
func TestMountTellsTheRecorder(t *testing.T) {
	rec := &mountLog{}
	m := newMountFakes(fetch.FetcherOptions{}, map[string]error{"gone": errors.New("boom")}, nil)
	m.srv.Mounts = rec
	req := func(objects string) *v1alpha1.MountRequest {
		a, _ := json.Marshal(map[string]string{"objects": objects, AttrPodName: "web-0", AttrPodNamespace: "app", AttrPodUID: "uid-1", AttrServiceAccount: "sa"})
		return &v1alpha1.MountRequest{Attributes: string(a), Secrets: "null", Permission: "420"}
	}
	if _, err := m.srv.Mount(context.Background(), req("- objectName: db\n- objectName: p\n  objectType: oos\n")); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 || rec.calls[0] != "app/web-0/uid-1" {
		t.Fatalf("recorder calls %q, want one for app/web-0/uid-1", rec.calls)
	}
	if ks := rec.keys[0]; len(ks) != 2 || ks[0].Name != "db" || ks[0].Type != fetch.TypeKMS || ks[1].Name != "p" || ks[1].Type != fetch.TypeOOS || ks[0].Identity != "fp" {
		t.Fatalf("keys %+v, want db (kms) and p (oos) under the Mount's identity", ks)
	}
	if _, err := m.srv.Mount(context.Background(), req("- objectName: gone\n")); err == nil {
		t.Fatal("Mount of a failing object succeeded")
	}
	if _, err := m.srv.Mount(context.Background(), req("- objectName: [")); err == nil {
		t.Fatal("Mount of a bad class succeeded")
	}
	if len(rec.calls) != 1 {
		t.Fatalf("recorder calls %q: failed Mounts were recorded", rec.calls)
	}
}
