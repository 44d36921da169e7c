#!/usr/bin/env bash
# test_dns.sh SMTPKIT — an e-mail address as the target, resolved through
# a DNS server of our own (dnsmasq on loopback, --dns-server): SRV for
# _submission._tcp and _submissions._tcp (RFC 6186, RFC 8314), MX hosts
# of a known provider, the smtp.DOMAIN guess, a domain with nothing; and
# four silent SRV targets probed at once within the time bound.
set -u
SMTPKIT=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/doctor_lib.sh"
. "$here/../lab/lab_lib.sh"
command -v dnsmasq >/dev/null || { not_ok "dnsmasq is installed (scripts/deps.sh test)"; finish; exit; }

mkdir -p "$WORK/lab"
lab_start "$SMTPKIT" ok "$WORK/lab" || { not_ok "lab starts"; finish; exit; }
CLEANUP_PIDS+=("$LAB_PID")
python3 "$here/silent.py" 4 90 >"$WORK/silent.out" &
CLEANUP_PIDS+=("$!")
for _ in $(seq 50); do grep -q '^ports' "$WORK/silent.out" && break; sleep 0.1; done
read -r -a silent <<<"$(awk '/^ports/ {print $2, $3, $4, $5}' "$WORK/silent.out")"

# dnsmasq on a free UDP+TCP port; retried if another process takes it.
dns_up=
for try in 1 2 3 4 5; do
  DNS_PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dnsmasq -k --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
    -C /dev/null --no-resolv --no-hosts --pid-file="$WORK/dnsmasq.pid" \
    --log-facility="$WORK/dnsmasq.log" \
    --srv-host=_submission._tcp.example.test,localhost,"$LAB_PORT",10,0 \
    --srv-host=_submissions._tcp.tls.test,localhost,"$LAB_TLS_PORT",10,0 \
    --srv-host=_submission._tcp.silent.test,localhost,"${silent[0]}",10,0 \
    --srv-host=_submission._tcp.silent.test,localhost,"${silent[1]}",20,0 \
    --srv-host=_submissions._tcp.silent.test,localhost,"${silent[2]}",10,0 \
    --srv-host=_submissions._tcp.silent.test,localhost,"${silent[3]}",20,0 \
    --mx-host=viamx.test,aspmx.l.google.com,10 \
    --address=/smtp.guess.test/127.0.0.1 &
  pid=$!
  for _ in $(seq 30); do
    python3 - "$DNS_PORT" <<'PY' 2>/dev/null && { dns_up=1; break; }
import socket, sys
q = bytes.fromhex("12340100000100000000000004746573740000010001")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
s.sendto(q, ("127.0.0.1", int(sys.argv[1]))); s.recvfrom(512)
PY
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$dns_up" ]; then CLEANUP_PIDS+=("$pid"); break; fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
done
[ -n "$dns_up" ] || { not_ok "dnsmasq starts"; cat "$WORK/dnsmasq.log"; finish; exit; }
ok "dnsmasq on 127.0.0.1:$DNS_PORT"
dns=(--dns-server "127.0.0.1:$DNS_PORT")
export LAB_PASSWORD='correct horse'

doctor alice@example.test "${dns[@]}" -u alice --password-env LAB_PASSWORD \
  --ca-file "$LAB_CA"
expect "SRV _submission._tcp" target.source srv
expect "SRV _submission._tcp" target.host localhost
expect "SRV _submission._tcp" probes.0.port "$LAB_PORT"
expect "SRV _submission._tcp" diagnosis.cause ok
expect_rc "SRV _submission._tcp" 0
expect "SRV _submission._tcp" recommended.tls starttls
expect "SRV _submission._tcp" recommended.port "$LAB_PORT"

doctor bob@tls.test "${dns[@]}" --no-auth --ca-file "$LAB_CA"
expect "SRV _submissions._tcp" target.source srv
expect "SRV _submissions._tcp" probes.0.mode implicit
expect "SRV _submissions._tcp" diagnosis.cause ok
expect "SRV _submissions._tcp" recommended.tls implicit

# The address is the login name when no --user is given: the lab knows
# only alice, so this is a refusal, which is the point.
doctor alice@example.test "${dns[@]}" --password-env LAB_PASSWORD \
  --ca-file "$LAB_CA"
expect "address as user name" auth.attempted true
expect "address as user name" diagnosis.cause bad_credentials

doctor someone@viamx.test "${dns[@]}" --no-auth --timeout 2
expect "MX of a known provider" target.source mx
expect "MX of a known provider" target.host smtp.gmail.com
expect "MX of a known provider" target.provider google
# smtp.gmail.com does not resolve through this DNS server: nothing leaves
# the machine.
expect "MX of a known provider, offline" diagnosis.cause dns_failure
expect_rc "MX of a known provider, offline" 68

doctor someone@guess.test "${dns[@]}" --no-auth --timeout 2
expect "smtp.DOMAIN guess" target.source guess
expect "smtp.DOMAIN guess" target.host smtp.guess.test

doctor someone@nothing.test "${dns[@]}" --no-auth --timeout 2
expect "nothing found" diagnosis.cause dns_failure
expect_rc "nothing found" 68
expect "nothing found" target.source null

doctor aspmx.l.google.com "${dns[@]}" --no-auth --timeout 2
expect "an MX host used for submission" diagnosis.cause wrong_endpoint
expect_rc "an MX host used for submission" 78
expect "an MX host used for submission" diagnosis.provider google

doctor someone@silent.test "${dns[@]}" --no-auth --timeout 2
expect "four silent SRV targets" target.source srv
n=$(json probes | python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.stdin.read())))')
[ "$n" = 4 ] && ok "four silent SRV targets: 4 probes" || not_ok "four silent SRV targets: $n probes"
expect "four silent SRV targets" diagnosis.cause server_unavailable
expect_le_ms "four silent SRV targets, --timeout 2" 6000
echo "# four silent ports at once: ${MS} ms with --timeout 2"

lab_stop || not_ok "lab stops cleanly"
finish
