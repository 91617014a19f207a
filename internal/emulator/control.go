package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
)

const controlPrefix = "/_emulator/"

// Reset clears counters, the request log and faults, and turns "down" off
// in every region. The secrets, parameters, keys and sessions are kept;
// see ResetState.
func (e *Emulator) Reset() {
	e.ResetCounters()
	e.ResetRequests()
	e.ClearFaults()
	e.SetDown(false)
	e.mu.Lock()
	for _, rs := range e.regions {
		rs.down.Store(false)
	}
	e.mu.Unlock()
}

// ResetState restores secrets, parameters, keys, roles, OIDC providers,
// policies and the metadata identity from the seed, and forgets issued
// sessions. Regions added with AddRegion stay served; their objects are
// the seed's (Seed.Regions) or none.
func (e *Emulator) ResetState() { e.loadSeed(e.seed) }

// ExampleCommands returns curl commands that exercise the control API of
// this running emulator, for `dev` to print.
func (e *Emulator) ExampleCommands() []string {
	u := e.URL() + controlPrefix
	return []string{
		"curl -s " + u + "counters",
		"curl -s '" + u + "requests?limit=5'",
		"curl -s -X POST " + u + "kms/secrets -d '{\"name\":\"" + DemoSecretJSON + "\",\"value\":\"{\\\"username\\\":\\\"testuser\\\",\\\"password\\\":\\\"rotated\\\"}\"}'",
		"curl -s -X POST " + u + "oos/parameters -d '{\"name\":\"" + DemoParameter + "\",\"value\":\"v2\"}'",
		"curl -s -X POST " + u + "faults -d '{\"route\":\"kms\",\"kind\":\"throttle\",\"count\":1}'",
		"curl -s -X POST " + u + "faults -d '{\"route\":\"kms\",\"kind\":\"latency\",\"latency\":\"2s\"}'",
		"curl -s -X DELETE " + u + "faults",
		"curl -s -X POST " + u + "down",
		"curl -s -X POST " + u + "up",
		"curl -s -X POST " + u + "reset",
	}
}

type controlHandler struct {
	once sync.Once
	mux  *http.ServeMux
}

func (e *Emulator) serveControl(w http.ResponseWriter, r *http.Request) {
	e.control.once.Do(func() { e.control.mux = e.controlMux() })
	e.control.mux.ServeHTTP(w, r)
}

func (e *Emulator) controlMux() *http.ServeMux {
	m := http.NewServeMux()
	p := controlPrefix
	m.HandleFunc("GET "+p+"{$}", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, map[string]any{"routes": controlRoutes, "try": e.ExampleCommands()})
	})
	m.HandleFunc("GET "+p+"healthz", func(w http.ResponseWriter, r *http.Request) {
		down := map[string]bool{}
		for _, name := range e.Regions() {
			down[name] = e.RegionDown(name)
		}
		writeControl(w, http.StatusOK, map[string]any{"ok": true, "down": e.Down(), "regionsDown": down})
	})
	m.HandleFunc("GET "+p+"regions", func(w http.ResponseWriter, r *http.Request) {
		type region struct {
			Name        string `json:"name"`
			Primary     bool   `json:"primary"`
			URL         string `json:"url"`
			TLSEndpoint string `json:"tlsEndpoint"`
			Down        bool   `json:"down"`
		}
		out := []region{}
		for _, name := range e.Regions() {
			out = append(out, region{Name: name, Primary: name == e.Region(), URL: e.RegionURL(name), TLSEndpoint: e.RegionTLSEndpoint(name), Down: e.RegionDown(name)})
		}
		writeControl(w, http.StatusOK, map[string]any{"regions": out})
	})
	m.HandleFunc("GET "+p+"counters", func(w http.ResponseWriter, r *http.Request) {
		byRoute := map[string]int{}
		total := 0
		rows := e.Counters()
		for _, c := range rows {
			byRoute[c.Route] += c.Count
			total += c.Count
		}
		writeControl(w, http.StatusOK, map[string]any{"total": total, "byRoute": byRoute, "counters": rows})
	})
	m.HandleFunc("POST "+p+"reset", func(w http.ResponseWriter, r *http.Request) {
		e.Reset()
		state := r.URL.Query().Get("state")
		if state == "true" || state == "1" {
			e.ResetState()
		}
		writeControl(w, http.StatusOK, map[string]any{"ok": true})
	})
	m.HandleFunc("GET "+p+"faults", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, map[string]any{"faults": e.Faults()})
	})
	m.HandleFunc("POST "+p+"faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := decodeControl(r, &f); err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		if q := r.URL.Query().Get("region"); q != "" {
			if f.Region != "" && f.Region != q {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": "?region= and the body's region differ"})
				return
			}
			f.Region = q
		}
		id, err := e.AddFault(f)
		if err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeControl(w, http.StatusOK, map[string]any{"id": id})
	})
	m.HandleFunc("DELETE "+p+"faults", func(w http.ResponseWriter, r *http.Request) {
		e.ClearFaults()
		writeControl(w, http.StatusOK, map[string]any{"ok": true})
	})
	m.HandleFunc("DELETE "+p+"faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !e.ClearFault(r.PathValue("id")) {
			writeControl(w, http.StatusNotFound, map[string]any{"error": "no such fault"})
			return
		}
		writeControl(w, http.StatusOK, map[string]any{"ok": true})
	})
	for _, st := range []struct {
		path string
		down bool
	}{{"down", true}, {"up", false}} {
		m.HandleFunc("POST "+p+st.path, func(w http.ResponseWriter, r *http.Request) {
			rs, ok := controlRegion(w, r, e)
			if !ok {
				return
			}
			rs.down.Store(st.down)
			if r.URL.Query().Get("region") == "" {
				writeControl(w, http.StatusOK, map[string]any{"down": st.down})
				return
			}
			writeControl(w, http.StatusOK, map[string]any{"region": rs.name, "down": st.down})
		})
	}
	m.HandleFunc("POST "+p+"kms/secrets", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name      string            `json:"name"`
			Value     *string           `json:"value"`
			Base64    *string           `json:"base64"`
			VersionID string            `json:"versionId"`
			Tags      map[string]string `json:"tags"`
		}
		rs, ok := controlRegion(w, r, e)
		if !ok {
			return
		}
		if err := decodeControl(r, &req); err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		var data []byte
		binary := false
		switch {
		case req.Value != nil && req.Base64 == nil:
			data = []byte(*req.Value)
		case req.Base64 != nil && req.Value == nil:
			b, err := base64.StdEncoding.DecodeString(*req.Base64)
			if err != nil {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": "base64: " + err.Error()})
				return
			}
			data, binary = b, true
		default:
			writeControl(w, http.StatusBadRequest, map[string]any{"error": "give exactly one of value (text) or base64 (binary)"})
			return
		}
		v, err := e.putSecretValue(rs.name, req.Name, req.VersionID, data, binary)
		if err == nil && req.Tags != nil {
			err = e.SetSecretTagsIn(rs.name, req.Name, req.Tags)
		}
		if err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeControl(w, http.StatusOK, map[string]any{"name": req.Name, "versionId": v, "region": rs.name})
	})
	m.HandleFunc("POST "+p+"kms/secret-tags", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string            `json:"name"`
			Tags map[string]string `json:"tags"`
		}
		rs, ok := controlRegion(w, r, e)
		if !ok {
			return
		}
		if err := decodeControl(r, &req); err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		if err := e.SetSecretTagsIn(rs.name, req.Name, req.Tags); err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeControl(w, http.StatusOK, map[string]any{"name": req.Name, "region": rs.name})
	})
	for _, st := range []struct {
		path  string
		store oosStore
	}{{"oos/parameters", secretStore}, {"oos/plain-parameters", plainStore}} {
		m.HandleFunc("POST "+p+st.path, func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Name  string `json:"name"`
				Value string `json:"value"`
				Type  string `json:"type"`
			}
			rs, ok := controlRegion(w, r, e)
			if !ok {
				return
			}
			if err := decodeControl(r, &req); err != nil {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
				return
			}
			if st.store.secret && req.Type != "" && req.Type != secretParameterType {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": "encrypted parameters are always Secret; use oos/plain-parameters"})
				return
			}
			typ := req.Type
			if st.store.secret {
				typ = ""
			}
			v, err := e.putParameter(rs.name, st.store, req.Name, typ, req.Value)
			if err != nil {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
				return
			}
			writeControl(w, http.StatusOK, map[string]any{"name": req.Name, "version": v, "region": rs.name})
		})
	}
	for _, st := range []struct {
		path string
		del  func(region, name string) (bool, error)
	}{{"kms/secrets", e.DeleteSecretIn}, {"oos/parameters", e.DeleteParameterIn}, {"oos/plain-parameters", e.DeletePlainParameterIn}} {
		m.HandleFunc("DELETE "+p+st.path, func(w http.ResponseWriter, r *http.Request) {
			rs, ok := controlRegion(w, r, e)
			if !ok {
				return
			}
			name := r.URL.Query().Get("name")
			if name == "" {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": "give the object as ?name=<name>"})
				return
			}
			existed, err := st.del(rs.name, name)
			if err != nil {
				writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
				return
			}
			if !existed {
				writeControl(w, http.StatusNotFound, map[string]any{"error": "no such object in region " + rs.name + ": " + name})
				return
			}
			writeControl(w, http.StatusOK, map[string]any{"name": name, "region": rs.name, "deleted": true})
		})
	}
	m.HandleFunc("POST "+p+"sts/expire", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, map[string]any{"expired": e.ExpireSessions()})
	})
	m.HandleFunc("GET "+p+"sts/oidc-providers", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, map[string]any{"oidcProviders": e.oidcProviderSummaries()})
	})
	m.HandleFunc("POST "+p+"sts/oidc-providers", func(w http.ResponseWriter, r *http.Request) {
		var req OIDCProvider
		if err := decodeControl(r, &req); err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		replaced, err := e.putOIDCProvider(req.ARN, req.Issuer, []byte(req.JWKS))
		if err != nil {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeControl(w, http.StatusOK, map[string]any{"arn": req.ARN, "issuer": req.Issuer, "replaced": replaced})
	})
	m.HandleFunc("DELETE "+p+"sts/oidc-providers", func(w http.ResponseWriter, r *http.Request) {
		arn := r.URL.Query().Get("arn")
		if arn == "" {
			writeControl(w, http.StatusBadRequest, map[string]any{"error": "give the provider as ?arn=<arn>"})
			return
		}
		if !e.RemoveOIDCProvider(arn) {
			writeControl(w, http.StatusNotFound, map[string]any{"error": "no such OIDC provider: " + arn})
			return
		}
		writeControl(w, http.StatusOK, map[string]any{"ok": true})
	})
	m.HandleFunc("GET "+p+"requests", func(w http.ResponseWriter, r *http.Request) {
		recs := e.Requests()
		if route := r.URL.Query().Get("route"); route != "" {
			kept := recs[:0]
			for _, rec := range recs {
				if rec.Route == route {
					kept = append(kept, rec)
				}
			}
			recs = kept
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n >= 0 && n < len(recs) {
			recs = recs[len(recs)-n:]
		}
		writeControl(w, http.StatusOK, map[string]any{"requests": recs})
	})
	m.HandleFunc("GET "+p+"state", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, e.stateSummary())
	})
	m.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusNotFound, map[string]any{"error": "unknown control route " + r.Method + " " + r.URL.Path, "routes": controlRoutes})
	})
	return m
}

// controlRegion resolves ?region= (absent: the primary), answering 404 for
// an unknown region.
func controlRegion(w http.ResponseWriter, r *http.Request, e *Emulator) (*regionState, bool) {
	rs, err := e.lookupRegion(r.URL.Query().Get("region"))
	if err != nil {
		writeControl(w, http.StatusNotFound, map[string]any{"error": err.Error(), "regions": e.Regions()})
		return nil, false
	}
	return rs, true
}

// controlRoutes documents the control API (also in the package comment).
var controlRoutes = []string{
	"GET    /_emulator/                 this list",
	"GET    /_emulator/healthz          liveness and down state (of every region too)",
	"GET    /_emulator/regions          served regions: name, url, tlsEndpoint, down",
	"GET    /_emulator/counters         call counters by route/action/principal/resource/outcome",
	"GET    /_emulator/requests         recent requests (?limit=N&route=kms), no secret values",
	"GET    /_emulator/state            secret/parameter names, versions, stages, tags, per region (no values)",
	"POST   /_emulator/reset            clear counters, requests, faults, down (?state=true also reloads the seed)",
	"GET    /_emulator/faults           installed faults",
	"POST   /_emulator/faults           add a fault: {region,route,action,resource,principal,kind,count,everyNth,latency,status,code,message,timeLeftMs} (?region= sets region)",
	"DELETE /_emulator/faults           clear all faults",
	"DELETE /_emulator/faults/{id}      clear one fault",
	"POST   /_emulator/down             make every API connection fail (reset); ?region= for one region's ports",
	"POST   /_emulator/up               serve again (?region= likewise)",
	"POST   /_emulator/kms/secrets      new secret version: {name, value | base64, versionId?, tags?} (?region=)",
	"DELETE /_emulator/kms/secrets      delete a secret with its versions: ?name=<name>[&region=]",
	"POST   /_emulator/kms/secret-tags  replace a secret's tags: {name, tags} (?region=)",
	"POST   /_emulator/oos/parameters   new encrypted parameter version: {name, value} (?region=)",
	"DELETE /_emulator/oos/parameters   delete an encrypted parameter: ?name=<name>[&region=]",
	"POST   /_emulator/oos/plain-parameters  new plain parameter version: {name, value, type?: String|StringList} (?region=)",
	"DELETE /_emulator/oos/plain-parameters  delete a plain parameter: ?name=<name>[&region=]",
	"POST   /_emulator/sts/expire       expire every issued STS session",
	"GET    /_emulator/sts/oidc-providers  registered OIDC providers (arn, issuer, kids)",
	"POST   /_emulator/sts/oidc-providers  register or replace a verified OIDC provider: {arn, issuer, jwks} (jwks: JSON text or the key set object)",
	"DELETE /_emulator/sts/oidc-providers  unregister one (?arn=<arn>): its tokens are again decoded unverified",
	"GET    /_emulator/credentials-uri  credentials for ALIBABA_CLOUD_CREDENTIALS_URI (?role=<arn>)",
}

func (e *Emulator) stateSummary() map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var keys, roles []string
	for id, k := range e.keys {
		keys = append(keys, fmt.Sprintf("%s (%s)", id, k.principal))
	}
	for _, r := range e.roles {
		roles = append(roles, r.ARN)
	}
	oidcARNs := []string{}
	for _, p := range e.oidcProviders {
		oidcARNs = append(oidcARNs, p.arn)
	}
	sort.Strings(keys)
	sort.Strings(roles)
	sort.Strings(oidcARNs)
	out := map[string]any{
		"region": e.region, "accountId": e.account,
		"accessKeys": keys, "roles": roles,
		"imds":       map[string]any{"roleName": e.imds.roleName, "roleArn": e.imds.roleARN, "region": e.imds.region, "hardened": e.imds.hardened},
		"sessionTTL": e.sessionTTL.String(), "activeSessions": len(e.sessions),
		"oidcProviders": oidcARNs,
	}
	for k, v := range regionSummary(e.primary) {
		out[k] = v
	}
	regions := map[string]any{}
	for _, rs := range e.extraRegionsLocked() {
		sum := regionSummary(rs)
		sum["down"] = rs.down.Load()
		regions[rs.name] = sum
	}
	out["regions"] = regions
	return out
}

// regionSummary lists a region's objects without values. e.mu must be held.
func regionSummary(rs *regionState) map[string]any {
	type ver struct {
		ID         string   `json:"versionId"`
		DataType   string   `json:"dataType"`
		Stages     []string `json:"stages"`
		CreateTime string   `json:"createTime"`
	}
	secrets := map[string][]ver{}
	tags := map[string]map[string]string{}
	for name, s := range rs.secrets {
		secrets[name] = []ver{}
		for _, v := range s.versions {
			secrets[name] = append(secrets[name], ver{ID: v.id, DataType: v.dataType, Stages: append([]string{}, v.stages...), CreateTime: v.created.UTC().Format(isoTime)})
		}
		if len(s.tags) > 0 {
			tags[name] = cloneMap(s.tags)
		}
	}
	params := map[string]int{}
	for name, p := range rs.params {
		params[name] = len(p.versions)
	}
	plain := map[string]any{}
	for name, p := range rs.plain {
		plain[name] = map[string]any{"type": p.typ, "versions": len(p.versions)}
	}
	return map[string]any{"secrets": secrets, "secretTags": tags, "parameters": params, "plainParameters": plain}
}

func decodeControl(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func writeControl(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"marshal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
