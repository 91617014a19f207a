package fetch

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// batchFake is a Source and BatchSource over a map of OOS values, counting
// calls.
type batchFake struct {
	mu      sync.Mutex
	values  map[string]string
	version int
	singles int
	batches [][]string
}

func (b *batchFake) Get(_ context.Context, _ *auth.Identity, t Target) (Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.singles++
	v, ok := b.values[t.Name]
	if !ok {
		return Result{}, &Error{Kind: KindNotFound, Service: TypeOOS, Message: "no such parameter"}
	}
	return Result{Data: Bytes(v), Version: strconv.Itoa(b.version)}, nil
}

func (b *batchFake) GetBatch(_ context.Context, _ *auth.Identity, ts []Target) ([]Result, []bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var names []string
	res, found := make([]Result, len(ts)), make([]bool, len(ts))
	for i, t := range ts {
		names = append(names, t.Name)
		if v, ok := b.values[t.Name]; ok {
			res[i], found[i] = Result{Data: Bytes(v), Version: strconv.Itoa(b.version)}, true
		}
	}
	b.batches = append(b.batches, names)
	return res, found, nil
}

func (b *batchFake) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.singles, len(b.batches)
}

func TestBatchedMissesAndRefresh(t *testing.T) {
	src := &batchFake{values: map[string]string{}, version: 1}
	var lines string
	for i := 0; i < 12; i++ {
		n := "p" + strconv.Itoa(i)
		src.values[n] = "v-" + n
		lines += "- {objectName: " + n + ", objectType: oos}\n"
	}
	clk := &clock{t: time.Unix(1000, 0)}
	c := NewCache(CacheOptions{TTL: time.Minute, Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	f := NewFetcher(c, src, FetcherOptions{Region: "cn-hangzhou", OOSEndpoint: "http://127.0.0.1:1"})
	id := &auth.Identity{Fingerprint: "fp"}
	spec, err := f.ParseParameters(map[string]string{ParamObjects: lines + "- {objectName: pinned, objectType: oos, objectVersion: \"1\"}\n"})
	if err != nil {
		t.Fatal(err)
	}
	src.values["pinned"] = "x"
	files, results, err := f.Fetch(ctx, id, spec)
	if err != nil || len(files) != 13 {
		t.Fatal(len(files), err)
	}
	singles, batches := src.counts()
	// 12 latest values: two calls (10 + 2); the pinned version alone.
	if batches != 2 || singles != 1 || len(src.batches[0])+len(src.batches[1]) != 12 {
		t.Fatalf("%d singles, batches %v", singles, src.batches)
	}
	for _, r := range results[:12] {
		if r.Outcome != OutcomeMiss {
			t.Fatalf("%s: %s", r.Object.Name, r.Outcome)
		}
	}
	// Due together at 0.9 TTL: refreshed in batches again.
	src.version = 2
	clk.Add(55 * time.Second)
	c.RefreshNow()
	singles, batches = src.counts()
	if batches != 4 || singles != 2 {
		t.Fatalf("refresh: %d singles, %d batches (%v)", singles, batches, src.batches)
	}
	files, _, err = f.Fetch(ctx, id, spec)
	if err != nil || files[0].Version != "2" {
		t.Fatalf("after the refresh: %v %v", files[0], err)
	}
	// A name the batch reports invalid is read alone, and fails as alone.
	delete(src.values, "p3")
	clk.Add(2 * time.Minute)
	_, _, err = f.Fetch(ctx, id, spec)
	if KindOf(err) != KindNotFound {
		t.Fatalf("invalid name: %v", err)
	}
}
