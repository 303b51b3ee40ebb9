package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
)

func newCheckCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a configuration, like keepalived -t",
		Long: `Validate a keepalived.conf or vipd YAML file without running anything, like
keepalived -t (--config-test).

Problems are printed on stderr one per line as FILE:LINE: message, warnings
first ("FILE:LINE: warning: ..."), then errors, so editors and CI logs can jump
to the line. A keyword vipd knows but does not implement is a warning, never
silently ignored; a wrong value is an error. Interfaces named in the file must
exist on this host.

Exit status: 0 when the file is valid (warnings allowed), 1 when it has errors.
The last line says which: "FILE: OK (N instances, M virtual servers, K warnings)"
on stdout, or "FILE: N errors" on stderr.`,
		Example: `  # Before restarting, as you would run keepalived -t
  vipd check --config /etc/keepalived/keepalived.conf

  # In a deploy pipeline: refuse to ship a broken file
  vipd check --config keepalived.conf.new && install -m 0644 keepalived.conf.new /etc/keepalived/keepalived.conf

  # Check the file as the host "lb2" will read it (@lb2 lines), like keepalived -i lb2
  vipd check --config /etc/keepalived/keepalived.conf --config-id lb2

  # A converted YAML file is checked the same way
  vipd check --config /etc/vipd/vipd.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := requireConfig(v)
			if err != nil {
				return err
			}
			m, diags := loader.Load(path, loader.Options{InterfaceExists: env.interfaceExists,
				Keepalived: keepalived.Options{ConfigIDs: splitList(v.GetStringSlice("config-id"))}})
			if code := reportCheck(env.stdout, env.stderr, path, m, diags); code != exitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().String("config", "", "keepalived.conf or vipd YAML (.yaml/.yml) file to check (env VIPD_CONFIG)")
	cmd.Flags().StringSlice("config-id", nil, "use these ids for @id / @^id lines, like keepalived -i (default: the short hostname)")
	return cmd
}

// printDiagnostics writes warnings, then errors, one "FILE:LINE: msg" a line.
func printDiagnostics(w io.Writer, diags config.Diagnostics) {
	for _, d := range diags.Warnings() {
		fmt.Fprintln(w, d.String())
	}
	for _, d := range diags.Errors() {
		fmt.Fprintln(w, d.String())
	}
}

// reportCheck prints the outcome of `vipd check` and returns its exit code.
func reportCheck(stdout, stderr io.Writer, path string, m *config.Model, diags config.Diagnostics) int {
	printDiagnostics(stderr, diags)
	if n := len(diags.Errors()); n > 0 {
		fmt.Fprintf(stderr, "%s: %s\n", path, plural(n, "error"))
		return exitFailure
	}
	if m == nil { // a loader bug, but never report OK for nothing
		fmt.Fprintf(stderr, "%s: could not be loaded\n", path)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s: OK (%s, %s, %s)\n", path,
		plural(len(m.Instances), "instance"),
		plural(len(m.VirtualServers), "virtual server"),
		plural(len(diags.Warnings()), "warning"))
	return exitOK
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
