package emulator_test

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

func kmsListSeed(t *testing.T) *emulator.Seed {
	t.Helper()
	seed, err := emulator.ParseSeed([]byte(`
accessKeys: [{id: AK1, secret: S1, principal: app}]
secrets:
  - {name: db, value: VAL-db, tags: {team: pay, env: prod}, description: the database}
  - {name: api, value: VAL-api, tags: {team: web, env: prod}}
  - {name: cache, value: VAL-cache, tags: {team: web, env: dev}}
  - {name: plain, value: VAL-plain}
  - name: rotated
    versions:
      - {id: v1, data: one, createTime: "2024-01-01T00:00:00Z"}
      - {id: v2, data: two, stages: [ACSPrevious], createTime: "2024-02-01T00:00:00Z"}
      - {id: v3, data: three, stages: [ACSCurrent, custom], createTime: "2024-03-01T00:00:00Z"}
`))
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

type listedVersion struct {
	id, created string
	stages      []string
}

func listVersionIDs(t *testing.T, c *kms.Client, name string, deprecated bool, size int32) (all []listedVersion, pages, total int) {
	t.Helper()
	for page := int32(1); ; page++ {
		req := &kms.ListSecretVersionIdsRequest{SecretName: tea.String(name), PageNumber: tea.Int32(page), PageSize: tea.Int32(size)}
		if deprecated {
			req.IncludeDeprecated = tea.String("true")
		}
		resp, err := c.ListSecretVersionIds(req)
		if err != nil {
			t.Fatal(err)
		}
		b := resp.Body
		if tea.StringValue(b.SecretName) != name || tea.Int32Value(b.PageNumber) != page || tea.Int32Value(b.PageSize) != size || tea.StringValue(b.RequestId) == "" {
			t.Fatalf("page %d = %v", page, b)
		}
		total = int(tea.Int32Value(b.TotalCount))
		if b.VersionIds == nil {
			t.Fatalf("VersionIds missing: %v", b)
		}
		for _, v := range b.VersionIds.VersionId {
			lv := listedVersion{id: tea.StringValue(v.VersionId), created: tea.StringValue(v.CreateTime)}
			if v.VersionStages != nil {
				lv.stages = tea.StringSliceValue(v.VersionStages.VersionStage)
			}
			all = append(all, lv)
		}
		pages++
		if len(b.VersionIds.VersionId) == 0 || len(all) >= total {
			return all, pages, total
		}
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
	}
}

func TestKMSListSecretVersionIds(t *testing.T) {
	e := start(t, kmsListSeed(t), emulator.Options{})
	c := kmsClient(t, e, akCred(t, "AK1", "S1"))

	got, _, total := listVersionIDs(t, c, "rotated", false, 20)
	if total != 2 || len(got) != 2 || got[0].id != "v2" || got[1].id != "v3" || !slices.Equal(got[1].stages, []string{"ACSCurrent", "custom"}) || got[0].created != "2024-02-01T00:00:00Z" {
		t.Fatalf("labelled versions = %+v (total %d)", got, total)
	}
	got, _, total = listVersionIDs(t, c, "rotated", true, 20)
	if total != 3 || got[0].id != "v1" || len(got[0].stages) != 0 || got[0].created != "2024-01-01T00:00:00Z" {
		t.Fatalf("with deprecated = %+v (total %d)", got, total)
	}
	// Defaults: page 1 of 20.
	resp, err := c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("rotated")})
	if err != nil || tea.Int32Value(resp.Body.PageSize) != 20 || tea.Int32Value(resp.Body.PageNumber) != 1 {
		t.Fatalf("defaults = %v, %v", resp, err)
	}

	// Twelve puts: creation times strictly increase, so CreateTime orders
	// versions even when they are put within one second.
	for i := 0; i < 12; i++ {
		if _, err := e.PutSecretValue("db", []byte(fmt.Sprint("VAL-db-", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	got, pages, total := listVersionIDs(t, c, "db", true, 5)
	if total != 13 || len(got) != 13 || pages != 3 {
		t.Fatalf("db versions: %d pages, total %d, %+v", pages, total, got)
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].created < got[j].created }) {
		t.Fatalf("creation times not increasing: %+v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].created == got[i-1].created {
			t.Fatalf("two versions share CreateTime %s", got[i].created)
		}
	}
	if latest := got[len(got)-1]; !slices.Equal(latest.stages, []string{"ACSCurrent"}) {
		t.Fatalf("newest = %+v", latest)
	}
	labelled, _, total := listVersionIDs(t, c, "db", false, 5)
	if total != 2 || len(labelled) != 2 {
		t.Fatalf("labelled db versions = %+v", labelled)
	}
	// GetSecretValue reports the same CreateTime as the list.
	b := mustSecret(t, c, "db")
	if tea.StringValue(b.CreateTime) != got[len(got)-1].created {
		t.Fatalf("GetSecretValue CreateTime %s, list %s", tea.StringValue(b.CreateTime), got[len(got)-1].created)
	}
	if _, err := time.Parse(time.RFC3339, tea.StringValue(b.CreateTime)); err != nil {
		t.Fatal(err)
	}

	// Past the last page: an empty list, not an error.
	resp, err = c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("rotated"), PageNumber: tea.Int32(9)})
	if err != nil || resp.Body.VersionIds == nil || len(resp.Body.VersionIds.VersionId) != 0 || tea.Int32Value(resp.Body.TotalCount) != 2 {
		t.Fatalf("past the end = %v, %v", resp, err)
	}
	_, err = c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("nope")})
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	_, err = c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("db"), PageSize: tea.Int32(101)})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("db"), PageNumber: tea.Int32(0)})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{})
	_ = wantSDKError(t, err, "MissingParameter", 400)
}

func listSecretNames(t *testing.T, c *kms.Client, filters string, size int32) (names []string, tags map[string]map[string]string, pages, total int) {
	t.Helper()
	tags = map[string]map[string]string{}
	for page := int32(1); ; page++ {
		req := &kms.ListSecretsRequest{PageNumber: tea.Int32(page), PageSize: tea.Int32(size), FetchTags: tea.String("true")}
		if filters != "" {
			req.Filters = tea.String(filters)
		}
		resp, err := c.ListSecrets(req)
		if err != nil {
			t.Fatal(err)
		}
		b := resp.Body
		total = int(tea.Int32Value(b.TotalCount))
		pages++
		if b.SecretList == nil {
			t.Fatalf("SecretList missing: %v", b)
		}
		for _, s := range b.SecretList.Secret {
			name := tea.StringValue(s.SecretName)
			names = append(names, name)
			if tea.StringValue(s.SecretType) != "Generic" || tea.StringValue(s.CreateTime) == "" || tea.StringValue(s.UpdateTime) == "" || s.Tags == nil {
				t.Fatalf("secret = %v", s)
			}
			tags[name] = map[string]string{}
			for _, tag := range s.Tags.Tag {
				tags[name][tea.StringValue(tag.TagKey)] = tea.StringValue(tag.TagValue)
			}
		}
		if len(names) >= total || len(b.SecretList.Secret) == 0 {
			return names, tags, pages, total
		}
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
	}
}

func TestKMSListSecretsWithTagFilters(t *testing.T) {
	e := start(t, kmsListSeed(t), emulator.Options{})
	c := kmsClient(t, e, akCred(t, "AK1", "S1"))

	all, tags, pages, total := listSecretNames(t, c, "", 2)
	if total != 5 || pages != 3 || !slices.Equal(all, []string{"api", "cache", "db", "plain", "rotated"}) {
		t.Fatalf("all: %v, %d pages, total %d", all, pages, total)
	}
	if tags["db"]["team"] != "pay" || tags["db"]["env"] != "prod" || len(tags["plain"]) != 0 {
		t.Fatalf("tags = %v", tags)
	}
	for _, tc := range []struct {
		filters string
		want    []string
	}{
		{`[{"Key":"TagKey","Values":["team"]}]`, []string{"api", "cache", "db"}},
		{`[{"Key":"TagValue","Values":["web"]}]`, []string{"api", "cache"}},
		{`[{"Key":"TagKey","Values":["team"]},{"Key":"TagValue","Values":["pay","web"]}]`, []string{"api", "cache", "db"}},
		{`[{"Key":"TagKey","Values":["team"]},{"Key":"TagValue","Values":["prod"]}]`, nil}, // prod is env's value, not team's
		{`[{"Key":"TagKey","Values":["env"]},{"Key":"TagValue","Values":["prod"]}]`, []string{"api", "db"}},
		{`[{"Key":"SecretName","Values":["db","rotated","nope"]}]`, []string{"db", "rotated"}},
		{`[{"Key":"SecretName","Values":["db","api"]},{"Key":"TagValue","Values":["web"]}]`, []string{"api"}},
		{`[{"Key":"Description","Values":["the database"]}]`, []string{"db"}},
		{`[{"Key":"SecretType","Values":["Generic"]}]`, all},
		{`[{"Key":"TagKey","Values":[]}]`, all},
	} {
		got, _, _, total := listSecretNames(t, c, tc.filters, 100)
		if !slices.Equal(got, tc.want) || total != len(tc.want) {
			t.Errorf("filters %s: got %v (total %d), want %v", tc.filters, got, total, tc.want)
		}
	}

	// Tags are set through the Go and control APIs too.
	if err := e.SetSecretTags("plain", map[string]string{"team": "ops"}); err != nil {
		t.Fatal(err)
	}
	if code, out := control(t, e, "POST", "/_emulator/kms/secret-tags", `{"name":"rotated","tags":{"team":"ops"}}`); code != 200 {
		t.Fatalf("secret-tags = %d %v", code, out)
	}
	got, _, _, _ := listSecretNames(t, c, `[{"Key":"TagValue","Values":["ops"]}]`, 10)
	if !slices.Equal(got, []string{"plain", "rotated"}) {
		t.Fatalf("after tagging: %v", got)
	}
	if err := e.SetSecretTags("nope", map[string]string{"a": "b"}); err == nil {
		t.Fatal("tagging a missing secret should fail")
	}

	// Without FetchTags no Tags; defaults page 1 of 10.
	resp, err := c.ListSecrets(&kms.ListSecretsRequest{})
	if err != nil || tea.Int32Value(resp.Body.PageSize) != 10 || len(resp.Body.SecretList.Secret) != 5 || resp.Body.SecretList.Secret[0].Tags != nil {
		t.Fatalf("defaults = %v, %v", resp, err)
	}
	for _, bad := range []*kms.ListSecretsRequest{
		{PageSize: tea.Int32(101)},
		{PageSize: tea.Int32(0)},
		{PageNumber: tea.Int32(0)},
		{Filters: tea.String(`{"Key":"TagKey"}`)},
		{Filters: tea.String(`[{"Key":"Colour","Values":["red"]}]`)},
		{Filters: tea.String(`[{"Key":"TagKey","Values":["1","2","3","4","5","6","7","8","9","10","11"]}]`)},
	} {
		_, err := c.ListSecrets(bad)
		_ = wantSDKError(t, err, "InvalidParameter", 400)
	}

	// Deleting a secret takes it out of the list and out of reach.
	if !e.DeleteSecret("cache") || e.DeleteSecret("cache") {
		t.Fatal("DeleteSecret should report the first delete only")
	}
	if got, _, _, _ := listSecretNames(t, c, "", 10); slices.Contains(got, "cache") {
		t.Fatalf("deleted secret still listed: %v", got)
	}
	_, err = getSecret(c, "cache")
	_ = wantSDKError(t, err, "Forbidden.ResourceNotFound", 404)
	if n := e.CallsAction("kms", "ListSecrets"); n < 10 {
		t.Fatalf("ListSecrets calls = %d", n)
	}
}

func TestKMSListActionsDenied(t *testing.T) {
	seed := kmsListSeed(t)
	seed.Policies = map[string]emulator.Policy{"app": {
		Allow: map[string][]string{"kms:GetSecretValue": {"*"}, "kms:ListSecretVersionIds": {"db"}},
	}}
	e := start(t, seed, emulator.Options{})
	c := kmsClient(t, e, akCred(t, "AK1", "S1"))
	if _, err := c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("db")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("api")})
	se := wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if se.AccessDeniedDetail["AuthAction"] != "kms:ListSecretVersionIds" || se.AccessDeniedDetail["NoPermissionType"] != "ImplicitDeny" ||
		se.AccessDeniedDetail["AuthResource"] != "acs:kms:"+e.Region()+":"+emulator.DemoAccountID+":secret/api" {
		t.Fatalf("AccessDeniedDetail = %v", se.AccessDeniedDetail)
	}
	_, err = c.ListSecrets(&kms.ListSecretsRequest{})
	se = wantSDKError(t, err, "Forbidden.NoPermission", 403)
	if se.AccessDeniedDetail["AuthAction"] != "kms:ListSecrets" || se.AccessDeniedDetail["AuthResource"] != "acs:kms:"+e.Region()+":"+emulator.DemoAccountID+":secret" {
		t.Fatalf("AccessDeniedDetail = %v", se.AccessDeniedDetail)
	}
	e.SetPolicy("app", emulator.Policy{Allow: map[string][]string{"kms:List*": {"*"}}})
	if _, err := c.ListSecrets(&kms.ListSecretsRequest{}); err != nil {
		t.Fatal(err)
	}
}
