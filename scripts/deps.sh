#!/usr/bin/env bash
# Installs what vipd's build and tests need on Debian 12, as root: the Debian packages the
# integration tests drive (keepalived, nftables, tcpdump, iproute2, etcd, ...), prometheus (for
# promtool, which lints vipd's /metrics in api/metrics' tests), a C compiler for the race detector,
# systemd (systemd-analyze verifies the units in deploy/), staticcheck, and for lvs/ipvs's kernel
# tests qemu, Debian's kernel, a static busybox and ipvsadm: the host's kernel has no IPVS, so
# integration/ipvsvm boots Debian's kernel (IPVS as modules) in a qemu VM from a busybox initramfs.
# Installing linux-image-amd64 in a container is fine: it only puts the image in /boot and the
# modules in /lib/modules; nothing boots it but that VM. Debian 12's own 6.1 lacks the twos
# scheduler, so Debian 12's 6.12 kernel (linux-image-6.12-amd64) is installed too: the VM boots the
# newest kernel with IPVS, and the tests want every scheduler keepalived names. Idempotent and quiet: when everything is
# present it only checks and prints nothing. It also makes sure the keepalived and prometheus
# services of the Debian packages are not running: the host must never run keepalived on its own
# interfaces, nor a Prometheus server.
set -euo pipefail

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

# staticcheck 2026.2.2 (v0.8.2) is the release that understands Go 1.26.
STATICCHECK_VERSION=v0.8.2

PACKAGES=(keepalived nftables tcpdump iproute2 jq etcd-server etcd-client procps iputils-ping
	make gcc libc6-dev git ca-certificates prometheus systemd
	qemu-system-x86 linux-image-amd64 linux-image-6.12-amd64 busybox-static ipvsadm)

say() { echo "deps: $*" >&2; }

sudo_prefix=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo_prefix=(sudo)
	fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ] && [ "${#sudo_prefix[@]}" -eq 0 ]; then
		say "missing packages ${missing[*]} and not root: install them as root (sudo $0)"
		exit 1
	fi
	say "installing ${missing[*]}"
	# Keep the packages' services from starting at install (keepalived must not run on the
	# host's interfaces; the tests start their own etcd). policy-rc.d is Debian's switch for it.
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo_prefix[@]}" tee "$policy" >/dev/null
		"${sudo_prefix[@]}" chmod 755 "$policy"
		made_policy=1
	fi
	cleanup() { if [ "$made_policy" = 1 ]; then "${sudo_prefix[@]}" rm -f "$policy"; fi; }
	trap cleanup EXIT
	log=$(mktemp)
	if ! { "${sudo_prefix[@]}" apt-get update -qq &&
		"${sudo_prefix[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		say "apt-get failed"
		exit 1
	fi
	rm -f "$log"
fi

# keepalived must not run on the host on its own, nor a Prometheus server (the prometheus package
# is here for promtool only): stop the packages' services.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	for svc in keepalived prometheus; do
		if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
			say "disabling and stopping the $svc service"
			"${sudo_prefix[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
		fi
	done
fi
# Without systemd, a package's init script may have started one: end only that daemon, found by
# the package's pid file and running in the host's own network namespace, never a keepalived
# that a test started inside a lab namespace.
stop_pidfile() { # NAME PIDFILE
	local name="$1" pidfile="$2" pid
	[ -r "$pidfile" ] || return 0
	pid="$(tr -dc '0-9' <"$pidfile")"
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] &&
		[ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/1/ns/net)" ]; then
		say "stopping the host's $name (pid $pid, started by the package)"
		"${sudo_prefix[@]}" kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			[ -e "/proc/$pid" ] || break
			sleep 0.1
		done
	fi
}
stop_pidfile keepalived /run/keepalived.pid
stop_pidfile prometheus /run/prometheus/prometheus.pid

# staticcheck, pinned.
if ! command -v go >/dev/null 2>&1; then
	say "go not found on PATH nor in /usr/local/go/bin"
	exit 1
fi
if ! staticcheck -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})"; then
	say "installing staticcheck $STATICCHECK_VERSION"
	GOFLAGS=-buildvcs=false go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
