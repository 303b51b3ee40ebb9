package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// TestCompletionScripts: vipd completion writes each shell's script, and
// the scripts ask the binary (vipd __complete) for the words.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r, _ := vipd(t, "completion", sh)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("vipd completion %s: exit %d, stderr %q", sh, r.code, r.stderr)
		}
		if len(r.stdout) < 1000 || !strings.Contains(r.stdout, "vipd") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("vipd completion %s: %d bytes, want a script for vipd that calls vipd __complete", sh, len(r.stdout))
		}
		// The script must at least parse in its shell, where there is one.
		check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}[sh]
		if path, err := exec.LookPath(check[0]); err == nil {
			f := filepath.Join(t.TempDir(), "vipd."+sh)
			if err := os.WriteFile(f, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(path, append(check[1:], f)...).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", strings.Join(check, " "), f, err, out)
			}
		}
	}
}

// TestCompletionOffersCommandsAndFlags is what the scripts get back.
func TestCompletionOffersCommandsAndFlags(t *testing.T) {
	r, _ := vipd(t, "__complete", "")
	if r.code != 0 {
		t.Fatalf("vipd __complete '': exit %d, %s", r.code, r.stderr)
	}
	words := completionWords(r.stdout)
	for _, w := range []string{"run", "check", "convert", "status", "reload", "maint", "priority", "lvs", "version", "completion"} {
		if !slices.Contains(words, w) {
			t.Errorf("completion of vipd offers %v, lacks %s", words, w)
		}
	}
	if slices.Contains(words, "gen-man") {
		t.Error("completion offers the hidden gen-man")
	}

	r, _ = vipd(t, "__complete", "run", "--")
	words = completionWords(r.stdout)
	for _, w := range []string{"--config", "--node-name", "--etcd-endpoints", "--state-dir", "--socket"} {
		if !slices.Contains(words, w) {
			t.Errorf("completion of vipd run -- offers %v, lacks %s", words, w)
		}
	}
	if slices.Contains(words, "--preflight") {
		t.Error("completion offers the hidden --preflight")
	}
}

// completionWords are the candidates of a __complete answer: one per line,
// "WORD\tDESCRIPTION", then ":DIRECTIVE".
func completionWords(out string) []string {
	var words []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, ":") || strings.HasPrefix(line, "Completion ended") {
			continue
		}
		w, _, _ := strings.Cut(line, "\t")
		words = append(words, w)
	}
	return words
}

// TestGenManWritesAPagePerCommand: one page per command --help lists, each
// a roff page with .TH, the run page naming every flag of vipd run; groff
// and man, when installed, render every page without a warning.
func TestGenManWritesAPagePerCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "") // restored after the test
	os.Unsetenv("SOURCE_DATE_EPOCH")  // unset, not empty: groff refuses an empty one
	r, _ := vipd(t, "gen-man", dir)
	if r.code != 0 {
		t.Fatalf("vipd gen-man: exit %d, %s", r.code, r.stderr)
	}

	// The tree as execute builds it (with cobra's completion command).
	root := newRootCmd(&cliEnv{})
	root.InitDefaultCompletionCmd()
	var want []string
	for _, c := range manCommands(root) {
		want = append(want, manName(c)+".1")
	}
	slices.Sort(want)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
	for _, must := range []string{"vipd.1", "vipd-run.1", "vipd-status.1", "vipd-lvs.1", "vipd-completion-bash.1"} {
		if !slices.Contains(got, must) {
			t.Errorf("no %s", must)
		}
	}
	if slices.Contains(got, "vipd-gen-man.1") || slices.Contains(got, "vipd-help.1") {
		t.Errorf("pages %v include gen-man or help", got)
	}

	for _, name := range got {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		for _, s := range []string{"\n.TH ", "\n.SH NAME\n", "\n.SH SYNOPSIS\n", "\n.SH DESCRIPTION\n"} {
			if !strings.Contains(page, s) {
				t.Errorf("%s lacks %q", name, strings.TrimSpace(s))
			}
		}
		if !strings.Contains(page, `.TH "VIPD`) || !strings.Contains(page, `"2025\-03\-01"`) {
			t.Errorf("%s: .TH line wants the title and the date: %s", name, strings.SplitN(page, "\n", 3)[1])
		}
	}

	run, err := os.ReadFile(filepath.Join(dir, "vipd-run.1"))
	if err != nil {
		t.Fatal(err)
	}
	runCmd, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	runCmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		n++
		if !strings.Contains(string(run), `\fB\-\-`+roffText(f.Name)+`\fR`) {
			t.Errorf("vipd-run.1 lacks --%s", f.Name)
		}
	})
	if n < 20 {
		t.Errorf("vipd run has %d visible flags? want every one of them", n)
	}
	for _, s := range []string{".SH OPTIONS", ".SH EXAMPLES", `VIPD_<FLAG>`, "notify_*", `\fBvipd\fR(1)`} {
		if !strings.Contains(string(run), s) {
			t.Errorf("vipd-run.1 lacks %q", s)
		}
	}

	if groff, err := exec.LookPath("groff"); err == nil {
		for _, name := range got {
			cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(dir, name))
			cmd.Env = envWithout("SOURCE_DATE_EPOCH")
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("groff -man -ww %s: %v\n%s", name, err, out)
			}
		}
	}
	if man, err := exec.LookPath("man"); err == nil {
		for _, name := range got {
			cmd := exec.Command(man, "--warnings", "-l", filepath.Join(dir, name))
			cmd.Env = append(envWithout("SOURCE_DATE_EPOCH"), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=100")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("man -l %s: %v\n%s", name, err, stderr.String())
			}
			if !strings.Contains(stdout.String(), "NAME") {
				t.Errorf("man -l %s rendered %q", name, stdout.String())
			}
		}
	}
}

// TestManTextIsLiteral: roff controls in help text are printed, not obeyed.
func TestManTextIsLiteral(t *testing.T) {
	c := &cobra.Command{Use: "x", Short: "a -b", Long: ".TH not a request\n'quote\nback\\slash — dash\n\n  kept  as\n  is"}
	page := string(manPage(c, testNow))
	for _, s := range []string{"\n\\&.TH not a request\n", "\n\\&'quote\n", "back\\eslash \\[u2014] dash", ".nf\n  kept  as\n  is\n.fi\n", "x \\- a \\-b"} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q:\n%s", s, page)
		}
	}
}

// TestDaemonSetEnvReachesRun feeds vipd run the environment and arguments
// of deploy/kubernetes/vipd-daemonset.yaml (the Secret's and the downward
// API's values made up) and checks they land where the DaemonSet mounts
// volumes: every VIPD_ variable is a flag of vipd run.
func TestDaemonSetEnvReachesRun(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/vipd-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type env struct {
		Name      string
		Value     string
		ValueFrom map[string]map[string]string `yaml:"valueFrom"`
	}
	var c struct {
		Args         []string
		Env          []env
		VolumeMounts []struct {
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []yaml.Node
					}
				}
			}
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("no DaemonSet with a container in the manifest: %v", err)
		}
		if doc.Kind == "DaemonSet" && len(doc.Spec.Template.Spec.Containers) > 0 {
			if err := doc.Spec.Template.Spec.Containers[0].Decode(&c); err != nil {
				t.Fatal(err)
			}
			break
		}
	}

	root := newRootCmd(&cliEnv{})
	runCmd, _, _ := root.Find([]string{"run"})
	for _, e := range c.Env {
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "VIPD_"), "_", "-"))
		if runCmd.Flags().Lookup(flag) == nil {
			t.Errorf("env %s: vipd run has no --%s", e.Name, flag)
		}
		switch {
		case e.ValueFrom["secretKeyRef"] != nil:
			t.Setenv(e.Name, "https://etcd-a:2379,https://etcd-b:2379")
		case e.ValueFrom["fieldRef"]["fieldPath"] == "spec.nodeName":
			t.Setenv(e.Name, "node-a")
		default:
			t.Setenv(e.Name, e.Value)
		}
	}

	r, opts := vipd(t, append([]string{"run"}, c.Args...)...)
	if r.code != 0 || opts == nil {
		t.Fatalf("vipd run %v: exit %d, %s", c.Args, r.code, r.stderr)
	}
	if !slices.Equal(opts.EtcdEndpoints, []string{"https://etcd-a:2379", "https://etcd-b:2379"}) {
		t.Errorf("etcd endpoints %q, want the Secret's two", opts.EtcdEndpoints)
	}
	if opts.NodeName != "node-a" {
		t.Errorf("node name %q, want the node's", opts.NodeName)
	}
	if opts.ConfigPath != "/etc/vipd/keepalived.conf" {
		t.Errorf("config %q", opts.ConfigPath)
	}
	mounted := func(p string) bool {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") {
				return true
			}
		}
		return false
	}
	for what, p := range map[string]string{"state directory": opts.StateDir, "control socket": opts.SocketPath, "configuration": opts.ConfigPath} {
		if !mounted(p) {
			t.Errorf("%s %s is on no volume of the DaemonSet (the root filesystem is read-only)", what, p)
		}
	}
	if opts.StateDir != "/var/lib/vipd/node-a" {
		t.Errorf("state dir %q, want /var/lib/vipd/NODE-NAME", opts.StateDir)
	}
}

// envWithout is the environment without the variable name: groff refuses a
// SOURCE_DATE_EPOCH that is set but empty, whatever the caller's shell had.
func envWithout(name string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return env
}
