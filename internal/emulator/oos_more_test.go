package emulator_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
)

// oosSeed has encrypted and plain parameters laid out as paths.
func oosSeed(t *testing.T) *emulator.Seed {
	t.Helper()
	seed, err := emulator.ParseSeed([]byte(`
accessKeys: [{id: AK1, secret: S1, principal: app}]
parameters:
  - {name: /app/prod/db, value: VAL-prod-db, description: database, tags: {team: pay}}
  - {name: /app/prod/api, value: VAL-prod-api}
  - {name: /app/prod/deep/key, value: VAL-prod-deep}
  - {name: /app/dev/db, value: VAL-dev-db}
  - {name: /app/production, value: VAL-sibling}
  - {name: flat, versions: [VAL-flat-1, VAL-flat-2, VAL-flat-3]}
plainParameters:
  - {name: /app/prod/endpoint, value: db.internal, tags: {tier: one}}
  - {name: /app/prod/deep/port, value: "5432"}
  - {name: hosts, type: StringList, value: "a,b,c"}
  - {name: motd, versions: [hello, bonjour]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

func names(ps []string) string { b, _ := json.Marshal(ps); return string(b) }

func TestOOSGetParameterPlain(t *testing.T) {
	e := start(t, oosSeed(t), emulator.Options{})
	c := oosClient(t, e, akCred(t, "AK1", "S1"))
	get := func(name string, version int32) (*oos.GetParameterResponseBodyParameter, error) {
		req := &oos.GetParameterRequest{Name: tea.String(name)}
		if version > 0 {
			req.ParameterVersion = tea.Int32(version)
		}
		resp, err := c.GetParameter(req)
		if err != nil {
			return nil, err
		}
		return resp.Body.Parameter, nil
	}
	p, err := get("/app/prod/endpoint", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(p.Value) != "db.internal" || tea.StringValue(p.Type) != "String" || tea.Int32Value(p.ParameterVersion) != 1 ||
		p.Tags["tier"] != "one" || tea.StringValue(p.Id) == "" || tea.StringValue(p.CreatedDate) == "" || tea.StringValue(p.ShareType) != "Private" {
		t.Fatalf("parameter = %v", p)
	}
	if p, err = get("hosts", 0); err != nil || tea.StringValue(p.Type) != "StringList" || tea.StringValue(p.Value) != "a,b,c" {
		t.Fatalf("StringList = %v, %v", p, err)
	}
	if p, err = get("motd", 1); err != nil || tea.StringValue(p.Value) != "hello" {
		t.Fatalf("motd v1 = %v, %v", p, err)
	}
	if p, err = get("motd", 0); err != nil || tea.StringValue(p.Value) != "bonjour" || tea.Int32Value(p.ParameterVersion) != 2 {
		t.Fatalf("motd latest = %v, %v", p, err)
	}
	_, err = get("motd", 3)
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
	// The stores are apart: an encrypted parameter is no plain one.
	_, err = get("flat", 0)
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
	_, err = getParam(c, "motd")
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)

	v, err := e.PutPlainParameter("motd", "hola")
	if err != nil || v != 3 {
		t.Fatalf("PutPlainParameter = %d, %v", v, err)
	}
	if p, err = get("motd", 0); err != nil || tea.StringValue(p.Value) != "hola" {
		t.Fatalf("after put = %v, %v", p, err)
	}
	if !e.DeletePlainParameter("motd") || e.DeletePlainParameter("motd") {
		t.Fatal("DeletePlainParameter should report the first delete only")
	}
	_, err = get("motd", 0)
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)
}

func TestOOSGetParametersAndSecretParameters(t *testing.T) {
	e := start(t, oosSeed(t), emulator.Options{})
	c := oosClient(t, e, akCred(t, "AK1", "S1"))

	resp, err := c.GetSecretParameters(&oos.GetSecretParametersRequest{
		Names:          tea.String(names([]string{"/app/prod/db", "nope", "flat", "/app/prod/db", "also-missing"})),
		WithDecryption: tea.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := resp.Body
	if len(b.Parameters) != 2 || tea.StringValue(b.Parameters[0].Name) != "/app/prod/db" || tea.StringValue(b.Parameters[1].Name) != "flat" {
		t.Fatalf("Parameters = %v", b.Parameters)
	}
	if tea.StringValue(b.Parameters[0].Value) != "VAL-prod-db" || tea.StringValue(b.Parameters[1].Value) != "VAL-flat-3" ||
		tea.Int32Value(b.Parameters[1].ParameterVersion) != 3 || tea.StringValue(b.Parameters[0].Type) != "Secret" ||
		tea.StringValue(b.Parameters[0].KeyId) == "" || b.Parameters[0].Tags["team"] != "pay" {
		t.Fatalf("Parameters = %v", b.Parameters)
	}
	if got := tea.StringSliceValue(b.InvalidParameters); !slices.Equal(got, []string{"nope", "also-missing"}) {
		t.Fatalf("InvalidParameters = %v", got)
	}
	// Without WithDecryption no value.
	resp, err = c.GetSecretParameters(&oos.GetSecretParametersRequest{Names: tea.String(`["flat"]`)})
	if err != nil || len(resp.Body.Parameters) != 1 || resp.Body.Parameters[0].Value != nil || len(resp.Body.InvalidParameters) != 0 {
		t.Fatalf("no decryption = %v, %v", resp, err)
	}

	presp, err := c.GetParameters(&oos.GetParametersRequest{Names: tea.String(names([]string{"hosts", "/app/prod/db", "motd"}))})
	if err != nil {
		t.Fatal(err)
	}
	if len(presp.Body.Parameters) != 2 || tea.StringValue(presp.Body.Parameters[0].Value) != "a,b,c" || tea.StringValue(presp.Body.Parameters[1].Value) != "bonjour" {
		t.Fatalf("GetParameters = %v", presp.Body)
	}
	if got := tea.StringSliceValue(presp.Body.InvalidParameters); !slices.Equal(got, []string{"/app/prod/db"}) {
		t.Fatalf("GetParameters InvalidParameters = %v", got)
	}

	// The limit is 10 names per call.
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = fmt.Sprintf("n%d", i)
	}
	resp, err = c.GetSecretParameters(&oos.GetSecretParametersRequest{Names: tea.String(names(ten))})
	if err != nil || len(resp.Body.InvalidParameters) != 10 {
		t.Fatalf("ten names = %v, %v", resp, err)
	}
	_, err = c.GetSecretParameters(&oos.GetSecretParametersRequest{Names: tea.String(names(append(ten, "n10")))})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.GetParameters(&oos.GetParametersRequest{Names: tea.String(names(append(ten, "n10")))})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.GetParameters(&oos.GetParametersRequest{Names: tea.String("hosts")})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.GetParameters(&oos.GetParametersRequest{Names: tea.String("[]")})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.GetParameters(&oos.GetParametersRequest{})
	_ = wantSDKError(t, err, "MissingParameter", 400)

	// Counted under the action, the resource being the names asked.
	if n := e.CallsAction("oos", "GetSecretParameters"); n != 4 {
		t.Fatalf("GetSecretParameters calls = %d", n)
	}
	if n := e.CallsFor("oos", "hosts,/app/prod/db,motd"); n != 1 {
		t.Fatalf("calls for the GetParameters names = %d", n)
	}
}

func listSecretVersions(t *testing.T, c *oos.Client, name string, max int32, decrypt bool) (versions []int32, values []string, pages int) {
	t.Helper()
	var token *string
	for {
		resp, err := c.ListSecretParameterVersions(&oos.ListSecretParameterVersionsRequest{
			Name: tea.String(name), MaxResults: tea.Int32(max), NextToken: token, WithDecryption: tea.Bool(decrypt),
		})
		if err != nil {
			t.Fatal(err)
		}
		b := resp.Body
		pages++
		if tea.StringValue(b.Name) != name || tea.StringValue(b.Type) != "Secret" || tea.Int32Value(b.MaxResults) != max || tea.StringValue(b.Id) == "" {
			t.Fatalf("page %d = %v", pages, b)
		}
		for _, v := range b.ParameterVersions {
			versions = append(versions, tea.Int32Value(v.ParameterVersion))
			values = append(values, tea.StringValue(v.Value))
			if tea.StringValue(v.UpdatedDate) == "" {
				t.Fatalf("version without UpdatedDate: %v", v)
			}
		}
		if int(tea.Int32Value(b.TotalCount)) != 25 && name == "many" {
			t.Fatalf("TotalCount = %d", tea.Int32Value(b.TotalCount))
		}
		if tea.StringValue(b.NextToken) == "" {
			return versions, values, pages
		}
		token = b.NextToken
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
	}
}

func TestOOSListParameterVersions(t *testing.T) {
	e := start(t, oosSeed(t), emulator.Options{})
	c := oosClient(t, e, akCred(t, "AK1", "S1"))
	for i := 1; i <= 25; i++ {
		if _, err := e.PutParameter("many", fmt.Sprintf("VAL-many-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	versions, values, pages := listSecretVersions(t, c, "many", 10, true)
	if pages != 3 || len(versions) != 25 || versions[0] != 25 || versions[24] != 1 || values[0] != "VAL-many-25" || values[24] != "VAL-many-1" {
		t.Fatalf("pages %d, versions %v, values %v", pages, versions, values)
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] != versions[i-1]-1 {
			t.Fatalf("not newest first: %v", versions)
		}
	}
	_, values, _ = listSecretVersions(t, c, "flat", 50, false)
	if !slices.Equal(values, []string{"", "", ""}) {
		t.Fatalf("values without WithDecryption = %q", values)
	}

	for _, bad := range []int32{9, 101} {
		_, err := c.ListSecretParameterVersions(&oos.ListSecretParameterVersionsRequest{Name: tea.String("many"), MaxResults: tea.Int32(bad)})
		_ = wantSDKError(t, err, "InvalidParameter", 400)
	}
	_, err := c.ListSecretParameterVersions(&oos.ListSecretParameterVersionsRequest{Name: tea.String("many"), NextToken: tea.String("garbage!")})
	_ = wantSDKError(t, err, "InvalidParameter", 400)
	_, err = c.ListSecretParameterVersions(&oos.ListSecretParameterVersionsRequest{Name: tea.String("nope")})
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)

	// The plain one: values always, default MaxResults 50.
	resp, err := c.ListParameterVersions(&oos.ListParameterVersionsRequest{Name: tea.String("motd")})
	if err != nil {
		t.Fatal(err)
	}
	b := resp.Body
	if tea.Int32Value(b.TotalCount) != 2 || tea.Int32Value(b.MaxResults) != 50 || b.NextToken != nil || tea.StringValue(b.Type) != "String" || len(b.ParameterVersions) != 2 ||
		tea.StringValue(b.ParameterVersions[0].Value) != "bonjour" || tea.Int32Value(b.ParameterVersions[1].ParameterVersion) != 1 {
		t.Fatalf("ListParameterVersions = %v", b)
	}
	_, err = c.ListParameterVersions(&oos.ListParameterVersionsRequest{Name: tea.String("flat")})
	_ = wantSDKError(t, err, "EntityNotExists.Parameter", 404)

	// Values never reach the request log or the counters.
	raw, _ := json.Marshal(e.Requests())
	rows, _ := json.Marshal(e.Counters())
	for _, s := range []string{string(raw), string(rows)} {
		if strings.Contains(s, "VAL-") || strings.Contains(s, "bonjour") {
			t.Fatalf("a value leaked: %s", s)
		}
	}
}

func byPath(t *testing.T, c *oos.Client, path string, recursive bool, max int32) (got []string, values []string, pages, total int) {
	t.Helper()
	var token *string
	for {
		req := &oos.GetSecretParametersByPathRequest{Path: tea.String(path), Recursive: tea.Bool(recursive), NextToken: token, WithDecryption: tea.Bool(true)}
		if max > 0 {
			req.MaxResults = tea.Int32(max)
		}
		resp, err := c.GetSecretParametersByPath(req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		total = int(tea.Int32Value(resp.Body.TotalCount))
		for _, p := range resp.Body.Parameters {
			got = append(got, tea.StringValue(p.Name))
			values = append(values, tea.StringValue(p.Value))
		}
		if tea.StringValue(resp.Body.NextToken) == "" {
			return got, values, pages, total
		}
		token = resp.Body.NextToken
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
	}
}

func TestOOSParametersByPath(t *testing.T) {
	e := start(t, oosSeed(t), emulator.Options{})
	c := oosClient(t, e, akCred(t, "AK1", "S1"))

	for _, tc := range []struct {
		path      string
		recursive bool
		want      []string
	}{
		{"/app/prod", false, []string{"/app/prod/api", "/app/prod/db"}},
		{"/app/prod/", false, []string{"/app/prod/api", "/app/prod/db"}},
		{"/app/prod", true, []string{"/app/prod/api", "/app/prod/db", "/app/prod/deep/key"}},
		{"/app", false, []string{"/app/production"}},
		{"/app", true, []string{"/app/dev/db", "/app/prod/api", "/app/prod/db", "/app/prod/deep/key", "/app/production"}},
		{"/", false, nil},
		{"/nothing", true, nil},
	} {
		got, _, _, total := byPath(t, c, tc.path, tc.recursive, 0)
		if !slices.Equal(got, tc.want) || total != len(tc.want) {
			t.Errorf("path %q recursive %v: got %v (TotalCount %d), want %v", tc.path, tc.recursive, got, total, tc.want)
		}
	}
	_, values, _, _ := byPath(t, c, "/app/prod", false, 0)
	if !slices.Equal(values, []string{"VAL-prod-api", "VAL-prod-db"}) {
		t.Fatalf("values = %v", values)
	}
	resp, err := c.GetSecretParametersByPath(&oos.GetSecretParametersByPathRequest{Path: tea.String("/app/prod")})
	if err != nil || len(resp.Body.Parameters) != 2 || resp.Body.Parameters[0].Value != nil || tea.Int32Value(resp.Body.MaxResults) != 10 {
		t.Fatalf("without decryption = %v, %v", resp, err)
	}

	// Pagination: 13 parameters in pages of 5.
	for i := 0; i < 13; i++ {
		if _, err := e.PutParameter(fmt.Sprintf("/many/p%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	got, _, pages, total := byPath(t, c, "/many", false, 5)
	if pages != 3 || total != 13 || len(got) != 13 || got[0] != "/many/p00" || got[12] != "/many/p12" {
		t.Fatalf("paged: %d pages, total %d, %v", pages, total, got)
	}
	got, _, pages, _ = byPath(t, c, "/many", false, 10)
	if pages != 2 || len(got) != 13 {
		t.Fatalf("pages of 10: %d, %v", pages, got)
	}
	for _, bad := range []int32{0, 11} {
		_, err := c.GetSecretParametersByPath(&oos.GetSecretParametersByPathRequest{Path: tea.String("/many"), MaxResults: tea.Int32(bad)})
		_ = wantSDKError(t, err, "InvalidParameter", 400)
	}
	_, err = c.GetSecretParametersByPath(&oos.GetSecretParametersByPathRequest{})
	_ = wantSDKError(t, err, "MissingParameter", 400)
	_, err = c.GetSecretParametersByPath(&oos.GetSecretParametersByPathRequest{Path: tea.String("/" + strings.Repeat("x", 200))})
	_ = wantSDKError(t, err, "InvalidParameter", 400)

	// The plain store by path.
	presp, err := c.GetParametersByPath(&oos.GetParametersByPathRequest{Path: tea.String("/app/prod/"), Recursive: tea.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	pb := presp.Body
	if tea.Int32Value(pb.TotalCount) != 2 || len(pb.Parameters) != 2 || tea.StringValue(pb.Parameters[0].Name) != "/app/prod/deep/port" ||
		tea.StringValue(pb.Parameters[1].Value) != "db.internal" || pb.Parameters[1].Tags["tier"] != "one" || tea.StringValue(pb.Parameters[1].Type) != "String" {
		t.Fatalf("GetParametersByPath = %v", pb)
	}
	if n := e.CallsFor("oos", "/many"); n < 5 {
		t.Fatalf("calls for /many = %d", n)
	}
}

// TestOOSNewActionsDenied refuses each new OOS action through its own RAM
// action name, with the resource type of its ARN.
func TestOOSNewActionsDenied(t *testing.T) {
	seed := oosSeed(t)
	seed.Policies = map[string]emulator.Policy{"app": {Deny: map[string][]string{
		"oos:GetParameter": {"hosts"}, "oos:GetParameters": {"motd"}, "oos:GetSecretParameters": {"flat"},
		"oos:ListSecretParameterVersions": {"flat"}, "oos:ListParameterVersions": {"motd"},
		"oos:GetSecretParametersByPath": {"/app/*"}, "oos:GetParametersByPath": {"/app/prod"},
	}}}
	e := start(t, seed, emulator.Options{})
	c := oosClient(t, e, akCred(t, "AK1", "S1"))
	arn := func(kind, name string) string {
		return "acs:oos:" + e.Region() + ":" + emulator.DemoAccountID + ":" + kind + "/" + name
	}
	for _, tc := range []struct {
		action, arn string
		call        func() error
	}{
		{"oos:GetParameter", arn("parameter", "hosts"), func() error {
			_, err := c.GetParameter(&oos.GetParameterRequest{Name: tea.String("hosts")})
			return err
		}},
		{"oos:GetParameters", arn("parameter", "motd"), func() error {
			_, err := c.GetParameters(&oos.GetParametersRequest{Names: tea.String(`["hosts","motd"]`)})
			return err
		}},
		{"oos:GetSecretParameters", arn("secretparameter", "flat"), func() error {
			_, err := c.GetSecretParameters(&oos.GetSecretParametersRequest{Names: tea.String(`["flat"]`)})
			return err
		}},
		{"oos:ListSecretParameterVersions", arn("secretparameter", "flat"), func() error {
			_, err := c.ListSecretParameterVersions(&oos.ListSecretParameterVersionsRequest{Name: tea.String("flat")})
			return err
		}},
		{"oos:ListParameterVersions", arn("parameter", "motd"), func() error {
			_, err := c.ListParameterVersions(&oos.ListParameterVersionsRequest{Name: tea.String("motd")})
			return err
		}},
		{"oos:GetSecretParametersByPath", arn("secretparameter", "/app/prod"), func() error {
			_, err := c.GetSecretParametersByPath(&oos.GetSecretParametersByPathRequest{Path: tea.String("/app/prod")})
			return err
		}},
		{"oos:GetParametersByPath", arn("parameter", "/app/prod"), func() error {
			_, err := c.GetParametersByPath(&oos.GetParametersByPathRequest{Path: tea.String("/app/prod")})
			return err
		}},
	} {
		se := wantSDKError(t, tc.call(), "Forbidden.NoPermission", 403)
		if se.AccessDeniedDetail["AuthAction"] != tc.action || se.AccessDeniedDetail["AuthResource"] != tc.arn || se.AccessDeniedDetail["NoPermissionType"] != "ExplicitDeny" {
			t.Errorf("%s: AccessDeniedDetail = %v", tc.action, se.AccessDeniedDetail)
		}
	}
	// What the policy does not deny is allowed.
	if _, err := c.GetParameter(&oos.GetParameterRequest{Name: tea.String("motd")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecretParametersByPath(&oos.GetSecretParametersByPathRequest{Path: tea.String("/other")}); err != nil {
		t.Fatal(err)
	}
	if n := e.CallsWithOutcome("oos", "Forbidden.NoPermission"); n != 7 {
		t.Fatalf("denied oos calls = %d", n)
	}
}
