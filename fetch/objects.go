package fetch

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jmespath/go-jmespath"
	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/memo"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// ObjectType is the upstream service an object comes from.
type ObjectType string

const (
	// TypeKMS is a KMS Secrets Manager secret (GetSecretValue).
	TypeKMS ObjectType = "kms"
	// TypeOOS is an OOS encrypted (secret) parameter (GetSecretParameter).
	TypeOOS ObjectType = "oos"
	// TypeOOSParameter is an OOS common (plain) parameter (GetParameter).
	TypeOOSParameter ObjectType = "oos-parameter"
)

// IsOOS reports whether objects of t are read from OOS.
func (t ObjectType) IsOOS() bool { return t == TypeOOS || t == TypeOOSParameter }

// Parameter names of a SecretProviderClass (spec.parameters), as the driver
// passes them in MountRequest.attributes.
const (
	ParamObjects         = "objects"
	ParamRegion          = "region"
	ParamPathTranslation = "pathTranslation"
	ParamFailoverRegion  = "failoverRegion"
	ParamTemplates       = "templates"
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
	MaxKeysPerObject  = 200      // files of one keysAsFiles object
	MaxHistory        = 10       // objectVersionHistory
	maxStructuredSize = 1 << 20  // a value parsed for jmesPath or keysAsFiles
)

// JMESPathEntry extracts one string from a JSON secret into its own file.
type JMESPathEntry struct {
	Path           string     `json:"path"`
	ObjectAlias    string     `json:"objectAlias"`
	FilePermission permString `json:"filePermission"`
	ObjectEncoding string     `json:"objectEncoding"`
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
	FilePermission      permString      `json:"filePermission"`
	ObjectEncoding      string          `json:"objectEncoding"`
	ObjectFormat        string          `json:"objectFormat"`
	KeysAsFiles         bool            `json:"keysAsFiles"`
	// A pointer tells "objectVersionHistory: 0" (refused) from unset.
	ObjectVersionHistory *int   `json:"objectVersionHistory"`
	FailoverRegion       string `json:"failoverRegion"`
	// ObjectPath (oos, oos-parameter) or ObjectTags (kms) replace
	// objectName: a directory of every object found (dir.go).
	ObjectPath string              `json:"objectPath"`
	Recursive  bool                `json:"recursive"`
	ObjectTags map[string]tagValue `json:"objectTags"`
	// Optional: a missing object (NotFound) leaves its files out.
	Optional bool `json:"optional"`
	// File: false keeps the object's files out of the volume; it only
	// feeds templates (template.go). A pointer tells false from unset.
	File *bool `json:"file"`
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

	// Mode is the file mode of the object's files (filePermission), 0 for
	// the driver's permission.
	Mode int32
	// History, when above 0, makes File a directory of the current and the
	// History-1 previous versions, as files 0, 1, ...
	History int16
	// KeysAsFiles makes File a directory with one file per top-level key.
	KeysAsFiles bool
	// YAML: jmesPath and keysAsFiles read the value as YAML (objectFormat:
	// yaml), else as JSON.
	YAML bool
	// Encoding decodes the object's own file (objectEncoding).
	Encoding Encoding
	// FailoverRegion is read when the primary region is unavailable; ""
	// for none (the class parameter failoverRegion is already applied).
	FailoverRegion string

	// File is the relative path of the whole value's file (a directory
	// with keysAsFiles or History), from FileName, the one naming rule.
	File string
	// JMES are the jmesPath entries, each with its own file.
	JMES []JMESFile
	// fileID is File's object_version id ("<type>/<path>"), computed
	// once here rather than on every Mount.
	fileID string
	// NoFile (file: false): the object's files only feed templates and
	// are left out of the volume (template.go).
	NoFile bool

	// Dir makes the object a directory of every object an OOS path or a
	// set of KMS tags lists (dir.go); Name is then the path or the tags.
	Dir *Dir
	// Optional: when upstream says the object does not exist, the Mount
	// goes on without its files (object version AbsentVersion).
	Optional bool
	// parent is the directory object a listed member belongs to.
	parent *Object
}

// JMESFile is one validated jmesPath entry and the file it makes.
type JMESFile struct {
	Expr     string   // the path expression as written
	Path     string   // the file, from FileName
	Mode     int32    // filePermission, else the object's
	Encoding Encoding // objectEncoding of what it extracts
	id       string   // Path's object_version id
	expr     *jmespath.JMESPath
}

// Paths lists the object's static file paths: File, then each jmesPath
// file (keysAsFiles and history files are named at each Mount).
func (o *Object) Paths() []string {
	out := make([]string, 0, 1+len(o.JMES))
	out = append(out, o.File)
	for _, j := range o.JMES {
		out = append(out, j.Path)
	}
	return out
}

// Ref names the object in messages: objects[i] "name" (type); a
// directory by what it lists, a listed member by its name and directory.
func (o *Object) Ref() string {
	if o.Type == TypeTemplate {
		return fmt.Sprintf("templates[%d] %q", o.Index, o.Name) // a template's synthetic object
	}
	switch {
	case o.Dir != nil:
		return fmt.Sprintf("objects[%d] %s (%s)", o.Index, o.Dir, o.Type)
	case o.parent != nil:
		return fmt.Sprintf("objects[%d] %q (%s, listed by %s)", o.Index, o.Name, o.Type, o.parent.Dir)
	}
	return fmt.Sprintf("objects[%d] %q (%s)", o.Index, o.Name, o.Type)
}

// Selector is the version selector part of the cache key: what is read
// upstream, so a history and a single value of one name are two entries.
func (o *Object) Selector() string {
	if o.Dir != nil {
		return o.Dir.selector()
	}
	if o.Optional {
		// Missing is an answer only for an optional read: the two never
		// share an entry.
		return "optional," + o.selector()
	}
	return o.selector()
}

func (o *Object) selector() string {
	if o.History > 0 {
		return "history=" + strconv.Itoa(int(o.History))
	}
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
	// FailoverRegion is the class parameter failoverRegion ("" for none);
	// each Object carries its effective failover region.
	FailoverRegion string
	// dynamic: some object's files are named by its value (keysAsFiles)
	// or its versions (objectVersionHistory), checked at each Mount.
	dynamic bool
	// dirs: some object is a directory object (objectPath, objectTags).
	dirs bool
	// Notes are non-fatal remarks for the log (never secret).
	Notes []string
	// Templates are the templated files (template.go).
	Templates []*Template
}

// Files lists every file path of the spec in order.
func (s *Spec) Files() []string {
	var out []string
	for _, o := range s.Objects {
		out = append(out, o.Paths()...)
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

	if r, ok := params[ParamFailoverRegion]; ok && r != "" {
		if !aliyun.ValidRegion(r) {
			return nil, verr(ParamFailoverRegion, "%q is not a region id; use one like cn-shanghai, or leave it out for no failover", textutil.Truncate(r, 64))
		}
		if r == spec.Region {
			return nil, verr(ParamFailoverRegion, "%q is the class's region itself; name another region, or leave it out", r)
		}
		spec.FailoverRegion = r
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
		o, err := parseObject(i, &items[i], spec)
		if err != nil {
			return nil, err
		}
		spec.Objects = append(spec.Objects, o)
		spec.dynamic = spec.dynamic || o.KeysAsFiles || o.History > 0 || o.Dir != nil
		spec.dirs = spec.dirs || o.Dir != nil
	}
	if err := parseTemplates(params, spec); err != nil {
		return nil, err
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
// read-only), so sharing one is safe. Bounded to maxParsed classes, the
// least recently used dropped first. Each Fetcher holds one (NewFetcher),
// so nothing is shared between fetchers (or tests).
//
// A parsed class costs memory in proportion to its parameters (a class at
// the limits, 64 KiB of objects and 50 templates of 64 KiB, keeps several
// MiB of parse trees), and the parameters come from pod authors: classes
// over largeParams bytes are remembered in a map of their own, of
// maxParsedLarge entries, so a few hostile classes cannot hold gigabytes.
type specMemo struct{ m, large *memo.Map[specKey, *Spec] }

// specKey is everything a parse reads.
type specKey struct{ objects, pathTranslation, region, failoverRegion, templates string }

const (
	maxParsed      = 512
	maxParsedLarge = 8
	largeParams    = 16 << 10
)

func (sm *specMemo) parse(params map[string]string) (*Spec, error) {
	key := specKey{params[ParamObjects], params[ParamPathTranslation], params[ParamRegion], params[ParamFailoverRegion], params[ParamTemplates]}
	m := sm.m
	if len(key.objects)+len(key.templates) > largeParams {
		m = sm.large
	}
	if s, ok := m.Get(key); ok {
		return s, nil
	}
	// Parsed outside the lock: a slow parse of one class does not hold up
	// the Mounts of the others. Two first Mounts of a class may both parse.
	s, err := ParseParameters(params)
	if err != nil {
		return nil, err
	}
	m.Put(key, s)
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
		r.CrossAccountRoleArn == o.CrossAccountRoleArn && r.FilePermission == o.FilePermission &&
		r.ObjectEncoding == o.ObjectEncoding && r.ObjectFormat == o.ObjectFormat && r.KeysAsFiles == o.KeysAsFiles &&
		(r.ObjectVersionHistory == nil) == (o.ObjectVersionHistory == nil) && r.FailoverRegion == o.FailoverRegion &&
		r.ObjectPath == o.ObjectPath && r.Recursive == o.Recursive && (r.ObjectTags == nil) == (o.ObjectTags == nil) &&
		r.Optional == o.Optional && (r.File == nil) == (o.File == nil)
}

var (
	kmsVersionIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	stageRe        = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	endpointRe     = regexp.MustCompile(`^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$`)
)

func parseObject(i int, r *rawObject, spec *Spec) (*Object, error) {
	sep := spec.PathSeparator
	f := func(name string) string { return fmt.Sprintf("objects[%d].%s", i, name) }
	o := &Object{
		Index: i, Name: r.ObjectName, Alias: r.ObjectAlias,
		Version: r.ObjectVersion, VersionLabel: r.ObjectVersionLabel,
		KMSEndpoint: r.KMSEndpoint, CrossAccountRoleArn: r.CrossAccountRoleArn,
	}
	o.NoFile = r.File != nil && !*r.File
	switch strings.ToLower(r.ObjectType) {
	case "", "kms":
		o.Type = TypeKMS
	case "oos":
		o.Type = TypeOOS
	case "oos-parameter":
		o.Type = TypeOOSParameter
	default:
		return nil, verr(f("objectType"), "%q is not supported; use \"kms\" (the default), \"oos\" (an encrypted parameter) or \"oos-parameter\" (a common parameter)", textutil.Truncate(r.ObjectType, 32))
	}
	isDir, err := parseDir(o, r, f)
	if err != nil {
		return nil, err
	}
	if !isDir {
		if o.Name == "" {
			return nil, verr(f("objectName"), "is required: the name of the KMS secret or OOS parameter (or objectPath or objectTags for a directory of them)")
		}
		if err := checkName(f("objectName"), o.Name); err != nil {
			return nil, err
		}
	}
	o.Optional = r.Optional
	switch o.Type {
	case TypeKMS:
		if o.Version != "" && !kmsVersionIDRe.MatchString(o.Version) {
			return nil, verr(f("objectVersion"), "%q is not a KMS VersionId (letters, digits, '.', '_', '-', at most 64)", textutil.Truncate(o.Version, 64))
		}
		if o.VersionLabel != "" && !stageRe.MatchString(o.VersionLabel) {
			return nil, verr(f("objectVersionLabel"), "%q is not a KMS VersionStage such as ACSCurrent or ACSPrevious", textutil.Truncate(o.VersionLabel, 64))
		}
	case TypeOOS, TypeOOSParameter:
		if o.Version != "" {
			n, err := strconv.Atoi(o.Version)
			if err != nil || n < 1 || n > 100 || strconv.Itoa(n) != o.Version {
				return nil, verr(f("objectVersion"), "%q is not an OOS parameter version; use a whole number from 1 to 100, or leave it out for the latest", textutil.Truncate(o.Version, 32))
			}
		}
		if o.VersionLabel != "" {
			return nil, verr(f("objectVersionLabel"), "is not supported for %s parameters; use objectVersion with a version number", o.Type)
		}
		if o.KMSEndpoint != "" {
			return nil, verr(f("kmsEndpoint"), "applies to kms objects only; remove it from this %s object", o.Type)
		}
	}
	if o.KMSEndpoint != "" && !endpointRe.MatchString(o.KMSEndpoint) {
		return nil, verr(f("kmsEndpoint"), "%q is not a host[:port]; use the KMS instance endpoint such as kst-xxx.cryptoservice.kms.aliyuncs.com", textutil.Truncate(o.KMSEndpoint, 64))
	}
	if o.CrossAccountRoleArn != "" && !aliyun.ValidRoleArn(o.CrossAccountRoleArn) {
		return nil, verr(f("crossAccountRoleArn"), "%q is not a RAM role ARN; use acs:ram::<account-id>:role/<role-name>", textutil.Truncate(o.CrossAccountRoleArn, 64))
	}

	if err := parseShape(o, r, spec, f); err != nil {
		return nil, err
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
	o.File, o.fileID = file, string(o.Type)+"/"+file

	if len(r.JMESPath) > MaxJMESPathPerObj {
		return nil, verr(f("jmesPath"), "has %d entries, over the limit of %d", len(r.JMESPath), MaxJMESPathPerObj)
	}
	for j, e := range r.JMESPath {
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
		mode, err := e.FilePermission.mode(jf("filePermission"))
		if err != nil {
			return nil, err
		}
		if mode == 0 {
			mode = o.Mode // an entry inherits its object's mode
		}
		enc, err := parseEncoding(jf("objectEncoding"), e.ObjectEncoding)
		if err != nil {
			return nil, err
		}
		o.JMES = append(o.JMES, JMESFile{Expr: e.Path, Path: jfile, Mode: mode, Encoding: enc, id: string(o.Type) + "/" + jfile, expr: expr})
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
	type item struct {
		path, field string
		dir         bool // a keysAsFiles or history directory
	}
	owner := map[string]item{}
	var all []item
	for _, o := range spec.Objects {
		fld := fmt.Sprintf("objects[%d]", o.Index)
		all = append(all, item{o.File, fld, o.KeysAsFiles || o.History > 0 || o.Dir != nil})
		for j, jf := range o.JMES {
			all = append(all, item{jf.Path, fmt.Sprintf("objects[%d].jmesPath[%d].objectAlias", o.Index, j), false})
		}
	}
	for _, t := range spec.Templates {
		all = append(all, item{t.Path, fmt.Sprintf("templates[%d].fileName", t.Index), false})
	}
	for _, it := range all {
		if prev, ok := owner[it.path]; ok {
			return verr(it.field, "file %q is also the file of %s; set a distinct objectAlias", textutil.Truncate(it.path, 64), prev.field)
		}
		owner[it.path] = it
	}
	for _, it := range all {
		for d := parentDir(it.path); d != ""; d = parentDir(d) {
			// A file may sit in another object's key or version directory
			// (a name clash with a key is checked at each Mount).
			if prev, ok := owner[d]; ok && !prev.dir {
				return verr(it.field, "file %q needs %q to be a directory, but it is the file of %s; set a distinct objectAlias", textutil.Truncate(it.path, 64), textutil.Truncate(d, 64), prev.field)
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

// FileID is the object_version id of the object's own file.
func (o *Object) FileID() string { return o.fileID }
