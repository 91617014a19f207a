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
	name     string
	typ      string
	created  time.Time
	versions []*secretVersion
	nextNum  int
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

func (e *Emulator) secretARN(name string) string {
	return "acs:kms:" + e.region + ":" + e.account + ":secret/" + name
}

// kmsGetSecretValue implements KMS GetSecretValue (2016-01-20).
func (e *Emulator) kmsGetSecretValue(c *call, id *identity) {
	name := c.resource
	if name == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter SecretName needed but no provided."))
		return
	}
	if err := e.authorize(c, id, ActionKMSGetSecretValue, name, "Forbidden.NoPermission", e.secretARN(name)); err != nil {
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
	body, apiErr := e.kmsLookup(name, versionID, stage, c.params.Get("FetchExtendedConfig") == "true")
	e.mu.Unlock()
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	body["RequestId"] = c.requestID
	c.writeJSON(http.StatusOK, body)
}

// kmsLookup selects a version. e.mu must be held.
func (e *Emulator) kmsLookup(name, versionID, stage string, extended bool) (map[string]any, *apiError) {
	s, ok := e.secrets[name]
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
func (e *Emulator) PutSecretValue(name string, data []byte, binary bool) (versionID string, err error) {
	return e.putSecretValue(name, "", data, binary)
}

func (e *Emulator) putSecretValue(name, versionID string, data []byte, binary bool) (string, error) {
	if name == "" {
		return "", errors.New("emulator: secret name is empty")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.secrets[name]
	if !ok {
		s = &kmsSecret{name: name, typ: "Generic", created: time.Now()}
		e.secrets[name] = s
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
	s.versions = append(s.versions, &secretVersion{
		id: versionID, data: append([]byte(nil), data...), dataType: dt,
		stages: []string{stageCurrent}, created: time.Now(),
	})
	return versionID, nil
}

func (s *kmsSecret) hasVersion(id string) bool {
	for _, v := range s.versions {
		if v.id == id {
			return true
		}
	}
	return false
}
