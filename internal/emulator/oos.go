package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// oosParam is a stored OOS parameter: encrypted (Type Secret) or plain
// (String, StringList).
type oosParam struct {
	name, id, typ, description, keyID, constraints string
	tags                                           map[string]string
	created                                        time.Time
	versions                                       []oosVersion // versions[i] is version i+1
}

type oosVersion struct {
	value   string
	updated time.Time
}

func newOOSParam(name string) *oosParam {
	return &oosParam{name: name, id: "p-" + randomHex(16), typ: secretParameterType, keyID: "alias/acs/oos", tags: map[string]string{}, created: time.Now()}
}

func newPlainParam(name, typ string) *oosParam {
	return &oosParam{name: name, id: "p-" + randomHex(16), typ: typ, tags: map[string]string{}, created: time.Now()}
}

// oosStore is one of a region's two parameter stores.
type oosStore struct {
	secret bool // encrypted parameters; else plain ones
}

func (s oosStore) of(rs *regionState) map[string]*oosParam {
	if s.secret {
		return rs.params
	}
	return rs.plain
}

func (s oosStore) kind() string {
	if s.secret {
		return oosKindSecret
	}
	return oosKindPlain
}

var (
	secretStore = oosStore{secret: true}
	plainStore  = oosStore{secret: false}
)

// parameterVersionParam reads ParameterVersion (0 when absent: the latest).
func parameterVersionParam(c *call) (int, *apiError) {
	s := c.params.Get("ParameterVersion")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxParameterVersions {
		return 0, errf(http.StatusBadRequest, "InvalidParameter", "The parameter ParameterVersion must be an integer from 1 to %d, got %q.", maxParameterVersions, s)
	}
	return n, nil
}

// oosGetSecretParameter implements OOS GetSecretParameter (2019-06-01).
func (e *Emulator) oosGetSecretParameter(c *call, id *identity) {
	e.oosGetOne(c, id, secretStore, ActionOOSGetSecretParameter, c.params.Get("WithDecryption") == "true")
}

// oosGetParameter implements OOS GetParameter (2019-06-01): a plain
// parameter, whose value is always returned.
func (e *Emulator) oosGetParameter(c *call, id *identity) {
	e.oosGetOne(c, id, plainStore, ActionOOSGetParameter, true)
}

// oosNamed reads the Name of a one-parameter action and authorizes action
// on it; on failure it has answered the call.
func (e *Emulator) oosNamed(c *call, id *identity, store oosStore, action string) (string, bool) {
	name := c.resource
	if name == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter Name needed but no provided."))
		return "", false
	}
	if err := e.authorize(c, id, action, name, e.oosDeniedCode, e.oosARN(c.region, store.kind(), name)); err != nil {
		c.writeError(err)
		return "", false
	}
	return name, true
}

func (e *Emulator) oosGetOne(c *call, id *identity, store oosStore, action string, withValue bool) {
	name, ok := e.oosNamed(c, id, store, action)
	if !ok {
		return
	}
	version, apiErr := parameterVersionParam(c)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	e.mu.Lock()
	param, apiErr := e.oosLookup(store.of(c.rs), name, version, withValue)
	e.mu.Unlock()
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	c.writeJSON(http.StatusOK, map[string]any{"RequestId": c.requestID, "Parameter": param})
}

// oosLookup renders one version (0: the latest) of a parameter, or the
// EntityNotExists.Parameter error. e.mu must be held.
func (e *Emulator) oosLookup(store map[string]*oosParam, name string, version int, withValue bool) (map[string]any, *apiError) {
	p, ok := store[name]
	if !ok {
		return nil, errf(http.StatusNotFound, "EntityNotExists.Parameter", "The Parameter (%s) does not exist.", name)
	}
	if version == 0 {
		version = len(p.versions)
	}
	if version > len(p.versions) {
		return nil, errf(http.StatusNotFound, "EntityNotExists.Parameter", "The Parameter (%s) with version %d does not exist.", name, version)
	}
	return e.oosParameterBody(p, version, withValue), nil
}

// oosParameterBody renders the Parameter object of GetSecretParameter and
// GetParameter (plain parameters have no KeyId). e.mu must be held.
func (e *Emulator) oosParameterBody(p *oosParam, version int, withValue bool) map[string]any {
	v := p.versions[version-1]
	owner := "root(" + e.account + ")"
	tags := map[string]any{}
	for k, val := range p.tags {
		tags[k] = val
	}
	out := map[string]any{
		"Name":             p.name,
		"Id":               p.id,
		"Type":             p.typ,
		"ParameterVersion": version,
		"Description":      p.description,
		"ShareType":        "Private",
		"ResourceGroupId":  "rg-emulator",
		"CreatedDate":      p.created.UTC().Format(isoTime),
		"UpdatedDate":      v.updated.UTC().Format(isoTime),
		"CreatedBy":        owner,
		"UpdatedBy":        owner,
		"Tags":             tags,
	}
	if p.typ == secretParameterType {
		out["KeyId"] = p.keyID
	}
	if p.constraints != "" {
		out["Constraints"] = p.constraints
	}
	if withValue {
		out["Value"] = v.value
	}
	return out
}

// PutParameter appends a new version to an OOS encrypted parameter of the
// primary region (creating it as version 1 when needed) and returns its
// number. At most 100 versions exist, as in OOS.
func (e *Emulator) PutParameter(name, value string) (version int, err error) {
	return e.putParameter("", secretStore, name, "", value)
}

// PutParameterIn is PutParameter in one region ("" is the primary).
func (e *Emulator) PutParameterIn(region, name, value string) (version int, err error) {
	return e.putParameter(region, secretStore, name, "", value)
}

// PutPlainParameter appends a new version to an OOS plain parameter of the
// primary region, creating it (Type String) as version 1 when needed. At
// most 100 versions exist.
func (e *Emulator) PutPlainParameter(name, value string) (version int, err error) {
	return e.putParameter("", plainStore, name, "", value)
}

// PutPlainParameterIn is PutPlainParameter in one region ("" is the primary).
func (e *Emulator) PutPlainParameterIn(region, name, value string) (version int, err error) {
	return e.putParameter(region, plainStore, name, "", value)
}

// putParameter appends a version. typ applies when a plain parameter is
// created ("" is String) and must match an existing one's otherwise.
func (e *Emulator) putParameter(region string, store oosStore, name, typ, value string) (int, error) {
	nameErr := validParameterName(name)
	if !store.secret {
		nameErr = validPlainParameterName(name)
		switch typ {
		case "", plainTypeString, plainTypeStringList:
		default:
			return 0, fmt.Errorf("emulator: parameter type must be String or StringList, got %q", typ)
		}
	}
	if nameErr != nil {
		return 0, fmt.Errorf("emulator: parameter name: %w", nameErr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.regionLocked(region)
	if rs == nil {
		return 0, fmt.Errorf("emulator: unknown region %q (add it with AddRegion)", region)
	}
	m := store.of(rs)
	p, ok := m[name]
	switch {
	case !ok && store.secret:
		p = newOOSParam(name)
		m[name] = p
	case !ok:
		p = newPlainParam(name, firstNonEmpty(typ, plainTypeString))
		m[name] = p
	case typ != "" && typ != p.typ:
		return 0, fmt.Errorf("emulator: parameter %s is a %s, not a %s", name, p.typ, typ)
	}
	if len(p.versions) >= maxParameterVersions {
		return 0, errors.New("emulator: parameter " + name + " already has 100 versions")
	}
	p.versions = append(p.versions, oosVersion{value: value, updated: time.Now()})
	return len(p.versions), nil
}

// DeleteParameter removes an encrypted parameter of the primary region
// with all its versions: it answers EntityNotExists.Parameter from then
// on. It reports whether the parameter existed.
func (e *Emulator) DeleteParameter(name string) bool {
	ok, _ := e.deleteParameter("", secretStore, name)
	return ok
}

// DeleteParameterIn is DeleteParameter in one region ("" is the primary).
func (e *Emulator) DeleteParameterIn(region, name string) (bool, error) {
	return e.deleteParameter(region, secretStore, name)
}

// DeletePlainParameter removes a plain parameter of the primary region
// with all its versions. It reports whether the parameter existed.
func (e *Emulator) DeletePlainParameter(name string) bool {
	ok, _ := e.deleteParameter("", plainStore, name)
	return ok
}

// DeletePlainParameterIn is DeletePlainParameter in one region ("" is the
// primary).
func (e *Emulator) DeletePlainParameterIn(region, name string) (bool, error) {
	return e.deleteParameter(region, plainStore, name)
}

func (e *Emulator) deleteParameter(region string, store oosStore, name string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.regionLocked(region)
	if rs == nil {
		return false, fmt.Errorf("emulator: unknown region %q", region)
	}
	m := store.of(rs)
	_, ok := m[name]
	delete(m, name)
	return ok, nil
}
