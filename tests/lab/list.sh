#!/usr/bin/env bash
# list.sh SMTPKIT SCENARIOS.TSV — `smtpkit lab --list` names every SPEC §5
# scenario (scenarios.tsv holds SPEC §5's list), one line each, with a
# description and a source URL.
set -u
bin=$1 table=$2
out=$("$bin" lab --list) || { echo "FAIL: lab --list exited $?"; exit 1; }
fail=0
while IFS=$'\t' read -r name _; do
  case $name in '#'* | '') continue ;; esac
  line=$(grep -E "^$name +[^ ]" <<<"$out")
  if [ -z "$line" ]; then
    echo "FAIL: --list does not name $name"
    fail=1
  elif ! grep -q '(source: https\?://[^ ]*)$' <<<"$line"; then
    echo "FAIL: no source for $name: $line"
    fail=1
  fi
done <"$table"
want=$(grep -cv -e '^#' -e '^$' "$table")
got=$(wc -l <<<"$out")
[ "$got" -ge "$want" ] || { echo "FAIL: $got lines, want $want"; fail=1; }
[ $fail = 0 ] && echo "ok: $got scenarios listed with sources"
exit $fail
