#!/usr/bin/env bash
# A walk through vipd, step by step. `make demo` builds bin/vipd and runs this.
#
# Steps so far: validate the example keepalived.conf, convert it to vipd YAML, and show the
# FILE:LINE errors for a broken copy (beside what keepalived -t says about the same file).
# Live steps (namespaces, failover) are added as separate step_* functions and listed in STEPS.
#
# Run a subset: scripts/demo.sh check convert
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:/usr/sbin:/sbin"

VIPD=${VIPD:-bin/vipd}
EXAMPLE=deploy/examples/keepalived.conf
WORK=$(mktemp -d /tmp/vipd-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

STEPS=(check convert broken)

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
