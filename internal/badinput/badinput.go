// Package badinput is the shared table of hostile and malformed
// SecretProviderClass parameters. The parser's table test, its fuzz seeds and
// the end-to-end tests through the socket all replay it, so a bad input added
// here is refused at every layer.
package badinput

import "strings"

// Cases are the inputs every layer must refuse with a clear error naming
// a field. They seed the fuzz target and are replayed end to end.
var Cases = []struct {
	Name   string
	Params map[string]string
	Field  string // substring the error must name
}{
	{"missing objects", map[string]string{}, "parameter objects"},
	{"empty objects", map[string]string{"objects": "  "}, "parameter objects"},
	{"empty list", map[string]string{"objects": "[]"}, "parameter objects"},
	{"malformed yaml", map[string]string{"objects": "- objectName: [unclosed"}, "parameter objects"},
	{"not a list", map[string]string{"objects": "objectName: x"}, "parameter objects"},
	{"unknown field", map[string]string{"objects": "- objectName: x\n  objectAlais: y"}, "parameter objects"},
	{"missing objectName", map[string]string{"objects": "- objectAlias: x"}, "objects[0].objectName"},
	{"type only first", map[string]string{"objects": "- objectType: oos"}, "objects[0].objectName"},
	{"unknown objectType", map[string]string{"objects": "- objectName: x\n  objectType: vault"}, "objects[0].objectType"},
	{"absolute name", map[string]string{"objects": "- objectName: /etc/passwd"}, "objects[0].objectName"},
	{"dotdot name", map[string]string{"objects": "- objectName: ../x"}, "objects[0].objectName"},
	{"dotdot inside", map[string]string{"objects": "- objectName: a/../b"}, "objects[0].objectName"},
	{"dot segment", map[string]string{"objects": "- objectName: a/./b"}, "objects[0].objectName"},
	{"empty segment", map[string]string{"objects": "- objectName: a//b"}, "objects[0].objectName"},
	{"trailing slash", map[string]string{"objects": "- objectName: a/"}, "objects[0].objectName"},
	{"absolute alias", map[string]string{"objects": "- objectName: x\n  objectAlias: /tmp/x"}, "objects[0].objectAlias"},
	{"dotdot alias", map[string]string{"objects": "- objectName: x\n  objectAlias: .."}, "objects[0].objectAlias"},
	{"dot alias", map[string]string{"objects": "- objectName: x\n  objectAlias: ."}, "objects[0].objectAlias"},
	{"driver reserved ..data", map[string]string{"objects": "- objectName: x\n  objectAlias: ..data"}, "objects[0].objectAlias"},
	{"symlink-looking alias", map[string]string{"objects": "- objectName: x\n  objectAlias: ..2026_01_01"}, "objects[0].objectAlias"},
	{"backslash alias", map[string]string{"objects": "- objectName: x\n  objectAlias: 'a\\..\\b'"}, "objects[0].objectAlias"},
	{"overlong component", map[string]string{"objects": "- objectName: " + strings.Repeat("a", 256)}, "objects[0].objectName"},
	{"overlong name", map[string]string{"objects": "- objectName: " + strings.Repeat("a/", 600) + "a"}, "objects[0].objectName"},
	{"NUL byte", map[string]string{"objects": "- objectName: \"a\\0b\""}, "objects[0].objectName"},
	{"raw NUL byte", map[string]string{"objects": "- objectName: a\x00b"}, "parameter objects"},
	{"bidi override", map[string]string{"objects": "- objectName: \"abc\u202Etxt\""}, "objects[0].objectName"},
	{"zero width", map[string]string{"objects": "- objectName: \"a\u200Bb\""}, "objects[0].objectName"},
	{"newline in name", map[string]string{"objects": "- objectName: \"a\\nb\""}, "objects[0].objectName"},
	{"leading space", map[string]string{"objects": "- objectName: \" a\""}, "objects[0].objectName"},
	{"duplicate names", map[string]string{"objects": "- objectName: a\n- objectName: a"}, "objects[1]"},
	{"translation collision", map[string]string{"objects": "- objectName: a/b\n- objectName: a_b"}, "objects[1]"},
	{"alias collision", map[string]string{"objects": "- objectName: a\n  objectAlias: c\n- objectName: b\n  objectAlias: c"}, "objects[1]"},
	{"jmes alias collides with object", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - path: x\n      objectAlias: a"}, "objects[0].jmesPath[0].objectAlias"},
	{"jmes aliases collide", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: x, objectAlias: u}\n    - {path: y, objectAlias: u}"}, "objects[0].jmesPath[1].objectAlias"},
	{"file vs directory", map[string]string{"objects": "- objectName: a\n- objectName: a/b", "pathTranslation": "False"}, "objects[1]"},
	{"pathTranslation too long", map[string]string{"objects": "- objectName: a", "pathTranslation": "__"}, "parameter pathTranslation"},
	{"pathTranslation control", map[string]string{"objects": "- objectName: a", "pathTranslation": "\t"}, "parameter pathTranslation"},
	{"jmes missing path", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - objectAlias: u"}, "objects[0].jmesPath[0].path"},
	{"jmes missing alias", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - path: u"}, "objects[0].jmesPath[0].objectAlias"},
	{"jmes bad expression", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: 'a[', objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes function", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: 'to_string(@)', objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes pipe", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: 'a | b', objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes projection", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: 'a[*].b', objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes filter", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: \"a[?b=='c']\", objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes cpu bomb", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: 'to_string(@" + strings.Repeat("|[@,@]", 30) + ")', objectAlias: u}"}, "objects[0].jmesPath[0].path"},
	{"jmes dotdot alias", map[string]string{"objects": "- objectName: a\n  jmesPath:\n    - {path: u, objectAlias: ../u}"}, "objects[0].jmesPath[0].objectAlias"},
	{"oos version zero", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"0\""}, "objects[0].objectVersion"},
	{"oos version negative", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"-1\""}, "objects[0].objectVersion"},
	{"oos version word", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: latest"}, "objects[0].objectVersion"},
	{"oos version leading zero", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"01\""}, "objects[0].objectVersion"},
	{"oos version too big", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersion: \"101\""}, "objects[0].objectVersion"},
	{"oos version label", map[string]string{"objects": "- objectName: p\n  objectType: oos\n  objectVersionLabel: ACSCurrent"}, "objects[0].objectVersionLabel"},
	{"kms version id junk", map[string]string{"objects": "- objectName: p\n  objectVersion: \"a b\""}, "objects[0].objectVersion"},
	{"bad region", map[string]string{"objects": "- objectName: a", "region": "evil.com/x"}, "parameter region"},
	{"region with dots", map[string]string{"objects": "- objectName: a", "region": "cn-hangzhou.attacker"}, "parameter region"},
	{"kmsEndpoint with scheme", map[string]string{"objects": "- objectName: a\n  kmsEndpoint: http://169.254.169.254/"}, "objects[0].kmsEndpoint"},
	{"kmsEndpoint on oos", map[string]string{"objects": "- objectName: a\n  objectType: oos\n  kmsEndpoint: kms.cn-hangzhou.aliyuncs.com"}, "objects[0].kmsEndpoint"},
	{"bad role arn", map[string]string{"objects": "- objectName: a\n  crossAccountRoleArn: arn:aws:iam::1:role/x"}, "objects[0].crossAccountRoleArn"},
	{"too many objects", map[string]string{"objects": strings.Repeat("- objectName: a\n", 101)}, "parameter objects"},
	{"oversized objects", map[string]string{"objects": "- objectName: a\n#" + strings.Repeat("x", 64<<10)}, "parameter objects"},
	{"deep yaml", map[string]string{"objects": "- objectName: a\n  jmesPath: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000)}, "parameter objects"},
	{"alias bomb", map[string]string{"objects": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]"}, "parameter objects"},
	{"objects wrong type", map[string]string{"objects": "- objectName: [a, b]"}, "parameter objects"},
}
