#!/usr/bin/env bash
# test_discovery.sh SMTPKIT — doctor without --port: 587, 465, 25 and 2525
# probed at once, the best working port found and verified by a login.
# It runs in a network namespace of its own (unshare -n), where those
# well-known ports on 127.0.0.1 are ours: the lab on 587 (STARTTLS) and
# 465 (implicit TLS), a silent listener on 2525, nothing on 25.
set -u
SMTPKIT=$1
if [ -z "${SMTPKIT_IN_NETNS:-}" ]; then
  exec unshare -n env SMTPKIT_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/doctor_lib.sh"
. "$here/../lab/lab_lib.sh"

lab_start "$SMTPKIT" ok "$WORK" --listen 127.0.0.1:587 --tls-listen 127.0.0.1:465 ||
  { not_ok "lab on 587 and 465"; finish; exit; }
CLEANUP_PIDS+=("$LAB_PID")
python3 "$here/silent.py" 1 90 2525 >"$WORK/silent.out" &
CLEANUP_PIDS+=("$!")
for _ in $(seq 50); do grep -q '^ports' "$WORK/silent.out" && break; sleep 0.1; done
export LAB_PASSWORD='correct horse'

doctor 127.0.0.1 --ca-file "$LAB_CA" -u alice --password-env LAB_PASSWORD
expect "four ports" diagnosis.cause ok
expect_rc "four ports" 0
n=$(json probes | python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.stdin.read())))')
[ "$n" = 4 ] && ok "four ports probed" || not_ok "$n ports probed, want 4"
for i in 0 1 2 3; do
  case $(json probes.$i.port) in
  587) expect "587" probes.$i.mode starttls; expect "587" probes.$i.cause ok ;;
  465) expect "465" probes.$i.mode implicit; expect "465" probes.$i.cause ok ;;
  25) expect "25" probes.$i.cause connection_refused ;;
  2525) expect "2525" probes.$i.reachable true
        expect "2525" probes.$i.mode none ;;
  esac
done
expect "the best port" recommended.port 587
expect "the best port" recommended.tls starttls
expect "logged in" auth.ok true
# The silent 2525 does not hold the run for the whole time-out (8 s) once
# 587 works: it gets two more seconds.
expect_le_ms "a silent port beside working ones" 5000
echo "# 587 + 465 working, 25 closed, 2525 silent: ${MS} ms"

doctor 127.0.0.1 --ca-file "$LAB_CA" -u alice --password-env LAB_PASSWORD \
  --tls implicit
expect "--tls implicit alone means 465" diagnosis.cause ok
expect "--tls implicit alone means 465" recommended.port 465
expect "--tls implicit alone means 465" recommended.tls implicit

doctor 127.0.0.1 --ca-file "$LAB_CA" --no-auth
expect "probe only" diagnosis.cause ok
expect "probe only" auth.attempted false
expect "probe only" recommended.port 587

doctor 127.0.0.1 --no-auth --timeout 3
expect "without the lab's CA" diagnosis.cause certificate_untrusted
expect_rc "without the lab's CA" 78
expect "without the lab's CA" recommended null
expect "without the lab's CA" probes.0.tls.verified false

doctor 127.0.0.1 --no-auth --insecure
expect "--insecure" diagnosis.cause ok
expect "--insecure" recommended.port 587

lab_stop || not_ok "lab stops cleanly"
CLEANUP_PIDS=("${CLEANUP_PIDS[@]:1}")
finish
