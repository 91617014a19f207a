package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	oos "github.com/alibabacloud-go/oos-20190601/v4/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Directory objects: an OOS path (objectPath, recursive) or a set of KMS
// tags (objectTags) in place of an objectName. At each Mount the listing is
// read through the cache like any value (one entry per identity, region
// and path or tags: coalesced, refreshed on the TTL, stale on outages), the
// names it holds become member objects under the directory objectAlias
// (named by the one naming rule), the caller's policy sees every name
// before its value is read, and the members are read through the cache
// like any object, batched where the service can. A listing carries names
// only: the OOS listing asks for no decryption, and ListSecrets returns no
// values.

// Limits of directory objects.
const (
	MaxTags            = 10  // objectTags pairs
	maxOOSPathBytes    = 200 // OOS Path (the API's limit)
	maxTagKeyBytes     = 128 // KMS tag key
	maxTagValueBytes   = 256 // KMS tag value
	DefaultMaxListed   = 200 // --max-listed-objects
	oosByPathPageSize  = 10  // the most GetSecretParametersByPath returns
	kmsListPageSize    = 100 // the most ListSecrets returns
	maxKMSListScanned  = 5000
	listVersionPrefix  = "list-"
	directoryNameField = "a listed name"
)

// Dir is what a directory object lists. It is part of a parsed Spec, shared
// by every Mount of the class: its only mutable part is the memo of the
// last expansion, swapped atomically.
type Dir struct {
	// Path is the OOS path (ending in "/"); Recursive lists sub-paths too.
	Path      string
	Recursive bool
	// Tags are the KMS tags every listed secret must carry, by key.
	Tags [][2]string

	memo atomic.Pointer[dirMembers]
}

// dirMembers is one listing's names and member objects: a pure function
// of the listing entry and the object.
type dirMembers struct {
	entry *Entry
	names []string
	objs  []*Object
	err   error
}

// String names what the directory lists, for messages.
func (d *Dir) String() string {
	if d.Path != "" {
		if d.Recursive {
			return fmt.Sprintf("objectPath %q (recursive)", d.Path)
		}
		return fmt.Sprintf("objectPath %q", d.Path)
	}
	parts := make([]string, len(d.Tags))
	for i, t := range d.Tags {
		parts[i] = t[0] + "=" + t[1]
	}
	return "objectTags {" + strings.Join(parts, ", ") + "}"
}

// IsListing reports whether k is a directory object's listing, not a value.
func (k Key) IsListing() bool { return strings.HasPrefix(k.Selector, "list") }

// selector is the listing's cache key selector.
func (d *Dir) selector() string {
	if d.Recursive {
		return "list,recursive"
	}
	return "list"
}

var (
	oosPathRe = regexp.MustCompile(`^/(?:[A-Za-z0-9_.-]+/)*$`)
)

// parseDir reads objectPath, recursive and objectTags into o.Dir. It
// reports whether o is a directory object; the caller checks objectName
// only when it is not.
func parseDir(o *Object, r *rawObject, f func(string) string) (bool, error) {
	hasPath, hasTags := r.ObjectPath != "", r.ObjectTags != nil
	if !hasPath && !hasTags {
		if r.Recursive {
			return false, verr(f("recursive"), "applies to objectPath only; remove it, or add objectPath")
		}
		return false, nil
	}
	which := "objectPath"
	if hasTags {
		which = "objectTags"
	}
	switch {
	case hasPath && hasTags:
		return false, verr(f("objectTags"), "cannot be combined with objectPath: list OOS parameters by path or KMS secrets by tags, in two objects")
	case o.Name != "":
		return false, verr(f("objectName"), "cannot be combined with %s: a directory object lists its objects; remove objectName, or remove %s to read one object", which, which)
	case o.Alias == "":
		return false, verr(f("objectAlias"), "is required with %s: it names the directory that receives the listed objects", which)
	}
	for _, c := range []struct {
		set   bool
		field string
	}{
		{o.Version != "", "objectVersion"}, {o.VersionLabel != "", "objectVersionLabel"},
		{len(r.JMESPath) > 0, "jmesPath"}, {r.KeysAsFiles, "keysAsFiles"},
		{r.ObjectVersionHistory != nil, "objectVersionHistory"}, {r.ObjectFormat != "", "objectFormat"},
		{o.KMSEndpoint != "", "kmsEndpoint"}, {o.CrossAccountRoleArn != "", "crossAccountRoleArn"},
		{r.Optional, "optional"},
	} {
		if c.set {
			return false, verr(f(c.field), "cannot be combined with %s: every listed object is read whole, at its current version, with the pod's identity; remove %s", which, c.field)
		}
	}
	if hasPath {
		if !o.Type.IsOOS() {
			return false, verr(f("objectPath"), "lists OOS parameters: set objectType: oos (encrypted) or oos-parameter (common), or use objectTags to list KMS secrets")
		}
		p := r.ObjectPath
		if len(p) > maxOOSPathBytes {
			return false, verr(f("objectPath"), "is %d bytes, over OOS's limit of %d", len(p), maxOOSPathBytes)
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		if !oosPathRe.MatchString(p) || strings.Contains(p, "/./") || strings.Contains(p, "/../") {
			return false, verr(f("objectPath"), "%q is not an OOS parameter path: start it with \"/\" and use letters, digits, '_', '.' and '-' between single slashes, such as /app/prod/", textutil.Truncate(r.ObjectPath, 64))
		}
		o.Dir = &Dir{Path: p, Recursive: r.Recursive}
		o.Name = p
		return true, nil
	}
	if o.Type != TypeKMS {
		return false, verr(f("objectTags"), "lists KMS secrets: set objectType: kms (the default), or use objectPath to list OOS parameters")
	}
	if r.Recursive {
		return false, verr(f("recursive"), "applies to objectPath only; remove it")
	}
	if len(r.ObjectTags) == 0 {
		return false, verr(f("objectTags"), "is empty; give the tags every listed secret must carry, such as {team: payments, env: prod}")
	}
	if len(r.ObjectTags) > MaxTags {
		return false, verr(f("objectTags"), "has %d tags, over the limit of %d", len(r.ObjectTags), MaxTags)
	}
	d := &Dir{}
	for k, tv := range r.ObjectTags {
		v := tv.text
		if tv.notString {
			return false, verr(f("objectTags"), "the value of tag %q is not a string: YAML reads an unquoted on, yes, 01, 1.0 or 0x10 as a boolean or a number, which would match another tag value; quote it, e.g. {%s: \"01\"}", textutil.Truncate(k, 64), textutil.Truncate(k, 64))
		}
		if k == "" {
			return false, verr(f("objectTags"), "has an empty tag key; name the key")
		}
		if err := checkName(f("objectTags")+" key", k); err != nil {
			return false, err
		}
		if len(k) > maxTagKeyBytes {
			return false, verr(f("objectTags"), "tag key %q is over KMS's limit of %d bytes", textutil.Truncate(k, 64), maxTagKeyBytes)
		}
		if v == "" {
			return false, verr(f("objectTags"), "tag %q has an empty value; give the value the secrets carry", textutil.Truncate(k, 64))
		}
		if err := checkName(f("objectTags")+"."+k, v); err != nil {
			return false, err
		}
		if len(v) > maxTagValueBytes {
			return false, verr(f("objectTags"), "the value of tag %q is over KMS's limit of %d bytes", textutil.Truncate(k, 64), maxTagValueBytes)
		}
		d.Tags = append(d.Tags, [2]string{k, v})
	}
	sort.Slice(d.Tags, func(i, j int) bool { return d.Tags[i][0] < d.Tags[j][0] })
	b, _ := json.Marshal(d.Tags) // strings only: cannot fail
	o.Dir, o.Name = d, "tags:"+string(b)
	return true, nil
}

// tagValue is an objectTags value as written. The YAML library turns an
// unquoted scalar into a string for a string field, rewriting it (01 is
// "1", on is "true"); with its own decoder the value arrives as YAML read
// it, and anything but a string is refused.
type tagValue struct {
	text      string
	notString bool
}

func (t *tagValue) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &t.text); err != nil {
		*t = tagValue{notString: true}
	}
	return nil
}

// ListAction is the API action that lists a directory object of t.
func ListAction(t ObjectType) string {
	switch t {
	case TypeOOS:
		return "GetSecretParametersByPath"
	case TypeOOSParameter:
		return "GetParametersByPath"
	}
	return "ListSecrets"
}

// ListPager is a Source that reads a directory object's listing a page at
// a time. The fetcher pages (listAll), so each page takes its own
// rate-limit token and fetch slot and is counted as one upstream call.
type ListPager interface {
	ListPage(ctx context.Context, id *auth.Identity, t Target, cursor string) (ListPage, error)
}

// ListPage is one page of a listing.
type ListPage struct {
	Names []string // the names the page lists (KMS: those with every tag)
	Next  string   // the next page's cursor; "" on the last page
	// Scanned is how many entries the page held before the tag filter.
	Scanned int
}

// ListOverLimit is the version of a listing refused for its size: cached
// like a value (its Data is the reason), so an oversized listing is read
// once per TTL, not at every Mount.
const ListOverLimit = "over-limit"

// listAll reads every page of t's listing. The names are sorted and
// de-duplicated; past t.ListMax, or past the page and scan bounds, the
// listing stops and is the ListOverLimit value.
func (f *Fetcher) listAll(ctx context.Context, id *auth.Identity, t Target) (Result, error) {
	lp, ok := f.source.(ListPager)
	if !ok {
		return Result{}, &Error{Kind: KindInvalid, Service: t.Type.Service(), Message: "this provider's source cannot list objectPath or objectTags"}
	}
	var names []string
	seen := map[string]bool{}
	cursor, scanned := "", 0
	for page := 0; ; page++ {
		if page >= maxListPages(t) {
			return overLimit(fmt.Sprintf("the listing did not end within %d pages; narrow the %s", page, listWhat(t))), nil
		}
		release, err := f.slot(ctx, t)
		if err != nil {
			return Result{}, err
		}
		start := time.Now()
		p, err := lp.ListPage(ctx, id, t, cursor)
		release()
		code := ""
		if err != nil {
			code = errCode(err)
		}
		f.obs.UpstreamCall(t.Type, ListAction(t.Type), t.Name, code, time.Since(start))
		if err != nil {
			return Result{}, err
		}
		for _, n := range p.Names {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		scanned += p.Scanned
		switch {
		case len(names) > t.ListMax:
			return overLimit(fmt.Sprintf("the listing holds more than %d objects (--max-listed-objects); narrow the %s, or raise the flag", t.ListMax, listWhat(t))), nil
		case p.Next == "":
			return listResult(names), nil
		case p.Next == cursor:
			return Result{}, malformed(t, "the same page cursor twice")
		case scanned >= maxKMSListScanned:
			return overLimit(fmt.Sprintf("the tag %s=%s alone matches more than %d secrets; make the first tag in key order the most selective, or add a tag fewer secrets carry", t.List.Tags[0][0], t.List.Tags[0][1], maxKMSListScanned)), nil
		}
		cursor = p.Next
	}
}

// maxListPages bounds a listing's pages: enough for ListMax names (OOS) or
// for maxKMSListScanned secrets at full pages (KMS), and a little more.
func maxListPages(t Target) int {
	if t.Type == TypeKMS {
		return maxKMSListScanned/kmsListPageSize + 2
	}
	return t.ListMax/oosByPathPageSize + 2
}

func overLimit(msg string) Result { return Result{Data: Bytes(msg), Version: ListOverLimit} }

// listResult encodes a listing as a cache value: the sorted names, one per
// line (no name holds a newline: ListPage refuses one), and a version that
// changes with them.
func listResult(names []string) Result {
	sort.Strings(names)
	data := strings.Join(names, "\n")
	h := fnv.New64a()
	h.Write([]byte(data)) //nolint:errcheck // hash writes cannot fail
	return Result{Data: Bytes(data), Version: listVersionPrefix + strconv.Itoa(len(names)) + "-" + strconv.FormatUint(h.Sum64(), 16)}
}

func listWhat(t Target) string {
	if t.List.Path != "" {
		return "path"
	}
	return "tags"
}

// ListPage reads one page of t's listing with one call. The cursor is the
// OOS NextToken, or the KMS page number; "" is the first page.
func (s *SDKSource) ListPage(ctx context.Context, id *auth.Identity, t Target, cursor string) (p ListPage, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = ListPage{}, sdkPanic(t, r)
		}
	}()
	if id == nil || id.Credential == nil {
		return ListPage{}, &Error{Kind: KindUnauthenticated, Service: t.Type.Service(), Message: "no credential"}
	}
	c, err := s.client(id, t)
	if err != nil {
		return ListPage{}, err
	}
	if t.Type == TypeKMS {
		p, err = s.kmsListPage(ctx, c, t, cursor)
	} else {
		p, err = s.oosListPage(ctx, c, t, cursor)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		e := Classify(t.Type.Service(), ListAction(t.Type), err)
		if e.Kind == KindThrottled && e.RetryAfter == 0 {
			e.RetryAfter = c.http.hint()
		}
		return ListPage{}, e
	}
	for _, n := range p.Names {
		if n == "" || strings.ContainsAny(n, "\n\r\x00") {
			return ListPage{}, malformed(t, "an empty listed name, or one with a line break")
		}
	}
	return p, nil
}

// oosListPage is one GetSecretParametersByPath page (without decryption)
// or GetParametersByPath page, the names only.
func (s *SDKSource) oosListPage(ctx context.Context, c *sdkClient, t Target, cursor string) (ListPage, error) {
	var token *string
	if cursor != "" {
		token = dara.String(cursor)
	}
	var pg oosPage
	var err error
	if t.Type == TypeOOS {
		var r *oos.GetSecretParametersByPathResponse
		r, err = c.oos.GetSecretParametersByPathWithContext(ctx, &oos.GetSecretParametersByPathRequest{
			Path: dara.String(t.List.Path), Recursive: dara.Bool(t.List.Recursive), WithDecryption: dara.Bool(false),
			MaxResults: dara.Int32(oosByPathPageSize), NextToken: token,
		}, &dara.RuntimeOptions{})
		if r != nil && r.Body != nil {
			pg = oosPage{r.StatusCode, r.Body.NextToken, namesOf(r.Body.Parameters)}
		}
	} else {
		var r *oos.GetParametersByPathResponse
		r, err = c.oos.GetParametersByPathWithContext(ctx, &oos.GetParametersByPathRequest{
			Path: dara.String(t.List.Path), Recursive: dara.Bool(t.List.Recursive),
			MaxResults: dara.Int32(oosByPathPageSize), NextToken: token,
		}, &dara.RuntimeOptions{})
		if r != nil && r.Body != nil {
			pg = oosPage{r.StatusCode, r.Body.NextToken, namesOf(r.Body.Parameters)}
		}
	}
	if err != nil {
		return ListPage{}, err
	}
	if pg.status == nil || *pg.status/100 != 2 {
		return ListPage{}, malformed(t, "a non-2xx status without an error body")
	}
	out := ListPage{Names: make([]string, 0, len(pg.names)), Next: dara.StringValue(pg.next)}
	for _, n := range pg.names {
		if n == nil || !strings.HasPrefix(*n, t.List.Path) || len(*n) == len(t.List.Path) {
			return ListPage{}, malformed(t, "a listed parameter outside the path")
		}
		out.Names = append(out.Names, *n)
	}
	out.Scanned = len(out.Names)
	return out, nil
}

// oosPage is what one page of either ByPath action answers.
type oosPage struct {
	status *int32
	next   *string
	names  []*string
}

// namesOf are the names of a ByPath page's parameters, in order.
func namesOf[E any, P interface {
	*E
	GetName() *string
}](ps []P) []*string {
	out := make([]*string, 0, len(ps))
	for _, p := range ps {
		if p != nil {
			out = append(out, p.GetName())
		}
	}
	return out
}

// kmsListSecrets is the KMS client's own description of ListSecrets.
var kmsListSecrets = kmsRPC("ListSecrets")

// kmsListPage is one ListSecrets page filtered by the first tag (a
// ListSecrets filter matches one tag per key-value pair), with each
// secret's tags; it keeps the secrets that carry every tag.
func (s *SDKSource) kmsListPage(ctx context.Context, c *sdkClient, t Target, cursor string) (ListPage, error) {
	page := 1
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 1 {
			return ListPage{}, &Error{Kind: KindInternal, Service: TypeKMS, Message: "bad listing cursor"}
		}
		page = n
	}
	first := t.List.Tags[0]
	filters, _ := json.Marshal([]map[string]any{ // strings only: cannot fail
		{"Key": "TagKey", "Values": []string{first[0]}},
		{"Key": "TagValue", "Values": []string{first[1]}},
	})
	query := map[string]any{
		"FetchTags": dara.String("true"), "Filters": dara.String(string(filters)),
		"PageNumber": dara.Int32(int32(page)), "PageSize": dara.Int32(kmsListPageSize), //nolint:gosec // page is bounded by maxListPages
	}
	body, err := c.kms.CallApiWithCtx(ctx, kmsListSecrets, &openapi.OpenApiRequest{Query: openapiutil.Query(query)}, &dara.RuntimeOptions{})
	if err != nil {
		return ListPage{}, err
	}
	r := &kms.ListSecretsResponse{}
	if err := dara.Convert(body, &r); err != nil {
		return ListPage{}, err
	}
	if r.StatusCode == nil || *r.StatusCode/100 != 2 || r.Body == nil {
		return ListPage{}, malformed(t, "a non-2xx status without an error body")
	}
	if r.Body.TotalCount == nil {
		return ListPage{}, malformed(t, "TotalCount missing")
	}
	var list []*kms.ListSecretsResponseBodySecretListSecret
	if r.Body.SecretList != nil {
		list = r.Body.SecretList.Secret
	}
	out := ListPage{Scanned: len(list)}
	for _, sec := range list {
		if sec == nil || sec.SecretName == nil || *sec.SecretName == "" {
			return ListPage{}, malformed(t, "a listed secret without a SecretName")
		}
		if hasTags(sec, t.List.Tags) {
			out.Names = append(out.Names, *sec.SecretName)
		}
	}
	if len(list) > 0 && page*kmsListPageSize < int(*r.Body.TotalCount) {
		out.Next = strconv.Itoa(page + 1)
	}
	return out, nil
}

func hasTags(sec *kms.ListSecretsResponseBodySecretListSecret, want [][2]string) bool {
	have := map[string]string{}
	if sec.Tags != nil {
		for _, tg := range sec.Tags.Tag {
			if tg != nil && tg.TagKey != nil {
				have[*tg.TagKey] = dara.StringValue(tg.TagValue)
			}
		}
	}
	for _, w := range want {
		if v, ok := have[w[0]]; !ok || v != w[1] {
			return false
		}
	}
	return true
}

// listing is o's listing entry split into names, with every name's member
// object when all can be named: remembered until the entry changes.
func (o *Object) listing(e *Entry, sep string) *dirMembers {
	if m := o.Dir.memo.Load(); m != nil && m.entry == e {
		return m
	}
	var names []string
	if len(e.Data) > 0 {
		names = strings.Split(string(e.Data), "\n")
	}
	objs, err := expand(o, names, sep)
	m := &dirMembers{entry: e, names: names, objs: objs, err: err}
	o.Dir.memo.Store(m)
	return m
}

// membersFor returns the member objects of o's listing e that allow lets
// the pod read, and the names it hides. Names are checked before they are
// named: a hidden name can neither fail the Mount nor appear in its error.
func (o *Object) membersFor(e *Entry, sep string, allow Allow) (objs []*Object, hidden []string, err error) {
	m := o.listing(e, sep)
	if allow == nil {
		return m.objs, nil, m.err
	}
	var ok []string
	for _, n := range m.names {
		if allow(o.Type, n) != nil {
			hidden = append(hidden, n)
		} else {
			ok = append(ok, n)
		}
	}
	if len(hidden) == 0 {
		return m.objs, nil, m.err
	}
	objs, err = expand(o, ok, sep)
	return objs, hidden, err
}

// expand names the member objects of o for names. A listed name that
// cannot name a file (after pathTranslation) or that lands on another
// member's file is an error naming it: names are never rewritten.
func expand(o *Object, names []string, sep string) ([]*Object, error) {
	objs := make([]*Object, 0, len(names))
	owner := make(map[string]string, len(names))
	for _, name := range names {
		rel := name
		if o.Dir.Path != "" {
			rel = strings.TrimPrefix(name, o.Dir.Path)
		}
		fn, err := FileName(directoryNameField, rel, sep)
		if err != nil {
			msg := err.Error()
			if ve, ok := err.(*ValidationError); ok { //nolint:errorlint // FileName returns it unwrapped
				msg = ve.Msg
			}
			return nil, &Error{Kind: KindInvalid, Message: fmt.Sprintf("the listed %s %q cannot name a file: %s; names are never rewritten: rename it upstream, or narrow the listing", o.Type.Noun(), textutil.Truncate(name, 128), msg)}
		}
		p := o.File + "/" + fn
		if len(p) > maxPathBytes {
			return nil, &Error{Kind: KindInvalid, Message: fmt.Sprintf("the listed %s %q makes a path longer than %d bytes; use a shorter objectAlias", o.Type.Noun(), textutil.Truncate(name, 128), maxPathBytes)}
		}
		if prev, dup := owner[p]; dup {
			return nil, &Error{Kind: KindInvalid, Message: fmt.Sprintf("the listed %ss %q and %q both make the file %q (pathTranslation %q); rename one upstream, or set pathTranslation: \"False\" to keep sub-paths as directories", o.Type.Noun(), textutil.Truncate(prev, 128), textutil.Truncate(name, 128), textutil.Truncate(p, 128), sep)}
		}
		owner[p] = name
		objs = append(objs, &Object{
			Index: o.Index, Name: name, Type: o.Type, Mode: o.Mode, Encoding: o.Encoding,
			FailoverRegion: o.FailoverRegion, File: p, fileID: string(o.Type) + "/" + p, parent: o,
		})
	}
	// A member that is another's directory (a and a/b with pathTranslation
	// False) cannot be written either.
	for _, m := range objs {
		for d := parentDir(m.File); d != o.File && d != ""; d = parentDir(d) {
			if prev, ok := owner[d]; ok {
				return nil, &Error{Kind: KindInvalid, Message: fmt.Sprintf("the listed %s %q needs %q to be a directory, but it is the file of %q; rename one upstream", o.Type.Noun(), textutil.Truncate(m.Name, 128), textutil.Truncate(d, 128), textutil.Truncate(prev, 128))}
			}
		}
	}
	return objs, nil
}

// expandDirs reads the listing of every directory object of spec (through
// the cache, in parallel) and returns the objects to read: the others of
// spec in order, each directory replaced by its members that allow lets
// through. listed are the directories' own results, Hidden set.
func (f *Fetcher) expandDirs(ctx context.Context, id *auth.Identity, spec *Spec, allow Allow) (objs []*Object, listed []ObjectResult, err error) {
	n := 0
	for _, o := range spec.Objects {
		if o.Dir != nil {
			n++
		}
	}
	// Sized once: the goroutines below hold pointers into it.
	listed = make([]ObjectResult, 0, n)
	var wg sync.WaitGroup
	for _, o := range spec.Objects {
		if o.Dir == nil {
			continue
		}
		listed = append(listed, ObjectResult{Object: o})
		r := &listed[len(listed)-1]
		k, t, err := f.Key(id, spec, o)
		if err != nil {
			r.Err = err
			continue
		}
		r.Key = k
		if e, ok := f.cache.Fresh(k, id.Credential, func() FetchFunc { return f.FetchFunc(id, t) }); ok {
			r.Entry, r.Outcome = e, OutcomeHit
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Entry, r.Outcome, r.Err = f.cache.Get(ctx, k, f.FetchFunc(id, t))
		}()
	}
	wg.Wait()

	me := &MountError{Total: len(spec.Objects)}
	objs = make([]*Object, 0, len(spec.Objects))
	total, j, capped := 0, 0, false
	for _, o := range spec.Objects {
		if o.Dir == nil {
			objs = append(objs, o)
			continue
		}
		r := &listed[j]
		j++
		if r.Err == nil && r.Entry.Version == ListOverLimit {
			r.Err = &Error{Kind: KindInvalid, Message: string(r.Entry.Data)}
		}
		if r.Err != nil {
			me.Failures = append(me.Failures, ObjectError{o, hint(o, r.Key, r.Err)})
			continue
		}
		ms, hidden, err := o.membersFor(r.Entry, spec.PathSeparator, allow)
		r.Hidden = hidden
		if err != nil {
			r.Err = err
			me.Failures = append(me.Failures, ObjectError{o, err})
			continue
		}
		total += len(ms)
		if total > f.opts.MaxListed && !capped {
			capped = true
			me.Failures = append(me.Failures, ObjectError{o, &Error{Kind: KindInvalid, Message: fmt.Sprintf(
				"with this listing, the listings of this Mount hold more than %d objects together (--max-listed-objects); narrow the paths or tags, or raise the flag", f.opts.MaxListed)}})
		}
		objs = append(objs, ms...)
	}
	if len(me.Failures) > 0 {
		return nil, listed, me
	}
	return objs, listed, nil
}
