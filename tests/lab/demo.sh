#!/usr/bin/env bash
# demo.sh SMTPKIT — `smtpkit demo` covers every scenario in under 30 s, and
# its exit status says whether every cause was the expected one. Which
# causes match is the business of the scenario tests (scenarios.tsv).
set -u
bin=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/smtpkit-lab-test.XXXXXX")
trap 'rm -rf "$dir"' EXIT
start=$(date +%s%N)
XDG_STATE_HOME="$dir" timeout 60 "$bin" demo --json >"$dir/demo.json" 2>"$dir/demo.err"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
fail=0
n=$("$bin" lab --list | wc -l)
got=$(grep -o '"scenario":"[a-z0-9-]*"' "$dir/demo.json" | wc -l)
matched=$(grep -o '"match":true' "$dir/demo.json" | wc -l)
[ "$got" = "$n" ] || { echo "FAIL: demo ran $got scenarios, want $n"; fail=1; }
if [ "$matched" = "$n" ]; then want_rc=0; else want_rc=70; fi
[ "$rc" = "$want_rc" ] || { echo "FAIL: exit $rc with $matched/$n matched"; fail=1; }
[ "$ms" -lt 30000 ] || { echo "FAIL: demo took $ms ms"; fail=1; }
XDG_STATE_HOME="$dir" timeout 60 "$bin" demo >"$dir/table.txt" 2>/dev/null
for sc in $("$bin" lab --list | awk '{print $1}'); do
  grep -q "^. $sc " "$dir/table.txt" || { echo "FAIL: no row for $sc"; fail=1; }
done
echo "demo: $matched of $n scenarios as expected, exit $rc, ${ms} ms"
[ $fail = 0 ] || cat "$dir/table.txt"
exit $fail
