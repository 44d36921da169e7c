#!/usr/bin/env bash
# scenario.sh SMTPKIT NAME CAUSE EXIT [SEND-OPTION...]
#
# Starts `smtpkit lab --scenario NAME` on free ports, runs `smtpkit send
# --json` against its plain port with the lab's credentials (alice /
# "correct horse", its CA) and the given options, and checks the cause
# (SPEC §3, §5) and the exit code (SPEC §2). @token in the options logs in
# with an OAuth2 token the lab refuses instead of the password; @big sends a
# 20 KB message. The lab must survive the session and stop on SIGTERM.
set -u
bin=$1 name=$2 want_cause=$3 want_exit=$4
shift 4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lab_lib.sh"

dir=$(mktemp -d "${TMPDIR:-/tmp}/smtpkit-lab-test.XXXXXX")
cleanup() {
  [ -n "$LAB_PID" ] && kill -KILL "$LAB_PID" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

lab_start "$bin" "$name" "$dir" || exit 1

auth=(--password-env LAB_PASSWORD)
body=(--body "A message from the smtpkit lab tests.")
opts=()
for o in "$@"; do
  case $o in
  @token) auth=(--oauth2-token-env LAB_TOKEN) ;;
  @big)
    head -c 20480 /dev/zero | tr '\0' 'x' | fold -w 76 >"$dir/big.txt"
    body=(--body-file "$dir/big.txt")
    ;;
  *) opts+=("$o") ;;
  esac
done

XDG_STATE_HOME="$dir/state" LAB_PASSWORD='correct horse' LAB_TOKEN=expired-token \
  timeout 60 "$bin" send --json -s 127.0.0.1 -p "$LAB_PORT" \
  --ca-file "$LAB_CA" -u alice "${auth[@]}" -f alice@example.test \
  --to bob@example.test --subject "lab test $name" "${body[@]}" \
  ${opts[@]+"${opts[@]}"} >"$dir/send.json" 2>"$dir/send.err" </dev/null
rc=$?
cause=$(grep -o '"cause":"[a-z_]*"' "$dir/send.json" | head -1 | cut -d'"' -f4)

fail=0
if [ "$cause" != "$want_cause" ]; then
  echo "FAIL $name: cause '$cause', want '$want_cause'"
  fail=1
fi
if [ "$rc" != "$want_exit" ]; then
  echo "FAIL $name: exit $rc, want $want_exit"
  fail=1
fi
lab_stop || fail=1
if [ $fail = 0 ]; then
  echo "ok $name: $cause, exit $rc"
  exit 0
fi
echo "--- send --json:"; cat "$dir/send.json"
echo "--- send stderr:"; cat "$dir/send.err"
echo "--- lab stderr:"; cat "$dir/lab.err"
exit 1
