package fs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// The SecretProviderClass manifest fields the view understands.
const (
	// APIVersion is the SecretProviderClass API the view reads.
	APIVersion = "secrets-store.csi.x-k8s.io/v1"
	// apiVersionAlpha is still served by the driver; accepted too.
	apiVersionAlpha = "secrets-store.csi.x-k8s.io/v1alpha1"
	// Kind is the manifest kind.
	Kind = "SecretProviderClass"
	// Provider is the spec.provider a class must name.
	Provider = "alibabacloud"
	// StatusFile is the per-class status file; no object may use its name.
	StatusFile = ".status"

	maxManifestBytes = 1 << 20
)

// Class is one SecretProviderClass manifest, parsed and validated: it becomes
// the directory <Name>/ of the view, with exactly the files a CSI volume of
// the class gets (Spec.Files, from fetch's one naming function).
type Class struct {
	// Name is metadata.name, a DNS-1123 subdomain; the directory name.
	Name string
	// Namespace is metadata.namespace (informational; the view is node-wide).
	Namespace string
	// Source names where the manifest came from (a file path), for messages.
	Source string
	// Parameters is spec.parameters as written.
	Parameters map[string]string
	// Spec is Parameters parsed by fetch.ParseParameters.
	Spec *fetch.Spec
}

// manifest is the small part of a SecretProviderClass the view reads.
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Provider   string            `json:"provider"`
		Parameters map[string]string `json:"parameters"`
	} `json:"spec"`
}

// ClassError is a manifest that cannot be shown: it names the file and the
// field, and says how to fix it.
type ClassError struct {
	Source string // file path
	Field  string // e.g. metadata.name, spec.parameters.objects[0].objectName
	Msg    string
}

func (e *ClassError) Error() string {
	if e.Field == "" {
		return e.Source + ": " + e.Msg
	}
	return e.Source + ": " + e.Field + ": " + e.Msg
}

// dns1123Subdomain is Kubernetes' rule for object names such as a
// SecretProviderClass: lower-case alphanumerics, '-' and '.', starting and
// ending with an alphanumeric, at most 253 characters.
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidClassName reports whether s is a valid DNS-1123 subdomain, the rule
// for metadata.name of a SecretProviderClass.
func ValidClassName(s string) bool { return len(s) <= 253 && dns1123Subdomain.MatchString(s) }

// LoadClass reads and validates one SecretProviderClass manifest file.
func LoadClass(path string) (*Class, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &ClassError{Source: path, Msg: fmt.Sprintf("cannot read the class file: %v", errors.Unwrap(err))}
	}
	if st.IsDir() {
		return nil, &ClassError{Source: path, Msg: "is a directory; pass one SecretProviderClass manifest file per --class"}
	}
	if st.Size() > maxManifestBytes {
		return nil, &ClassError{Source: path, Msg: fmt.Sprintf("is %d bytes, over the limit of %d", st.Size(), maxManifestBytes)}
	}
	data, err := os.ReadFile(path) //nolint:gosec // the operator's own --class file
	if err != nil {
		return nil, &ClassError{Source: path, Msg: fmt.Sprintf("cannot read the class file: %v", err)}
	}
	return ParseClass(path, data)
}

// LoadClasses loads every file and refuses two classes with the same name.
// The result is sorted by name.
func LoadClasses(paths []string) ([]*Class, error) {
	if len(paths) == 0 {
		return nil, errors.New("no class: pass at least one --class FILE (a SecretProviderClass manifest)")
	}
	var out []*Class
	for _, p := range paths {
		c, err := LoadClass(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := checkClasses(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkClasses sorts classes by name and refuses duplicates.
func checkClasses(cs []*Class) error {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	for i := 1; i < len(cs); i++ {
		if cs[i].Name == cs[i-1].Name {
			return &ClassError{Source: cs[i].Source, Field: "metadata.name",
				Msg: fmt.Sprintf("%q is also the name of the class in %s; each class is one directory of the view, so names must differ", cs[i].Name, cs[i-1].Source)}
		}
	}
	return nil
}

// ParseClass validates one manifest. source names it in errors.
func ParseClass(source string, data []byte) (*Class, error) {
	cerr := func(field, format string, args ...any) error {
		return &ClassError{Source: source, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, cerr("", "contains a NUL byte; is it a YAML manifest?")
	}
	if n := countDocuments(data); n != 1 {
		if n == 0 {
			return nil, cerr("", "is empty; write one SecretProviderClass manifest (apiVersion: %s)", APIVersion)
		}
		return nil, cerr("", "holds %d YAML documents; put one SecretProviderClass per file and pass --class once per file", n)
	}
	var m manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, cerr("", "is not a SecretProviderClass manifest: %s", oneLine(err.Error(), 200))
	}
	switch m.APIVersion {
	case APIVersion, apiVersionAlpha:
	case "":
		return nil, cerr("apiVersion", "is missing; set it to %s", APIVersion)
	default:
		return nil, cerr("apiVersion", "%q is not the SecretProviderClass API; set it to %s", oneLine(m.APIVersion, 64), APIVersion)
	}
	if m.Kind != Kind {
		return nil, cerr("kind", "%q: this file must be a %s", oneLine(m.Kind, 64), Kind)
	}
	if m.Metadata.Name == "" {
		return nil, cerr("metadata.name", "is missing; it names the class and its directory in the view")
	}
	if !ValidClassName(m.Metadata.Name) {
		return nil, cerr("metadata.name", "%q is not a valid name (DNS-1123: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253)", oneLine(m.Metadata.Name, 64))
	}
	if m.Spec.Provider != Provider {
		if m.Spec.Provider == "" {
			return nil, cerr("spec.provider", "is missing; set it to %s", Provider)
		}
		return nil, cerr("spec.provider", "%q is another provider's class; this view shows spec.provider: %s classes only", oneLine(m.Spec.Provider, 64), Provider)
	}
	if len(m.Spec.Parameters) == 0 {
		return nil, cerr("spec.parameters", "is missing; set spec.parameters.objects to the list of secrets")
	}
	spec, err := fetch.ParseParameters(m.Spec.Parameters)
	if err != nil {
		var v *fetch.ValidationError
		if errors.As(err, &v) {
			return nil, cerr("spec.parameters."+v.Field, "%s", v.Msg)
		}
		return nil, cerr("spec.parameters", "%v", err)
	}
	for _, o := range spec.Objects {
		for _, f := range append([]string{o.File}, o.JMESFiles...) {
			if f == StatusFile {
				return nil, cerr(fmt.Sprintf("spec.parameters.objects[%d]", o.Index),
					"file %q is reserved for the view's status file; set objectAlias to another name", f)
			}
		}
	}
	return &Class{
		Name:       m.Metadata.Name,
		Namespace:  m.Metadata.Namespace,
		Source:     source,
		Parameters: m.Spec.Parameters,
		Spec:       spec,
	}, nil
}

// countDocuments counts the non-empty YAML documents of data (separated by
// "---" lines).
func countDocuments(data []byte) int {
	n := 0
	nonEmpty := false
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimRight(line, " \t\r")
		if t == "---" || strings.HasPrefix(t, "--- ") || t == "..." {
			if nonEmpty {
				n++
			}
			nonEmpty = false
			continue
		}
		s := strings.TrimSpace(t)
		if s != "" && !strings.HasPrefix(s, "#") {
			nonEmpty = true
		}
	}
	if nonEmpty {
		n++
	}
	return n
}

// oneLine keeps a message short and on one line (it may quote input).
func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
