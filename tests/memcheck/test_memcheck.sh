#!/usr/bin/env bash
# valgrind memcheck over the commands users run: send (success and a
# failure), explain, and doctor when built. Zero errors and zero definite or
# indirect leaks; OpenSSL's and GNU SASL's process-lifetime allocations
# ("still reachable") do not count.
#   test_memcheck.sh SMTPKIT
set -u
SMTPKIT=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
work=$(mktemp -d /tmp/smtpkit-memcheck.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$XDG_STATE_HOME"' EXIT
command -v valgrind >/dev/null || { echo "valgrind missing"; exit 1; }

"$SMTPKIT" lab --scenario ok --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 >"$work/lab" &
for _ in $(seq 50); do grep -q '^ca=' "$work/lab" && break; sleep 0.1; done
plain=$(sed -n 's/^listening plain=[^:]*:\([0-9]*\) .*/\1/p' "$work/lab")
ca=$(sed -n 's/^ca=//p' "$work/lab")
printf 'correct horse\n' >"$work/pw"
printf 'wrong horse\n' >"$work/bad"
head -c 300000 /dev/urandom >"$work/att.bin"

vg() { # DESC EXPECTED_EXIT ARGS...
  local desc=$1 want=$2
  shift 2
  timeout 300 valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    "$SMTPKIT" "$@" >"$work/out" 2>"$work/err" </dev/null
  local rc=$?
  if [ "$rc" = "$want" ]; then ok "memcheck: $desc (exit $rc, no errors)"; else
    not_ok "memcheck: $desc: exit $rc, want $want"; grep -E '==[0-9]+==' "$work/err" | head -30; fi
}

vg "send with an attachment" 0 send -s "localhost:$plain" --ca-file "$ca" \
  -u alice --password-file "$work/pw" -f a@example.test --to b@example.test \
  --subject "memcheck é" --body "hello" --attach "$work/att.bin" --json \
  --transcript "$work/tr"
vg "send, wrong password" 77 send -s "localhost:$plain" --ca-file "$ca" \
  -u alice --password-file "$work/bad" -f a@example.test --to b@example.test \
  --subject x --body y --json
vg "send, untrusted certificate" 78 send -s "localhost:$plain" -u alice \
  --password-file "$work/pw" -f a@example.test --to b@example.test \
  --subject x --body y
vg "explain" 0 explain "smtplib.SMTPAuthenticationError: (534, b'5.7.9 Application-specific password required. Learn more at\\n5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor x - gsmtp')"
vg "explain --json" 0 explain --json "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."
if "$SMTPKIT" help doctor >/dev/null 2>&1; then
  vg "doctor" 0 doctor "localhost:$plain" --ca-file "$ca" -u alice \
    --password-file "$work/pw" --json
fi
finish
