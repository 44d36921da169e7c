#!/usr/bin/env bash
# test_postfix.sh STATE_DIR SMTPKIT — `smtpkit doctor` against the real
# Postfix 3.7 + Dovecot started by tests/interop/postfix_dovecot.sh:
# a good login on each port, a bad password, and the wrong TLS mode for
# each port (SPEC §5's rule: plaintext_on_tls_port only after a working
# TLS handshake, tls_on_plaintext_port only after a plain greeting), each
# with the alternative verified by a login.
set -u
STATE=$1
SMTPKIT=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/doctor_lib.sh"
. "$STATE/env"
export PF_PW='correct horse' PF_BAD='wrong horse'
common=(localhost --ca-file "$PF_CA_FILE" -u alice)

doctor "${common[@]}" --port "$PF_SUBMISSION_PORT" --password-env PF_PW
expect "STARTTLS port" diagnosis.cause ok
expect_rc "STARTTLS port" 0
expect "STARTTLS port" probes.0.mode starttls
expect "STARTTLS port: certificate" probes.0.tls.verified true
expect "STARTTLS port: no AUTH before TLS" probes.0.auth_before_tls "[]"
expect "STARTTLS port: logged in" auth.ok true
expect "STARTTLS port" recommended.tls starttls
expect "STARTTLS port" recommended.port "$PF_SUBMISSION_PORT"
no_secret "$PF_PW"

doctor "${common[@]}" --port "$PF_SUBMISSIONS_PORT" --tls implicit \
  --password-env PF_PW
expect "implicit-TLS port" diagnosis.cause ok
expect_rc "implicit-TLS port" 0
expect "implicit-TLS port" probes.0.mode implicit
expect "implicit-TLS port" recommended.tls implicit

doctor "${common[@]}" --port "$PF_SUBMISSION_PORT" --password-env PF_BAD
expect "bad password" diagnosis.cause bad_credentials
expect_rc "bad password" 77
expect "bad password: tried" auth.attempted true
expect "bad password: the reply" auth.reply.code 535
expect "bad password: nothing verified" recommended null
no_secret "$PF_BAD"

doctor "${common[@]}" --port "$PF_SUBMISSIONS_PORT" --tls starttls \
  --password-env PF_PW
expect "STARTTLS on the implicit-TLS port" diagnosis.cause plaintext_on_tls_port
expect_rc "STARTTLS on the implicit-TLS port" 78
expect "STARTTLS on the implicit-TLS port: handshake worked" probes.0.tls.ok true
expect "STARTTLS on the implicit-TLS port: verified fix" recommended.tls implicit
expect "STARTTLS on the implicit-TLS port: verified fix" recommended.port \
  "$PF_SUBMISSIONS_PORT"
expect_le_ms "STARTTLS on the implicit-TLS port: no full time-out" 5000

doctor "${common[@]}" --port "$PF_SUBMISSION_PORT" --tls implicit \
  --password-env PF_PW
expect "implicit TLS on the STARTTLS port" diagnosis.cause tls_on_plaintext_port
expect_rc "implicit TLS on the STARTTLS port" 78
expect "implicit TLS on the STARTTLS port: banner seen" probes.0.greeting.code 220
expect "implicit TLS on the STARTTLS port: verified fix" recommended.tls starttls

doctor "${common[@]}" --port "$PF_PLAIN_PORT" --password-env PF_PW
expect "port without TLS" diagnosis.cause starttls_not_offered
expect_rc "port without TLS" 78

doctor "${common[@]}" --port "$PF_SUBMISSION_PORT" --password-env PF_PW \
  --send-test --to bob@example.test -f alice@example.test
expect "test message" diagnosis.cause ok
expect "test message" send_test.ok true
expect "test message" send_test.reply.code 250

doctor "${common[@]}" --port "$PF_SUBMISSION_PORT" --password-env PF_PW \
  --try-all-mechanisms
expect "every mechanism" diagnosis.cause ok
n=$(json auth.attempts | python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.stdin.read())))')
if [ "$n" -ge 4 ]; then ok "every mechanism: $n attempts"; else
  not_ok "every mechanism: $n attempts, want >= 4"; show; fi

# The human report a newcomer reads.
timeout 60 "$SMTPKIT" doctor "${common[@]}" --port "$PF_SUBMISSIONS_PORT" \
  --tls starttls --password-env PF_PW >"$WORK/human" 2>&1 </dev/null
if grep -q "Diagnosis: plaintext_on_tls_port" "$WORK/human" &&
   grep -q "Working settings (verified on the wire)" "$WORK/human" &&
   ! grep -qF "$PF_PW" "$WORK/human"; then
  ok "human report"
else
  not_ok "human report"; cat "$WORK/human"
fi
finish
