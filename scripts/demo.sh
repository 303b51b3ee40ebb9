#!/usr/bin/env bash
# A walk through vipd, step by step. `make demo` builds bin/vipd and runs this.
#
# Steps: validate the example keepalived.conf, convert it to vipd YAML, and show the FILE:LINE
# errors for a broken copy (beside what keepalived -t says about the same file); then, live (as
# root), a fleet in network namespaces: three vipd nodes joined by gossip and one classic
# keepalived node in one VRID, a three-member etcd. The timeline: election; the fleet seen from a
# node (keepalived listed as a classic peer); an etcdctl put of a priority and the VIP following
# it; maintenance on and off; reloads that move nothing; a restart that moves nothing; a crash
# failover with the gap read off the wire; a VRRP-only split brain caught and arbitrated by etcd;
# a virtual server put in etcd appearing in every node's vipd lvs. The lab is torn down on exit,
# also on ^C; nothing is left.
#
# Run a subset: scripts/demo.sh check convert; only the lab: scripts/demo.sh live.
# The demo pauses before each live step when it runs on a terminal; DEMO_FAST=1 never pauses.
# DEMO_PREFIX sets the namespaces' name prefix (default vd<pid>-).
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

P=${DEMO_PREFIX:-vd$$-}     # unique per run: two demos can run side by side
SUBNET=10.98.0              # exists only inside the lab
VIP=$SUBNET.100
VRID=51
INST=VI_DEMO
declare -A NODE_IP=([n1]=$SUBNET.1 [n2]=$SUBNET.2 [n3]=$SUBNET.3 [ka]=$SUBNET.4 [e1]=$SUBNET.21 [e2]=$SUBNET.22 [e3]=$SUBNET.23)
declare -A PRIO=([n1]=150 [n2]=120 [n3]=110 [ka]=100)
VIPD_NODES=(n1 n2 n3)
ALL_NODES=(n1 n2 n3 ka)
declare -A PID=()           # node (or etcd member) -> pid of its daemon
NAMESPACES=()               # made so far, for the teardown
GAP_TOOL=$WORK/gap
HOLDERS_TOOL=$WORK/holders
ETCD_EPS="http://$SUBNET.21:2379,http://$SUBNET.22:2379,http://$SUBNET.23:2379"

# The script's own stdout, kept on fd 3: a ^C can run cleanup while a wait_for check has stdout
# on /dev/null, and the teardown line must still reach the operator. Daemons are started with fd 3
# closed, so none keeps the caller's stdout open.
exec 3>&1

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
		echo "demo: lab torn down (namespaces ${P}*: $(ip netns list 2>/dev/null | grep -c "^$P" || true) left)" >&3
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pause: on a terminal, wait for Enter before the next step (DEMO_FAST=1: never).
pause() {
	if [ -z "${DEMO_FAST:-}" ] && [ -t 0 ] && [ -t 1 ]; then
		read -r -p "(Enter for the next step) " _ || true
	fi
}

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
	for n in "${ALL_NODES[@]}"; do if has_vip "$n"; then out+="$n "; fi; done
	echo "${out:-nobody}"
}
only_holder() { [ "$(holder)" = "$1 " ]; }

# watch_holder SECONDS WANT: sample the VIP's holders every 20 ms for SECONDS (through netlink,
# integration/lab/cmd/holders); fail if anyone but WANT holds it, or two do, or nobody, at any
# sample.
watch_holder() {
	local ns=() n
	for n in "${ALL_NODES[@]}"; do ns+=("$P$n"); done
	if ! "$HOLDERS_TOOL" "$VIP" "$1" "$2" "${ns[@]}"; then
		dump_logs
		return 1
	fi
}

transitions() { grep -c 'msg="entering ' "$WORK/$1-vipd.log" 2>/dev/null || true; }

# conf NODE: keepalived.conf syntax for vipd and keepalived alike (only router_id and priority
# differ). VRRPv2 at advert_int 1 with PASS auth: keepalived's defaults.
conf() {
	local node=$1
	cat <<-CONF
	global_defs {
	    router_id $node
	    script_user root
	    enable_script_security
	}
	vrrp_instance $INST {
	    state BACKUP
	    interface eth0
	    virtual_router_id $VRID
	    priority ${PRIO[$node]}
	    advert_int 1
	    authentication {
	        auth_type PASS
	        auth_pass demo1
	    }
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
	for n in n1 n2 n3 ka e1 e2 e3; do
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

start_etcd() {
	local m cluster=""
	for m in e1 e2 e3; do cluster+="$m=http://${NODE_IP[$m]}:2380,"; done
	for m in e1 e2 e3; do
		local ip=${NODE_IP[$m]}
		ip netns exec "$P$m" etcd --name "$m" --data-dir "$WORK/$m.etcd" \
			--listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
			--listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
			--initial-cluster "${cluster%,}" --initial-cluster-state new --initial-cluster-token "$P" \
			--log-level warn >>"$WORK/$m-etcd.log" 2>&1 3>&- &
		PID[$m]=$!
	done
	wait_for 30 "the etcd cluster healthy" ectl endpoint health --cluster
}

# ectl ARGS...: etcdctl from e1's namespace against every member.
ectl() { ip netns exec "${P}e1" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" --dial-timeout 2s --command-timeout 3s "$@"; }
ectl_show() { show "etcdctl $*"; ectl "$@"; }

start_vipd() {
	local n=$1
	conf "$n" >"$WORK/$n.conf"
	local join=()
	if [ "$n" != n1 ]; then join=(--join "${NODE_IP[n1]}:7946"); fi
	# Not through a function in the background: $! must be the daemon the steps signal.
	ip netns exec "$P$n" "$VIPD" run --config "$WORK/$n.conf" --socket "$WORK/$n.sock" --node-name "$n" \
		--state-dir "$WORK/$n-state" --etcd-endpoints "$ETCD_EPS" --gossip-bind "${NODE_IP[$n]}:7946" "${join[@]}" \
		>>"$WORK/$n-vipd.log" 2>&1 3>&- &
	PID[$n]=$!
}

start_keepalived() {
	local n=$1
	conf "$n" >"$WORK/$n.conf"
	ip netns exec "$P$n" keepalived --dont-fork --log-console --vrrp --use-file "$WORK/$n.conf" \
		--pid "$WORK/$n-keepalived.pid" --vrrp_pid "$WORK/$n-vrrp.pid" \
		--checkers_pid "$WORK/$n-checkers.pid" >>"$WORK/$n-keepalived.log" 2>&1 3>&- &
	PID[$n]=$!
}

vipd_state() { "$VIPD" status -o json --socket "$WORK/$1.sock" 2>/dev/null | grep -q "\"state\": *\"$2\""; }
vcli() { local n=$1; shift; show "vipd $* --socket $n.sock   # on $n"; "$VIPD" "$@" --socket "$WORK/$n.sock"; }

# capture_start NAME: tcpdump of VRRP on ka's eth0 (the keepalived node watches the failover).
capture_start() {
	local name=$1
	ip netns exec "${P}ka" tcpdump -i eth0 -n -U -Z root --immediate-mode --time-stamp-precision=nano \
		-w "$WORK/$name.pcap" 'ip proto 112' >"$WORK/$name-tcpdump.out" 2>&1 3>&- &
	CAP_PID=$!
	wait_for 10 "tcpdump listening" grep -q "listening on" "$WORK/$name-tcpdump.out"
}

capture_has() { tcpdump -n -r "$WORK/$1.pcap" 2>/dev/null | grep -q "IP ${NODE_IP[$2]} > "; }

capture_stop() {
	wait_for 10 "an advert of $2 in the capture" capture_has "$1" "$2"
	kill -INT "$CAP_PID" 2>/dev/null || true
	wait "$CAP_PID" 2>/dev/null || true
}

gap() { "$GAP_TOOL" "$WORK/$1.pcap" "$VRID" "${NODE_IP[$2]}" "${NODE_IP[$3]}"; }

step_live() {
	step "4. A live fleet: three vipd nodes, one keepalived node, a three-member etcd"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the live steps need root (network namespaces); run sudo make demo"
		return 0
	fi
	local t
	for t in keepalived tcpdump etcd etcdctl nft; do
		if ! command -v "$t" >/dev/null 2>&1; then
			echo "demo: $t is needed for the live steps: run scripts/deps.sh" >&2
			return 1
		fi
	done
	show "go build -o $GAP_TOOL ./integration/lab/cmd/gap   # reads failover gaps off a pcap"
	go build -o "$GAP_TOOL" ./integration/lab/cmd/gap
	show "go build -o $HOLDERS_TOOL ./integration/lab/cmd/holders   # who holds the VIP, every 20 ms"
	go build -o "$HOLDERS_TOOL" ./integration/lab/cmd/holders
	lab_up
	cat <<-EOF
	Namespaces ${P}sw (a bridge) and one per node on $SUBNET.0/24, nothing on the host:
	  n1 $SUBNET.1  vipd        priority 150   gossip, etcd
	  n2 $SUBNET.2  vipd        priority 120   gossip, etcd
	  n3 $SUBNET.3  vipd        priority 110   gossip, etcd
	  ka $SUBNET.4  keepalived  priority 100   plain VRRP, no gossip, no etcd
	  e1 e2 e3 $SUBNET.21-23  one etcd cluster
	VRID $VRID, VIP $VIP, VRRPv2 at advert_int 1 s with PASS auth (keepalived's defaults). All four
	read the same keepalived.conf; only router_id and priority differ:
	EOF
	conf n1 | sed 's/^/    /'
	start_etcd
	pause

	step "5. keepalived starts alone and takes the VIP; the vipd nodes join and see it as a classic peer"
	start_keepalived ka
	wait_for 15 "ka (keepalived) to hold $VIP" only_holder ka
	echo "VIP holder: $(holder)"
	start_vipd n1
	wait_for 10 "n1's gossip" grep -q 'msg="gossip started"' "$WORK/n1-vipd.log"
	start_vipd n2
	start_vipd n3
	wait_for 10 "the fleet view on n2 with keepalived as a classic peer" sh -c "\"$VIPD\" status --fleet -o json --socket \"$WORK/n2.sock\" | grep -q '\"addr\": *\"$SUBNET.4\"'"
	vcli n2 status --fleet
	pause

	step "6. Election: n1 (priority 150) preempts keepalived once it holds the claim in etcd"
	wait_for 20 "n1 to hold $VIP" only_holder n1
	wait_for 10 "n2 BACKUP" vipd_state n2 BACKUP
	wait_for 10 "n3 BACKUP" vipd_state n3 BACKUP
	vcli n1 status
	ectl_show get --prefix /vipd/arbiter/
	echo "VIP holder: $(holder); keepalived on ka logged:"
	grep -E 'Entering|STATE' "$WORK/ka-keepalived.log" | sed -E 's/^/    /' | tail -n 3
	pause

	step "7. One etcdctl put moves the VIP: n3's priority to 200"
	ectl_show put /vipd/priority/$INST/n3 200
	wait_for 15 "n3 to hold $VIP" only_holder n3
	echo "VIP holder: $(holder)   (n3 asked n1 to yield through etcd: arbiter/preempt/)"
	grep -h 'arbiter: asked the holder to yield\|arbiter: demoting' "$WORK"/n[13]-vipd.log | sed -E 's/^/    /' | tail -n 2
	pause

	step "8. Maintenance: n3 hands over with a priority-0 advert and stays out; the key gone, it is back"
	ectl_show put /vipd/maintenance/n3 "disk swap"
	wait_for 10 "n1 to hold $VIP" only_holder n1
	wait_for 5 "n3 in FAULT" vipd_state n3 FAULT
	echo "VIP holder: $(holder); n3 is FAULT:"
	"$VIPD" status --socket "$WORK/n3.sock" | sed -E 's/^/    /'
	ectl_show del /vipd/maintenance/n3
	wait_for 15 "n3 to hold $VIP again" only_holder n3
	ectl_show del /vipd/priority/$INST/n3
	wait_for 15 "n1 to hold $VIP again" only_holder n1
	echo "VIP holder: $(holder)"
	pause

	step "9. Reloads move nothing: three SIGHUPs on the master, the VIP watched every 20 ms"
	local before
	before=$(transitions n1)
	show "kill -HUP ${PID[n1]}   # three times, 300 ms apart"
	(for _ in 1 2 3; do kill -HUP "${PID[n1]}"; sleep 0.3; done) &
	local hups=$!
	watch_holder 3 n1
	wait "$hups"
	echo "n1's transitions: $before before, $(transitions n1) after"
	pause

	step "10. A restart moves nothing: SIGQUIT (what systemctl restart sends), then start again"
	show "kill -QUIT ${PID[n1]}; vipd run ... (same --state-dir)"
	watch_holder 6 n1 &
	local w=$!
	kill -QUIT "${PID[n1]}"
	wait "${PID[n1]}" 2>/dev/null || true
	start_vipd n1
	wait "$w"
	grep -h 'resumed MASTER\|kept the lease of the previous run' "$WORK/n1-vipd.log" | sed -E 's/^/    /' | tail -n 2
	pause

	step "11. Crash: kill -9 n1; n2 takes over after Master_Down_Interval, gap read off the wire"
	capture_start crash
	wait_for 5 "an advert of n1 in the capture" capture_has crash n1
	show "kill -9 ${PID[n1]}   # vipd on n1; a killed daemon leaves its VIP behind,"
	kill -9 "${PID[n1]}"
	wait "${PID[n1]}" 2>/dev/null || true
	unset 'PID[n1]'
	show "ip -n ${P}n1 addr del $VIP/24 dev eth0   # so remove it, as a dead box would"
	ip -n "${P}n1" addr del "$VIP/24" dev eth0
	wait_for 20 "n2 to hold $VIP" only_holder n2
	capture_stop crash n2
	gap crash n1 n2
	echo "VIP holder: $(holder)   (n2 waited for n1's lease to go, as well as for its down timer)"
	start_vipd n1
	wait_for 20 "n1 back and holding $VIP" only_holder n1
	pause

	step "12. A VRRP-only split brain: VRRP between n1 and n2 dropped; etcd keeps n2 out of MASTER"
	show "nft (in n2): drop VRRP from $SUBNET.1"
	ip netns exec "${P}n2" nft -f - <<-NFT
	table inet demo_vrrp {
	    chain in {
	        type filter hook input priority -300; policy accept;
	        ip saddr $SUBNET.1 meta l4proto 112 drop
	    }
	}
	NFT
	wait_for 15 "n2 held out of MASTER by the arbiter" grep -q 'MASTER held back by the gate' "$WORK/n2-vipd.log"
	watch_holder 5 n1
	grep -h 'MASTER held back by the gate' "$WORK/n2-vipd.log" | sed -E 's/^/    /' | tail -n 1
	"$VIPD" status --socket "$WORK/n2.sock" | sed -E 's/^/    /'
	echo "Without etcd, n2 would now be MASTER too (plain VRRP cannot see the other master)."
	show "nft delete table inet demo_vrrp   # in n2: VRRP back"
	ip netns exec "${P}n2" nft delete table inet demo_vrrp
	watch_holder 3 n1
	pause

	step "13. A virtual server put in etcd reaches every node's LVS side"
	ectl_show put "/vipd/config/virtual_servers/$VIP 80" "virtual_server $VIP 80 {
    lb_algo rr
    lb_kind DR
    real_server $SUBNET.31 80 {
        weight 2
    }
}"
	local n
	for n in "${VIPD_NODES[@]}"; do
		wait_for 15 "the virtual server in $n's vipd lvs" sh -c "\"$VIPD\" lvs --socket \"$WORK/$n.sock\" | grep -q '$VIP:80'"
	done
	vcli n2 lvs
	echo "(this kernel may have no IPVS: vipd then shows the desired pool and says so)"
	pause

	step "14. Teardown"
	local left
	cleanup_lab
	left=$(ip netns list 2>/dev/null | grep -c "^$P" || true)
	echo "namespaces ${P}*: $left left"
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
		ip netns del "${NAMESPACES[i]}"
	done
	echo "deleted the namespaces ${P}sw ${P}n1 .. ${P}e3 (${#NAMESPACES[@]} in all)"
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
