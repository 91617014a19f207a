package fetch

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Files of one object from its cached entry: the whole value (decoded by
// objectEncoding), one file per jmesPath entry, one per top-level key
// (keysAsFiles) or one per version (objectVersionHistory). A pure function
// of the object and the entry. No error quotes a value, nor a key of one.

// ObjectFiles turns one object's cached value into its files.
func ObjectFiles(o *Object, e *Entry) ([]File, error) {
	return appendObjectFiles(nil, o, e)
}

// appendObjectFiles appends o's files to dst; on error dst is returned
// unchanged, with nothing of o in it.
func appendObjectFiles(dst []File, o *Object, e *Entry) ([]File, error) {
	switch {
	case e.Absent:
		return dst, nil // an optional object that does not exist
	case o.Dir != nil:
		// Only the FUSE view asks for a directory object's own file:
		// its listing, the names one per line.
		return append(dst, File{Path: o.File, ID: o.fileID, Data: e.Data, Version: e.Version}), nil
	case o.History > 0:
		return appendHistoryFiles(dst, o, e)
	case o.KeysAsFiles:
		files, err := appendKeyFiles(dst, o, e)
		if err != nil {
			return dst, err
		}
		return appendJMESFiles(files, dst, o, e)
	}
	data, err := decodeValue(o.Encoding, e.Data, e.Binary)
	if err != nil {
		return dst, &Error{Kind: KindInvalid, Message: "objectEncoding: " + err.Error()}
	}
	files := append(dst, File{Path: o.File, ID: o.fileID, Data: data, Version: e.Version, Mode: o.Mode})
	return appendJMESFiles(files, dst, o, e)
}

// appendJMESFiles appends the jmesPath files to files; on error it returns
// dst (what the caller had before this object).
func appendJMESFiles(files, dst []File, o *Object, e *Entry) ([]File, error) {
	if len(o.JMES) == 0 {
		return files, nil
	}
	doc, err := structured(o, e.Data, false)
	if err != nil {
		return dst, &Error{Kind: KindInvalid, Message: "jmesPath " + err.Error()}
	}
	for j := range o.JMES {
		jf := &o.JMES[j]
		v, err := searchJMES(jf.expr, doc)
		if err != nil {
			return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("jmesPath[%d] %q failed to evaluate", j, textutil.Truncate(jf.Expr, 64))}
		}
		s, ok := v.(string)
		if !ok {
			what := "nothing"
			if v != nil {
				what = "a " + jsonKind(v)
			}
			return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("jmesPath[%d] %q yields %s, not a string; point it at a string field", j, textutil.Truncate(jf.Expr, 64), what)}
		}
		data, err := decodeValue(jf.Encoding, Bytes(s), false)
		if err != nil {
			return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("jmesPath[%d].objectEncoding: %v", j, err)}
		}
		files = append(files, File{Path: jf.Path, ID: jf.id, Data: data, Version: e.Version, Mode: jf.Mode})
	}
	return files, nil
}

// appendKeyFiles writes one file per top-level key of a JSON object (or
// YAML mapping) value under the directory o.File.
func appendKeyFiles(dst []File, o *Object, e *Entry) ([]File, error) {
	doc, err := structured(o, e.Data, true)
	if err != nil {
		return dst, &Error{Kind: KindInvalid, Message: "keysAsFiles " + err.Error()}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("keysAsFiles needs a %s object at the top of the value, but it holds a %s; remove keysAsFiles or store an object", formatName(o), jsonKind(doc))}
	}
	if len(m) > MaxKeysPerObject {
		return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("keysAsFiles: the value has %d keys, over the limit of %d files per object; split the value or use jmesPath for the keys you need", len(m), MaxKeysPerObject)}
	}
	if len(m) == 0 {
		return dst, &Error{Kind: KindInvalid, Message: "keysAsFiles: the value is an empty object, so there is no file to write"}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	files := dst
	for i, k := range keys {
		if why := badKeyName(k); why != "" {
			// The key is part of the value: say where it is, not what.
			return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("keysAsFiles: key #%d of %d (in sorted order, %d bytes) %s, so it cannot name a file; keys are never rewritten: rename the key upstream or use jmesPath with an objectAlias", i+1, len(keys), len(k), why)}
		}
		var data []byte
		if s, ok := m[k].(string); ok {
			data = []byte(s)
		} else {
			// Compact JSON, numbers as written (UseNumber).
			b, err := json.Marshal(m[k])
			if err != nil {
				return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("keysAsFiles: key #%d's value cannot be written as JSON", i+1)}
			}
			data = b
		}
		p := o.File + "/" + k
		files = append(files, File{Path: p, ID: string(o.Type) + "/" + p, Data: Bytes(data), Version: e.Version, Mode: o.Mode})
	}
	return files, nil
}

// checkDynamicPaths refuses a Mount whose key or version files land on the
// path of another file, or under one, or hold another file under them (the
// static names were checked when the class was parsed). The failure is the
// keysAsFiles or objectVersionHistory object's, and its message names the
// other file only when that one's path is static: a key file's path holds a
// key of a value.
func checkDynamicPaths(files []File) *ObjectError {
	owner := make(map[string]*File, len(files))
	for i := range files {
		f := &files[i]
		if prev := owner[f.Path]; prev != nil {
			return collision(prev, f)
		}
		owner[f.Path] = f
	}
	for i := range files {
		f := &files[i]
		for d := parentDir(f.Path); d != ""; d = parentDir(d) {
			if prev := owner[d]; prev != nil {
				return collision(prev, f)
			}
		}
	}
	return nil
}

func dynamic(f *File) bool {
	if f.obj != nil && f.obj.parent != nil {
		return true // named by a listing
	}
	return f.obj != nil && (f.obj.KeysAsFiles || f.obj.History > 0) && f.Path != f.obj.File &&
		strings.HasPrefix(f.Path, f.obj.File+"/")
}

func collision(a, b *File) *ObjectError {
	dyn, other := a, b
	if !dynamic(a) {
		dyn, other = b, a
	}
	obj, what := dyn.obj, "key or version"
	if obj.parent != nil {
		// A listed name is not secret: name it, and blame its directory.
		obj, what = obj.parent, fmt.Sprintf("listed (%q)", textutil.Truncate(dyn.Path, 64))
	}
	msg := "one of its " + what + " files collides with another file of this volume (the same path, or one needs the other as a directory)"
	if !dynamic(other) || other.obj.parent != nil {
		msg = fmt.Sprintf("one of its %s files collides with the file %q (the same path, or one needs the other as a directory)", what, textutil.Truncate(other.Path, 64))
		if other.obj != nil {
			msg += " of " + other.obj.Ref()
		}
	}
	return &ObjectError{Object: obj, Err: &Error{Kind: KindInvalid, Message: msg + "; give the objects distinct objectAlias names"}}
}

// badKeyName says why a key cannot be a file name under the object's
// directory, or "" when it can: one path component of printable UTF-8.
func badKeyName(k string) string {
	switch {
	case k == "":
		return "is empty"
	case k == "." || k == "..":
		return "is a dot name"
	case len(k) > maxComponentBytes:
		return fmt.Sprintf("is longer than %d bytes", maxComponentBytes)
	case !utf8.ValidString(k):
		return "is not valid UTF-8"
	case strings.ContainsAny(k, `/\`):
		return "contains a slash or backslash"
	case strings.TrimSpace(k) != k:
		return "has leading or trailing spaces"
	}
	for _, r := range k {
		if badRune(r) {
			return "contains an invisible or control character"
		}
	}
	return ""
}

// appendHistoryFiles writes each version of a history as <dir>/<n>, 0 the
// current one, each with its own version.
func appendHistoryFiles(dst []File, o *Object, e *Entry) ([]File, error) {
	hist := e.History
	if len(hist) == 0 {
		hist = []Version{{Data: e.Data, Version: e.Version}}
	}
	if len(hist) > int(o.History) {
		hist = hist[:o.History]
	}
	files := dst
	for i, h := range hist {
		data, err := decodeValue(o.Encoding, h.Data, e.Binary)
		if err != nil {
			return dst, &Error{Kind: KindInvalid, Message: fmt.Sprintf("objectEncoding (version %d of the history): %v", i, err)}
		}
		p := o.File + "/" + strconv.Itoa(i)
		files = append(files, File{Path: p, ID: string(o.Type) + "/" + p, Data: data, Version: h.Version, Mode: o.Mode})
	}
	return files, nil
}

// decodeValue applies an objectEncoding. Surrounding whitespace (a
// trailing newline, say) is ignored, and base64 may be wrapped in lines. A
// KMS binary secret is already decoded: it is returned as is. Errors never
// quote the value.
func decodeValue(enc Encoding, v Bytes, binary bool) (Bytes, error) {
	if enc == EncodingUTF8 || binary {
		return v, nil
	}
	t := bytes.TrimSpace(v)
	var out []byte
	var err error
	switch enc {
	case EncodingBase64:
		out, err = decodeBase64(base64.StdEncoding, t)
	case EncodingBase64URL:
		out, err = decodeBase64(base64.URLEncoding, t)
	case EncodingHex:
		out = make([]byte, hex.DecodedLen(len(t)))
		_, err = hex.Decode(out, t)
	}
	if err != nil {
		return nil, fmt.Errorf("the value (%d bytes) is not valid %s; store it %s-encoded or remove objectEncoding", len(v), enc, enc)
	}
	return Bytes(out), nil
}

// decodeBase64 accepts padded and unpadded text.
func decodeBase64(enc *base64.Encoding, t []byte) ([]byte, error) {
	out, err := enc.DecodeString(string(t))
	if err != nil {
		out, err = enc.WithPadding(base64.NoPadding).DecodeString(string(t))
	}
	return out, err
}

// structured parses a value for jmesPath or keysAsFiles by the object's
// format. YAML is converted to JSON first by the same library (and alias
// limits) that reads the class. useNumber keeps numbers as written.
func structured(o *Object, v Bytes, useNumber bool) (any, error) {
	if len(v) > maxStructuredSize {
		return nil, fmt.Errorf("reads at most %d bytes of a value, and this one has %d", maxStructuredSize, len(v))
	}
	data := []byte(v)
	if o.YAML {
		j, err := yamlToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("needs a YAML value (objectFormat: yaml), but this object's value is not YAML; store YAML or remove objectFormat")
		}
		data = j
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		dec.UseNumber()
	}
	var doc any
	if err := dec.Decode(&doc); err != nil || dec.More() {
		if o.YAML {
			return nil, fmt.Errorf("needs a YAML value, but this object's value is not YAML")
		}
		return nil, fmt.Errorf("needs a JSON value, but this object's value is not JSON; store JSON, or set objectFormat: yaml for a YAML value")
	}
	return doc, nil
}

// yamlToJSON converts one YAML document, turning a parser panic into an
// error.
func yamlToJSON(b []byte) (j []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			j, err = nil, fmt.Errorf("unparsable YAML")
		}
	}()
	return yaml.YAMLToJSON(b)
}

func formatName(o *Object) string {
	if o.YAML {
		return "YAML"
	}
	return "JSON"
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "JSON object"
	case []any:
		return "JSON array"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	case string:
		return "string"
	case nil:
		return "null"
	}
	return "non-string value"
}
