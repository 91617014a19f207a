package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// oosParam is a stored OOS encrypted parameter.
type oosParam struct {
	name, id, description, keyID, constraints string
	tags                                      map[string]string
	created                                   time.Time
	versions                                  []oosVersion // versions[i] is version i+1
}

type oosVersion struct {
	value   string
	updated time.Time
}

func newOOSParam(name string) *oosParam {
	return &oosParam{name: name, id: "p-" + randomHex(16), keyID: "alias/acs/oos", tags: map[string]string{}, created: time.Now()}
}

// oosGetSecretParameter implements OOS GetSecretParameter (2019-06-01).
func (e *Emulator) oosGetSecretParameter(c *call, id *identity) {
	name := c.resource
	if name == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter Name needed but no provided."))
		return
	}
	arn := "acs:oos:" + e.region + ":" + e.account + ":secretparameter/" + name
	if err := e.authorize(c, id, ActionOOSGetSecretParameter, name, e.oosDeniedCode, arn); err != nil {
		c.writeError(err)
		return
	}
	version := 0
	if s := c.params.Get("ParameterVersion"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxParameterVersions {
			c.writeError(errf(http.StatusBadRequest, "InvalidParameter", "The parameter ParameterVersion must be an integer from 1 to %d, got %q.", maxParameterVersions, s))
			return
		}
		version = n
	}
	withDecryption := c.params.Get("WithDecryption") == "true"

	e.mu.Lock()
	p, ok := e.params[name]
	var param map[string]any
	if ok {
		if version == 0 {
			version = len(p.versions)
		}
		if version <= len(p.versions) {
			param = e.oosParameterBody(p, version, withDecryption)
		}
	}
	e.mu.Unlock()
	if !ok {
		c.writeError(errf(http.StatusNotFound, "EntityNotExists.Parameter", "The Parameter (%s) does not exist.", name))
		return
	}
	if param == nil {
		c.writeError(errf(http.StatusNotFound, "EntityNotExists.Parameter", "The Parameter (%s) with version %d does not exist.", name, version))
		return
	}
	c.writeJSON(http.StatusOK, map[string]any{"RequestId": c.requestID, "Parameter": param})
}

// oosParameterBody renders the Parameter object. e.mu must be held.
func (e *Emulator) oosParameterBody(p *oosParam, version int, withDecryption bool) map[string]any {
	v := p.versions[version-1]
	owner := "root(" + e.account + ")"
	tags := map[string]any{}
	for k, val := range p.tags {
		tags[k] = val
	}
	out := map[string]any{
		"Name":             p.name,
		"Id":               p.id,
		"Type":             "Secret",
		"ParameterVersion": version,
		"Description":      p.description,
		"KeyId":            p.keyID,
		"ShareType":        "Private",
		"ResourceGroupId":  "rg-emulator",
		"CreatedDate":      p.created.UTC().Format(isoTime),
		"UpdatedDate":      v.updated.UTC().Format(isoTime),
		"CreatedBy":        owner,
		"UpdatedBy":        owner,
		"Tags":             tags,
	}
	if p.constraints != "" {
		out["Constraints"] = p.constraints
	}
	if withDecryption {
		out["Value"] = v.value
	}
	return out
}

// PutParameter appends a new version to an OOS encrypted parameter
// (creating it as version 1 when needed) and returns its number. At most
// 100 versions exist, as in OOS.
func (e *Emulator) PutParameter(name, value string) (version int, err error) {
	if err := validParameterName(name); err != nil {
		return 0, fmt.Errorf("emulator: parameter name: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.params[name]
	if !ok {
		p = newOOSParam(name)
		e.params[name] = p
	}
	if len(p.versions) >= maxParameterVersions {
		return 0, errors.New("emulator: parameter " + name + " already has 100 versions")
	}
	p.versions = append(p.versions, oosVersion{value: value, updated: time.Now()})
	return len(p.versions), nil
}
