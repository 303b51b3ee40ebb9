package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/agent"
	"github.com/vipd/vipd/api"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // invalid configuration, vipd unreachable, reload rejected, run failed
	exitUsage   = 2 // bad flags or arguments
)

// cliEnv is everything a command touches outside itself, so that tests can
// run the real command tree with fakes.
type cliEnv struct {
	stdout, stderr  io.Writer
	interfaceExists func(string) bool
	runAgent        func(context.Context, agent.Options) error
	now             func() time.Time
	args            []string // the command line, without the program (set by execute)

	// The fields below may be left nil: each has a default for the real
	// binary (the methods in color.go and watch.go).

	// isTerminal says whether stdout is a terminal (colours with --color
	// auto, clearing the screen with --watch); nil: ask the kernel.
	isTerminal func() bool
	// ticker paces status --watch: a channel that ticks every d and its
	// stop; nil: time.NewTicker.
	ticker func(d time.Duration) (<-chan time.Time, func())
	// interruptible is the context status --watch runs in until the user
	// stops it; nil: until SIGINT (Ctrl-C) or SIGTERM.
	interruptible func(context.Context) (context.Context, context.CancelFunc)
}

// exitError ends a command with a given exit code. msg, when not empty, is
// printed to stderr as "vipd: msg"; commands that already printed their own
// output leave it empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// execute runs the command line args and returns the process exit code.
func execute(args []string, env *cliEnv) int {
	env.args = args
	root := newRootCmd(env)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(env.stderr, "vipd: %s\n", ee.msg)
		}
		return ee.code
	}
	// Anything else comes from cobra itself: an unknown flag or command, a
	// wrong number of arguments.
	fmt.Fprintf(env.stderr, "vipd: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
	return exitUsage
}

func newRootCmd(env *cliEnv) *cobra.Command {
	v := viper.New()
	v.SetEnvPrefix("VIPD")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()

	root := &cobra.Command{
		Use:   "vipd",
		Short: "Virtual-IP manager: VRRP v2/v3, configured by keepalived.conf",
		Long: `vipd moves virtual IP addresses between Linux hosts with VRRP (RFC 3768 v2 and
RFC 5798 v3), interoperating with keepalived on the same VRID: tracking
scripts, interfaces and files, notify scripts, sync groups and VMACs as
keepalived does them. (IPVS virtual servers are parsed and validated; running
them comes later.)

It reads your existing keepalived.conf unchanged (or the equivalent vipd YAML):
  keepalived -f FILE      ->  vipd run --config FILE
  keepalived -t -f FILE   ->  vipd check --config FILE
  kill -HUP $(pidof ...)  ->  vipd reload   (SIGHUP works too)

The running daemon answers on a control socket (default ` + api.DefaultSocketPath + `,
--socket or VIPD_SOCKET to change it) for vipd status and vipd reload.

Every flag can also be set from the environment as VIPD_<FLAG>, dashes as
underscores: VIPD_NODE_NAME, VIPD_SOCKET, VIPD_ETCD_ENDPOINTS, ...`,
		Example: `  # Run with your keepalived configuration, exactly as keepalived would
  vipd run --config /etc/keepalived/keepalived.conf

  # Validate a configuration before deploying it (like keepalived -t)
  vipd check --config /etc/keepalived/keepalived.conf

  # Who is MASTER for what, right now
  vipd status`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Bind the flags of the command being run to viper, so that a flag
		// given on the command line wins over VIPD_* from the environment,
		// which wins over the flag's default.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return v.BindPFlags(cmd.Flags())
		},
	}
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return err })
	// `vipd completion bash|zsh|fish|powershell` is cobra's own: the scripts
	// ask the binary (vipd __complete ...) for commands and flags.

	root.AddCommand(
		newRunCmd(env, v),
		newCheckCmd(env, v),
		newConvertCmd(env),
		newStatusCmd(env, v),
		newJoinCmd(env, v),
		newKeysCmd(env, v),
		newMaintCmd(env, v),
		newPriorityCmd(env, v),
		newReloadCmd(env, v),
		newUpgradeCmd(env, v),
		newReleaseCmd(env, v),
		newLVSCmd(env, v),
		newVersionCmd(env),
		newGenManCmd(env),
	)
	return root
}

// addSocketFlag adds --socket to a command that talks to a running vipd.
func addSocketFlag(fs *pflag.FlagSet) {
	fs.String("socket", api.DefaultSocketPath, "control socket of the running vipd (env VIPD_SOCKET)")
}

// requireConfig returns the --config value or a usage error.
func requireConfig(v *viper.Viper) (string, error) {
	path := v.GetString("config")
	if path == "" {
		return "", fail(exitUsage, "--config FILE is required (e.g. --config /etc/keepalived/keepalived.conf)")
	}
	return path, nil
}
