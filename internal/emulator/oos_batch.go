package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// OOS per-call limits (docs/emulator.md, "OOS batch, version and path
// actions").
const (
	// GetParameters, GetSecretParameters: Names holds 1 to 10 names.
	maxNamesPerCall = 10
	// ListParameterVersions, ListSecretParameterVersions: MaxResults 10
	// to 100, default 50.
	listVersionsMinResults = 10
	listVersionsMaxResults = 100
	listVersionsDefResults = 50
	// GetParametersByPath, GetSecretParametersByPath: MaxResults 1 to 10,
	// default 10; Path 1 to 200 characters.
	byPathMaxResults       = 10
	byPathDefResults       = 10
	maxParameterPathLength = 200
)

// parseNames reads the Names parameter: a JSON array of parameter names,
// duplicates dropped, order kept.
func parseNames(s string) ([]string, error) {
	var raw []string
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errors.New(`the parameter Names must be a JSON array of names like ["name1","name2"]`)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(raw))
	for _, n := range raw {
		if n == "" {
			return nil, errors.New("the parameter Names holds an empty name")
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// oosGetSecretParameters implements OOS GetSecretParameters (2019-06-01).
func (e *Emulator) oosGetSecretParameters(c *call, id *identity) {
	e.oosGetMany(c, id, secretStore, ActionOOSGetSecretParameters, c.params.Get("WithDecryption") == "true")
}

// oosGetParameters implements OOS GetParameters (2019-06-01).
func (e *Emulator) oosGetParameters(c *call, id *identity) {
	e.oosGetMany(c, id, plainStore, ActionOOSGetParameters, true)
}

// oosGetMany answers the latest version of up to ten parameters by name:
// Parameters for those that exist, in the order asked, and their names in
// InvalidParameters for those that do not. Every name must be allowed by
// the caller's policy, or the whole call is refused.
func (e *Emulator) oosGetMany(c *call, id *identity, store oosStore, action string, withValue bool) {
	raw := c.params.Get("Names")
	if raw == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter Names needed but no provided."))
		return
	}
	names, err := parseNames(raw)
	if err != nil {
		c.writeError(errf(http.StatusBadRequest, "InvalidParameter", "%s.", capitalize(err.Error())))
		return
	}
	if len(names) == 0 || len(names) > maxNamesPerCall {
		c.writeError(errf(http.StatusBadRequest, "InvalidParameter", "The parameter Names must hold 1 to %d names, got %d.", maxNamesPerCall, len(names)))
		return
	}
	for _, name := range names {
		if apiErr := e.authorize(c, id, action, name, e.oosDeniedCode, e.oosARN(c.region, store.kind(), name)); apiErr != nil {
			c.writeError(apiErr)
			return
		}
	}
	params := []map[string]any{}
	invalid := []string{}
	e.mu.Lock()
	m := store.of(c.rs)
	for _, name := range names {
		p, ok := m[name]
		if !ok {
			invalid = append(invalid, name)
			continue
		}
		params = append(params, e.oosParameterBody(p, len(p.versions), withValue))
	}
	e.mu.Unlock()
	c.writeJSON(http.StatusOK, map[string]any{"RequestId": c.requestID, "Parameters": params, "InvalidParameters": invalid})
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// oosListSecretParameterVersions implements OOS ListSecretParameterVersions
// (2019-06-01).
func (e *Emulator) oosListSecretParameterVersions(c *call, id *identity) {
	e.oosListVersions(c, id, secretStore, ActionOOSListSecretParameterVersions, c.params.Get("WithDecryption") == "true")
}

// oosListParameterVersions implements OOS ListParameterVersions (2019-06-01).
func (e *Emulator) oosListParameterVersions(c *call, id *identity) {
	e.oosListVersions(c, id, plainStore, ActionOOSListParameterVersions, true)
}

// oosListVersions answers the versions of one parameter, newest first, in
// pages of MaxResults (10 to 100, default 50) chained by NextToken.
func (e *Emulator) oosListVersions(c *call, id *identity, store oosStore, action string, withValue bool) {
	name, ok := e.oosNamed(c, id, store, action)
	if !ok {
		return
	}
	maxResults, apiErr := intParam(c, "MaxResults", listVersionsDefResults, listVersionsMinResults, listVersionsMaxResults)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	pos, resume, apiErr := decodeToken(c)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}

	e.mu.Lock()
	body, apiErr := e.oosVersionsPage(store.of(c.rs), name, pos, resume, maxResults, withValue)
	e.mu.Unlock()
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	body["RequestId"] = c.requestID
	c.writeJSON(http.StatusOK, body)
}

// oosVersionsPage renders one page of a parameter's versions, newest
// first, resuming below the version in the token. e.mu must be held.
func (e *Emulator) oosVersionsPage(m map[string]*oosParam, name, pos string, resume bool, maxResults int, withValue bool) (map[string]any, *apiError) {
	p, ok := m[name]
	if !ok {
		return nil, errf(http.StatusNotFound, "EntityNotExists.Parameter", "The Parameter (%s) does not exist.", name)
	}
	// A token holds the last version answered.
	next := len(p.versions)
	if resume {
		n, err := strconv.Atoi(pos)
		if err != nil || n < 1 || n > len(p.versions) {
			return nil, errf(http.StatusBadRequest, "InvalidParameter", "The parameter NextToken is invalid.")
		}
		next = n - 1
	}
	owner := "root(" + e.account + ")"
	versions := []map[string]any{}
	for v := next; v >= 1 && len(versions) < maxResults; v-- {
		item := map[string]any{
			"ParameterVersion": v,
			"UpdatedDate":      p.versions[v-1].updated.UTC().Format(isoTime),
			"UpdatedBy":        owner,
		}
		if withValue {
			item["Value"] = p.versions[v-1].value
		}
		versions = append(versions, item)
	}
	body := map[string]any{
		"Name":              p.name,
		"Id":                p.id,
		"Type":              p.typ,
		"Description":       p.description,
		"CreatedDate":       p.created.UTC().Format(isoTime),
		"CreatedBy":         owner,
		"MaxResults":        maxResults,
		"TotalCount":        len(p.versions),
		"ParameterVersions": versions,
	}
	if last := next - len(versions) + 1; len(versions) > 0 && last > 1 {
		body["NextToken"] = encodeToken(strconv.Itoa(last))
	}
	return body, nil
}

// oosGetSecretParametersByPath implements OOS GetSecretParametersByPath
// (2019-06-01).
func (e *Emulator) oosGetSecretParametersByPath(c *call, id *identity) {
	e.oosByPath(c, id, secretStore, ActionOOSGetSecretParametersByPath, c.params.Get("WithDecryption") == "true")
}

// oosGetParametersByPath implements OOS GetParametersByPath (2019-06-01).
func (e *Emulator) oosGetParametersByPath(c *call, id *identity) {
	e.oosByPath(c, id, plainStore, ActionOOSGetParametersByPath, true)
}

// underPath reports whether a parameter name lies under a path: directly
// (/app/prod/db under /app/prod) or, when recursive, at any depth
// (/app/prod/db/user too). The path may end with a slash or not.
func underPath(name, path string, recursive bool) bool {
	prefix := strings.TrimRight(path, "/") + "/"
	if !strings.HasPrefix(name, prefix) || len(name) == len(prefix) {
		return false
	}
	return recursive || !strings.Contains(name[len(prefix):], "/")
}

// oosByPath answers the latest version of the parameters under Path,
// sorted by name, in pages of MaxResults (1 to 10, default 10) chained by
// NextToken. TotalCount counts every parameter under the path.
func (e *Emulator) oosByPath(c *call, id *identity, store oosStore, action string, withValue bool) {
	path := c.params.Get("Path")
	if path == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter Path needed but no provided."))
		return
	}
	if len(path) > maxParameterPathLength {
		c.writeError(errf(http.StatusBadRequest, "InvalidParameter", "The parameter Path must be 1 to %d characters long.", maxParameterPathLength))
		return
	}
	if apiErr := e.authorize(c, id, action, path, e.oosDeniedCode, e.oosARN(c.region, store.kind(), path)); apiErr != nil {
		c.writeError(apiErr)
		return
	}
	maxResults, apiErr := intParam(c, "MaxResults", byPathDefResults, 1, byPathMaxResults)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	after, resume, apiErr := decodeToken(c)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	recursive := c.params.Get("Recursive") == "true"

	e.mu.Lock()
	m := store.of(c.rs)
	var names []string
	for name := range m {
		if underPath(name, path, recursive) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	start := 0
	if resume {
		start = sort.SearchStrings(names, after)
		if start < len(names) && names[start] == after {
			start++
		}
	}
	end := min(start+maxResults, len(names))
	params := make([]map[string]any, 0, end-start)
	for _, name := range names[start:end] {
		p := m[name]
		body := e.oosParameterBody(p, len(p.versions), withValue)
		// The ByPath replies carry no ResourceGroupId; the encrypted one
		// no Tags either (the SDK reply models).
		delete(body, "ResourceGroupId")
		if store.secret {
			delete(body, "Tags")
		}
		params = append(params, body)
	}
	e.mu.Unlock()
	body := map[string]any{
		"RequestId":  c.requestID,
		"MaxResults": maxResults,
		"TotalCount": len(names),
		"Parameters": params,
	}
	if end < len(names) && end > start {
		body["NextToken"] = encodeToken(names[end-1])
	}
	c.writeJSON(http.StatusOK, body)
}
