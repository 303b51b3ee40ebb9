#!/usr/bin/env bash
# Runs `go test -json "$@"` and prints a readable report: one line per package as it finishes,
# each failing test as it fails, then the output of every failed test and package, and a closing
# line "tests: N passed, N failed, N skipped". The raw JSON stays in bin/test-report.json.
# Exits with go test's status.
set -uo pipefail

report=${TEST_REPORT:-bin/test-report.json}
mkdir -p "$(dirname "$report")"

go test -json "$@" 2>&1 | tee "$report" | jq --unbuffered -rR '
	(try fromjson catch {Action: "raw", Output: .}) as $e
	| if $e.Action == "raw" then $e.Output
	  elif $e.Action == "build-output" then $e.Output | rtrimstr("\n")
	  elif ($e.Test == null) and ($e.Action == "pass" or $e.Action == "fail" or $e.Action == "skip") then
		({pass: "ok  ", fail: "FAIL", skip: "-   "}[$e.Action]) + " " + $e.Package
			+ (if $e.Elapsed then "\t" + ($e.Elapsed * 100 | round / 100 | tostring) + "s" else "" end)
	  elif ($e.Test != null) and $e.Action == "fail" then
		"     --- FAIL: " + $e.Test + " (" + $e.Package + ")"
	  else empty end'
status=${PIPESTATUS[0]}

# Details of failures, from the saved report.
jq -rsR '
	[split("\n")[] | select(length > 0) | (try fromjson catch null) | select(. != null)] as $ev
	| ($ev | map(select(.Test != null and .Action == "fail") | {Package, Test})) as $failed
	| ($ev | map(select(.Test == null and .Action == "fail") | .Package)) as $failedPkgs
	| ( $failed[] as $f
		| "\n=== output of " + $f.Test + " (" + $f.Package + ")\n"
		  + ([$ev[] | select(.Action == "output" and .Package == $f.Package and .Test == $f.Test) | .Output] | join("")) ),
	  ( $failedPkgs[] as $p
		| ([$ev[] | select(.Action == "output" and .Package == $p and .Test == null) | .Output]
		   | map(select(test("^(PASS|FAIL|ok  |FAIL\t)") | not)) | join("")) as $out
		| if ($out | length) > 0 then "\n=== package output of " + $p + "\n" + $out else empty end )
' "$report"

counts=$(jq -rsR '
	[split("\n")[] | select(length > 0) | (try fromjson catch null) | select(. != null)] as $ev
	| [ ([$ev[] | select(.Test != null and .Action == "pass")] | length),
	    ([$ev[] | select(.Test != null and .Action == "fail")] | length),
	    ([$ev[] | select(.Test != null and .Action == "skip")] | length),
	    ([$ev[] | select(.Test == null and .Action == "fail")] | length) ]
	| @tsv' "$report")
read -r passed failed skipped failedPkgs <<<"$counts"

echo
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# A build failure or a crashed test binary: count each failed package once.
	failed=$(( failedPkgs > 0 ? failedPkgs : 1 ))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
