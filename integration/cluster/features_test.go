package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The objects of testDirectoriesTemplatesOptionalEvents. The emulator lives as long as the
// suite, so every name is this step's own, and every value is distinctive
// enough that finding it in an Event means a leak, not a coincidence.
const (
	featPath      = "/e2e/app/"
	featOptional  = "e2e-optional"
	featPayKey    = "e2e-pay-key"
	featPayToken  = "e2e-pay-token"
	featPayDev    = "e2e-pay-dev"
	featDBPass    = featPath + "db-password"
	featNewParam  = featPath + "feature-flag"
	featClassName = "features"
	featPod       = "features"
)

// featClass is a class with each of the newest object kinds: a directory by
// OOS path, a directory by KMS tags, an optional KMS secret, and a template
// that renders a .env from a file of each directory.
const featClass = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: ` + featClassName + `
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - objectPath: ` + featPath + `
        objectType: oos
        objectAlias: cfg
      - objectTags: {team: e2e, env: prod}
        objectAlias: pay
      - objectName: ` + featOptional + `
        optional: true
    templates: |
      - fileName: app.env
        template: |
          DB_PASSWORD={{ secret "cfg/db-password" | dotenvQuote }}
          PAY_KEY={{ secret "pay/` + featPayKey + `" | dotenvQuote }}
`

// testDirectoriesTemplatesOptionalEvents: directories by OOS path and by KMS tags, an optional
// object and a template, mounted through kubelet and the driver with the
// chart's rotation events on; then an upstream rotation, a new parameter
// under the path and the optional object's creation reach the running
// pod's files, and the provider posts SecretRotated Events on the pod that
// name objects and versions, never a value.
//
// It upgrades the release to events.enable=true with the worker role the
// sequence is at. The next step (FUSEViewAndUninstall) upgrades with its own
// complete values, which turns the events off again.
func testDirectoriesTemplatesOptionalEvents(t *testing.T) {
	s.install(t, s.repoFile("examples/values-worker-role.yaml"),
		s.writeValues(t, "events-values.yaml", map[string]any{"events": map[string]any{"enable": true}}))
	checkEventsRelease(t)

	// Upstream: three parameters under the path (and one beside it), two
	// secrets with both tags, one with the wrong env, and no optional one.
	values := map[string]string{
		featPath + "db-host":   "db-host-e2e-value",
		featDBPass:             `pa"ss $HOME word-e2e-v1`,
		featPath + "log-level": "log-level-e2e-value",
		"/e2e/beside/ignored":  "beside-e2e-value",
		featPayKey:             `k$y "quoted" pay-e2e-v1`,
		featPayToken:           "pay-token-e2e-value",
		featPayDev:             "pay-dev-e2e-value",
	}
	versions := map[string]string{}
	for _, name := range []string{featPath + "db-host", featDBPass, featPath + "log-level", "/e2e/beside/ignored"} {
		v, err := s.emu.PutParameter(name, values[name])
		if err != nil {
			t.Fatal(err)
		}
		versions[name] = fmt.Sprint(v)
	}
	for name, env := range map[string]string{featPayKey: "prod", featPayToken: "prod", featPayDev: "dev"} {
		v, err := s.emu.PutSecretValue(name, []byte(values[name]), false)
		if err != nil {
			t.Fatal(err)
		}
		versions[name] = v
		if err := s.emu.SetSecretTags(name, map[string]string{"team": "e2e", "env": env}); err != nil {
			t.Fatal(err)
		}
	}
	s.emu.DeleteSecret(featOptional)

	ns := s.namespace(t)
	s.applyYAML(t, ns, featClass)
	created := s.pod(t, ns, podSpec{name: featPod, class: featClassName})
	s.waitRunning(t, ns, featPod, 2*time.Minute)

	const mnt = "/mnt/secrets-store/"
	wantEnv := func(dbPass string) string {
		return "DB_PASSWORD=" + dotenvQuoted(dbPass) + "\nPAY_KEY=" + dotenvQuoted(values[featPayKey]) + "\n"
	}
	for dir, want := range map[string]string{
		"":    "app.env cfg pay", // no e2e-optional: it does not exist yet
		"cfg": "db-host db-password log-level",
		"pay": featPayKey + " " + featPayToken, // not the dev one
	} {
		if got := strings.Join(s.ls(t, ns, featPod, mnt+dir), " "); got != want {
			t.Errorf("ls %s%s = %q, want %q", mnt, dir, got, want)
		}
	}
	for file, want := range map[string]string{
		"cfg/db-host":         values[featPath+"db-host"],
		"cfg/db-password":     values[featDBPass],
		"cfg/log-level":       values[featPath+"log-level"],
		"pay/" + featPayKey:   values[featPayKey],
		"pay/" + featPayToken: values[featPayToken],
		"app.env":             wantEnv(values[featDBPass]),
	} {
		if got := s.readFile(t, ns, featPod, mnt+file); got != want {
			t.Errorf("%s%s = %q, want %q", mnt, file, got, want)
		}
	}
	// The way the docs say to use it: the shell reads the values back exactly.
	sourced, err := s.exec(ns, featPod, "sh", "-c", `set -a; . `+mnt+`app.env; printf '%s|%s' "$DB_PASSWORD" "$PAY_KEY"`)
	if err != nil {
		t.Fatal(err)
	}
	if want := values[featDBPass] + "|" + values[featPayKey]; sourced != want {
		t.Errorf("app.env sourced by sh: %q, want %q", sourced, want)
	}
	if n := s.emu.CallsFor("kms", featPayDev); n != 0 {
		t.Errorf("the secret tagged env=dev was read %d times; the listing must leave it out", n)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Upstream changes: a rotated value the template reads, a new
	// parameter under the path, the optional secret created.
	rotated := `new"pw $PATH word-e2e-v2`
	values[featDBPass+"@2"] = rotated
	v, err := s.emu.PutParameter(featDBPass, rotated)
	if err != nil {
		t.Fatal(err)
	}
	newDBVersion := fmt.Sprint(v)
	values[featNewParam] = "feature-flag-e2e-value"
	if _, err := s.emu.PutParameter(featNewParam, values[featNewParam]); err != nil {
		t.Fatal(err)
	}
	values[featOptional] = "optional-e2e-value"
	optVersion, err := s.emu.PutSecretValue(featOptional, []byte(values[featOptional]), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.emu.DeleteSecret(featOptional) })
	changed := time.Now()

	want := map[string]string{
		"cfg/db-password":  rotated,
		"cfg/feature-flag": values[featNewParam],
		featOptional:       values[featOptional],
		"app.env":          wantEnv(rotated),
	}
	var pending []string
	err = poll(3*time.Minute, func(context.Context) (bool, error) {
		pending = pending[:0]
		for _, file := range keysOf(want) {
			if out, err := s.exec(ns, featPod, "cat", mnt+file); err != nil || out != want[file] {
				pending = append(pending, file)
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		t.Fatalf("after the upstream changes, still not in the pod's volume after 3m: %v\n%s", pending, s.podReport(ns, featPod))
	}
	t.Logf("the rotation, the new parameter and the optional object reached the pod %s after the upstream change (rotationPollInterval %s)",
		time.Since(changed).Round(time.Second), rotationInterval)
	if got, want := strings.Join(s.ls(t, ns, featPod, mnt), " "), "app.env cfg "+featOptional+" pay"; got != want {
		t.Errorf("ls %s = %q, want %q", mnt, got, want)
	}
	if got, want := strings.Join(s.ls(t, ns, featPod, mnt+"cfg"), " "), "db-host db-password feature-flag log-level"; got != want {
		t.Errorf("ls %scfg = %q, want %q", mnt, got, want)
	}

	// The provider's Events on the pod: the rotated value and the created
	// optional object, each with its old and new version.
	wantEvents := map[string][]string{
		"rotated":  {featDBPass, "(file cfg/db-password)", "changed upstream", "version " + versions[featDBPass] + " -> " + newDBVersion},
		"optional": {"kms/" + featOptional, "was created upstream", "version absent -> " + optVersion},
	}
	var rotatedEvents []corev1.Event
	err = poll(time.Minute, func(context.Context) (bool, error) {
		rotatedEvents = rotatedEvents[:0]
		for _, e := range s.events(ns, featPod) {
			if e.Reason == "SecretRotated" {
				rotatedEvents = append(rotatedEvents, e)
			}
		}
		return len(matchEvents(rotatedEvents, wantEvents)) == len(wantEvents), nil
	})
	if err != nil {
		t.Errorf("SecretRotated events on the pod: found %v of %v:\n%s", keysOf(matchEvents(rotatedEvents, wantEvents)), keysOf(wantEvents), describeEvents(rotatedEvents))
	}
	// Nothing else: the new name in the listing is a first value, the
	// listing and the template are not values of their own.
	if len(rotatedEvents) != len(wantEvents) {
		t.Errorf("%d SecretRotated events on the pod, want exactly %d:\n%s", len(rotatedEvents), len(wantEvents), describeEvents(rotatedEvents))
	}
	for _, e := range rotatedEvents {
		o := e.InvolvedObject
		if o.Kind != "Pod" || o.APIVersion != "v1" || o.Namespace != ns || o.Name != featPod || o.UID != created.UID {
			t.Errorf("event %s is on %+v, want the Pod %s/%s uid %s", e.Name, o, ns, featPod, created.UID)
		}
		if e.Type != corev1.EventTypeNormal || e.Source.Component != "csi-secrets-store-provider-alibabacloud" {
			t.Errorf("event %s: type %q, source %+v", e.Name, e.Type, e.Source)
		}
		t.Logf("event: %s", e.Message)
	}

	// No Event of the namespace, whoever posted it, holds a value.
	all, err := s.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(all.Items)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range values {
		quoted, _ := json.Marshal(v)
		for _, e := range all.Items {
			if strings.Contains(e.Message, v) || strings.Contains(fmt.Sprintf("%+v", e), v) {
				t.Errorf("event %s (%s) holds the value of %s", e.Name, e.Reason, strings.TrimSuffix(name, "@2"))
			}
		}
		if strings.Contains(string(raw), strings.Trim(string(quoted), `"`)) {
			t.Errorf("an Event of %s holds the value of %s (JSON)", ns, strings.TrimSuffix(name, "@2"))
		}
	}
	t.Logf("%d events in %s, %d SecretRotated; none holds any of %d values", len(all.Items), ns, len(rotatedEvents), len(values))
}

// checkEventsRelease checks that the release runs the provider with
// --emit-events: the chart's events.enable, as a user sets it.
func checkEventsRelease(t *testing.T) {
	t.Helper()
	p, err := s.providerPod(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Spec.Containers {
		for _, a := range c.Args {
			if a == "--emit-events" {
				return
			}
		}
	}
	t.Fatalf("provider pod %s runs without --emit-events after events.enable=true", p.Name)
}

// dotenvQuoted is the template function dotenvQuote for values without a
// newline: double quotes, with \, ", $ and ` escaped by a backslash.
func dotenvQuoted(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`").Replace(v) + `"`
}

// matchEvents returns the keys of want whose every substring is in the
// message of one event.
func matchEvents(evs []corev1.Event, want map[string][]string) map[string]bool {
	found := map[string]bool{}
	for key, parts := range want {
		for _, e := range evs {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(e.Message, p)
			}
			if all {
				found[key] = true
			}
		}
	}
	return found
}

func describeEvents(evs []corev1.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s on %s/%s: %s\n", e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
	}
	return b.String()
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
