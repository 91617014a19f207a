package fetch

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/jmespath/go-jmespath"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// ObjectType is the upstream service an object comes from.
type ObjectType string

const (
	// TypeKMS is a KMS Secrets Manager secret (GetSecretValue).
	TypeKMS ObjectType = "kms"
	// TypeOOS is an OOS encrypted (secret) parameter (GetSecretParameter).
	TypeOOS ObjectType = "oos"
)

// Parameter names of a SecretProviderClass (spec.parameters), as the driver
// passes them in MountRequest.attributes.
const (
	ParamObjects         = "objects"
	ParamRegion          = "region"
	ParamPathTranslation = "pathTranslation"
)

// Limits on untrusted input. Attributes come from the SecretProviderClass
// and, through volumeAttributes, from any pod author.
const (
	MaxObjectsBytes   = 64 << 10 // the objects parameter
	MaxObjects        = 100      // objects per class
	MaxJMESPathPerObj = 50       // jmesPath entries per object
	MaxNameBytes      = 1024     // objectName, objectAlias, jmesPath objectAlias
	MaxJMESPathBytes  = 1024     // one jmesPath expression
	maxComponentBytes = 255      // one path component (the driver's limit)
	maxPathBytes      = 4096     // a whole relative path (the driver's limit)
)

// JMESPathEntry extracts one string from a JSON secret into its own file.
type JMESPathEntry struct {
	Path        string `json:"path"`
	ObjectAlias string `json:"objectAlias"`
}

// rawObject is one item of the objects YAML list, as the user wrote it.
type rawObject struct {
	ObjectName          string          `json:"objectName"`
	ObjectType          string          `json:"objectType"`
	ObjectAlias         string          `json:"objectAlias"`
	ObjectVersion       string          `json:"objectVersion"`
	ObjectVersionLabel  string          `json:"objectVersionLabel"`
	JMESPath            []JMESPathEntry `json:"jmesPath"`
	KMSEndpoint         string          `json:"kmsEndpoint"`
	CrossAccountRoleArn string          `json:"crossAccountRoleArn"`
}

// Object is one validated object of a class.
type Object struct {
	Index               int // position in the objects list, for messages
	Name                string
	Type                ObjectType
	Alias               string
	Version             string // KMS VersionId, or OOS ParameterVersion (decimal)
	VersionLabel        string // KMS VersionStage
	KMSEndpoint         string // per-object KMS (instance) endpoint; checked by the fetcher
	CrossAccountRoleArn string
	JMESPath            []JMESPathEntry

	// File is the relative path of the whole value's file; JMESFiles[i] is
	// the path of JMESPath[i]. Both come from FileName, the one naming rule.
	File      string
	JMESFiles []string
	jmes      []*jmespath.JMESPath
}

// Ref names the object in messages: objects[i] "name" (type).
func (o *Object) Ref() string {
	return fmt.Sprintf("objects[%d] %q (%s)", o.Index, o.Name, o.Type)
}

// Selector is the version selector part of the cache key.
func (o *Object) Selector() string {
	switch {
	case o.Version != "" && o.VersionLabel != "":
		return "id=" + o.Version + ",stage=" + o.VersionLabel
	case o.Version != "":
		return "id=" + o.Version
	case o.VersionLabel != "":
		return "stage=" + o.VersionLabel
	}
	return ""
}

// Spec is a parsed, validated SecretProviderClass.
type Spec struct {
	Objects []*Object
	// Region is the region parameter; empty means the provider's default.
	Region string
	// PathSeparator replaces "/" in file names; empty means no translation.
	PathSeparator string
	// Notes are non-fatal remarks for the log (never secret).
	Notes []string
}

// Files lists every file path of the spec in order.
func (s *Spec) Files() []string {
	var out []string
	for _, o := range s.Objects {
		out = append(out, o.File)
		out = append(out, o.JMESFiles...)
	}
	return out
}

// ValidationError is a bad parameter: it names the field and the fix.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return "parameter " + e.Field + ": " + e.Msg }

func verr(field, format string, args ...any) error {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// IsValidation reports whether err is (or wraps) a ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// ParseParameters turns SecretProviderClass parameters (merged with volume
// attributes by the driver, so untrusted) into a Spec. Every rejection is a
// *ValidationError naming the field and the fix; nothing is fetched. Every
// call parses: Fetcher.ParseParameters remembers successful parses for the
// Mount path.
func ParseParameters(params map[string]string) (*Spec, error) {
	spec := &Spec{PathSeparator: "_"}

	if r, ok := params[ParamRegion]; ok && r != "" {
		if !aliyun.ValidRegion(r) {
			return nil, verr(ParamRegion, "%q is not a region id; use one like cn-hangzhou, or leave it out to use the node's region", textutil.Truncate(r, 64))
		}
		spec.Region = r
	}

	if pt, ok := params[ParamPathTranslation]; ok && pt != "" {
		switch {
		case strings.EqualFold(pt, "false"):
			spec.PathSeparator = ""
		case utf8.RuneCountInString(pt) != 1 || !utf8.ValidString(pt):
			return nil, verr(ParamPathTranslation, "%q must be exactly one character (default \"_\"), or \"False\" to keep \"/\" as directories", textutil.Truncate(pt, 16))
		default:
			r, _ := utf8.DecodeRuneInString(pt)
			if badRune(r) || r == 0 {
				return nil, verr(ParamPathTranslation, "must be a printable character (default \"_\")")
			}
			spec.PathSeparator = pt
			if pt == "/" {
				spec.PathSeparator = ""
			}
		}
	}

	raw, ok := params[ParamObjects]
	if !ok || strings.TrimSpace(raw) == "" {
		return nil, verr(ParamObjects, "missing; set it to a YAML list such as\n- objectName: my-secret\n  objectType: kms")
	}
	if len(raw) > MaxObjectsBytes {
		return nil, verr(ParamObjects, "is %d bytes, over the limit of %d; split the class", len(raw), MaxObjectsBytes)
	}
	if strings.ContainsRune(raw, 0) {
		return nil, verr(ParamObjects, "contains a NUL byte; remove it")
	}
	var items []rawObject
	if err := yaml.UnmarshalStrict([]byte(raw), &items); err != nil {
		return nil, verr(ParamObjects, "is not a YAML list of objects: %s; write it as\n- objectName: my-secret\n  objectType: kms", cleanYAMLError(err))
	}
	items, merged := mergeGuideStyle(items)
	if merged {
		spec.Notes = append(spec.Notes, "objects: an item holding only objectType was merged into the object before it (the user guide's example style); write objectName and objectType in one list item")
	}
	if len(items) == 0 {
		return nil, verr(ParamObjects, "is an empty list; add at least one item with objectName")
	}
	if len(items) > MaxObjects {
		return nil, verr(ParamObjects, "has %d items, over the limit of %d; split the class", len(items), MaxObjects)
	}

	for i := range items {
		o, err := parseObject(i, &items[i], spec.PathSeparator)
		if err != nil {
			return nil, err
		}
		spec.Objects = append(spec.Objects, o)
	}
	if err := checkCollisions(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// specMemo remembers successful parses: kubelet re-publishes every volume
// every minute or two with the same parameters, and parsing the YAML is most
// of a warm Mount's CPU. A parse is a pure function of its three inputs, and
// a Spec is never modified after it is built (callers must treat it as
// read-only), so sharing one is safe. Bounded: cleared when full. The zero
// value is ready; each Fetcher holds one, so nothing is shared between
// fetchers (or tests).
type specMemo struct {
	mu sync.Mutex
	m  map[string]*Spec
}

const maxParsed = 512

func (sm *specMemo) parse(params map[string]string) (*Spec, error) {
	key := params[ParamObjects] + "\x00" + params[ParamPathTranslation] + "\x00" + params[ParamRegion]
	sm.mu.Lock()
	s, ok := sm.m[key]
	sm.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := ParseParameters(params)
	if err != nil {
		return nil, err
	}
	sm.mu.Lock()
	if sm.m == nil || len(sm.m) >= maxParsed {
		sm.m = map[string]*Spec{}
	}
	sm.m[key] = s
	sm.mu.Unlock()
	return s, nil
}

// mergeGuideStyle accepts the user guide's literal example
//
//   - objectName: "test"
//   - objectType: "oos"
//
// which YAML reads as two items, the second with no objectName. An item that
// sets nothing but objectType is folded into the item before it when that one
// has a name and no type of its own; anything else is left to validation.
func mergeGuideStyle(items []rawObject) ([]rawObject, bool) {
	out := items[:0:0]
	merged := false
	for _, it := range items {
		if n := len(out); n > 0 && it.ObjectType != "" &&
			(rawObject{ObjectType: it.ObjectType}).equal(&it) &&
			out[n-1].ObjectName != "" && out[n-1].ObjectType == "" {
			out[n-1].ObjectType = it.ObjectType
			merged = true
			continue
		}
		out = append(out, it)
	}
	return out, merged
}

func (r rawObject) equal(o *rawObject) bool {
	return r.ObjectName == o.ObjectName && r.ObjectType == o.ObjectType && r.ObjectAlias == o.ObjectAlias &&
		r.ObjectVersion == o.ObjectVersion && r.ObjectVersionLabel == o.ObjectVersionLabel &&
		len(r.JMESPath) == len(o.JMESPath) && r.KMSEndpoint == o.KMSEndpoint &&
		r.CrossAccountRoleArn == o.CrossAccountRoleArn
}

var (
	kmsVersionIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	stageRe        = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	endpointRe     = regexp.MustCompile(`^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$`)
)

func parseObject(i int, r *rawObject, sep string) (*Object, error) {
	f := func(name string) string { return fmt.Sprintf("objects[%d].%s", i, name) }
	o := &Object{
		Index: i, Name: r.ObjectName, Alias: r.ObjectAlias,
		Version: r.ObjectVersion, VersionLabel: r.ObjectVersionLabel,
		KMSEndpoint: r.KMSEndpoint, CrossAccountRoleArn: r.CrossAccountRoleArn,
		JMESPath: r.JMESPath,
	}
	if o.Name == "" {
		return nil, verr(f("objectName"), "is required: the name of the KMS secret or OOS parameter")
	}
	if err := checkName(f("objectName"), o.Name); err != nil {
		return nil, err
	}
	switch strings.ToLower(r.ObjectType) {
	case "", "kms":
		o.Type = TypeKMS
	case "oos":
		o.Type = TypeOOS
	default:
		return nil, verr(f("objectType"), "%q is not supported; use \"kms\" (the default) or \"oos\"", textutil.Truncate(r.ObjectType, 32))
	}
	switch o.Type {
	case TypeKMS:
		if o.Version != "" && !kmsVersionIDRe.MatchString(o.Version) {
			return nil, verr(f("objectVersion"), "%q is not a KMS VersionId (letters, digits, '.', '_', '-', at most 64)", textutil.Truncate(o.Version, 64))
		}
		if o.VersionLabel != "" && !stageRe.MatchString(o.VersionLabel) {
			return nil, verr(f("objectVersionLabel"), "%q is not a KMS VersionStage such as ACSCurrent or ACSPrevious", textutil.Truncate(o.VersionLabel, 64))
		}
	case TypeOOS:
		if o.Version != "" {
			n, err := strconv.Atoi(o.Version)
			if err != nil || n < 1 || n > 100 || strconv.Itoa(n) != o.Version {
				return nil, verr(f("objectVersion"), "%q is not an OOS parameter version; use a whole number from 1 to 100, or leave it out for the latest", textutil.Truncate(o.Version, 32))
			}
		}
		if o.VersionLabel != "" {
			return nil, verr(f("objectVersionLabel"), "is not supported for oos parameters; use objectVersion with a version number")
		}
		if o.KMSEndpoint != "" {
			return nil, verr(f("kmsEndpoint"), "applies to kms objects only; remove it from this oos object")
		}
	}
	if o.KMSEndpoint != "" && !endpointRe.MatchString(o.KMSEndpoint) {
		return nil, verr(f("kmsEndpoint"), "%q is not a host[:port]; use the KMS instance endpoint such as kst-xxx.cryptoservice.kms.aliyuncs.com", textutil.Truncate(o.KMSEndpoint, 64))
	}
	if o.CrossAccountRoleArn != "" && !aliyun.ValidRoleArn(o.CrossAccountRoleArn) {
		return nil, verr(f("crossAccountRoleArn"), "%q is not a RAM role ARN; use acs:ram::<account-id>:role/<role-name>", textutil.Truncate(o.CrossAccountRoleArn, 64))
	}

	base := o.Name
	field := f("objectName")
	if o.Alias != "" {
		base, field = o.Alias, f("objectAlias")
	}
	file, err := FileName(field, base, sep)
	if err != nil {
		return nil, err
	}
	o.File = file

	if len(o.JMESPath) > MaxJMESPathPerObj {
		return nil, verr(f("jmesPath"), "has %d entries, over the limit of %d", len(o.JMESPath), MaxJMESPathPerObj)
	}
	for j, e := range o.JMESPath {
		jf := func(name string) string { return fmt.Sprintf("objects[%d].jmesPath[%d].%s", i, j, name) }
		if e.Path == "" {
			return nil, verr(jf("path"), "is required: a JMESPath expression such as username")
		}
		if len(e.Path) > MaxJMESPathBytes {
			return nil, verr(jf("path"), "is longer than %d bytes", MaxJMESPathBytes)
		}
		if e.ObjectAlias == "" {
			return nil, verr(jf("objectAlias"), "is required: it names the file that receives the extracted value")
		}
		if !jmesPathSubset.MatchString(e.Path) {
			return nil, verr(jf("path"), "%q is not a plain path: use field names and indexes such as username, db.password or hosts[0].name (quote odd keys: \"my-key\"); functions, pipes, filters, projections and multi-selects are not accepted, since a file takes one string and they can cost unbounded CPU", textutil.Truncate(e.Path, 64))
		}
		expr, err := compileJMESPath(e.Path)
		if err != nil {
			return nil, verr(jf("path"), "%q is not a valid JMESPath expression: %v", textutil.Truncate(e.Path, 64), err)
		}
		jfile, err := FileName(jf("objectAlias"), e.ObjectAlias, sep)
		if err != nil {
			return nil, err
		}
		o.JMESFiles = append(o.JMESFiles, jfile)
		o.jmes = append(o.jmes, expr)
	}
	return o, nil
}

// jmesPathSubset is the part of JMESPath a file name can use: a path of
// fields (bare or quoted) and array indexes. Each file takes one string, and
// the rest of the language (functions, pipes, projections, multi-selects) can
// blow up CPU and memory on a small expression; a path only walks the value,
// so its cost and output are bounded by the secret itself.
var jmesPathSubset = regexp.MustCompile(`^(?:` + jmesIdent + `|\[-?[0-9]{1,9}\])(?:\[-?[0-9]{1,9}\])*(?:\.` + jmesIdent + `(?:\[-?[0-9]{1,9}\])*)*$`)

const jmesIdent = `(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt])*")`

// compileJMESPath compiles an expression, turning a parser panic on hostile
// input into an error.
func compileJMESPath(p string) (expr *jmespath.JMESPath, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, fmt.Errorf("unparsable expression")
		}
	}()
	return jmespath.Compile(p)
}

// badRune reports characters that never belong in a file name: controls,
// invisible format characters (bidi overrides, zero-width joiners) and
// the replacement character left by invalid UTF-8.
func badRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError ||
		unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}

func checkName(field, s string) error {
	if len(s) > MaxNameBytes {
		return verr(field, "is %d bytes, over the limit of %d", len(s), MaxNameBytes)
	}
	if !utf8.ValidString(s) {
		return verr(field, "is not valid UTF-8")
	}
	for _, r := range s {
		if badRune(r) {
			return verr(field, "contains the invisible or control character %U; use printable characters only", r)
		}
	}
	if strings.TrimSpace(s) != s {
		return verr(field, "%q has leading or trailing spaces; remove them", textutil.Truncate(s, 64))
	}
	return nil
}

// FileName is THE naming rule, shared by the CSI volume and the FUSE view:
// the alias (else the object name) is refused when it is absolute or has an
// empty, "." or ".." segment (never rewritten), then every "/" is replaced by
// sep (no replacement when sep is empty, which keeps nested directories).
// The result is a clean relative path the driver's writer accepts.
func FileName(field, name, sep string) (string, error) {
	if err := checkName(field, name); err != nil {
		return "", err
	}
	if strings.HasPrefix(name, "/") {
		return "", verr(field, "%q is an absolute path; use a relative name", textutil.Truncate(name, 64))
	}
	if strings.Contains(name, `\`) {
		return "", verr(field, "%q contains a backslash; use \"/\" to separate path segments", textutil.Truncate(name, 64))
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return "", verr(field, "%q has an empty path segment (a leading, trailing or doubled \"/\"); remove it", textutil.Truncate(name, 64))
		case ".", "..":
			return "", verr(field, "%q has a %q path segment; names cannot walk directories", textutil.Truncate(name, 64), seg)
		}
	}
	out := name
	if sep != "" {
		out = strings.ReplaceAll(name, "/", sep)
	}
	if len(out) > maxPathBytes {
		return "", verr(field, "%q is longer than %d bytes", textutil.Truncate(name, 64), maxPathBytes)
	}
	for i, seg := range strings.Split(out, "/") {
		if len(seg) > maxComponentBytes {
			return "", verr(field, "a path segment of %q is longer than %d bytes; set objectAlias to a shorter name", textutil.Truncate(name, 64), maxComponentBytes)
		}
		if seg == "" || seg == "." || seg == ".." {
			return "", verr(field, "%q becomes %q after pathTranslation, which is not a file name; set objectAlias", textutil.Truncate(name, 64), textutil.Truncate(out, 64))
		}
		if i == 0 && strings.HasPrefix(seg, "..") {
			return "", verr(field, "%q starts with \"..\", which the driver reserves for its own files (..data); set objectAlias to another name", textutil.Truncate(name, 64))
		}
	}
	return out, nil
}

// checkCollisions refuses two files on the same path (a/b and a_b after
// translation, two aliases alike) and a file that is also a directory of
// another file (a and a/b with pathTranslation False).
func checkCollisions(spec *Spec) error {
	owner := map[string]string{}
	type item struct{ path, field string }
	var all []item
	for _, o := range spec.Objects {
		fld := fmt.Sprintf("objects[%d]", o.Index)
		all = append(all, item{o.File, fld})
		for j, p := range o.JMESFiles {
			all = append(all, item{p, fmt.Sprintf("objects[%d].jmesPath[%d].objectAlias", o.Index, j)})
		}
	}
	for _, it := range all {
		if prev, ok := owner[it.path]; ok {
			return verr(it.field, "file %q is also the file of %s; set a distinct objectAlias", textutil.Truncate(it.path, 64), prev)
		}
		owner[it.path] = it.field
	}
	for _, it := range all {
		for d := parentDir(it.path); d != ""; d = parentDir(d) {
			if prev, ok := owner[d]; ok {
				return verr(it.field, "file %q needs %q to be a directory, but it is the file of %s; set a distinct objectAlias", textutil.Truncate(it.path, 64), textutil.Truncate(d, 64), prev)
			}
		}
	}
	return nil
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return ""
}

// cleanYAMLError keeps the YAML library's message but never echoes more than
// a short, single-line excerpt of the input.
func cleanYAMLError(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	s = strings.TrimPrefix(s, "error unmarshaling JSON: while decoding JSON: ")
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	return textutil.Truncate(s, 200)
}

// searchJMES evaluates an expression, turning a panic on odd input into an
// error.
func searchJMES(expr *jmespath.JMESPath, doc any) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("evaluation failed")
		}
	}()
	return expr.Search(doc)
}
