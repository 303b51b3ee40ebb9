package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/api"
)

// The environment of an upgrade in flight, from the old image of the
// process to the new one (and back on a rollback). Not flags: set only by
// vipd itself across exec.
const (
	envRollbackFD = "VIPD_UPGRADE_ROLLBACK_FD" // descriptor of the old binary
	envDeadline   = "VIPD_UPGRADE_DEADLINE"    // unix nanoseconds by which the new image must be ready
	envFrom       = "VIPD_UPGRADE_FROM"        // the old version
	envNote       = "VIPD_UPGRADE_NOTE"        // how the upgrade ended, for the run it ends in
	envArgs       = "VIPD_UPGRADE_ARGS"        // the old image's arguments (JSON, without the program), to roll back with
)

// inflight is an upgrade that exec'd this image.
type inflight struct {
	fd       int       // the old binary
	deadline time.Time // ready by then, or rolled back
	from     string
	args     []string // the old image's arguments without the program (a wrapper may have changed this image's)
}

// takeUpgradeEnv reads and clears the upgrade's environment: nil when
// this image was not started by vipd upgrade. note is how an upgrade that
// ended in this image went ("" when none).
func takeUpgradeEnv(log *slog.Logger) (up *inflight, note string) {
	note = os.Getenv(envNote)
	fdS, dlS := os.Getenv(envRollbackFD), os.Getenv(envDeadline)
	from, argsS := os.Getenv(envFrom), os.Getenv(envArgs)
	for _, k := range []string{envRollbackFD, envDeadline, envFrom, envNote, envArgs} {
		os.Unsetenv(k)
	}
	if fdS == "" {
		return nil, note
	}
	var args []string
	argsErr := json.Unmarshal([]byte(argsS), &args)
	fd, err1 := strconv.Atoi(fdS)
	dl, err2 := strconv.ParseInt(dlS, 10, 64)
	if err1 != nil || err2 != nil || argsErr != nil || fd < 3 || len(args) == 0 {
		log.Error("upgrade: the old image's hand-over is unreadable: no rollback possible",
			"fd", fdS, "deadline", dlS, "args", argsS)
		return nil, "upgraded in place from " + from + " (no rollback: hand-over unreadable)"
	}
	// Scripts this image runs must not inherit the old binary.
	syscall.CloseOnExec(fd)
	return &inflight{fd: fd, deadline: time.Unix(0, dl), from: from, args: args}, "upgraded in place from " + from
}

// execUpgrade replaces the process image with bin (same PID, the same
// arguments), leaving it a descriptor of the running binary to roll back
// to and ready (how long it has to apply its configuration). It returns
// only when the exec failed.
func execUpgrade(bin string, ready time.Duration, args []string) error {
	fd, err := syscall.Open("/proc/self/exe", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("upgrade: cannot open the running binary (/proc/self/exe) to keep for a rollback: %w", err)
	}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		syscall.Close(fd)
		return fmt.Errorf("upgrade: %w", err)
	}
	env := append(os.Environ(),
		envArgs+"="+string(argsJSON),
		envRollbackFD+"="+strconv.Itoa(fd),
		envDeadline+"="+strconv.FormatInt(time.Now().Add(ready).UnixNano(), 10),
		envFrom+"="+version)
	// Only this descriptor crosses the exec; no fork may copy it meanwhile.
	syscall.ForkLock.Lock()
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0)
	if errno == 0 {
		err = syscall.Exec(bin, append([]string{os.Args[0]}, args...), env)
	} else {
		err = errno
	}
	syscall.ForkLock.Unlock()
	syscall.Close(fd)
	return fmt.Errorf("upgrade: exec %s: %w", bin, err)
}

// reexecSelf executes the running binary again with args (after a failed
// upgrade exec: the old run's instances still run in this process, a
// clean image resumes them from the state). It returns only on failure.
func reexecSelf(args []string, note string) error {
	env := append(os.Environ(), envNote+"="+note)
	err := syscall.Exec("/proc/self/exe", append([]string{os.Args[0]}, args...), env)
	return fmt.Errorf("re-exec /proc/self/exe: %w", err)
}

// rollback puts the old binary back in place of this image, with the old
// image's arguments; it returns only when that failed.
func (u *inflight) rollback(why string) error {
	env := append(os.Environ(), envNote+"="+fmt.Sprintf("upgrade from %s to %s rolled back: %s", u.from, version, why))
	path := "/proc/self/fd/" + strconv.Itoa(u.fd)
	err := syscall.Exec(path, append([]string{os.Args[0]}, u.args...), env)
	return fmt.Errorf("upgrade rollback: exec the old binary: %w", err)
}

// watch rolls back unless ready is closed before the deadline.
func (u *inflight) watch(ready <-chan struct{}, stderr func(string)) {
	t := time.NewTimer(time.Until(u.deadline))
	defer t.Stop()
	select {
	case <-ready:
		syscall.Close(u.fd)
	case <-t.C:
		stderr("vipd: the new binary did not apply its configuration in time: rolling back")
		if err := u.rollback("not ready in time"); err != nil {
			stderr("vipd: " + err.Error())
			os.Exit(exitFailure)
		}
	}
}

func newUpgradeCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Re-execute the vipd binary in place (new version), moving no VIP",
		Long: `Ask the running vipd to re-execute the binary now at its path, after you
installed a new one there (install -m 755 vipd /usr/sbin/vipd, or a package
upgrade): same PID, so systemd keeps tracking it; same arguments; the state is
carried across, so every MASTER stays MASTER and advertises again within
milliseconds, and no backup notices.

Before anything moves, the new binary must answer "version" and accept this
run's command line and configuration (vipd run ... --preflight); otherwise the
upgrade is refused and the running vipd goes on. A new binary that fails to
start, or does not apply its configuration in time (the shortest
Master_Down_Interval less one advert interval, between 1 and 10 s), is rolled
back: the old binary, kept open by vipd, is executed again with the old
arguments and resumes from the state. vipd upgrade waits for the new run to
answer and reports the versions, or the rollback (exit 1).

What a rollback cannot cover: a new file that passes the checks but dies before
vipd's own code runs (killed at exec, a crash in the Go runtime's start-up)
ends the process with its VIPs in place; systemd's Restart= then starts the
file at the path again, and vipd release (the unit's OnFailure=) removes the
VIPs if that keeps failing.

Needs a state directory (vipd run --state-dir, on by default).`,
		Example: `  install -m 755 ./vipd /usr/sbin/vipd && vipd upgrade

  # The vipd of network namespace lb2
  vipd upgrade --socket /run/vipd/lb2.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			socket := v.GetString("socket")
			c := api.NewClient(socket)
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			before, err := c.Status(ctx)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			res, err := c.Upgrade(ctx)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			after, err := waitNewRun(ctx, c, before)
			if err != nil {
				return fail(exitFailure, "upgrade to %s: %v", strings.TrimSpace(res.To), err)
			}
			d := after.Daemon
			if !strings.HasPrefix(d.Upgrade, "upgraded in place") {
				return fail(exitFailure, "%s (pid %d, version %s, %d instances resumed as MASTER)", d.Upgrade, d.PID, d.Version, d.Resumed)
			}
			fmt.Fprintf(env.stdout, "vipd at %s: upgraded in place from %s to %s, pid %d, %d instances resumed as MASTER\n",
				socket, res.From, d.Version, d.PID, d.Resumed)
			return nil
		},
	}
	addSocketFlag(cmd.Flags())
	return cmd
}

// waitNewRun polls the socket until a run started after before answers.
func waitNewRun(ctx context.Context, c *api.Client, before api.Status) (api.Status, error) {
	var last error
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Daemon != nil && before.Daemon != nil && st.Daemon.Started.After(before.Daemon.Started) && st.Daemon.Ready {
			return st, nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("no new run answered")
			}
			return api.Status{}, fmt.Errorf("waiting for the new run: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
