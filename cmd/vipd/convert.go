package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
)

func newConvertCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert FILE",
		Short: "Convert a keepalived.conf to vipd YAML on stdout",
		Long: `Read a keepalived.conf (with its includes) and print the equivalent vipd YAML
on stdout. Nothing on the host is touched and the interfaces named in the file
need not exist here, so you can convert a config for another machine.

vipd runs keepalived.conf directly, so converting is optional: it is for teams
that prefer YAML, or want one instance per etcd key (the YAML of one entry of
"instances:" is exactly what <prefix>/config/instances/<name> holds).

Warnings (keywords vipd parses but does not implement) go to stderr as
FILE:LINE: warning: ...; with errors, nothing is printed on stdout and the exit
status is 1.`,
		Example: `  # Convert and review
  vipd convert /etc/keepalived/keepalived.conf > /etc/vipd/vipd.yaml
  vipd check --config /etc/vipd/vipd.yaml

  # Then run from the YAML
  vipd run --config /etc/vipd/vipd.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			ids, _ := cmd.Flags().GetStringSlice("config-id")
			m, diags := loader.Load(path, loader.Options{Keepalived: keepalived.Options{ConfigIDs: splitList(ids)}})
			return convertOutput(env.stdout, env.stderr, path, m, diags)
		},
	}
	cmd.Flags().StringSlice("config-id", nil, "use these ids for @id / @^id lines, like keepalived -i (default: the short hostname)")
	return cmd
}

// convertOutput prints the YAML of m (or the diagnostics that prevent it).
func convertOutput(stdout, stderr io.Writer, path string, m *config.Model, diags config.Diagnostics) error {
	printDiagnostics(stderr, diags)
	if n := len(diags.Errors()); n > 0 {
		fmt.Fprintf(stderr, "%s: %s, not converted\n", path, plural(n, "error"))
		return &exitError{code: exitFailure}
	}
	if m == nil {
		return fail(exitFailure, "%s: could not be loaded", path)
	}
	y, err := config.EncodeYAML(m)
	if err != nil {
		return fail(exitFailure, "convert %s: %v", path, err)
	}
	if _, err := fmt.Fprintf(stdout, "# converted from %s by vipd convert\n%s", path, y); err != nil {
		return fail(exitFailure, "convert %s: write: %v", path, err)
	}
	return nil
}
