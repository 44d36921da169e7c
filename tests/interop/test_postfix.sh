#!/usr/bin/env bash
# Interop: smtpkit send against a real Postfix 3.7 + Dovecot SASL started by
# tests/interop/postfix_dovecot.sh (see there for ports, users, capture).
#   test_postfix.sh STATE_DIR SMTPKIT
set -u
STATE=$1
SMTPKIT=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/testlib.sh"
. "$STATE/env"
work=$(mktemp -d)
trap 'rm -rf "$work" "$XDG_STATE_HOME"' EXIT

printf 'correct horse\n' >"$work/pw"
printf 'wrong horse\n' >"$work/bad"
printf 'hashed secret\n' >"$work/hashed"
printf 'p@ss:word with spaces\n' >"$work/bob"
printf 'pässwörd\n' >"$work/uni"
SECRETS=("correct horse" "wrong horse" "hashed secret" "p@ss:word with spaces"
         "pässwörd" "AGFsaWNlAGNvcnJlY3QgaG9yc2U=")

# A message that exercises transparency and line endings: lines starting
# with ".", a lone ".", bare LF, bare CR, CRLF, 8-bit UTF-8, no final EOL.
python3 - "$work/msg" <<'PY'
import sys
body = (b"From: alice@example.test\r\nTo: bob@example.test\n"
        b"Subject: interop \xc3\xa9t\xc3\xa9\r\n\r\n"
        b".leading dot\n..two dots\r\n.\nmiddle\rbare CR\r\n"
        b"8-bit: \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xc3\xa5\xc3\xa4\xc3\xb6\n"
        b"last line without newline")
open(sys.argv[1], "wb").write(body)
PY

# same_as_sent CAPTURED: the capture, without Postfix's Received: header,
# equals the message with every line ending made LF.
same_as_sent() {
  python3 - "$work/msg" "$1" <<'PY'
import sys
sent = open(sys.argv[1], "rb").read()
want = sent.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
if not want.endswith(b"\n"):
    want += b"\n"
got = open(sys.argv[2], "rb").read().split(b"\n")
i = 0
while i < len(got) and (got[i].startswith(b"Received:") or
                        (i > 0 and got[i][:1] in (b" ", b"\t"))):
    i += 1
got = b"\n".join(got[i:])
if got != want:
    print("  captured differs:\n  want %r\n  got  %r" % (want[:300], got[:300]))
    sys.exit(1)
PY
}

common=(--ca-file "$PF_CA_FILE" -f alice@example.test --to bob@example.test)

for mode in starttls implicit; do
  port=$PF_SUBMISSION_PORT
  [ $mode = implicit ] && port=$PF_SUBMISSIONS_PORT
  for mech in PLAIN LOGIN; do
    snapshot "$PF_CAPTURE_DIR" "$work/before"
    tr="$work/tr-$mode-$mech"
    run_in "$work/msg" send -s "localhost:$port" --tls $mode -u alice \
      --password-file "$work/pw" --auth $mech "${common[@]}" --json \
      --transcript "$tr"
    expect_rc "$mode/$mech: sent" 0
    expect_json "$mode/$mech: mechanism" server.auth_mechanism $mech
    expect_json "$mode/$mech: tls" server.tls $mode
    printf '%s' "$OUT" >"$work/json-$mode-$mech"
    f=$(wait_capture "$PF_CAPTURE_DIR" "$work/before" "Subject: interop") ||
      f=/nonexistent
    check "$mode/$mech: captured byte for byte" same_as_sent "$f"
    check "$mode/$mech: AUTH redacted in transcript" grep -q "AUTH $mech" "$tr"
  done
done

# A 10 MB attachment arrives intact (decoded from the captured MIME).
head -c 10485760 /dev/urandom >"$work/big.bin"
snapshot "$PF_CAPTURE_DIR" "$work/before"
run send -s "localhost:$PF_SUBMISSION_PORT" -u alice --password-file "$work/pw" \
  "${common[@]}" --subject "10 MB" --body "see attachment" \
  --attach "$work/big.bin" --json
expect_rc "10 MB attachment: sent" 0
f=$(wait_capture "$PF_CAPTURE_DIR" "$work/before" "Subject: 10 MB") ||
  f=/nonexistent
check "10 MB attachment: decoded attachment equals the file" python3 - "$f" "$work/big.bin" <<'PY'
import email, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"))
parts = [p for p in msg.walk() if p.get_filename() == "big.bin"]
data = parts[0].get_payload(decode=True) if parts else b""
sys.exit(0 if data == open(sys.argv[2], "rb").read() else 1)
PY

# Wrong password: a credential failure, exit 77, no fallback to other
# mechanisms after PLAIN's 535.
run send -s "localhost:$PF_SUBMISSION_PORT" -u alice --password-file "$work/bad" \
  "${common[@]}" --subject x --body y --json --transcript "$work/tr-bad"
expect_rc "wrong password" 77
expect_json "wrong password: cause" cause bad_credentials
expect_json "wrong password: stage" stage auth
printf '%s' "$OUT" >"$work/json-bad"

# The lock-out guard: the same refused password is not sent again.
run send -s "localhost:$PF_SUBMISSION_PORT" -u alice --password-file "$work/bad" \
  "${common[@]}" --subject x --body y --json -v
expect_rc "same wrong password again: held back" 77
check "same wrong password again: says it was not sent" \
  eval 'json detail | grep -q "not sent"'
check "same wrong password again: no connection made" \
  eval '! printf "%s" "$ERR" | grep -q "connected to"'
run send -s "localhost:$PF_SUBMISSION_PORT" -u alice --password-file "$work/bad" \
  "${common[@]}" --subject x --body y --json --force-auth
expect_rc "--force-auth sends it anyway" 77
expect_json "--force-auth: the server refused it" reply.code 535

# The hashed-password user: SCRAM is offered but cannot work; PLAIN can.
run send -s "localhost:$PF_SUBMISSION_PORT" -u hashed --password-file "$work/hashed" \
  "${common[@]}" --subject x --body y --json --transcript "$work/tr-hashed"
expect_rc "hashed password: logs in through fallback" 0
expect_json "hashed password: first attempt" auth_attempts.0.mechanism SCRAM-SHA-256
expect_json "hashed password: first attempt refused" auth_attempts.0.reply.code 535
expect_json "hashed password: final mechanism" server.auth_mechanism PLAIN

# User names and passwords with '@', ':', spaces and UTF-8.
run send -s "localhost:$PF_SUBMISSION_PORT" -u bob@example.test \
  --password-file "$work/bob" "${common[@]}" --subject x --body y
expect_rc "user with @, password with : and spaces" 0
run send -s "localhost:$PF_SUBMISSION_PORT" -u ünïcode --password-file "$work/uni" \
  "${common[@]}" --subject x --body y
expect_rc "UTF-8 user name and password" 0

# Certificates.
run send -s "localhost:$PF_SUBMISSION_PORT" -u alice --password-file "$work/pw" \
  -f alice@example.test --to bob@example.test --subject x --body y --json
expect_rc "CA not trusted" 78
expect_json "CA not trusted: cause" cause certificate_untrusted
run send -s "127.0.0.1:$PF_SUBMISSION_PORT" -u alice --password-file "$work/pw" \
  "${common[@]}" --subject x --body y --json
expect_rc "certificate for another name" 78
expect_json "certificate for another name: cause" cause certificate_name_mismatch

# --tls none with credentials: refused before any credential is sent. The
# server's own log is the witness: Postfix logs "auth=" in its disconnect
# summary for every connection that issued AUTH.
run send -s "localhost:$PF_PLAIN_PORT" --tls none -u alice \
  --password-file "$work/pw" "${common[@]}" --subject x --body y --json -v
expect_rc "--tls none with credentials" 78
expect_json "--tls none with credentials: cause" cause starttls_not_offered
lport=$(printf '%s' "$ERR" | sed -n 's/.* from local port \([0-9]*\).*/\1/p')
server_saw() { # PORT: the server's disconnect summary for that client port
  local i
  for i in $(seq 50); do
    grep -E "disconnect from [^ ]*\[127\.0\.0\.1\]:$1 " "$PF_LOG" && return 0
    sleep 0.1
  done
  return 1
}
summary=$(server_saw "$lport")
check "--tls none: the server logged the session" test -n "$summary"
check "--tls none: the server received no AUTH" eval '! printf "%s" "$summary" | grep -q "auth="'

run send -s "localhost:$PF_PLAIN_PORT" --tls none --allow-plaintext-auth \
  -u alice --password-file "$work/pw" "${common[@]}" --subject x --body y -v
expect_rc "--tls none --allow-plaintext-auth" 0

# Starting TLS is required by default: the plain port does not offer it.
run send -s "localhost:$PF_PLAIN_PORT" -u alice --password-file "$work/pw" \
  "${common[@]}" --subject x --body y --json
expect_rc "STARTTLS required but not offered" 78
expect_json "STARTTLS required but not offered: cause" cause starttls_not_offered

# No secret in any transcript or JSON written above.
check "no secret in transcripts or JSON" no_secret "$work"/tr-* "$work"/json-*

finish
