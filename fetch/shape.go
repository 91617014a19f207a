package fetch

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// The fields that shape how one object becomes files: filePermission,
// objectEncoding, objectFormat, keysAsFiles, objectVersionHistory and the
// object's failoverRegion. Each is pod-author input and is validated here,
// field by field, with the fix in the message; the files themselves are
// made in files.go.

// Encoding is an objectEncoding. A byte, not a string: every object of
// every class in the parse memo carries one.
type Encoding uint8

// Encodings of objectEncoding.
const (
	EncodingUTF8      Encoding = iota // the value as stored (the default)
	EncodingBase64                    // standard base64, padded or not
	EncodingBase64URL                 // URL-safe base64, padded or not
	EncodingHex                       // hexadecimal
)

func (e Encoding) String() string {
	switch e {
	case EncodingBase64:
		return "base64"
	case EncodingBase64URL:
		return "base64url"
	case EncodingHex:
		return "hex"
	}
	return "utf-8"
}

// permString is a filePermission as written: a quoted octal string such as
// "0440". YAML reads an unquoted 0440 as the octal number 288; that is kept
// as a number so validation can say so, naming the field.
type permString struct {
	text   string
	number bool
}

func (p *permString) UnmarshalJSON(b []byte) error {
	t := strings.TrimSpace(string(b))
	switch {
	case t == "null":
		*p = permString{}
	case strings.HasPrefix(t, `"`):
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = permString{text: s}
	default:
		*p = permString{text: textutil.Truncate(t, 24), number: true}
	}
	return nil
}

func (p permString) MarshalJSON() ([]byte, error) { return json.Marshal(p.text) }

const permFix = `use a quoted 4-digit octal string from "0001" to "0777", such as "0440" (owner and group read) or "0400"`

// mode validates a filePermission; 0 means none was set.
func (p permString) mode(field string) (int32, error) {
	if p.text == "" && !p.number {
		return 0, nil
	}
	if p.number {
		n, err := strconv.ParseInt(p.text, 10, 32)
		if err == nil && n > 0 && n <= 0o777 {
			return 0, verr(field, "is the number %d: YAML reads an unquoted 0%o as an octal number; quote it: filePermission: \"%04o\"", n, n, n)
		}
		return 0, verr(field, "%s is a number; %s", p.text, permFix)
	}
	s := p.text
	if len(s) != 4 || s[0] < '0' || s[0] > '7' {
		return 0, verr(field, "%q is not a 4-digit octal mode; %s", textutil.Truncate(s, 16), permFix)
	}
	n, err := strconv.ParseUint(s, 8, 32)
	switch {
	case err != nil:
		return 0, verr(field, "%q is not octal (digits 0-7 only); %s", s, permFix)
	case n > 0o777:
		return 0, verr(field, "%q sets the setuid, setgid or sticky bit, which a secret file never needs; %s", s, permFix)
	case n == 0:
		return 0, verr(field, "%q has no permission bits, so nobody could read the file; %s", s, permFix)
	}
	return int32(n), nil //nolint:gosec // at most 0o777
}

func parseEncoding(field, s string) (Encoding, error) {
	switch strings.ToLower(s) {
	case "", "utf-8", "utf8":
		return EncodingUTF8, nil
	case "base64":
		return EncodingBase64, nil
	case "base64url":
		return EncodingBase64URL, nil
	case "hex":
		return EncodingHex, nil
	}
	return 0, verr(field, "%q is not an encoding; use utf-8 (the default: the value as stored), base64, base64url or hex", textutil.Truncate(s, 32))
}

// parseShape validates the shaping fields of one object into o.
func parseShape(o *Object, r *rawObject, spec *Spec, f func(string) string) error {
	var err error
	if o.Mode, err = r.FilePermission.mode(f("filePermission")); err != nil {
		return err
	}
	if o.Encoding, err = parseEncoding(f("objectEncoding"), r.ObjectEncoding); err != nil {
		return err
	}
	switch strings.ToLower(r.ObjectFormat) {
	case "", "json":
	case "yaml":
		o.YAML = true
	default:
		return verr(f("objectFormat"), "%q is not a format; use json (the default) or yaml", textutil.Truncate(r.ObjectFormat, 32))
	}
	if r.ObjectFormat != "" && len(r.JMESPath) == 0 && !r.KeysAsFiles {
		return verr(f("objectFormat"), "only says how jmesPath and keysAsFiles read the value; remove it, or add one of them")
	}
	o.KeysAsFiles = r.KeysAsFiles
	if o.KeysAsFiles && o.Encoding != EncodingUTF8 {
		return verr(f("objectEncoding"), "cannot be combined with keysAsFiles (the key files are the value's fields, written as they are); remove one of them")
	}
	if h := r.ObjectVersionHistory; h != nil {
		switch {
		case *h < 1 || *h > MaxHistory:
			return verr(f("objectVersionHistory"), "%d is out of range; use a number from 1 (the current version only) to %d", *h, MaxHistory)
		case o.Version != "" || o.VersionLabel != "":
			return verr(f("objectVersionHistory"), "starts at the current version, so it cannot be combined with objectVersion or objectVersionLabel; remove one of them")
		case o.KeysAsFiles || len(r.JMESPath) > 0:
			return verr(f("objectVersionHistory"), "writes each version whole, so it cannot be combined with keysAsFiles or jmesPath; remove one of them")
		}
		o.History = int16(*h) //nolint:gosec // 1..MaxHistory
	}
	switch fr := r.FailoverRegion; {
	case fr != "" && !aliyun.ValidRegion(fr):
		return verr(f("failoverRegion"), "%q is not a region id; use one like cn-shanghai, or leave it out", textutil.Truncate(fr, 64))
	case fr != "" && fr == spec.Region:
		return verr(f("failoverRegion"), "%q is the class's region itself; name another region", fr)
	case fr != "" && o.KMSEndpoint != "":
		return verr(f("failoverRegion"), "cannot be combined with kmsEndpoint: a KMS instance lives in one region; remove one of them")
	case fr != "":
		o.FailoverRegion = fr
	case o.KMSEndpoint == "":
		// The class's failoverRegion applies to every object that can
		// fail over; an object bound to a KMS instance cannot.
		o.FailoverRegion = spec.FailoverRegion
	}
	return nil
}
