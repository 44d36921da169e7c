#!/usr/bin/env bash
# test_cli.sh SMTPKIT — doctor's command line: --help names every option,
# usage errors exit 64, a missing CA file 66, passwords never on argv.
set -u
SMTPKIT=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/doctor_lib.sh"

help=$("$SMTPKIT" doctor --help)
missing=
for opt in --server --port --tls --ca-file --insecure --helo --timeout \
  --dns-server --provider --user --password-file --password-env \
  --password-cmd --oauth2-token-file --oauth2-token-env --oauth2-token-cmd \
  --auth --allow-plaintext-auth --force-auth --no-auth --try-all-mechanisms \
  --send-test --to --from --json --transcript --verbose Examples; do
  grep -q -- "$opt" <<<"$help" || missing="$missing $opt"
done
[ -z "$missing" ] && ok "--help names every option" || not_ok "--help lacks:$missing"
"$SMTPKIT" help doctor | grep -q "Usage: smtpkit doctor" && ok "smtpkit help doctor" || not_ok "smtpkit help doctor"
"$SMTPKIT" --help | grep -q "^  doctor" && ok "listed in smtpkit --help" || not_ok "not in smtpkit --help"

usage() { # DESC ARGS...
  local d=$1; shift
  timeout 20 "$SMTPKIT" doctor "$@" >/dev/null 2>"$WORK/err" </dev/null
  local rc=$?
  [ "$rc" = 64 ] && ok "$d: exit 64" || { not_ok "$d: exit $rc, want 64"; cat "$WORK/err"; }
}
usage "no target"
usage "two targets" a.example b.example
usage "-s and a target" -s a.example b.example
usage "--send-test without --to" 127.0.0.1 --send-test
usage "--to without --send-test" 127.0.0.1 --to a@b.example
usage "unknown provider" 127.0.0.1 --provider nosuch
usage "bad --tls" 127.0.0.1 --tls sometimes
usage "password on argv" 127.0.0.1 -u a --password hunter2
usage "bad address" "a b@example.test"
usage "two ports" 127.0.0.1:25 --port 587

timeout 20 "$SMTPKIT" doctor 127.0.0.1 --ca-file "$WORK/none.pem" >/dev/null 2>&1 </dev/null
[ $? = 66 ] && ok "missing --ca-file: exit 66" || not_ok "missing --ca-file"

# Never a progress display on a pipe.
closed=$(free_port)
timeout 20 "$SMTPKIT" doctor 127.0.0.1 --port "$closed" --no-auth >"$WORK/out" 2>"$WORK/err" </dev/null
if grep -q $'\033' "$WORK/err" "$WORK/out"; then not_ok "escape sequences on a pipe"; else ok "no escape sequences on a pipe"; fi
grep -q "Diagnosis: connection_refused" "$WORK/out" && ok "human report on stdout" || { not_ok "human report"; cat "$WORK/out"; }
finish
