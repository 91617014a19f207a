// Package spc reads SecretProviderClass manifests. It is the one loader of
// class files: doctor's and mount's --class, serve's --fuse-class (which the
// chart fills from fuse.classes) and dev's demo class all go through Load or
// Parse, so a file one command accepts every command accepts.
//
// A file holds one or more YAML documents ("---" lines between them);
// documents of other kinds are skipped, so an application's manifests can be
// passed as they are, and "-" reads stdin. Every SecretProviderClass in it
// must be valid: apiVersion secrets-store.csi.x-k8s.io/v1 (or v1alpha1), a
// DNS-1123 metadata.name, spec.provider alibabacloud (ProviderName) and
// spec.parameters that fetch.ParseParameters accepts. A file without any
// class is refused, and so are two classes of one name. Each error is an
// *Error that names the file, the class and the field, and says how to fix
// it.
//
// What one consumer adds on top stays with it: the FUSE view refuses an
// object file named like its status file (fs.CheckClasses).
package spc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// The SecretProviderClass fields this provider reads.
const (
	// ProviderName is the spec.provider of the classes this provider
	// serves; the driver dials <providers dir>/<ProviderName>.sock.
	ProviderName = "alibabacloud"
	// APIVersion is the SecretProviderClass API.
	APIVersion = "secrets-store.csi.x-k8s.io/v1"
	// apiVersionAlpha is still served by the driver; accepted too.
	apiVersionAlpha = "secrets-store.csi.x-k8s.io/v1alpha1"
	// Kind is the manifest kind.
	Kind = "SecretProviderClass"
	// Stdin is the file name that reads stdin.
	Stdin = "-"
	// MaxFileBytes bounds one class file.
	MaxFileBytes = 1 << 20
)

// Class is one SecretProviderClass, parsed and validated.
type Class struct {
	// Name is metadata.name, a DNS-1123 subdomain.
	Name string
	// Namespace is metadata.namespace (informational).
	Namespace string
	// Source is the file it came from ("-" for stdin), for messages.
	Source string
	// Parameters is spec.parameters as written.
	Parameters map[string]string
	// Spec is Parameters parsed by fetch.ParseParameters.
	Spec *fetch.Spec
}

// Error is a class file that cannot be used: it names the file, the class
// (or the document, when the class has no usable name) and the field, and
// says how to fix it.
type Error struct {
	Source   string // the file, "-" for stdin
	Document int    // 1-based document of a file of several; 0: the file
	Class    string // metadata.name, when known
	Field    string // e.g. metadata.name, spec.parameters.objects[0].objectName
	Msg      string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(sourceName(e.Source))
	switch {
	case e.Class != "":
		fmt.Fprintf(&b, ": %s %q", Kind, e.Class)
	case e.Document > 0:
		fmt.Fprintf(&b, ": document %d", e.Document)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	return b.String() + ": " + e.Msg
}

func sourceName(s string) string {
	if s == Stdin {
		return "stdin (-)"
	}
	return s
}

// dns1123Subdomain is Kubernetes' rule for object names such as a
// SecretProviderClass: lower-case alphanumerics, '-' and '.', starting and
// ending with an alphanumeric, at most 253 characters.
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidName reports whether s is a valid DNS-1123 subdomain, the rule for
// metadata.name of a SecretProviderClass.
func ValidName(s string) bool { return len(s) <= 253 && dns1123Subdomain.MatchString(s) }

// Load reads every SecretProviderClass of the files, in order; "-" reads
// stdin (once). It refuses an unreadable file, a file without a class, an
// invalid class and two classes of one name.
func Load(paths []string, stdin io.Reader) ([]*Class, error) {
	if len(paths) == 0 {
		return nil, errors.New("no class: pass at least one class file (a SecretProviderClass manifest)")
	}
	var out []*Class
	readStdin := false
	for _, p := range paths {
		if p == Stdin {
			if readStdin {
				return nil, &Error{Source: p, Msg: "stdin is given twice; pass it once"}
			}
			readStdin = true
		}
		data, err := readFile(p, stdin)
		if err != nil {
			return nil, err
		}
		cs, err := Parse(p, data)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	if err := CheckNames(out); err != nil {
		return nil, err
	}
	return out, nil
}

// readFile reads a class file, or stdin for "-", up to MaxFileBytes.
func readFile(p string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if p != Stdin {
		f, err := os.Open(p) //nolint:gosec // the operator names the class file on the command line
		if err != nil {
			return nil, &Error{Source: p, Msg: fmt.Sprintf("cannot read the class file: %v", errors.Unwrap(err))}
		}
		defer func() { _ = f.Close() }()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, &Error{Source: p, Msg: "is a directory; pass a manifest file"}
		}
		r = f
	} else if r == nil {
		return nil, &Error{Source: p, Msg: "no stdin to read"}
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, &Error{Source: p, Msg: fmt.Sprintf("cannot read the class file: %v", err)}
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{Source: p, Msg: fmt.Sprintf("is over the limit of %d bytes; is it a manifest?", MaxFileBytes)}
	}
	return data, nil
}

// manifest is the part of a Kubernetes object the loader reads.
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

// Parse reads every SecretProviderClass of one file's content; source
// names the file in errors and in Class.Source. Documents of other kinds
// are skipped; a file without a class is refused.
func Parse(source string, data []byte) ([]*Class, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, &Error{Source: source, Msg: "contains a NUL byte; is it a YAML manifest?"}
	}
	docs := documents(data)
	if len(docs) == 0 {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("is empty; write a SecretProviderClass manifest (apiVersion: %s, kind: %s)", APIVersion, Kind)}
	}
	var out []*Class
	var others []string
	for i, doc := range docs {
		n := 0
		if len(docs) > 1 {
			n = i + 1
		}
		var m manifest
		if err := yaml.Unmarshal(doc, &m); err != nil {
			what := "the file"
			if n > 0 {
				what = fmt.Sprintf("document %d", n)
			}
			return nil, &Error{Source: source, Msg: fmt.Sprintf("%s is not valid YAML for a Kubernetes manifest: %s", what, oneLine(err.Error(), 200))}
		}
		if m.Kind != Kind {
			k := m.Kind
			if k == "" {
				k = "no kind"
			}
			others = append(others, oneLine(k, 64))
			continue
		}
		c, err := parseClass(source, n, &m)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("holds no %s (its documents: %s); pass a file with kind: %s", Kind, strings.Join(others, ", "), Kind)}
	}
	return out, nil
}

// parseClass validates one SecretProviderClass document.
func parseClass(source string, doc int, m *manifest) (*Class, error) {
	e := &Error{Source: source, Document: doc}
	fail := func(field, format string, args ...any) error {
		e.Field, e.Msg = field, fmt.Sprintf(format, args...)
		return e
	}
	switch m.APIVersion {
	case APIVersion, apiVersionAlpha:
	case "":
		return nil, fail("apiVersion", "is missing; set it to %s", APIVersion)
	default:
		return nil, fail("apiVersion", "%q is not the %s API; set it to %s", oneLine(m.APIVersion, 64), Kind, APIVersion)
	}
	if m.Metadata.Name == "" {
		return nil, fail("metadata.name", "is missing; it names the class")
	}
	if !ValidName(m.Metadata.Name) {
		return nil, fail("metadata.name", "%q is not a valid name (DNS-1123: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253)", oneLine(m.Metadata.Name, 64))
	}
	e.Class = m.Metadata.Name
	switch m.Spec.Provider {
	case ProviderName:
	case "":
		return nil, fail("spec.provider", "is missing; set it to %s", ProviderName)
	default:
		return nil, fail("spec.provider", "%q is another provider's class; this provider serves spec.provider: %s", oneLine(m.Spec.Provider, 64), ProviderName)
	}
	if len(m.Spec.Parameters) == 0 {
		return nil, fail("spec.parameters", "is missing; set spec.parameters.objects to the list of secrets")
	}
	spec, err := fetch.ParseParameters(m.Spec.Parameters)
	if err != nil {
		var v *fetch.ValidationError
		if errors.As(err, &v) {
			return nil, fail("spec.parameters."+v.Field, "%s", v.Msg)
		}
		return nil, fail("spec.parameters", "%v", err)
	}
	return &Class{
		Name:       m.Metadata.Name,
		Namespace:  m.Metadata.Namespace,
		Source:     source,
		Parameters: m.Spec.Parameters,
		Spec:       spec,
	}, nil
}

// CheckNames refuses two classes of one name: the FUSE view shows each
// class as the directory of its name, and doctor reports by name.
func CheckNames(cs []*Class) error {
	seen := map[string]*Class{}
	for _, c := range cs {
		if prev, ok := seen[c.Name]; ok {
			return &Error{Source: c.Source, Class: c.Name, Field: "metadata.name",
				Msg: fmt.Sprintf("is also the name of a class in %s; class names must differ", sourceName(prev.Source))}
		}
		seen[c.Name] = c
	}
	return nil
}

// documents splits a YAML stream at its "---" lines (and "..." document
// ends), dropping documents that hold only blank lines and comments.
func documents(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	content := false
	flush := func() {
		if content {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
		content = false
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.Equal(t, []byte("...")) {
			flush()
			continue
		}
		if s := bytes.TrimSpace(t); len(s) > 0 && s[0] != '#' {
			content = true
		}
		cur.Write(line)
	}
	flush()
	return docs
}

// oneLine keeps a message short and on one line (it may quote input).
func oneLine(s string, n int) string {
	return textutil.Truncate(strings.ReplaceAll(s, "\n", " "), n)
}
