package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/agent"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
	"github.com/vipd/vipd/coord"
	"github.com/vipd/vipd/internal/sdnotify"
)

func newRunCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the daemon (VRRP instances, VIPs, tracking, notify) in the foreground",
		Long: `Run vipd in the foreground until SIGTERM or SIGINT, like keepalived -n -l.

--config takes a keepalived.conf (any keepalived 2.x file, includes and all)
or a vipd YAML file (.yaml/.yml). vipd then runs every vrrp_instance: it sends
and answers VRRP adverts, adds the virtual_ipaddress addresses when MASTER and
sends gratuitous ARP / unsolicited NA, runs track_script checks, follows
track_interface / track_file, moves vrrp_sync_group members together and runs
notify_* scripts. virtual_server blocks run as keepalived's checker process runs
them: health checks (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK,
SMTP_CHECK) decide which real servers are in each IPVS service (vipd lvs shows
it); a kernel without IPVS is said in the log and VRRP runs regardless.

Signals, as with keepalived:
  SIGHUP            re-read --config and apply only the difference (vipd reload):
                    the same instance (same VRID, family, interface, unicast
                    mode, use_vmac) takes every other change live, with no
                    state change and no VIP moved
  SIGTERM, SIGINT   stop: a MASTER sends a priority-0 advert so its BACKUP takes
                    over at once, VIPs are removed, notify stop scripts run,
                    vipd's IPVS services are removed
  SIGQUIT           exit at once for a restart (systemctl restart), status 75:
                    no priority 0, VIPs kept, no notify; the next start
                    resumes every MASTER whose VIPs are still in place,
                    advertising within milliseconds, so no backup notices

State that outlives the process lives in --state-dir (default
/var/lib/vipd/NODE-NAME): each instance's state and VIPs, written at every
transition, and the operator's vipd maint and vipd priority settings, which
survive every restart. A start resumes a MASTER only when the state is younger
than its Master_Down_Interval (a restart, a crash restarted at once, vipd
upgrade), its identity (VRID, family, interface, unicast mode, use_vmac) is the
same and its VIPs are still there; otherwise it starts as BACKUP, as keepalived
does, and says why. A 4th crash in a row within a minute of its start is not
resumed: that start releases the VIPs and VRRP decides.
vipd release removes what a dead run left; vipd upgrade re-executes a new
binary in place.

To run several vipd on one host (one per network namespace), give each its own
--socket and --node-name (or --state-dir). --metrics-listen HOST:PORT serves
Prometheus metrics on /metrics, with keepalived-exporter's names too
(api/metrics/METRICS.md). A VIP removed behind vipd's back on a MASTER is put
back and announced at once.

Gossip (hashicorp/memberlist) makes the nodes a fleet: on with --join,
--gossip-bind or --gossip-key-file (listening on 0.0.0.0:7946 unless
--gossip-bind says otherwise), it shares every node's instances, so vipd
status --fleet on any node shows the whole fleet, with the classic VRRP
routers heard on its segments, and warns of a split brain (two MASTERs for one
VRID on one segment, which VRRP alone cannot see), of nodes whose
configuration for a VRID disagrees, and of nodes in maintenance; vipd maint
--node reaches another node through it. Gossip never decides who is MASTER.
Encrypt it with --gossip-key-file (base64 of 16, 24 or 32 random bytes, mode
0600: head -c 32 /dev/urandom | base64 > /etc/vipd/gossip.key).

With --etcd-endpoints, vipd also follows etcd under --etcd-prefix (default
/vipd): config/instances/NAME, config/virtual_servers/NAME and
config/scripts/NAME (YAML, JSON, or the keepalived block itself) override the
file's objects of that name on every node; priority/INSTANCE/NODE overrides a
priority; maintenance/NODE[/INSTANCE] takes a node or an instance out (vipd
maint writes these keys); each node publishes its status at status/NODE under
a lease. A bad value is refused with a log line and the last good one stays;
etcd unreachable, at start or later, leaves VRRP running on the last good
configuration. TLS: --etcd-cacert, --etcd-cert, --etcd-key; auth:
--etcd-user-file.

With etcd, vipd also arbitrates split brain (--arbiter, on by default): a
node enters MASTER only while it holds the instance's claim,
arbiter/claim/INSTANCE, written under a lease of --arbiter-ttl (3s) that it
keeps alive. VRRP filtered between two nodes that both reach etcd leaves the
VIP on one of them, with no flapping; a crashed master's claim goes with its
lease; a stop releases it at once. etcd down for everyone moves nothing
(failsafe: plain VRRP while gossip peers answer and none is MASTER). A node
cut off from etcd and from every gossip peer gives its VIPs up before its
lease can expire (--arbiter-isolation release, the default) or keeps them
(keep). vipd nodes of one VRID must give the instance the same name;
keepalived peers take no part. See docs/arbitration.md.

Every flag can be set from the environment as VIPD_<FLAG>: VIPD_CONFIG,
VIPD_NODE_NAME, VIPD_SOCKET, VIPD_JOIN (comma-separated), ...`,
		Example: `  # Drop-in for keepalived: same file, same behaviour
  vipd run --config /etc/keepalived/keepalived.conf

  # With Prometheus metrics for existing keepalived dashboards
  vipd run --config /etc/keepalived/keepalived.conf --metrics-listen 127.0.0.1:9650

  # Log as JSON (for journald/Loki), debug level while testing a failover
  vipd run --config /etc/keepalived/keepalived.conf --log-format json --log-level debug

  # A fleet: gossip with two other nodes, encrypted
  vipd run --config /etc/keepalived/keepalived.conf --join 10.0.0.12:7946,10.0.0.13:7946 \
      --gossip-bind 10.0.0.11:7946 --gossip-key-file /etc/vipd/gossip.key

  # Second instance in a network namespace, with its own control socket
  ip netns exec lb2 vipd run --config /etc/vipd/lb2.conf --socket /run/vipd/lb2.sock --node-name lb2

  # Restart without moving a VIP, with the unit in deploy/systemd (SIGQUIT, then a new start)
  systemctl restart vipd

  # The same model as YAML (vipd convert keepalived.conf > vipd.yaml)
  vipd run --config /etc/vipd/vipd.yaml --node-name lb1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The restart signal is vipd's from the first instant: Go's
			// default for SIGQUIT (a stack dump, exit 2) must never apply.
			restart := make(chan os.Signal, 1)
			signal.Notify(restart, agent.RestartSignal)
			defer signal.Stop(restart)
			opts, err := runOptions(v)
			if err != nil {
				return err
			}
			log, err := newLogger(env.stderr, v.GetString("log-format"), v.GetString("log-level"))
			if err != nil {
				return fail(exitUsage, "%v", err)
			}
			if v.GetBool("preflight") {
				return preflightRun(env, opts)
			}
			opts.Logger = log
			opts.Restart = restart
			opts.RunArgs = env.args
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			log.Debug("vipd version", "version", version)
			// systemd's NOTIFY_SOCKET and WATCHDOG_*: taken out of the
			// environment, so scripts do not inherit them.
			sd, err := sdnotify.FromEnv()
			if err != nil {
				log.Warn("systemd notification: " + err.Error())
			}
			opts.Notify = sd
			up, note := takeUpgradeEnv(log)
			opts.UpgradeNote = note
			if note != "" {
				log.Info("upgrade: " + note)
			}
			var ready chan struct{}
			if up != nil {
				ready = make(chan struct{})
				// Until this image is ready, a rollback may execute the
				// old one in this process: it must find them (a script
				// started meanwhile inherits them; NotifyAccess=main
				// ignores what it sends).
				sd.Export()
				opts.Ready = sync.OnceFunc(func() { close(ready); sd.Unexport() })
				go up.watch(ready, func(s string) { fmt.Fprintln(env.stderr, s) })
			}
			err = env.runAgent(ctx, opts)
			var ue *agent.UpgradeExec
			switch {
			case err == nil:
				return nil
			case errors.Is(err, agent.ErrRestart):
				// VIPs kept, state written: the next start resumes. Not
				// 0: a restart signal from anything but systemctl restart
				// must still bring vipd back (the unit's
				// RestartForceExitStatus=).
				return fail(agent.ExitRestart, "")
			case errors.As(err, &ue):
				// The new image (same PID) notifies systemd too.
				sd.Export()
				err = execUpgrade(ue.Binary, ue.ReadyWithin, env.args) // returns only on failure
				log.Error("upgrade failed: starting the running binary again", "err", err)
				// The old run's instances still run in this process: a
				// clean re-exec of this binary resumes from the state.
				err = reexecSelf(env.args, "upgrade failed: "+err.Error())
				log.Error("cannot re-execute the running binary", "err", err)
			case up != nil && !closed(ready):
				log.Error("the new binary failed to start: rolling back", "err", err)
				sd.Export()
				if rerr := up.rollback("start failed: " + err.Error()); rerr != nil {
					log.Error("rollback failed", "err", rerr)
				}
			}
			return fail(exitFailure, "run: %v", err)
		},
	}
	fs := cmd.Flags()
	fs.String("config", "", "keepalived.conf or vipd YAML (.yaml/.yml) file (env VIPD_CONFIG)")
	fs.String("node-name", "", "this node's name in status, gossip and etcd (default: the hostname)")
	fs.StringSlice("config-id", nil, "use these ids for @id / @^id lines, like keepalived -i (default: the short hostname)")
	addSocketFlag(fs)
	fs.String("gossip-bind", "", "gossip listen address HOST:PORT, enables gossip (default when gossip is on: 0.0.0.0:7946)")
	fs.String("gossip-advertise", "", "gossip address HOST:PORT other nodes reach this one at (default: the bind address, or memberlist's pick)")
	fs.StringSlice("join", nil, "gossip members HOST:PORT to join at start, comma-separated; enables gossip")
	fs.String("gossip-key-file", "", "file (mode 0600) holding the base64 gossip encryption key of 16, 24 or 32 bytes; enables gossip")
	fs.String("gossip-tuning-file", "", "JSON or YAML file of memberlist timings (probe_interval, suspicion_mult, gossip_to_the_dead_time, ...); default: LAN")
	fs.StringSlice("etcd-endpoints", nil, "etcd endpoints URL, comma-separated; enables the store: shared config, priorities, maintenance, status")
	fs.String("etcd-prefix", "/vipd", "key prefix in etcd")
	fs.String("etcd-cacert", "", "CA certificate (PEM) that signed the etcd servers' certificates; enables TLS")
	fs.String("etcd-cert", "", "client certificate (PEM) for etcd, with --etcd-key")
	fs.String("etcd-key", "", "client key (PEM) for etcd, with --etcd-cert")
	fs.String("etcd-user-file", "", "file (mode 0600) holding the etcd user and password as user:password")
	fs.Bool("arbiter", true, "with etcd: enter MASTER only while holding the instance's claim in etcd (split-brain arbitration)")
	fs.Duration("arbiter-ttl", coord.DefaultArbiterTTL, "TTL of the arbiter's lease (whole seconds, at least 2s): how long a crashed master's claims outlive it")
	fs.String("arbiter-isolation", string(coord.IsolationRelease), "cut off from etcd and every gossip peer: release (give the VIPs up before the lease can expire elsewhere) or keep")
	fs.String("metrics-listen", "", "Prometheus /metrics listen address HOST:PORT (off when empty)")
	fs.String("log-format", "text", "log format: text or json (logs go to stderr)")
	fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Bool("preflight", false, "check this command line and --config, then exit (vipd upgrade asks a new binary this)")
	_ = fs.MarkHidden("preflight")
	fs.String("state-dir", "", "directory of the state that outlives the process, for restarts and upgrades without a re-election (default "+defaultStateRoot+"/NODE-NAME; \"none\": keep no state)")
	return cmd
}

// defaultStateRoot holds one state directory per node name, so several
// vipd on one host (one per network namespace) keep theirs apart.
const defaultStateRoot = "/var/lib/vipd"

// closed reports whether ch is closed (nil: no).
func closed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// runOptions reads `vipd run`'s settings from flags and environment.
func runOptions(v *viper.Viper) (agent.Options, error) {
	path, err := requireConfig(v)
	if err != nil {
		return agent.Options{}, err
	}
	node := v.GetString("node-name")
	isolation, err := coord.ParseIsolation(v.GetString("arbiter-isolation"))
	if err != nil {
		return agent.Options{}, fmt.Errorf("--arbiter-isolation: %w", err)
	}
	ttl := v.GetDuration("arbiter-ttl")
	if ttl < coord.MinArbiterTTL || ttl%time.Second != 0 {
		return agent.Options{}, fmt.Errorf("--arbiter-ttl %v: want whole seconds, at least %v (etcd's minimum lease TTL)", ttl, coord.MinArbiterTTL)
	}
	stateDir := v.GetString("state-dir")
	switch stateDir {
	case "":
		name := node
		if name == "" {
			name, _ = os.Hostname()
		}
		stateDir = filepath.Join(defaultStateRoot, name)
	case "none":
		stateDir = ""
	}
	return agent.Options{
		StateDir:         stateDir,
		Executable:       executablePath(),
		ConfigPath:       path,
		ConfigIDs:        splitList(v.GetStringSlice("config-id")),
		NodeName:         node,
		SocketPath:       v.GetString("socket"),
		GossipBind:       v.GetString("gossip-bind"),
		Join:             splitList(v.GetStringSlice("join")),
		GossipKeyFile:    v.GetString("gossip-key-file"),
		GossipAdvertise:  v.GetString("gossip-advertise"),
		GossipTuningFile: v.GetString("gossip-tuning-file"),
		EtcdEndpoints:    splitList(v.GetStringSlice("etcd-endpoints")),
		EtcdPrefix:       v.GetString("etcd-prefix"),
		EtcdCACert:       v.GetString("etcd-cacert"),
		EtcdCert:         v.GetString("etcd-cert"),
		EtcdKey:          v.GetString("etcd-key"),
		EtcdUserFile:     v.GetString("etcd-user-file"),
		ArbiterOff:       !v.GetBool("arbiter"),
		ArbiterTTL:       ttl,
		ArbiterIsolation: isolation,
		MetricsListen:    v.GetString("metrics-listen"),
		Version:          version,
	}, nil
}

// splitList flattens comma- and space-separated list values: flags arrive
// split already, VIPD_JOIN="a:1,b:2" from the environment does not.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
	}
	return out
}

// newLogger builds the daemon's logger on w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

// executablePath is the path vipd was started as, symlinks not resolved:
// vipd upgrade runs what is found there now (a symlink switched to a new
// release is followed; os.Executable would name the old release's file).
func executablePath() string {
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		if p, err := exec.LookPath(arg0); err == nil {
			arg0 = p
		}
	}
	if p, err := filepath.Abs(arg0); err == nil {
		return p
	}
	p, _ := os.Executable()
	return p
}

// preflightRun is `vipd run ... --preflight`: the flags parsed, the
// configuration loaded and valid, nothing started.
func preflightRun(env *cliEnv, opts agent.Options) error {
	_, diags := loader.Load(opts.ConfigPath, loader.Options{Keepalived: keepalived.Options{ConfigIDs: opts.ConfigIDs}})
	if err := diags.Err(); err != nil {
		return fail(exitFailure, "preflight: %v", err)
	}
	fmt.Fprintf(env.stdout, "preflight: vipd %s takes this command line and %s\n", version, opts.ConfigPath)
	return nil
}
