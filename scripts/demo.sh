#!/usr/bin/env bash
# A walk through vipd, step by step. `make demo` builds bin/vipd and runs this.
#
# Steps: validate the example keepalived.conf, convert it to vipd YAML, and show the FILE:LINE
# errors for a broken copy (beside what keepalived -t says about the same file); then, live (as
# root), a lab of network namespaces with two vipd nodes and one real keepalived in one VRID:
# election, a graceful hand-over, a preempting return and a crash failover, each gap read off
# the wire and set beside the protocol bound. The lab is torn down on exit, also on ^C.
#
# Run a subset: scripts/demo.sh check convert; only the lab: scripts/demo.sh live
# The live part runs VRRPv2 at advert_int 1 with PASS auth, keepalived's defaults and what most
# installations run; DEMO_VRRP_VERSION=3 runs VRRPv3 at 100 ms instead.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:/usr/sbin:/sbin"

VIPD=${VIPD:-bin/vipd}
EXAMPLE=deploy/examples/keepalived.conf
WORK=$(mktemp -d /tmp/vipd-demo.XXXXXX)

STEPS=(check convert broken live)

bold=$(tput bold 2>/dev/null || true)
reset=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$reset"; }
show() { printf '%s$ %s%s\n' "$bold" "$*" "$reset"; }

# show_run runs a command, printing it first; a non-zero exit is reported, not fatal.
show_run() {
	show "$*"
	set +e
	"$@"
	local rc=$?
	set -e
	echo "(exit status $rc)"
	return 0
}

step_check() {
	step "1. vipd check: validate a keepalived.conf, like keepalived -t"
	echo "vipd reads keepalived's own syntax. Warnings name FILE:LINE; exit status 0 = valid."
	show_run "$VIPD" check --config "$EXAMPLE"
}

step_convert() {
	step "2. vipd convert: the same configuration as vipd YAML"
	show "$VIPD convert $EXAMPLE > $WORK/vipd.yaml"
	"$VIPD" convert "$EXAMPLE" >"$WORK/vipd.yaml"
	sed -n '1,40p' "$WORK/vipd.yaml"
	local lines
	lines=$(wc -l <"$WORK/vipd.yaml")
	if [ "$lines" -gt 40 ]; then echo "... ($lines lines in all)"; fi
	echo "The YAML validates too:"
	show_run "$VIPD" check --config "$WORK/vipd.yaml"
}

step_broken() {
	step "3. A broken copy: errors point at FILE:LINE, exit status 1"
	local broken="$WORK/keepalived-broken.conf"
	# Break two values: the first VRID out of range, the second priority not a number.
	awk '
		/^[[:space:]]*virtual_router_id [0-9]+/ && !vrid { sub(/virtual_router_id [0-9]+/, "virtual_router_id 300"); vrid = 1 }
		/^[[:space:]]*priority [0-9]+/ && ++prio == 2 { sub(/priority [0-9]+/, "priority high") }
		{ print }' "$EXAMPLE" >"$broken"
	echo "Changed lines:"
	diff <(cat -n "$EXAMPLE") <(cat -n "$broken") | grep '^>' || true
	show_run "$VIPD" check --config "$broken"
	if command -v keepalived >/dev/null 2>&1; then
		echo
		echo "For comparison, keepalived's own check of the same file (it only parses, starts nothing):"
		show_run keepalived -t -l -f "$broken"
	fi
}

# ---------------------------------------------------------------------------------------------
# The live lab. Namespaces are named $P<name>; nothing is created outside them (the veth pairs
# are made inside the switch namespace and moved into the nodes), so the host's interfaces are
# never touched.

P="vd$$-"                  # unique per run: two demos can run side by side
SUBNET=10.98.0             # exists only inside the lab
VIP=$SUBNET.100
VRID=51
VRRP_VERSION=${DEMO_VRRP_VERSION:-2}
declare -A NODE_IP=([n1]=$SUBNET.1 [n2]=$SUBNET.2 [n3]=$SUBNET.3)
declare -A PID=()          # node -> pid of its daemon
NAMESPACES=()              # made so far, for the teardown
GAP_TOOL=$WORK/gap

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local ns pid
	for pid in "${PID[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
	# Anything else still running inside our namespaces (tcpdump, keepalived's VRRP child).
	for ns in "${NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
	done
	for ((i = ${#NAMESPACES[@]} - 1; i >= 0; i--)); do
		ip netns del "${NAMESPACES[i]}" 2>/dev/null || true
	done
	if [ "${#NAMESPACES[@]}" -gt 0 ]; then
		echo "demo: lab torn down (namespaces ${P}*: $(ip netns list 2>/dev/null | grep -c "^$P" || true) left)"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for SECONDS WHAT CMD...: poll CMD every 50 ms until it succeeds; fail the demo after SECONDS.
wait_for() {
	local secs=$1 what=$2; shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "demo: timed out after ${secs}s waiting for $what" >&2
			dump_logs
			return 1
		fi
		sleep 0.05
	done
}

dump_logs() {
	local f
	for f in "$WORK"/*.log; do
		[ -e "$f" ] || continue
		echo "--- last lines of $(basename "$f"):" >&2
		tail -n 15 "$f" >&2
	done
}

has_vip() { ip -n "$P$1" -br addr show dev eth0 | grep -qw "$VIP/24"; }
holder() {
	local n out=""
	for n in n1 n2 n3; do if has_vip "$n"; then out+="$n "; fi; done
	echo "${out:-nobody}"
}
only_holder() { [ "$(holder)" = "$1 " ]; }

# conf NODE PRIORITY: keepalived.conf syntax for vipd and keepalived alike.
conf() {
	local node=$1 prio=$2 timing auth=""
	if [ "$VRRP_VERSION" = 3 ]; then
		timing=$'    version 3\n    advert_int 0.1'
	else
		timing=$'    version 2\n    advert_int 1'
		auth=$'    authentication {\n        auth_type PASS\n        auth_pass demo1\n    }'
	fi
	cat <<-CONF
	global_defs {
	    router_id $node
	    script_user root
	    enable_script_security
	}
	vrrp_instance VI_DEMO {
	    state BACKUP
	    interface eth0
	    virtual_router_id $VRID
	    priority $prio
	$timing
	$auth
	    virtual_ipaddress {
	        $VIP/24
	    }
	}
	CONF
}

lab_up() {
	NAMESPACES+=("${P}sw")
	ip netns add "${P}sw"
	ip -n "${P}sw" link set lo up
	ip -n "${P}sw" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
	ip -n "${P}sw" link set br0 up
	local n port=0
	for n in n1 n2 n3; do
		NAMESPACES+=("$P$n")
		ip netns add "$P$n"
		ip -n "$P$n" link set lo up
		port=$((port + 1))
		ip -n "${P}sw" link add "p$port" type veth peer name eth0 netns "$P$n"
		ip -n "${P}sw" link set "p$port" master br0 up
		ip -n "$P$n" addr add "${NODE_IP[$n]}/24" dev eth0
		ip -n "$P$n" link set eth0 up
	done
}

start_vipd() {
	local n=$1 prio=$2
	conf "$n" "$prio" >"$WORK/$n.conf"
	# Not through in_ns: a function in the background runs in a subshell, and $! would be
	# that shell, not the daemon the steps signal. ip netns exec execs the command.
	ip netns exec "$P$n" "$VIPD" run --config "$WORK/$n.conf" --socket "$WORK/$n.sock" --node-name "$n" --state-dir "$WORK/$n-state" \
		>>"$WORK/$n-vipd.log" 2>&1 &
	PID[$n]=$!
}

start_keepalived() {
	local n=$1 prio=$2
	conf "$n" "$prio" >"$WORK/$n.conf"
	ip netns exec "$P$n" keepalived --dont-fork --log-console --vrrp --use-file "$WORK/$n.conf" \
		--pid "$WORK/$n-keepalived.pid" --vrrp_pid "$WORK/$n-vrrp.pid" \
		--checkers_pid "$WORK/$n-checkers.pid" >>"$WORK/$n-keepalived.log" 2>&1 &
	PID[$n]=$!
}

vipd_state() { "$VIPD" status -o json --socket "$WORK/$1.sock" 2>/dev/null | grep -q "\"state\": *\"$2\""; }

# capture_start NAME: tcpdump of VRRP on n3's eth0 (the keepalived node watches the failover).
capture_start() {
	local name=$1
	ip netns exec "${P}n3" tcpdump -i eth0 -n -U -Z root --immediate-mode --time-stamp-precision=nano \
		-w "$WORK/$name.pcap" 'ip proto 112' >"$WORK/$name-tcpdump.out" 2>&1 &
	CAP_PID=$!
	wait_for 10 "tcpdump listening" grep -q "listening on" "$WORK/$name-tcpdump.out"
}

# capture_has NAME NODE: capture NAME holds an advert sent by NODE.
capture_has() {
	tcpdump -n -r "$WORK/$1.pcap" 2>/dev/null | grep -q "IP ${NODE_IP[$2]} > "
}

# capture_stop NAME NODE: stop capture NAME once it holds NODE's first advert as new master.
capture_stop() {
	wait_for 5 "an advert of $2 in the capture" capture_has "$1" "$2"
	kill -INT "$CAP_PID" 2>/dev/null || true
	wait "$CAP_PID" 2>/dev/null || true
}

# gap NAME OLD NEW: the failover gap on the wire from capture NAME.
gap() {
	"$GAP_TOOL" "$WORK/$1.pcap" "$VRID" "${NODE_IP[$2]}" "${NODE_IP[$3]}"
}

status_of() {
	show "vipd status --socket $1.sock"
	"$VIPD" status -o table --socket "$WORK/$1.sock" || true
}

step_live() {
	step "4. A live lab: two vipd nodes and one keepalived in one VRID"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the live steps need root (network namespaces); run sudo make demo"
		return 0
	fi
	if ! command -v keepalived >/dev/null 2>&1 || ! command -v tcpdump >/dev/null 2>&1; then
		echo "demo: keepalived and tcpdump are needed for the live steps: run scripts/deps.sh" >&2
		return 1
	fi
	show "go build -o $GAP_TOOL ./integration/lab/cmd/gap   # reads failover gaps off a pcap"
	go build -o "$GAP_TOOL" ./integration/lab/cmd/gap

	local before
	before=$(ip netns list 2>/dev/null | grep -c "^$P" || true)
	lab_up
	local mode="VRRPv2, advert_int 1 s, PASS auth (keepalived's defaults)"
	if [ "$VRRP_VERSION" = 3 ]; then mode="VRRPv3, advert_int 100 ms"; fi
	cat <<-EOF
	Namespaces ${P}sw (a bridge) and ${P}n1, ${P}n2, ${P}n3 on $SUBNET.0/24, nothing on the host:
	  n1 $SUBNET.1  vipd        priority 150
	  n2 $SUBNET.2  vipd        priority 100
	  n3 $SUBNET.3  keepalived  priority 50
	VRID $VRID, VIP $VIP, $mode. All three read the same keepalived.conf
	(only router_id and priority differ):
	EOF
	conf n1 150 | sed 's/^/    /'
	start_keepalived n3 50
	start_vipd n2 100
	start_vipd n1 150

	step "5. Election: the highest priority, n1, becomes MASTER and holds the VIP"
	wait_for 15 "n1 to hold $VIP" only_holder n1
	wait_for 10 "n2 BACKUP" vipd_state n2 BACKUP
	status_of n1
	status_of n2
	show "ip -n ${P}n1 -br addr show dev eth0"
	ip -n "${P}n1" -br addr show dev eth0
	echo "VIP holder: $(holder)"

	step "6. Graceful hand-over: SIGTERM to n1; it sends priority 0, n2 takes over after Skew_Time"
	capture_start handover
	wait_for 5 "an advert of n1 in the capture" capture_has handover n1
	show "kill -TERM ${PID[n1]}   # vipd on n1"
	kill -TERM "${PID[n1]}"
	wait "${PID[n1]}" 2>/dev/null || true
	unset 'PID[n1]'
	wait_for 10 "n2 to hold $VIP" only_holder n2
	capture_stop handover n2
	gap handover n1 n2
	echo "VIP holder: $(holder)"
	status_of n2

	step "7. n1 comes back: higher priority, so it preempts n2"
	start_vipd n1 150
	wait_for 15 "n1 to hold $VIP again" only_holder n1
	wait_for 10 "n2 BACKUP again" vipd_state n2 BACKUP
	echo "VIP holder: $(holder)"
	status_of n2

	step "8. Crash: kill -9 n1; n2 takes over after Master_Down_Interval"
	capture_start crash
	# Crash right after an advert of n1 has been seen on the wire, so the capture holds it.
	wait_for 5 "an advert of n1 in the capture" capture_has crash n1
	show "kill -9 ${PID[n1]}   # vipd on n1; a killed daemon leaves its VIP behind,"
	kill -9 "${PID[n1]}"
	wait "${PID[n1]}" 2>/dev/null || true
	unset 'PID[n1]'
	show "ip -n ${P}n1 addr del $VIP/24 dev eth0   # so remove it, as a dead box would"
	ip -n "${P}n1" addr del "$VIP/24" dev eth0
	wait_for 15 "n2 to hold $VIP" only_holder n2
	capture_stop crash n2
	gap crash n1 n2
	echo "VIP holder: $(holder)"
	status_of n2
	local complaints
	complaints=$(grep -ciE 'invalid|mismatch|bad |wrong|discarded' "$WORK/n3-keepalived.log" || true)
	echo "keepalived on n3 (priority 50) ran beside vipd as a plain VRRP peer throughout; it logged"
	echo "$complaints complaints about an advert. Its state changes:"
	grep -E 'Entering|STATE' "$WORK/n3-keepalived.log" | sed -E 's/^/    /' | tail -n 5 || true

	step "9. Teardown"
	cleanup_lab
	echo "namespaces ${P}*: $before before the demo, $(ip netns list 2>/dev/null | grep -c "^$P" || true) now"
}

# cleanup_lab stops the daemons and deletes the namespaces (the EXIT trap does the same on error).
cleanup_lab() {
	local n pid
	for n in "${!PID[@]}"; do
		kill -TERM "${PID[$n]}" 2>/dev/null || true
	done
	for n in "${!PID[@]}"; do
		wait "${PID[$n]}" 2>/dev/null || true
		unset "PID[$n]"
	done
	local ns
	for ns in "${NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
	done
	for ((i = ${#NAMESPACES[@]} - 1; i >= 0; i--)); do
		show "ip netns del ${NAMESPACES[i]}"
		ip netns del "${NAMESPACES[i]}"
	done
	NAMESPACES=()
}

main() {
	if [ ! -x "$VIPD" ]; then
		echo "demo: $VIPD not built: run make demo (or make build)" >&2
		exit 1
	fi
	local steps=("$@")
	if [ "${#steps[@]}" -eq 0 ]; then steps=("${STEPS[@]}"); fi
	for s in "${steps[@]}"; do
		if ! declare -F "step_$s" >/dev/null; then
			echo "demo: no step $s (steps: ${STEPS[*]})" >&2
			exit 1
		fi
		"step_$s"
	done
	printf '\n%sdemo: done%s\n' "$bold" "$reset"
}

main "$@"
