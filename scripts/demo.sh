#!/usr/bin/env bash
# make demo: smtpkit against its own lab — every failure scenario, locally,
# no account needed — then one real message through a private Postfix +
# Dovecot, with the redacted transcript.
#   scripts/demo.sh SMTPKIT
set -euo pipefail
smtpkit=${1:-build/smtpkit}
here=$(cd "$(dirname "$0")/.." && pwd)

echo "== smtpkit demo: every lab scenario, diagnosed =="
"$smtpkit" demo || true

echo
echo "== a real submission: private Postfix 3.7 + Dovecot on loopback =="
state=$(mktemp -d /tmp/smtpkit-demo.XXXXXX)
chmod 755 "$state"
trap 'bash "$here/tests/interop/postfix_dovecot.sh" stop "$state/pf" >/dev/null 2>&1; rm -rf "$state"' EXIT
bash "$here/tests/interop/postfix_dovecot.sh" start "$state/pf" >/dev/null
. "$state/pf/env"
printf 'correct horse\n' >"$state/pw"
export XDG_STATE_HOME="$state/xdg"
"$smtpkit" send -s "localhost:$PF_SUBMISSION_PORT" --ca-file "$PF_CA_FILE" \
  -u alice --password-file "$state/pw" -f alice@example.test \
  --to bob@example.test --subject "smtpkit demo" --body "Hello from smtpkit." \
  --transcript -
echo
echo "== the same with a wrong password =="
printf 'wrong horse\n' >"$state/bad"
"$smtpkit" send -s "localhost:$PF_SUBMISSION_PORT" --ca-file "$PF_CA_FILE" \
  -u alice --password-file "$state/bad" -f alice@example.test \
  --to bob@example.test --subject "smtpkit demo" --body "Hello." || true
