package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Templated files (the class parameter templates): a list of {fileName,
// template, filePermission}, each a Go text/template whose function
// secret "<path>" reads a file this same Mount produces. The language is cut
// down at parse time, by walking the parse tree, to what cannot loop,
// recurse, call out or allocate without bound: no range, define, template,
// block, printf and the other builtins outside a short list; the helpers
// are pure functions of their arguments, so the same inputs give the same
// bytes on every Mount. A render is bounded in output, work and time. No
// error quotes a value: errors name the template, the line and the file a
// template asked for.

// TypeTemplate is the type of a template's synthetic object: its files'
// object_version ids are "template/<path>", and a failed template is
// reported through it (Object.Ref names the template).
const TypeTemplate ObjectType = "template"

// Limits of templates: pod-author input, and rendering runs in the node
// daemon.
const (
	MaxTemplates       = 50        // templates per class
	MaxTemplatesBytes  = 128 << 10 // the templates parameter
	MaxTemplateBytes   = 64 << 10  // one template's text
	MaxTemplateOutput  = 1 << 20   // one template's file (and any value a helper makes)
	MaxTemplatesOutput = 4 << 20   // all template files of one Mount (the driver's default message size)
	// maxTemplateWork bounds the bytes the templates of one Mount read
	// (secret), make (helpers, output) and compare (eq, ne), together.
	maxTemplateWork = 32 << 20
	maxIndent       = 64
)

// templateBudget is the time the templates of one Mount may take together;
// a variable so that tests can shorten it.
var templateBudget = 2 * time.Second

// Template is one validated template of a class. It is part of a parsed
// Spec, shared by every Mount of the class, and never modified.
type Template struct {
	Index    int    // position in the templates list, for messages
	FileName string // as written
	Path     string // the file, from FileName (pathTranslation applies)
	Mode     int32  // filePermission, 0 for the driver's permission
	// Inputs are the paths the template names with secret or exists,
	// sorted and unique.
	Inputs []string

	tmpl *template.Template
	sum  [sha256.Size]byte // of the text
	obj  *Object           // synthetic: File.obj of its file, and its failures
}

// Ref names the template in messages: templates[i] "fileName".
func (t *Template) Ref() string { return fmt.Sprintf("templates[%d] %q", t.Index, t.FileName) }

// rawTemplate is one item of the templates YAML list, as the user wrote it.
type rawTemplate struct {
	FileName       string     `json:"fileName"`
	Template       string     `json:"template"`
	FilePermission permString `json:"filePermission"`
}

// templateFuncs are the functions a template may name: the helpers, then
// the builtins kept. eq and ne are this package's (a template's own
// functions are looked up before the builtins), bounded like the helpers.
var templateFuncs = []string{
	"secret", "exists", "shellQuote", "dotenvQuote", "jsonQuote", "yamlQuote",
	"trim", "indent", "b64enc", "b64dec", "default", "eq", "ne", "and", "or", "not", "len",
}

// refusedBuiltins are text/template's builtins a template may not name, and
// why.
var refusedBuiltins = map[string]string{
	"printf":   "a format width such as %0999999999d allocates without bound; write the text around the action instead",
	"print":    "it concatenates without bound; write the actions next to each other instead",
	"println":  "it concatenates without bound; write the actions next to each other instead",
	"call":     "it calls a function value, and templates call only the listed helpers",
	"index":    "templates read whole files; use jmesPath or keysAsFiles for parts of a value",
	"slice":    "templates read whole files; use jmesPath or keysAsFiles for parts of a value",
	"html":     "it is not one of the quoting helpers; use jsonQuote, yamlQuote, shellQuote or dotenvQuote",
	"js":       "it is not one of the quoting helpers; use jsonQuote, yamlQuote, shellQuote or dotenvQuote",
	"urlquery": "it is not one of the quoting helpers; use jsonQuote, yamlQuote, shellQuote or dotenvQuote",
	"lt":       "only eq and ne compare",
	"le":       "only eq and ne compare",
	"gt":       "only eq and ne compare",
	"ge":       "only eq and ne compare",
}

var templateFuncList = strings.Join(templateFuncs, ", ")

// parseFuncs declares the helpers for parsing; each Mount binds its own
// (renderState.funcs), so these never run.
var parseFuncs = func() template.FuncMap {
	unbound := errors.New("not bound to a Mount")
	s := func(string) (string, error) { return "", unbound }
	return template.FuncMap{
		"secret": s, "exists": func(string) (bool, error) { return false, unbound },
		"shellQuote": s, "dotenvQuote": s, "jsonQuote": s, "yamlQuote": s, "trim": s,
		"indent": func(int, string) (string, error) { return "", unbound },
		"b64enc": s, "b64dec": s,
		"default": func(string, string) (string, error) { return "", unbound },
		"eq":      func(any, ...any) (bool, error) { return false, unbound },
		"ne":      func(any, any) (bool, error) { return false, unbound },
	}
}()

// parseTemplates validates params[ParamTemplates] into spec.Templates, after
// spec.Objects are parsed (a template reads their files) and before
// checkCollisions (which takes the template files in). It also refuses
// file: false in a class without templates.
func parseTemplates(params map[string]string, spec *Spec) error {
	raw := params[ParamTemplates]
	if strings.TrimSpace(raw) == "" {
		for _, o := range spec.Objects {
			if o.NoFile {
				return verr(fmt.Sprintf("objects[%d].file", o.Index), "is false, which keeps the object's files out of the volume so that only templates read them, but this class has no templates; remove file: false, or add a template that reads the object with secret %q", o.File)
			}
		}
		return nil
	}
	if len(raw) > MaxTemplatesBytes {
		return verr(ParamTemplates, "is %d bytes, over the limit of %d; split the class", len(raw), MaxTemplatesBytes)
	}
	if strings.ContainsRune(raw, 0) {
		return verr(ParamTemplates, "contains a NUL byte; remove it")
	}
	var items []rawTemplate
	if err := yaml.UnmarshalStrict([]byte(raw), &items); err != nil {
		return verr(ParamTemplates, "is not a YAML list of templates: %s; write it as\n- fileName: app.env\n  template: |\n    PASSWORD={{ secret \"db-password\" | dotenvQuote }}", cleanYAMLError(err))
	}
	if len(items) == 0 {
		return verr(ParamTemplates, "is an empty list; add a template with fileName and template, or remove the parameter")
	}
	if len(items) > MaxTemplates {
		return verr(ParamTemplates, "has %d items, over the limit of %d; split the class", len(items), MaxTemplates)
	}
	files := classFiles(spec)
	for i := range items {
		t, err := parseTemplate(i, &items[i], spec, files)
		if err != nil {
			return err
		}
		files[t.Path] = fileOwner{tmpl: t}
		spec.Templates = append(spec.Templates, t)
	}
	for _, o := range spec.Objects {
		if o.NoFile && !readByTemplate(o, spec.Templates) {
			spec.Notes = append(spec.Notes, fmt.Sprintf("objects[%d] has file: false but no template reads its files, so it is read for nothing; name it in a template with secret %q, or remove the object", o.Index, o.File))
		}
	}
	return nil
}

// fileOwner is what a static path of the class belongs to.
type fileOwner struct {
	obj  *Object
	dir  bool // the directory of a keysAsFiles, history or directory object
	tmpl *Template
}

// classFiles maps the static paths of the class's objects to their owners.
func classFiles(spec *Spec) map[string]fileOwner {
	m := map[string]fileOwner{}
	for _, o := range spec.Objects {
		m[o.File] = fileOwner{obj: o, dir: o.KeysAsFiles || o.History > 0 || o.Dir != nil}
		for _, j := range o.JMES {
			m[j.Path] = fileOwner{obj: o}
		}
	}
	return m
}

func readByTemplate(o *Object, ts []*Template) bool {
	for _, t := range ts {
		for _, in := range t.Inputs {
			if in == o.File || strings.HasPrefix(in, o.File+"/") {
				return true
			}
			for _, j := range o.JMES {
				if in == j.Path {
					return true
				}
			}
		}
	}
	return false
}

func parseTemplate(i int, r *rawTemplate, spec *Spec, files map[string]fileOwner) (*Template, error) {
	f := func(name string) string { return fmt.Sprintf("templates[%d].%s", i, name) }
	if r.FileName == "" {
		return nil, verr(f("fileName"), "is required: the name of the file the template makes, such as app.env")
	}
	path, err := FileName(f("fileName"), r.FileName, spec.PathSeparator)
	if err != nil {
		return nil, err
	}
	mode, err := r.FilePermission.mode(f("filePermission"))
	if err != nil {
		return nil, err
	}
	t := &Template{Index: i, FileName: r.FileName, Path: path, Mode: mode}
	field := f("template")
	switch {
	case strings.TrimSpace(r.Template) == "":
		return nil, verr(field, "is required: the text of the file, with actions such as {{ secret \"db-password\" | dotenvQuote }}")
	case len(r.Template) > MaxTemplateBytes:
		return nil, verr(field, "%s is %d bytes, over the limit of %d; split it into several templates", t.quoted(), len(r.Template), MaxTemplateBytes)
	case !utf8.ValidString(r.Template):
		return nil, verr(field, "%s is not valid UTF-8", t.quoted())
	}
	name := fmt.Sprintf("templates[%d]", i)
	tmpl, err := template.New(name).Funcs(parseFuncs).Parse(r.Template)
	if err != nil {
		return nil, verr(field, "%s %s", t.quoted(), parseMessage(name, err))
	}
	w := &treeWalker{t: t, text: r.Template, files: files}
	for _, d := range tmpl.Templates() {
		if d.Name() != name {
			line := 1
			if d.Tree != nil && d.Root != nil {
				line = w.line(d.Root)
			}
			return nil, verr(field, "%s line %d: define and block are not available (a template is one file, and named templates allow recursion); write the text in place", t.quoted(), line)
		}
	}
	if tmpl.Tree == nil || tmpl.Root == nil {
		return nil, verr(field, "%s is empty", t.quoted())
	}
	if err := w.list(tmpl.Root); err != nil {
		return nil, verr(field, "%s %s", t.quoted(), err.Error())
	}
	t.Inputs = slices.Sorted(maps.Keys(w.inputs))
	t.tmpl, t.sum = tmpl, sha256.Sum256([]byte(r.Template))
	t.obj = &Object{Index: i, Name: r.FileName, Type: TypeTemplate, File: path, Mode: mode, fileID: string(TypeTemplate) + "/" + path}
	return t, nil
}

// quoted names the template in its own field's messages: (fileName "x").
func (t *Template) quoted() string {
	return "(fileName " + strconv.Quote(textutil.Truncate(t.FileName, 64)) + ")"
}

// parseMessage turns text/template's "template: NAME:LINE: msg" into
// "line LINE: msg", and says which functions exist when one does not.
func parseMessage(name string, err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	msg = strings.TrimPrefix(msg, "template: "+name+":")
	if n := leadingDigits(msg); n > 0 && strings.HasPrefix(msg[n:], ": ") {
		msg = "line " + msg[:n] + ": " + msg[n+2:]
	}
	if strings.Contains(msg, "function ") && strings.Contains(msg, " not defined") {
		msg += "; the functions are " + templateFuncList
	}
	return textutil.Truncate(msg, 400)
}

func leadingDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// treeWalker refuses, node by node, what a template may not do, and
// collects the paths it reads.
type treeWalker struct {
	t      *Template
	text   string
	files  map[string]fileOwner
	inputs map[string]bool
}

func (w *treeWalker) line(n parse.Node) int {
	p := int(n.Position())
	if p < 0 || p > len(w.text) {
		return 1
	}
	return 1 + strings.Count(w.text[:p], "\n")
}

func (w *treeWalker) errorf(n parse.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", w.line(n), fmt.Sprintf(format, args...))
}

func (w *treeWalker) list(l *parse.ListNode) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := w.node(n); err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWalker) node(n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		return w.pipe(n.Pipe)
	case *parse.IfNode:
		return w.branch(&n.BranchNode)
	case *parse.WithNode:
		return w.branch(&n.BranchNode)
	case *parse.RangeNode:
		return w.errorf(n, "range is not available: a template may not loop; write each line out")
	case *parse.TemplateNode:
		return w.errorf(n, "template and block are not available (named templates allow recursion); write the text in place")
	case *parse.BreakNode, *parse.ContinueNode:
		return w.errorf(n, "break and continue are not available")
	}
	return w.errorf(n, "this action is not available")
}

func (w *treeWalker) branch(b *parse.BranchNode) error {
	if err := w.pipe(b.Pipe); err != nil {
		return err
	}
	if err := w.list(b.List); err != nil {
		return err
	}
	return w.list(b.ElseList)
}

func (w *treeWalker) pipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for i, c := range p.Cmds {
		if err := w.command(c, i); err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWalker) command(c *parse.CommandNode, pos int) error {
	for j, a := range c.Args {
		switch a := a.(type) {
		case *parse.IdentifierNode:
			if why, ok := refusedBuiltins[a.Ident]; ok {
				return w.errorf(a, "%s is not available: %s; the functions are %s", a.Ident, why, templateFuncList)
			}
			if !isTemplateFunc(a.Ident) {
				return w.errorf(a, "function %q is not available; the functions are %s", a.Ident, templateFuncList)
			}
			if a.Ident == "secret" || a.Ident == "exists" {
				if err := w.read(c, a, j, pos); err != nil {
					return err
				}
			}
		case *parse.PipeNode:
			if err := w.pipe(a); err != nil {
				return err
			}
		case *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode, *parse.DotNode:
		case *parse.VariableNode:
			if len(a.Ident) > 1 {
				return w.errorf(a, "fields (%s) are not available: values are strings; read files with secret", a.String())
			}
		case *parse.FieldNode, *parse.ChainNode:
			return w.errorf(a, "fields (%s) are not available: a template has no data; read files with secret \"<file>\"", textutil.Truncate(a.String(), 32))
		default:
			return w.errorf(a, "%q is not available", textutil.Truncate(a.String(), 32))
		}
	}
	return nil
}

func isTemplateFunc(name string) bool {
	for _, f := range templateFuncs {
		if f == name {
			return true
		}
	}
	return false
}

// read checks one secret or exists call: the first command of its pipeline
// (nothing piped into it), with one quoted path that names a file of the
// class, so a template's inputs are known when the class is parsed.
func (w *treeWalker) read(c *parse.CommandNode, a *parse.IdentifierNode, arg, pos int) error {
	fn := a.Ident
	s, ok := (*parse.StringNode)(nil), false
	if arg == 0 && pos == 0 && len(c.Args) == 2 {
		s, ok = c.Args[1].(*parse.StringNode)
	}
	if !ok {
		return w.errorf(a, "%s takes one quoted file path, as in {{ %s \"db-password\" }} (nothing piped into it, no variable)", fn, fn)
	}
	p := s.Text
	own, known := w.files[p]
	switch {
	case known && own.tmpl != nil:
		return w.errorf(a, "%s %q names the file of %s; a template reads the files of objects only", fn, textutil.Truncate(p, 64), own.tmpl.Ref())
	case known && own.dir && fn == "secret":
		return w.errorf(a, "secret %q names the directory of %s; name a file in it, such as %q", textutil.Truncate(p, 64), own.obj.Ref(), textutil.Truncate(p, 64)+"/<key>")
	case !known && !w.underDir(p):
		return w.errorf(a, "%s %q names no file of this class; name a file as it appears in the volume (the objectAlias, else the objectName after pathTranslation; a jmesPath objectAlias; <dir>/<key> of keysAsFiles; <dir>/<n> of a history)", fn, textutil.Truncate(p, 64))
	}
	if w.inputs == nil {
		w.inputs = map[string]bool{}
	}
	w.inputs[p] = true
	return nil
}

// underDir reports whether p lies under an object's directory: a key,
// version or listed file is named only at each Mount.
func (w *treeWalker) underDir(p string) bool {
	for d := parentDir(p); d != ""; d = parentDir(d) {
		if own, ok := w.files[d]; ok && own.dir {
			return true
		}
	}
	return false
}

// renderTemplates renders every template of spec from files (all the
// object files of one Mount, File.obj set), drops the files of objects with
// file: false, and appends the template files. A failed template fails the
// Mount: a *MountError naming every failed template, never a value.
func renderTemplates(spec *Spec, files []File) ([]File, error) {
	if len(spec.Templates) == 0 {
		return files, nil
	}
	st := newRenderState(files)
	out := make([]File, 0, len(spec.Templates))
	me := &MountError{Total: len(spec.Templates)}
	total := 0
	for _, t := range spec.Templates {
		f, err := t.render(st)
		if err == nil && total+len(f.Data) > MaxTemplatesOutput {
			err = &Error{Kind: KindInvalid, Message: fmt.Sprintf("the template files of this Mount would hold over %d bytes (%d MiB) together; make them smaller or move some to another volume", MaxTemplatesOutput, MaxTemplatesOutput>>20)}
		}
		if err != nil {
			me.Failures = append(me.Failures, ObjectError{Object: t.obj, Err: err})
			continue
		}
		total += len(f.Data)
		out = append(out, f)
	}
	if len(me.Failures) > 0 {
		return nil, me
	}
	n := 0
	for _, f := range files {
		if o := f.obj; o != nil && (o.NoFile || o.parent != nil && o.parent.NoFile) {
			continue
		}
		files[n] = f
		n++
	}
	clear(files[n:])
	return append(files[:n], out...), nil
}

// renderState is what the templates of one Mount share: the files, the
// strings made of them, the budgets. read is the current template's inputs.
type renderState struct {
	files    map[string]*File
	strs     map[string]string
	read     map[string]string // path -> "<id>\x00<version>", or "" when absent
	deadline time.Time
	work     int
	funcs    template.FuncMap
}

func newRenderState(files []File) *renderState {
	st := &renderState{
		files:    make(map[string]*File, len(files)),
		strs:     map[string]string{},
		deadline: time.Now().Add(templateBudget),
		work:     maxTemplateWork,
	}
	for i := range files {
		st.files[files[i].Path] = &files[i]
	}
	st.funcs = template.FuncMap{
		"secret": st.secret, "exists": st.exists,
		"shellQuote": st.shellQuote, "dotenvQuote": st.dotenvQuote, "jsonQuote": st.jsonQuote, "yamlQuote": st.yamlQuote,
		"trim": st.trim, "indent": st.indent, "b64enc": st.b64enc, "b64dec": st.b64dec, "default": st.dflt,
		"eq": st.eq, "ne": st.ne,
	}
	return st
}

// Budget errors: reported without a line when they stop the writer.
var (
	errTemplateWork = fmt.Errorf("the templates of this Mount read, make and compare over %d bytes (%d MiB) together; simplify them", maxTemplateWork, maxTemplateWork>>20)
	errOutputLimit  = fmt.Errorf("the file would be over %d bytes (%d MiB), the limit of one template's output; make it smaller or split it", MaxTemplateOutput, MaxTemplateOutput>>20)
)

// charge takes n bytes of work from the budget and checks the clock.
func (st *renderState) charge(n int) error {
	st.work -= n
	if st.work < 0 {
		return errTemplateWork
	}
	if time.Now().After(st.deadline) {
		return fmt.Errorf("the templates of this Mount took longer than %v together; simplify them", templateBudget)
	}
	return nil
}

// made charges a value a helper is about to make of n bytes, refusing one
// over the output limit before it is allocated.
func (st *renderState) made(fn string, in, n int) error {
	if n > MaxTemplateOutput {
		return fmt.Errorf("%s: the result would be %d bytes, over the %d MiB limit of a template's output", fn, n, MaxTemplateOutput>>20)
	}
	return st.charge(in + n)
}

// limitWriter collects one template's output up to MaxTemplateOutput and
// stops the execution (its error ends Execute) past it or past a budget.
type limitWriter struct {
	buf []byte
	st  *renderState
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > MaxTemplateOutput {
		return 0, errOutputLimit
	}
	if err := w.st.charge(len(p)); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (t *Template) render(st *renderState) (File, error) {
	st.read = map[string]string{}
	fail := func(msg string) (File, error) {
		return File{}, &Error{Kind: KindInvalid, Message: msg}
	}
	if err := st.charge(0); err != nil {
		return fail(err.Error())
	}
	c, err := t.tmpl.Clone()
	if err != nil {
		return fail("the template could not be prepared")
	}
	c.Funcs(st.funcs)
	w := &limitWriter{st: st}
	if err := c.Execute(w, nil); err != nil {
		return fail(st.scrub(execMessage(t.tmpl.Name(), err)))
	}
	return File{Path: t.Path, ID: t.obj.fileID, Data: Bytes(w.buf), Version: t.version(st.read), Mode: t.Mode, obj: t.obj}, nil
}

// execRe reads text/template's "template: NAME:LINE:COL: executing "NAME"
// at <ACTION>: MESSAGE".
var execRe = regexp.MustCompile(`(?s)^template: [^:]*:(\d+):\d+: executing "[^"]*" at <(.*?)>: (.*)$`)

// execMessage says where a render failed: the line, the action (template
// text, not a value) and why. A helper's error wraps a message that never
// holds a value; text/template's own messages name types, not values.
func execMessage(name string, err error) string {
	msg := err.Error()
	var ee template.ExecError
	if !errors.As(err, &ee) {
		return msg // a budget, from the writer
	}
	m := execRe.FindStringSubmatch(msg)
	if m == nil {
		return "the template failed: " + textutil.Truncate(strings.TrimPrefix(msg, "template: "+name+": "), 300)
	}
	why := strings.TrimPrefix(m[3], "error calling ")
	if fn, rest, ok := strings.Cut(why, ": "); ok && strings.HasPrefix(rest, fn) {
		why = rest // a helper's message names the helper itself
	}
	return fmt.Sprintf("line %s: at {{%s}}: %s", m[1], textutil.Truncate(m[2], 64), textutil.Truncate(why, 300))
}

var lineRe = regexp.MustCompile(`^line \d+`)

// scrub withholds a message that holds a value the template read: no
// message built here should, and this makes sure.
func (st *renderState) scrub(msg string) string {
	for p := range st.read {
		if f := st.files[p]; f != nil && len(f.Data) >= 6 && strings.Contains(msg, string(f.Data)) {
			line := ""
			if m := lineRe.FindString(msg); m != "" {
				line = m + ": "
			}
			return line + "the template failed (the message is withheld: it would quote a value)"
		}
	}
	return msg
}

// version is the template file's object version: a short hash of the
// text and of the id and version of every file the render read (or found
// absent), in path order. The same inputs give the same version; a new
// upstream version of any input gives a new one.
func (t *Template) version(read map[string]string) string {
	h := sha256.New()
	h.Write(t.sum[:])
	for _, p := range slices.Sorted(maps.Keys(read)) {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
		v := read[p]
		h.Write([]byte(strconv.Itoa(len(v))))
		h.Write([]byte{':'})
		h.Write([]byte(v))
	}
	return "tpl-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// The helpers. Each is a pure function of its arguments (secret and exists
// of the Mount's files), charges the work budget, refuses a result over the
// output limit before making it, and never quotes a value in an error.

func (st *renderState) secret(p string) (string, error) {
	f := st.files[p]
	if f == nil {
		return "", fmt.Errorf("secret %q: no such file in this Mount (a missing optional object, a key or version the value does not have, or a name that differs after pathTranslation); guard it with {{ if exists %q }}", textutil.Truncate(p, 64), textutil.Truncate(p, 64))
	}
	st.read[p] = f.ID + "\x00" + f.Version
	s, ok := st.strs[p]
	if !ok {
		s = string(f.Data)
		st.strs[p] = s
	}
	return s, st.charge(len(s))
}

func (st *renderState) exists(p string) (bool, error) {
	f := st.files[p]
	if f == nil {
		st.read[p] = ""
		return false, st.charge(0)
	}
	st.read[p] = f.ID + "\x00" + f.Version
	return true, st.charge(0)
}

// shellQuote quotes for POSIX sh: the value in single quotes, each single
// quote in it closed, escaped and reopened.
func (st *renderState) shellQuote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("shellQuote: the value (%d bytes) holds a NUL byte, which no shell string can hold; b64enc it", len(s))
	}
	if err := st.made("shellQuote", len(s), len(s)+2+3*strings.Count(s, "'")); err != nil {
		return "", err
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// dotenvQuote quotes a .env value: double quotes, with \ " $ and `
// escaped by a backslash, and newlines kept inside the quotes, which POSIX
// sh (set -a; . ./.env) and the dotenv readers that take multi-line
// double-quoted values read back exactly.
func (st *renderState) dotenvQuote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("dotenvQuote: the value (%d bytes) holds a NUL byte, which no environment variable can hold; b64enc it", len(s))
	}
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', '"', '$', '`':
			n++
		}
	}
	if err := st.made("dotenvQuote", len(s), n); err != nil {
		return "", err
	}
	b := make([]byte, 0, n)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"', '$', '`':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"')), nil
}

// jsonQuote makes a JSON string: ", \ and control characters escaped, and
// U+2028, U+2029 too (JavaScript reads them as line ends); nothing else is
// (no HTML escaping), so the output is the value plus what JSON needs.
func (st *renderState) jsonQuote(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("jsonQuote: the value (%d bytes) is not valid UTF-8, which a JSON string cannot hold; b64enc it", len(s))
	}
	return st.escaped("jsonQuote", s, func(b []byte, r rune) ([]byte, bool) {
		switch r {
		case '"':
			return append(b, '\\', '"'), true
		case '\\':
			return append(b, '\\', '\\'), true
		case '\n':
			return append(b, '\\', 'n'), true
		case '\r':
			return append(b, '\\', 'r'), true
		case '\t':
			return append(b, '\\', 't'), true
		case '\b':
			return append(b, '\\', 'b'), true
		case '\f':
			return append(b, '\\', 'f'), true
		case '\u2028', '\u2029':
			return fmt.Appendf(b, `\u%04x`, r), true
		}
		if r < 0x20 {
			return fmt.Appendf(b, `\u%04x`, r), true
		}
		return b, false
	})
}

// yamlQuote makes a YAML double-quoted scalar: ", \ and every character
// YAML does not print (controls, DEL, C1, U+2028, U+2029, U+FEFF, U+FFFE,
// U+FFFF) escaped, so no line break or tab is folded away.
func (st *renderState) yamlQuote(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("yamlQuote: the value (%d bytes) is not valid UTF-8, which a YAML string cannot hold; b64enc it", len(s))
	}
	return st.escaped("yamlQuote", s, func(b []byte, r rune) ([]byte, bool) {
		switch r {
		case '"':
			return append(b, '\\', '"'), true
		case '\\':
			return append(b, '\\', '\\'), true
		case 0:
			return append(b, '\\', '0'), true
		case '\a':
			return append(b, '\\', 'a'), true
		case '\b':
			return append(b, '\\', 'b'), true
		case '\t':
			return append(b, '\\', 't'), true
		case '\n':
			return append(b, '\\', 'n'), true
		case '\v':
			return append(b, '\\', 'v'), true
		case '\f':
			return append(b, '\\', 'f'), true
		case '\r':
			return append(b, '\\', 'r'), true
		case 0x1b:
			return append(b, '\\', 'e'), true
		case 0x85:
			return append(b, '\\', 'N'), true
		case '\u2028':
			return append(b, '\\', 'L'), true
		case '\u2029':
			return append(b, '\\', 'P'), true
		case '\ufeff', '\ufffe', '\uffff':
			return fmt.Appendf(b, `\u%04X`, r), true
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return fmt.Appendf(b, `\x%02X`, r), true
		}
		return b, false
	})
}

// escaped quotes s with double quotes, escaping each rune esc handles; the
// result is measured, and checked against the output limit, before it is
// made.
func (st *renderState) escaped(fn, s string, esc func([]byte, rune) ([]byte, bool)) (string, error) {
	n := escapedLen(s, esc)
	if err := st.made(fn, len(s), n); err != nil {
		return "", err
	}
	b := make([]byte, 0, n)
	b = append(b, '"')
	for _, r := range s {
		var ok bool
		if b, ok = esc(b, r); !ok {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(append(b, '"')), nil
}

func escapedLen(s string, esc func([]byte, rune) ([]byte, bool)) int {
	var tmp [16]byte
	n := 2
	for _, r := range s {
		if e, ok := esc(tmp[:0], r); ok {
			n += len(e)
		} else {
			n += utf8.RuneLen(r)
		}
	}
	return n
}

func (st *renderState) trim(s string) (string, error) {
	return strings.TrimSpace(s), st.charge(len(s))
}

// indent puts n spaces before every line, the first included:
// {{ secret "tls.crt" | indent 4 }} under a YAML key.
func (st *renderState) indent(n int, s string) (string, error) {
	if n < 0 || n > maxIndent {
		return "", fmt.Errorf("indent: %d spaces is out of range; use 0 to %d", n, maxIndent)
	}
	lines := 1 + strings.Count(s, "\n")
	if err := st.made("indent", len(s), len(s)+n*lines); err != nil {
		return "", err
	}
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad), nil
}

func (st *renderState) b64enc(s string) (string, error) {
	if err := st.made("b64enc", len(s), base64.StdEncoding.EncodedLen(len(s))); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

// b64dec decodes standard base64, padded or not, ignoring surrounding
// whitespace and line breaks.
func (st *renderState) b64dec(s string) (string, error) {
	if err := st.charge(len(s)); err != nil {
		return "", err
	}
	out, err := decodeBase64(base64.StdEncoding, bytes.TrimSpace([]byte(s)))
	if err != nil {
		return "", fmt.Errorf("b64dec: the value (%d bytes) is not valid base64", len(s))
	}
	return string(out), st.charge(len(out))
}

// dflt is default: {{ secret "x" | default "none" }} gives "none" for an
// empty file.
func (st *renderState) dflt(d, s string) (string, error) {
	if s == "" {
		return d, st.charge(0)
	}
	return s, st.charge(0)
}

// eq and ne replace text/template's builtins (a template's own functions
// come first) to charge the bytes they compare. They compare strings,
// booleans and numbers of one kind, as the builtins do.
func (st *renderState) eq(a any, bs ...any) (bool, error) {
	if len(bs) == 0 {
		return false, errors.New("eq: missing argument for comparison")
	}
	for _, b := range bs {
		ok, err := st.equal(a, b)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (st *renderState) ne(a, b any) (bool, error) {
	ok, err := st.equal(a, b)
	return !ok, err
}

func (st *renderState) equal(a, b any) (bool, error) {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	ka, kb := basicKind(va), basicKind(vb)
	if ka == kindBad || kb == kindBad {
		return false, errors.New("invalid type for comparison: compare strings, booleans or numbers")
	}
	if ka != kb {
		if ka == kindInt && kb == kindUint {
			return va.Int() >= 0 && uint64(va.Int()) == vb.Uint(), st.charge(0) //nolint:gosec // not negative
		}
		if ka == kindUint && kb == kindInt {
			return vb.Int() >= 0 && va.Uint() == uint64(vb.Int()), st.charge(0) //nolint:gosec // not negative
		}
		return false, errors.New("incompatible types for comparison")
	}
	switch ka {
	case kindString:
		if err := st.charge(min(va.Len(), vb.Len())); err != nil {
			return false, err
		}
		return va.String() == vb.String(), nil
	case kindBool:
		return va.Bool() == vb.Bool(), st.charge(0)
	case kindInt:
		return va.Int() == vb.Int(), st.charge(0)
	case kindUint:
		return va.Uint() == vb.Uint(), st.charge(0)
	}
	return va.Float() == vb.Float(), st.charge(0)
}

const (
	kindBad = iota
	kindString
	kindBool
	kindInt
	kindUint
	kindFloat
)

func basicKind(v reflect.Value) int {
	if !v.IsValid() {
		return kindBad
	}
	switch v.Kind() {
	case reflect.String:
		return kindString
	case reflect.Bool:
		return kindBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kindInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return kindUint
	case reflect.Float32, reflect.Float64:
		return kindFloat
	}
	return kindBad
}

// noun is what a MountError counts: templates when its failures are
// templates' (renderTemplates), else objects.
func (e *MountError) noun() string {
	if len(e.Failures) > 0 && e.Failures[0].Object != nil && e.Failures[0].Object.Type == TypeTemplate {
		return "templates"
	}
	return "objects"
}
