package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/csi"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// devCacheTTL is dev's default --cache-ttl: short, so that a rotation
// shows within seconds.
const devCacheTTL = 10 * time.Second

const devUsage = `usage: csi-secrets-store-provider-alibabacloud dev [flags]

Runs an Alibaba Cloud emulator (KMS, OOS, STS, ECS metadata) seeded with demo
secrets, serves the provider socket against it, Mounts a demo
SecretProviderClass as the driver does and re-Mounts it until Ctrl-C. No cloud
account, cluster or root needed; everything lives in a temporary directory that
is removed on exit.

flags:
`

type devOptions struct {
	options
	providerVolume string
	emulatorAddr   string
	target         string
	remount        time.Duration
	once           bool
	noFUSE         bool
	doctor         bool
	printClass     bool
}

func runDev(ctx context.Context, args []string) error {
	do := devOptions{options: options{command: "dev"}}
	do.setDefaults()
	flags := flag.NewFlagSet("dev", flag.ContinueOnError)
	// The services are the emulator's and the identity its demo AccessKey:
	// dev registers only the shared flags that make sense against it, with
	// its own defaults.
	do.registerLimits(flags)
	do.registerCache(flags, devCacheTTL)
	do.registerPolicy(flags)
	do.registerLog(flags)
	flags.StringVar(&do.providerVolume, "provider-volume", "", "directory of the demo provider socket (alibabacloud.sock) (default: a temporary directory)")
	flags.StringVar(&do.emulatorAddr, "emulator-addr", "127.0.0.1:0", "listen address of the embedded Alibaba Cloud emulator")
	flags.StringVar(&do.target, "target", "", "directory the demo volume is written to (default: a temporary directory)")
	flags.DurationVar(&do.remount, "remount-every", 15*time.Second, "re-Mount the demo volume this often, as the driver does with rotation on (0: never)")
	flags.BoolVar(&do.once, "once", false, "do the demo Mount, print the result and exit")
	flags.BoolVar(&do.noFUSE, "no-fuse", false, "do not mount the FUSE view of the demo class")
	flags.BoolVar(&do.doctor, "doctor", false, "run doctor on the demo class against an emulator of its own, print its report and exit (no socket, no Mount; works without a running dev)")
	flags.BoolVar(&do.printClass, "print-class", false, "print the demo SecretProviderClass and exit")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), devUsage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Errorf("dev takes no arguments, got %q", flags.Args())}
	}
	out := os.Stdout
	if do.printClass {
		_, err := fmt.Fprint(out, emulator.DemoClass)
		return err
	}
	// The demo class, read as every class file is: dev --doctor checks it,
	// the demo Mount sends its parameters, the FUSE view shows it.
	demo, err := spc.Parse("dev --print-class", []byte(emulator.DemoClass))
	if err != nil {
		return err
	}
	log := do.logger(os.Stderr)

	emu, err := emulator.New(emulator.DemoSeed(), emulator.Options{Addr: do.emulatorAddr})
	if err != nil {
		return err
	}
	if err := emu.Start(); err != nil {
		return fmt.Errorf("starting the emulator: %w", err)
	}
	defer func() { _ = emu.Close() }()
	do.kmsEndpoint, do.oosEndpoint, do.region = fetch.EndpointFlag{Default: emu.URL()}, fetch.EndpointFlag{Default: emu.URL()}, emulator.DemoRegion
	do.getenv = func(k string) string {
		switch k {
		case "ACCESS_KEY_ID":
			return emulator.DemoAccessKeyID
		case "SECRET_ACCESS_KEY":
			return emulator.DemoAccessKeySecret
		}
		return ""
	}
	if do.doctor {
		return devDoctor(ctx, do.options, demo, out)
	}

	work, err := os.MkdirTemp("", "alibabacloud-provider-dev-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	if do.providerVolume == "" {
		do.providerVolume = filepath.Join(work, "providers")
	}
	if do.target == "" {
		do.target = filepath.Join(work, "pod-volume")
	}

	st, err := do.build(ctx, log, fetch.NopObserver{})
	if err != nil {
		return err
	}
	srv := &csi.Server{Fetcher: st.fetcher, Identity: st.identities, Policy: st.policy, Log: log, RuntimeVersion: version, MaxResponseBytes: csi.DefaultMaxResponseBytes}
	g, err := csi.NewGRPCServer(csi.SocketPath(do.providerVolume), srv)
	if err != nil {
		return err
	}
	stopCache := st.runCache() // deferred first: runs after the server has drained
	defer stopCache()
	sctx, stopServe := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() { serveDone <- g.Serve(sctx, 5*time.Second) }()
	defer func() { stopServe(); <-serveDone }() //nolint:errcheck // the serve error after a stop is expected

	classFile := filepath.Join(work, "demo-class.yaml")
	if err := os.WriteFile(classFile, []byte(emulator.DemoClass), 0o600); err != nil {
		return err
	}

	exe := "csi-secrets-store-provider-alibabacloud"
	if p, err := os.Executable(); err == nil {
		exe = shellQuote(p)
	}
	fmt.Fprintf(out, "Alibaba Cloud emulator (KMS, OOS, STS, ECS metadata): %s\n", emu.URL())
	fmt.Fprintf(out, "Provider socket:                                      %s\n", g.Path())
	fmt.Fprintf(out, "Demo SecretProviderClass:                             %s (removed on exit; dev --print-class prints it)\n\n", classFile)

	mount := func() error {
		return demoMount(ctx, g.Path(), demo[0].Parameters, do.target, out)
	}
	if err := mount(); err != nil {
		return err
	}
	// doctor on the demo class, as an operator checks a class against the
	// cloud: a command that needs nothing of this run, so it still works
	// after dev has exited and removed its emulator and files.
	selfContained := exe + " dev --doctor"
	if do.once {
		fmt.Fprintf(out, "\nCheck the demo class with doctor (runs an emulator of its own; works after dev has exited):\n  %s\n", selfContained)
		return nil
	}
	fuseNote, stopFUSE := startDevFUSE(ctx, log, st, demo, work, do.noFUSE)
	defer stopFUSE()

	fmt.Fprintf(out, "\nTry next:\n")
	fmt.Fprintf(out, "  ls -la %s && cat %s/db-username; echo\n", do.target, do.target)
	fmt.Fprintf(out, "  # rotate the JSON secret upstream; the next re-Mount (every %s, cache TTL %s) writes the new files:\n", do.remount, do.cacheTTL)
	for _, c := range emu.ExampleCommands() {
		fmt.Fprintf(out, "  %s\n", c)
	}
	fmt.Fprintf(out, "  # check the demo class with doctor, as an operator checks a class against the cloud\n")
	fmt.Fprintf(out, "  # (runs an emulator of its own; works after dev has exited):\n")
	fmt.Fprintf(out, "  %s\n", selfContained)
	fmt.Fprintf(out, "  # the same check against THIS dev's emulator, to see the faults and rotations above\n")
	fmt.Fprintf(out, "  # (works only while this dev runs: its emulator stops with it):\n")
	fmt.Fprintf(out, "  %s\n", devLiveDoctorCommand(exe, emu.URL()))
	if fuseNote != "" {
		fmt.Fprintf(out, "  %s\n", fuseNote)
	}
	fmt.Fprintf(out, "\nServing until Ctrl-C.\n")

	var tick <-chan time.Time
	if do.remount > 0 {
		t := time.NewTicker(do.remount)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping")
			return nil
		case <-tick:
			if err := demoMountQuiet(ctx, g.Path(), demo[0].Parameters, do.target, out); err != nil {
				fmt.Fprintf(out, "re-Mount failed: %v\n", err)
			}
		}
	}
}

// devLiveDoctorCommand is doctor's command line against a running dev's
// emulator: the class comes from dev --print-class (no file that dev
// removes), the credentials are the emulator's demo AccessKey.
func devLiveDoctorCommand(exe, emulatorURL string) string {
	return fmt.Sprintf("%s dev --print-class | ACCESS_KEY_ID=%s SECRET_ACCESS_KEY=%s %s doctor --class - --region %s --kms-endpoint %s --oos-endpoint %s",
		exe, emulator.DemoAccessKeyID, emulator.DemoAccessKeySecret, exe, emulator.DemoRegion, emulatorURL, emulatorURL)
}

// devDoctor runs doctor on the demo class against the emulator o points
// at (dev --doctor) and returns doctor's exit code as an exitCode.
func devDoctor(ctx context.Context, o options, cls []*spc.Class, out io.Writer) error {
	o.command = "doctor"
	o.policyFile = "" // doctor asks no policy
	fmt.Fprintf(out, "doctor on dev's demo class, against an emulator of its own at %s.\n"+
		"Against the cloud, the same report comes from: doctor --class FILE (docs/operations.md#doctor).\n\n", o.kmsEndpoint.Default)
	if code := doctorCheck(ctx, &o, cls, 30*time.Second, out, os.Stderr); code != doctorOK {
		return exitCode(code)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// characters safe unquoted.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@%,", r)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// driverAttributes builds MountRequest.attributes the way the driver does:
// the class parameters overlaid with the pod's volume context.
func driverAttributes(params map[string]string, pod, ns string) string {
	a := map[string]string{}
	for k, v := range params {
		a[k] = v
	}
	a[csi.AttrSPC] = "demo"
	a[csi.AttrPodName] = pod
	a[csi.AttrPodNamespace] = ns
	a[csi.AttrPodUID] = "00000000-0000-0000-0000-000000000001"
	a[csi.AttrServiceAccount] = "default"
	a["csi.storage.k8s.io/ephemeral"] = "true"
	b, _ := json.Marshal(a)
	return string(b)
}

var lastVersions = map[string]string{}

// demoMount calls Mount over the socket exactly as the driver does and
// writes the files with the driver's own atomic writer.
func demoMount(ctx context.Context, sock string, params map[string]string, target string, out io.Writer) error {
	resp, err := callMount(ctx, sock, params, target)
	if err != nil {
		return fmt.Errorf("demo Mount: %w", err)
	}
	for _, v := range resp.GetObjectVersion() {
		lastVersions[v.Id] = v.Version
	}
	fmt.Fprintf(out, "Demo Mount wrote %d files to %s:\n", len(resp.GetFiles()), target)
	printTree(out, target, resp)
	return nil
}

func demoMountQuiet(ctx context.Context, sock string, params map[string]string, target string, out io.Writer) error {
	resp, err := callMount(ctx, sock, params, target)
	if err != nil {
		return err
	}
	for _, v := range resp.GetObjectVersion() {
		if old, ok := lastVersions[v.Id]; ok && old != v.Version {
			fmt.Fprintf(out, "%s  %s: version %s -> %s\n", time.Now().Format(time.TimeOnly), v.Id, old, v.Version)
		}
		lastVersions[v.Id] = v.Version
	}
	return nil
}

func callMount(ctx context.Context, sock string, params map[string]string, target string) (*v1alpha1.MountResponse, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := v1alpha1.NewCSIDriverProviderClient(conn).Mount(cctx, &v1alpha1.MountRequest{
		Attributes: driverAttributes(params, "demo-pod", "default"),
		Secrets:    "null",
		TargetPath: target,
		Permission: "420",
	})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, err
	}
	if err := fileutil.WritePayloads(target, resp.GetFiles()); err != nil {
		return nil, err
	}
	return resp, nil
}

func printTree(out io.Writer, target string, resp *v1alpha1.MountResponse) {
	versions := map[string]string{}
	for _, v := range resp.GetObjectVersion() {
		versions[v.Id] = v.Version
	}
	var rows []string
	_ = filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil //nolint:nilerr // a listing for humans: skip what cannot be read
		}
		rel, _ := filepath.Rel(target, p)
		if strings.HasPrefix(rel, "..") {
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil //nolint:nilerr // a listing for humans: skip what cannot be read
		}
		ver := ""
		for id, v := range versions {
			if strings.HasSuffix(id, "/"+rel) {
				ver = v
			}
		}
		rows = append(rows, fmt.Sprintf("  %-16s %s %5d bytes  version %s", rel, fi.Mode().Perm(), fi.Size(), ver))
		return nil
	})
	sort.Strings(rows)
	for _, r := range rows {
		fmt.Fprintln(out, r)
	}
}
