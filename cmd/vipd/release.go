package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/agent/state"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vip"
)

func newReleaseCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release --state-dir DIR",
		Short: "Remove the VIPs a dead vipd left in place (after a crash or a restart that never came)",
		Long: `Remove the VIPs that a vipd run which is no longer running left on this host,
as recorded in its state directory, and mark the state released so that no later
start resumes from it.

A vipd that crashes (kill -9, a panic, the OOM killer) or exits for a restart
(the restart signal, systemctl restart) keeps its VIPs, so that the next start,
within Master_Down_Interval, resumes without a re-election. If no start comes,
the addresses would stay on this box while a backup takes them over: release
removes them. The systemd unit in deploy/ runs it when systemd gives up on vipd
(OnFailure=, after StartLimitBurst crashes); a start that finds the state too old
releases them itself.

release refuses while the vipd that wrote the state is still running (its PID is
alive and is vipd). Operator maintenance and priority overrides stay recorded.`,
		Example: `  vipd release --state-dir /var/lib/vipd/lb1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := v.GetString("state-dir")
			if dir == "" {
				return fail(exitUsage, "--state-dir DIR is required (the --state-dir of the vipd run, e.g. %s/NODE-NAME)", defaultStateRoot)
			}
			f, _, err := state.Read(dir)
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(env.stdout, "%s: no state: nothing to release\n", dir)
				return nil
			}
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			switch f.Mode {
			case state.ModeStopped, state.ModeReleased:
				fmt.Fprintf(env.stdout, "%s: the last run ended %s: nothing to release\n", dir, f.Mode)
				return nil
			}
			if f.PID != os.Getpid() && isVipd(f.PID) {
				return fail(exitFailure, "%s: vipd (pid %d) is still running with this state: stop it first", dir, f.PID)
			}
			plane, err := vip.NewNetlink(slog.New(slog.DiscardHandler))
			if err != nil {
				return fail(exitFailure, "release: %v", err)
			}
			defer plane.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var failed []string
			n := 0
			for i := range f.Instances {
				in := &f.Instances[i]
				for _, a := range in.VIPs {
					has, err := plane.HasAddr(a.Dev, a.Prefix.Addr())
					if err != nil {
						failed = append(failed, fmt.Sprintf("%s on %s: %v", a.Prefix, a.Dev, err))
						continue
					}
					if !has {
						continue
					}
					if err := plane.DelAddrs(ctx, a.Dev, []config.VIP{{Prefix: a.Prefix, Dev: a.Dev}}); err != nil {
						failed = append(failed, fmt.Sprintf("%s on %s: %v", a.Prefix, a.Dev, err))
						continue
					}
					n++
					fmt.Fprintf(env.stdout, "removed %s from %s (instance %s)\n", a.Prefix, a.Dev, in.Name)
				}
				in.VIPs = nil
			}
			if len(failed) > 0 {
				return fail(exitFailure, "release: could not remove %s", strings.Join(failed, "; "))
			}
			prev := f.Mode
			f.Mode, f.PID, f.Written = state.ModeReleased, os.Getpid(), time.Now()
			if err := state.Write(dir, f); err != nil {
				return fail(exitFailure, "release: %v", err)
			}
			fmt.Fprintf(env.stdout, "%s: released %d VIPs left by the last run (it ended %s)\n", dir, n, prev)
			return nil
		},
	}
	cmd.Flags().String("state-dir", "", "the state directory of the vipd run (vipd run --state-dir)")
	return cmd
}

// isVipd reports whether pid is a live vipd process.
func isVipd(pid int) bool {
	if pid <= 0 {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	return strings.HasPrefix(filepath.Base(strings.TrimSuffix(exe, " (deleted)")), "vipd")
}
