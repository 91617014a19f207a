package integration

// The binary's command line as a newcomer meets it: the program's help,
// each command's own flags and defaults, an unknown command, and the
// doctor command that dev prints.

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var commands = []string{"serve", "mount", "dev", "doctor", "version"}

// exitOf is the exit code of a finished command (0 for no error).
func exitOf(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// runSplit runs the binary and returns stdout and stderr apart.
func runSplit(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(providerBin, args...)
	cmd.Env = []string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"}
	var o, e syncBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return o.String(), e.String(), exitOf(t, err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not finish", args)
	}
	return "", "", 0
}

// helpFlags reads the flags a -h output lists, with the line that follows
// each (its help text and default).
func helpFlags(out string) map[string]string {
	m := map[string]string{}
	lines := strings.Split(out, "\n")
	re := regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)`)
	for i, l := range lines {
		if f := re.FindStringSubmatch(l); f != nil {
			next := ""
			if i+1 < len(lines) {
				next = lines[i+1]
			}
			m[f[1]] = l + "\n" + next
		}
	}
	return m
}

// The program's help lists the commands, whichever way it is asked for,
// and is not serve's flag list.
func TestHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		stdout, stderr, code := runSplit(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
		if strings.TrimSpace(stderr) != "" {
			t.Errorf("%v: stderr %.200q…, want nothing", args, stderr)
		}
		for _, c := range commands {
			if !regexp.MustCompile(`(?m)^  ` + c + ` `).MatchString(stdout) {
				t.Errorf("%v: the help does not list %q:\n%s", args, c, stdout)
			}
		}
		if n := len(helpFlags(stdout + stderr)); n > 0 {
			t.Errorf("%v: the program's help lists %d flags (serve's?)", args, n)
		}
	}
	// help <command> is that command's -h.
	_, stderr, code := runSplit(t, "help", "dev")
	if code != 0 || helpFlags(stderr)["once"] == "" {
		t.Errorf("help dev: exit %d, no --once:\n%s", code, stderr)
	}
}

func TestUnknownCommandListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"srve"}, {"help", "srve"}} {
		stdout, stderr, code := runSplit(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr, `unknown command "srve"`) {
			t.Errorf("%v: stderr does not name the command:\n%s", args, stderr)
		}
		for _, c := range commands {
			if !regexp.MustCompile(`(?m)^  ` + c + ` `).MatchString(stderr) {
				t.Errorf("%v: does not list %q:\n%s%s", args, c, stdout, stderr)
			}
		}
	}
}

// Each command's -h shows the flags it uses, with its own defaults.
func TestEachCommandShowsItsOwnFlagsAndDefaults(t *testing.T) {
	help := map[string]map[string]string{}
	for _, c := range []string{"serve", "mount", "dev", "doctor"} {
		stdout, stderr, code := runSplit(t, c, "-h")
		if code != 0 || strings.Contains(stderr, "error") {
			t.Errorf("%s -h: exit %d:\n%s%s", c, code, stdout, stderr)
		}
		help[c] = helpFlags(stdout + stderr)
		if len(help[c]) < 5 {
			t.Fatalf("%s -h lists %d flags:\n%s%s", c, len(help[c]), stdout, stderr)
		}
	}
	// Help text of flag f of command c, which must be listed.
	has := func(c, f string) string {
		t.Helper()
		h, ok := help[c][f]
		if !ok {
			t.Errorf("%s -h does not list --%s", c, f)
		}
		return h
	}
	lacks := func(c string, fs ...string) {
		t.Helper()
		for _, f := range fs {
			if _, ok := help[c][f]; ok {
				t.Errorf("%s -h lists --%s, which %s does not use", c, f, c)
			}
		}
	}

	if h := has("serve", "cache-ttl"); !strings.Contains(h, "(default 2m0s)") {
		t.Errorf("serve --cache-ttl: %s", h)
	}
	for _, f := range []string{"provider-volume", "shutdown-grace", "metrics-addr", "health-addr", "max-response-bytes", "fuse-mountpoint", "policy"} {
		has("serve", f)
	}

	// dev: its 10s TTL, its temporary directories, none of serve's
	// socket-less operations or of the endpoints the emulator provides.
	if h := has("dev", "cache-ttl"); !strings.Contains(h, "(default 10s)") || strings.Contains(h, "2m") {
		t.Errorf("dev --cache-ttl does not show dev's 10s default: %s", h)
	}
	for _, f := range []string{"target", "provider-volume"} {
		if h := has("dev", f); !strings.Contains(h, "temporary directory") || strings.Contains(h, "/var/run") {
			t.Errorf("dev --%s does not say it is a temporary directory: %s", f, h)
		}
	}
	for _, f := range []string{"once", "no-fuse", "emulator-addr", "remount-every", "doctor", "print-class"} {
		has("dev", f)
	}
	lacks("dev", "metrics-addr", "health-addr", "metrics-object-labels", "shutdown-grace", "max-response-bytes",
		"fuse-mountpoint", "fuse-class", "region", "kms-endpoint", "oos-endpoint", "sts-endpoint", "deny-provider-identity")

	// doctor: no cache, socket, policy, operations or FUSE flags.
	for _, f := range []string{"class", "timeout", "region", "kms-endpoint", "oos-endpoint", "sts-endpoint", "v"} {
		has("doctor", f)
	}
	lacks("doctor", "provider-volume", "shutdown-grace", "max-response-bytes", "metrics-addr", "health-addr",
		"metrics-object-labels", "cache-ttl", "max-stale", "policy", "policy-reload-interval")
	for f := range help["doctor"] {
		if strings.HasPrefix(f, "fuse-") {
			t.Errorf("doctor -h lists --%s", f)
		}
	}

	for _, f := range []string{"mountpoint", "class", "uid", "gid", "cache-ttl"} {
		has("mount", f)
	}

	// version has no flags: its -h says so.
	stdout, _, code := runSplit(t, "version", "-h")
	if code != 0 || !strings.Contains(stdout, "no flags") {
		t.Errorf("version -h: exit %d:\n%s", code, stdout)
	}
}

// doctor still takes serve's whole command line (its help just doesn't list
// the flags it ignores): every flag serve -h lists, with a value of its type.
func TestDoctorAcceptsServesCommandLine(t *testing.T) {
	e := startEmulator(t, nil)
	out, _ := runBinary(t, "serve", "-h")
	doctorOwn := map[string]bool{}
	dh, _ := runBinary(t, "doctor", "-h")
	for f := range helpFlags(dh) {
		doctorOwn[f] = true
	}
	var args []string
	for name, h := range helpFlags(out) {
		if doctorOwn[name] {
			continue
		}
		typ := strings.Fields(strings.SplitN(h, "\n", 2)[0])
		switch {
		case len(typ) == 1:
			args = append(args, "--"+name)
		case typ[1] == "duration":
			args = append(args, "--"+name+"=3s")
		case typ[1] == "int" || typ[1] == "float":
			args = append(args, "--"+name+"=3")
		default: // a file that does not exist: ignored, never read
			args = append(args, "--"+name+"=/nonexistent/"+name)
		}
	}
	if len(args) < 8 {
		t.Fatalf("only %d serve-only flags found: %v", len(args), args)
	}
	path := writeClass(t, class("c", "    region: cn-hangzhou\n    objects: |\n      - objectName: demo-db\n"))
	got, code := runDoctorBin(t, e, nil, append(args, "--class", path, "--region", "cn-hangzhou")...)
	if code != 0 || !strings.Contains(got, "All 1 object readable") {
		t.Errorf("doctor with serve's flags %v: exit %d:\n%s", args, code, got)
	}
}

// printedCommand finds the first command line dev printed (not a comment,
// not a heading ending in ":") that contains want.
func printedCommand(t testing.TB, out, want string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); !strings.HasPrefix(l, "#") && !strings.HasSuffix(l, ":") && strings.Contains(l, want) {
			return l
		}
	}
	t.Fatalf("dev printed no command with %q:\n%s", want, out)
	return ""
}

// runShell runs a printed command line as the user would paste it.
func runShell(t testing.TB, line string) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"}
	out, err, timedOut := runBounded(cmd, 60*time.Second)
	if timedOut {
		t.Fatalf("%s did not finish:\n%s", line, out)
	}
	return out, exitOf(t, err)
}

// dev --once prints a doctor command; run after dev has exited (its
// emulator and temporary files gone), it works.
func TestDevPrintsADoctorCommandThatWorksAfterDevExits(t *testing.T) {
	out, err := runBinary(t, "dev", "--once", "--no-fuse")
	if err != nil {
		t.Fatalf("dev --once: %v\n%s", err, out)
	}
	line := printedCommand(t, out, "doctor")
	got, code := runShell(t, line)
	if code != 0 {
		t.Fatalf("%s: exit %d after dev exited:\n%s", line, code, got)
	}
	for _, want := range []string{"Class demo", "demo-db", "demo-tls-key", "test ", "All 3 objects readable"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s: output lacks %q:\n%s", line, want, got)
		}
	}
}

// The doctor command against a running dev's emulator works while dev
// runs, and once dev has exited it fails saying dev must be running.
func TestDevLiveDoctorCommandWhileDevRunsAndAfter(t *testing.T) {
	cmd := exec.Command(providerBin, "dev", "--remount-every", "0", "--no-fuse")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}
	}
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Serving until Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("dev never came up:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	live := printedCommand(t, out.String(), "doctor --class")
	got, code := runShell(t, live)
	if code != 0 || !strings.Contains(got, "All 3 objects readable") {
		t.Fatalf("%s: exit %d while dev runs:\n%s", live, code, got)
	}

	stop()
	got, code = runShell(t, live)
	if code != 1 {
		t.Fatalf("%s: exit %d after dev exited, want 1:\n%s", live, code, got)
	}
	if !strings.Contains(got, "dev must be running") || !strings.Contains(got, "dev --doctor") {
		t.Errorf("after dev exited, doctor does not say dev must be running:\n%s", got)
	}
	// Next to it, dev printed the command that works after it exits
	// (TestDevPrintsADoctorCommandThatWorksAfterDevExits runs it).
	printedCommand(t, out.String(), " dev --doctor")
}
