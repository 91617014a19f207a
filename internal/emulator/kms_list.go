package emulator

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"sort"
)

// KMS list limits (docs/emulator.md, "KMS ListSecretVersionIds and
// ListSecrets").
const (
	listSecretsDefaultPageSize  = 10
	listSecretsMaxPageSize      = 100
	listVersionsDefaultPageSize = 20
	listVersionsMaxPageSize     = 100
	maxSecretFilters            = 10
	maxSecretFilterValues       = 10
)

// kmsListSecretVersionIds implements KMS ListSecretVersionIds (2016-01-20):
// the versions of a secret, without values, oldest first. Versions without
// a stage label are left out unless IncludeDeprecated is "true".
func (e *Emulator) kmsListSecretVersionIds(c *call, id *identity) {
	name := c.resource
	if name == "" {
		c.writeError(errf(http.StatusBadRequest, "MissingParameter", "The parameter SecretName needed but no provided."))
		return
	}
	if err := e.authorize(c, id, ActionKMSListSecretVersionIds, name, "Forbidden.NoPermission", e.secretARN(c.region, name)); err != nil {
		c.writeError(err)
		return
	}
	pageNumber, pageSize, apiErr := kmsPage(c, listVersionsDefaultPageSize, listVersionsMaxPageSize)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	includeDeprecated := c.params.Get("IncludeDeprecated") == "true"

	e.mu.Lock()
	s, ok := c.rs.secrets[name]
	var versions []map[string]any
	if ok {
		for _, v := range s.versions {
			if len(v.stages) == 0 && !includeDeprecated {
				continue
			}
			versions = append(versions, map[string]any{
				"VersionId":     v.id,
				"CreateTime":    v.created.UTC().Format(isoTime),
				"VersionStages": map[string]any{"VersionStage": append([]string{}, v.stages...)},
			})
		}
	}
	e.mu.Unlock()
	if !ok {
		c.writeError(errf(http.StatusNotFound, "Forbidden.ResourceNotFound", "The resource %s is not found.", name))
		return
	}
	from, to := pageBounds(len(versions), pageNumber, pageSize)
	c.writeJSON(http.StatusOK, map[string]any{
		"RequestId":  c.requestID,
		"SecretName": name,
		"PageNumber": pageNumber,
		"PageSize":   pageSize,
		"TotalCount": len(versions),
		"VersionIds": map[string]any{"VersionId": append([]map[string]any{}, versions[from:to]...)},
	})
}

// secretFilter is one element of the ListSecrets Filters JSON array,
// [{"Key":"TagKey","Values":["team"]}, ...].
type secretFilter struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

var secretFilterKeys = map[string]bool{
	"SecretName": true, "Description": true, "TagKey": true, "TagValue": true, "SecretType": true, "DKMSInstanceId": true,
}

func parseSecretFilters(s string) ([]secretFilter, *apiError) {
	if s == "" {
		return nil, nil
	}
	var fs []secretFilter
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fs); err != nil {
		return nil, errf(http.StatusBadRequest, "InvalidParameter", "The parameter Filters must be a JSON array of {\"Key\",\"Values\"} objects: %v", err)
	}
	if len(fs) > maxSecretFilters {
		return nil, errf(http.StatusBadRequest, "InvalidParameter", "The parameter Filters holds %d key-value pairs; at most %d are allowed.", len(fs), maxSecretFilters)
	}
	for _, f := range fs {
		if !secretFilterKeys[f.Key] {
			return nil, errf(http.StatusBadRequest, "InvalidParameter", "The Filters key %q is not one of SecretName, Description, TagKey, TagValue, SecretType, DKMSInstanceId.", f.Key)
		}
		if len(f.Values) > maxSecretFilterValues {
			return nil, errf(http.StatusBadRequest, "InvalidParameter", "The Filters key %s has %d values; at most %d are allowed.", f.Key, len(f.Values), maxSecretFilterValues)
		}
	}
	return fs, nil
}

// matches applies the filters: the values of one key are alternatives
// (OR), the keys all apply (AND), and TagKey and TagValue filters given
// together must be met by one and the same tag. A key with no values
// does not filter.
func (s *kmsSecret) matches(fs []secretFilter) bool {
	var keySets, valueSets [][]string
	for _, f := range fs {
		if len(f.Values) == 0 {
			continue
		}
		switch f.Key {
		case "SecretName":
			if !slices.Contains(f.Values, s.name) {
				return false
			}
		case "Description":
			if !slices.Contains(f.Values, s.description) {
				return false
			}
		case "SecretType":
			if !slices.Contains(f.Values, s.typ) {
				return false
			}
		case "DKMSInstanceId":
			return false // no emulated secret lives in a KMS instance
		case "TagKey":
			keySets = append(keySets, f.Values)
		case "TagValue":
			valueSets = append(valueSets, f.Values)
		}
	}
	tagOK := func(k, v string, keys, values [][]string) bool {
		for _, set := range keys {
			if !slices.Contains(set, k) {
				return false
			}
		}
		for _, set := range values {
			if !slices.Contains(set, v) {
				return false
			}
		}
		return true
	}
	if len(keySets) > 0 && len(valueSets) > 0 {
		for k, v := range s.tags {
			if tagOK(k, v, keySets, valueSets) {
				return true
			}
		}
		return false
	}
	for _, set := range keySets {
		if !s.anyTag(func(k, _ string) bool { return slices.Contains(set, k) }) {
			return false
		}
	}
	for _, set := range valueSets {
		if !s.anyTag(func(_, v string) bool { return slices.Contains(set, v) }) {
			return false
		}
	}
	return true
}

func (s *kmsSecret) anyTag(f func(k, v string) bool) bool {
	for k, v := range s.tags {
		if f(k, v) {
			return true
		}
	}
	return false
}

// kmsListSecrets implements KMS ListSecrets (2016-01-20): the region's
// secrets that pass Filters, by name, a page of PageSize at PageNumber,
// with their tags when FetchTags is "true". It never returns values.
// Policies see the resource "*"; a refusal names the secret container
// acs:kms:<region>:<account>:secret.
func (e *Emulator) kmsListSecrets(c *call, id *identity) {
	if err := e.authorize(c, id, ActionKMSListSecrets, "*", "Forbidden.NoPermission", e.resourceARN(c.region, kmsKindSecret, "")); err != nil {
		c.writeError(err)
		return
	}
	pageNumber, pageSize, apiErr := kmsPage(c, listSecretsDefaultPageSize, listSecretsMaxPageSize)
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	filters, apiErr := parseSecretFilters(c.params.Get("Filters"))
	if apiErr != nil {
		c.writeError(apiErr)
		return
	}
	fetchTags := c.params.Get("FetchTags") == "true"

	e.mu.Lock()
	names := make([]string, 0, len(c.rs.secrets))
	for name, s := range c.rs.secrets {
		if s.matches(filters) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	from, to := pageBounds(len(names), pageNumber, pageSize)
	list := make([]map[string]any, 0, to-from)
	for _, name := range names[from:to] {
		s := c.rs.secrets[name]
		updated := s.created
		if n := len(s.versions); n > 0 {
			updated = s.versions[n-1].created
		}
		item := map[string]any{
			"SecretName": s.name,
			"SecretType": s.typ,
			"CreateTime": s.created.UTC().Format(isoTime),
			"UpdateTime": updated.UTC().Format(isoTime),
		}
		if fetchTags {
			keys := make([]string, 0, len(s.tags))
			for k := range s.tags {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			tags := make([]map[string]string, 0, len(keys))
			for _, k := range keys {
				tags = append(tags, map[string]string{"TagKey": k, "TagValue": s.tags[k]})
			}
			item["Tags"] = map[string]any{"Tag": tags}
		}
		list = append(list, item)
	}
	total := len(names)
	e.mu.Unlock()
	c.writeJSON(http.StatusOK, map[string]any{
		"RequestId":  c.requestID,
		"PageNumber": pageNumber,
		"PageSize":   pageSize,
		"TotalCount": total,
		"SecretList": map[string]any{"Secret": list},
	})
}

// kmsPage reads the PageNumber (from 1) and PageSize (1 to maxSize) of a
// KMS list action.
func kmsPage(c *call, defSize, maxSize int) (number, size int, err *apiError) {
	if number, err = intParam(c, "PageNumber", 1, 1, math.MaxInt32); err != nil {
		return 0, 0, err
	}
	size, err = intParam(c, "PageSize", defSize, 1, maxSize)
	return number, size, err
}
