package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// Batched reads: the cache misses of one Mount that are OOS parameters of
// the same identity, type and endpoint are read with one
// GetSecretParameters or GetParameters per MaxBatch names instead of one
// call each. Coalescing is unchanged: a key another caller is already
// fetching is joined, not read again, and a key this batch leads is joined
// by every other caller, exactly as for a single read.

// MaxBatch is the most names GetSecretParameters and GetParameters take in
// one call (the OOS API reference: "up to 10").
const MaxBatch = 10

// BatchFunc reads the values of several keys at once: one Result or error
// for each index it is given, in order.
type BatchFunc func(ctx context.Context, which []int) ([]Result, []error)

// GetBatch answers keys like Get. The plain misses it leads (no entry, no
// fetch in flight) are read together by batch on one cache goroutine; keys
// with an entry (hit, expired, failing) take Get's path one by one. Each
// record keeps its member (members[i]), so the refresher can read the
// records of one group that are due together in one batch again.
func (c *Cache) GetBatch(ctx context.Context, keys []Key, fetches []FetchFunc, members []*batchMember, batch BatchFunc) ([]*Entry, []Outcome, []error) {
	n := len(keys)
	entries, outcomes, errs := make([]*Entry, n), make([]Outcome, n), make([]error, n)
	flights := make([]*flight, n)
	var lead []int
	var leadRecs []*record
	var leadFlights []*flight
	var single []int
	recs := make([]*record, n)
	for i, k := range keys {
		recs[i] = c.record(k, fetches[i])
		recs[i].lastRead.Store(c.opts.Now().UnixNano())
		if i < len(members) && members[i] != nil {
			recs[i].member.Store(members[i])
		}
	}
	// Every plain miss is registered under one hold of the flight lock, so
	// concurrent Mounts of the same names never split them between two
	// batches: the first leads them all, the others join.
	c.flMu.Lock()
	for i, r := range recs {
		if r.entry.Load() != nil {
			single = append(single, i)
			continue
		}
		f, leader := c.beginLocked(r, nil)
		flights[i] = f
		if leader {
			lead = append(lead, i)
			leadRecs = append(leadRecs, r)
			leadFlights = append(leadFlights, f)
		}
	}
	c.flMu.Unlock()
	switch len(lead) {
	case 0:
	case 1:
		r, f := leadRecs[0], leadFlights[0]
		if !c.spawn(func() { c.fly(c.life, r, f) }) {
			c.fly(ctx, r, f)
		}
	default:
		if !c.spawn(func() { c.flyBatch(c.life, leadRecs, leadFlights, lead, batch) }) {
			c.flyBatch(ctx, leadRecs, leadFlights, lead, batch)
		}
	}
	var wg sync.WaitGroup
	for _, i := range single {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries[i], outcomes[i], errs[i] = c.Get(ctx, keys[i], fetches[i])
		}()
	}
	leader := make(map[int]bool, len(lead))
	for _, i := range lead {
		leader[i] = true
	}
	for i, f := range flights {
		if f == nil {
			continue
		}
		select {
		case <-f.done:
			entries[i], errs[i] = f.e, f.err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
		switch {
		case errs[i] != nil:
			entries[i], outcomes[i] = nil, OutcomeError
		case leader[i]:
			outcomes[i] = OutcomeMiss
		default:
			outcomes[i] = OutcomeCoalesced
		}
		c.opts.Observer.CacheLookup(keys[i].Type, keys[i].Name, outcomes[i])
	}
	wg.Wait()
	return entries, outcomes, errs
}

// flyBatch runs one batch read for the records it leads under base and
// FetchTimeout, publishes each result, and ends each flight.
func (c *Cache) flyBatch(base context.Context, recs []*record, flights []*flight, which []int, batch BatchFunc) {
	defer func() {
		c.flMu.Lock()
		for _, r := range recs {
			delete(c.flights, r.id)
		}
		c.flMu.Unlock()
		for _, f := range flights {
			close(f.done)
		}
	}()
	fctx, cancel := context.WithTimeout(base, c.opts.FetchTimeout)
	defer cancel()
	res, errs := batch(fctx, which)
	for j, r := range recs {
		var rs Result
		var err error
		if j < len(res) {
			rs = res[j]
		}
		if j < len(errs) {
			err = errs[j]
		}
		if j >= len(res) && err == nil {
			err = &Error{Kind: KindInternal, Message: "the batch read returned no result for this object"}
		}
		flights[j].e, flights[j].err = c.publish(r, rs, err)
	}
}

// BatchSource is a Source that can read several OOS parameters of one type
// and endpoint in one call. found[i] false means the upstream reported the
// name invalid (it does not exist, or is not readable by that name).
type BatchSource interface {
	GetBatch(ctx context.Context, id *auth.Identity, ts []Target) (res []Result, found []bool, err error)
}

// batchable reports whether o can join a batch read: a latest OOS value,
// read with the Mount's identity, without a failover region (a failed batch
// would otherwise have to fail over name by name).
func batchable(o *Object) bool {
	return o.Type.IsOOS() && o.Version == "" && o.History == 0 && o.CrossAccountRoleArn == "" && o.FailoverRegion == "" && !o.Optional
}

// batchGroup is what one batch call can read together: one identity, one
// type, one endpoint and region.
type batchGroup struct {
	identity string
	typ      ObjectType
	endpoint string
	region   string
}

func groupOf(k Key, t Target) batchGroup {
	return batchGroup{identity: k.Identity, typ: t.Type, endpoint: t.Endpoint, region: t.Region}
}

// batchMember is what the refresher needs to read a record again in a
// batch: its group, target and the reader (its single read is the record's
// newest fetch function).
type batchMember struct {
	group  batchGroup
	target Target
	id     *auth.Identity
	f      *Fetcher
	bs     BatchSource
}

// refreshBatches starts one batch refresh per group of at least two due
// records that have members, and returns the records it did not take.
// Each taken record is marked busy and its flight begun, as a single
// refresh would.
func (c *Cache) refreshBatches(due []*record, seen []*Entry) (rest []*record, restSeen []*Entry) {
	groups := map[batchGroup][]int{}
	for i, r := range due {
		if m := r.member.Load(); m != nil {
			groups[m.group] = append(groups[m.group], i)
			continue
		}
		rest, restSeen = append(rest, r), append(restSeen, seen[i])
	}
	for _, idx := range groups {
		if len(idx) < 2 {
			for _, i := range idx {
				rest, restSeen = append(rest, due[i]), append(restSeen, seen[i])
			}
			continue
		}
		for start := 0; start < len(idx); start += MaxBatch {
			c.refreshBatch(due, seen, idx[start:min(start+MaxBatch, len(idx))])
		}
	}
	return rest, restSeen
}

// refreshBatch refreshes the records due[idx...] of one group in one batch.
func (c *Cache) refreshBatch(due []*record, seen []*Entry, idx []int) {
	var recs []*record
	var flights []*flight
	var members []*batchMember
	c.flMu.Lock()
	for _, i := range idx {
		r := due[i]
		if !r.busy.CompareAndSwap(false, true) {
			continue
		}
		f, leader := c.beginLocked(r, seen[i])
		if !leader {
			r.busy.Store(false)
			continue
		}
		recs, flights, members = append(recs, r), append(flights, f), append(members, r.member.Load())
	}
	c.flMu.Unlock()
	if len(recs) == 0 {
		return
	}
	m0 := members[0]
	targets, singles, which := make([]Target, len(members)), make([]FetchFunc, len(members)), make([]int, len(members))
	for j, m := range members {
		// The newest single read: the record keeps the latest caller's.
		targets[j], singles[j], which[j] = m.target, recs[j].fetchFn(), j
	}
	batch := m0.f.batchFunc(m0.id, m0.bs, targets, singles)
	c.refreshing.Add(1)
	done := func() {
		for _, r := range recs {
			r.busy.Store(false)
		}
		c.refreshing.Done()
	}
	if !c.spawn(func() {
		defer done()
		c.flyBatch(c.life, recs, flights, which, batch)
	}) {
		// Run has returned: end the flights unread, as a single refresh
		// would not have started.
		c.flMu.Lock()
		for _, r := range recs {
			delete(c.flights, r.id)
		}
		c.flMu.Unlock()
		for _, f := range flights {
			f.err = context.Canceled
			close(f.done)
		}
		done()
	}
}

// batchFunc reads targets[which[...]] with GetBatch, MaxBatch names per
// call, under the rate limit, the fetch slots and the retry policy. Names
// reported invalid, and every name of a call refused for a reason other
// than availability, are read one by one with their single fetch, so each
// object gets exactly the answer (or error) a single read would give it.
func (f *Fetcher) batchFunc(id *auth.Identity, bs BatchSource, targets []Target, singles []FetchFunc) BatchFunc {
	return func(ctx context.Context, which []int) ([]Result, []error) {
		res, errs := make([]Result, len(which)), make([]error, len(which))
		var wg sync.WaitGroup
		for start := 0; start < len(which); start += MaxBatch {
			chunk := which[start:min(start+MaxBatch, len(which))]
			base := start
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts := make([]Target, len(chunk))
				for j, i := range chunk {
					ts[j] = targets[i]
				}
				got, found, err := f.retryBatch(ctx, id, bs, ts)
				for j, i := range chunk {
					switch {
					case err != nil && failsOver(err):
						errs[base+j] = err
					case err != nil || !found[j]:
						res[base+j], errs[base+j] = singles[i](ctx)
					default:
						res[base+j] = got[j]
					}
				}
			}()
		}
		wg.Wait()
		return res, errs
	}
}

// retryBatch is retry for one batch call.
func (f *Fetcher) retryBatch(ctx context.Context, id *auth.Identity, bs BatchSource, ts []Target) ([]Result, []bool, error) {
	var last error
	t := ts[0]
	for attempt := 0; attempt < f.opts.Retry.MaxAttempts; attempt++ {
		if attempt > 0 {
			if err := f.wait(ctx, t, attempt, last); err != nil {
				return nil, nil, last
			}
		}
		res, found, err := f.onceBatch(ctx, id, bs, ts)
		if err == nil {
			if len(res) != len(ts) || len(found) != len(ts) {
				return nil, nil, &Error{Kind: KindUnavailable, Service: t.Type.Service(), Message: fmt.Sprintf("malformed batch answer: %d results for %d names", len(res), len(ts))}
			}
			return res, found, nil
		}
		last = err
		if !KindOf(err).Retryable() || ctx.Err() != nil {
			return nil, nil, err
		}
	}
	return nil, nil, last
}

// GetBatch reads several OOS parameters of one type and endpoint with one
// GetSecretParameters (with decryption) or GetParameters call.
func (s *SDKSource) GetBatch(ctx context.Context, id *auth.Identity, ts []Target) (res []Result, found []bool, err error) {
	t := ts[0]
	defer func() {
		if r := recover(); r != nil {
			res, found, err = nil, nil, sdkPanic(t, r)
		}
	}()
	if id == nil || id.Credential == nil {
		return nil, nil, &Error{Kind: KindUnauthenticated, Service: TypeOOS, Message: "no credential"}
	}
	c, err := s.client(id, t)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(ts))
	for i, x := range ts {
		if x.Type != t.Type || x.Endpoint != t.Endpoint || x.Region != t.Region {
			return nil, nil, &Error{Kind: KindInternal, Service: TypeOOS, Message: "a batch mixes types or endpoints"}
		}
		names[i] = x.Name
	}
	namesJSON, err := json.Marshal(names)
	if err != nil {
		return nil, nil, &Error{Kind: KindInternal, Service: TypeOOS, Message: "encoding the names"}
	}
	var params []oosParam
	if t.Type == TypeOOS {
		var r *oos.GetSecretParametersResponse
		r, err = c.oos.GetSecretParametersWithContext(ctx, &oos.GetSecretParametersRequest{Names: dara.String(string(namesJSON)), WithDecryption: dara.Bool(true)}, &dara.RuntimeOptions{})
		if err == nil && (r == nil || r.Body == nil) {
			err = malformed(t, "no body")
		}
		if err == nil {
			params = versionsOf(r.Body.Parameters, func(p *oos.GetSecretParametersResponseBodyParameters) oosParam {
				return oosParam{name: p.Name, value: p.Value, version: p.ParameterVersion}
			})
		}
	} else {
		var r *oos.GetParametersResponse
		r, err = c.oos.GetParametersWithContext(ctx, &oos.GetParametersRequest{Names: dara.String(string(namesJSON))}, &dara.RuntimeOptions{})
		if err == nil && (r == nil || r.Body == nil) {
			err = malformed(t, "no body")
		}
		if err == nil {
			params = versionsOf(r.Body.Parameters, func(p *oos.GetParametersResponseBodyParameters) oosParam {
				return oosParam{name: p.Name, value: p.Value, version: p.ParameterVersion}
			})
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		e := Classify(TypeOOS, BatchAction(t.Type), err)
		if e.Kind == KindThrottled && e.RetryAfter == 0 {
			e.RetryAfter = c.http.hint()
		}
		return nil, nil, e
	}
	got := make(map[string]Result, len(params))
	for _, p := range params {
		if p.name != nil {
			got[*p.name] = Result{Data: Bytes(*p.value), Version: strconv.Itoa(int(*p.version))}
		}
	}
	res, found = make([]Result, len(ts)), make([]bool, len(ts))
	for i, n := range names {
		res[i], found[i] = got[n]
	}
	return res, found, nil
}
