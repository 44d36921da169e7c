#!/usr/bin/env bash
# Hostile-server tests: each server mode misbehaves once; the client must
# name the right cause and exit code, stay within its time-out, and never
# send a credential it should not.
#   test_hostile.sh SMTPKIT
set -u
SMTPKIT=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
work=$(mktemp -d /tmp/smtpkit-hostile.XXXXXX)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$XDG_STATE_HOME"' EXIT
bash "$here/../interop/lib/ca.sh" "$work/certs" DNS:localhost >/dev/null
printf 'correct horse\n' >"$work/pw"
SECRETS=("correct horse")

# scenario MODE WANT_CAUSE WANT_RC MAX_SECONDS [extra send options]
scenario() {
  local mode=$1 cause=$2 want=$3 max=$4
  shift 4
  rm -f "$work/certs/events"
  python3 "$here/server.py" "$mode" "$work/certs" >"$work/port" &
  local pid=$! port="" i
  for i in $(seq 50); do
    port=$(sed -n 's/^port=//p' "$work/port")
    [ -n "$port" ] && break
    sleep 0.1
  done
  local t0=$SECONDS
  run send -s "localhost:$port" --ca-file "$work/certs/ca.pem" -u alice \
    --password-file "$work/pw" -f a@example.test --to b@example.test \
    --subject x --body y --json --timeout 3 --transcript "$work/tr-$mode" "$@"
  local took=$((SECONDS - t0))
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  expect_rc "$mode" "$want"
  expect_json "$mode: cause" cause "$cause"
  if [ "$took" -le "$max" ]; then ok "$mode: took ${took}s (≤ ${max}s)"; else
    not_ok "$mode: took ${took}s, more than ${max}s"; fi
  printf '%s' "$OUT" >"$work/json-$mode"
}

scenario injection protocol_error 76 10
check "injection: no credentials sent" test ! -s "$work/certs/events"
scenario starttls-454 starttls_not_offered 75 10
check "STARTTLS refused: no credentials sent in plaintext" test ! -s "$work/certs/events"
scenario drip server_unavailable 75 8
scenario silent-after-greeting server_unavailable 75 8
scenario endless-multiline protocol_error 76 10
scenario huge-line protocol_error 76 10
scenario close-mid-data connection_lost 74 10 --attach "$SMTPKIT"
scenario close-after-dot delivery_unknown 75 10
check "delivery unknown: the output says the message may have been delivered" \
  eval 'json detail | grep -q "may or may not"'
scenario 421-greeting server_unavailable 75 10
scenario 421-ehlo server_unavailable 75 10
scenario 421-auth server_unavailable 75 10
scenario 421-mail server_unavailable 75 10
scenario 421-dot server_unavailable 75 10
scenario garbage protocol_error 76 10
check "no secret in any transcript or JSON" no_secret "$work"/tr-* "$work"/json-*

finish
