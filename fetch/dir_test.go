package fetch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

func TestParseDirectoryObjects(t *testing.T) {
	s, err := ParseParameters(map[string]string{"objects": `
- objectPath: /app/prod
  objectType: oos
  objectAlias: prod
  recursive: true
- objectTags: {team: payments, env: prod}
  objectAlias: pay
  filePermission: "0400"
- objectName: maybe
  optional: true
`})
	if err != nil {
		t.Fatal(err)
	}
	p, tg, opt := s.Objects[0], s.Objects[1], s.Objects[2]
	if p.Dir == nil || p.Dir.Path != "/app/prod/" || !p.Dir.Recursive || p.File != "prod" || p.Selector() != "list,recursive" {
		t.Fatalf("path object: %+v %+v", p, p.Dir)
	}
	if tg.Dir == nil || len(tg.Dir.Tags) != 2 || tg.Dir.Tags[0] != [2]string{"env", "prod"} || tg.Mode != 0o400 {
		t.Fatalf("tags object: %+v %+v", tg, tg.Dir)
	}
	if want := `objects[1] objectTags {env=prod, team=payments} (kms)`; tg.Ref() != want {
		t.Fatalf("Ref %q, want %q", tg.Ref(), want)
	}
	if !opt.Optional || opt.Selector() != "optional," {
		t.Fatalf("optional: %+v selector %q", opt, opt.Selector())
	}
	if !s.dirs || !s.dynamic {
		t.Fatal("a spec with directories is dynamic")
	}
}

func TestListingExpansion(t *testing.T) {
	parse := func(pt string) *Object {
		t.Helper()
		params := map[string]string{"objects": "- objectPath: /app/\n  objectType: oos\n  objectAlias: d\n  recursive: true\n  objectEncoding: base64"}
		if pt != "" {
			params["pathTranslation"] = pt
		}
		s, err := ParseParameters(params)
		if err != nil {
			t.Fatal(err)
		}
		return s.Objects[0]
	}
	o := parse("")
	e := &Entry{Data: listResult([]string{"/app/b", "/app/a/x"}).Data}
	ms, _, err := o.membersFor(e, "_", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].File != "d/a_x" || ms[1].File != "d/b" || ms[0].Name != "/app/a/x" || ms[0].Encoding != EncodingBase64 || ms[0].parent != o {
		t.Fatalf("members %+v %+v", ms[0], ms[1])
	}
	if again, _, _ := o.membersFor(e, "_", nil); again[0] != ms[0] {
		t.Fatal("the same listing entry must give the same members")
	}

	for _, c := range []struct {
		names []string
		pt    string
		says  []string
	}{
		{[]string{"/app/a/b", "/app/a_b"}, "", []string{`"/app/a/b"`, `"/app/a_b"`, "pathTranslation"}},
		{[]string{"/app/a", "/app/a/b"}, "False", []string{`"/app/a/b"`, "directory"}},
		{[]string{"/app/..data"}, "", []string{`"/app/..data"`, "never rewritten"}},
		{[]string{"/app/" + strings.Repeat("x", 300)}, "", []string{"cannot name a file"}},
	} {
		o := parse(c.pt)
		sep := "_"
		if c.pt == "False" {
			sep = ""
		}
		_, _, err := o.membersFor(&Entry{Data: listResult(c.names).Data}, sep, nil)
		if err == nil || KindOf(err) != KindInvalid {
			t.Fatalf("%v: %v", c.names, err)
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%v: %q does not say %q", c.names, err, s)
			}
		}
	}
}

func TestListResultVersionFollowsNames(t *testing.T) {
	a, b, c := listResult([]string{"x", "y"}), listResult([]string{"y", "x"}), listResult([]string{"x", "z"})
	if a.Version != b.Version || string(a.Data) != "x\ny" {
		t.Fatalf("order matters: %q %q", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Fatal("another name, the same version")
	}
}

// The policy sees every listed name before it is named: a hidden name can
// neither fail the Mount nor appear in its error.
func TestHiddenNamesAreCheckedFirst(t *testing.T) {
	s, err := ParseParameters(map[string]string{"objects": "- objectPath: /p/\n  objectType: oos\n  objectAlias: d\n  recursive: true"})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Objects[0]
	e := &Entry{Data: listResult([]string{"/p/mine", "/p/theirs/x", "/p/theirs_x"}).Data}
	if _, _, err := o.membersFor(e, "_", nil); err == nil {
		t.Fatal("without a policy the collision is the Mount's")
	}
	allow := func(_ ObjectType, name string) error {
		if strings.HasPrefix(name, "/p/theirs") {
			return errors.New("not yours")
		}
		return nil
	}
	ms, hidden, err := o.membersFor(e, "_", allow)
	if err != nil || len(ms) != 1 || ms[0].Name != "/p/mine" || len(hidden) != 2 {
		t.Fatalf("members %v hidden %v err %v", ms, hidden, err)
	}
}

// pager is a ListPager of fixed pages, counting calls.
type pager struct {
	pages  [][]string
	calls  int
	values map[string]string
}

func (p *pager) Get(_ context.Context, _ *auth.Identity, t Target) (Result, error) {
	if v, ok := p.values[t.Name]; ok {
		return Result{Data: Bytes(v), Version: "1"}, nil
	}
	return Result{}, &Error{Kind: KindNotFound, Message: "no such object"}
}

func (p *pager) ListPage(_ context.Context, _ *auth.Identity, _ Target, cursor string) (ListPage, error) {
	p.calls++
	i := 0
	if cursor != "" {
		i, _ = strconv.Atoi(cursor)
	}
	lp := ListPage{Names: p.pages[i], Scanned: len(p.pages[i])}
	if i+1 < len(p.pages) {
		lp.Next = strconv.Itoa(i + 1)
	}
	return lp, nil
}

type callCounter struct {
	NopObserver
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) UpstreamCall(_ ObjectType, action, _, _ string, _ time.Duration) {
	c.mu.Lock()
	c.calls[action]++
	c.mu.Unlock()
}

// Each page of a listing is one counted call; duplicates across pages are
// dropped; a listing over the cap is a value, cached for the TTL.
func TestListingPagesAndCap(t *testing.T) {
	pg := &pager{pages: [][]string{{"/p/a", "/p/b"}, {"/p/b", "/p/c"}, {"/p/d"}}}
	obs := &callCounter{calls: map[string]int{}}
	f := NewFetcher(NewCache(CacheOptions{}), pg, FetcherOptions{Region: "cn-hangzhou", Observer: obs, MaxListed: 3})
	spec, err := ParseParameters(map[string]string{"objects": "- objectPath: /p/\n  objectType: oos\n  objectAlias: d"})
	if err != nil {
		t.Fatal(err)
	}
	_, tg, err := f.Key(testIdentity(), spec, spec.Objects[0])
	if err != nil {
		t.Fatal(err)
	}
	tg.ListMax = 10
	res, err := f.listAll(context.Background(), testIdentity(), tg)
	if err != nil || string(res.Data) != "/p/a\n/p/b\n/p/c\n/p/d" {
		t.Fatalf("listing %q: %v", res.Data, err)
	}
	if pg.calls != 3 || obs.calls["GetSecretParametersByPath"] != 3 {
		t.Fatalf("%d pages read, %d counted; want 3 each", pg.calls, obs.calls["GetSecretParametersByPath"])
	}

	// Through Fetch: over --max-listed-objects (3) is refused, and the
	// refusal is cached: a second Mount lists nothing.
	pg.pages, pg.calls = [][]string{{"/p/a", "/p/b", "/p/c", "/p/d"}, {"/p/e"}}, 0
	_, _, err = f.Fetch(context.Background(), testIdentity(), spec)
	if err == nil || !strings.Contains(err.Error(), "--max-listed-objects") {
		t.Fatalf("over the cap: %v", err)
	}
	first := pg.calls
	if _, _, err = f.Fetch(context.Background(), testIdentity(), spec); err == nil {
		t.Fatal("the second Mount got past the cap")
	}
	if first != 1 || pg.calls != first {
		t.Fatalf("the refused listing was read again: %d pages, then %d", first, pg.calls)
	}
}

func testIdentity() *auth.Identity { return &auth.Identity{Fingerprint: "fp"} }

// A listed member cannot shadow a file: false object that a template
// reads: the collision fails the Mount instead of feeding the template.
func TestListedNameCannotShadowATemplateInput(t *testing.T) {
	pg := &pager{pages: [][]string{{"host"}}, values: map[string]string{"real": "db.internal", "host": "attacker.example"}}
	f := NewFetcher(NewCache(CacheOptions{}), pg, FetcherOptions{Region: "cn-hangzhou"})
	spec, err := ParseParameters(map[string]string{
		"pathTranslation": "False",
		"objects":         "- objectName: real\n  objectAlias: cfg/host\n  file: false\n- objectTags: {team: pay}\n  objectAlias: cfg",
		"templates":       "- fileName: dsn\n  template: 'postgres://{{ secret \"cfg/host\" }}/db'",
	})
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := f.Fetch(context.Background(), testIdentity(), spec)
	if err == nil {
		t.Fatalf("a listed name shadowed a template input: %v", fileNames(files))
	}
	if !strings.Contains(err.Error(), "cfg/host") || strings.Contains(err.Error(), "attacker") || strings.Contains(err.Error(), "db.internal") {
		t.Fatalf("error %q", err)
	}
}

func fileNames(fs []File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Path + "=" + string(f.Data)
	}
	return out
}

// A quoted tag value is kept as written; an unquoted 01 is refused (YAML
// would make it "1") in the shared bad-input table.
func TestTagValuesAsWritten(t *testing.T) {
	s, err := ParseParameters(map[string]string{"objects": "- objectTags: {build: \"01\", \"on\": \"yes\"}\n  objectAlias: d"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Objects[0].Dir.Tags; len(got) != 2 || got[0] != [2]string{"build", "01"} || got[1] != [2]string{"on", "yes"} {
		t.Fatalf("tags %v", got)
	}
}

func TestBaseVersion(t *testing.T) {
	for v, want := range map[string]string{"v1": "v1", "v1@cn-shanghai": "v1", "3@ap-southeast-1": "3", "a@b@cn-beijing": "a@b", "x@not a region": "x@not a region", "@cn-hangzhou": "@cn-hangzhou"} {
		if got := BaseVersion(v); got != want {
			t.Errorf("BaseVersion(%q) = %q, want %q", v, got, want)
		}
	}
	if !(Key{Selector: "list,recursive"}).IsListing() || (Key{Selector: "optional,"}).IsListing() {
		t.Fatal("IsListing")
	}
}

// One rule names the RAM actions of every object in permission hints.
func TestRAMActionHint(t *testing.T) {
	s, err := ParseParameters(map[string]string{"objects": `
- objectName: db
- objectName: p
  objectType: oos
- objectName: h
  objectVersionHistory: 2
- objectPath: /app/
  objectType: oos
  objectAlias: d
- objectTags: {team: pay}
  objectAlias: t
`})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kms:GetSecretValue",
		"oos:GetSecretParameter (and kms:GetSecretValue for the parameter's KMS key)",
		"kms:ListSecretVersionIds and kms:GetSecretValue",
		"oos:GetSecretParametersByPath and oos:GetSecretParameters and oos:GetSecretParameter (and kms:GetSecretValue for the parameter's KMS key)",
		"kms:ListSecrets and kms:GetSecretValue",
	}
	for i, o := range s.Objects {
		if got := RAMAction(o); got != want[i] {
			t.Errorf("%s: %q, want %q", o.Ref(), got, want[i])
		}
	}
	if got := ObjectResourceARN(s.Objects[3], "cn-hangzhou"); got != "acs:oos:cn-hangzhou:*:secretparameter//app/*" {
		t.Errorf("path ARN %q", got)
	}
}
