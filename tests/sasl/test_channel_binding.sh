#!/usr/bin/env bash
# SCRAM-*-PLUS with channel binding (RFC 5802 §6, RFC 9266, RFC 5929)
# against the lab: tls-exporter on TLS 1.3, tls-unique on TLS 1.2, over
# STARTTLS and implicit TLS; the default policy prefers -PLUS; a wrong
# password still fails as a credential failure.
#   test_channel_binding.sh SMTPKIT
set -u
SMTPKIT=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
work=$(mktemp -d /tmp/smtpkit-cb.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$XDG_STATE_HOME"' EXIT
printf 'correct horse\n' >"$work/pw"
printf 'wrong horse\n' >"$work/bad"

start_lab() { # NAME extra lab options...
  local name=$1
  shift
  "$SMTPKIT" lab --scenario ok --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
    --mechanisms "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 PLAIN" "$@" \
    >"$work/$name" 2>/dev/null &
  local i
  for i in $(seq 50); do grep -q '^ca=' "$work/$name" && break; sleep 0.1; done
}
port_of() { sed -n "s/^listening plain=[^ ]*:\([0-9]*\) tls=[^ ]*:\([0-9]*\)$/\\$2/p" "$work/$1"; }

for v in 1.3 1.2; do
  start_lab "lab$v" --tls-max "$v"
  ca=$(sed -n 's/^ca=//p' "$work/lab$v")
  for mode in starttls implicit; do
    p=$(port_of "lab$v" 1)
    [ $mode = implicit ] && p=$(port_of "lab$v" 2)
    want=tls-exporter
    [ "$v" = 1.2 ] && want=tls-unique
    run send -s "localhost:$p" --tls $mode --ca-file "$ca" -u alice \
      --password-file "$work/pw" -f a@example.test --to b@example.test \
      --subject cb --body ok --json
    expect_rc "TLS $v $mode: default policy logs in" 0
    expect_json "TLS $v $mode ($want): mechanism" server.auth_mechanism SCRAM-SHA-256-PLUS
    for m in SCRAM-SHA-1-PLUS; do
      run send -s "localhost:$p" --tls $mode --ca-file "$ca" -u alice \
        --password-file "$work/pw" --auth $m -f a@example.test \
        --to b@example.test --subject cb --body ok --json
      expect_rc "TLS $v $mode: $m" 0
    done
  done
done

run send -s "localhost:$(port_of lab1.3 1)" --ca-file "$(sed -n 's/^ca=//p' "$work/lab1.3")" \
  -u alice --password-file "$work/bad" --auth SCRAM-SHA-256-PLUS \
  -f a@example.test --to b@example.test --subject cb --body ok --json
expect_rc "SCRAM-SHA-256-PLUS, wrong password" 77
expect_json "SCRAM-SHA-256-PLUS, wrong password: cause" cause bad_credentials
finish
