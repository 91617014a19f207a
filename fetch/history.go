package fetch

import (
	"context"
	"sort"
	"strconv"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/dara"
)

// Reads of an objectVersionHistory: the current version and up to
// t.History-1 previous ones, newest first.

// maxVersionPages bounds the listing of one history (100 per page).
const maxVersionPages = 10

// managedSecretTypes are the KMS secret types whose versions are rotated by
// the service and read only by stage (ACSCurrent, ACSPrevious).
var managedSecretTypes = map[string]bool{"Rds": true, "RAMCredentials": true, "ECS": true, "Redis": true, "PolarDB": true}

func (s *SDKSource) getKMSHistory(ctx context.Context, c *sdkClient, t Target) (Result, error) {
	cur, typ, err := s.kmsGetValue(ctx, c, t, "", "ACSCurrent")
	if err != nil {
		return Result{}, err
	}
	hist := []Version{{Data: cur.Data, Version: cur.Version}}
	if t.History > 1 && managedSecretTypes[typ] {
		// Managed secrets: at most the previous stage.
		prev, _, err := s.kmsGetValue(ctx, c, t, "", "ACSPrevious")
		switch {
		case err == nil && prev.Version != cur.Version:
			hist = append(hist, Version{Data: prev.Data, Version: prev.Version})
		case err != nil && KindOf(Classify(TypeKMS, "GetSecretValue", err)) != KindNotFound:
			return Result{}, err
		}
	} else if t.History > 1 {
		ids, err := s.kmsVersionIDs(ctx, c, t)
		if err != nil {
			return Result{}, err
		}
		for _, id := range ids {
			if len(hist) == int(t.History) {
				break
			}
			if id == cur.Version {
				continue
			}
			v, _, err := s.kmsGetValue(ctx, c, t, id, "")
			if err != nil {
				// A version dropped since the listing is skipped.
				if KindOf(Classify(TypeKMS, "GetSecretValue", err)) == KindNotFound {
					continue
				}
				return Result{}, err
			}
			hist = append(hist, Version{Data: v.Data, Version: v.Version})
		}
	}
	return Result{Data: cur.Data, Version: cur.Version, Binary: cur.Binary, History: hist}, nil
}

// kmsVersionIDs lists every version id of a secret, deprecated ones too,
// newest first by CreateTime.
func (s *SDKSource) kmsVersionIDs(ctx context.Context, c *sdkClient, t Target) ([]string, error) {
	type ver struct {
		id      string
		created time.Time
		pos     int
	}
	var all []ver
	for page := 1; page <= maxVersionPages; page++ {
		query := map[string]any{"SecretName": dara.String(t.Name), "IncludeDeprecated": dara.String("true"),
			"PageNumber": dara.Int32(int32(page)), "PageSize": dara.Int32(100)} //nolint:gosec // at most maxVersionPages
		req := &openapi.OpenApiRequest{Query: openapiutil.Query(query)}
		body, err := c.kms.CallApiWithCtx(ctx, kmsListSecretVersionIDs, req, &dara.RuntimeOptions{})
		if err != nil {
			return nil, err
		}
		r := &kms.ListSecretVersionIdsResponse{}
		if err := dara.Convert(body, &r); err != nil {
			return nil, err
		}
		if r.Body == nil || r.Body.VersionIds == nil {
			return nil, malformed(t, "VersionIds missing")
		}
		for _, v := range r.Body.VersionIds.VersionId {
			if v == nil || dara.StringValue(v.VersionId) == "" {
				continue
			}
			ct, _ := time.Parse(time.RFC3339, dara.StringValue(v.CreateTime))
			all = append(all, ver{id: *v.VersionId, created: ct, pos: len(all)})
		}
		total := int(dara.Int32Value(r.Body.TotalCount))
		if len(r.Body.VersionIds.VersionId) == 0 || len(all) >= total {
			break
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].created.After(all[j].created) })
	ids := make([]string, len(all))
	for i, v := range all {
		ids[i] = v.id
	}
	return ids, nil
}

var kmsListSecretVersionIDs = kmsRPC("ListSecretVersionIds")

// getOOSHistory lists the versions of an encrypted (with decryption) or
// common parameter, every page, and keeps the newest t.History.
func (s *SDKSource) getOOSHistory(ctx context.Context, c *sdkClient, t Target) (Result, error) {
	var all []oosParam
	next := ""
	for page := 0; page < maxVersionPages; page++ {
		versions, token, err := s.oosVersionsPage(ctx, c, t, next)
		if err != nil {
			return Result{}, err
		}
		all = append(all, versions...)
		if token == "" || token == next {
			break
		}
		next = token
	}
	if len(all) == 0 {
		return Result{}, malformed(t, "no ParameterVersions")
	}
	sort.Slice(all, func(i, j int) bool { return *all[i].version > *all[j].version })
	if len(all) > int(t.History) {
		all = all[:t.History]
	}
	hist := make([]Version, len(all))
	for i, v := range all {
		hist[i] = Version{Data: Bytes(*v.value), Version: strconv.Itoa(int(*v.version))}
	}
	return Result{Data: hist[0].Data, Version: hist[0].Version, History: hist}, nil
}

// oosVersionsPage is one page of ListSecretParameterVersions (with
// decryption) or ListParameterVersions: the versions with a number and a
// value, and the next page's token.
func (s *SDKSource) oosVersionsPage(ctx context.Context, c *sdkClient, t Target, next string) ([]oosParam, string, error) {
	var token *string
	if next != "" {
		token = dara.String(next)
	}
	if t.Type == TypeOOS {
		r, err := c.oos.ListSecretParameterVersionsWithContext(ctx, &oos.ListSecretParameterVersionsRequest{Name: dara.String(t.Name), WithDecryption: dara.Bool(true), MaxResults: dara.Int32(100), NextToken: token}, &dara.RuntimeOptions{})
		if err != nil {
			return nil, "", err
		}
		if r == nil || r.Body == nil {
			return nil, "", malformed(t, "no body")
		}
		return versionsOf(r.Body.ParameterVersions, func(v *oos.ListSecretParameterVersionsResponseBodyParameterVersions) oosParam {
			return oosParam{value: v.Value, version: v.ParameterVersion}
		}), dara.StringValue(r.Body.NextToken), nil
	}
	r, err := c.oos.ListParameterVersionsWithContext(ctx, &oos.ListParameterVersionsRequest{Name: dara.String(t.Name), MaxResults: dara.Int32(100), NextToken: token}, &dara.RuntimeOptions{})
	if err != nil {
		return nil, "", err
	}
	if r == nil || r.Body == nil {
		return nil, "", malformed(t, "no body")
	}
	return versionsOf(r.Body.ParameterVersions, func(v *oos.ListParameterVersionsResponseBodyParameterVersions) oosParam {
		return oosParam{value: v.Value, version: v.ParameterVersion}
	}), dara.StringValue(r.Body.NextToken), nil
}

// versionsOf keeps the items of an OOS answer that have a value and a
// version.
func versionsOf[T any](items []*T, get func(*T) oosParam) []oosParam {
	out := make([]oosParam, 0, len(items))
	for _, it := range items {
		if it == nil {
			continue
		}
		if p := get(it); p.value != nil && p.version != nil {
			out = append(out, p)
		}
	}
	return out
}
