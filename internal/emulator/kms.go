package emulator

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// kmsSecret is a stored KMS secret.
type kmsSecret struct {
	name        string
	typ         string
	description string
	tags        map[string]string
	created     time.Time
	versions    []*secretVersion // in creation order
	nextNum     int
}

type secretVersion struct {
	id       string
	data     []byte
	dataType string
	stages   []string
	created  time.Time
}

func (v *secretVersion) hasStage(s string) bool { return slices.Contains(v.stages, s) }

func (v *secretVersion) removeStage(s string) {
	v.stages = slices.DeleteFunc(v.stages, func(x string) bool { return x == s })
}

const isoTime = "2006-01-02T15:04:05Z"

// secretNameFromParam accepts a name or an ARN acs:kms:<region>:<account>:secret/<name>.
func secretNameFromParam(p string) string {
	if strings.HasPrefix(p, "acs:kms:") {
		if i := strings.Index(p, ":secret/"); i >= 0 {
			return p[i+len(":secret/"):]
		}
	}
	return p
}

func (e *Emulator) secretARN(region, name string) string {
	return "acs:kms:" + region + ":" + e.account + ":secret/" + name
}

// kmsGetSecretValue implements KMS GetSecretValue (2016-01-20).
func (e *Emulator) kmsGetSecretValue(c *call, id *identity) {
	name := c.resource
	if name == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter SecretName needed but no provided."))
		return
	}
	if err := e.authorize(c, id, ActionKMSGetSecretValue, name, "Forbidden.NoPermission", e.secretARN(c.region, name)); err != nil {
		c.writeError(err)
		return
	}
	if c.params.Get("DryRun") == "true" {
		c.writeError(errf(http.StatusBadRequest, "DryRunOperation", "Request validation has been passed with DryRun flag set."))
		return
	}
	versionID := c.params.Get("VersionId")
	stage := c.params.Get("VersionStage")

	e.mu.Lock()
	body, apiErr := kmsLookup(c.rs, name, versionID, stage, c.params.Get("FetchExtendedConfig") == "true")
	e.mu.Unlock()
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	body["RequestId"] = c.requestID
	c.writeJSON(http.StatusOK, body)
}

// kmsLookup selects a version. e.mu must be held.
func kmsLookup(rs *regionState, name, versionID, stage string, extended bool) (map[string]any, *apiError) {
	s, ok := rs.secrets[name]
	if !ok {
		return nil, errf(http.StatusNotFound, "Forbidden.ResourceNotFound", "The resource %s is not found.", name)
	}
	var v *secretVersion
	switch {
	case versionID != "":
		for _, x := range s.versions {
			if x.id == versionID {
				v = x
			}
		}
		if v == nil {
			return nil, errf(http.StatusNotFound, "Forbidden.ResourceNotFound", "The version %s of secret %s is not found.", versionID, name)
		}
		if stage != "" && !v.hasStage(stage) {
			return nil, errf(http.StatusBadRequest, "InvalidParameter", "The VersionId %s and VersionStage %s do not refer to the same version.", versionID, stage)
		}
	default:
		if stage == "" {
			stage = stageCurrent
		}
		for _, x := range s.versions {
			if x.hasStage(stage) {
				v = x
			}
		}
		if v == nil {
			return nil, errf(http.StatusNotFound, "Forbidden.ResourceNotFound", "The version stage %s of secret %s is not found.", stage, name)
		}
	}
	data := string(v.data)
	if v.dataType == dataTypeBinary {
		data = base64.StdEncoding.EncodeToString(v.data)
	}
	stages := append([]string{}, v.stages...)
	body := map[string]any{
		"SecretName":     s.name,
		"SecretType":     s.typ,
		"VersionId":      v.id,
		"CreateTime":     v.created.UTC().Format(isoTime),
		"SecretData":     data,
		"SecretDataType": v.dataType,
		"VersionStages":  map[string]any{"VersionStage": stages},
	}
	if s.typ != "Generic" {
		body["AutomaticRotation"] = "Disabled"
		if extended {
			body["ExtendedConfig"] = "{}"
		}
	}
	return body, nil
}

// PutSecretValue stores a new version of a KMS secret (creating the secret
// when needed) and moves the stages as KMS does: the new version becomes
// ACSCurrent, the old current one ACSPrevious, and the older previous one
// loses its label (it stays readable by VersionId).
//
// Each new version's creation time is at least one second after the
// previous version's, so that CreateTime (which has a resolution of one
// second) orders the versions of a secret.
func (e *Emulator) PutSecretValue(name string, data []byte, binary bool) (versionID string, err error) {
	return e.putSecretValue("", name, "", data, binary)
}

// PutSecretValueIn is PutSecretValue in one region ("" is the primary).
func (e *Emulator) PutSecretValueIn(region, name string, data []byte, binary bool) (versionID string, err error) {
	return e.putSecretValue(region, name, "", data, binary)
}

func (e *Emulator) putSecretValue(region, name, versionID string, data []byte, binary bool) (string, error) {
	if name == "" {
		return "", errors.New("emulator: secret name is empty")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.regionLocked(region)
	if rs == nil {
		return "", fmt.Errorf("emulator: unknown region %q (add it with AddRegion)", region)
	}
	now := time.Now()
	s, ok := rs.secrets[name]
	if !ok {
		s = &kmsSecret{name: name, typ: "Generic", created: now, tags: map[string]string{}}
		rs.secrets[name] = s
	}
	if versionID == "" {
		for {
			s.nextNum++
			versionID = fmt.Sprintf("v%d", s.nextNum)
			if !s.hasVersion(versionID) {
				break
			}
		}
	} else if s.hasVersion(versionID) {
		return "", fmt.Errorf("emulator: secret %s already has version %s", name, versionID)
	}
	for _, v := range s.versions {
		v.removeStage(stagePrevious)
	}
	for _, v := range s.versions {
		if v.hasStage(stageCurrent) {
			v.removeStage(stageCurrent)
			v.stages = append(v.stages, stagePrevious)
		}
	}
	dt := dataTypeText
	if binary {
		dt = dataTypeBinary
	}
	created := now
	if n := len(s.versions); n > 0 {
		if next := s.versions[n-1].created.Truncate(time.Second).Add(time.Second); created.Before(next) {
			created = next
		}
	}
	s.versions = append(s.versions, &secretVersion{
		id: versionID, data: append([]byte(nil), data...), dataType: dt,
		stages: []string{stageCurrent}, created: created,
	})
	return versionID, nil
}

// DeleteSecret removes a secret of the primary region with all its
// versions at once (no recovery window): it answers
// Forbidden.ResourceNotFound from then on. It reports whether the secret
// existed.
func (e *Emulator) DeleteSecret(name string) bool {
	ok, _ := e.DeleteSecretIn("", name)
	return ok
}

// DeleteSecretIn is DeleteSecret in one region ("" is the primary).
func (e *Emulator) DeleteSecretIn(region, name string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.regionLocked(region)
	if rs == nil {
		return false, fmt.Errorf("emulator: unknown region %q", region)
	}
	_, ok := rs.secrets[name]
	delete(rs.secrets, name)
	return ok, nil
}

// SetSecretTags replaces the resource tags of a secret of the primary
// region (nil or empty removes them all). The secret must exist.
func (e *Emulator) SetSecretTags(name string, tags map[string]string) error {
	return e.SetSecretTagsIn("", name, tags)
}

// SetSecretTagsIn is SetSecretTags in one region ("" is the primary).
func (e *Emulator) SetSecretTagsIn(region, name string, tags map[string]string) error {
	for k := range tags {
		if k == "" {
			return errors.New("emulator: empty tag key")
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.regionLocked(region)
	if rs == nil {
		return fmt.Errorf("emulator: unknown region %q", region)
	}
	s, ok := rs.secrets[name]
	if !ok {
		return fmt.Errorf("emulator: no secret %q in region %s", name, rs.name)
	}
	s.tags = map[string]string{}
	for k, v := range tags {
		s.tags[k] = v
	}
	return nil
}

func (s *kmsSecret) hasVersion(id string) bool {
	for _, v := range s.versions {
		if v.id == id {
			return true
		}
	}
	return false
}
