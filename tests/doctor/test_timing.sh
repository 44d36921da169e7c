#!/usr/bin/env bash
# test_timing.sh SMTPKIT — the probing is bounded: a port that accepts and
# never speaks costs --timeout (+ 2 s at most; asserted loosely here,
# + 4 s), a closed port costs nothing.
set -u
SMTPKIT=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/doctor_lib.sh"

python3 "$here/silent.py" 1 90 >"$WORK/silent.out" &
CLEANUP_PIDS+=("$!")
for _ in $(seq 50); do grep -q '^ports' "$WORK/silent.out" && break; sleep 0.1; done
silent=$(awk '/^ports/ {print $2}' "$WORK/silent.out")
[ -n "$silent" ] || { not_ok "silent listener starts"; finish; exit; }

export PW='correct horse'
doctor 127.0.0.1 --port "$silent" --timeout 2 -u alice --password-env PW
expect "silent port" diagnosis.cause server_unavailable
expect_rc "silent port" 75
expect "silent port: reachable" probes.0.reachable true
expect "silent port: no greeting" probes.0.greeting null
expect "silent port: not a TLS port either" probes.0.tls.ok false
expect "silent port: no login" auth.attempted false
expect_le_ms "silent port, --timeout 2" 6000
if [ "$MS" -ge 1900 ]; then ok "silent port: waited for the greeting (${MS} ms)";
else not_ok "silent port: gave up after ${MS} ms"; fi
echo "# silent port: ${MS} ms with --timeout 2"

doctor 127.0.0.1 --port "$silent" --timeout 3 --tls implicit --no-auth
expect "silent port, implicit TLS" diagnosis.cause server_unavailable
expect_le_ms "silent port, --timeout 3" 7000
echo "# silent port, implicit TLS: ${MS} ms with --timeout 3"

closed=$(free_port)
doctor 127.0.0.1 --port "$closed" --timeout 2 -u alice --password-env PW
expect "closed port" diagnosis.cause connection_refused
expect_rc "closed port" 69
expect "closed port" probes.0.reachable false
expect_le_ms "closed port" 2000
echo "# closed port: ${MS} ms"
finish
