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

// dirMembers is one listing's member objects: a pure function of the
// listing entry and the object.
type dirMembers struct {
	entry *Entry
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
	for k, v := range r.ObjectTags {
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

// list reads a listing: the names, sorted, at most t.ListMax of them.
func (s *SDKSource) list(ctx context.Context, c *sdkClient, t Target) (Result, error) {
	var names []string
	var err error
	if t.Type == TypeKMS {
		names, err = s.listKMS(ctx, c, t)
	} else {
		names, err = s.listOOS(ctx, c, t)
	}
	if err != nil {
		return Result{}, err
	}
	return listResult(names), nil
}

// listResult encodes a listing as a cache value: the sorted names, one per
// line (no name holds a newline), and a version that changes with them.
func listResult(names []string) Result {
	sort.Strings(names)
	data := strings.Join(names, "\n")
	h := fnv.New64a()
	h.Write([]byte(data)) //nolint:errcheck // hash writes cannot fail
	return Result{Data: Bytes(data), Version: listVersionPrefix + strconv.Itoa(len(names)) + "-" + strconv.FormatUint(h.Sum64(), 16)}
}

func tooMany(t Target) error {
	return &Error{Kind: KindInvalid, Service: t.Type.Service(), Action: ListAction(t.Type), Message: fmt.Sprintf(
		"the listing holds more than %d objects (--max-listed-objects); narrow the %s, or raise the flag", t.ListMax, listWhat(t))}
}

func listWhat(t Target) string {
	if t.List.Path != "" {
		return "path"
	}
	return "tags"
}

// listOOS pages through GetSecretParametersByPath (without decryption) or
// GetParametersByPath, keeping the names only.
func (s *SDKSource) listOOS(ctx context.Context, c *sdkClient, t Target) ([]string, error) {
	var names []string
	var token *string
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > t.ListMax/oosByPathPageSize+1 {
			return nil, tooMany(t)
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
			return nil, err
		}
		if pg.status == nil || *pg.status/100 != 2 {
			return nil, malformed(t, "a non-2xx status without an error body")
		}
		for _, n := range pg.names {
			if n == nil || !strings.HasPrefix(*n, t.List.Path) || len(*n) == len(t.List.Path) {
				return nil, malformed(t, "a listed parameter outside the path")
			}
			if !seen[*n] {
				seen[*n] = true
				names = append(names, *n)
			}
		}
		if len(names) > t.ListMax {
			return nil, tooMany(t)
		}
		if pg.next == nil || *pg.next == "" {
			return names, nil
		}
		if token != nil && *token == *pg.next {
			return nil, malformed(t, "the same NextToken twice")
		}
		token = pg.next
	}
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

// listKMS pages through ListSecrets filtered by the first tag (ListSecrets
// filters match one tag per key-value pair), with each secret's tags, and
// keeps the secrets that carry every tag.
func (s *SDKSource) listKMS(ctx context.Context, c *sdkClient, t Target) ([]string, error) {
	first := t.List.Tags[0]
	filters, _ := json.Marshal([]map[string]any{ // strings only: cannot fail
		{"Key": "TagKey", "Values": []string{first[0]}},
		{"Key": "TagValue", "Values": []string{first[1]}},
	})
	var names []string
	scanned := 0
	for page := int32(1); ; page++ {
		query := map[string]any{
			"FetchTags": dara.String("true"), "Filters": dara.String(string(filters)),
			"PageNumber": dara.Int32(page), "PageSize": dara.Int32(kmsListPageSize),
		}
		body, err := c.kms.CallApiWithCtx(ctx, kmsListSecrets, &openapi.OpenApiRequest{Query: openapiutil.Query(query)}, &dara.RuntimeOptions{})
		if err != nil {
			return nil, err
		}
		r := &kms.ListSecretsResponse{}
		if err := dara.Convert(body, &r); err != nil {
			return nil, err
		}
		if r.StatusCode == nil || *r.StatusCode/100 != 2 || r.Body == nil {
			return nil, malformed(t, "a non-2xx status without an error body")
		}
		var list []*kms.ListSecretsResponseBodySecretListSecret
		if r.Body.SecretList != nil {
			list = r.Body.SecretList.Secret
		}
		for _, sec := range list {
			if sec == nil || sec.SecretName == nil || *sec.SecretName == "" {
				return nil, malformed(t, "a listed secret without a SecretName")
			}
			if hasTags(sec, t.List.Tags) {
				names = append(names, *sec.SecretName)
			}
		}
		scanned += len(list)
		if len(names) > t.ListMax {
			return nil, tooMany(t)
		}
		total := int(dara.Int32Value(r.Body.TotalCount))
		if len(list) == 0 || scanned >= total {
			return names, nil
		}
		if scanned >= maxKMSListScanned {
			return nil, &Error{Kind: KindInvalid, Service: TypeKMS, Action: "ListSecrets", Message: fmt.Sprintf(
				"the tag %s=%s alone matches more than %d secrets; put the most selective tag first in sort order, or add a tag that fewer secrets carry", first[0], first[1], maxKMSListScanned)}
		}
	}
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

// members turns a listing into o's member objects, remembered until the
// listing changes. A listed name that cannot name a file (after
// pathTranslation) or that lands on another member's file is an error
// naming it: names are never rewritten.
func (o *Object) members(e *Entry, sep string) ([]*Object, error) {
	if m := o.Dir.memo.Load(); m != nil && m.entry == e {
		return m.objs, m.err
	}
	objs, err := expand(o, e, sep)
	o.Dir.memo.Store(&dirMembers{entry: e, objs: objs, err: err})
	return objs, err
}

func expand(o *Object, e *Entry, sep string) ([]*Object, error) {
	if len(e.Data) == 0 {
		return nil, nil
	}
	names := strings.Split(string(e.Data), "\n")
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
	total, j := 0, 0
	for _, o := range spec.Objects {
		if o.Dir == nil {
			objs = append(objs, o)
			continue
		}
		r := &listed[j]
		j++
		if r.Err != nil {
			me.Failures = append(me.Failures, ObjectError{o, hint(o, r.Key, r.Err)})
			continue
		}
		ms, err := o.members(r.Entry, spec.PathSeparator)
		if err != nil {
			r.Err = err
			me.Failures = append(me.Failures, ObjectError{o, err})
			continue
		}
		total += len(ms)
		for _, m := range ms {
			if allow != nil && allow(m.Type, m.Name) != nil {
				r.Hidden = append(r.Hidden, m.Name)
				continue
			}
			objs = append(objs, m)
		}
	}
	if len(me.Failures) == 0 && total > f.opts.MaxListed {
		me.Failures = append(me.Failures, ObjectError{listed[0].Object, &Error{Kind: KindInvalid, Message: fmt.Sprintf(
			"the class's listings hold %d objects together, over --max-listed-objects (%d); narrow the paths or tags, or raise the flag", total, f.opts.MaxListed)}})
	}
	if len(me.Failures) > 0 {
		return nil, listed, me
	}
	return objs, listed, nil
}
